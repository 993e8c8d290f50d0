"""``pygasi run`` as a real process (the installed console script): the HTTP API on Jigasi's
paths (health, stats, version, metrics), graceful drain by ``POST /about/shutdown``, SIGTERM
and SIGINT, configuration errors and start failures with their exit status, and no thread
growth across calls. The gateway runs against the sandbox conference (Prosody + the Jicofo
and bridge emulators, `tests.gateway.sandbox`), SIPp places the calls and `tests.phone.RtpPhone`
is the phone's media.

Every process is started in a session of its own and killed in a ``finally``, so none outlives
a test; its log (stderr) and stdout are kept in a buffer and shown when an assertion fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from gateway.config import GatewayConfig
from media.frame import SAMPLE_RATE
from media.tones import analyse_mixture
from tests.gateway.harness import SCENARIOS, first_lines, header, phone_keys
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.peers import SippResult, free_port, run_sipp
from tests.phone import RtpPhone
from tests.xmpp.prosody import Prosody

pytestmark = [pytest.mark.prosody, pytest.mark.sipp, pytest.mark.slow, pytest.mark.timeout(60)]

PYGASI = Path(sys.executable).parent / "pygasi"
EXAMPLE_CONFIG = Path(__file__).parents[2] / "config" / "pygasi.example.toml"
ROOM = "sandbox"
ALICE, BOB = 440.0, 660.0  # the web participants
PHONE = 1000.0
TONES = [ALICE, BOB, PHONE]
RETRY_AFTER = 42
# Sections of GatewayConfig written to the subprocess's TOML file.
SECTIONS = ("sip", "inbound", "xmpp", "api", "drain", "logging")
T = TypeVar("T")


# -- the subprocess ----------------------------------------------------------------------------


def toml_config(config: GatewayConfig) -> str:
    """``config`` as TOML for ``pygasi run``: the scalar and list keys of :data:`SECTIONS`
    (sub-tables such as [sip.account] and [inbound.rooms] keep their defaults)."""
    lines: list[str] = []
    for section in SECTIONS:
        values = getattr(config, section)
        lines.append(f"[{section}]")
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if dataclasses.is_dataclass(value) or isinstance(value, dict):
                continue
            lines.append(f"{f.name} = {_toml(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what a test config holds
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def child_environment() -> dict[str, str]:
    """Our environment without configuration overrides (PYGASI_SECTION__KEY), a systemd
    notify socket or an allocator choice, and with unbuffered output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("PYGASI_") or k.upper() == "PYGASI_LIBOPUS"
    }
    env.pop("NOTIFY_SOCKET", None)
    env.pop("PYTHONMALLOC", None)  # pygasi run chooses ([runtime] allocator)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class PygasiProcess:
    """A ``pygasi`` subprocess whose stdout and stderr are read into :attr:`output`."""

    def __init__(self, process: asyncio.subprocess.Process, api_port: int = 0) -> None:
        self.process = process
        self.api_port = api_port
        self.output: list[str] = []
        self._readers = [
            asyncio.ensure_future(self._read(stream))
            for stream in (process.stdout, process.stderr)
            if stream is not None
        ]

    @classmethod
    async def start(cls, *args: str, api_port: int = 0) -> PygasiProcess:
        process = await asyncio.create_subprocess_exec(
            str(PYGASI),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(),
            start_new_session=True,
        )
        return cls(process, api_port)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.output.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.output)

    @property
    def pid(self) -> int:
        return self.process.pid

    def environment(self) -> list[str]:
        """The process's environment as the kernel keeps it (what its last exec was given)."""
        return Path(f"/proc/{self.pid}/environ").read_bytes().decode().split("\0")

    async def kill(self) -> None:
        """SIGKILL to the process group (if anything is left of it), then reap."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers), 5.0)
        for reader in self._readers:
            reader.cancel()

    async def wait_exit(self, timeout: float) -> int:
        """The exit status, once the process has ended by itself."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"pygasi still running after {timeout} s:\n{self.log}") from None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers), 5.0)
        return code

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the log says ``pygasi … ready`` (the API is then listening)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while re.search(r"pygasi \S+ ready", self.log) is None:
            if self.process.returncode is not None:
                raise AssertionError(f"pygasi exited ({self.process.returncode}):\n{self.log}")
            if loop.time() > deadline:
                raise AssertionError(f"pygasi not ready after {timeout} s:\n{self.log}")
            await asyncio.sleep(0.05)

    async def request(self, method: str, path: str) -> Answer:
        url = f"http://127.0.0.1:{self.api_port}{path}"
        timeout = aiohttp.ClientTimeout(total=5.0)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, url) as response,
        ):
            return Answer(response.status, dict(response.headers), await response.text())

    async def get(self, path: str) -> Answer:
        return await self.request("GET", path)

    async def stats(self) -> dict[str, Any]:
        answer = await self.get("/about/stats")
        assert answer.status == 200, answer.text
        stats: dict[str, Any] = answer.json()
        return stats

    async def metrics(self) -> str:
        answer = await self.get("/metrics")
        assert answer.status == 200, answer.text
        return answer.text


