"""SDP parse/serialise (sip/sdp.py) on real-world shapes of SDP, and the strict/lenient rules."""

from __future__ import annotations

import base64

import pytest

from sip.errors import SipParseError
from sip.sdp import (
    Attribute,
    Bandwidth,
    Connection,
    Crypto,
    CryptoKey,
    Direction,
    Fmtp,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SessionDescription,
    Timing,
    address_type,
    parse_sdp,
)


def crlf(text: str) -> str:
    return "".join(line + "\r\n" for line in text.strip("\n").split("\n"))


def roundtrip(sdp: SessionDescription) -> None:
    text = sdp.serialize()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert parse_sdp(text) == sdp
    assert parse_sdp(sdp.to_bytes()) == sdp


# SIPp's built-in uac scenario body, with its [placeholders] filled in.
SIPP_DEFAULT = """
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""

# reference/deps.md §7.1 (uac_room.xml), the scenario seen working against a Python UAS.
SIPP_ROOM = """
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
"""

# Asterisk behind a Kamailio/rtpengine: session-level direction, a=rtcp added by rtpengine.
ASTERISK = """
v=0
o=- 1714052440 1714052442 IN IP4 203.0.113.5
s=Asterisk
c=IN IP4 203.0.113.5
t=0 0
a=sendrecv
m=audio 17050 RTP/AVP 0 8 3 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:3 GSM/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=rtcp:17051
"""

FREESWITCH = """
v=0
o=FreeSWITCH 1700000000 1700000001 IN IP4 198.51.100.7
s=FreeSWITCH
c=IN IP4 198.51.100.7
t=0 0
m=audio 24580 RTP/AVP 102 9 0 8 104 3 101 100 13
a=rtpmap:102 opus/48000/2
a=fmtp:102 useinbandfec=1; maxaveragebitrate=30000; maxplaybackrate=48000; ptime=20; minptime=10
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:104 iLBC/8000
a=fmtp:104 mode=30
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:100 telephone-event/48000
a=fmtp:100 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=sendrecv
a=rtcp:24581 IN IP4 198.51.100.7
"""

# What a browser hands a WebRTC-to-SIP gateway (DTLS-SRTP, ICE): parsed fine, not negotiable.
BROWSER = """
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS stream
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Jk2z
a=ice-pwd:pLdqCJkVBgn8ocZ1lBiTIvxd
a=ice-options:trickle
a=fingerprint:sha-256 12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:stream track
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:3735928559 cname:4TOk42mSjXCkVIa6
"""

# A WebRTC gateway's SIP side (Janus SIP plugin style): plain RTP, opus, rtcp-mux.
WEBRTC_GATEWAY = """
v=0
o=- 1700000000 1 IN IP4 192.0.2.50
s=Janus SIP plugin
c=IN IP4 192.0.2.50
t=0 0
m=audio 20000 RTP/AVP 111 126
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/8000
a=sendrecv
a=rtcp-mux
"""

IPV6 = """
v=0
o=alice 2890844526 2890844527 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 49170 RTP/AVP 9 101
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=rtcp:49171 IN IP6 2001:db8::11
"""

KEY_80 = bytes(range(30))
KEY_32 = bytes(range(100, 130))
B64_80 = base64.b64encode(KEY_80).decode()
B64_32 = base64.b64encode(KEY_32).decode()
CRYPTO = f"""
v=0
o=- 1 1 IN IP4 192.0.2.20
s=-
c=IN IP4 192.0.2.20
t=0 0
m=audio 30000 RTP/SAVP 0 8 101
a=rtpmap:101 telephone-event/8000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{B64_80}|2^20|1:4 FEC_ORDER=FEC_SRTP
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{B64_32}
a=sendrecv
"""


class TestRealWorld:
    def test_sipp_default(self) -> None:
        sdp = parse_sdp(crlf(SIPP_DEFAULT))
        assert sdp.origin == Origin("user1", 53655765, 2353687637, "IN", "IP4", "127.0.0.1")
        assert sdp.session_name == "-"
        assert sdp.connection == Connection("IN", "IP4", "127.0.0.1")
        assert sdp.timings == (Timing(0, 0),)
        (audio,) = sdp.media
        assert (audio.media, audio.port, audio.proto, audio.formats) == (
            "audio",
            6000,
            "RTP/AVP",
            ("0",),
        )
        assert audio.payload_types == (0,)
        assert audio.rtpmaps() == {0: RtpMap(0, "PCMU", 8000)}
        assert audio.direction is None
        assert sdp.direction_for(audio) is Direction.SENDRECV
        # Exactly the bytes SIPp sent, CRLF-terminated.
        assert sdp.serialize() == crlf(SIPP_DEFAULT)
        roundtrip(sdp)

    def test_sipp_room_scenario(self) -> None:
        sdp = parse_sdp(crlf(SIPP_ROOM).encode())
        (audio,) = sdp.media
        assert audio.payload_types == (8, 101)
        assert audio.rtpmaps()[101] == RtpMap(101, "telephone-event", 8000)
        assert audio.fmtps() == {101: Fmtp(101, "0-15")}
        assert audio.ptime == 20.0
        assert audio.direction is Direction.SENDRECV
        assert sdp.serialize() == crlf(SIPP_ROOM)
        roundtrip(sdp)

    def test_asterisk(self) -> None:
        sdp = parse_sdp(crlf(ASTERISK))
        assert sdp.origin.session_version == 1714052442
        assert sdp.direction is Direction.SENDRECV  # session level
        (audio,) = sdp.media
        assert audio.direction is None
        assert audio.payload_types == (0, 8, 3, 9, 101)
        assert audio.rtpmaps()[9] == RtpMap(9, "G722", 8000)
        assert audio.maxptime == 150.0
        assert audio.rtcp == Rtcp(17051)
        assert audio.rtcp_mux is False
        assert sdp.serialize() == crlf(ASTERISK)
        roundtrip(sdp)

    def test_freeswitch_many_codecs(self) -> None:
        sdp = parse_sdp(crlf(FREESWITCH))
        (audio,) = sdp.media
        assert audio.payload_types == (102, 9, 0, 8, 104, 3, 101, 100, 13)
        rtpmaps = audio.rtpmaps()
        assert rtpmaps[102] == RtpMap(102, "opus", 48000, 2)
        assert rtpmaps[102].channel_count == 2
        assert rtpmaps[100] == RtpMap(100, "telephone-event", 48000)
        fmtps = audio.fmtps()
        # FreeSWITCH separates parameters with "; " - the spaces are not part of the names.
        assert fmtps[102].parameters() == {
            "useinbandfec": "1",
            "maxaveragebitrate": "30000",
            "maxplaybackrate": "48000",
            "ptime": "20",
            "minptime": "10",
        }
        assert fmtps[101].parameters() == {"0-16": ""}
        assert audio.rtcp == Rtcp(24581, "IN", "IP4", "198.51.100.7")
        assert sdp.serialize() == crlf(FREESWITCH)
        roundtrip(sdp)

    def test_browser_offer(self) -> None:
        sdp = parse_sdp(crlf(BROWSER))
        assert sdp.connection is None
        assert sdp.attributes[0] == Attribute("group", "BUNDLE 0")
        assert sdp.attributes[1] == Attribute("extmap-allow-mixed")
        (audio,) = sdp.media
        assert audio.proto == "UDP/TLS/RTP/SAVPF"
        assert audio.is_rtp
        assert sdp.connection_for(audio) == Connection("IN", "IP4", "0.0.0.0")
        assert audio.rtcp == Rtcp(9, "IN", "IP4", "0.0.0.0")
        assert audio.rtcp_mux
        assert audio.value("fingerprint") == (
            "sha-256 12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B"
        )
        # Attribute order survives, including repeated names.
        names = [a.name for a in audio.attributes]
        assert names[:3] == ["rtcp", "ice-ufrag", "ice-pwd"]
        assert names.count("rtpmap") == 8
        assert sdp.serialize() == crlf(BROWSER)
        roundtrip(sdp)

    def test_webrtc_gateway_opus(self) -> None:
        sdp = parse_sdp(crlf(WEBRTC_GATEWAY))
        (audio,) = sdp.media
        assert audio.rtpmaps()[111] == RtpMap(111, "opus", 48000, 2)
        assert audio.fmtps()[111].parameters() == {"minptime": "10", "useinbandfec": "1"}
        assert audio.rtcp_mux
        roundtrip(sdp)

    def test_ipv6(self) -> None:
        sdp = parse_sdp(crlf(IPV6))
        assert sdp.origin.addrtype == "IP6"
        assert sdp.origin.address == "2001:db8::10"
        assert sdp.connection == Connection("IN", "IP6", "2001:db8::10")
        assert sdp.media[0].rtcp == Rtcp(49171, "IN", "IP6", "2001:db8::11")
        assert address_type("2001:db8::10") == "IP6"
        assert address_type("192.0.2.1") == "IP4"
        assert sdp.serialize() == crlf(IPV6)
        roundtrip(sdp)

    def test_crypto(self) -> None:
        sdp = parse_sdp(crlf(CRYPTO))
        (audio,) = sdp.media
        assert audio.proto == "RTP/SAVP"
        assert audio.crypto == (
            Crypto(
                1,
                "AES_CM_128_HMAC_SHA1_80",
                (CryptoKey(KEY_80, lifetime=2**20, mki=1, mki_length=4),),
                ("FEC_ORDER=FEC_SRTP",),
            ),
            Crypto(2, "AES_CM_128_HMAC_SHA1_32", (CryptoKey(KEY_32),)),
        )
        # The typed form writes what RFC 4568 §9.1 shows (lifetime in decimal is equivalent).
        line = audio.crypto[1].to_attribute()
        assert str(line) == "crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + base64.b64encode(
            KEY_32
        ).decode("ascii")
        assert str(audio.crypto[0].to_attribute()) == (
            "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"
            + base64.b64encode(KEY_80).decode()
            + "|1048576|1:4 FEC_ORDER=FEC_SRTP"
        )
        roundtrip(sdp)

    def test_crypto_key_without_padding_and_decimal_lifetime(self) -> None:
        key = bytes(range(46))  # AES_256 length: base64 needs "==" which some peers omit
        encoded = base64.b64encode(key).decode().rstrip("=")
        sdp = parse_sdp(
            crlf(
                "v=0\no=- 1 1 IN IP4 1.2.3.4\nm=audio 1 RTP/SAVP 0\n"
                f"a=crypto:7 AES_256_CM_HMAC_SHA1_80 inline:{encoded}|1048576"
            )
        )
        assert sdp.media[0].crypto == (
            Crypto(7, "AES_256_CM_HMAC_SHA1_80", (CryptoKey(key, lifetime=1048576),)),
        )


class TestLenient:
    def test_lf_only_equals_crlf(self) -> None:
        for text in (SIPP_ROOM, FREESWITCH, CRYPTO, IPV6):
            assert parse_sdp(text.strip("\n")) == parse_sdp(crlf(text))

    def test_trailing_whitespace_and_blank_lines(self) -> None:
        sloppy = (
            "v=0 \r\no=user1 1 2 IN IP4 10.0.0.1\t\r\n\r\ns=call  \r\nc=IN IP4 10.0.0.1 \r\n"
            "t=0 0\r\nm=audio 4000 RTP/AVP 0  \r\na=rtpmap:0 PCMU/8000 \r\na=sendonly \r\n\r\n"
        )
        sdp = parse_sdp(sloppy)
        assert sdp.session_name == "call"
        assert sdp.media[0].formats == ("0",)
        assert sdp.media[0].attributes == (
            Attribute("rtpmap", "0 PCMU/8000"),
            Attribute("sendonly"),
        )
        assert sdp.media[0].direction is Direction.SENDONLY

    def test_missing_s_t_and_v(self) -> None:
        sdp = parse_sdp("o=- 1 1 IN IP4 10.0.0.1\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 8\n")
        assert sdp.session_name == "-"
        assert sdp.timings == (Timing(0, 0),)
        assert sdp.serialize().startswith("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n")
        roundtrip(sdp)

    def test_latin1_session_name(self) -> None:
        body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=Caf\xe9\r\nm=audio 4000 RTP/AVP 8\r\n"
        assert parse_sdp(body).session_name == "Café"

    def test_attribute_names_case_insensitive_lookup(self) -> None:
        sdp = parse_sdp("v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\na=RTCP-MUX\na=PTime:30")
        media = sdp.media[0]
        assert media.rtcp_mux
        assert media.ptime == 30.0
        assert media.attributes[0] == Attribute("RTCP-MUX")  # kept as written

    def test_fractional_ptime(self) -> None:
        sdp = parse_sdp("v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\na=ptime:20.0")
        assert sdp.media[0].ptime == 20.0

    def test_non_rtp_media_keeps_token_formats(self) -> None:
        sdp = parse_sdp(
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nm=audio 1 RTP/AVP 0\n"
            "m=application 5000 UDP/BFCP *\nm=message 7394 TCP/MSRP *\na=accept-types:text/plain"
        )
        assert [m.formats for m in sdp.media] == [("0",), ("*",), ("*",)]
        assert not sdp.media[1].is_rtp
        roundtrip(sdp)

    def test_session_and_media_extras_roundtrip(self) -> None:
        text = crlf(
            """
