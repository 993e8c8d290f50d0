"""Dial-out end to end (issue #6): the Jicofo emulator relays a Rayo dial through the brewery
to the gateway, which joins the room first, answers with its occupant's ``ref``, and calls the
number when the focus invites it; SIPp plays the callee, audio is checked by tone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.dialout import OutboundCall
from gateway.session import Phase, Result
from tests.gateway.harness import (
    SCENARIOS,
    first_lines,
    header,
    phone_keys,
    running_gateway,
    statuses,
    wait_until,
)
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.peers import SippResult, free_port, run_sipp
from tests.phone import RtpPhone
from tests.xmpp.prosody import Prosody
from xmpp.rayo import parse_ref

pytestmark = [pytest.mark.prosody, pytest.mark.sipp, pytest.mark.slow]

ROOM = "sandbox"
ALICE, BOB, PHONE = 440.0, 660.0, 1000.0
TONES = [ALICE, BOB, PHONE]


def dialout_config(prosody: Prosody, **sections: dict[str, Any]) -> GatewayConfig:
    return gateway_config(
        prosody,
        brewery={
            "room": f"JigasiBrewery@{prosody.internal_muc_domain}",
            "username": f"jigasi@{prosody.auth_domain}",
            "password": prosody.password("jigasi"),
        },
        inbound={"status_linger": 1.0},
        **sections,
    )


def callee(
    scenario: str, phone: RtpPhone | None, *, ring_ms: int = 1000
) -> tuple[int, asyncio.Task[SippResult]]:
    """SIPp as the called phone (a UAS on a free port), with the test phone's RTP port."""
    port = free_port()
    keys = phone_keys(phone=phone)
    task = asyncio.ensure_future(
        run_sipp(
            str(SCENARIOS / scenario),
            "127.0.0.1:9",
            args=[*keys, "-d", str(ring_ms)],
            local_port=port,
            timeout=60,
        )
    )
    return port, task


async def ready(sandbox: Sandbox, gateway: Gateway) -> None:
    await sandbox.jicofo.join_brewery()
    brewery = gateway.brewery
    assert brewery is not None
    await wait_until(lambda: brewery.joined, what="brewery joined")
    await wait_until(lambda: len(sandbox.jicofo.brewery_instances) >= 1, what="stats seen")


async def two_web(sandbox: Sandbox) -> None:
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    await sandbox.add_web(ROOM, "b2b2b2b2", BOB)


def only_outbound(gateway: Gateway) -> OutboundCall:
    (call,) = gateway.calls.values()
    assert isinstance(call, OutboundCall)
    return call