@contextlib.asynccontextmanager
async def pygasi_run(
    directory: Path, config: GatewayConfig, *, ready: bool = True
) -> AsyncIterator[PygasiProcess]:
    """``pygasi run`` with ``config`` (its API on a free loopback port); killed on the way out
    whatever happened."""
    api_port = free_port(socket.SOCK_STREAM)
    config.api.listen = f"127.0.0.1:{api_port}"
    config.logging.level = "info"
    path = directory / "pygasi.toml"
    path.write_text(toml_config(config))
    daemon = await PygasiProcess.start("run", "--config", str(path), api_port=api_port)
    try:
        if ready:
            await daemon.wait_ready()
        yield daemon
    finally:
        await daemon.kill()


async def pygasi_once(*args: str, timeout: float = 30.0) -> tuple[int, str]:
    """Run a ``pygasi`` command to its end: (exit status, stdout + stderr)."""
    command = await PygasiProcess.start(*args)
    try:
        code = await command.wait_exit(timeout)
    finally:
        await command.kill()
    return code, command.log


async def until(
    fetch: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    what: str,
    daemon: PygasiProcess,
    timeout: float = 15.0,
) -> T:
    """Poll ``fetch`` until ``ok`` holds for what it returned; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await fetch()
        if ok(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(
                f"{what}: not reached in {timeout} s (last {value!r}):\n{daemon.log}"
            )
        await asyncio.sleep(0.1)


# -- SIP and the sandbox -----------------------------------------------------------------------


def sipp(
    config: GatewayConfig,
    scenario: str,
    *,
    phone: RtpPhone | None = None,
    duration_ms: int = 4000,
    caller: str = "+15551234567",
    timeout: float = 40.0,
) -> asyncio.Task[SippResult]:
    """A SIPp dial-in scenario (tests/gateway/scenarios) to ``ROOM`` at the gateway's SIP
    address, in a task (the keys `tests.gateway.harness.sipp_call` passes)."""
    key_args = phone_keys(room=ROOM, phone=phone, caller=caller)
    return asyncio.ensure_future(
        run_sipp(
            str(SCENARIOS / scenario),
            config.sip.listen,
            args=[*key_args, "-s", "gateway", "-d", str(duration_ms)],
            timeout=timeout,
        )
    )


def final_response(result: SippResult) -> str:
    """The final response SIPp received to its INVITE, in full."""
    for message in result.received():
        line = message.strip().splitlines()[0] if message.strip() else ""
        if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1"):
            return message
    raise AssertionError("no final response:\n" + result.stdout + result.messages)


def metric(text: str, series: str) -> float | None:
    """The value of one series (``name{labels}`` as Prometheus writes it) in an exposition."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def config_for(prosody_server: Prosody, **sections: dict[str, Any]) -> GatewayConfig:
    config = gateway_config(prosody_server, **sections)
    config.inbound.status_linger = 0.5  # leave the room soon after the phone hung up
    config.drain.retry_after = RETRY_AFTER
    return config


async def two_web(sandbox: Sandbox) -> None:
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    await sandbox.add_web(ROOM, "b2b2b2b2", BOB)


async def legs_connected(sandbox: Sandbox, count: int = 1, old: Collection[str] = ()) -> None:
    """Until Jicofo invited ``count`` gateway legs (beyond the ``old`` ones) and their bridge
    endpoints are connected."""

    def connected() -> bool:
        new = [b for nick, b in sandbox.bridges.items() if nick not in old]
        return len(new) == count and all(b.connected.is_set() for b in new)

    await sandbox.wait_for(connected, timeout=15.0)


def in_room(stats: dict[str, Any], calls: int = 1) -> bool:
    """``calls`` phones connected in the sandbox room with its two web participants."""
    return bool(stats["conferences"] == 1 and stats["participants"] == 2 + calls)


# -- health, stats, version, metrics -----------------------------------------------------------

