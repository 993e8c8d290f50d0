"""Helpers for tests that run real peers (SIPp, Kamailio, Prosody, baresip) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = Path(__file__).parent / "sip" / "scenarios"
SIPP_PCAP = Path("/usr/share/sip-tester/g711a.pcap")


def free_port(kind: int = socket.SOCK_DGRAM, host: str = "127.0.0.1", even: bool = False) -> int:
    """A port free for both UDP and TCP on ``host`` right now."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((host, 0))
            port = int(probe.getsockname()[1])
        if even and port % 2:
            continue
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as check:
            try:
                check.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


async def wait_for_port(host: str, port: int, timeout: float = 10.0, udp: bool = False) -> None:
    """Wait until something listens on ``host:port`` (TCP connect, or for UDP a bound port)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if udp:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    return  # taken: the peer has bound it
        else:
            try:
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            except OSError:
                pass
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port}")
        await asyncio.sleep(0.05)


@dataclass
class SippResult:
    returncode: int
    stdout: str
    messages: str  # the -trace_msg log: every message SIPp sent and received
    errors: str

    @property
    def successful_calls(self) -> int:
        match = re.search(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", self.stdout)
        return int(match.group(1)) if match else 0

    @property
    def failed_calls(self) -> int:
        match = re.search(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", self.stdout)
        return int(match.group(1)) if match else 0

    def received(self) -> list[str]:
        """The messages SIPp received, as text."""
        return [m for kind, m in _split_trace(self.messages) if kind == "received"]

    def sent(self) -> list[str]:
        return [m for kind, m in _split_trace(self.messages) if kind == "sent"]


def _split_trace(log: str) -> list[tuple[str, str]]:
    parts = re.split(r"^-+ [\d\-:. ]+\n(UDP|TCP) message (received|sent) .*\n", log, flags=re.M)
    # re.split with two groups yields [pre, transport, kind, body, transport, kind, body, ...]
    return [(parts[i + 1], parts[i + 2].strip("\n")) for i in range(1, len(parts) - 2, 3)]


async def run_sipp(
    scenario: str,
    target: str,
    *,
    args: Sequence[str] = (),
    timeout: float = 30.0,
    local_port: int | None = None,
    media_port: int | None = None,
) -> SippResult:
    """Run SIPp with ``scenario`` (a file in tests/sip/scenarios or a built-in name such as
    ``uac``) against ``target`` ("127.0.0.1:5060") and return its result and message trace."""
    sipp = shutil.which("sipp")
    if sipp is None:
        raise RuntimeError("sipp is not installed (Debian package sip-tester)")
    workdir = Path(tempfile.mkdtemp(prefix="pygasi-sipp-"))
    scenario_args = (
        ["-sf", str(SCENARIOS / scenario)] if scenario.endswith(".xml") else ["-sn", scenario]
    )
    command = [
        sipp,
        *scenario_args,
        "-i", "127.0.0.1",
        "-p", str(local_port or free_port()),
        "-mi", "127.0.0.1",
        "-mp", str(media_port or free_port(even=True)),
        "-m", "1",
        "-nostdin",
        "-timeout", str(int(timeout)),
        "-timeout_error",
        "-trace_msg", "-message_file", str(workdir / "messages.log"),
        "-trace_err", "-error_file", str(workdir / "errors.log"),
        *args,
        target,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout + 15)
    except TimeoutError:
        process.kill()
        stdout, _ = await process.communicate()
    messages = (
        (workdir / "messages.log").read_text(errors="replace")
        if (workdir / "messages.log").exists()
        else ""
    )
    errors = (
        (workdir / "errors.log").read_text(errors="replace")
        if (workdir / "errors.log").exists()
        else ""
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return SippResult(process.returncode or 0, stdout.decode(errors="replace"), messages, errors)


@contextlib.asynccontextmanager
async def running(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a peer for the duration of the block; it is terminated (then killed) afterwards,
    so no process outlives the test."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        await stop_process(process)


async def stop_process(process: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class RtpCounter(asyncio.DatagramProtocol):
    """Counts RTP packets arriving on a UDP port (payload types and SSRCs seen)."""

    def __init__(self) -> None:
        self.packets = 0
        self.payload_types: set[int] = set()
        self.ssrcs: set[int] = set()
        self.sources: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2:
            self.packets += 1
            self.payload_types.add(data[1] & 0x7F)
            self.ssrcs.add(int.from_bytes(data[8:12], "big"))
            self.sources.add((str(addr[0]), int(addr[1])))
