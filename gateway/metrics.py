"""Prometheus metrics (``GET /metrics``), on a registry of the gateway's own.

The call path reports through a handful of methods; the names below are what dashboards and
alerts use (prefix ``pygasi_``; Jigasi's were ``jitsi_jigasi_``, jigasi.md §7.2):

* ``pygasi_calls_active{direction}`` - calls in progress;
* ``pygasi_calls_total{direction,result}`` - calls ended, by how;
* ``pygasi_call_duration_seconds{direction}`` - histogram of call durations;
* ``pygasi_call_setup_seconds`` - histogram, INVITE received -> 200 OK sent;
* ``pygasi_rtp_packets_lost_total{leg}`` - RTP packets lost (RFC 3550 §6.4.1 cumulative lost);
* ``pygasi_rtp_jitter_seconds{leg}`` - histogram of interarrival jitter reports (RFC 3550 §6.4.1);
* ``pygasi_registration_state{pygasi_registration_state}`` - the trunk registration, one of
  the states at 1;
* ``pygasi_build_info{version}``.

Labels take only the documented values: an unknown one raises ValueError (a typo would
otherwise create a series no dashboard looks at).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

DIRECTIONS = ("inbound", "outbound")
RESULTS = ("completed", "rejected", "failed", "cancelled", "timeout", "error")
LEGS = ("sip", "conference")
REGISTRATION_STATES = ("none", "registering", "registered", "retrying", "stopped")

# Setup waits for the focus's invitation: sub-second on a busy room, up to the invite timeout
# (30 s by default) for a caller alone in one.
SETUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
DURATION_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)
# Jitter from a good network is a few ms; above ~60 ms a jitter buffer starts to lose audio.
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.1, 0.2, 0.5)


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} (one of {', '.join(allowed)})")
    return value


class Metrics:
    """The gateway's metrics. One per process; tests pass a fresh registry each."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str = "") -> None:
        # The *_created series (a timestamp per labelled series) only add noise here: every
        # series is created at start.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._active = Gauge("pygasi_calls_active", "Calls in progress", ["direction"], registry=r)
        self._calls = Counter(
            "pygasi_calls", "Calls ended, by direction and result", ["direction", "result"],
            registry=r,
        )  # fmt: skip
        self._duration = Histogram(
            "pygasi_call_duration_seconds", "Duration of ended calls", ["direction"],
            buckets=DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self._setup = Histogram(
            "pygasi_call_setup_seconds", "INVITE received to 200 OK sent",
            buckets=SETUP_BUCKETS, registry=r,
        )  # fmt: skip
        self._lost = Counter(
            "pygasi_rtp_packets_lost", "RTP packets lost (RFC 3550 cumulative lost)", ["leg"],
            registry=r,
        )  # fmt: skip
        self._jitter = Histogram(
            "pygasi_rtp_jitter_seconds", "RTP interarrival jitter reports", ["leg"],
            buckets=JITTER_BUCKETS, registry=r,
        )  # fmt: skip
        self._registration = Enum(
            "pygasi_registration_state", "SIP trunk registration", states=list(REGISTRATION_STATES),
            registry=r,
        )  # fmt: skip
        info = Info("pygasi_build", "pygasi version", registry=r)
        info.info({"version": version or "unknown"})
        # Every labelled series exists from the start (at 0), so rate() and absent() work
        # before the first call.
        for direction in DIRECTIONS:
            self._active.labels(direction)
            self._duration.labels(direction)
            for result in RESULTS:
                self._calls.labels(direction, result)
        for leg in LEGS:
            self._lost.labels(leg)
            self._jitter.labels(leg)

    def call_started(self, direction: str) -> None:
        self._active.labels(_check(direction, DIRECTIONS, "direction")).inc()

    def call_ended(self, direction: str, result: str, duration: float) -> None:
        """A call that :meth:`call_started` counted has ended (``duration`` in seconds, 0 for
        one never answered)."""
        _check(direction, DIRECTIONS, "direction")
        self._calls.labels(direction, _check(result, RESULTS, "result")).inc()
        self._active.labels(direction).dec()
        self._duration.labels(direction).observe(max(0.0, duration))

    def call_setup(self, seconds: float) -> None:
        self._setup.observe(max(0.0, seconds))

    def rtp_quality(self, leg: str, lost: int, jitter_ms: float) -> None:
        """``lost``: packets lost since the previous report of this stream (a delta of RFC
        3550's cumulative count; a negative delta, duplicates, is ignored); ``jitter_ms``: the
        stream's current interarrival jitter."""
        _check(leg, LEGS, "leg")
        if lost > 0:
            self._lost.labels(leg).inc(lost)
        self._jitter.labels(leg).observe(max(0.0, jitter_ms) / 1000.0)

    def registration_state(self, state: str) -> None:
        self._registration.state(_check(state, REGISTRATION_STATES, "registration state"))

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type: Prometheus text, or OpenMetrics when
        ``accept`` (the request's Accept header) asks for it."""
        if accept and "application/openmetrics-text" in accept:
            body: bytes = generate_openmetrics(self.registry)  # type: ignore[no-untyped-call]
            return body, OPENMETRICS_TYPE
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
