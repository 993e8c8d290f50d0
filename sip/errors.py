"""Errors raised by the SIP stack's parsers and state machines."""

from __future__ import annotations


class SipParseError(ValueError):
    """Input that is not valid SIP (or SDP, or a digest header).

    ``status`` is the response code a UAS answers a request with when this error is raised
    while parsing it (RFC 3261 §8.2 and RFC 4475 §3.1: 400 unless a more specific code
    applies, such as 505 for an unsupported version or 416 for an unsupported URI scheme).
    ``reason`` is a short phrase naming the problem, usable as the response's reason phrase.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
