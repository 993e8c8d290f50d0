"""RFC 3264 offer/answer (sip/offer_answer.py): exact answers for every rule, our offers and the
answers to them, re-offers (§8), SDES-SRTP, and a Hypothesis property over generated offers."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable

import pylibsrtp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip.offer_answer import (
    Direction,
    MediaNegotiator,
    NegotiatedCodec,
    NegotiatedStream,
    NegotiationError,
    OfferAnswerConfig,
    SrtpKeys,
    SrtpMode,
    TelephoneEvent,
)
from sip.sdp import Crypto, CryptoKey, SessionDescription, parse_sdp

LOCAL = "192.0.2.10"
PORT = 40000
SESSION = 7000


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


def offer(body: str, *, address: str = "203.0.113.5", version: int = 1) -> SessionDescription:
    kind = "IP6" if ":" in address else "IP4"
    head = f"v=0\no=peer 99 {version} IN {kind} {address}\ns=-\nc=IN {kind} {address}\nt=0 0\n"
    return parse_sdp(head + body.strip("\n"))


def counter_bytes() -> Callable[[int], bytes]:
    """Deterministic stand-in for secrets.token_bytes: 0x01..., then 0x02..., ..."""
    counter = itertools.count(1)

    def token_bytes(n: int) -> bytes:
        return bytes([next(counter)]) * n

    return token_bytes


def negotiator(config: OfferAnswerConfig | None = None, **kwargs: object) -> MediaNegotiator:
    address = str(kwargs.pop("address", LOCAL))
    assert not kwargs
    return MediaNegotiator(address, PORT, config, session_id=SESSION, token_bytes=counter_bytes())


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


SIPP_ROOM = """
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""


