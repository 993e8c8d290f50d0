"""Rayo dial/hangup and the brewery stats without a server (jigasi.md §3.2-§3.5): the dial as
lib-jitsi-meet and Jicofo send it, round trips, malformed dials (only StanzaParseError), the
``<ref>`` result, error types, the stats element in Jigasi's order, the brewery settings."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp import Iq as _Iq
from slixmpp import Presence
from slixmpp.xmlstream import ET

from xmpp.brewery import BreweryConfig, BreweryStats, fill_stats, parse_stats, stats_items
from xmpp.config import XmppServer
from xmpp.errors import StanzaParseError
from xmpp.rayo import (
    DialRefused,
    DialRequest,
    build_dial,
    build_hangup,
    build_ref,
    fill_error,
    parse_dial,
    parse_ref,
    ref_jid,
    ref_uri,
)

RAYO = "urn:xmpp:rayo:1"
COLIBRI = "http://jitsi.org/protocol/colibri"


def Iq(xml: ET.Element | None = None) -> _Iq:  # slixmpp's constructor, typed
    return cast(_Iq, cast(Any, _Iq)(xml=xml))


def reply(iq: _Iq) -> _Iq:
    return cast(_Iq, cast(Any, iq).reply())


def iq_from(xml: str) -> _Iq:
    return Iq(xml=ET.fromstring(xml))


def dial_iq(dial_xml: str) -> _Iq:
    return iq_from(f"<iq xmlns='jabber:client' type='set' id='d1'>{dial_xml}</iq>")


# --- the dial ------------------------------------------------------------------------------------


def test_parse_the_dial_lib_jitsi_meet_sends() -> None:
    # jigasi.md §3.3 step 1, plus two extra headers (they become SIP headers, in order).
    iq = dial_iq(
        f"<dial xmlns='{RAYO}' to='+15551234567' from='fromnumber'>"
        "<header name='JvbRoomName' value='room1234@conference.meet.example.com'/>"
        "<header name='X-Account' value='team 7'/>"
        "<header name='JvbRoomPassword' value='s3cret'/>"
        "<header name='User-to-User' value='04fa;encoding=hex'/>"
        "</dial>"
    )
    request = parse_dial(iq)
    assert request == DialRequest(
        to="+15551234567",
        from_="fromnumber",
        room="room1234@conference.meet.example.com",
        password="s3cret",
        headers=(("X-Account", "team 7"), ("User-to-User", "04fa;encoding=hex")),
    )
    assert not request.transcriber


def test_parse_minimal_dial() -> None:
    request = parse_dial(dial_iq(f"<dial xmlns='{RAYO}' to=' sip:+1555@pbx.example.com '/>"))
    assert request == DialRequest("sip:+1555@pbx.example.com", None, None, None, ())
    transcriber = parse_dial(dial_iq(f"<dial xmlns='{RAYO}' to='jitsi_meet_transcribe'/>"))
    assert transcriber.transcriber


def test_empty_password_is_no_password_and_names_are_case_insensitive() -> None:
    request = parse_dial(
        dial_iq(
            f"<dial xmlns='{RAYO}' to='100' from=''>"
            "<header name='jvbroomname' value='r@conference.x'/>"
            "<header name='JVBROOMPASSWORD' value=''/>"
            "<other xmlns='urn:example'/>"
            "</dial>"
        )
    )
    assert (request.from_, request.room, request.password, request.headers) == (
        None,
        "r@conference.x",
        None,
        (),
    )


@pytest.mark.parametrize(
    ("dial", "reason"),
    [
        (f"<dial xmlns='{RAYO}'/>", "'to'"),
        (f"<dial xmlns='{RAYO}' to='  '/>", "'to'"),
        (f"<dial xmlns='{RAYO}' to='1&#10;Via: x'/>", "control character"),
        (f"<dial xmlns='{RAYO}' to='1' from='a&#13;b'/>", "control character"),
        (f"<dial xmlns='{RAYO}' to='1'><header value='v'/></dial>", "without a name"),
        (f"<dial xmlns='{RAYO}' to='1'><header name='' value='v'/></dial>", "without a name"),
        (f"<dial xmlns='{RAYO}' to='1'><header name='X Y' value='v'/></dial>", "token"),
        (f"<dial xmlns='{RAYO}' to='1'><header name='X:Y' value='v'/></dial>", "token"),
        (f"<dial xmlns='{RAYO}' to='1'><header name='X-A'/></dial>", "without a value"),
        (
            f"<dial xmlns='{RAYO}' to='1'><header name='X-A' value='a&#13;&#10;Contact: x'/></dial>",
            "control character",
        ),
        (
            f"<dial xmlns='{RAYO}' to='1'><header name='JvbRoomName' value=' '/></dial>",
            "empty JvbRoomName",
        ),
        (
            f"<dial xmlns='{RAYO}' to='1'><header name='JvbRoomName' value='a@b'/>"
            "<header name='JvbRoomName' value='c@d'/></dial>",
            "twice",
        ),
        (
            f"<dial xmlns='{RAYO}' to='1'><header name='JvbRoomPassword' value='a'/>"
            "<header name='JvbRoomPassword' value='b'/></dial>",
            "twice",
        ),
        ("<dial xmlns='urn:xmpp:rayo:0' to='1'/>", "no <dial"),
    ],
)
def test_malformed_dials(dial: str, reason: str) -> None:
    with pytest.raises(StanzaParseError, match=reason) as caught:
        parse_dial(dial_iq(dial))
    assert caught.value.condition == "bad-request"


def test_build_dial_round_trip_and_order() -> None:
    request = DialRequest(
        "+44 20 7946 0000", "fromnumber", "room@conference.meet.test", "pw", (("X-A", "1"),)
    )
    iq = Iq()
    build_dial(iq, request)
    assert iq["type"] == "set"
    dial = iq.xml.find(f"{{{RAYO}}}dial")
    assert dial is not None
    assert dial.attrib == {"to": "+44 20 7946 0000", "from": "fromnumber"}
    assert [(h.attrib["name"], h.attrib["value"]) for h in dial] == [
        ("JvbRoomName", "room@conference.meet.test"),
        ("JvbRoomPassword", "pw"),
        ("X-A", "1"),
    ]
    assert parse_dial(iq_from(ET.tostring(iq.xml, encoding="unicode"))) == request
    bare = DialRequest("100", None, None, None)
    iq = Iq()
    build_dial(iq, bare)
    assert parse_dial(iq) == bare


_TOKEN = st.text(st.sampled_from("abcXYZ019-.!%*_+`'~"), min_size=1, max_size=8)
_VALUE = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12)


@settings(deadline=None)
@given(
    to=_VALUE.filter(lambda v: v.strip() != "" and v == v.strip()),
    from_=st.one_of(st.none(), _VALUE.filter(lambda v: v.strip() != "" and v == v.strip())),
    room=st.one_of(st.none(), _VALUE.filter(lambda v: v.strip() != "" and v == v.strip())),
    password=st.one_of(st.none(), _VALUE.filter(bool)),
    headers=st.lists(
        st.tuples(_TOKEN.filter(lambda n: n.lower() not in ("jvbroomname", "jvbroompassword")),
                  _VALUE),
        max_size=4,
    ),
)  # fmt: skip
def test_dial_round_trip_property(
    to: str,
    from_: str | None,
    room: str | None,
    password: str | None,
    headers: list[tuple[str, str]],
) -> None:
    request = DialRequest(to, from_, room, password, tuple(headers))
    iq = Iq()
    build_dial(iq, request)
    assert parse_dial(iq_from(ET.tostring(iq.xml, encoding="unicode"))) == request


# Fuzz: whatever a peer puts in a dial, parse_dial raises StanzaParseError or nothing else.
_TEXT = st.text(st.characters(blacklist_categories=["Cs"], max_codepoint=0x2FF), max_size=10)
_XML_TEXT = _TEXT.map(lambda t: "".join(c for c in t if c in "\t\n\r" or ord(c) >= 0x20))
_ATTRS = st.dictionaries(st.sampled_from(["to", "from", "name", "value", "uri"]), _XML_TEXT)


@settings(deadline=None)
@given(
    _ATTRS,
    st.lists(
        st.tuples(st.sampled_from([(RAYO, "header"), (RAYO, "dial"), ("urn:x", "header")]), _ATTRS),
        max_size=5,
    ),
)
def test_fuzzed_dial_raises_only_the_parse_error(
    attrs: dict[str, str], children: list[tuple[tuple[str, str], dict[str, str]]]
) -> None:
    dial = ET.Element(f"{{{RAYO}}}dial", attrs)
    for (ns, name), child_attrs in children:
        ET.SubElement(dial, f"{{{ns}}}{name}", child_attrs)
    root = ET.Element("{jabber:client}iq", {"type": "set", "id": "1"})
    root.append(dial)
    iq = Iq(xml=ET.fromstring(ET.tostring(root)))
    try:
        request = parse_dial(iq)
    except StanzaParseError:
        return
    assert request.to and request.to == request.to.strip()
    for name, value in request.headers:
        assert name and "\r" not in value and "\n" not in value


# --- ref, hangup, errors ------------------------------------------------------------------------


def test_ref_result() -> None:
    iq = iq_from("<iq xmlns='jabber:client' type='set' id='7' from='a@b/c' to='d@e/f'/>")
    answer = reply(iq)
    build_ref(answer, ref_uri("room1234@conference.meet.example.com/1a2b3c4d"))
    text = ET.tostring(answer.xml, encoding="unicode")
    assert 'type="result"' in text
    ref = answer.xml.find(f"{{{RAYO}}}ref")
    assert ref is not None
    assert ref.attrib == {"uri": "xmpp:room1234@conference.meet.example.com/1a2b3c4d"}
    assert parse_ref(answer) == "xmpp:room1234@conference.meet.example.com/1a2b3c4d"
    assert ref_jid(parse_ref(answer)) == "room1234@conference.meet.example.com/1a2b3c4d"
    assert ref_jid("not-acceptable") == "not-acceptable"
    with pytest.raises(StanzaParseError):
        parse_ref(iq_from("<iq xmlns='jabber:client' type='result' id='7'/>"))
    with pytest.raises(StanzaParseError):
        parse_ref(
            iq_from(f"<iq xmlns='jabber:client' type='result' id='7'><ref xmlns='{RAYO}'/></iq>")
        )


def test_hangup() -> None:
    iq = Iq()
    build_hangup(iq)
    assert iq["type"] == "set"
    hangup = iq.xml.find(f"{{{RAYO}}}hangup")
    assert hangup is not None and list(hangup) == []
    iq = Iq()
    build_hangup(iq, [("X-Reason", "done")])
    assert [h.attrib for h in iq.xml.find(f"{{{RAYO}}}hangup") or []] == [
        {"name": "X-Reason", "value": "done"}
    ]


@pytest.mark.parametrize(
    ("condition", "kind"),
    [
        ("forbidden", "auth"),
        ("bad-request", "modify"),
        ("service-unavailable", "cancel"),
        ("item-not-found", "cancel"),
        ("internal-server-error", "cancel"),
        ("resource-constraint", "wait"),
    ],
)
def test_error_answers(condition: str, kind: str) -> None:
    refused = DialRefused(condition, "why")
    assert (refused.condition, refused.text) == (condition, "why")
    iq = iq_from("<iq xmlns='jabber:client' type='set' id='9' from='a@b/c'/>")
    answer = reply(iq)
    fill_error(answer, refused.condition, refused.text)
    assert answer["type"] == "error"
    assert answer["error"]["type"] == kind
    assert answer["error"]["condition"] == condition
    assert answer["error"]["text"] == "why"


def test_dial_refused_needs_a_real_condition() -> None:
    with pytest.raises(ValueError, match="condition"):
        DialRefused("busy", "line busy")
    assert DialRefused("forbidden").text == ""


# --- brewery stats (jigasi.md §3.2) ---------------------------------------------------------------


def stat_pairs(presence: Presence) -> list[tuple[str, str]]:
    stats = presence.xml.find(f"{{{COLIBRI}}}stats")
    assert stats is not None
    assert all(child.tag == f"{{{COLIBRI}}}stat" for child in stats)
    return [(child.attrib["name"], child.attrib["value"]) for child in stats]


def test_stats_element_in_jigasi_order() -> None:
    stats = BreweryStats(
        conferences=3,
        participants=11,
        stress_level=0.03,
        region="us-east-1",
        version="1.1.42",
    )
    presence = Presence()
    fill_stats(presence, stats)
    assert stat_pairs(presence) == [
        ("conferences", "3"),
        ("participants", "11"),
        ("graceful_shutdown", "false"),
        ("stress_level", "0.03"),
        ("region", "us-east-1"),
        ("version", "1.1.42"),
        ("supports_transcription", "false"),
        ("supports_sip", "true"),
    ]
    assert parse_stats(presence) == stats
    # No region: no <stat name="region">; booleans as true/false.
    draining = BreweryStats(graceful_shutdown=True, supports_sip=False, supports_transcription=True)
    presence = Presence()
    fill_stats(presence, draining)
    assert [name for name, _ in stat_pairs(presence)] == [
        "conferences",
        "participants",
        "graceful_shutdown",
        "stress_level",
        "version",
        "supports_transcription",
        "supports_sip",
    ]
    assert dict(stats_items(draining))["graceful_shutdown"] == "true"
    assert dict(stats_items(draining))["stress_level"] == "0.0"
    assert parse_stats(presence) == draining
    assert parse_stats(Presence()) is None


def test_parse_stats_is_tolerant() -> None:
    presence = Presence(
        xml=ET.fromstring(
            f"<presence xmlns='jabber:client'><stats xmlns='{COLIBRI}'>"
            "<stat name='participants' value='many'/><stat name='stress_level' value='nan'/>"
            "<stat name='conferences' value='4'/><stat value='x'/><stat name='extra' value='1'/>"
            "<stat name='supports_sip' value='TRUE'/><stat name='graceful_shutdown' value='1'/>"
            "</stats></presence>"
        )
    )
    assert parse_stats(presence) == BreweryStats(conferences=4)


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([n for n, _ in stats_items(BreweryStats(region="r"))]), _XML_TEXT)
    )
)
def test_fuzzed_stats_never_raise(pairs: list[tuple[str, str]]) -> None:
    stats = ET.Element(f"{{{COLIBRI}}}stats")
    for name, value in pairs:
        ET.SubElement(stats, f"{{{COLIBRI}}}stat", {"name": name, "value": value})
    root = ET.Element("{jabber:client}presence")
    root.append(stats)
    assert isinstance(parse_stats(Presence(xml=ET.fromstring(ET.tostring(root)))), BreweryStats)


# --- brewery settings -------------------------------------------------------------------------------


def test_brewery_config() -> None:
    config = BreweryConfig(
        room="JigasiBrewery@internal.auth.meet.example.com",
        username="jigasi@auth.meet.example.com",
        password="pw",
        server=XmppServer(port=5333),
    )
    assert config.room_jid == "jigasibrewery@internal.auth.meet.example.com"
    assert config.allowed == config.room_jid  # jigasi.md §3.3
    participant = config.participant_config()
    assert (participant.domain, participant.username, participant.password) == (
        "auth.meet.example.com",
        "jigasi@auth.meet.example.com",
        "pw",
    )
    assert participant.server.port == 5333 and not participant.anonymous
    other = BreweryConfig(
        room="b@internal.x", username="j@x/res", password="p", allowed_jid="Focus@Auth.X/focus"
    )
    assert other.allowed == "focus@auth.x"
    assert other.participant_config().username == "j@x"
    for bad in (
        {"room": "internal.x"},
        {"room": "b@internal.x/nick"},
        {"username": "auth.x"},
        {"username": "a@@b"},
        {"allowed_jid": "a@b@c"},
    ):
        values: dict[str, Any] = {"room": "b@internal.x", "username": "j@x", "password": "p"}
        with pytest.raises(ValueError):
            BreweryConfig(**(values | bad))
