"""SDES-SRTP wrapper: the libsrtp reference vector, round trips, tampering, replay, RTCP."""

from __future__ import annotations

import pytest

from media.rtcp import ReceiverReport, parse_compound
from media.rtp import RtpPacket
from media.srtp import KEY_LENGTH, SrtpConfig, SrtpContext, SrtpError, generate_key

SUITE_80 = "AES_CM_128_HMAC_SHA1_80"
SUITE_32 = "AES_CM_128_HMAC_SHA1_32"

# libsrtp's own AES_CM_128_HMAC_SHA1_80 reference (test/srtp_driver.c).
REF_KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
REF_PLAIN = bytes.fromhex("800f1234decafbadcafebabe" + "ab" * 16)
REF_CIPHER = bytes.fromhex(
    "800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb"
)


def pair(suite: str) -> tuple[SrtpContext, SrtpContext]:
    k1, k2 = generate_key(), generate_key()
    return SrtpContext(SrtpConfig(suite, k1, k2)), SrtpContext(SrtpConfig(suite, k2, k1))


def test_reference_vector() -> None:
    ctx = SrtpContext(SrtpConfig(SUITE_80, REF_KEY, REF_KEY))
    assert ctx.protect(REF_PLAIN) == REF_CIPHER
    assert ctx.unprotect(REF_CIPHER) == REF_PLAIN


@pytest.mark.parametrize(("suite", "tag"), [(SUITE_80, 10), (SUITE_32, 4)])
def test_round_trip_and_tag_length(suite: str, tag: int) -> None:
    a, b = pair(suite)
    plain = RtpPacket(0, 7, 160, 0x1234, b"\x55" * 160).serialize()
    protected = a.protect(plain)
    assert len(protected) == len(plain) + tag
    assert protected[:12] == plain[:12]  # the header stays in clear
    assert protected[12:172] != plain[12:]  # the payload does not
    assert b.unprotect(protected) == plain


@pytest.mark.parametrize("suite", [SUITE_80, SUITE_32])
def test_rtcp_round_trip(suite: str) -> None:
    a, b = pair(suite)
    rtcp = ReceiverReport(0x1234).serialize()
    protected = a.protect_rtcp(rtcp)
    # SRTCP: E-flag + index word, then an 80-bit tag even for the _32 suite (RFC 4568 §6.2.2).
    assert len(protected) == len(rtcp) + 4 + 10
    assert parse_compound(b.unprotect_rtcp(protected)) == [ReceiverReport(0x1234)]


def test_tampered_replayed_and_foreign_packets_fail() -> None:
    a, b = pair(SUITE_80)
    protected = a.protect(RtpPacket(0, 1, 0, 9, b"voice").serialize())
    tampered = bytearray(protected)
    tampered[13] ^= 0x01
    with pytest.raises(SrtpError):
        b.unprotect(bytes(tampered))
    assert b.unprotect(protected)[12:] == b"voice"  # the genuine one still passes
    with pytest.raises(SrtpError):
        b.unprotect(protected)  # replay
    with pytest.raises(SrtpError):
        b.unprotect(RtpPacket(0, 2, 0, 9, b"plain RTP").serialize())
    with pytest.raises(SrtpError):
        b.unprotect(b"\x80")
    with pytest.raises(SrtpError):
        b.unprotect_rtcp(ReceiverReport(9).serialize())


def test_config_validation() -> None:
    key = generate_key()
    assert len(key) == KEY_LENGTH
    with pytest.raises(ValueError, match="unsupported SRTP suite"):
        SrtpConfig("AEAD_AES_256_GCM", key, key)
    with pytest.raises(ValueError, match="30 bytes"):
        SrtpConfig(SUITE_80, key[:16], key)
