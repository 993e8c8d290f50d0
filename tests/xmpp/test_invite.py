"""The Jingle session through real Prosody and the Jicofo emulator (media: a test double): the
session-accept and the transport-info before it on the wire, who may talk to us, sources, mute,
and the recovery paths (refused accept, ICE failure, transport-replace, terminate)."""

from __future__ import annotations

import asyncio
import copy
from typing import cast

import pytest
from slixmpp import Iq
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET, StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from tests.xmpp.fake_media import FINGERPRINT, FakeMedia
from tests.xmpp.harness import Leg
from tests.xmpp.jicofo import Invite, JicofoEmulator
from tests.xmpp.prosody import Prosody
from xmpp.connection import reply, send_iq
from xmpp.jingle import JingleReason, build_sources
from xmpp.participant import SessionStarted, SessionTerminated
from xmpp.session import SessionState
from xmpp.transport_info import AUDIO_LEVEL_URI, MediaSource

pytestmark = pytest.mark.prosody

NS = {
    "j": "urn:xmpp:jingle:1",
    "rtp": "urn:xmpp:jingle:apps:rtp:1",
    "hdr": "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0",
    "ssma": "urn:xmpp:jingle:apps:rtp:ssma:0",
    "ice": "urn:xmpp:jingle:transports:ice-udp:1",
    "dtls": "urn:xmpp:jingle:apps:dtls:0",
    "grp": "urn:xmpp:jingle:apps:grouping:0",
}


async def invited(jicofo: JicofoEmulator, room: str, leg: Leg, count: int = 1) -> Invite:
    """Wait until ``leg`` accepted its ``count``-th invite in ``room``."""
    emulated = jicofo.room(room)
    nick = leg.participant.nick

    def accepted() -> bool:
        invites = [i for i in emulated.history if i.nick == nick and i.accept is not None]
        return len(invites) >= count and leg.participant.session_state is SessionState.ACTIVE

    await jicofo.wait_for(accepted)
    return [i for i in emulated.history if i.nick == nick and i.accept is not None][count - 1]


async def joined_and_invited(
    prosody: Prosody, jicofo: JicofoEmulator, room: str
) -> tuple[Leg, Invite]:
    leg = Leg(prosody, room)
    await leg.join()
    await jicofo.add_fake_participant(room)
    return leg, await invited(jicofo, room, leg)


def candidates(transport: ET.Element) -> list[dict[str, str]]:
    return [dict(c.attrib) for c in transport.findall("ice:candidate", NS)]


