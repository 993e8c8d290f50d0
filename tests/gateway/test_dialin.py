"""Dial-in end to end (issue #5): SIPp calls the gateway, the gateway joins the sandbox
conference (Prosody + the Jicofo and bridge emulators), and audio is checked by tone in both
directions with an RTP phone using FFmpeg's codecs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.session import Phase
from tests.gateway.harness import (
    first_lines,
    only_call,
    running_gateway,
    sipp_call,
    statuses,
    wait_until,
)
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.phone import RtpPhone
from tests.xmpp.prosody import Prosody, prosody

pytestmark = [pytest.mark.prosody, pytest.mark.sipp, pytest.mark.slow]

ROOM = "sandbox"
ALICE, BOB = 440.0, 660.0  # the web participants
PHONE = 1000.0
TONES = [ALICE, BOB, PHONE]


@pytest.fixture
async def prosody_server() -> AsyncIterator[Prosody]:
    async with prosody() as server:
        yield server


@pytest.fixture
async def sandbox(prosody_server: Prosody) -> AsyncIterator[Sandbox]:
    # Jicofo invites once three are in: the gateway's leg and two web participants.
    async with Sandbox(prosody_server, min_participants=3) as box:
        yield box


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "opus"])
async def test_call_joins_the_room_with_audio_both_ways(
    prosody_server: Prosody, sandbox: Sandbox, codec: str
) -> None:
    config = gateway_config(prosody_server, inbound={"status_linger": 1.0})
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    phone = RtpPhone(codec, PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin.xml", phone=phone, duration_ms=7000)
        call = await only_call(gateway)
        await wait_until(lambda: call.phase is Phase.WAITING, what="joined the room")
        participant = call.participant
        assert participant is not None
        nick = participant.nick
        room_jid = f"{ROOM}@{prosody_server.muc_domain}"
        assert call.room.jid == room_jid
        # Alone with one web participant: Jicofo does not invite, so the phone is not answered.
        await asyncio.sleep(1.0)
        assert call.flow.answered_at is None
        assert call.call.state.value != "confirmed"
        occupant = sandbox.jicofo.room(ROOM).occupants[nick]
        assert occupant.display_name == "Alice Phone"
        assert occupant.is_gateway
        # The second web participant makes three: session-initiate, then 200 OK.
        await sandbox.add_web(ROOM, "b2b2b2b2", BOB)
        await wait_until(lambda: call.phase is Phase.CONNECTED, what="answered")
        media = call.media
        assert media is not None
        phone.start(("127.0.0.1", media.ports.rtp_port))
        bridge = sandbox.bridges[nick]
        await wait_until(lambda: bridge.connected.is_set(), what="bridge connected")
        mark = phone.mark()
        await asyncio.sleep(3.0)
        # The phone hears both web participants and never itself.
        heard = phone.heard(TONES, since=mark + 25)
        assert heard.present == {ALICE, BOB}, heard
        # The meeting hears the phone, with RFC 6464 levels on our SSRC.
        ssrc = participant.local_ssrc
        assert bridge.heard(ssrc, TONES, skip_frames=50).present == {PHONE}
        levels = [lv for lv in bridge.received[ssrc].levels[50:] if lv is not None]
        assert levels and min(lv.level for lv in levels) < 40
        assert "Connected" in statuses(sandbox, room_jid, nick)
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    lines = first_lines(result.received())
    assert lines.index("SIP/2.0 180 Ringing") < next(
        i for i, line in enumerate(lines) if line.startswith("SIP/2.0 200")
    )
    # The phone hung up: our status says why, then we leave the room.
    texts = statuses(sandbox, room_jid, nick)
    assert texts[0] == "Initializing Call"
    assert texts[-1] == "Hung up"
    assert nick not in sandbox.jicofo.room(ROOM).occupants
    await phone.close()