class TestAnswer:
    def test_sipp_offer_exact_answer_and_stream(self) -> None:
        answer, stream = negotiator().receive_offer(offer(SIPP_ROOM))
        assert answer.serialize() == crlf(
            f"""
v=0
o=pygasi {SESSION} {SESSION} IN IP4 {LOCAL}
s=pygasi
c=IN IP4 {LOCAL}
t=0 0
m=audio {PORT} RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
a=rtcp:{PORT + 1}
"""
        )
        assert stream == NegotiatedStream(
            remote_address="203.0.113.5",
            remote_port=6000,
            remote_rtcp_address="203.0.113.5",
            remote_rtcp_port=6001,
            rtcp_mux=False,
            codec=NegotiatedCodec("PCMA", 8, 8, 8000, 1, {}),
            telephone_event=TelephoneEvent(101, 101, 8000, frozenset(range(16))),
            ptime=20,
            remote_ptime=20,
            direction=Direction.SENDRECV,
            srtp=None,
        )
        assert stream.may_send and stream.should_receive

    def test_reuses_offered_dynamic_payload_types(self) -> None:
        answer, stream = negotiator().receive_offer(
            offer(
                """
m=audio 6000 RTP/AVP 96 0 97 98
a=rtpmap:96 OPUS/48000/2
a=fmtp:96 maxplaybackrate=16000;useinbandfec=1
a=rtpmap:97 telephone-event/8000
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=ptime:40
"""
            )
        )
        assert answer.media[0].formats == ("96", "98")
        assert [str(a) for a in answer.media[0].attributes] == [
            "rtpmap:96 opus/48000/2",
            "fmtp:96 minptime=10;useinbandfec=1",
            "rtpmap:98 telephone-event/48000",
            "fmtp:98 0-16",
            "ptime:20",
            "sendrecv",
            f"rtcp:{PORT + 1}",
        ]
        assert stream.codec == NegotiatedCodec(
            "opus", 96, 96, 48000, 2, {"maxplaybackrate": "16000", "useinbandfec": "1"}
        )
        assert stream.telephone_event == TelephoneEvent(98, 98, 48000, frozenset(range(17)))
        assert (stream.ptime, stream.remote_ptime) == (20, 40)

    @pytest.mark.parametrize(
        ("codecs", "expected"),
        [
            (("opus", "G722", "PCMU", "PCMA"), ("opus", 102, 100)),
            (("G722", "opus"), ("G722", 9, 101)),
            (("pcma", "PCMU"), ("PCMA", 8, 101)),
            (("PCMU",), ("PCMU", 0, 101)),
        ],
    )
    def test_our_preference_order_wins(
        self, codecs: tuple[str, ...], expected: tuple[str, int, int]
    ) -> None:
        freeswitch = offer(
            """
m=audio 24580 RTP/AVP 8 0 9 102 3 101 100 13
a=rtpmap:102 opus/48000/2
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:13 CN/8000
"""
        )
        answer, stream = negotiator(OfferAnswerConfig(codecs=codecs)).receive_offer(freeswitch)
        name, pt, te = expected
        assert (stream.codec.name, stream.codec.payload_type) == (name, pt)
        assert stream.telephone_event is not None
        assert stream.telephone_event.payload_type == te
        # Exactly one audio codec plus telephone-event (the media path is unambiguous).
        assert answer.media[0].formats == (str(pt), str(te))

    def test_static_payload_types_without_rtpmap(self) -> None:
        answer, stream = negotiator().receive_offer(offer("m=audio 6000 RTP/AVP 18 0 8"))
        assert stream.codec.name == "PCMU"
        assert answer.media[0].formats == ("0",)
        assert answer.media[0].rtpmaps()[0].encoding == "PCMU"
        assert stream.telephone_event is None

    def test_encoding_name_case_clock_and_channels(self) -> None:
        # PCMU at a wrong clock and mono opus are not our codecs; lower-case pcma is.
        _, stream = negotiator().receive_offer(
            offer(
                """
m=audio 6000 RTP/AVP 96 97 98
a=rtpmap:96 PCMU/16000
a=rtpmap:97 opus/48000/1
a=rtpmap:98 pcma/8000
"""
            )
        )
        assert (stream.codec.name, stream.codec.payload_type) == ("PCMA", 98)

    def test_g722_written_with_audio_rate_is_still_g722(self) -> None:
        answer, stream = negotiator().receive_offer(
            offer("m=audio 6000 RTP/AVP 9\na=rtpmap:9 G722/16000")
        )
        assert stream.codec == NegotiatedCodec("G722", 9, 9, 8000, 1, {})
        assert answer.media[0].rtpmaps()[9].clock_rate == 8000  # RFC 3551 §4.5.2

    def test_telephone_event_must_match_codec_clock(self) -> None:
        # A WebRTC gateway offering opus with telephone-event/8000 only: no DTMF PT for opus.
        answer, stream = negotiator().receive_offer(
            offer(
                """
m=audio 20000 RTP/AVP 111 126
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/8000
a=rtcp-mux
"""
            )
        )
        assert stream.codec.name == "opus"
        assert stream.telephone_event is None
        assert answer.media[0].formats == ("111",)

    @pytest.mark.parametrize(
        ("fmtp", "answered", "events"),
        [
            ("", "0-15", frozenset(range(16))),  # RFC 4733 §7.1.1 default
            ("a=fmtp:101 0-15,66,70", "0-15", frozenset(range(16))),
            ("a=fmtp:101 0-11, 16", "0-11,16", frozenset([*range(12), 16])),
        ],
    )
    def test_telephone_event_codes_intersected(
        self, fmtp: str, answered: str, events: frozenset[int]
    ) -> None:
        answer, stream = negotiator().receive_offer(
            offer(f"m=audio 6000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n{fmtp}")
        )
        assert answer.media[0].fmtps()[101].params == answered
        assert stream.telephone_event == TelephoneEvent(101, 101, 8000, events)

    @pytest.mark.parametrize("fmtp", ["a=fmtp:101 66-70", "a=fmtp:101 junk"])
    def test_unusable_telephone_event_is_left_out(self, fmtp: str) -> None:
        answer, stream = negotiator().receive_offer(
            offer(f"m=audio 6000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n{fmtp}")
        )
        assert stream.telephone_event is None
        assert answer.media[0].formats == ("0",)

    @pytest.mark.parametrize(
        ("offered", "answered", "may_send", "should_receive"),
        [
            ("a=sendrecv", Direction.SENDRECV, True, True),
            ("", Direction.SENDRECV, True, True),
            ("a=sendonly", Direction.RECVONLY, False, True),
            ("a=recvonly", Direction.SENDONLY, True, False),
            ("a=inactive", Direction.INACTIVE, False, False),
        ],
    )
    def test_direction_table(
        self, offered: str, answered: Direction, may_send: bool, should_receive: bool
    ) -> None:
        answer, stream = negotiator().receive_offer(offer(f"m=audio 6000 RTP/AVP 0\n{offered}"))
        assert answer.media[0].direction is answered
        assert stream.direction is answered
        assert (stream.may_send, stream.should_receive) == (may_send, should_receive)

    def test_session_level_direction(self) -> None:
        sdp = parse_sdp(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\na=sendonly\n"
            "m=audio 6000 RTP/AVP 0\n"
        )
        answer, _ = negotiator().receive_offer(sdp)
        assert answer.media[0].direction is Direction.RECVONLY

    @pytest.mark.parametrize("direction", ["", "a=sendrecv", "a=sendonly"])
    def test_rfc2543_hold_address(self, direction: str) -> None:
        answer, stream = negotiator().receive_offer(
            offer(f"m=audio 6000 RTP/AVP 0\n{direction}", address="0.0.0.0")
        )
        # RFC 3264 §8.4: never sendrecv towards 0.0.0.0; we must not send.
        assert answer.media[0].direction is Direction.RECVONLY
        assert not stream.may_send
        assert stream.should_receive

    @pytest.mark.parametrize(
        ("local", "offered", "answered"),
        [
            (Direction.SENDONLY, "a=sendrecv", Direction.SENDONLY),  # we hold the call
            (Direction.SENDONLY, "a=sendonly", Direction.INACTIVE),  # both hold
            (Direction.RECVONLY, "a=sendrecv", Direction.RECVONLY),  # we mute
            (Direction.RECVONLY, "a=recvonly", Direction.INACTIVE),
            (Direction.INACTIVE, "a=sendrecv", Direction.INACTIVE),
        ],
    )
    def test_local_direction_combined(
        self, local: Direction, offered: str, answered: Direction
    ) -> None:
        neg = negotiator()
        neg.local_direction = local
        answer, stream = neg.receive_offer(offer(f"m=audio 6000 RTP/AVP 0\n{offered}"))
        assert answer.media[0].direction is answered
        assert stream.direction is answered

    def test_rtcp_mux_answered_when_offered(self) -> None:
        answer, stream = negotiator().receive_offer(offer("m=audio 6000 RTP/AVP 0\na=rtcp-mux"))
        attributes = [str(a) for a in answer.media[0].attributes]
        assert "rtcp-mux" in attributes
        assert not any(a.startswith("rtcp:") for a in attributes)
        assert stream.rtcp_mux
        assert (stream.remote_rtcp_address, stream.remote_rtcp_port) == ("203.0.113.5", 6000)

    def test_rtcp_mux_refused_when_disabled(self) -> None:
        answer, stream = negotiator(OfferAnswerConfig(rtcp_mux=False)).receive_offer(
            offer("m=audio 6000 RTP/AVP 0\na=rtcp-mux\na=rtcp:7000 IN IP4 203.0.113.9")
        )
        assert not answer.media[0].rtcp_mux
        assert answer.media[0].rtcp is not None and answer.media[0].rtcp.port == PORT + 1
        assert not stream.rtcp_mux
        assert (stream.remote_rtcp_address, stream.remote_rtcp_port) == ("203.0.113.9", 7000)

    def test_local_rtcp_port_input(self) -> None:
        neg = MediaNegotiator(LOCAL, PORT, local_rtcp_port=50123, session_id=1)
        answer, _ = neg.receive_offer(offer("m=audio 6000 RTP/AVP 0"))
        assert "a=rtcp:50123\r\n" in answer.serialize()

    def test_extra_media_lines_rejected_in_place(self) -> None:
        answer, stream = negotiator().receive_offer(
            offer(
                """
m=video 5000 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 6000 RTP/AVP 0
m=audio 6002 RTP/AVP 8
m=application 5010 UDP/BFCP *
"""
            )
        )
        assert answer.serialize().split("\r\n")[5:] == [
            "m=video 0 RTP/AVP 96",
            f"m=audio {PORT} RTP/AVP 0",
            "a=rtpmap:0 PCMU/8000",
            "a=ptime:20",
            "a=sendrecv",
            f"a=rtcp:{PORT + 1}",
            "m=audio 0 RTP/AVP 8",
            "m=application 0 UDP/BFCP *",
            "",
        ]
        assert stream.remote_port == 6000

    def test_first_acceptable_audio_stream_is_used(self) -> None:
        # The first audio stream has no common codec, the second is disabled, the third fits.
        answer, stream = negotiator().receive_offer(
            offer(
                """
m=audio 6000 RTP/AVP 18
m=audio 0 RTP/AVP 0
m=audio 6004 RTP/AVP 8
"""
            )
        )
        assert [m.port for m in answer.media] == [0, 0, PORT]
        assert (stream.remote_port, stream.codec.name) == (6004, "PCMA")

    def test_no_common_codec_is_488(self) -> None:
        neg = negotiator()
        with pytest.raises(NegotiationError) as info:
            neg.receive_offer(
                offer(
                    """
m=audio 6000 RTP/AVP 96 18 101 13
a=rtpmap:96 PCMX/8000
a=rtpmap:101 telephone-event/8000
"""
                )
            )
        error = info.value
        assert isinstance(error, ValueError)
        assert error.status == 488
        assert error.reason == "Not Acceptable Here: no common codec (offered PCMX, G729)"
        assert error.warning() == '305 pygasi "no common codec (offered PCMX, G729)"'
        # Nothing changed: the next answer still carries the first version.
        answer, _ = neg.receive_offer(offer("m=audio 6000 RTP/AVP 0"))
        assert answer.origin.session_version == SESSION
        assert neg.current is not None

    @pytest.mark.parametrize(
        ("body", "detail", "warning"),
        [
            ("m=video 5000 RTP/AVP 96", "no audio stream offered", 304),
            ("m=audio 0 RTP/AVP 0", "audio stream disabled (port 0)", 304),
            ("m=audio 9 UDP/TLS/RTP/SAVPF 111", "unsupported transport UDP/TLS/RTP/SAVPF", 302),
            ("m=audio 6000 RTP/SAVP 0", "SRTP not enabled (RTP/SAVP)", 302),
        ],
    )
    def test_unusable_offers(self, body: str, detail: str, warning: int) -> None:
        with pytest.raises(NegotiationError) as info:
            negotiator().receive_offer(offer(body))
        assert (info.value.status, info.value.detail, info.value.warning_code) == (
            488,
            detail,
            warning,
        )

    def test_no_connection_line(self) -> None:
        sdp = parse_sdp("v=0\no=- 1 1 IN IP4 1.1.1.1\ns=-\nt=0 0\nm=audio 6000 RTP/AVP 0")
        with pytest.raises(NegotiationError, match="no c= line"):
            negotiator().receive_offer(sdp)

    def test_ipv6(self) -> None:
        neg = negotiator(address="2001:db8::10")
        answer, stream = neg.receive_offer(
            offer("m=audio 6000 RTP/AVP 9\na=rtpmap:9 G722/8000", address="2001:db8::99")
        )
        text = answer.serialize()
        assert f"o=pygasi {SESSION} {SESSION} IN IP6 2001:db8::10\r\n" in text
        assert "c=IN IP6 2001:db8::10\r\n" in text
        assert (stream.remote_address, stream.codec.name) == ("2001:db8::99", "G722")

    def test_address_family_mismatch_is_488(self) -> None:
        with pytest.raises(NegotiationError) as info:
            negotiator().receive_offer(offer("m=audio 6000 RTP/AVP 0", address="2001:db8::99"))
        assert info.value.warning_code == 301
        assert "IP6" in info.value.detail