JIGASI_STATS_KEYS = {
    "conferences",
    "participants",
    "stress_level",
    "graceful_shutdown",
    "current_timestamp",
    "conference_sizes",
    "threads",
    "total_participants",
    "total_conference_seconds",
}


async def test_health_stats_metrics_and_version_around_a_call(
    prosody_server: Prosody, sandbox: Sandbox, tmp_path: Path
) -> None:
    await two_web(sandbox)
    config = config_for(prosody_server)
    phone = RtpPhone("PCMU", PHONE, latch=True)
    await phone.open()
    try:
        async with pygasi_run(tmp_path, config) as daemon:
            # Healthy once the XMPP probe reached Prosody.
            health = await until(
                lambda: daemon.get("/about/health"), lambda a: a.status == 200, "healthy", daemon
            )
            body = health.json()
            assert body["sip"] == "listening" and body["xmpp"] == "reachable", body
            assert "reason" not in body
            assert health.headers["Content-Type"].startswith("application/json")
            # [runtime] allocator = "malloc" (the default): started again with it, same PID.
            assert "PYTHONMALLOC=malloc" in daemon.environment()
            assert "asyncio event loop, malloc allocator" in daemon.log

            version = await daemon.get("/about/version")
            assert version.status == 200
            assert version.json()["name"] == "pygasi"
            assert version.json()["version"]

            idle = await daemon.stats()
            assert not JIGASI_STATS_KEYS - idle.keys(), idle
            assert idle["conferences"] == 0 and idle["participants"] == 0
            assert idle["stress_level"] == 0 and idle["graceful_shutdown"] is False
            assert idle["conference_sizes"] == [0] * 22
            assert re.fullmatch(
                r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", idle["current_timestamp"]
            ), idle["current_timestamp"]
            stamp = datetime.strptime(idle["current_timestamp"], "%Y-%m-%d %H:%M:%S.%f")
            assert abs((datetime.now(UTC).replace(tzinfo=None) - stamp).total_seconds()) < 60
            before = await daemon.metrics()
            assert metric(before, 'pygasi_calls_active{direction="inbound"}') == 0.0

            call = sipp(config, "dialin.xml", phone=phone, duration_ms=6000)
            during = await until(daemon.stats, in_room, "phone in the room", daemon)
            # The phone and the two web participants; the focus is not counted.
            assert during["conferences"] == 1 and during["participants"] == 3, during
            assert during["conference_sizes"][2] == 1 and sum(during["conference_sizes"]) == 1
            assert during["stress_level"] == 0.01
            text = await daemon.metrics()
            assert metric(text, 'pygasi_calls_active{direction="inbound"}') == 1.0, text

            # Audio goes through the process both ways.
            await legs_connected(sandbox)
            (bridge,) = sandbox.bridges.values()
            await sandbox.wait_for(lambda: phone.remote is not None)
            mark = phone.mark()
            await asyncio.sleep(2.5)
            assert phone.heard(TONES, since=mark + 25).present == {ALICE, BOB}
            streams = [s for s in bridge.received.values() if len(s.pcm) > 75]
            assert any(
                analyse_mixture(s.audio(50), SAMPLE_RATE, TONES).present == {PHONE} for s in streams
            ), list(bridge.received)

            result = await call
            assert result.successful_calls == 1, result.stdout + daemon.log
            after = await until(
                daemon.metrics,
                lambda t: (
                    metric(t, 'pygasi_calls_total{direction="inbound",result="completed"}') == 1.0
                ),
                "call counted as completed",
                daemon,
            )
            assert metric(after, 'pygasi_calls_active{direction="inbound"}') == 0.0
            assert metric(after, "pygasi_call_setup_seconds_count") == 1.0
            assert after.startswith("# HELP ") or "\n# HELP " in after
            done = await daemon.stats()
            assert done["conferences"] == 0 and done["participants"] == 0, done
            assert done["total_participants"] == 1 and done["total_conference_seconds"] >= 4

            # Every answer carries the CORS header, errors too.
            for method, path in (
                ("GET", "/about/health"),
                ("GET", "/about/stats"),
                ("GET", "/about/version"),
                ("GET", "/metrics"),
                ("GET", "/about/shutdown"),
                ("GET", "/no/such/path"),
            ):
                answer = await daemon.request(method, path)
                assert answer.headers.get("Access-Control-Allow-Origin") == "*", (path, answer)
            assert (await daemon.get("/about/shutdown")).status == 405
            assert (await daemon.get("/no/such/path")).status == 404
            assert daemon.process.returncode is None, daemon.log
    finally:
        await phone.close()


