"""gateway.metrics: the exposition has the documented series and values."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_calls_by_direction_and_result() -> None:
    metrics = Metrics(CollectorRegistry(), version="0.1.0")
    before = samples(metrics)
    # Every series exists at 0 before the first call.
    assert before[("pygasi_calls_total", (("direction", "outbound"), ("result", "timeout")))] == 0
    assert before[("pygasi_calls_active", (("direction", "inbound"),))] == 0
    metrics.call_started("inbound")
    metrics.call_started("inbound")
    metrics.call_started("outbound")
    metrics.call_ended("inbound", "completed", 65.0)
    metrics.call_ended("outbound", "rejected", 0.0)
    found = samples(metrics)
    assert found[("pygasi_calls_active", (("direction", "inbound"),))] == 1
    assert found[("pygasi_calls_active", (("direction", "outbound"),))] == 0
    assert found[("pygasi_calls_total", (("direction", "inbound"), ("result", "completed")))] == 1
    assert found[("pygasi_calls_total", (("direction", "outbound"), ("result", "rejected")))] == 1
    assert found[("pygasi_calls_total", (("direction", "inbound"), ("result", "failed")))] == 0
    assert found[("pygasi_call_duration_seconds_sum", (("direction", "inbound"),))] == 65.0
    assert (
        found[("pygasi_call_duration_seconds_bucket", (("direction", "inbound"), ("le", "60.0")))]
        == 0
    )
    assert (
        found[("pygasi_call_duration_seconds_bucket", (("direction", "inbound"), ("le", "120.0")))]
        == 1
    )
    assert found[("pygasi_build_info", (("version", "0.1.0"),))] == 1
    # No *_created series: noise for a gateway's dashboards.
    assert not any(name.endswith("_created") for name, _ in found)


def test_setup_latency_histogram() -> None:
    metrics = Metrics()
    for seconds in (0.2, 0.4, 3.5):
        metrics.call_setup(seconds)
    found = samples(metrics)
    assert found[("pygasi_call_setup_seconds_count", ())] == 3
    assert found[("pygasi_call_setup_seconds_sum", ())] == pytest.approx(4.1)
    assert found[("pygasi_call_setup_seconds_bucket", (("le", "0.25"),))] == 1
    assert found[("pygasi_call_setup_seconds_bucket", (("le", "0.5"),))] == 2
    assert found[("pygasi_call_setup_seconds_bucket", (("le", "5.0"),))] == 3


def test_rtp_quality() -> None:
    metrics = Metrics()
    metrics.rtp_quality("sip", 3, 12.0)
    metrics.rtp_quality("sip", 2, 25.0)
    metrics.rtp_quality("conference", -1, 4.0)  # duplicates make a negative delta: not a loss
    found = samples(metrics)
    assert found[("pygasi_rtp_packets_lost_total", (("leg", "sip"),))] == 5
    assert found[("pygasi_rtp_packets_lost_total", (("leg", "conference"),))] == 0
    assert found[("pygasi_rtp_jitter_seconds_sum", (("leg", "sip"),))] == pytest.approx(0.037)
    assert found[("pygasi_rtp_jitter_seconds_bucket", (("le", "0.02"), ("leg", "sip")))] == 1
    assert (
        found[("pygasi_rtp_jitter_seconds_bucket", (("le", "0.005"), ("leg", "conference")))] == 1
    )


def test_registration_state() -> None:
    metrics = Metrics()
    key = "pygasi_registration_state"
    assert samples(metrics)[(key, ((key, "none"),))] == 1  # the first state until told
    metrics.registration_state("retrying")
    metrics.registration_state("registered")
    found = samples(metrics)
    assert found[(key, ((key, "registered"),))] == 1
    assert found[(key, ((key, "retrying"),))] == 0


def test_unknown_labels_are_refused() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="direction"):
        metrics.call_started("sideways")
    with pytest.raises(ValueError, match="result"):
        metrics.call_ended("inbound", "hung-up", 1.0)
    with pytest.raises(ValueError, match="leg"):
        metrics.rtp_quality("xmpp", 1, 1.0)
    with pytest.raises(ValueError, match="registration state"):
        metrics.registration_state("up")


def test_openmetrics_on_request() -> None:
    body, content_type = Metrics().render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert re.search(rb"^pygasi_calls_total\{", body, re.M)


def test_two_instances_do_not_collide() -> None:
    # Each Metrics has its own registry: tests and several gateways in one process work.
    first, second = Metrics(), Metrics()
    first.call_started("inbound")
    assert samples(second)[("pygasi_calls_active", (("direction", "inbound"),))] == 0