KEY_A = bytes(range(30))
KEY_B = bytes(range(50, 80))
OUR_KEY_1 = b"\x01" * 30  # the first key counter_bytes() hands out
OUR_KEY_2 = b"\x02" * 30


def srtp_offer(proto: str = "RTP/SAVP", crypto: str | None = None) -> SessionDescription:
    if crypto is None:
        crypto = (
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY_A)}\n"
            f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_B)}|2^31\n"
        )
    return offer(f"m=audio 6000 {proto} 0 101\na=rtpmap:101 telephone-event/8000\n{crypto}")


class TestSrtp:
    def test_savp_offer_answered_with_our_key(self) -> None:
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL))
        answer, stream = neg.receive_offer(srtp_offer())
        media = answer.media[0]
        assert media.proto == "RTP/SAVP"
        # The _80 suite is preferred, so tag 2 is answered, with the same tag and our key.
        assert [str(a) for a in media.attributes][-1] == (
            f"crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{b64(OUR_KEY_1)}"
        )
        assert media.crypto == (Crypto(2, "AES_CM_128_HMAC_SHA1_80", (CryptoKey(OUR_KEY_1),)),)
        assert stream.srtp == SrtpKeys("AES_CM_128_HMAC_SHA1_80", OUR_KEY_1, KEY_B)

    def test_keys_work_with_libsrtp_both_ways(self) -> None:
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.REQUIRED))
        answer, stream = neg.receive_offer(srtp_offer())
        assert stream.srtp is not None
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        ours = pylibsrtp.Session(
            pylibsrtp.Policy(stream.srtp.local_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, 0, profile)
        )
        # The peer decrypts with the key it read from our answer's a=crypto.
        peer_key = answer.media[0].crypto[0].keys[0].key_salt
        peer = pylibsrtp.Session(
            pylibsrtp.Policy(peer_key, pylibsrtp.Policy.SSRC_ANY_INBOUND, 0, profile)
        )
        rtp = bytes([0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0x12, 0x34]) + b"\xd5" * 160
        assert peer.unprotect(ours.protect(rtp)) == rtp

    def test_only_usable_crypto_lines_are_chosen(self) -> None:
        # MKI and session parameters cannot be given to libsrtp: skip to the plain _32 line.
        crypto = (
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)}|2^20|1:4\n"
            f"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)} KDR=1\n"
            "a=crypto:3 F8_128_HMAC_SHA1_80 inline:" + b64(KEY_A) + "\n"
            f"a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY_B)}\n"
        )
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL))
        answer, stream = neg.receive_offer(srtp_offer(crypto=crypto))
        assert answer.media[0].crypto[0].tag == 4
        assert stream.srtp == SrtpKeys("AES_CM_128_HMAC_SHA1_32", OUR_KEY_1, KEY_B)

    def test_no_usable_crypto_is_488(self) -> None:
        crypto = "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:" + b64(bytes(46)) + "\n"
        with pytest.raises(NegotiationError) as info:
            negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL)).receive_offer(
                srtp_offer(crypto=crypto)
            )
        assert info.value.status == 488
        assert info.value.detail == "no acceptable a=crypto (offered AES_256_CM_HMAC_SHA1_80)"

    def test_plain_offer_when_srtp_required_is_488(self) -> None:
        with pytest.raises(NegotiationError) as info:
            negotiator(OfferAnswerConfig(srtp=SrtpMode.REQUIRED)).receive_offer(offer(SIPP_ROOM))
        assert info.value.status == 488
        assert info.value.reason == "Not Acceptable Here: SRTP required (RTP/AVP)"

    def test_plain_offer_when_srtp_optional_is_plain(self) -> None:
        answer, stream = negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL)).receive_offer(
            offer(SIPP_ROOM)
        )
        assert answer.media[0].proto == "RTP/AVP"
        assert not answer.media[0].crypto
        assert stream.srtp is None

    def test_reoffer_keeps_our_key_and_version(self) -> None:
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL))
        first, _ = neg.receive_offer(srtp_offer())
        again, stream = neg.receive_offer(srtp_offer())
        assert again == first
        assert stream.srtp is not None and stream.srtp.local_key == OUR_KEY_1


