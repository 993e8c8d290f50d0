"""Hypothesis: whatever a peer sends, only SipParseError comes out of the parser, the stream
framer and the core's receive path."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip import SipParseError, StreamFramer, parse_message, parse_uri
from sip.core import CoreConfig, SipCore
from sip.flow import Flow
from sip.headers import parse_name_addr, parse_via

VALID = (
    b"INVITE sip:room@gw.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK776;rport\r\n"
    b'From: "Alice" <sip:alice@example.com>;tag=a1\r\n'
    b"To: <sip:room@gw.example.com>\r\n"
    b"Call-ID: abc123@10.0.0.1\r\nCSeq: 7 INVITE\r\nMax-Forwards: 69\r\n"
    b"Contact: <sip:alice@10.0.0.1:5062>\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\r\n"
)
TOKENS = [b"SIP/2.0", b" ", b"\r\n", b":", b";", b",", b"<", b">", b'"', b"\\", b"=", b"@",
          b"sip:", b"branch=", b"tag=", b"Via", b"CSeq", b"Content-Length", b"l", b"0", b"9999",
          b"\t", b"%", b"[", b"]", b"INVITE", b"ACK", b"\x00", b"\xff"]  # fmt: skip
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(data: bytes) -> None:
    try:
        parse_message(data)
    except SipParseError:
        pass


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_sip_like_tokens(parts: list[bytes]) -> None:
    _check(b"".join(parts))
    _check(VALID[:80] + b"".join(parts))


@SETTINGS
@given(st.integers(0, len(VALID) - 1), st.binary(min_size=1, max_size=8), st.booleans())
def test_mutated_valid_message(position: int, junk: bytes, replace: bool) -> None:
    data = VALID[:position] + junk + VALID[position + (len(junk) if replace else 0) :]
    _check(data)
    core = SipCore(CoreConfig(host="127.0.0.1"))
    core.receive(data, Flow("udp", ("127.0.0.1", 5099)), now=0.0)  # never raises
    core.handle_timer(100.0)
    core.datagrams_to_send()


@SETTINGS
@given(st.text(max_size=120))
def test_header_value_parsers(text: str) -> None:
    for parser in (parse_uri, parse_name_addr, parse_via):
        try:
            parser(text)
        except SipParseError:
            pass


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_stream_framer(chunks: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for chunk in [VALID, *chunks]:
            framer.feed(chunk)
            for message in framer.messages():
                _check(message)
    except SipParseError:
        pass
