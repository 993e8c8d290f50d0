"""The media engine's health in ``/about/stats`` (``media``): what the clock and the jitter
buffers of the calls and rooms in progress report.

Counts are over what is live now (calls in progress, rooms with calls), so a monitor or the load
benchmark (bench/load.py) reads the difference between two samples taken while the same calls
run: packets that arrived too late to be played, frames lost and concealed, and the clock's
longest tick - the figures that say whether the process keeps up with its calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import media as media_engine
from gateway.call import CallSession
from gateway.conference import Conferences
from media.clock import MediaClock
from media.jitterbuffer import JitterStats

# JitterStats fields summed per direction.
_FIELDS = ("received", "played", "late", "lost", "concealed", "duplicates", "dropped")


def _sum(stats: Iterable[JitterStats]) -> dict[str, int]:
    totals = dict.fromkeys(_FIELDS, 0)
    for s in stats:
        for name in _FIELDS:
            totals[name] += getattr(s, name)
    return totals


def media_report(
    clock: MediaClock, calls: Iterable[CallSession], conferences: Conferences
) -> dict[str, Any]:
    """``phone_to_meeting``: the SIP legs' jitter buffers (the phones' packets);
    ``meeting_to_phone``: the rooms' remote sources (the conference's packets, one jitter
    buffer per source per room); ``clock``: ticks, late or skipped ticks, the longest tick."""
    sip_side: list[JitterStats] = []
    for call in calls:
        media = call.media
        pipeline = media.pipeline if media is not None else None
        if pipeline is not None:
            sip_side.append(pipeline.jitter.stats)
    conference_side = [
        source.jitter.stats
        for conference in conferences.rooms.values()
        for source in conference.mixer.sources
    ]
    s = clock.stats
    return {
        # The per-packet modules compiled by mypyc, or their pure-Python source (media/__init__).
        "compiled": media_engine.COMPILED,
        "phone_to_meeting": _sum(sip_side),
        "meeting_to_phone": _sum(conference_side),
        "clock": {
            "ticks": s.ticks,
            "catch_up_ticks": s.catch_up_ticks,
            "skipped": s.skipped,
            "overruns": s.overruns,
            "mean_tick_ms": round(s.mean_work_ms, 3),
            "max_tick_ms": round(s.max_work_ms, 3),
            "max_slice_ms": round(s.max_slice_ms, 3),
        },
    }


__all__ = ["media_report"]