class TestReoffer:
    def test_identical_reoffer_gets_identical_answer(self) -> None:
        neg = negotiator()
        first, stream = neg.receive_offer(offer(SIPP_ROOM, version=1))
        # A session refresh re-INVITE: same SDP (same o= version).
        second, stream2 = neg.receive_offer(offer(SIPP_ROOM, version=1))
        assert second.to_bytes() == first.to_bytes()
        assert second.origin.session_version == SESSION
        assert stream2 == stream

    def test_changed_offer_increments_version_once_per_change(self) -> None:
        neg = negotiator()
        first, _ = neg.receive_offer(offer(SIPP_ROOM, version=1))
        held, stream = neg.receive_offer(
            offer(SIPP_ROOM.replace("sendrecv", "sendonly"), version=2)
        )
        assert held.origin.session_version == SESSION + 1
        assert held.origin.session_id == SESSION
        assert held.media[0].direction is Direction.RECVONLY
        assert not stream.may_send
        # The identical hold offer again: nothing changes.
        again, _ = neg.receive_offer(offer(SIPP_ROOM.replace("sendrecv", "sendonly"), version=2))
        assert again.origin.session_version == SESSION + 1
        resumed, stream = neg.receive_offer(offer(SIPP_ROOM, version=3))
        assert resumed.origin.session_version == SESSION + 2
        assert resumed.media == first.media
        assert stream.may_send

    def test_offer_change_that_leaves_our_answer_alone(self) -> None:
        # The peer moved its port: our SDP is unchanged, so is its version (RFC 3264 §8: the
        # version moves exactly when our description changes); the stream follows the peer.
        neg = negotiator()
        first, _ = neg.receive_offer(offer(SIPP_ROOM, version=1))
        moved, stream = neg.receive_offer(offer(SIPP_ROOM.replace("6000", "6100"), version=2))
        assert moved == first
        assert stream.remote_port == 6100

    def test_local_address_change_increments_version(self) -> None:
        neg = negotiator()
        neg.receive_offer(offer(SIPP_ROOM))
        neg.set_local_media("198.51.100.1", 41000)
        answer, _ = neg.receive_offer(offer(SIPP_ROOM))
        assert answer.origin.session_version == SESSION + 1
        assert answer.origin.address == "198.51.100.1"
        assert answer.media[0].port == 41000


