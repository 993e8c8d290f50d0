"""Dial-in end to end (issue #5): SIPp calls the gateway, the gateway joins the sandbox
conference (Prosody + the Jicofo and bridge emulators), and audio is checked by tone in both
directions with an RTP phone using FFmpeg's codecs."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from gateway.app import Gateway
from gateway.call import InboundCall
from gateway.session import Phase, Result
from media.frame import SAMPLE_RATE
from media.tones import analyse_mixture
from tests.gateway.harness import (
    first_lines,
    header,
    json_bodies,
    only_call,
    running_gateway,
    sipp_call,
    statuses,
    wait_until,
)
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.peers import SippResult
from tests.phone import RtpPhone
from tests.xmpp.prosody import Prosody
from xmpp.media_transport import ConferenceMediaTransport

pytestmark = [pytest.mark.prosody, pytest.mark.sipp, pytest.mark.slow]

ROOM = "sandbox"
ALICE, BOB = 440.0, 660.0  # the web participants
PHONE = 1000.0
TONES = [ALICE, BOB, PHONE]


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
        assert call.sip.state.value != "confirmed"
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


# -- helpers for the tests below ---------------------------------------------------------------


async def connected_call(
    prosody_server: Prosody, sandbox: Sandbox, gateway: Gateway, phone: RtpPhone
) -> tuple[InboundCall, str]:
    """Wait for the call SIPp placed to be answered with the room's two web participants in;
    start the phone's RTP; return the call and its nick."""
    call = await only_call(gateway)
    await wait_until(lambda: call.phase is Phase.CONNECTED, what="answered")
    assert call.media is not None and call.participant is not None
    phone.start(("127.0.0.1", call.media.ports.rtp_port))
    nick = call.participant.nick
    await wait_until(
        lambda: nick in sandbox.bridges and sandbox.bridges[nick].connected.is_set(),
        what="bridge connected",
    )
    return call, nick


async def two_web(sandbox: Sandbox) -> None:
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    await sandbox.add_web(ROOM, "b2b2b2b2", BOB)


def phone_heard_by_bridge(sandbox: Sandbox, call: InboundCall, since: int) -> frozenset[float]:
    """The tones the bridge decoded from the leg's stream after frame ``since``."""
    participant = call.participant
    assert participant is not None
    stream = sandbox.bridges[participant.nick].received.get(participant.local_ssrc)
    if stream is None or len(stream.pcm) <= since:
        return frozenset()
    return analyse_mixture(stream.audio(since), SAMPLE_RATE, TONES).present


def bridge_frames(sandbox: Sandbox, call: InboundCall) -> int:
    participant = call.participant
    assert participant is not None
    stream = sandbox.bridges[participant.nick].received.get(participant.local_ssrc)
    return 0 if stream is None else len(stream.pcm)


def final_status(result: SippResult) -> str:
    """The final response SIPp received to its INVITE."""
    for line in first_lines(result.received()):
        if line.startswith("SIP/2.0 ") and not line.startswith(("SIP/2.0 1",)):
            return line.removeprefix("SIP/2.0 ")
    raise AssertionError("no final response:\n" + result.messages)


