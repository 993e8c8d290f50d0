"""Hypothesis: whatever a peer sends, the SDP parser raises only SipParseError; whatever it
accepts re-serialises to text that parses back equal, and its typed accessors never raise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sip.errors import SipParseError
from sip.offer_answer import MediaNegotiator, NegotiationError, OfferAnswerConfig, SrtpMode
from sip.sdp import SessionDescription, parse_sdp


def check_parsed(sdp: SessionDescription) -> None:
    text = sdp.serialize()
    assert text.endswith("\r\n")
    assert parse_sdp(text) == sdp
    # None of the typed accessors may raise on a description that parsed.
    _ = sdp.direction
    for media in sdp.media:
        if media.is_rtp:
            _ = media.payload_types
        for fmtp in media.fmtps().values():
            fmtp.parameters()
        media.rtpmaps()
        _ = (media.ptime, media.maxptime, media.rtcp, media.rtcp_mux, media.crypto)
        _ = (media.direction, sdp.connection_for(media), sdp.direction_for(media))


def parse_or_reject(data: str | bytes) -> SessionDescription | None:
    try:
        sdp = parse_sdp(data)
    except SipParseError as exc:
        assert exc.status == 400
        return None
    check_parsed(sdp)
    return sdp


@given(st.text())
def test_arbitrary_text(text: str) -> None:
    parse_or_reject(text)


@given(st.binary())
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_reject(data)


# Lines that look like SDP, so the fuzzer gets past the first line and into every field parser.
_token = st.text(alphabet="0123456789abcAZ/:.-_^|=+ \t;*\x00\r٣", min_size=0, max_size=12)
_number = st.one_of(st.integers(0, 70000).map(str), st.sampled_from(["", "-1", "x", "2^20", "00"]))
_fields = st.lists(st.one_of(_token, _number), min_size=0, max_size=7).map(" ".join)
_attribute_names = st.sampled_from(
    [
        "rtpmap",
        "fmtp",
        "ptime",
        "maxptime",
        "rtcp",
        "rtcp-mux",
        "crypto",
        "sendrecv",
        "sendonly",
        "recvonly",
        "inactive",
        "x",
    ]
)
_attribute = st.one_of(
    st.builds(lambda n, v: f"a={n}:{v}", _attribute_names, _fields),
    st.builds(lambda n: f"a={n}", _attribute_names),
    st.builds(
        lambda pt, name, rate: f"a=rtpmap:{pt} {name}/{rate}",
        _number,
        st.sampled_from(["PCMU", "opus", "telephone-event", ""]),
        _number,
    ),
    st.builds(
        lambda tag, key, extra: f"a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:{key}{extra}",
        _number,
        st.sampled_from(["", "QUFB", "A" * 40, "!!", "QUFBQQ"]),
        st.sampled_from(["", "|2^20", "|1:4", "|2^20|1:4", "|x", "|1:0", "|2^99", "|1:4|2^20"]),
    ),
)
_KEY = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"  # 30 bytes
_valid_line = st.sampled_from(
    [
        "c=IN IP4 10.0.0.1",
        "c=IN IP4 0.0.0.0",
        "c=IN IP6 ::1",
        "m=audio 4000 RTP/AVP 0 8 9 101",
        "m=audio 4002 RTP/AVP 111 96 13",
        "m=audio 4004 RTP/SAVP 0 101",
        "m=audio 0 RTP/AVP 0",
        "m=video 5000 RTP/AVP 96",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 pcma/8000",
        "a=rtpmap:9 G722/16000",
        "a=rtpmap:111 opus/48000/2",
        "a=rtpmap:111 opus/48000",
        "a=rtpmap:96 telephone-event/48000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=fmtp:101 0-5,9,x",
        "a=fmtp:96 16",
        "a=sendonly",
        "a=recvonly",
        "a=inactive",
        "a=rtcp-mux",
        "a=rtcp:4001 IN IP4 10.0.0.9",
        "a=ptime:30",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{_KEY}",
        f"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{_KEY}|2^31",
        f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{_KEY}|1:4",
        "a=crypto:4 AES_CM_128_HMAC_SHA1_80 inline:QUFB",
    ]
)
_line = st.one_of(
    _valid_line,
    _attribute,
    st.builds(lambda f: f"m=audio {f}", _fields),
    st.builds(lambda p, f: f"m=audio {p} RTP/AVP {f}", _number, _fields),
    st.builds(lambda f: f"c=IN IP4 {f}", _token),
    st.builds(lambda f: f"c={f}", _fields),
    st.builds(lambda k, f: f"{k}={f}", st.sampled_from(list("vosiuepcbtrzkamxy")), _fields),
    _token,
)
_separator = st.sampled_from(["\n", "\r\n", "\r", "\n\n", " \n"])


@given(st.booleans(), st.lists(st.tuples(_line, _separator), max_size=14))
def test_sdp_shaped_lines(with_origin: bool, lines: list[tuple[str, str]]) -> None:
    text = "v=0\no=- 1 1 IN IP4 10.0.0.1\n" if with_origin else ""
    parse_or_reject(text + "".join(line + sep for line, sep in lines))


@given(
    st.lists(_valid_line, max_size=12),
    st.lists(st.tuples(st.integers(0, 12), _line), max_size=1),
    st.sampled_from(["\n", "\r\n"]),
)
def test_nearly_valid_offers_negotiate_safely(
    lines: list[str], wild: list[tuple[int, str]], separator: str
) -> None:
    for position, line in wild:
        lines.insert(position, line)
    sdp = parse_or_reject("v=0\no=- 1 1 IN IP4 10.0.0.1\n" + separator.join(lines))
    if sdp is None:
        return
    # Whatever parsed is also safe to negotiate: only NegotiationError comes out.
    for mode in (SrtpMode.DISABLED, SrtpMode.OPTIONAL, SrtpMode.REQUIRED):
        negotiator = MediaNegotiator("10.0.0.2", 40000, OfferAnswerConfig(srtp=mode))
        try:
            negotiator.receive_offer(sdp)
        except NegotiationError as exc:
            assert exc.status == 488
        negotiator = MediaNegotiator("10.0.0.2", 40000, OfferAnswerConfig(srtp=mode))
        negotiator.create_offer()
        try:
            negotiator.receive_answer(sdp)
        except NegotiationError as exc:
            assert exc.status == 488
