"""Jingle <-> values (sans-IO): Jicofo's offer as reference/jingle.md §3.1 shows it, our answer
as §4.2 shows it, and the parser's refusal of anything malformed (Hypothesis)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slixmpp import Iq as _Iq
from slixmpp.xmlstream import ET

from xmpp import jingle as J
from xmpp.errors import JingleParseError
from xmpp.jingle import JingleReason, LocalAudio
from xmpp.stanzas import Jingle
from xmpp.transport_info import (
    AUDIO_LEVEL_URI,
    DtlsFingerprint,
    IceCandidate,
    MediaSource,
    TransportDescription,
)


def Iq(xml: ET.Element | None = None) -> _Iq:  # slixmpp's constructor, typed
    return cast(_Iq, cast(Any, _Iq)(xml=xml))


NS = {
    "j": "urn:xmpp:jingle:1",
    "rtp": "urn:xmpp:jingle:apps:rtp:1",
    "hdr": "urn:xmpp:jingle:apps:rtp:rtp-hdrext:0",
    "ssma": "urn:xmpp:jingle:apps:rtp:ssma:0",
    "ice": "urn:xmpp:jingle:transports:ice-udp:1",
    "dtls": "urn:xmpp:jingle:apps:dtls:0",
    "grp": "urn:xmpp:jingle:apps:grouping:0",
    "jm": "http://jitsi.org/jitmeet",
    "focus": "http://jitsi.org/protocol/focus",
}

# jingle.md §3.1, with the placeholders filled in.
OFFER = """
<iq xmlns="jabber:client" type="set" from="sipdemo@conference.meet.example.com/focus"
    to="gw1@meet.example.com/xyz" id="r1">
  <jingle xmlns="urn:xmpp:jingle:1" action="session-initiate"
          initiator="focus@auth.meet.example.com/focus" sid="9f3kq2mb7c1r">
    <content creator="initiator" name="audio" senders="both">
      <description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio" maxptime="60">
        <payload-type id="111" name="opus" clockrate="48000" channels="2">
          <parameter name="minptime" value="10"/>
          <parameter name="useinbandfec" value="1"/>
        </payload-type>
        <payload-type id="126" name="telephone-event" clockrate="8000"/>
        <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="1"
                    uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"/>
        <rtp-hdrext xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0" id="10"
                    uri="urn:ietf:params:rtp-hdrext:sdes:mid"/>
        <extmap-allow-mixed xmlns="urn:xmpp:jingle:apps:rtp:rtp-hdrext:0"/>
        <rtcp-mux/>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="1739284756" name="jvb-a0">
          <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="jvb"/>
          <parameter name="msid" value="mixedmslabel mixedlabelaudio0"/>
        </source>
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="2200145521" name="ab12cd34-a0">
          <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="ab12cd34"/>
          <parameter name="msid" value="ab12cd34-audio-0-1 5d0b6f2e-8c1a-4c43-9e1d-2a7f0b3c9e11-1"/>
        </source>
      </description>
      <transport xmlns="urn:xmpp:jingle:transports:ice-udp:1" ufrag="3eq4r1jb2kqvqb"
                 pwd="7a4tc05rfrtbp0an6a0ro2mlqh">
        <web-socket xmlns="http://jitsi.org/protocol/colibri"
                    url="wss://meet.example.com/colibri-ws/default-id/4d1e/7c1e5a02?pwd=1s2u"/>
        <rtcp-mux/>
        <fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">
          3f:7a:00:c2</fingerprint>
        <candidate component="1" foundation="1" generation="0" id="6e2f" network="0"
                   priority="2130706431" protocol="udp" type="host" ip="198.51.100.7" port="10000"/>
        <candidate component="1" foundation="2" generation="0" id="8a11" network="0"
                   priority="1694498815" protocol="udp" type="srflx" ip="203.0.113.9" port="10000"
                   rel-addr="198.51.100.7" rel-port="10000"/>
      </transport>
    </content>
    <group xmlns="urn:xmpp:jingle:apps:grouping:0" semantics="BUNDLE">
      <content name="audio"/>
    </group>
    <startmuted xmlns="http://jitsi.org/jitmeet/start-muted" audio="true" video="false"/>
    <bridge-session xmlns="http://jitsi.org/protocol/focus" id="0c2f7d4e" region="eu-west"/>
  </jingle>