async def test_phone_band_uplink_reaches_the_meeting(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """[media] opus_bandwidth = "phone": a G.711 phone's voice goes to the bridge as narrowband
    Opus (the TOC byte, RFC 6716 §3.1) and the meeting still hears its tone."""
    config = gateway_config(prosody_server, media={"opus_bandwidth": "phone"})
    await two_web(sandbox)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin.xml", phone=phone, duration_ms=5000)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        mark = phone.mark()
        await asyncio.sleep(3.0)
        participant = call.participant
        assert participant is not None
        bridge = sandbox.bridges[nick]
        assert bridge.heard(participant.local_ssrc, TONES, skip_frames=50).present == {PHONE}
        tocs = bridge.received[participant.local_ssrc].tocs[50:]
        # Configs 0-3 are SILK narrowband, 16-19 CELT narrowband.
        assert tocs and {toc >> 3 for toc in tocs} <= {0, 1, 2, 3, 16, 17, 18, 19}, tocs[:10]
        assert phone.heard(TONES, since=mark + 25).present == {ALICE, BOB}
        await sipp
    await phone.close()


# -- rooms -------------------------------------------------------------------------------------


async def test_password_room_and_lower_case_jigasi_header_names(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await sandbox.jicofo.prepare_room(ROOM, password="s3cret")
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMA", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        # Jigasi's header names, written in lower case by the trunk.
        sipp = sipp_call(
            gateway,
            "dialin.xml",
            phone=phone,
            room_header="jitsi-conference-room",
            extra=("jitsi-conference-room-pass", "s3cret"),
            duration_ms=4000,
        )
        call, _ = await connected_call(prosody_server, sandbox, gateway, phone)
        assert call.room.password == "s3cret"
        assert call.room.source == "header"
        ended = weakref.ref(call)
        del call
        mark = phone.mark()
        gateway.idle_release_delay = 0.5
        gateway.late_release_delay = 2.0
        await asyncio.sleep(2.0)
        assert phone.heard(TONES, since=mark + 20).present == {ALICE, BOB}
        assert gateway.memory_releases == 0  # never while a call is in progress
        result = await sipp
        # Idle: freed memory goes back to the kernel (gateway.memory), then once more when the
        # ended call's timers have let go of it; no more after that.
        await wait_until(lambda: gateway.memory_releases == 1, 10.0, "memory released")
        # Nothing holds the ended call any more (its XMPP client's pending IQ timers were
        # settled when it closed): the first release's collection freed it.
        assert ended() is None, gc.get_referrers(ended())
        await wait_until(lambda: gateway.memory_releases == 2, 5.0, "memory released again")
        await asyncio.sleep(2.0)
        assert gateway.memory_releases == 2
    assert result.successful_calls == 1, result.stdout
    await phone.close()


async def test_wrong_password_and_missing_room_are_refused_with_the_reason(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await sandbox.jicofo.prepare_room(ROOM, password="s3cret")
    config = gateway_config(prosody_server)
    async with running_gateway(config) as gateway:
        wrong = await sipp_call(gateway, "dialin_refused.xml", extra=("X-Room-Pass", "guess"))
        assert final_status(wrong) == "486 Wrong room password"
        missing = await sipp_call(gateway, "dialin_refused.xml", room=None)
        status = final_status(missing)
        assert status.startswith("486 Busy Here (no room: no X-Room-Name or ")
        (response,) = [m for m in missing.received() if m.startswith("SIP/2.0 486")]
        warning = header(response, "Warning")
        assert warning is not None and warning.startswith('399 pygasi "no room')
        assert gateway.totals.calls_refused == 1
    assert wrong.successful_calls == 1 and missing.successful_calls == 1


async def test_lobby_and_full_rooms_are_refused_with_the_reason(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """The test Prosody answers joins of "lobbyroom1" as a lobby-enabled room does and of
    "fullroom" as a full one (tests/xmpp/prosody.py)."""
    config = gateway_config(prosody_server)
    async with running_gateway(config) as gateway:
        lobby = await sipp_call(gateway, "dialin_refused.xml", room="lobbyroom1")
        full = await sipp_call(gateway, "dialin_refused.xml", room="fullroom")
    assert final_status(lobby) == "486 Lobby enabled on the room (not supported yet)"
    assert final_status(full) == "486 The room is full"


async def test_a_did_in_inbound_rooms_reaches_its_room_without_a_header(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server, inbound={"rooms": {"+1 (555) 010-0000": ROOM}})
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(
            gateway, "dialin.xml", phone=phone, room=None, service="15550100000", duration_ms=3000
        )
        call, _ = await connected_call(prosody_server, sandbox, gateway, phone)
        assert call.room.jid == f"{ROOM}@{prosody_server.muc_domain}"
        assert call.room.source == "number"
        result = await sipp
    assert result.successful_calls == 1, result.stdout
    await phone.close()


# -- waiting and hanging up --------------------------------------------------------------------


async def test_invite_timeout_408_unanswered_and_bye_with_reason_when_answered(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """Alone in the room, nobody invites us: an unanswered call gets 408; one answered
    to wait (answer_alone_after) gets a BYE with Reason SIP;cause=408."""
    config = gateway_config(
        prosody_server, inbound={"invite_timeout": 2.0, "answer_alone_after": 0.0}
    )
    async with running_gateway(config) as gateway:
        result = await sipp_call(gateway, "dialin_refused.xml")
        assert final_status(result) == "408 No invite from conference focus"
    config = gateway_config(
        prosody_server, inbound={"invite_timeout": 3.0, "answer_alone_after": 1.0}
    )
    async with running_gateway(config) as gateway:
        result = await sipp_call(gateway, "dialin_wait_bye.xml")
    assert result.successful_calls == 1, result.stdout
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    assert header(bye, "Reason") == 'SIP;cause=408;text="No invite from conference focus"'


async def test_kick_hangs_up_with_bye(prosody_server: Prosody, sandbox: Sandbox) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_wait_bye.xml", phone=phone)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        await sandbox.jicofo.kick(ROOM, nick, reason="spam")
        result = await sipp
        assert await asyncio.wait_for(call.wait_finished(), 5.0) is Result.COMPLETED
    assert result.successful_calls == 1, result.stdout
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    assert header(bye, "Reason") == 'SIP;cause=403;text="Kicked from the conference: spam"'
    await phone.close()


async def test_session_terminate_then_a_new_invite_keeps_the_call(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server, inbound={"status_linger": 0.5})
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin.xml", phone=phone, duration_ms=12000)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        # Jicofo ends the session (bridge restart, single-participant timeout...).
        await sandbox.jicofo.terminate(ROOM, nick, "success", "bridge restart")
        await wait_until(lambda: call.phase is Phase.ANSWERED_WAITING, what="waiting again")
        assert not call.sip.ended
        # ... and invites again: audio comes back on the same phone call.
        room = sandbox.jicofo.room(ROOM)
        await sandbox.jicofo.invite(room, nick)
        await wait_until(lambda: call.phase is Phase.CONNECTED, what="re-invited")
        await wait_until(lambda: sandbox.bridges[nick].connected.is_set(), what="new bridge")
        mark = phone.mark()
        await asyncio.sleep(2.5)
        assert phone.heard(TONES, since=mark + 25).present == {ALICE, BOB}
        assert phone_heard_by_bridge(sandbox, call, 40) == {PHONE}
        result = await sipp
    assert result.successful_calls == 1, result.stdout
    await phone.close()


# -- SIP INFO and hold -------------------------------------------------------------------------


async def test_info_mute_both_ways(prosody_server: Prosody, sandbox: Sandbox) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_info.xml", phone=phone)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        occupants = sandbox.jicofo.room(ROOM).occupants
        # 1. The phone mutes itself: published, and the meeting no longer hears it.
        await wait_until(lambda: occupants[nick].audio_muted is True, what="published muted")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(1.5)
        # (10 frames for what was in flight when the presence arrived)
        assert PHONE not in phone_heard_by_bridge(sandbox, call, frames + 10)
        # 3. ... and unmutes.
        await wait_until(lambda: occupants[nick].audio_muted is False, what="unmuted")
        await wait_until(lambda: not call.flow.user_muted, what="unmuted locally")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(1.5)
        assert phone_heard_by_bridge(sandbox, call, frames + 10) == {PHONE}
        # 4. A moderator mutes the phone: the IVR is asked, says OK, and we publish muted.
        answer = await sandbox.jicofo.mute(ROOM, nick, True, actor=f"{ROOM}/a1a1a1a1")
        assert answer["type"] == "result"
        await wait_until(lambda: occupants[nick].audio_muted is True, what="moderator mute")
        assert call.flow.user_muted
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    sent_by_gateway = json_bodies(result.received())
    assert sent_by_gateway == [
        {"type": "muteResponse", "id": "phone-1", "status": "OK", "data": {"audio": True}},
        {"type": "muteResponse", "id": "phone-2", "status": "OK", "data": {"audio": False}},
        {"type": "muteRequest", "id": sent_by_gateway[2]["id"], "data": {"audio": True}},
    ]
    # The invalid JSON got a 400 whose reason says why.
    (bad,) = [m for m in result.received() if m.startswith("SIP/2.0 400")]
    assert "JSON" in bad.splitlines()[0]
    await phone.close()


async def test_hold_is_answered_recvonly_and_shows_muted(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)  # the phone plays "hold music" (its tone) all along
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_hold.xml", phone=phone)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        occupants = sandbox.jicofo.room(ROOM).occupants
        await wait_until(lambda: call.flow.held, timeout=10.0, what="on hold")
        await wait_until(lambda: occupants[nick].audio_muted is True, what="muted on hold")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(2.0)
        assert PHONE not in phone_heard_by_bridge(sandbox, call, frames + 10)
        await wait_until(lambda: not call.flow.held, timeout=10.0, what="off hold")
        await wait_until(lambda: occupants[nick].audio_muted is False, what="unmuted")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(2.0)
        assert phone_heard_by_bridge(sandbox, call, frames + 10) == {PHONE}
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    answers = [m for m in result.received() if m.startswith("SIP/2.0 200") and "m=audio" in m]
    assert len(answers) == 3
    assert "a=recvonly" in answers[1] and "a=sendrecv" not in answers[1]
    assert "a=sendrecv" in answers[2]
    await phone.close()


# -- two calls in one room ---------------------------------------------------------------------


async def test_two_calls_in_one_room_hear_each_other_never_themselves(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    first, second = RtpPhone("PCMU", 1200.0), RtpPhone("PCMA", 1500.0)
    tones = [ALICE, BOB, 1200.0, 1500.0]
    await first.open()
    await second.open()
    async with running_gateway(config) as gateway:
        sipp1 = sipp_call(gateway, "dialin.xml", phone=first, caller="+15550001", duration_ms=9000)
        call1, _ = await connected_call(prosody_server, sandbox, gateway, first)
        sipp2 = sipp_call(gateway, "dialin.xml", phone=second, caller="+15550002", duration_ms=6000)
        await wait_until(lambda: len(gateway.calls) == 2, what="second call")
        (call2,) = [c for c in gateway.calls.values() if c is not call1]
        await wait_until(lambda: call2.phase is Phase.CONNECTED, what="second answered")
        assert call2.media is not None
        second.start(("127.0.0.1", call2.media.ports.rtp_port))
        marks = first.mark(), second.mark()
        await asyncio.sleep(3.0)
        heard1 = analyse_mixture(first.audio(marks[0] + 25), 8000, tones).present
        heard2 = analyse_mixture(second.audio(marks[1] + 25), 8000, tones).present
        assert heard1 == {ALICE, BOB, 1500.0}
        assert heard2 == {ALICE, BOB, 1200.0}
        # One mixer for the room, and each web participant's stream decoded once in it.
        assert len(gateway.conferences) == 1
        (conference,) = gateway.conferences.rooms.values()
        mixer = conference.mixer
        web = {s.ssrc: s for s in mixer.sources}
        fakes = sandbox.jicofo.room(ROOM).fakes
        assert set(web) == {f.source.ssrc for f in fakes.values()}
        for source in web.values():
            # Both legs receive every web stream; one copy is decoded and pulled (decoded) at
            # most once per tick for the whole room.
            assert source.stats.packets > 0
            assert source.stats.frames_pulled <= mixer.stats.ticks
        # The other copy is dropped: by the leg before decryption (the mixer said it would
        # not use it), or by the mixer for the few that arrived before it could say so.
        transports = [c.media.transport for c in (call1, call2) if c.media is not None]
        legs = [t for t in transports if isinstance(t, ConferenceMediaTransport)]
        assert len(legs) == 2
        skipped = sum(t.counters.copies_skipped for t in legs)
        ignored = sum(s.stats.copies_ignored for s in web.values())
        assert skipped > 2 * 50, (skipped, ignored)  # two web streams, most of 3 s
        # The legs' chosen ICE sockets are read by the media tick (xmpp.datagram_poller).
        assert len(gateway.datagram_poller) == 2
        assert gateway.datagram_poller.datagrams > 2 * 2 * 50
        results = await asyncio.gather(sipp1, sipp2)
        # The legs gave their sockets back when their sessions ended.
        await wait_until(lambda: len(gateway.datagram_poller) == 0, 20.0, "sockets released")
    assert [r.successful_calls for r in results] == [1, 1]
    await first.close()
    await second.close()


# -- DTMF --------------------------------------------------------------------------------------


async def test_dtmf_rfc4733_both_ways(prosody_server: Prosody, sandbox: Sandbox) -> None:
    """A web participant's key presses reach the phone as RFC 4733 events; the phone's own
    events become the call's ``dtmf`` events (for the PIN IVR)."""
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)
    phone.telephone_event_pt = 101
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin.xml", phone=phone, duration_ms=8000)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        digits: list[tuple[str, str]] = []
        call.on("dtmf", lambda digit, how: digits.append((digit, how)))
        bridge = sandbox.bridges[nick]
        (alice,) = [p for p in bridge.participants if p.endpoint_id == "a1a1a1a1"]
        bridge.send_dtmf(alice, "19#*")
        phone.send_dtmf("407#")
        await wait_until(lambda: len(phone.received_digits()) >= 4, what="digits at the phone")
        await wait_until(lambda: len(digits) >= 4, what="digits at the gateway")
        assert phone.received_digits() == "19#*"
        assert digits == [("4", "rfc4733"), ("0", "rfc4733"), ("7", "rfc4733"), ("#", "rfc4733")]
        result = await sipp
    assert result.successful_calls == 1, result.stdout
    await phone.close()


async def test_dtmf_by_info_without_telephone_event(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMA", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_dtmf_info.xml", phone=phone)
        digits: list[tuple[str, str]] = []
        (await only_call(gateway)).on("dtmf", lambda digit, how: digits.append((digit, how)))
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        assert call.media is not None and not call.media.telephone_events
        bridge = sandbox.bridges[nick]
        (bob,) = [p for p in bridge.participants if p.endpoint_id == "b2b2b2b2"]
        bridge.send_dtmf(bob, "2580")
        result = await sipp
        assert digits == [("5", "info")]
    assert result.successful_calls == 1, result.stdout + result.errors
    relayed = [
        m.split("\n\n", 1)[-1].strip() if "\n\n" in m else m.split("\r\n\r\n", 1)[-1].strip()
        for m in result.received()
        if m.startswith("INFO ") and "application/dtmf-relay" in m
    ]
    signals = [
        line.split("=", 1)[1]
        for body in relayed
        for line in body.splitlines()
        if line.startswith("Signal=")
    ]
    assert signals == ["2", "5", "8", "0"]
    await phone.close()


# -- translator mode ---------------------------------------------------------------------------


async def test_translator_mode_forwards_each_talker_on_its_own_ssrc(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """[sip] translator with Opus on the phone side: each web talker's Opus reaches the phone
    on an SSRC of its own (the trunk mixes), nothing is mixed or re-encoded, the phone's Opus
    reaches the meeting with levels, and DTMF and mute still work."""
    await two_web(sandbox)
    config = gateway_config(prosody_server, sip={"translator": True})
    phone = RtpPhone("opus", PHONE)
    phone.telephone_event_pt = 101
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_info.xml", phone=phone)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        media = call.media
        assert media is not None and media.translator is not None and media.pipeline is None
        assert len(gateway.conferences) == 0  # no room mixer at all
        occupants = sandbox.jicofo.room(ROOM).occupants
        # The phone mutes itself by INFO (dialin_info.xml): the meeting stops hearing it.
        await wait_until(lambda: occupants[nick].audio_muted is True, what="published muted")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(1.5)
        assert PHONE not in phone_heard_by_bridge(sandbox, call, frames + 10)
        await wait_until(lambda: not call.flow.user_muted, what="unmuted")
        frames = bridge_frames(sandbox, call)
        await asyncio.sleep(1.5)
        assert phone_heard_by_bridge(sandbox, call, frames + 10) == {PHONE}
        participant = call.participant
        assert participant is not None
        stream = sandbox.bridges[nick].received[participant.local_ssrc]
        levels = [lv for lv in stream.levels[-25:] if lv is not None]
        assert levels and max(lv.level for lv in levels) < 40  # the phone's -10 dBFS tone
        # One SSRC per talker, each carrying exactly its talker; never the phone itself.
        heard = phone.heard_per_ssrc(TONES)
        assert sorted(sorted(tones) for tones in heard.values() if tones) == [[ALICE], [BOB]]
        bridge = sandbox.bridges[nick]
        (alice,) = [p for p in bridge.participants if p.endpoint_id == "a1a1a1a1"]
        bridge.send_dtmf(alice, "7")
        await wait_until(lambda: phone.received_digits() == "7", what="DTMF to the phone")
        # The moderator's mute (the scenario's last step) works in translator mode too.
        await sandbox.jicofo.mute(ROOM, nick, True)
        await wait_until(lambda: call.flow.user_muted, what="moderator mute")
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    assert media.translator is None  # closed with the call
    await phone.close()


# -- who may call, and what the meeting sees of the caller -------------------------------------


async def test_only_allowed_sources_or_digest_users_may_call(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server, inbound={"allowed_sources": ["192.0.2.0/24"]})
    async with running_gateway(config) as gateway:
        result = await sipp_call(gateway, "dialin_refused.xml")
        assert final_status(result) == "403 Forbidden (source address 127.0.0.1 not allowed)"
        assert not gateway.calls and gateway.totals.calls == 0
    config = gateway_config(
        prosody_server,
        inbound={"allowed_sources": ["192.0.2.0/24"]},
        inbound__digest={"realm": "pygasi.test", "users": {"trunk": "s3cret"}},
    )
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        wrong = await sipp_call(
            gateway, "dialin_auth.xml", phone=phone, args=["-au", "trunk", "-ap", "guess"]
        )
        assert "SIP/2.0 403 Forbidden (wrong credentials)" in first_lines(wrong.received())
        sipp = sipp_call(
            gateway,
            "dialin_auth.xml",
            phone=phone,
            duration_ms=4000,
            args=["-au", "trunk", "-ap", "s3cret"],
        )
        await connected_call(prosody_server, sandbox, gateway, phone)
        mark = phone.mark()
        await asyncio.sleep(2.0)
        assert phone.heard(TONES, since=mark + 20).present == {ALICE, BOB}
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    (challenge,) = [m for m in result.received() if m.startswith("SIP/2.0 401")]
    authenticate = header(challenge, "WWW-Authenticate")
    assert authenticate is not None and 'realm="pygasi.test"' in authenticate
    await phone.close()


async def test_masked_caller_id_and_room_destroyed(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    config = gateway_config(prosody_server, inbound={"mask_caller_id": True})
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_wait_bye.xml", phone=phone, caller_name="Alice Smith")
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        # Neither the name nor the number reaches the meeting, only the last four digits.
        assert sandbox.jicofo.room(ROOM).occupants[nick].display_name == "*******4567"
        await sandbox.jicofo.destroy(ROOM, reason="meeting over")
        result = await sipp
        assert await asyncio.wait_for(call.wait_finished(), 5.0) is Result.COMPLETED
    assert result.successful_calls == 1, result.stdout
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    assert header(bye, "Reason") == 'SIP;cause=200;text="Conference ended: meeting over"'
    await phone.close()


# -- the conference side going away and coming back ----------------------------------------------


async def test_prosody_restart_keeps_the_phone_call(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """jigasi.md §1.9: the XMPP connection is lost -> reconnect and re-join, the phone call
    stays up, and audio comes back with the next invite."""
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin.xml", phone=phone, duration_ms=20000, timeout=90)
        call, nick = await connected_call(prosody_server, sandbox, gateway, phone)
        participant = call.participant
        assert participant is not None
        await prosody_server.restart(pause=0.3)
        await wait_until(lambda: participant.connection.reconnects >= 1, what="reconnected")
        await wait_until(
            lambda: participant.me is not None and participant.nick != nick, what="re-joined"
        )
        assert not call.sip.ended and call.phase is not Phase.ENDED
        # The web participants come back too (their own connections died with the server).
        room = sandbox.jicofo.room(ROOM)
        focus = sandbox.jicofo.focus
        await sandbox.jicofo.wait_for(
            lambda: focus.reconnects >= 1 and "focus" in room.occupants, timeout=15.0
        )
        await sandbox.add_web(ROOM, "c3c3c3c3", 880.0)
        await sandbox.add_web(ROOM, "d4d4d4d4", 1100.0)
        await wait_until(lambda: call.phase is Phase.CONNECTED, what="re-invited")
        new_nick = participant.nick
        await wait_until(
            lambda: new_nick in sandbox.bridges and sandbox.bridges[new_nick].connected.is_set(),
            what="new bridge",
        )
        mark = phone.mark()
        await asyncio.sleep(2.5)
        heard = phone.heard([*TONES, 880.0, 1100.0], since=mark + 25).present
        assert heard == {880.0, 1100.0}
        result = await sipp
    assert result.successful_calls == 1, result.stdout + result.errors
    assert not [m for m in result.received() if m.startswith("BYE ")]  # never hung up on
    await phone.close()


async def test_hang_up_when_only_gateways_are_left(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    """jigasi.md §9 item 27: the last web participant leaves -> BYE after a short grace (a
    page reload within it keeps the call)."""
    await two_web(sandbox)
    config = gateway_config(prosody_server)
    phone = RtpPhone("PCMU", PHONE)
    await phone.open()
    async with running_gateway(config) as gateway:
        sipp = sipp_call(gateway, "dialin_wait_bye.xml", phone=phone)
        call, _ = await connected_call(prosody_server, sandbox, gateway, phone)
        await sandbox.remove_web(ROOM, "a1a1a1a1")
        await sandbox.remove_web(ROOM, "b2b2b2b2")
        await wait_until(lambda: call.flow.only_gateways, what="only gateways seen")
        # Alice reloads her page: back within the grace, the call goes on.
        await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
        await wait_until(lambda: not call.flow.only_gateways, what="someone is back")
        await asyncio.sleep(call.flow.settings.gateways_grace + 0.5)
        assert call.phase is Phase.CONNECTED
        await sandbox.remove_web(ROOM, "a1a1a1a1")
        result = await sipp
    assert result.successful_calls == 1, result.stdout
    (bye,) = [m for m in result.received() if m.startswith("BYE ")]
    assert header(bye, "Reason") == 'SIP;cause=200;text="Only gateways left in the conference"'
    await phone.close()
