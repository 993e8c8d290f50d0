"""Several pygasi workers behind Kamailio's dispatcher (config/kamailio-dispatcher.cfg, as the
README tells operators to run it): the calls of one room land on one worker, so its mixer
decodes the room's participants once; a draining worker answers the dispatcher's OPTIONS with
503 and new calls go to the other while its own call goes on."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.call import InboundCall
from tests.gateway.harness import SCENARIOS, phone_keys, running_gateway
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.kamailio import Kamailio
from tests.peers import SippResult, free_port, run_sipp
from tests.xmpp.prosody import Prosody

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "config" / "kamailio-dispatcher.cfg"
ROOMS = [f"standup{i}" for i in range(6)]

pytestmark = [pytest.mark.prosody, pytest.mark.sipp, pytest.mark.kamailio, pytest.mark.slow]


def call_through(
    kamailio: Kamailio, room: str, caller: str, duration_ms: int
) -> asyncio.Task[SippResult]:
    keys = phone_keys(room=room, caller=caller)
    return asyncio.ensure_future(
        run_sipp(
            str(SCENARIOS / "dialin.xml"),
            kamailio.address(),
            args=[*keys, "-s", "gateway", "-d", str(duration_ms)],
            timeout=60.0,
        )
    )


def rooms_on(gateway: Gateway) -> set[str]:
    return {c.room.jid.split("@")[0] for c in gateway.calls.values() if isinstance(c, InboundCall)}


async def options_status(port: int) -> str:
    """The status line a worker answers an out-of-dialog OPTIONS with."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    local = sock.getsockname()[1]
    request = (
        f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-probe{local}\r\n"
        f"From: <sip:probe@127.0.0.1>;tag=p{local}\r\n"
        f"To: <sip:127.0.0.1:{port}>\r\n"
        f"Call-ID: probe-{local}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        await loop.sock_sendto(sock, request.encode(), ("127.0.0.1", port))
        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 3.0)
        return data.decode().split("\r\n", 1)[0]
    finally:
        sock.close()


async def test_calls_of_a_room_land_on_one_worker_and_a_draining_worker_gets_none(
    prosody_server: Prosody,
) -> None:
    async with Sandbox(prosody_server, min_participants=2) as sandbox:
        for i, room in enumerate(ROOMS):
            await sandbox.add_web(room, f"web{i:05d}", 400.0 + 50 * i)
        config_a, config_b = gateway_config(prosody_server), gateway_config(prosody_server)
        async with running_gateway(config_a) as a, running_gateway(config_b) as b:
            workdir = Path(tempfile.mkdtemp(prefix="pygasi-workers-"))
            workers = workdir / "workers.list"
            workers.write_text(
                "".join(f"1 sip:{g.config.sip.listen}\n" for g in (a, b)), encoding="ascii"
            )
            kamailio = Kamailio(
                workdir,
                template=TEMPLATE,
                defines={"DISPATCHER_LIST": f'"{workers}"', "PING_INTERVAL": 1},
                port=free_port(),
            )
            async with kamailio:
                # Two calls per room at once.
                seen: dict[str, set[str]] = {"a": set(), "b": set()}
                calls = [
                    call_through(kamailio, room, f"+1555000{i}{k}", 5000)
                    for i, room in enumerate(ROOMS)
                    for k in range(2)
                ]
                while not all(c.done() for c in calls):
                    seen["a"] |= rooms_on(a)
                    seen["b"] |= rooms_on(b)
                    await asyncio.sleep(0.1)
                results = [c.result() for c in calls]
                assert [r.successful_calls for r in results] == [1] * len(calls)
                assert seen["a"] | seen["b"] == set(ROOMS)
                assert not seen["a"] & seen["b"], seen  # no room on both workers
                assert seen["a"] and seen["b"], seen  # and both work
                assert a.totals.calls + b.totals.calls == len(calls)
                for gateway, rooms in ((a, seen["a"]), (b, seen["b"])):
                    assert gateway.totals.calls == 2 * len(rooms)  # both calls of each room

                # Worker a drains during a call of one of its rooms.
                room = sorted(seen["a"])[0]
                answered = a.totals.calls_completed
                await asyncio.sleep(6.0)  # the first calls have left their rooms
                started = a.totals.calls
                long_call = call_through(kamailio, room, "+15550100", 9000)
                while a.totals.calls == started:
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.5)  # answered
                drain = asyncio.create_task(a.drain(timeout=30))
                port_a = int(config_a.sip.listen.rsplit(":", 1)[1])
                assert (await options_status(port_a)).startswith("SIP/2.0 503")
                # At once, before the dispatcher's probe: the worker's 503 sends the call on
                # to the next worker (failure route); then the probe (every second) marks it
                # inactive and calls go to the other worker directly.
                before = b.totals.calls
                for caller in ("+15550101", "+15550102"):
                    late = await call_through(kamailio, room, caller, 1000)
                    assert late.successful_calls == 1, late.errors[:2000]
                    await asyncio.sleep(2.5)
                assert b.totals.calls == before + 2  # the room moved to the worker that is up
                assert a.totals.calls == started + 1
                # The drained worker's call went on to its end.
                finished = await long_call
                assert finished.successful_calls == 1, finished.errors[:2500]
                await drain
                assert a.totals.calls_completed > answered
