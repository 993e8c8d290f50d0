"""SDES-SRTP (RFC 4568 keys, RFC 3711 protection) for the SIP leg, wrapping pylibsrtp.

The signalling layer negotiates the suite and the two inline keys; this module only needs the
suite name and the 30-byte master key || master salt of each direction.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pylibsrtp

from media.errors import MediaParseError

# RFC 4568 §6.2 suite names -> libsrtp profiles. With _32 the RTCP tag stays 80 bits
# (RFC 4568 §6.2.2 / RFC 3711 §5.2), which libsrtp's profile already does.
SUITES: dict[str, int] = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
KEY_LENGTH = 30  # 16-byte master key + 14-byte master salt


class SrtpError(MediaParseError):
    """An SRTP/SRTCP packet failed authentication or replay protection, or cannot be
    processed; the receive path drops it and counts it."""


def generate_key() -> bytes:
    """A fresh random master key || salt for an a=crypto offer or answer."""
    return os.urandom(KEY_LENGTH)


@dataclass(frozen=True, slots=True)
class SrtpConfig:
    suite: str
    tx_key: bytes  # ours: protects what we send
    rx_key: bytes  # the peer's: unprotects what we receive

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"unsupported SRTP suite {self.suite!r}; known: {sorted(SUITES)}")
        for name, key in (("tx_key", self.tx_key), ("rx_key", self.rx_key)):
            if len(key) != KEY_LENGTH:
                raise ValueError(f"{name} must be {KEY_LENGTH} bytes, got {len(key)}")


class SrtpContext:
    """Protect outgoing and unprotect incoming RTP and RTCP of one session. Any SSRC is
    accepted in both directions (a peer's SSRC change keeps working)."""

    def __init__(self, config: SrtpConfig) -> None:
        profile = SUITES[config.suite]
        tx_policy = pylibsrtp.Policy(
            key=bytes(config.tx_key),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile,
        )
        rx_policy = pylibsrtp.Policy(
            key=bytes(config.rx_key),
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile,
        )
        self._tx = pylibsrtp.Session(tx_policy)
        self._rx = pylibsrtp.Session(rx_policy)
        self.suite = config.suite

    @staticmethod
    def _run(func: Callable[[bytes], bytes], data: bytes) -> bytes:
        try:
            out = func(bytes(data))
        except (pylibsrtp.Error, ValueError, TypeError) as exc:
            raise SrtpError(str(exc)) from None
        return out

    def protect(self, rtp: bytes) -> bytes:
        return self._run(self._tx.protect, rtp)

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        return self._run(self._tx.protect_rtcp, rtcp)

    def unprotect(self, srtp: bytes) -> bytes:
        return self._run(self._rx.unprotect, srtp)

    def unprotect_rtcp(self, srtcp: bytes) -> bytes:
        return self._run(self._rx.unprotect_rtcp, srtcp)
