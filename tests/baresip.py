"""baresip (Debian ``baresip`` 1.0.0) on loopback as a real phone for tests.

:class:`Baresip` writes a configuration directory (``config`` and ``accounts``) into a temp dir
and runs ``baresip -f <dir> -s`` in its own session (under ``setpriv --pdeathsig TERM`` when
available), stdout and stderr into ``baresip.log``. What version 1.0.0 offers, and what is used:

* no sound card: ``ausine`` is the audio source (a sine at :attr:`Baresip.tone` Hz; the module
  only runs at 48 kHz stereo, baresip resamples for the codec), ``aubridge`` the player and
  alert device (a device with no sound card behind it, the samples go nowhere). ``aufile`` is
  only a *source* in 1.0.0 (a player came later), so recording what the
  phone hears is the ``sndfile`` audio filter's job: per call it writes
  ``dump-<cname>=><peer>-<time>-dec.wav`` (what was received, decoded) and ``...-enc.wav``
  (what was sent) into ``snd_path``, at the codec's rate;
* ``g711`` (PCMU, PCMA) and optionally ``g722`` as codecs;
* the account: ``answermode=auto`` answers every INVITE at once (the phone still sends 180
  first), ``answermode=manual`` rings until the caller gives up (CANCEL), ``auth_pass`` answers the registrar's digest challenge, ``regint`` the REGISTER
  interval; registration goes to the AOR's host (:class:`tests.kamailio.Kamailio`);
* ``-s`` prints every SIP message sent and received (the trace :meth:`Baresip.sip_messages`
  reads), so a test sees the INVITE exactly as it reached the phone.

Everything binds to 127.0.0.1 (``sip_listen``, ``net_interface`` given as the address: the
interface name ``lo`` is not found in containers); RTP ports come from a range picked free here. :func:`baresip` starts one for a block and always kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from media.tones import MixtureAnalysis, analyse_mixture
from tests.peers import free_port

HOST = "127.0.0.1"
MODULES = Path("/usr/lib/baresip/modules")
# One SIP message in the ``-s`` trace of 1.0.0: "#", "UDP <from> -> <to>", the message.
_TRACE = re.compile(
    r"^#\n(?P<transport>[A-Z]+) (?P<source>\S+) -> (?P<destination>\S+)\n(?P<message>.*?)\n\n",
    re.M | re.S,
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _free_sip_port() -> int:
    """A port for `sip_listen`: baresip also listens for SIP/TLS on the next port (TCP), which
    must be free as well or baresip exits at start (seen once: an ephemeral port took it)."""
    for _ in range(50):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as check:
            try:
                check.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for baresip")


class BaresipError(RuntimeError):
    """baresip is missing, exited, or did not become ready (the log's tail says why)."""


class Baresip:
    """One baresip phone: ``async with Baresip(workdir, ...) as phone:`` starts and stops it."""

    def __init__(
        self,
        workdir: Path,
        *,
        user: str,
        password: str,
        registrar: str | None,
        tone: float = 1000.0,
        codecs: Sequence[str] = ("g711",),
        answermode: str = "auto",
        regint: int = 600,
        sip_port: int | None = None,
    ) -> None:
        binary = shutil.which("baresip")
        if binary is None:
            raise BaresipError("baresip is not installed (Debian baresip)")
        self.binary = binary
        self.workdir = workdir
        self.user = user
        self.password = password
        self.registrar = registrar  # "host:port" of the registrar, None: no REGISTER
        self.tone = tone
        self.codecs = tuple(codecs)
        self.answermode = answermode
        self.regint = regint
        self.sip_port = sip_port or _free_sip_port()
        base = free_port(even=True)
        self.rtp_ports = (base, base + 9) if base < 65000 else (base - 10, base - 1)
        self.recordings_dir = workdir / "recordings"
        self.process: asyncio.subprocess.Process | None = None
        self._log_handle: int | None = None

    # -- configuration ------------------------------------------------------------------------

    @property
    def aor(self) -> str:
        """The account's address of record: ``sip:<user>@<registrar>`` (or our own address)."""
        return f"sip:{self.user}@{self.registrar or f'{HOST}:{self.sip_port}'}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "baresip.log"

    def write_config(self) -> None:
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        modules = [f"{codec}.so" for codec in self.codecs]
        modules += ["ausine.so", "aubridge.so", "sndfile.so"]
        for module in modules:
            if not (MODULES / module).exists():
                raise BaresipError(f"baresip module {MODULES / module} is missing")
        lines = [
            "poll_method\t\tepoll",
            f"sip_listen\t\t{HOST}:{self.sip_port}",
            f"net_interface\t\t{HOST}",
            # ausine: 48 kHz stereo only; the tone's frequency is the device name.
            f"audio_source\t\tausine,{round(self.tone)}",
            "ausrc_srate\t\t48000",
            "ausrc_channels\t\t2",
            "audio_player\t\taubridge,null",
            "audio_alert\t\taubridge,null",
            "auplay_srate\t\t48000",
            "auplay_channels\t\t1",
            f"rtp_ports\t\t{self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "rtp_timeout\t\t0",
            f"module_path\t\t{MODULES}",
            *(f"module\t\t\t{module}" for module in modules),
            "module_app\t\taccount.so",
            f"snd_path\t\t{self.recordings_dir}",
        ]
        (self.workdir / "config").write_text("\n".join(lines) + "\n")
        params = [f"auth_pass={self.password}", f"answermode={self.answermode}"]
        params.append(f"regint={self.regint}" if self.registrar else "regint=0")
        (self.workdir / "accounts").write_text(f"<{self.aor}>;{';'.join(params)}\n")

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Start and wait until baresip is ready and, with a registrar, registered."""
        if self.process is not None:
            raise RuntimeError("baresip is already running")
        self.write_config()
        self._log_handle = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        command = [self.binary, "-f", str(self.workdir), "-s"]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            command = [setpriv, "--pdeathsig", "TERM", *command]  # dies with the test process
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=self._log_handle,
            start_new_session=True,
        )
        try:
            await self.wait_for_log(r"baresip is ready", timeout)
            if self.registrar:
                # 1.0.0 logs e.g. "sip:1001@127.0.0.1:5070: {0/UDP/v4} 200 OK (...) [1 binding]".
                await self.wait_for_log(r"\{\d+/UDP/v4\} 200 OK", timeout)
        except BaseException:
            await self.stop()
            raise

    async def stop(self, grace: float = 3.0) -> None:
        """SIGTERM to its process group, SIGKILL after ``grace`` s."""
        process, self.process = self.process, None
        try:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), grace)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
        finally:
            if self._log_handle is not None:
                os.close(self._log_handle)
                self._log_handle = None

    async def __aenter__(self) -> Baresip:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    # -- what it logged -----------------------------------------------------------------------

    def log(self) -> str:
        """Its output so far, without colour codes."""
        if not self.log_path.exists():
            return ""
        return _ANSI.sub("", self.log_path.read_text(errors="replace"))

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    async def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the log matches ``pattern`` (raises BaresipError on exit or timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        regex = re.compile(pattern, re.M)
        while True:
            match = regex.search(self.log())
            if match is not None:
                return match
            if self.process is not None and self.process.returncode is not None:
                raise BaresipError(
                    f"baresip exited ({self.process.returncode}) before {pattern!r}:\n"
                    + self.log_tail()
                )
            if loop.time() > deadline:
                raise BaresipError(f"baresip did not log {pattern!r}:\n" + self.log_tail())
            await asyncio.sleep(0.05)

    def sip_messages(self, direction: str = "recv") -> list[str]:
        """The SIP messages of the ``-s`` trace, ``recv`` or ``send``, oldest first."""
        me = f"{HOST}:{self.sip_port}"
        return [
            m.group("message")
            for m in _TRACE.finditer(self.log().replace("\r", ""))
            if (m.group("source") == me) == (direction == "send")
        ]

    def requests(self, method: str, direction: str = "recv") -> list[str]:
        return [m for m in self.sip_messages(direction) if m.startswith(f"{method} ")]

    # -- what it heard ------------------------------------------------------------------------

    def recordings(self, kind: str = "dec") -> list[Path]:
        """The sndfile dumps, ``dec`` (what it received) or ``enc`` (what it sent)."""
        return sorted(self.recordings_dir.glob(f"dump-*-{kind}.wav"))

    def heard(
        self, candidates: list[float], *, skip_seconds: float = 0.5, kind: str = "dec"
    ) -> MixtureAnalysis:
        """Which of ``candidates`` its recordings carry (the first ``skip_seconds`` of each,
        while the streams settle, left out)."""
        chunks: list[np.ndarray] = []
        rate = 8000
        for path in self.recordings(kind):
            samples, rate = read_dump(path)
            chunks.append(samples[int(skip_seconds * rate) :])
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return analyse_mixture(audio, rate, candidates)


def read_dump(path: Path) -> tuple[np.ndarray, int]:
    """(mono int16 samples, rate) of a sndfile dump. Read by hand: while baresip still writes
    the file, its header does not know the data's length yet."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path} is not a WAV file")
    offset, rate, channels, bits = 12, 0, 1, 16
    while offset + 8 <= len(data):
        chunk, size = (
            data[offset : offset + 4],
            struct.unpack("<I", data[offset + 4 : offset + 8])[0],
        )
        body = offset + 8
        if chunk == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[body : body + 16])
        elif chunk == b"data":
            if bits != 16:
                raise ValueError(f"{path}: {bits}-bit samples")
            raw = data[body:]  # to the end, whatever the header says
            raw = raw[: len(raw) - len(raw) % (2 * channels)]
            samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
            return samples.reshape(-1, channels)[:, 0].copy(), rate
        offset = body + size + (size & 1)
    return np.zeros(0, dtype=np.int16), rate or 8000


@contextlib.asynccontextmanager
async def baresip(
    *,
    user: str,
    password: str,
    registrar: str | None,
    tone: float = 1000.0,
    codecs: Sequence[str] = ("g711",),
    answermode: str = "auto",
) -> AsyncIterator[Baresip]:
    """A started baresip in a fresh temp dir; killed and the dir removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-baresip-"))
    try:
        async with Baresip(
            workdir,
            user=user,
            password=password,
            registrar=registrar,
            tone=tone,
            codecs=codecs,
            answermode=answermode,
        ) as phone:
            yield phone
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["Baresip", "BaresipError", "baresip", "read_dump"]