async def test_dial_out_joins_first_then_calls_with_audio_both_ways(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(dialout_config(prosody_server)) as gateway:
        await ready(sandbox, gateway)
        port, sipp = callee("callee_answer.xml", phone, ring_ms=1500)
        await asyncio.sleep(0.3)  # SIPp listening
        destination = f"sip:+15550100@127.0.0.1:{port}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await sandbox.jicofo.dial(ROOM, destination, headers=[("X-Customer", "acme")])
        assert loop.time() - started < 10.0  # before Jicofo's 15 s
        call = only_outbound(gateway)
        participant = call.participant
        assert participant is not None
        room_jid = f"{ROOM}@{prosody_server.muc_domain}"
        assert parse_ref(answer) == f"xmpp:{room_jid}/{participant.nick}"
        occupant = sandbox.jicofo.room(ROOM).occupants[participant.nick]
        assert occupant.display_name == destination and occupant.is_gateway
        await wait_until(lambda: call.phase is Phase.CONNECTED, what="the callee answered")
        media = call.media
        assert media is not None
        phone.start(("127.0.0.1", media.ports.rtp_port))
        nick = participant.nick
        await wait_until(lambda: sandbox.bridges[nick].connected.is_set(), what="bridge")
        mark = phone.mark()
        await asyncio.sleep(2.5)
        assert phone.heard(TONES, since=mark + 25).present == {ALICE, BOB}
        bridge = sandbox.bridges[nick]
        assert bridge.heard(participant.local_ssrc, TONES, skip_frames=50).present == {PHONE}
        assert statuses(sandbox, room_jid, nick)[:4] == [
            "Initializing Call",
            "calling",
            "Ringing",
            "Connected",
        ]
        # A web participant hangs up with Rayo: BYE, and we leave the room.
        hangup = await sandbox.jicofo.rayo_hangup("a1a1a1a1", parse_ref(answer))
        assert hangup["type"] == "result"
        result = await sipp
        assert await asyncio.wait_for(call.wait_finished(), 5.0) is Result.COMPLETED
        await wait_until(lambda: nick not in sandbox.jicofo.room(ROOM).occupants, what="left")
    assert result.successful_calls == 1, result.stdout + result.errors
    invite = result.received()[0]
    assert first_lines([invite]) == [f"INVITE {destination} SIP/2.0"]
    assert header(invite, "X-Room-Name") == room_jid
    assert header(invite, "JigasiCallDirection") == "out"
    assert header(invite, "X-Customer") == "acme"
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    assert header(bye, "Reason") == 'SIP;cause=200;text="Hung up from the meeting"'
    await phone.close()


async def test_busy_callee_shows_the_reason_then_leaves(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    async with running_gateway(dialout_config(prosody_server)) as gateway:
        await ready(sandbox, gateway)
        port, sipp = callee("callee_busy.xml", None)
        await asyncio.sleep(0.3)
        answer = await sandbox.jicofo.dial(ROOM, f"sip:+15550100@127.0.0.1:{port}")
        assert parse_ref(answer).startswith("xmpp:")  # a ref, never an error, for a live call
        call = only_outbound(gateway)
        assert call.participant is not None
        nick = call.participant.nick
        assert await asyncio.wait_for(call.wait_finished(), 10.0) is Result.REJECTED
        result = await sipp
        room_jid = f"{ROOM}@{prosody_server.muc_domain}"
        assert statuses(sandbox, room_jid, nick)[-1] == "Busy Here"
        await wait_until(lambda: nick not in sandbox.jicofo.room(ROOM).occupants, what="left")
    assert result.successful_calls == 1, result.stdout + result.errors


async def test_ring_timeout_cancels(prosody_server: Prosody, sandbox: Sandbox) -> None:
    await two_web(sandbox)
    config = dialout_config(prosody_server, sip__account={"ring_timeout": 2.0})
    async with running_gateway(config) as gateway:
        await ready(sandbox, gateway)
        port, sipp = callee("callee_no_answer.xml", None)
        await asyncio.sleep(0.3)
        await sandbox.jicofo.dial(ROOM, f"sip:+15550100@127.0.0.1:{port}")
        call = only_outbound(gateway)
        assert await asyncio.wait_for(call.wait_finished(), 10.0) is Result.TIMEOUT
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    (cancel,) = [m for m in result.received() if m.startswith("CANCEL ")]
    assert header(cancel, "Reason") == 'SIP;cause=408;text="No answer"'


async def test_bad_destinations_get_a_clear_error_and_leave_nothing(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    async with running_gateway(dialout_config(prosody_server)) as gateway:
        await ready(sandbox, gateway)
        # No trunk is configured: a bare number has nowhere to go; a mangled one is refused.
        for to, words in (
            ("+15550100", "no SIP trunk configured"),
            ("alice@example.org", "neither a phone number nor a SIP address"),
        ):
            with pytest.raises(Exception) as refused:
                await sandbox.jicofo.dial(ROOM, to)
            text = str(refused.value)
            assert "bad-request" in text and words in text, text
        assert not gateway.calls


async def test_two_instances_jicofo_picks_the_less_busy_and_skips_a_draining_one(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with (
        running_gateway(dialout_config(prosody_server)) as first,
        running_gateway(dialout_config(prosody_server)) as second,
    ):
        await sandbox.jicofo.join_brewery()
        for gateway in (first, second):
            brewery = gateway.brewery
            assert brewery is not None
            await wait_until(lambda b=brewery: b.joined, what="brewery joined")
        await wait_until(lambda: len(sandbox.jicofo.brewery_instances) == 2, what="both seen")
        port, sipp = callee("callee_answer.xml", phone, ring_ms=300)
        await asyncio.sleep(0.3)
        await sandbox.jicofo.dial(ROOM, f"sip:+15550100@127.0.0.1:{port}")
        busy, idle = (first, second) if first.calls else (second, first)
        assert len(busy.calls) == 1 and not idle.calls
        # The busy one publishes its participants; the next dial goes to the other.
        await wait_until(
            lambda: any(s.participants > 0 for s in sandbox.jicofo.brewery_instances.values()),
            what="stats updated",
        )
        # The next dial goes to the other, which then holds a call in a quiet room (no web
        # participant there: it waits for an invite that does not come).
        await sandbox.jicofo.dial("quiet", "sip:+15550101@127.0.0.1:9")
        assert len(idle.calls) == 1
        await wait_until(
            lambda: (
                sorted(s.participants for s in sandbox.jicofo.brewery_instances.values()) == [1, 3]
            ),
            what="stats: 1 participant there, 3 here",
        )
        # It drains: graceful_shutdown in its stats, and though it is the less busy one,
        # Jicofo does not pick it any more.
        drain = asyncio.ensure_future(idle.drain(timeout=30.0))
        await wait_until(
            lambda: any(s.graceful_shutdown for s in sandbox.jicofo.brewery_instances.values()),
            what="graceful shutdown published",
        )
        port3, sipp3 = callee("callee_busy.xml", None)
        await asyncio.sleep(0.3)
        await sandbox.jicofo.dial(ROOM, f"sip:+15550102@127.0.0.1:{port3}")
        assert len(busy.calls) == 2
        await sipp3
        for gateway in (idle, busy):
            for call in list(gateway.calls.values()):
                assert isinstance(call, OutboundCall)
                call.hangup_requested("test")
        await drain
        results = await asyncio.gather(sipp)
    assert results[0].successful_calls == 1
    await phone.close()