async def test_health_names_an_unreachable_xmpp_server(
    prosody_server: Prosody, tmp_path: Path
) -> None:
    config = config_for(prosody_server)
    closed = free_port(socket.SOCK_STREAM)  # nothing listens there
    config.xmpp.server = f"127.0.0.1:{closed}"
    async with pygasi_run(tmp_path, config) as daemon:
        health = await until(
            lambda: daemon.get("/about/health"),
            lambda a: a.status == 503 and "not probed yet" not in a.text,
            "XMPP probe failed",
            daemon,
        )
        body = health.json()
        assert body["sip"] == "listening" and body["xmpp"] == "unreachable", body
        assert f"XMPP server 127.0.0.1:{closed}" in body["reason"], body
        assert health.headers.get("Access-Control-Allow-Origin") == "*"
        assert f"XMPP server 127.0.0.1:{closed} unreachable" in daemon.log
        # The API itself works: stats answer.
        assert (await daemon.stats())["conferences"] == 0


# -- graceful drain ----------------------------------------------------------------------------


async def drain_while_a_call_goes_on(
    daemon: PygasiProcess,
    sandbox: Sandbox,
    config: GatewayConfig,
    first: asyncio.Task[SippResult],
    start_drain: Callable[[], Awaitable[None]],
) -> None:
    """With ``first`` connected: drain, check health and a refused second call, let ``first``
    finish, and expect the process to exit 0 by itself."""
    await until(daemon.stats, in_room, "first call in the room", daemon)
    await legs_connected(sandbox)
    await start_drain()
    health = await until(
        lambda: daemon.get("/about/health"), lambda a: a.status == 503, "unhealthy", daemon
    )
    assert health.json()["reason"] == "draining", health.text
    stats = await daemon.stats()
    assert stats["graceful_shutdown"] is True and stats["conferences"] == 1, stats

    second = await sipp(config, "dialin_refused.xml", caller="+15557654321")
    refused = final_response(second)
    assert first_lines([refused]) == ["SIP/2.0 503 Service Unavailable (draining)"], refused
    assert header(refused, "Retry-After") == str(RETRY_AFTER), refused
    assert second.successful_calls == 1, second.stdout

    # The active call went on to its natural end, then the process stopped by itself.
    result = await first
    assert result.successful_calls == 1, result.stdout + result.errors + daemon.log
    assert [m for m in result.received() if m.startswith("BYE ")] == []
    assert await daemon.wait_exit(20.0) == 0, daemon.log
    assert "drained: every call has ended" in daemon.log
    assert "pygasi stopped (exit status 0)" in daemon.log


async def test_post_shutdown_drains_then_exits_0(
    prosody_server: Prosody, sandbox: Sandbox, tmp_path: Path
) -> None:
    await two_web(sandbox)
    config = config_for(prosody_server)
    async with pygasi_run(tmp_path, config) as daemon:
        first = sipp(config, "dialin.xml", duration_ms=8000)

        async def post_shutdown() -> None:
            answer = await daemon.request("POST", "/about/shutdown")
            assert answer.status == 200, answer.text
            assert answer.headers.get("Access-Control-Allow-Origin") == "*"
            # Asked again while draining: still 200, the drain goes on.
            assert (await daemon.request("POST", "/about/shutdown")).status == 200

        await drain_while_a_call_goes_on(daemon, sandbox, config, first, post_shutdown)
        assert "graceful shutdown requested over the API" in daemon.log


async def test_sigterm_drains_then_exits_0(
    prosody_server: Prosody, sandbox: Sandbox, tmp_path: Path
) -> None:
    await two_web(sandbox)
    config = config_for(prosody_server)
    async with pygasi_run(tmp_path, config) as daemon:
        first = sipp(config, "dialin.xml", duration_ms=5000)

        async def sigterm() -> None:
            daemon.process.send_signal(signal.SIGTERM)

        await drain_while_a_call_goes_on(daemon, sandbox, config, first, sigterm)
        assert "SIGTERM: draining" in daemon.log


