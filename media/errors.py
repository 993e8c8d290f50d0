"""Errors raised by the media engine."""

from __future__ import annotations


class MediaParseError(ValueError):
    """A packet (RTP, RTCP, telephone-event, ...) that cannot be parsed. Peers send garbage;
    the receive path catches exactly this and drops the packet (counted in the statistics)."""
