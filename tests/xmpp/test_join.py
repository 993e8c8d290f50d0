"""Joining a room through real Prosody and the Jicofo emulator: the conference request, our
presence element by element, disco#info with and without node, and typed join errors."""

from __future__ import annotations

import asyncio
import re

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from tests.xmpp.fake_media import FakeMedia
from tests.xmpp.harness import Leg
from tests.xmpp.jicofo import JicofoEmulator
from tests.xmpp.prosody import Prosody, prosody
from xmpp.caps import DiscoInfo, Identity, caps_ver, gateway_disco_info
from xmpp.config import XmppServer
from xmpp.connection import send_iq
from xmpp.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    LobbyEnabled,
    NotAllowed,
    RoomFull,
    RoomPasswordError,
)
from xmpp.participant import ConferenceParticipant, ParticipantState
from xmpp.presence import VALID_NICK

pytestmark = pytest.mark.prosody

NS_MUC = "http://jabber.org/protocol/muc"
CAPS_NODE = "https://github.com/pygasi/pygasi"


def children(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


async def test_join_presence_element_by_element(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg = Leg(prosody_server, "sipdemo", region="eu-west-1", stats_id="Wilma-x1")
    await leg.join()
    participant = leg.participant
    nick = participant.nick
    # Anonymous login: the nick is the anonymous local part's first 8 characters when
    # mod_muc_resource_validate would take them; Prosody's base64url local parts may start
    # with '_' or hold '-', and then the nick is 8 random hex digits (xmpp.presence.nick_for).
    prefix = participant.connection.jid.split("@", 1)[0][:8]
    if VALID_NICK.match(prefix):
        assert nick == prefix
    else:
        assert re.fullmatch(r"[0-9a-f]{8}", nick), nick
    # The conference request came first (jingle.md §2.2).
    (request,) = jicofo.conference_requests
    conference = request["focus_conference"].xml
    assert conference.attrib["room"] == f"sipdemo@{prosody_server.muc_domain}"
    assert len(conference.attrib["machine-uid"]) == 32
    assert [(p.attrib["name"], p.attrib["value"]) for p in conference] == [
        ("rtcstatsEnabled", "false")
    ]
    assert participant.focus_jid == prosody_server.focus_jid
    presences = [x for x in leg.sent if x.tag == "{jabber:client}presence"]
    join = presences[0]
    assert join.attrib["to"] == f"sipdemo@{prosody_server.muc_domain}/{nick}"
    assert "type" not in join.attrib
    assert children(join) == [
        f"{{{NS_MUC}}}x",
        "{http://jabber.org/protocol/nick}nick",
        "{http://jabber.org/protocol/caps}c",
        "{jabber:client}SourceInfo",
        "{jabber:client}audiomuted",
        "{jabber:client}features",
        "{jabber:client}stats-id",
        "{jabber:client}jitsi_participant_region",
    ]
    muc, nick_element, caps, source_info, audiomuted, features, stats_id, region = list(join)
    assert list(muc) == [] and muc.attrib == {}
    assert nick_element.text == "+1 555 0100"
    ver = caps_ver(gateway_disco_info())
    assert caps.attrib == {"hash": "sha-1", "node": CAPS_NODE, "ver": ver}
    assert source_info.text == f'{{"{nick}-a0":{{"muted":false}}}}'
    assert audiomuted.text == "false"
    assert [f.attrib["var"] for f in features] == [
        "urn:xmpp:jingle:dtmf:0",
        "http://jitsi.org/protocol/jigasi",
        "http://jitsi.org/protocol/audio-mute",
    ]
    assert stats_id.text == "Wilma-x1"
    assert region.text == "eu-west-1"
    # What the focus sees of us.
    room = jicofo.room("sipdemo")
    await jicofo.wait_for(lambda: nick in room.occupants)
    seen = room.occupants[nick]
    assert seen.is_gateway and seen.audio_muted is False and seen.display_name == "+1 555 0100"
    assert (seen.caps_node, seen.caps_ver) == (CAPS_NODE, ver)
    # Status updates re-send the whole presence, without the MUC <x> (jigasi.md §2.2).
    participant.set_status("Connected")
    await jicofo.wait_for(lambda: nick in room.occupants)
    update = [x for x in leg.sent if x.tag == "{jabber:client}presence"][-1]
    assert children(update)[0] == "{http://jabber.org/protocol/nick}nick"
    assert update.findtext("{jabber:client}status") == "Connected"
    assert update.find("{jabber:client}SourceInfo") is not None
    await leg.leave()
    leave = [x for x in leg.sent if x.tag == "{jabber:client}presence"][-1]
    assert leave.attrib["type"] == "unavailable"


async def test_disco_info_with_and_without_node(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg = Leg(prosody_server, "disco")
    await leg.join()
    ours = gateway_disco_info()
    ver = caps_ver(ours)
    for node in (None, f"{CAPS_NODE}#{ver}"):
        iq = jicofo.focus.iq(leg.participant.occupant_jid, "get")
        query = iq["disco_info_query"]
        if node:
            query["node"] = node
        answer = await send_iq(iq, 5.0)
        result = answer.xml.find("{http://jabber.org/protocol/disco#info}query")
        assert result is not None
        assert result.attrib == ({"node": node} if node else {})
        identities = [
            Identity(i.attrib["category"], i.attrib["type"], i.attrib.get("name", ""))
            for i in result.findall("{http://jabber.org/protocol/disco#info}identity")
        ]
        features = tuple(
            f.attrib["var"]
            for f in result.findall("{http://jabber.org/protocol/disco#info}feature")
        )
        assert identities == [Identity("client", "phone", "pygasi")]
        assert features == ours.features
        # The ver in our presence verifies against exactly this answer (XEP-0115 §5.4).
        assert caps_ver(DiscoInfo(tuple(identities), features)) == ver
    # The emulator's own discovery (Jicofo's, with node) found the audio feature.
    room = jicofo.room("disco")
    assert "urn:xmpp:jingle:apps:rtp:audio" in room.features[leg.participant.nick]
    iq = jicofo.focus.iq(leg.participant.occupant_jid, "get")
    iq["disco_info_query"]["node"] = f"{CAPS_NODE}#stale"
    with pytest.raises(IqError) as refused:
        await send_iq(iq, 5.0)
    assert refused.value.iq["error"]["condition"] == "item-not-found"
    await leg.leave()


async def test_password_room(prosody_server: Prosody, jicofo: JicofoEmulator) -> None:
    await jicofo.prepare_room("locked", password="s3cret")
    good = Leg(prosody_server, "locked", room_password="s3cret")
    await good.join()
    join = next(x for x in good.sent if x.tag == "{jabber:client}presence")
    assert join.findtext(f"{{{NS_MUC}}}x/{{{NS_MUC}}}password") == "s3cret"
    wrong = Leg(prosody_server, "locked", room_password="guess")
    with pytest.raises(RoomPasswordError) as refused:
        await wrong.join()
    assert refused.value.password_given and refused.value.condition == "not-authorized"
    assert wrong.participant.state is ParticipantState.LEFT
    missing = Leg(prosody_server, "locked")
    with pytest.raises(RoomPasswordError) as refused:
        await missing.join()
    assert not refused.value.password_given
    await good.leave()


async def test_lobby_members_only_and_full_rooms(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    with pytest.raises(LobbyEnabled) as lobby:
        await Leg(prosody_server, "lobbyroom1").join()
    assert lobby.value.lobby_room == f"lobbyroom1@lobby.{prosody_server.domain}"
    await jicofo.prepare_room("members", members_only=True)
    with pytest.raises(LobbyEnabled) as members:
        await Leg(prosody_server, "members").join()
    assert members.value.lobby_room is None
    with pytest.raises(RoomFull):
        await Leg(prosody_server, "fullroom").join()


async def test_room_creation_restricted_without_the_focus() -> None:
    async with prosody(restrict_room_creation=True) as server:
        # No conference request (and no focus): Prosody refuses to let us create the room.
        with pytest.raises(NotAllowed) as refused:
            await Leg(server, "nofocus", conference_request=False).join()
        assert refused.value.condition == "not-allowed"
        # With the focus answering the conference request, the room exists first.
        async with JicofoEmulator(server):
            leg = Leg(server, "withfocus")
            await leg.join()
            await leg.leave()


async def test_conference_request_retried_while_not_ready(prosody_server: Prosody) -> None:
    async with JicofoEmulator(prosody_server, not_ready=2) as jicofo:
        leg = Leg(prosody_server, "waiting", conference_backoff=(0.05, 0.2))
        await leg.join()
        assert len(jicofo.conference_requests) == 3
        await leg.leave()


async def test_authenticated_login_with_tls_verification(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    assert prosody_server.certificate is not None
    verified = XmppServer(
        port=prosody_server.c2s_port, ca_file=str(prosody_server.certificate.certfile)
    )
    leg = Leg(
        prosody_server,
        "authroom",
        username=f"jigasi@{prosody_server.auth_domain}",
        password=prosody_server.password("jigasi"),
        server=verified,
    )
    await leg.join()
    participant = leg.participant
    assert participant.connection.jid.startswith(f"jigasi@{prosody_server.auth_domain}/")
    assert participant.connection.encrypted
    assert len(participant.nick) == 8 and int(participant.nick, 16) >= 0
    room = jicofo.room("authroom")
    await jicofo.wait_for(lambda: participant.nick in room.occupants)
    real = room.occupants[participant.nick].real_jid
    assert real is not None and real.startswith(f"jigasi@{prosody_server.auth_domain}/")
    await leg.leave()
    # A forced nick (Jigasi's SIP-user-as-resource option), for an authenticated login.
    named = Leg(
        prosody_server,
        "authroom",
        username=f"jigasi@{prosody_server.auth_domain}",
        password=prosody_server.password("jigasi"),
        server=verified,
    )
    named.participant.fixed_nick = "15550100"
    await named.join()
    assert named.participant.occupant_jid.endswith("/15550100")
    await named.leave()
    with pytest.raises(ValueError):
        ConferenceParticipant(
            named.participant.config, "r", nick="bad-nick", media_factory=FakeMedia
        )
    bad = Leg(
        prosody_server,
        "authroom",
        username=f"jigasi@{prosody_server.auth_domain}",
        password="wrong",
    )
    with pytest.raises(AuthenticationFailed):
        await bad.join()
    # Verification on, without the CA: the self-signed certificate is refused.
    untrusted = Leg(prosody_server, "authroom", server=XmppServer(port=prosody_server.c2s_port))
    with pytest.raises(ConnectionFailed, match="certificate"):
        await untrusted.join()


async def test_kicked_and_destroyed(prosody_server: Prosody, jicofo: JicofoEmulator) -> None:
    kicked = Leg(prosody_server, "strict")
    await kicked.join()
    await jicofo.kick("strict", kicked.participant.nick, "no phones")
    (departure,) = await kicked.wait_event("kicked")
    assert (departure.kind, departure.reason) == ("kicked", "no phones")
    assert kicked.participant.state is ParticipantState.LEFT
    destroyed = Leg(prosody_server, "ending")
    await destroyed.join()
    await jicofo.destroy("ending", "conference ended")
    (departure,) = await destroyed.wait_event("room_destroyed")
    assert departure.kind == "destroyed" and departure.reason == "conference ended"
    await asyncio.sleep(0)