class TestOurOffer:
    def test_default_offer_exact(self) -> None:
        assert negotiator().create_offer().serialize() == crlf(
            f"""
v=0
o=pygasi {SESSION} {SESSION} IN IP4 {LOCAL}
s=pygasi
c=IN IP4 {LOCAL}
t=0 0
m=audio {PORT} RTP/AVP 111 9 0 8 101 110
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:110 telephone-event/48000
a=fmtp:110 0-16
a=ptime:20
a=sendrecv
a=rtcp:{PORT + 1}
a=rtcp-mux
"""
        )

    def test_offer_follows_config(self) -> None:
        config = OfferAnswerConfig(
            codecs=("PCMA",), rtcp_mux=False, srtp=SrtpMode.REQUIRED, opus_payload_type=96
        )
        neg = negotiator(config)
        neg.local_direction = Direction.SENDONLY
        media = neg.create_offer().media[0]
        assert (media.proto, media.formats) == ("RTP/SAVP", ("8", "101"))
        assert [str(a) for a in media.attributes] == [
            "rtpmap:8 PCMA/8000",
            "rtpmap:101 telephone-event/8000",
            "fmtp:101 0-16",
            "ptime:20",
            "sendonly",
            f"rtcp:{PORT + 1}",
            f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(OUR_KEY_1)}",
            f"crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{b64(OUR_KEY_2)}",
        ]

    def test_answer_to_our_offer(self) -> None:
        neg = negotiator()
        neg.create_offer()
        assert neg.offer_pending
        stream = neg.receive_answer(
            offer(
                """
m=audio 7000 RTP/AVP 0 13 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
a=sendrecv
"""
            )
        )
        assert not neg.offer_pending
        assert neg.current == stream
        assert stream == NegotiatedStream(
            remote_address="203.0.113.5",
            remote_port=7000,
            remote_rtcp_address="203.0.113.5",
            remote_rtcp_port=7001,
            rtcp_mux=False,
            codec=NegotiatedCodec("PCMU", 0, 0, 8000, 1, {}),
            telephone_event=TelephoneEvent(101, 101, 8000, frozenset(range(16))),
            ptime=20,
            remote_ptime=30,
            direction=Direction.SENDRECV,
            srtp=None,
        )

    def test_answer_with_other_payload_numbers(self) -> None:
        # RFC 3264 §6.1 only recommends reusing our numbers: we send with the answer's, and
        # receive with ours.
        neg = negotiator()
        neg.create_offer()
        stream = neg.receive_answer(
            offer(
                """
m=audio 7000 RTP/AVP 96 97
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=0
a=rtpmap:97 telephone-event/48000
a=rtcp-mux
a=recvonly
"""
            )
        )
        assert stream.codec == NegotiatedCodec("opus", 96, 111, 48000, 2, {"stereo": "0"})
        assert stream.telephone_event == TelephoneEvent(97, 110, 48000, frozenset(range(16)))
        assert stream.rtcp_mux
        assert stream.remote_rtcp_port == 7000
        assert stream.direction is Direction.SENDONLY
        assert stream.may_send and not stream.should_receive

    def test_answer_hold_address_and_local_hold(self) -> None:
        neg = negotiator()
        neg.local_direction = Direction.SENDONLY
        neg.create_offer()
        stream = neg.receive_answer(offer("m=audio 7000 RTP/AVP 8\na=recvonly", address="0.0.0.0"))
        assert stream.direction is Direction.INACTIVE

    @pytest.mark.parametrize(
        ("body", "detail"),
        [
            ("m=audio 7000 RTP/AVP 18", "answer has no codec of our offer (G729)"),
            ("m=audio 7000 RTP/AVP 96\na=rtpmap:96 speex/8000", "no codec of our offer"),
            ("m=audio 0 RTP/AVP 0", "audio stream rejected"),
            ("m=audio 7000 RTP/AVP 0\nm=video 0 RTP/AVP 96", "answer has 2 m= lines"),
            ("m=audio 7000 RTP/SAVP 0", "answer changed the stream"),
        ],
    )
    def test_bad_answers(self, body: str, detail: str) -> None:
        neg = negotiator()
        neg.create_offer()
        with pytest.raises(NegotiationError) as info:
            neg.receive_answer(offer(body))
        assert detail in info.value.detail
        assert not neg.offer_pending  # consumed: the caller ends the call or re-offers

    def test_optional_srtp_offers_plain_rtp(self) -> None:
        offer_sdp = negotiator(OfferAnswerConfig(srtp=SrtpMode.OPTIONAL)).create_offer()
        assert offer_sdp.media[0].proto == "RTP/AVP" and not offer_sdp.media[0].crypto

    def test_srtp_offer_and_answer(self) -> None:
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.REQUIRED))
        neg.create_offer()
        stream = neg.receive_answer(
            offer(
                f"m=audio 7000 RTP/SAVP 0\na=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY_A)}"
            )
        )
        assert stream.srtp == SrtpKeys("AES_CM_128_HMAC_SHA1_32", OUR_KEY_2, KEY_A)

    @pytest.mark.parametrize(
        "crypto",
        [
            "",
            f"a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A)}",  # tag not offered
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY_A)}",  # tag 1 was _80
            f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY_A[:20])}",  # short key
        ],
    )
    def test_bad_srtp_answers(self, crypto: str) -> None:
        neg = negotiator(OfferAnswerConfig(srtp=SrtpMode.REQUIRED))
        neg.create_offer()
        with pytest.raises(NegotiationError, match="crypto"):
            neg.receive_answer(offer(f"m=audio 7000 RTP/SAVP 0\n{crypto}"))

    def test_offer_state_errors(self) -> None:
        neg = negotiator()
        with pytest.raises(NegotiationError) as info:
            neg.receive_answer(offer("m=audio 7000 RTP/AVP 0"))
        assert info.value.status == 400
        neg.create_offer()
        with pytest.raises(NegotiationError) as info:
            neg.receive_offer(offer(SIPP_ROOM))  # glare (RFC 3261 §14.2)
        assert info.value.status == 491
        assert info.value.reason == "Request Pending: an offer of ours is pending"
        neg.rollback()
        _, stream = neg.receive_offer(offer(SIPP_ROOM))
        assert stream.codec.name == "PCMA"

    def test_invite_without_sdp_then_hold_reinvite(self) -> None:
        # INVITE without SDP: we offer in the 200, the ACK brings the answer.
        neg = negotiator(OfferAnswerConfig(codecs=("PCMA", "PCMU")))
        first = neg.create_offer()
        neg.receive_answer(offer("m=audio 7000 RTP/AVP 8\na=sendrecv"))
        # A session-refresh re-INVITE without SDP: the same offer again, same version.
        same = neg.create_offer()
        assert same == first
        neg.receive_answer(offer("m=audio 7000 RTP/AVP 8\na=sendrecv"))
        # We put the call on hold: the changed offer gets version + 1.
        neg.local_direction = Direction.SENDONLY
        hold = neg.create_offer()
        assert hold.origin.session_version == SESSION + 1
        assert hold.media[0].direction is Direction.SENDONLY
        stream = neg.receive_answer(offer("m=audio 7000 RTP/AVP 8\na=recvonly"))
        assert (stream.may_send, stream.should_receive) == (True, False)

    def test_reoffer_keeps_media_lines_of_previous_exchange(self) -> None:
        neg = negotiator(OfferAnswerConfig(codecs=("PCMU",), rtcp_mux=False))
        neg.receive_offer(offer("m=video 5000 RTP/AVP 96\nm=audio 6000 RTP/AVP 0"))
        reoffer = neg.create_offer()
        assert [(m.media, m.port, m.formats) for m in reoffer.media] == [
            ("video", 0, ("96",)),
            ("audio", PORT, ("0", "101")),
        ]
        stream = neg.receive_answer(offer("m=video 0 RTP/AVP 96\nm=audio 6000 RTP/AVP 0"))
        assert stream.codec.name == "PCMU"


