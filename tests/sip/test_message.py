"""SIP message parsing and serialisation details (RFC 3261 §7, §18.3, §19, §20)."""

from __future__ import annotations

import pytest

from sip import Request, Response, SipParseError, StreamFramer, parse_message, parse_uri
from sip.headers import parse_name_addr, parse_via

INVITE = (
    b"INVITE sip:room@gw.example.com SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK776;rport\r\n"
    b"Via: SIP/2.0/TCP proxy.example.com;branch=z9hG4bKabc;received=192.0.2.9, "
    b"SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bKdef;maddr=239.1.1.1\r\n"
    b'f: "Alice \\"A\\" Smith" <sip:+15551234567@trunk.example.com;user=phone>;tag=a1\r\n'
    b"t: <sip:room@gw.example.com>\r\n"
    b"i: abc123@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Max-Forwards: 69\r\n"
    b"m: <sip:alice@10.0.0.1:5062;transport=udp>;expires=60\r\n"
    b"X-Room-Name: standup\r\n"
    b"x-room-pass: s3cret\r\n"
    b"Subject: folded\r\n"
    b"  onto two lines\r\n"
    b"k: timer, replaces\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def test_request_fields() -> None:
    m = parse_message(INVITE)
    assert isinstance(m, Request)
    assert m.method == "INVITE"
    assert m.uri.user == "room" and m.uri.host == "gw.example.com"
    assert m.call_id == "abc123@10.0.0.1"
    assert (m.cseq.seq, m.cseq.method) == (7, "INVITE")
    assert m.max_forwards == 69
    assert m.body == b"v=0\r"  # Content-Length 4 wins over the datagram's length
    assert m.content_type == "application/sdp"
    # Compact forms expand; lookup is case-insensitive; unknown names keep their spelling.
    assert m.headers.get("x-room-name") == "standup"
    assert m.headers.get("X-ROOM-PASS") == "s3cret"
    assert ("x-room-pass", "s3cret") in list(m.headers)
    assert m.headers.get("Subject") == "folded onto two lines"
    assert m.header_tokens("Supported") == ["timer", "replaces"]


def test_vias() -> None:
    m = parse_message(INVITE)
    vias = m.vias
    assert len(vias) == 3
    assert vias[0].transport == "UDP" and vias[0].sent_by == ("10.0.0.1", 5062)
    assert vias[0].branch == "z9hG4bK776" and vias[0].has_rport and vias[0].rport is None
    assert vias[1].transport == "TCP" and vias[1].received == "192.0.2.9"
    assert vias[1].port is None
    assert vias[2].host == "[2001:db8::1]" and vias[2].port == 5070
    assert vias[2].maddr == "239.1.1.1"


def test_from_with_escaped_quotes() -> None:
    m = parse_message(INVITE)
    frm = m.from_
    assert frm.display_name == 'Alice "A" Smith'
    assert frm.tag == "a1"
    assert frm.uri.user == "+15551234567" and frm.uri.params == {"user": "phone"}
    # Serialising quotes again and re-parses to the same value.
    assert parse_name_addr(str(frm)).display_name == 'Alice "A" Smith'


def test_contact_expires_param() -> None:
    m = parse_message(INVITE)
    (contact,) = m.contacts
    assert contact.expires == 60
    assert contact.uri.transport == "udp"
    assert contact.uri.port == 5062


def test_round_trip() -> None:
    m = parse_message(INVITE)
    data = bytes(m)
    assert data.startswith(b"INVITE sip:room@gw.example.com SIP/2.0\r\n")
    assert b"\r\nCall-ID: abc123@10.0.0.1\r\n" in data  # compact forms written in full
    assert data.endswith(b"Content-Length: 4\r\n\r\nv=0\r")
    again = parse_message(data)
    assert again.headers.get("X-Room-Name") == "standup"
    assert [str(v) for v in again.vias] == [str(v) for v in m.vias]


def test_response() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    m = parse_message(data)
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (180, "Ringing")
    assert m.to.tag == "2"


def test_udp_body_shorter_than_content_length_is_an_error() -> None:
    with pytest.raises(SipParseError, match="shorter than Content-Length"):
        parse_message(INVITE.replace(b"l: 4", b"l: 400"))


def test_udp_without_content_length_takes_the_rest() -> None:
    m = parse_message(INVITE.replace(b"l: 4\r\n", b""))
    assert m.body == b"v=0\r\n"


def test_stream_requires_content_length() -> None:
    with pytest.raises(SipParseError, match="required"):
        parse_message(INVITE.replace(b"l: 4\r\n", b""), stream=True)


def test_multi_value_header_splits_only_list_headers() -> None:
    m = parse_message(
        INVITE.replace(
            b"Subject: folded\r\n",
            b'X-Commas: a, b, c\r\nWWW-Authenticate: Digest realm="a,b", nonce="1"\r\n'
            b"Subject: folded\r\n",
        )
    )
    assert m.headers.values("X-Commas") == ["a, b, c"]
    assert m.headers.values("WWW-Authenticate") == ['Digest realm="a,b", nonce="1"']
    assert len(m.headers.values("Via")) == 3


@pytest.mark.parametrize(
    ("text", "user", "host", "port", "params"),
    [
        ("sip:alice@example.com", "alice", "example.com", None, {}),
        (
            "sips:bob:pw@[2001:db8::2]:5061;transport=tls",
            "bob",
            "[2001:db8::2]",
            5061,
            {"transport": "tls"},
        ),
        (
            "sip:+1555%23123@gw;user=phone;lr",
            "+1555%23123",
            "gw",
            None,
            {"user": "phone", "lr": None},
        ),
        (
            "sip:user;par=u%40example.net@example.com",
            "user;par=u%40example.net",
            "example.com",
            None,
            {},
        ),
        ("sip:example.com:5070", None, "example.com", 5070, {}),
    ],
)
def test_uris(
    text: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> None:
    uri = parse_uri(text)
    assert (uri.user, uri.host, uri.port, uri.params) == (user, host, port, params)
    assert str(uri) == text


def test_uri_escapes_and_tel() -> None:
    assert parse_uri("sip:+1555%23123@gw").user_unescaped == "+1555#123"
    tel = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert tel.scheme == "tel" and tel.user == "+1-201-555-0123"
    assert tel.params == {"phone-context": "example.com"}
    assert str(tel) == "tel:+1-201-555-0123;phone-context=example.com"
    other = parse_uri("urn:service:sos")
    assert other.scheme == "urn" and other.opaque == "service:sos"


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:user@",
        "sip:user@host:99999",
        "sip:user@[::1",
        "sip:us er@host",
        "sip:host;;lr",
        "1sip:x",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


def test_via_with_ipv6_received() -> None:
    via = parse_via(
        "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bK1;received=2001:db8::10;rport=5062"
    )
    assert via.received == "2001:db8::10" and via.rport == 5062


def test_stream_framer_cuts_by_content_length() -> None:
    framer = StreamFramer()
    two = INVITE + b"\r\n\r\n" + INVITE  # a keep-alive between two messages
    framer.feed(two[:50])
    assert framer.messages() == []
    framer.feed(two[50:])
    messages = framer.messages()
    assert len(messages) == 2
    assert all(parse_message(m, stream=True).body == b"v=0\r" for m in messages)
    # The body's fifth octet ("\n") stays in the buffer as the start of the next message and
    # is skipped as keep-alive whitespace.
    assert framer.pings >= 1


def test_stream_framer_rejects_missing_length() -> None:
    framer = StreamFramer()
    framer.feed(INVITE.replace(b"l: 4\r\n", b""))
    with pytest.raises(SipParseError):
        framer.messages()


def test_large_header_section_rejected() -> None:
    big = INVITE.replace(b"Subject: folded", b"Subject: " + b"x" * 70000)
    with pytest.raises(SipParseError) as info:
        parse_message(big)
    assert info.value.status == 513
