"""Kamailio on loopback for tests: a strict registrar and authenticating, record-routing proxy.

:class:`Kamailio` writes ``tests/sip/kamailio/proxy.cfg`` (or another template) into a temp dir
behind ``#!define`` lines for the ports picked here, syntax-checks it with ``kamailio -c``,
runs ``kamailio -DD -E`` in the foreground in its own session (stderr to a log file the tests
read), waits until it answers an OPTIONS on UDP, TCP and TLS, and stops it with SIGTERM to its
main process (SIGKILL to the whole process group after a grace period). It is started under
``setpriv --pdeathsig TERM`` when available, so even a killed test run leaves no Kamailio behind.

The template logs one ``PYGASI <KIND>|field|field...`` line per message it handles;
:meth:`Kamailio.lines` and :meth:`Kamailio.wait_for` parse them (see the template's header).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sip.uri import Uri, parse_uri
from tests.peers import free_port

TEMPLATE = Path(__file__).parent / "sip" / "kamailio" / "proxy.cfg"
PASSWORD = "secret"  # the template accepts any user name with this password
HOST = "127.0.0.1"
_LINE = re.compile(r"PYGASI ([A-Z]+)\|(.*)$", re.M)


class KamailioError(RuntimeError):
    """Kamailio is missing, rejected its configuration, or did not come up."""


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path


async def self_signed_certificate(directory: Path, host: str = HOST) -> Certificate:
    """A throw-away self-signed certificate (P-256, one day) for ``host``, with the address in
    subjectAltName so a verifying TLS client accepts it when given it as the CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KamailioError("openssl is not installed (scripts/install-test-deps installs it)")
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    san = f"IP:{host}" if _is_ip(host) else f"DNS:{host}"
    process = await asyncio.create_subprocess_exec(
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "1", "-subj", f"/CN={host}", "-addext", f"subjectAltName={san}",
        "-keyout", str(keyfile), "-out", str(certfile),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise KamailioError(f"openssl could not make a certificate: {output.decode()}")
    return Certificate(certfile, keyfile)


@dataclass(frozen=True)
class LogLine:
    """One ``PYGASI`` line Kamailio logged: its kind (REQ, AUTH, SAVE, ROUTE, REPLY) and
    fields, in the order the template's header lists them."""

    kind: str
    fields: tuple[str, ...]

    def __getitem__(self, index: int) -> str:
        return self.fields[index]


class Kamailio:
    """One Kamailio instance; ``async with Kamailio(workdir) as kam:`` starts and stops it."""

    def __init__(
        self,
        workdir: Path,
        *,
        template: Path = TEMPLATE,
        tls: Certificate | None = None,
        min_expires: int = 1,
        default_expires: int = 60,
        max_expires: int = 3600,
        defines: Mapping[str, str | int | None] | None = None,
        port: int | None = None,
        tls_port: int | None = None,
    ) -> None:
        binary = shutil.which("kamailio")
        if binary is None:
            raise KamailioError("kamailio is not installed (Debian kamailio, kamailio-tls-modules)")
        self.binary = binary
        self.workdir = workdir
        self.template = template
        self.tls = tls
        self.port = port or free_port()  # UDP and TCP
        self.tls_port = (tls_port or free_port(socket.SOCK_STREAM)) if tls is not None else None
        self.config_path = workdir / "kamailio.cfg"
        self.rundir = workdir / "run"
        self.runs = 0  # how many times it was started; each run logs to its own file
        self.process: asyncio.subprocess.Process | None = None
        self._log_handle: int | None = None
        self._defines: dict[str, str | int | None] = {
            "SIP_PORT": self.port,
            "MIN_EXPIRES": min_expires,
            "DEFAULT_EXPIRES": default_expires,
            "MAX_EXPIRES": max_expires,
        }
        if tls is not None:
            assert self.tls_port is not None
            self._defines |= {
                "WITH_TLS": None,
                "TLS_PORT": self.tls_port,
                "TLS_CERTIFICATE": _quoted(tls.certfile),
                "TLS_PRIVATE_KEY": _quoted(tls.keyfile),
            }
        self._defines |= dict(defines or {})
        self._checked = False

    # -- addresses ----------------------------------------------------------------------------

    def address(self, transport: str = "udp") -> str:
        """``host:port`` for SIPp's target argument."""
        return f"{HOST}:{self._port_for(transport)}"

    def uri(self, transport: str = "udp", user: str | None = None) -> Uri:
        """The proxy's (or registrar's) URI, e.g. ``sip:127.0.0.1:5070;transport=tls``."""
        userinfo = f"{user}@" if user else ""
        params = "" if transport == "udp" else f";transport={transport}"
        return parse_uri(f"sip:{userinfo}{HOST}:{self._port_for(transport)}{params}")

    def _port_for(self, transport: str) -> int:
        if transport in ("udp", "tcp"):
            return self.port
        if transport == "tls" and self.tls_port is not None:
            return self.tls_port
        raise ValueError(f"this Kamailio does not listen on {transport}")

    # -- life cycle ---------------------------------------------------------------------------

    def write_config(self) -> Path:
        """Write the configuration (defines, then the template) into the work dir."""
        header = [
            f"#!define {name}" if value is None else f"#!define {name} {value}"
            for name, value in self._defines.items()
        ]
        self.config_path.write_text("\n".join(header) + "\n" + self.template.read_text())
        self._checked = False
        return self.config_path

    async def check_config(self) -> None:
        """``kamailio -c``: a broken template fails here with Kamailio's own message."""
        if not self.config_path.exists():
            self.write_config()
        process = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-f", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 30)
        if process.returncode != 0:
            problems = [
                line
                for line in output.decode(errors="replace").splitlines()
                if "ERROR" in line or "CRITICAL" in line or "error" in line
            ]
            raise KamailioError(
                f"kamailio -c rejected {self.config_path} (from {self.template}):\n"
                + "\n".join(problems or output.decode(errors="replace").splitlines()[-20:])
            )
        self._checked = True

    async def start(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            raise RuntimeError("Kamailio is already running")
        if not self._checked:
            if not self.config_path.exists():
                self.write_config()
            await self.check_config()
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        self._log_handle = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        command = [
            self.binary, "-f", str(self.config_path),
            "-DD",  # stay in the foreground (children are still forked)
            "-E",  # log to stderr
            "-Y", str(self.rundir), "-P", str(self.rundir / "kamailio.pid"),
            "-m", "32", "-M", "8",  # shared and private memory, MB
        ]  # fmt: skip
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # Kamailio gets SIGTERM if this test process dies (it then stops its children).
            command = [setpriv, "--pdeathsig", "TERM", *command]
        self.process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=self._log_handle,
            start_new_session=True,  # its own process group, so stop() can kill all of it
        )
        try:
            await self._wait_ready(self.process, timeout)
        except BaseException:
            await self.stop()
            raise

    async def _wait_ready(self, process: asyncio.subprocess.Process, timeout: float) -> None:
        ready = asyncio.ensure_future(self._probe_ready(timeout))
        exited = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not ready.done():
                ready.cancel()
        if not ready.done() or ready.cancelled():
            raise KamailioError(
                f"kamailio exited with status {process.returncode} while starting:\n"
                + self.log_tail()
            )
        if ready.exception() is not None:
            raise KamailioError(
                f"kamailio did not come up: {ready.exception()}\n" + self.log_tail()
            )

    async def _probe_ready(self, timeout: float) -> None:
        # A SIP OPTIONS answered on every transport: Kamailio binds its sockets before it forks
        # its workers, so a bound port does not mean it is ready. Stopping it that early hung
        # 4 of 15 runs (every process waiting on a futex, one child already dead: a
        # shared-memory lock left taken); with the TCP/TLS workers, forked late, answering
        # first, 0 of 35 did.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        probes = [_options_udp(self.port), _options_stream(self.port, None)]
        if self.tls_port is not None:
            probes.append(_options_stream(self.tls_port, _probe_context()))
        for probe in probes:
            while not await probe():
                if loop.time() > deadline:
                    raise TimeoutError(f"no answer to OPTIONS on {self.port}/{self.tls_port}")
                await asyncio.sleep(0.02)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the main process (Kamailio stops its children itself), SIGKILL to the
        whole process group after ``grace`` s; returns when no process of it is left."""
        process, self.process = self.process, None
        try:
            if process is not None:
                await _terminate(process, grace)
        finally:
            if self._log_handle is not None:
                os.close(self._log_handle)
                self._log_handle = None

    async def restart(self, pause: float = 0.0) -> None:
        """Stop, optionally wait, start again on the same ports (registrations are lost)."""
        await self.stop()
        if pause:
            await asyncio.sleep(pause)
        await self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def __aenter__(self) -> Kamailio:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what it logged -----------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.workdir / f"kamailio-{self.runs}.log"

    def log(self, run: int | None = None) -> str:
        """The log of run ``run`` (1-based; the current or last run by default)."""
        path = self.workdir / f"kamailio-{run or self.runs}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def lines(self, kind: str | None = None, run: int | None = None) -> list[LogLine]:
        """The ``PYGASI`` lines of one run, oldest first, optionally of one kind."""
        found = [
            LogLine(m.group(1), tuple(m.group(2).split("|"))) for m in _LINE.finditer(self.log(run))
        ]
        return [line for line in found if kind is None or line.kind == kind]

    async def wait_for(
        self,
        kind: str,
        predicate: Callable[[LogLine], bool] = lambda _line: True,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[LogLine]:
        """Wait until the current run logged ``count`` lines of ``kind`` matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matching = [line for line in self.lines(kind) if predicate(line)]
            if len(matching) >= count:
                return matching
            if loop.time() > deadline:
                raise TimeoutError(
                    f"Kamailio logged {len(matching)} of {count} {kind} lines:\n" + self.log_tail()
                )
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def kamailio(
    *,
    tls: bool = False,
    min_expires: int = 1,
    default_expires: int = 60,
    defines: Mapping[str, str | int | None] | None = None,
) -> AsyncIterator[Kamailio]:
    """A started Kamailio in a fresh temp dir (with a self-signed certificate in ``.tls``
    when ``tls``); stopped and the dir removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-kamailio-"))
    try:
        certificate = await self_signed_certificate(workdir) if tls else None
        instance = Kamailio(
            workdir,
            tls=certificate,
            min_expires=min_expires,
            default_expires=default_expires,
            defines=defines,
        )
        async with instance:
            yield instance
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- readiness probes ---------------------------------------------------------------------------


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    group = process.pid  # start_new_session: the main process leads its own group
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    if process.returncode is None or _group_alive(group):
        # A main process that outlived the grace (a deadlock) or children it left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    await process.wait()
    deadline = asyncio.get_running_loop().time() + 2.0
    while _group_alive(group) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)  # killed children are reaped by init


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _options(transport: str, port: int, local: tuple[str, int]) -> bytes:
    tag = secrets.token_hex(6)
    return (
        f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch=z9hG4bK{tag};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{HOST}>;tag={tag}\r\n"
        f"To: <sip:{HOST}:{port}>\r\n"
        f"Call-ID: probe-{tag}@{HOST}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _options_udp(port: int) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        class Receiver(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
                if not answered.done():
                    answered.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Receiver, local_addr=(HOST, 0))
        try:
            transport.sendto(
                _options("UDP", port, transport.get_extra_info("sockname")), (HOST, port)
            )
            data = await asyncio.wait_for(answered, 0.2)
        except (OSError, TimeoutError):
            return False
        finally:
            transport.close()
        return data.startswith(b"SIP/2.0 200 ")

    return probe


def _options_stream(port: int, ctx: ssl.SSLContext | None) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, stream = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, ssl=ctx, server_hostname=HOST if ctx else None),
                1.0,
            )
            writer = stream
            local = stream.get_extra_info("sockname")
            stream.write(_options("TLS" if ctx else "TCP", port, (local[0], local[1])))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
        except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError):
            return False
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
        return head.startswith(b"SIP/2.0 200 ")

    return probe


def _probe_context() -> ssl.SSLContext:
    # Readiness only: the handshake proves the TLS module loaded the certificate.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _quoted(path: Path) -> str:
    text = str(path)
    if '"' in text:
        raise ValueError(f"path with a quote: {text}")
    return f'"{text}"'


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True