class TestConfig:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"codecs": ()},
            {"codecs": ("G729",)},
            {"codecs": ("PCMU", "pcmu")},
            {"srtp_suites": ("AES_256_CM_HMAC_SHA1_80",)},
            {"opus_payload_type": 101},
            {"telephone_event_payload_type": 90},
            {"ptime": 0},
        ],
    )
    def test_invalid(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            OfferAnswerConfig(**kwargs)  # type: ignore[arg-type]

    def test_random_session_id_and_keys(self) -> None:
        a = MediaNegotiator(LOCAL, PORT, OfferAnswerConfig(srtp=SrtpMode.REQUIRED))
        b = MediaNegotiator(LOCAL, PORT, OfferAnswerConfig(srtp=SrtpMode.REQUIRED))
        assert a.session_id != b.session_id
        assert 0 <= a.session_id < 2**62
        ka = a.create_offer().media[0].crypto[0].keys[0].key_salt
        kb = b.create_offer().media[0].crypto[0].keys[0].key_salt
        assert len(ka) == 30 and ka != kb


# --- Hypothesis: generated offers either negotiate a codec of the offer or give 488 ---------

_CODEC_MAPS = [
    "PCMU/8000",
    "PCMA/8000",
    "pcma/8000",
    "G722/8000",
    "opus/48000/2",
    "OPUS/48000/2",
    "opus/48000/1",
    "G729/8000",
    "PCMU/16000",
    "telephone-event/8000",
    "telephone-event/48000",
    "CN/8000",
    "speex/16000",
    None,  # no rtpmap
]


@st.composite
def offers(draw: st.DrawFn) -> str:
    media = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["audio", "audio", "audio", "video"]))
        port = draw(st.sampled_from([0, 6000, 6002]))
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/AVP", "RTP/SAVP", "RTP/AVPF"]))
        pts = draw(st.lists(st.integers(0, 127), min_size=1, max_size=5, unique=True))
        lines = [f"m={kind} {port} {proto} {' '.join(map(str, pts))}"]
        for pt in pts:
            encoding = draw(st.sampled_from(_CODEC_MAPS))
            if encoding is not None:
                lines.append(f"a=rtpmap:{pt} {encoding}")
            if draw(st.booleans()):
                lines.append(f"a=fmtp:{pt} {draw(st.sampled_from(['0-15', '0-16,66', 'x=1']))}")
        direction = draw(st.sampled_from(["", "sendrecv", "sendonly", "recvonly", "inactive"]))
        if direction:
            lines.append(f"a={direction}")
        if draw(st.booleans()):
            lines.append("a=rtcp-mux")
        if proto == "RTP/SAVP":
            suite = draw(st.sampled_from(["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]))
            lines.append(f"a=crypto:1 {suite} inline:{b64(KEY_A)}")
        media.append("\n".join(lines))
    address = draw(st.sampled_from(["203.0.113.5", "0.0.0.0"]))
    return f"v=0\no=- 1 1 IN IP4 {address}\ns=-\nc=IN IP4 {address}\nt=0 0\n" + "\n".join(media)


@given(offers(), st.sampled_from(list(SrtpMode)), st.sampled_from(list(Direction)))
def test_generated_offers(text: str, mode: SrtpMode, local: Direction) -> None:
    sdp = parse_sdp(text)
    neg = MediaNegotiator(LOCAL, PORT, OfferAnswerConfig(srtp=mode), session_id=5)
    neg.local_direction = local
    try:
        answer, stream = neg.receive_offer(sdp)
    except NegotiationError as exc:
        assert exc.status == 488
        assert exc.reason.startswith("Not Acceptable Here: ")
        return
    # RFC 3264 §6: one answer line per offer line, in order; exactly one stream accepted.
    assert len(answer.media) == len(sdp.media)
    accepted = [i for i, m in enumerate(answer.media) if m.port != 0]
    assert len(accepted) == 1
    index = accepted[0]
    offered, answered = sdp.media[index], answer.media[index]
    assert offered.media == "audio" and offered.port != 0
    assert answered.proto == offered.proto
    for i, m in enumerate(answer.media):
        if i != index:
            assert (m.media, m.port, m.formats) == (sdp.media[i].media, 0, sdp.media[i].formats)
    # The codec is one the offer has, under the offer's payload type.
    assert stream.codec.payload_type in offered.payload_types
    assert answered.payload_types[0] == stream.codec.payload_type
    rtpmap = offered.rtpmaps().get(stream.codec.payload_type)
    if rtpmap is not None:
        assert rtpmap.encoding.lower() == stream.codec.name.lower()
    if stream.telephone_event is not None:
        assert stream.telephone_event.payload_type in offered.payload_types
        assert stream.telephone_event.clock_rate == stream.codec.clock_rate
    # Direction: never more than the offer allows, nor more than we asked for.
    offered_direction = sdp.direction_for(offered)
    connection = sdp.connection_for(offered)
    if connection is not None and connection.is_hold_address:
        assert not stream.may_send
    assert stream.direction is answered.direction
    assert not (stream.may_send and not offered_direction.receives)
    assert not (stream.should_receive and not offered_direction.sends)
    assert not (stream.may_send and not local.sends)
    assert not (stream.should_receive and not local.receives)
    assert (stream.srtp is not None) == (offered.proto == "RTP/SAVP")
    assert parse_sdp(answer.serialize()) == answer
    # §8: the identical offer again gives the identical answer.
    assert neg.receive_offer(sdp)[0] == answer