async def test_second_sigint_stops_at_once_and_hangs_up(
    prosody_server: Prosody, sandbox: Sandbox, tmp_path: Path
) -> None:
    await two_web(sandbox)
    config = config_for(prosody_server)
    async with pygasi_run(tmp_path, config) as daemon:
        call = sipp(config, "dialin_wait_bye.xml")
        await until(daemon.stats, in_room, "call in the room", daemon)
        await legs_connected(sandbox)
        daemon.process.send_signal(signal.SIGINT)
        await until(
            lambda: daemon.get("/about/health"), lambda a: a.status == 503, "draining", daemon
        )
        assert (await daemon.stats())["conferences"] == 1  # the call goes on
        daemon.process.send_signal(signal.SIGINT)
        assert await daemon.wait_exit(15.0) == 0, daemon.log
        result = await call
    assert result.successful_calls == 1, result.stdout + result.errors
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    reason = header(bye, "Reason")
    assert reason is not None and "Gateway shutting down" in reason, bye
    assert "second SIGINT: stopping now" in daemon.log


# -- configuration errors and start failures ---------------------------------------------------


async def test_check_config_accepts_the_example() -> None:
    code, output = await pygasi_once("check-config", "--config", str(EXAMPLE_CONFIG))
    assert (code, output) == (0, "OK\n")


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("sip", 'listen = "127.0.0.1:99999"', "sip.listen"),
        ("sip", 'listen = "not an address"', "sip.listen"),
        ("inbound", 'alowed_sources = ["10.0.0.0/8"]', "alowed_sources"),
        ("drain", 'retry_after = "soon"', "drain.retry_after"),
    ],
)
async def test_a_bad_config_exits_2_naming_the_key(
    tmp_path: Path, section: str, line: str, key: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(f"[{section}]\n{line}\n")
    for command in ("check-config", "run"):
        code, output = await pygasi_once(command, "--config", str(bad))
        assert code == 2, (command, output)
        assert key in output, (command, output)
        assert "Traceback" not in output, output
    if key == "alowed_sources":
        assert "allowed_sources" in output  # the suggestion


async def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    for command in ("check-config", "run"):
        code, output = await pygasi_once(command, "--config", str(missing))
        assert code == 2, (command, output)
        assert str(missing) in output, output


async def test_sip_port_in_use_exits_1_saying_it_cannot_listen(
    prosody_server: Prosody, tmp_path: Path
) -> None:
    config = config_for(prosody_server)
    host, port = config.sip.listen.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((host, int(port)))
        async with pygasi_run(tmp_path, config, ready=False) as daemon:
            code = await daemon.wait_exit(30.0)
    assert code == 1, daemon.log
    assert f"cannot listen for SIP on {config.sip.listen}" in daemon.log, daemon.log
    assert "Traceback" not in daemon.log, daemon.log


async def test_api_port_in_use_exits_1(prosody_server: Prosody, tmp_path: Path) -> None:
    config = config_for(prosody_server)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api_port = int(taken.getsockname()[1])
        path = tmp_path / "pygasi.toml"
        config.api.listen = f"127.0.0.1:{api_port}"
        path.write_text(toml_config(config))
        daemon = await PygasiProcess.start("run", "--config", str(path))
        try:
            code = await daemon.wait_exit(30.0)
        finally:
            await daemon.kill()
    assert code == 1, daemon.log
    assert f"cannot start the HTTP API on 127.0.0.1:{api_port}" in daemon.log, daemon.log


# -- threads ------------------------------------------------------------------------------------


async def test_no_thread_growth_across_calls(
    prosody_server: Prosody, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Jigasi's thread leaks are its most reported bug (design.md, Concurrency): after a
    warm-up call, two more calls at once leave the thread count where it was."""
    await two_web(sandbox)
    config = config_for(prosody_server)
    async with pygasi_run(tmp_path, config) as daemon:
        warm_up = await sipp(config, "dialin.xml", duration_ms=1500)
        assert warm_up.successful_calls == 1, warm_up.stdout + daemon.log
        idle = await until(daemon.stats, lambda s: s["calls"] == 0, "warm-up call gone", daemon)
        before = idle["threads"]
        old = set(sandbox.bridges)

        calls = [
            sipp(config, "dialin.xml", duration_ms=3000, caller=f"+1555000000{i}") for i in (1, 2)
        ]
        busy = await until(
            daemon.stats, lambda s: in_room(s, calls=2), "both calls in the room", daemon
        )
        assert busy["calls"] == 2
        await legs_connected(sandbox, 2, old)
        results = await asyncio.gather(*calls)
        for result in results:
            assert result.successful_calls == 1, result.stdout + daemon.log
        after = await until(daemon.stats, lambda s: s["calls"] == 0, "calls gone", daemon)
        assert after["total_calls"] == 3 and after["total_calls_completed"] == 3, after
        assert busy["threads"] == before, (before, busy)  # no thread per call
        assert after["threads"] == before, (before, after, busy["threads"])