</iq>
"""


def jingle_of(xml: str) -> Jingle:
    iq = Iq(xml=ET.fromstring(xml))
    element: Jingle = iq["jingle"]
    return element


def wrap(inner: str, action: str = "source-add", sid: str = "s1") -> str:
    return (
        f'<iq xmlns="jabber:client" type="set" id="x"><jingle xmlns="urn:xmpp:jingle:1" '
        f'action="{action}" sid="{sid}">{inner}</jingle></iq>'
    )


def test_parse_jicofo_offer() -> None:
    offer = J.parse_jingle(jingle_of(OFFER))
    assert (offer.action, offer.sid) == ("session-initiate", "9f3kq2mb7c1r")
    assert offer.initiator == "focus@auth.meet.example.com/focus"
    assert offer.content_names == ("audio",)
    assert offer.audio_content == "audio"
    assert offer.audio is not None
    opus = offer.audio.payload("opus")
    assert opus is not None
    assert (opus.id, opus.clockrate, opus.channels) == (111, 48000, 2)
    assert opus.parameters == (("minptime", "10"), ("useinbandfec", "1"))
    event = offer.audio.payload("telephone-event")
    assert event is not None and (event.id, event.clockrate, event.channels) == (126, 8000, 1)
    assert offer.audio.extension_id(AUDIO_LEVEL_URI) == 1
    assert offer.audio.extension_id("urn:ietf:params:rtp-hdrext:sdes:mid") == 10
    assert offer.audio.sources == offer.sources
    assert offer.sources == (
        MediaSource(1739284756, "jvb-a0", "jvb", "mixedmslabel mixedlabelaudio0", "audio"),
        MediaSource(
            2200145521,
            "ab12cd34-a0",
            "ab12cd34",
            "ab12cd34-audio-0-1 5d0b6f2e-8c1a-4c43-9e1d-2a7f0b3c9e11-1",
            "audio",
        ),
    )
    t = offer.transport
    assert t is not None
    assert (t.ufrag, t.pwd, t.rtcp_mux) == ("3eq4r1jb2kqvqb", "7a4tc05rfrtbp0an6a0ro2mlqh", True)
    assert t.websocket_url == "wss://meet.example.com/colibri-ws/default-id/4d1e/7c1e5a02?pwd=1s2u"
    assert t.fingerprints == (DtlsFingerprint("sha-256", "3F:7A:00:C2", "actpass"),)
    assert t.candidates == (
        IceCandidate("1", 1, "udp", 2130706431, "198.51.100.7", 10000, "host", 0, "6e2f", 0),
        IceCandidate(
            "2", 1, "udp", 1694498815, "203.0.113.9", 10000, "srflx", 0, "8a11", 0,
            "198.51.100.7", 10000,
        ),
    )  # fmt: skip
    assert offer.bridge_session == J.BridgeSessionInfo("0c2f7d4e", "eu-west", False)
    assert offer.start_muted_audio is True
    assert offer.reason is None


def test_sources_in_every_place_jicofo_may_put_them() -> None:
    inner = """
      <content name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio">
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="11">
          <ssrc-info xmlns="http://jitsi.org/jitmeet" owner="room@conference.x/ab12cd34"/>
          <parameter xmlns="urn:xmpp:jingle:apps:rtp:1" name="msid" value="legacy ns"/>
        </source>
      </description>
      <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="12" name="cd-a0"/></content>
      <content name="video"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="video">
        <source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="13" name="cd-v0"/>
        <ssrc-group xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" semantics="FID">
          <source ssrc="13"/><source ssrc="14"/></ssrc-group>
      </description></content>
      <json-message xmlns="http://jitsi.org/jitmeet">{"sources":{"ef56":[[{"s":15,"n":"ef56-v0"}],[],[{"s":16,"n":"ef56-a0","m":"a b"}]]}}</json-message>
    """
    request = J.parse_jingle(jingle_of(wrap(inner)))
    assert request.sources == (
        MediaSource(12, "cd-a0", None, None, "audio"),
        MediaSource(11, None, "room@conference.x/ab12cd34", "legacy ns", "audio"),
        MediaSource(13, "cd-v0", None, None, "video"),
        MediaSource(15, "ef56-v0", "ef56", None, "video"),
        MediaSource(16, "ef56-a0", "ef56", "a b", "audio"),
    )
    assert [s.ssrc for s in request.audio_sources] == [12, 11, 16]
    assert request.transport is None


@pytest.mark.parametrize(
    ("inner", "action", "sid"),
    [
        ("", "source-add", ""),  # no sid
        ("", "", "s"),  # no action
        ('<content name="audio"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="0"/></content>', "source-add", "s"),
        ('<content name="audio"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="4294967296"/></content>', "source-add", "s"),
        ('<content name="audio"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="+5"/></content>', "source-add", "s"),
        ('<content name="audio"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0" ssrc="١٢"/></content>', "source-add", "s"),
        ('<content name="audio"><source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0"/></content>', "source-add", "s"),
        ('<content name="audio"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><candidate component="1" foundation="1" ip="1.2.3.4" port="70000" priority="1" protocol="udp" type="host"/></transport></content>', "transport-info", "s"),
        ('<content name="audio"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"><fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256"/></transport></content>', "transport-info", "s"),
        ('<content name="audio"><description xmlns="urn:xmpp:jingle:apps:rtp:1" media="audio"><payload-type id="128" name="x"/></description></content>', "session-initiate", "s"),
        ('<json-message xmlns="http://jitsi.org/jitmeet">{"sources":{"a":[[],[],[{"s":"1"}]]}}</json-message>', "source-add", "s"),
        ('<json-message xmlns="http://jitsi.org/jitmeet">{"sources":</json-message>', "source-add", "s"),
        ('<json-message xmlns="http://jitsi.org/jitmeet">[1]</json-message>', "source-add", "s"),
    ],
)  # fmt: skip
def test_malformed_jingle_raises_the_parse_error(inner: str, action: str, sid: str) -> None:
    with pytest.raises(JingleParseError) as caught:
        J.parse_jingle(jingle_of(wrap(inner, action, sid)))
    assert caught.value.condition == "bad-request"


def test_reason_and_restart() -> None:
    inner = (
        "<reason><connectivity-error/><text>ICE FAILED</text></reason>"
        '<bridge-session xmlns="http://jitsi.org/protocol/focus" id="b1" restart="true"/>'
    )
    request = J.parse_jingle(jingle_of(wrap(inner, "session-terminate")))
    assert request.reason == JingleReason("connectivity-error", "ICE FAILED")
    assert request.bridge_session == J.BridgeSessionInfo("b1", None, True)


LOCAL = TransportDescription(
    ufrag="Qm3v",
    pwd="R9pY0kE1u2c3x4z5a6b7c8d9",
    candidates=(
        IceCandidate("3c9a", 1, "udp", 2130706431, "192.0.2.50", 41234, "host", 0, "k2j4", 1,
                     "192.0.2.1", 9),  # rel-addr on a host candidate is not written
        IceCandidate("5b", 1, "udp", 1694498815, "203.0.113.5", 41234, "srflx", 3, "k2j5", 1,
                     "192.0.2.50", 41234),  # generation 3 is written as 0
    ),
    fingerprints=(DtlsFingerprint("sha-256", "A1:B2:09", "actpass"),),
)  # fmt: skip


def test_session_accept_element_by_element() -> None:
    offer = J.parse_jingle(jingle_of(OFFER))
    audio = LocalAudio(3141592653, "7c1e5a02-a0", "7c1e5a02-audio-0-1 0f6c-1")
    iq = Iq()
    J.build_session_accept(iq["jingle"], offer=offer, local=LOCAL, audio=audio, responder="gw@x/y")
    root = iq.xml.find("j:jingle", NS)
    assert root is not None
    assert root.attrib == {
        "action": "session-accept",
        "sid": "9f3kq2mb7c1r",
        "initiator": "focus@auth.meet.example.com/focus",
        "responder": "gw@x/y",
    }
    assert [c.tag for c in root] == [f"{{{NS['j']}}}content", f"{{{NS['grp']}}}group"]
    content = root[0]
    assert content.attrib == {"creator": "initiator", "name": "audio", "senders": "both"}
    description, transport = list(content)
    assert description.tag == f"{{{NS['rtp']}}}description"
    assert description.attrib == {"media": "audio"}
    pts = description.findall("rtp:payload-type", NS)
    assert [p.attrib for p in pts] == [
        {"id": "111", "name": "opus", "clockrate": "48000", "channels": "2"},
        {"id": "126", "name": "telephone-event", "clockrate": "8000"},
    ]
    assert [p.attrib for p in pts[0]] == [
        {"name": "minptime", "value": "10"},
        {"name": "useinbandfec", "value": "1"},
    ]
    (source,) = description.findall("ssma:source", NS)
    assert source.attrib == {"ssrc": "3141592653", "name": "7c1e5a02-a0"}
    assert [(c.tag, c.attrib) for c in source] == [
        (f"{{{NS['ssma']}}}parameter", {"name": "msid", "value": "7c1e5a02-audio-0-1 0f6c-1"})
    ]
    assert description.find("rtp:rtcp-mux", NS) is not None
    assert [h.attrib for h in description.findall("hdr:rtp-hdrext", NS)] == [
        {"id": "1", "uri": AUDIO_LEVEL_URI}
    ]
    assert transport.tag == f"{{{NS['ice']}}}transport"
    assert transport.attrib == {"ufrag": "Qm3v", "pwd": "R9pY0kE1u2c3x4z5a6b7c8d9"}
    (fingerprint,) = transport.findall("dtls:fingerprint", NS)
    assert fingerprint.attrib == {"hash": "sha-256", "setup": "active"}
    assert fingerprint.text == "A1:B2:09"
    candidates = transport.findall("ice:candidate", NS)
    assert [c.attrib for c in candidates] == [
        {"component": "1", "foundation": "3c9a", "generation": "0", "id": "k2j4",
         "ip": "192.0.2.50", "network": "1", "port": "41234", "priority": "2130706431",
         "protocol": "udp", "type": "host"},
        {"component": "1", "foundation": "5b", "generation": "0", "id": "k2j5",
         "ip": "203.0.113.5", "network": "1", "port": "41234", "priority": "1694498815",
         "protocol": "udp", "type": "srflx", "rel-addr": "192.0.2.50", "rel-port": "41234"},
    ]  # fmt: skip
    group = root[1]
    assert group.attrib == {"semantics": "BUNDLE"}
    assert [c.attrib for c in group] == [{"name": "audio"}]
    # And what we build parses back to the same values.
    again = J.parse_jingle(jingle_of(str(iq)))
    assert again.sources == (MediaSource(3141592653, "7c1e5a02-a0", None, audio.msid, "audio"),)
    assert again.transport is not None
    assert [c.generation for c in again.transport.candidates] == [0, 0]


def test_transport_info_carries_the_same_credentials() -> None:
    offer = J.parse_jingle(jingle_of(OFFER))
    iq = Iq()
    J.build_transport_info(iq["jingle"], offer=offer, local=LOCAL)
    parsed = J.parse_jingle(jingle_of(str(iq)))
    assert parsed.action == "transport-info" and parsed.sid == offer.sid
    assert parsed.transport is not None
    assert (parsed.transport.ufrag, parsed.transport.pwd) == (LOCAL.ufrag, LOCAL.pwd)
    assert [c.ip for c in parsed.transport.candidates] == ["192.0.2.50", "203.0.113.5"]
    assert parsed.transport.fingerprints == (DtlsFingerprint("sha-256", "A1:B2:09", "active"),)


def test_terminate_with_restart() -> None:
    iq = Iq()
    J.build_session_terminate(
        iq["jingle"],
        sid="s9",
        reason=JingleReason("connectivity-error", "ICE FAILED"),
        bridge_session_id="b7",
        restart=True,
    )
    root = iq.xml.find("j:jingle", NS)
    assert root is not None
    assert root.attrib == {"action": "session-terminate", "sid": "s9"}
    reason = root.find("j:reason", NS)
    assert reason is not None
    assert [c.tag for c in reason] == [f"{{{NS['j']}}}connectivity-error", f"{{{NS['j']}}}text"]
    bridge = root.find("focus:bridge-session", NS)
    assert bridge is not None and bridge.attrib == {"id": "b7", "restart": "true"}


def test_local_audio_names() -> None:
    audio = LocalAudio.for_nick("7c1e5a02", 5)
    assert audio.name == "7c1e5a02-a0"
    stream, track = audio.msid.split(" ")
    assert stream == "7c1e5a02-audio-0-1" and track.endswith("-1")


def test_json_sources_round_trip() -> None:
    text = json.dumps({"sources": {"jvb": [[], [], [{"s": 7, "n": "jvb-a0", "m": "x y"}]]}})
    assert J.parse_json_sources(text) == [MediaSource(7, "jvb-a0", "jvb", "x y", "audio")]


# --- fuzz: a peer's garbage raises JingleParseError and nothing else ------------------------------

# XML 1.0 text: no control characters or surrogates (those never reach a parsed stanza).
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_ATTRS = st.dictionaries(
    st.sampled_from(
        ["ssrc", "id", "port", "priority", "component", "generation", "name", "ip", "network",
         "clockrate", "channels", "foundation", "protocol", "type", "hash", "setup", "rel-port",
         "owner", "uri", "action", "sid", "restart", "audio", "media", "ufrag", "pwd"]
    ),
    st.one_of(_TEXT, st.integers(-5, 2**33).map(str)),
    max_size=6,
)  # fmt: skip
_TAGS = st.sampled_from(
    [
        ("urn:xmpp:jingle:1", "content"),
        ("urn:xmpp:jingle:apps:rtp:1", "description"),
        ("urn:xmpp:jingle:apps:rtp:1", "payload-type"),
        ("urn:xmpp:jingle:apps:rtp:1", "parameter"),
        ("urn:xmpp:jingle:apps:rtp:ssma:0", "source"),
        ("urn:xmpp:jingle:apps:rtp:ssma:0", "parameter"),
        ("http://jitsi.org/jitmeet", "ssrc-info"),
        ("http://jitsi.org/jitmeet", "json-message"),
        ("urn:xmpp:jingle:apps:rtp:rtp-hdrext:0", "rtp-hdrext"),
        ("urn:xmpp:jingle:transports:ice-udp:1", "transport"),
        ("urn:xmpp:jingle:transports:ice-udp:1", "candidate"),
        ("urn:xmpp:jingle:apps:dtls:0", "fingerprint"),
        ("http://jitsi.org/protocol/focus", "bridge-session"),
        ("urn:xmpp:jingle:1", "reason"),
        ("http://jitsi.org/jitmeet/start-muted", "startmuted"),
    ]
)


@st.composite
def _trees(draw: st.DrawFn, depth: int = 0) -> ET.Element:
    ns, name = draw(_TAGS)
    element = ET.Element(f"{{{ns}}}{name}", draw(_ATTRS))
    element.text = draw(st.one_of(st.none(), _TEXT, st.just('{"sources":{"a":[[],[],[{"s":1}]]}}')))
    if depth < 3:
        for child in draw(st.lists(_trees(depth + 1), max_size=3)):
            element.append(child)
    return element


@settings(deadline=None)
@given(st.lists(_trees(), max_size=4), _ATTRS)
def test_fuzzed_jingle_raises_only_the_parse_error(
    children: list[ET.Element], attrs: dict[str, str]
) -> None:
    root = ET.Element("{urn:xmpp:jingle:1}jingle", {"action": "source-add", "sid": "s", **attrs})
    root.extend(children)
    iq = ET.Element("{jabber:client}iq", {"type": "set", "id": "1"})
    iq.append(root)
    element = Iq(xml=ET.fromstring(ET.tostring(iq)))["jingle"]
    try:
        J.parse_jingle(element)
    except JingleParseError:
        pass