v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127/2
b=AS:128
t=2873397496 2873404696
r=7d 1h 0 25h
z=2882844526 -1h 2898848070 0
k=prompt
a=recvonly
m=audio 49170/2 RTP/AVP 0
i=voice
c=IN IP4 224.2.17.12/127
c=IN IP6 ff00::1/3
b=TIAS:64000
k=clear:secret
a=ptime:30
m=video 51372 RTP/AVP 99
a=rtpmap:99 h263-1998/90000
"""
        )
        sdp = parse_sdp(text)
        assert sdp.connection == Connection("IN", "IP4", "224.2.17.12", ttl=127, count=2)
        assert sdp.bandwidths == (Bandwidth("AS", 128),)
        assert sdp.timings == (Timing(2873397496, 2873404696, ("7d 1h 0 25h",)),)
        assert sdp.direction is Direction.RECVONLY
        audio = sdp.media[0]
        assert audio.port_count == 2
        assert audio.connections == (
            Connection("IN", "IP4", "224.2.17.12", ttl=127),
            Connection("IN", "IP6", "ff00::1", count=3),
        )
        assert sdp.connection_for(audio) == audio.connections[0]
        assert sdp.connection_for(sdp.media[1]) == sdp.connection
        assert sdp.direction_for(sdp.media[1]) is Direction.RECVONLY
        assert sdp.serialize() == text
        roundtrip(sdp)


class TestStrict:
    BASE = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\n"

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ("m=audio 4000 RTP/AVP", None),  # no formats is tolerated: see below
            ("m=audio RTP/AVP 0", "m= port"),
            ("m=audio 4000", "m= line"),
            ("m=audio 70000 RTP/AVP 0", "m= port"),
            ("m=audio -1 RTP/AVP 0", "m= port"),
            ("m=audio 4000/0x2 RTP/AVP 0", "port count"),
            ("m=audio 4000 RTP/AVP 128", "payload type"),
            ("m=audio 4000 RTP/AVP PCMU", "payload type"),
            ("m=audio 4000 RTP/AVP 0\na=rtpmap:200 foo/8000", "payload type"),
            ("m=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU", "rtpmap"),
            ("m=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU/0", "clock rate"),
            ("m=audio 4000 RTP/AVP 0\na=fmtp:x 0-15", "payload type"),
            ("m=audio 4000 RTP/AVP 0\na=rtcp:99999", "rtcp port"),
            ("m=audio 4000 RTP/AVP 0\na=rtcp:5000 IN IP4", "rtcp"),
            ("m=audio 4000 RTP/AVP 0\na=ptime:abc", "ptime"),
            ("m=audio 4000 RTP/SAVP 0\na=crypto:1 AES_CM_128_HMAC_SHA1_80", "crypto"),
            ("m=audio 4000 RTP/SAVP 0\na=crypto:1 X inline:!!!!", "base64"),
            ("m=audio 4000 RTP/SAVP 0\na=crypto:1 X inline:QUFB|2^999", "exponent"),
            ("m=audio 4000 RTP/SAVP 0\na=crypto:1 X key:QUFB", "key method"),
            ("m=audio 4000 RTP/AVP 0\nt=0 0", "not allowed"),
            ("x=unknown", "unknown type"),
            ("a", "<type>=<value>"),
            ("a=:value", "attribute"),
            ("o=- 2 2 IN IP4 10.0.0.1", "second o="),
            ("m=audio 4000 RTP/AVP 0\nc=IN IP4", "c= line"),
            ("m=audio 4000 RTP/AVP 0\nc=IN IP4 1.2.3.4/300", "ttl"),
            ("m=audio 4000 RTP/AVP 0\nb=AS:fast", "bandwidth"),
            ("m=audio 4000 RTP/AVP 0\na=x\ry", "CR"),
            ("m=audio 4000 RTP/AVP 0\na=x\x00y", "NUL"),
        ],
    )
    def test_rejected(self, body: str, message: str | None) -> None:
        if message is None:
            assert parse_sdp(self.BASE + body).media[0].formats == ()
            return
        with pytest.raises(SipParseError) as info:
            parse_sdp(self.BASE + body)
        assert message in info.value.reason
        assert info.value.status == 400

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "\r\n\r\n",
            "v=1\no=- 1 1 IN IP4 1.1.1.1",
            "v=0\ns=-\nt=0 0",  # no o=
            "v=0\no=- one 1 IN IP4 1.1.1.1",
            "v=0\no=- 1 1 IN IP4",
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nr=1d 1h 0",  # r= before t=
            "v=0\no=- 1 1 IN IP4 1.1.1.1\nt=now 0",
            "v=0\no=- " + "9" * 5000 + " 1 IN IP4 1.1.1.1",  # no 4300-digit ValueError leaks
        ],
    )
    def test_rejected_sessions(self, text: str) -> None:
        with pytest.raises(SipParseError):
            parse_sdp(text)

    def test_non_ascii_digits_are_not_numbers(self) -> None:
        # int() would accept these; a re-serialisation would then change the text.
        with pytest.raises(SipParseError):
            parse_sdp(self.BASE + "m=audio ٤٠٠٠ RTP/AVP 0")
        with pytest.raises(SipParseError):
            parse_sdp(self.BASE + "m=audio 4_000 RTP/AVP 0")

    def test_serialise_refuses_line_breaks_in_values(self) -> None:
        sdp = SessionDescription(
            Origin("-", 1, 1, "IN", "IP4", "1.1.1.1"), session_name="evil\r\na=injected"
        )
        with pytest.raises(ValueError, match="line break"):
            sdp.serialize()


class TestBuild:
    def test_serialise_built_description(self) -> None:
        media = MediaDescription(
            "audio",
            40000,
            "RTP/AVP",
            ("111", "0", "101"),
            attributes=(
                RtpMap(111, "opus", 48000, 2).to_attribute(),
                Fmtp(111, "minptime=10;useinbandfec=1").to_attribute(),
                RtpMap(0, "PCMU", 8000).to_attribute(),
                RtpMap(101, "telephone-event", 8000).to_attribute(),
                Fmtp(101, "0-16").to_attribute(),
                Attribute("ptime", "20"),
                Attribute(Direction.SENDRECV.value),
                Rtcp(40001).to_attribute(),
                Attribute("rtcp-mux"),
            ),
        )
        sdp = SessionDescription(
            Origin("pygasi", 42, 43, "IN", "IP6", "2001:db8::1"),
            session_name="pygasi",
            connection=Connection.for_address("2001:db8::1"),
            media=(media,),
        )
        assert sdp.to_bytes() == (
            b"v=0\r\n"
            b"o=pygasi 42 43 IN IP6 2001:db8::1\r\n"
            b"s=pygasi\r\n"
            b"c=IN IP6 2001:db8::1\r\n"
            b"t=0 0\r\n"
            b"m=audio 40000 RTP/AVP 111 0 101\r\n"
            b"a=rtpmap:111 opus/48000/2\r\n"
            b"a=fmtp:111 minptime=10;useinbandfec=1\r\n"
            b"a=rtpmap:0 PCMU/8000\r\n"
            b"a=rtpmap:101 telephone-event/8000\r\n"
            b"a=fmtp:101 0-16\r\n"
            b"a=ptime:20\r\n"
            b"a=sendrecv\r\n"
            b"a=rtcp:40001\r\n"
            b"a=rtcp-mux\r\n"
        )
        roundtrip(sdp)

    def test_direction_algebra(self) -> None:
        assert Direction.SENDONLY.reverse() is Direction.RECVONLY
        assert Direction.RECVONLY.reverse() is Direction.SENDONLY
        assert Direction.SENDRECV.reverse() is Direction.SENDRECV
        assert Direction.INACTIVE.reverse() is Direction.INACTIVE
        assert Direction.SENDRECV.restrict(Direction.RECVONLY) is Direction.RECVONLY
        assert Direction.SENDONLY.restrict(Direction.RECVONLY) is Direction.INACTIVE
        assert Direction.from_flags(True, False) is Direction.SENDONLY
        assert (Direction.SENDONLY.sends, Direction.SENDONLY.receives) == (True, False)

    def test_hold_address(self) -> None:
        assert Connection("IN", "IP4", "0.0.0.0").is_hold_address
        assert Connection("IN", "IP6", "::").is_hold_address
        assert not Connection("IN", "IP4", "10.0.0.1").is_hold_address