async def test_session_accept_and_transport_info_on_the_wire(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg = Leg(prosody_server, "sipdemo", send_transport_info=True)
    await leg.join()
    nick = leg.participant.nick
    # Alone with the focus: no invite (min-participants = 2, jingle.md §0 item 5).
    await asyncio.sleep(0.2)
    assert leg.of("session_started") == []
    web = await jicofo.add_fake_participant("sipdemo")
    invite = await invited(jicofo, "sipdemo", leg)
    media = leg.media
    # The offer reached the media: bridge transport, payload types, every audio source.
    assert media.remote == invite.offer_transport
    assert media.session is not None and media.session.payload("opus") is not None
    assert media.local_ssrc == leg.participant.local_ssrc
    assert set(media.sources) == {invite.bridge.feedback_source().ssrc, web.source.ssrc}
    ((started,),) = [args for args in leg.of("session_started")]
    assert isinstance(started, SessionStarted)
    assert started.sid == invite.sid and started.media is media
    assert started.bridge_session is not None
    assert started.bridge_session.id == invite.bridge_session_id
    assert started.bridge_session.region == "eu-west"
    # transport-info first, then session-accept (Jigasi's order, jigasi.md §2.3).
    jingles = [x for x in leg.sent if x.find("j:jingle", NS) is not None]
    assert [x.find("j:jingle", NS).attrib["action"] for x in jingles] == [  # type: ignore[union-attr]
        "transport-info",
        "session-accept",
    ]
    info_iq, accept_iq = jingles
    focus = f"sipdemo@{prosody_server.muc_domain}/focus"
    assert info_iq.attrib["to"] == focus and accept_iq.attrib["to"] == focus
    assert info_iq.attrib["type"] == accept_iq.attrib["type"] == "set"
    # session-accept (jingle.md §4.2), element by element.
    accept = accept_iq.find("j:jingle", NS)
    assert accept is not None
    assert accept.attrib == {
        "action": "session-accept",
        "sid": invite.sid,
        "initiator": jicofo.focus.jid,
        "responder": leg.participant.connection.jid,
    }
    content, group = list(accept)
    assert content.tag == f"{{{NS['j']}}}content"
    assert content.attrib == {"creator": "initiator", "name": "audio", "senders": "both"}
    description, transport = list(content)
    assert description.attrib == {"media": "audio"}
    assert [child.tag.split("}")[1] for child in description] == [
        "payload-type",
        "payload-type",
        "source",
        "rtcp-mux",
        "rtp-hdrext",
    ]
    opus, event, source, _mux, level = list(description)
    assert opus.attrib == {"id": "111", "name": "opus", "clockrate": "48000", "channels": "2"}
    assert [p.attrib for p in opus] == [
        {"name": "minptime", "value": "10"},
        {"name": "useinbandfec", "value": "1"},
    ]
    assert event.attrib == {"id": "126", "name": "telephone-event", "clockrate": "8000"}
    assert source.tag == f"{{{NS['ssma']}}}source"
    assert source.attrib == {"ssrc": str(leg.participant.local_ssrc), "name": f"{nick}-a0"}
    (msid,) = list(source)
    assert msid.tag == f"{{{NS['ssma']}}}parameter" and msid.attrib["name"] == "msid"
    stream, track = msid.attrib["value"].split(" ")
    assert stream == f"{nick}-audio-0-1" and track.endswith("-1")
    assert level.tag == f"{{{NS['hdr']}}}rtp-hdrext"
    assert level.attrib == {"id": "1", "uri": AUDIO_LEVEL_URI}
    assert transport.tag == f"{{{NS['ice']}}}transport"
    assert transport.attrib == {"ufrag": media.local.ufrag, "pwd": media.local.pwd}
    (fingerprint,) = transport.findall("dtls:fingerprint", NS)
    assert fingerprint.attrib == {"hash": "sha-256", "setup": "active"}
    assert fingerprint.text == FINGERPRINT
    expected = [
        {"component": "1", "foundation": "3c9a", "generation": "0", "id": "k2j4",
         "ip": "192.0.2.50", "network": "0", "port": "41234", "priority": "2130706431",
         "protocol": "udp", "type": "host"},
        {"component": "1", "foundation": "77aa", "generation": "0", "id": "k2j5",
         "ip": "203.0.113.60", "network": "0", "port": "41234", "priority": "1694498815",
         "protocol": "udp", "type": "srflx", "rel-addr": "192.0.2.50", "rel-port": "41234"},
    ]  # fmt: skip
    assert candidates(transport) == expected
    assert group.attrib == {"semantics": "BUNDLE"}
    assert [c.attrib for c in group] == [{"name": "audio"}]
    # transport-info: the same credentials and candidates (and fingerprint).
    info = info_iq.find("j:jingle", NS)
    assert info is not None
    assert info.attrib == {
        "action": "transport-info",
        "sid": invite.sid,
        "initiator": jicofo.focus.jid,
    }
    (info_content,) = list(info)
    assert info_content.attrib == {"creator": "initiator", "name": "audio", "senders": "both"}
    (info_transport,) = list(info_content)
    assert info_transport.attrib == transport.attrib
    assert candidates(info_transport) == expected
    # What the emulated Jicofo received and understood.
    recorded = jicofo.received("focus", "{urn:xmpp:jingle:1}jingle")
    assert [r.xml.find("j:jingle", NS).get("action") for r in recorded] == [  # type: ignore[union-attr]
        "transport-info",
        "session-accept",
    ]
    assert invite.accept is not None and invite.transport_infos
    assert [s.ssrc for s in invite.accept.sources] == [leg.participant.local_ssrc]
    assert invite.bridge.connected_with is not None  # type: ignore[attr-defined]
    assert invite.bridge.connected_with.ufrag == media.local.ufrag  # type: ignore[attr-defined]
    await leg.wait_event("session_accepted")
    await leg.leave()
    terminate = invite.terminate
    assert terminate is not None
    assert terminate.reason == JingleReason("success", "Nice talking to you!")


async def test_jingle_and_mute_from_a_non_focus_occupant_are_refused(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg, invite = await joined_and_invited(prosody_server, jicofo, "guarded")
    intruder = next(iter(jicofo.room("guarded").fakes.values())).connection
    target = leg.participant.occupant_jid
    # A session-initiate from someone else: acknowledged, then terminated (jigasi.md §2.3).
    assert invite.initiate is not None
    offer = invite.initiate.find("j:jingle", NS)
    assert offer is not None
    iq = intruder.iq(target)
    forged = copy.deepcopy(offer)
    forged.attrib["sid"] = "intruder1"
    iq.xml.append(forged)
    terminated: asyncio.Future[Iq] = asyncio.get_running_loop().create_future()

    def on_jingle(stanza: StanzaBase) -> None:
        reply(stanza).send()
        if not terminated.done():
            terminated.set_result(cast(Iq, stanza))

    intruder.client.register_handler(
        Callback("intruder", StanzaPath("iq@type=set/jingle"), on_jingle)
    )
    answer = await send_iq(iq, 5.0)
    assert answer["type"] == "result"
    got = await asyncio.wait_for(terminated, 5.0)
    jingle = got.xml.find("j:jingle", NS)
    assert jingle is not None
    assert jingle.attrib == {"action": "session-terminate", "sid": "intruder1"}
    reason = jingle.find("j:reason", NS)
    assert reason is not None
    assert [c.tag.split("}")[1] for c in reason] == ["decline", "text"]
    assert leg.participant.session_state is SessionState.ACTIVE
    assert leg.participant.session.sid == invite.sid
    # Any other action from someone else: refused.
    iq = intruder.iq(target)
    build_sources(iq["jingle"], action="source-add", sid=invite.sid, sources=[MediaSource(77)])
    with pytest.raises(IqError) as refused:
        await send_iq(iq, 5.0)
    assert refused.value.iq["error"]["condition"] == "forbidden"
    assert 77 not in leg.participant.remote_sources
    # A mute from someone else: refused; from the focus: surfaced.
    iq = intruder.iq(target)
    iq["mute"]["value"] = "true"
    with pytest.raises(IqError) as refused:
        await send_iq(iq, 5.0)
    assert refused.value.iq["error"]["condition"] == "forbidden"
    assert leg.of("mute_requested") == []
    actor = f"guarded@{prosody_server.muc_domain}/moderator1"
    answer = await jicofo.mute("guarded", leg.participant.nick, True, actor=actor)
    assert answer["type"] == "result"
    ((request,),) = leg.of("mute_requested")
    assert request.actor == actor
    # A remote "false" is acknowledged and ignored (unmuting is the caller's choice).
    answer = await jicofo.mute("guarded", leg.participant.nick, False)
    assert answer["type"] == "result"
    assert len(leg.of("mute_requested")) == 1
    await leg.leave()


async def test_malformed_jingle_leaves_everything_else_alone(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    first = Leg(prosody_server, "twolegs")
    second = Leg(prosody_server, "twolegs")
    await first.join()
    await second.join()
    one = await invited(jicofo, "twolegs", first)
    two = await invited(jicofo, "twolegs", second)
    # Each sees the other as a Jigasi-like gateway (the focus is none).
    others = {o.nick: o for (o,) in first.of("occupant_joined")}
    assert others[second.participant.nick].is_gateway
    assert not others["focus"].is_gateway
    # Each leg hears the other once both accepted (the emulator's source-add).
    await jicofo.wait_for(
        lambda: (
            second.participant.local_ssrc in first.participant.remote_sources
            and first.participant.local_ssrc in second.participant.remote_sources
        )
    )

    def malformed(iq: Iq) -> None:
        jingle = iq["jingle"]
        jingle["action"] = "source-add"
        jingle["sid"] = one.sid
        ET.SubElement(
            ET.SubElement(jingle.xml, "{urn:xmpp:jingle:1}content", name="audio"),
            "{urn:xmpp:jingle:apps:rtp:ssma:0}source",
            ssrc="not-a-number",
        )

    with pytest.raises(IqError) as refused:
        await jicofo.send_jingle("twolegs", first.participant.nick, malformed)
    assert refused.value.iq["error"]["condition"] == "bad-request"
    assert refused.value.iq["error"]["type"] == "modify"
    # Nothing else disturbed: both sessions up, sources unchanged, the next IQs work.
    assert first.participant.session_state is SessionState.ACTIVE
    assert first.participant.session.sid == one.sid
    assert second.participant.session_state is SessionState.ACTIVE
    extra = MediaSource(424242, "abcd0001-a0", "abcd0001", "m s")
    await jicofo.source_add("twolegs", second.participant.nick, [extra])
    await jicofo.source_add("twolegs", first.participant.nick, [extra])
    assert 424242 in second.participant.remote_sources
    assert 424242 in first.participant.remote_sources
    assert two.sid == second.participant.session.sid
    await first.leave()
    await second.leave()


async def test_sources_follow_the_participants(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg, _invite = await joined_and_invited(prosody_server, jicofo, "busy")
    media = leg.media
    late = await jicofo.add_fake_participant("busy")
    (joined,) = await leg.wait_event("occupant_joined", 3)  # focus, the first web client, late
    assert joined.nick == late.nick and not joined.is_gateway
    (added,) = await leg.wait_event("sources_added", 2)
    assert added == (late.source,)
    assert late.source.ssrc in media.sources
    # Video sources are ignored.
    await jicofo.source_add(
        "busy", leg.participant.nick, [MediaSource(999, "x-v0", "x", "a b", "video")]
    )
    assert 999 not in leg.participant.remote_sources and 999 not in media.sources
    # Leaving the MUC without a source-remove (current Jicofo): we drop its SSRCs ourselves.
    await jicofo.remove_fake_participant("busy", late.nick)
    (removed,) = await leg.wait_event("sources_removed")
    assert removed == (late.source,)
    assert late.source.ssrc not in media.sources
    # An explicit source-remove works too.
    third = await jicofo.add_fake_participant("busy")
    await leg.wait_event("sources_added", 3)
    await jicofo.remove_fake_participant("busy", third.nick, send_remove=True)
    (removed,) = await leg.wait_event("sources_removed", 2)
    assert removed == (third.source,)
    assert third.source.ssrc not in media.sources
    await leg.leave()


async def test_terminate_is_reported_and_a_new_invite_taken(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg, invite = await joined_and_invited(prosody_server, jicofo, "ends")
    media = leg.media
    await jicofo.terminate("ends", leg.participant.nick, "expired", "Idle session timeout")
    (ended,) = await leg.wait_event("session_terminated")
    assert ended == SessionTerminated(
        invite.sid, JingleReason("expired", "Idle session timeout"), True, False
    )
    await asyncio.sleep(0.05)
    assert media.closed and leg.participant.media is None
    assert leg.participant.session_state is SessionState.IDLE
    # Jicofo invites again when someone joins (§0 item 5).
    again = await jicofo.invite(jicofo.room("ends"), leg.participant.nick)
    second = await invited(jicofo, "ends", leg, 2)
    assert second is again and second.sid != invite.sid
    assert leg.participant.media is not media
    await leg.leave()


async def test_refused_accept_rejoins_with_a_fresh_ssrc(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    jicofo.accept_error = "bad-request"  # "SSRC is already used" (jingle.md §4.1)
    leg = Leg(prosody_server, "clash")
    await leg.join()
    first_ssrc = leg.participant.local_ssrc
    await jicofo.add_fake_participant("clash")
    (ended,) = await leg.wait_event("session_terminated")
    assert ended.reason.condition == "general-error"
    await leg.wait_event("rejoined")
    first = jicofo.room("clash").history[0]
    assert first.accept is not None
    assert [s.ssrc for s in first.accept.sources] == [first_ssrc]
    second = await invited(jicofo, "clash", leg, 2)
    assert second.accept is not None
    assert [s.ssrc for s in second.accept.sources] == [leg.participant.local_ssrc]
    assert leg.participant.local_ssrc != first_ssrc
    await leg.leave()


async def test_ice_failure_asks_for_a_restart(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    made: list[FakeMedia] = []

    def factory() -> FakeMedia:
        media = FakeMedia(fail_connect=not made)  # the first session's ICE fails
        made.append(media)
        return media

    leg = Leg(prosody_server, "flaky", media_factory=factory)
    await leg.join()
    await jicofo.add_fake_participant("flaky")
    (ended,) = await leg.wait_event("session_terminated")
    assert ended.restart_requested and not ended.by_remote
    await jicofo.wait_for(lambda: bool(jicofo.restart_requests))
    (request,) = jicofo.restart_requests
    first = jicofo.room("flaky").history[0]
    assert request.sid == first.sid
    assert request.reason == JingleReason("connectivity-error", "ICE FAILED")
    assert request.bridge_session is not None
    assert (request.bridge_session.id, request.bridge_session.restart) == (
        first.bridge_session_id,
        True,
    )
    # Jicofo re-invites with a new sid (jingle.md §6); the second media connects.
    second = await invited(jicofo, "flaky", leg, 2)
    assert second.sid != first.sid
    await asyncio.wait_for(made[1].connected.wait(), 5.0)
    # A later failure (consent expiry) does the same.
    made[1].fail()
    await jicofo.wait_for(lambda: len(jicofo.restart_requests) == 2)
    await leg.leave()


async def test_transport_replace_rejoins(prosody_server: Prosody, jicofo: JicofoEmulator) -> None:
    leg, invite = await joined_and_invited(prosody_server, jicofo, "moving")
    answer = await jicofo.transport_replace("moving", leg.participant.nick)
    assert answer["type"] == "result"
    await leg.wait_event("rejoined")
    second = await invited(jicofo, "moving", leg, 2)
    assert second.sid != invite.sid
    await leg.leave()


async def test_mute_state_and_mute_requests_to_the_focus(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg, _ = await joined_and_invited(prosody_server, jicofo, "quiet")
    nick = leg.participant.nick
    room = jicofo.room("quiet")
    leg.participant.set_muted(True)
    await jicofo.wait_for(lambda: room.occupants[nick].audio_muted is True)
    update = [x for x in leg.sent if x.tag == "{jabber:client}presence"][-1]
    assert update.findtext("{jabber:client}SourceInfo") == f'{{"{nick}-a0":{{"muted":true}}}}'
    assert update.findtext("{jabber:client}audiomuted") == "true"
    await leg.participant.request_mute(False)
    ((iq),) = jicofo.mute_requests
    mute = iq.xml.find("{http://jitsi.org/jitmeet/audio}mute")
    assert mute is not None
    assert mute.attrib == {"jid": leg.participant.occupant_jid} and mute.text == "false"
    other = next(iter(room.fakes))
    await leg.participant.request_mute(True, other)
    mute = jicofo.mute_requests[1].xml.find("{http://jitsi.org/jitmeet/audio}mute")
    assert mute is not None and mute.attrib["jid"].endswith(f"/{other}") and mute.text == "true"
    await leg.leave()


async def test_impostor_focus_is_not_trusted(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg, _invite = await joined_and_invited(prosody_server, jicofo, "trust")
    # Had the conference IQ named another focus account, the occupant "focus" is not it.
    leg.participant.focus_jid = f"someone@{prosody_server.auth_domain}"
    with pytest.raises(IqError) as refused:
        await jicofo.source_add("trust", leg.participant.nick, [MediaSource(31337)])
    assert refused.value.iq["error"]["condition"] == "forbidden"
    await leg.leave()
