"""RFC 3263 server location: the sans-IO selection driven from a dict, then SipResolver against
a real (tiny, authoritative) DNS server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip.dns import (
    DnsStatus,
    Lookup,
    LookupConfig,
    NaptrRecord,
    Query,
    QueryResult,
    Record,
    ResolverConfig,
    SipDnsError,
    SipResolver,
    SrvRecord,
    Transport,
    order_naptr,
    order_srv,
)
from sip.flow import Flow
from sip.uri import Uri, parse_uri
from tests.sip.dnsserver import DnsServer, Zone, start_dns_server, stop_dns_server

Answers = dict[Query, QueryResult]


def drive(
    uri: str | Uri,
    answers: Answers,
    config: LookupConfig | None = None,
    rng: random.Random | None = None,
) -> tuple[list[Flow], list[Query]]:
    """Run a Lookup against fixed answers (anything unlisted: NXDOMAIN); returns the targets and
    every query asked, in order."""
    lookup = Lookup(parse_uri(uri) if isinstance(uri, str) else uri, config, rng)
    asked: list[Query] = []
    while not lookup.done:
        queries = lookup.queries()
        assert queries, "a lookup that is not done must ask something"
        for query in queries:
            asked.append(query)
            lookup.feed(query, answers.get(query, QueryResult(DnsStatus.NXDOMAIN)))
    return lookup.result(), asked


def naptr(order: int, pref: int, service: str, replacement: str, flags: str = "s") -> NaptrRecord:
    return NaptrRecord(order, pref, flags, service, "", replacement)


def ok(*records: Record) -> QueryResult:
    return QueryResult.of(records, ttl=300)


# ------------------------------------------------------------------------------------------------
# Transport selection without DNS (RFC 3263 §4.1, §4.2)


@pytest.mark.parametrize(
    ("uri", "flow"),
    [
        ("sip:alice@192.0.2.7", Flow("udp", ("192.0.2.7", 5060))),
        ("sip:192.0.2.7:5080", Flow("udp", ("192.0.2.7", 5080))),
        ("sips:192.0.2.7", Flow("tls", ("192.0.2.7", 5061))),
        ("sip:192.0.2.7;transport=TCP", Flow("tcp", ("192.0.2.7", 5060))),
        ("sip:192.0.2.7;transport=tls", Flow("tls", ("192.0.2.7", 5061))),
        ("sips:192.0.2.7;transport=tcp", Flow("tls", ("192.0.2.7", 5061))),
        ("sip:[2001:db8::1]:5062", Flow("udp", ("2001:db8::1", 5062))),
        ("sip:[2001:DB8:0::1]", Flow("udp", ("2001:db8::1", 5060))),
        # §4: maddr is the target, in place of the host.
        ("sip:bob@example.test;maddr=198.51.100.3", Flow("udp", ("198.51.100.3", 5060))),
        ("sip:example.test:5070;maddr=[2001:db8::9]", Flow("udp", ("2001:db8::9", 5070))),
    ],
)
def test_numeric_target_needs_no_query(uri: str, flow: Flow) -> None:
    flows, asked = drive(uri, {})
    assert flows == [flow]
    assert asked == []


def test_localhost_is_loopback_without_dns() -> None:
    # RFC 6761 §6.3: localhost names never go to DNS.
    flows, asked = drive("sip:LocalHost:5070;transport=tcp", {})
    assert flows == [Flow("tcp", ("127.0.0.1", 5070)), Flow("tcp", ("::1", 5070))]
    assert asked == []
    flows, _ = drive("sips:gw.localhost", {}, LookupConfig(ip_versions=(6,)))
    assert flows == [Flow("tls", ("::1", 5061))]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("sips:example.test;transport=udp", "unsupported transport"),
        ("sip:example.test;transport=sctp", "unsupported transport"),
        ("sip:192.0.2.1;transport=ws", "unsupported transport"),
        ("tel:+15551234", "invalid URI"),
    ],
)
def test_unusable_uri(uri: str, reason: str) -> None:
    with pytest.raises(SipDnsError) as info:
        Lookup(parse_uri(uri))
    assert info.value.reason == reason


def test_disabled_transport_is_refused() -> None:
    config = LookupConfig(transports=("udp",))
    with pytest.raises(SipDnsError, match="tcp is not enabled"):
        Lookup(parse_uri("sip:example.test;transport=tcp"), config)
    with pytest.raises(SipDnsError, match="sips needs tls"):
        Lookup(parse_uri("sips:example.test"), config)


def test_invalid_domain_name() -> None:
    with pytest.raises(SipDnsError, match="invalid URI"):
        Lookup(Uri(host="a" * 64 + ".example.test"))


def test_explicit_port_skips_naptr_and_srv() -> None:
    answers = {Query("pbx.example.test.", "A"): ok("192.0.2.5")}
    flows, asked = drive("sip:pbx.example.test:5090", answers)
    assert flows == [Flow("udp", ("192.0.2.5", 5090))]
    assert asked == [Query("pbx.example.test.", "A"), Query("pbx.example.test.", "AAAA")]


def test_transport_param_queries_that_srv_only() -> None:
    answers = {
        Query("_sip._tcp.example.test.", "SRV"): ok(SrvRecord(0, 0, 5070, "sip.example.test.")),
        Query("sip.example.test.", "A"): ok("192.0.2.10"),
    }
    flows, asked = drive("sip:example.test;transport=tcp", answers)
    assert flows == [Flow("tcp", ("192.0.2.10", 5070))]
    assert asked[0] == Query("_sip._tcp.example.test.", "SRV")
    assert not any(q.rdtype == "NAPTR" for q in asked)


def test_transport_param_without_srv_uses_default_port() -> None:
    answers = {Query("example.test.", "A"): ok("192.0.2.11")}
    flows, asked = drive("sips:example.test;transport=tcp", answers, LookupConfig(ip_versions=(4,)))
    assert flows == [Flow("tls", ("192.0.2.11", 5061))]
    assert asked == [Query("_sips._tcp.example.test.", "SRV"), Query("example.test.", "A")]


# ------------------------------------------------------------------------------------------------
# NAPTR and SRV rules


def test_naptr_filtering_and_order() -> None:
    records = [
        naptr(20, 10, "SIP+D2U", "_sip._udp.example.test."),
        naptr(10, 20, "SIP+D2T", "_sip._tcp.example.test."),
        naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.test."),
        naptr(5, 5, "SIP+D2S", "_sip._sctp.example.test."),  # SCTP: not ours
        naptr(5, 5, "E2U+sip", "x.example.test."),  # ENUM, another application
        naptr(5, 5, "SIP+D2U", "_sip._udp.other.test.", flags="a"),  # not terminal at SRV
        NaptrRecord(5, 5, "s", "SIP+D2U", "!^.*$!sip:x@y!", "."),  # a regexp rule
    ]
    all_three = ("tls", "tcp", "udp")
    assert order_naptr(records, False, all_three) == [
        ("_sips._tcp.example.test.", "tls"),
        ("_sip._tcp.example.test.", "tcp"),
        ("_sip._udp.example.test.", "udp"),
    ]
    # §4.1: a sips URI keeps only SIPS+D2T; disabled transports are dropped.
    assert order_naptr(records, True, all_three) == [("_sips._tcp.example.test.", "tls")]
    assert order_naptr(records, False, ("udp", "tcp")) == [
        ("_sip._tcp.example.test.", "tcp"),
        ("_sip._udp.example.test.", "udp"),
    ]


def test_naptr_srv_a_chain_in_failover_order() -> None:
    answers = {
        Query("example.test.", "NAPTR"): ok(
            naptr(10, 10, "SIP+D2T", "_sip._tcp.example.test."),
            naptr(10, 20, "SIP+D2U", "_sip._udp.example.test."),
        ),
        Query("_sip._tcp.example.test.", "SRV"): ok(
            SrvRecord(20, 0, 5070, "backup.example.test."),
            SrvRecord(10, 0, 5070, "main.example.test."),
        ),
        Query("_sip._udp.example.test.", "SRV"): ok(SrvRecord(10, 0, 5060, "main.example.test.")),
        Query("main.example.test.", "A"): ok("192.0.2.1"),
        Query("main.example.test.", "AAAA"): ok("2001:db8::1"),
        Query("backup.example.test.", "A"): ok("192.0.2.2"),
    }
    flows, asked = drive("sip:alice@example.test", answers)
    assert flows == [
        Flow("tcp", ("192.0.2.1", 5070)),
        Flow("tcp", ("2001:db8::1", 5070)),
        Flow("tcp", ("192.0.2.2", 5070)),
        Flow("udp", ("192.0.2.1", 5060)),
        Flow("udp", ("2001:db8::1", 5060)),
    ]
    # One round per stage, and each name/type asked once although main is a target twice.
    assert asked[0] == Query("example.test.", "NAPTR")
    assert len(asked) == len(set(asked)) == 7


def test_naptr_for_sips_uri_uses_only_sips_service() -> None:
    answers = {
        Query("example.test.", "NAPTR"): ok(
            naptr(10, 10, "SIP+D2U", "_sip._udp.example.test."),
            naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.test."),
        ),
        Query("_sips._tcp.example.test.", "SRV"): ok(SrvRecord(1, 1, 5061, "tls.example.test.")),
        Query("tls.example.test.", "A"): ok("192.0.2.20"),
    }
    flows, asked = drive("sips:example.test", answers)
    assert flows == [Flow("tls", ("192.0.2.20", 5061))]
    assert Query("_sip._udp.example.test.", "SRV") not in asked


def test_without_naptr_srv_per_enabled_transport_in_preference_order() -> None:
    answers = {
        Query("example.test.", "NAPTR"): QueryResult(DnsStatus.NO_RECORDS),
        Query("_sip._udp.example.test.", "SRV"): ok(SrvRecord(1, 1, 5060, "u.example.test.")),
        Query("_sip._tcp.example.test.", "SRV"): ok(SrvRecord(1, 1, 5060, "t.example.test.")),
        Query("u.example.test.", "A"): ok("192.0.2.30"),
        Query("t.example.test.", "A"): ok("192.0.2.31"),
        Query("example.test.", "A"): ok("192.0.2.32"),
    }
    config = LookupConfig(transports=("udp", "tcp"), ip_versions=(4,))
    flows, asked = drive("sip:example.test", answers, config)
    assert asked[:3] == [
        Query("example.test.", "NAPTR"),
        Query("_sip._udp.example.test.", "SRV"),
        Query("_sip._tcp.example.test.", "SRV"),
    ]
    assert flows == [Flow("udp", ("192.0.2.30", 5060)), Flow("tcp", ("192.0.2.31", 5060))]
    # Default preference: TLS first, through _sips._tcp even for a sip URI (§4.2).
    _, asked = drive("sip:example.test", answers)
    assert [q.name for q in asked[1:4]] == [
        "_sips._tcp.example.test.",
        "_sip._tcp.example.test.",
        "_sip._udp.example.test.",
    ]
    # A sips URI asks only _sips._tcp, then falls back to the host's address (§4.2).
    flows, asked = drive("sips:example.test", answers)
    assert [q for q in asked if q.rdtype == "SRV"] == [Query("_sips._tcp.example.test.", "SRV")]
    assert flows == [Flow("tls", ("192.0.2.32", 5061))]


def test_no_naptr_no_srv_means_host_addresses_at_default_port() -> None:
    answers = {
        Query("example.test.", "NAPTR"): QueryResult(DnsStatus.NO_RECORDS),
        Query("example.test.", "A"): ok("192.0.2.40", "192.0.2.41"),
        Query("example.test.", "AAAA"): ok("2001:db8::40"),
    }
    flows, _ = drive("sip:example.test", answers)
    assert flows == [
        Flow("udp", ("192.0.2.40", 5060)),
        Flow("udp", ("192.0.2.41", 5060)),
        Flow("udp", ("2001:db8::40", 5060)),
    ]
    flows, _ = drive("sip:example.test", answers, LookupConfig(ip_versions=(6, 4)))
    assert flows[0] == Flow("udp", ("2001:db8::40", 5060))
    flows, asked = drive("sips:example.test", answers, LookupConfig(ip_versions=(6,)))
    assert flows == [Flow("tls", ("2001:db8::40", 5061))]
    assert Query("example.test.", "A") not in asked


def test_naptr_nxdomain_stops_at_once() -> None:
    # RFC 8020: nothing exists under a name that does not exist.
    config = LookupConfig(hosts_fallback=False)
    with pytest.raises(SipDnsError) as info:
        drive("sip:nowhere.test", {}, config)
    assert info.value.reason == "NXDOMAIN"
    assert info.value.host == "nowhere.test"
    assert "NAPTR nowhere.test.: NXDOMAIN" in str(info.value)


def test_srv_dot_target_means_no_service() -> None:
    answers = {
        Query("example.test.", "NAPTR"): QueryResult(DnsStatus.NO_RECORDS),
        Query("_sip._udp.example.test.", "SRV"): ok(SrvRecord(0, 0, 0, ".")),
        Query("example.test.", "A"): ok("192.0.2.1"),
    }
    with pytest.raises(SipDnsError) as info:
        drive("sip:example.test", answers, LookupConfig(transports=("udp",)))
    assert info.value.reason == "service not available"


def test_srv_targets_without_addresses() -> None:
    answers = {
        Query("_sip._udp.example.test.", "SRV"): ok(SrvRecord(0, 0, 5060, "gone.example.test.")),
        Query("gone.example.test.", "A"): QueryResult(DnsStatus.NO_RECORDS),
        Query("gone.example.test.", "AAAA"): QueryResult(DnsStatus.TIMEOUT),
    }
    with pytest.raises(SipDnsError) as info:
        drive("sip:example.test;transport=udp", answers)
    assert info.value.reason == "timeout"
    assert "no address for any SRV target" in str(info.value)


def test_dead_resolver_falls_back_to_hosts_then_reports_timeout() -> None:
    answers = {Query("pbx.test.", "NAPTR"): QueryResult(DnsStatus.TIMEOUT, detail="after 4 s")}
    lookup = Lookup(parse_uri("sip:pbx.test"))
    lookup.feed(Query("pbx.test.", "NAPTR"), answers[Query("pbx.test.", "NAPTR")])
    # A timeout stops DNS (the transport choice is unknowable) and asks the hosts file.
    assert lookup.queries() == [Query("pbx.test.", "HOSTS")]
    lookup.feed(Query("pbx.test.", "HOSTS"), QueryResult(DnsStatus.NXDOMAIN))
    with pytest.raises(SipDnsError) as info:
        lookup.result()
    assert info.value.reason == "timeout"
    assert "NAPTR pbx.test.: timeout after 4 s" in str(info.value)
    lookup = Lookup(parse_uri("sip:pbx.test"))
    lookup.feed(Query("pbx.test.", "NAPTR"), answers[Query("pbx.test.", "NAPTR")])
    lookup.feed(Query("pbx.test.", "HOSTS"), ok("10.1.2.3", "fe80::1"))
    assert lookup.result() == [Flow("udp", ("10.1.2.3", 5060)), Flow("udp", ("fe80::1", 5060))]


def test_srv_order_priority_then_weight() -> None:
    records = [
        SrvRecord(20, 100, 1, "c."),
        SrvRecord(10, 60, 2, "a."),
        SrvRecord(10, 30, 3, "b."),
        SrvRecord(10, 10, 4, "d."),
        SrvRecord(10, 0, 5, "z."),
    ]
    rng = random.Random(7)
    first: Counter[str] = Counter()
    trials = 4000
    for _ in range(trials):
        ordered = order_srv(records, rng)
        assert ordered[-1].target == "c."  # priority 20 always after every priority 10
        first[ordered[0].target] += 1
    # RFC 2782: chance of going first = weight / (sum + 1); weight 0 only on a 0 draw.
    for target, weight in (("a.", 60), ("b.", 30), ("d.", 10), ("z.", 1)):
        assert first[target] / trials == pytest.approx(weight / 101, abs=0.025)


def test_srv_zero_weights_keep_every_record() -> None:
    records = [SrvRecord(0, 0, p, f"h{p}.") for p in range(1, 6)]
    seen = {tuple(r.port for r in order_srv(records, random.Random(s))) for s in range(20)}
    assert all(sorted(order) == [1, 2, 3, 4, 5] for order in seen)


srv_records = st.lists(
    st.builds(
        SrvRecord,
        st.integers(0, 3),
        st.integers(0, 5),
        st.integers(1, 65535),
        st.sampled_from(["a.", "b.", "c.", "."]),
    ),
    max_size=8,
)


@given(srv_records, st.integers(0, 2**32))
def test_srv_order_is_a_priority_sorted_permutation(records: list[SrvRecord], seed: int) -> None:
    ordered = order_srv(records, random.Random(seed))
    assert Counter(ordered) == Counter(records)
    assert [r.priority for r in ordered] == sorted(r.priority for r in records)


names = st.sampled_from(["example.test.", "_sip._udp.example.test.", "a.example.test.", "."])
records = st.one_of(
    st.builds(
        NaptrRecord,
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from(["s", "S", "a", "", "u"]),
        st.sampled_from(["SIP+D2U", "sips+d2t", "SIP+D2T", "SIP+D2S", "E2U+sip", "x" * 300]),
        st.sampled_from(["", "!.*!x!"]),
        names,
    ),
    srv_records.map(lambda rs: rs[0] if rs else SrvRecord(0, 0, 0, ".")),
    st.sampled_from(["192.0.2.1", "2001:db8::1", "not-an-address", "::ffff:1.2.3.4"]),
)
results = st.one_of(
    st.builds(QueryResult.of, st.lists(records, max_size=4)),
    st.sampled_from([QueryResult(s) for s in DnsStatus]),
)
transports: list[tuple[Transport, ...]] = [("udp",), ("tcp", "udp"), ("tls", "tcp", "udp")]


@settings(max_examples=150)
@given(
    st.sampled_from(["sip:example.test", "sips:example.test", "sip:example.test;transport=tcp"]),
    st.sampled_from(transports),
    st.sampled_from([(4,), (6,), (4, 6), (6, 4)]),
    st.data(),
)
def test_lookup_survives_any_answers(
    uri: str,
    enabled: tuple[Transport, ...],
    versions: tuple[int, ...],
    data: st.DataObject,
) -> None:
    """Whatever DNS says, the outcome is targets with IP literals on enabled transports, or
    SipDnsError, never anything else."""
    config = LookupConfig(transports=enabled, ip_versions=versions)
    try:
        lookup = Lookup(parse_uri(uri), config, random.Random(0))
    except SipDnsError:
        return
    for _ in range(10):
        if lookup.done:
            break
        for query in lookup.queries():
            lookup.feed(query, data.draw(results))
    assert lookup.done
    try:
        flows = lookup.result()
    except SipDnsError as exc:
        assert exc.reason
        return
    assert flows
    assert len(flows) == len(set(flows))
    for flow in flows:
        assert flow.transport in enabled
        assert socket.inet_pton(
            socket.AF_INET6 if ":" in flow.remote[0] else socket.AF_INET, flow.remote[0]
        )
        assert 0 < flow.remote[1] <= 65535
        if uri.startswith("sips"):
            assert flow.transport == "tls"


# ------------------------------------------------------------------------------------------------
# SipResolver against a real DNS server on loopback

ZONE: dict[tuple[str, str], list[str]] = {
    # NAPTR -> SRV -> A/AAAA
    ("example.test.", "NAPTR"): [
        '10 10 "s" "SIPS+D2T" "" _sips._tcp.example.test.',
        '20 10 "s" "SIP+D2U" "" _sip._udp.example.test.',
        '30 10 "s" "SIP+D2S" "" _sip._sctp.example.test.',
    ],
    ("_sips._tcp.example.test.", "SRV"): ["10 0 5061 edge.example.test."],
    ("_sip._udp.example.test.", "SRV"): [
        "10 0 5060 edge.example.test.",
        "20 0 5080 spare.example.test.",
    ],
    ("edge.example.test.", "A"): ["192.0.2.1"],
    ("edge.example.test.", "AAAA"): ["2001:db8::1"],
    ("spare.example.test.", "A"): ["192.0.2.2"],
    # SRV only
    ("_sip._udp.srv.example.test.", "SRV"): [
        "10 60 5060 one.example.test.",
        "10 40 5060 two.example.test.",
        "5 0 5090 first.example.test.",
    ],
    ("_sip._tcp.srv.example.test.", "SRV"): ["10 0 5070 one.example.test."],
    ("one.example.test.", "A"): ["192.0.2.11"],
    ("two.example.test.", "A"): ["192.0.2.12"],
    ("first.example.test.", "A"): ["192.0.2.10"],
    # A and AAAA only
    ("plain.example.test.", "A"): ["192.0.2.21", "192.0.2.22"],
    ("v6.example.test.", "AAAA"): ["2001:db8::6"],
    ("dual.example.test.", "A"): ["192.0.2.23"],
    ("dual.example.test.", "AAAA"): ["2001:db8::23"],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def served(
    zone: Zone | None = None,
    clock: Callable[[], float] = time.monotonic,
    **config: object,
) -> AsyncIterator[tuple[DnsServer, SipResolver]]:
    server = await start_dns_server(zone or Zone(dict(ZONE)))
    options: dict[str, object] = {"timeout": 1.0, "hosts_fallback": False, **config}
    resolver_config = ResolverConfig(nameservers=[("127.0.0.1", server.port)], **options)  # type: ignore[arg-type]
    try:
        yield server, SipResolver(resolver_config, clock=clock, rng=random.Random(1))
    finally:
        stop_dns_server(server)


async def test_naptr_srv_a_chain_over_the_wire() -> None:
    async with served() as (server, resolver):
        flows = await resolver.resolve(parse_uri("sip:alice@example.test"))
    assert flows == [
        Flow("tls", ("192.0.2.1", 5061)),
        Flow("tls", ("2001:db8::1", 5061)),
        Flow("udp", ("192.0.2.1", 5060)),
        Flow("udp", ("2001:db8::1", 5060)),
        Flow("udp", ("192.0.2.2", 5080)),
    ]
    assert server.queries == {
        ("example.test.", "NAPTR"): 1,
        ("_sips._tcp.example.test.", "SRV"): 1,
        ("_sip._udp.example.test.", "SRV"): 1,
        ("edge.example.test.", "A"): 1,
        ("edge.example.test.", "AAAA"): 1,
        ("spare.example.test.", "A"): 1,
        ("spare.example.test.", "AAAA"): 1,
    }


async def test_sips_takes_only_tls_over_the_wire() -> None:
    async with served() as (_, resolver):
        flows = await resolver.resolve(parse_uri("sips:example.test"))
    assert flows == [Flow("tls", ("192.0.2.1", 5061)), Flow("tls", ("2001:db8::1", 5061))]


async def test_additional_section_saves_queries() -> None:
    zone = Zone(dict(ZONE), additional=True)
    async with served(zone) as (server, resolver):
        flows = await resolver.resolve(parse_uri("sip:example.test"))
    assert flows[0] == Flow("tls", ("192.0.2.1", 5061))
    assert len(flows) == 5
    # The NAPTR answer carried the SRV records and their targets' addresses; only the
    # missing AAAA of "spare" had to be asked.
    assert set(server.queries) == {
        ("example.test.", "NAPTR"),
        ("spare.example.test.", "AAAA"),
    }


async def test_srv_only_priority_and_weight_order() -> None:
    async with served() as (server, resolver):
        uri = parse_uri("sip:srv.example.test")
        flows = await resolver.resolve(uri)
        # Priority 5 first, then the weighted pair; TLS first but absent, then TCP, then UDP.
        assert flows[0] == Flow("tcp", ("192.0.2.11", 5070))
        assert flows[1] == Flow("udp", ("192.0.2.10", 5090))
        assert set(flows[2:]) == {
            Flow("udp", ("192.0.2.11", 5060)),
            Flow("udp", ("192.0.2.12", 5060)),
        }
        assert server.queries[("_sips._tcp.srv.example.test.", "SRV")] == 1
        # Cached answers are re-drawn each time (RFC 2782 load spreading), with no new query.
        before = sum(server.queries.values())
        second: Counter[str] = Counter()
        for _ in range(1000):
            cached = resolver.cached(uri)
            assert cached is not None
            second[cached[2].remote[0]] += 1
        assert sum(server.queries.values()) == before
    assert second["192.0.2.11"] / 1000 == pytest.approx(61 / 101, abs=0.06)
    assert second["192.0.2.12"] / 1000 == pytest.approx(40 / 101, abs=0.06)


async def test_transport_param_over_the_wire() -> None:
    async with served() as (server, resolver):
        flows = await resolver.resolve(parse_uri("sip:srv.example.test;transport=tcp"))
    assert flows == [Flow("tcp", ("192.0.2.11", 5070))]
    assert ("srv.example.test.", "NAPTR") not in server.queries
    assert ("_sip._udp.srv.example.test.", "SRV") not in server.queries


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:plain.example.test", ["udp:192.0.2.21:5060", "udp:192.0.2.22:5060"]),
        ("sip:v6.example.test", ["udp:[2001:db8::6]:5060"]),
        ("sips:dual.example.test", ["tls:192.0.2.23:5061", "tls:[2001:db8::23]:5061"]),
        (
            "sip:dual.example.test:5099;transport=tcp",
            ["tcp:192.0.2.23:5099", "tcp:[2001:db8::23]:5099"],
        ),
    ],
)
async def test_address_records_only(uri: str, expected: list[str]) -> None:
    async with served() as (_, resolver):
        flows = await resolver.resolve(parse_uri(uri))
    # Servers rotate the records of one set (dnspython shuffles them on the wire): compare
    # within a family as a set, the families in order.
    for version in (4, 6):
        got = [str(f) for f in flows if (":" in f.remote[0]) == (version == 6)]
        assert sorted(got) == sorted(e for e in expected if ("[" in e) == (version == 6))
    assert len(flows) == len(expected)
    assert ("[" in str(flows[0])) == ("[" in expected[0])


async def test_ipv6_preference_and_ipv4_only() -> None:
    async with served(ip_versions=(6, 4)) as (_, resolver):
        flows = await resolver.resolve(parse_uri("sip:dual.example.test"))
    assert [str(f) for f in flows] == ["udp:[2001:db8::23]:5060", "udp:192.0.2.23:5060"]
    async with served(ip_versions=(4,)) as (server, resolver):
        flows = await resolver.resolve(parse_uri("sip:dual.example.test"))
    assert [str(f) for f in flows] == ["udp:192.0.2.23:5060"]
    assert not any(rdtype == "AAAA" for _, rdtype in server.queries)


async def test_numeric_hosts_skip_dns() -> None:
    async with served() as (server, resolver):
        assert await resolver.resolve(parse_uri("sip:192.0.2.99:5070")) == [
            Flow("udp", ("192.0.2.99", 5070))
        ]
        assert resolver.cached(parse_uri("sips:[2001:db8::99]")) == [
            Flow("tls", ("2001:db8::99", 5061))
        ]
    assert not server.queries
    assert resolver.queries_sent == 0


async def test_cache_hits_and_ttl_expiry() -> None:
    clock = FakeClock()
    zone = Zone(dict(ZONE), ttls={("plain.example.test.", "A"): 30}, soa_minimum=10)
    async with served(zone, clock) as (server, resolver):
        uri = parse_uri("sip:plain.example.test")
        assert resolver.cached(uri) is None
        flows = await resolver.resolve(uri)
        asked = Counter(server.queries)
        assert asked[("plain.example.test.", "A")] == 1
        # Within every TTL: answered from the cache, synchronously or not.
        assert resolver.cached(uri) == flows
        assert await resolver.resolve(uri) == flows
        assert server.queries == asked
        # The negative answers (NAPTR, SRV, AAAA) live min(SOA TTL, minimum) = 10 s.
        clock.now += 10.5
        assert resolver.cached(uri) is None
        await resolver.resolve(uri)
        assert server.queries[("plain.example.test.", "NAPTR")] == 2
        assert server.queries[("plain.example.test.", "A")] == 1  # 30 s TTL still running
        clock.now += 20
        await resolver.resolve(uri)
        assert server.queries[("plain.example.test.", "A")] == 2


async def test_cache_is_bounded() -> None:
    async with served(cache_size=2) as (server, resolver):
        for _ in range(2):
            await resolver.resolve(parse_uri("sip:plain.example.test:5060"))
            await resolver.resolve(parse_uri("sip:v6.example.test:5060"))
    # Each host needs two entries (A, AAAA); with room for two, each round evicts the other.
    assert server.queries[("plain.example.test.", "A")] == 2
    assert server.queries[("v6.example.test.", "AAAA")] == 2


async def test_queries_in_flight_are_shared() -> None:
    zone = Zone(dict(ZONE), delay=0.05)
    async with served(zone) as (server, resolver):
        uri = parse_uri("sip:example.test")
        first, second = await asyncio.gather(resolver.resolve(uri), resolver.resolve(uri))
    assert first == second
    assert set(server.queries.values()) == {1}
    assert resolver.queries_sent == len(server.queries)


async def test_nxdomain_is_clear_and_cached() -> None:
    async with served() as (server, resolver):
        for _ in range(2):
            with pytest.raises(SipDnsError) as info:
                await resolver.resolve(parse_uri("sip:bob@nowhere.example.test"))
            assert info.value.reason == "NXDOMAIN"
            assert str(info.value) == (
                "cannot resolve SIP host 'nowhere.example.test': NXDOMAIN "
                "(NAPTR nowhere.example.test.: NXDOMAIN)"
            )
    assert server.queries == {("nowhere.example.test.", "NAPTR"): 1}


async def test_no_records_is_clear() -> None:
    zone = Zone({("empty.example.test.", "TXT"): ['"hello"']})
    async with served(zone) as (_, resolver):
        with pytest.raises(SipDnsError) as info:
            await resolver.resolve(parse_uri("sip:empty.example.test:5060"))
    assert info.value.reason == "no records"
    assert "A empty.example.test.: no records" in str(info.value)


async def test_timeout_is_clear() -> None:
    zone = Zone(dict(ZONE), drop={"example.test."})
    async with served(zone, timeout=0.2) as (server, resolver):
        started = time.monotonic()
        with pytest.raises(SipDnsError) as info:
            await resolver.resolve(parse_uri("sip:example.test"))
        elapsed = time.monotonic() - started
        # The failure is remembered briefly: the next call does not wait again.
        with pytest.raises(SipDnsError):
            await resolver.resolve(parse_uri("sip:example.test"))
        assert time.monotonic() - started - elapsed < 0.1
    assert info.value.reason == "timeout"
    assert "NAPTR example.test.: timeout after 0.2 s" in str(info.value)
    assert 0.15 < elapsed < 1.0
    # A dead NAPTR answer stops the lookup: no SRV query stacks another timeout on it.
    assert set(server.queries) == {("example.test.", "NAPTR")}


async def test_server_failure_is_clear() -> None:
    zone = Zone(dict(ZONE), servfail={"_sip._udp.srv.example.test."})
    async with served(zone) as (_, resolver):
        with pytest.raises(SipDnsError) as info:
            await resolver.resolve(parse_uri("sip:srv.example.test;transport=udp"))
    assert info.value.reason == "server failure"
    assert "SRV _sip._udp.srv.example.test.: server failure" in str(info.value)


def _hosts_file_name() -> tuple[str, list[str]] | None:
    """A name /etc/hosts gives (other than localhost), with its addresses."""
    try:
        with open("/etc/hosts", encoding="utf-8") as hosts:
            lines = hosts.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#")[0].split()
        for name in fields[1:]:
            if "localhost" in name or not name.replace("-", "").replace(".", "").isalnum():
                continue
            try:
                infos = socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
            except OSError:
                continue
            return name, list(dict.fromkeys(str(i[4][0]) for i in infos))
    return None


async def test_hosts_file_answers_when_dns_finds_nothing() -> None:
    found = _hosts_file_name()
    if found is None:
        pytest.skip("no usable name in /etc/hosts")
    name, addresses = found
    async with served(hosts_fallback=True, ip_versions=(4, 6)) as (server, resolver):
        flows = await resolver.resolve(parse_uri(f"sip:{name}:5070"))
        assert resolver.cached(parse_uri(f"sip:{name}:5070")) == flows
    expected = [a for v in (4, 6) for a in addresses if (":" in a) == (v == 6)]
    assert flows == [Flow("udp", (a, 5070)) for a in expected]
    # DNS was asked first (and found nothing).
    assert server.queries[(f"{name.lower()}.", "A")] == 1


async def test_hosts_file_rescues_a_dead_resolver() -> None:
    found = _hosts_file_name()
    if found is None:
        pytest.skip("no usable name in /etc/hosts")
    name, _ = found
    zone = Zone(dict(ZONE), drop={f"{name.lower()}."})
    async with served(zone, timeout=0.2, hosts_fallback=True) as (_, resolver):
        flows = await resolver.resolve(parse_uri(f"sip:{name};transport=tcp"))
    assert flows
    assert all(f.transport == "tcp" and f.remote[1] == 5060 for f in flows)


async def test_a_cancelled_caller_does_not_cancel_the_shared_query() -> None:
    zone = Zone(dict(ZONE), delay=0.05)
    async with served(zone) as (server, resolver):
        uri = parse_uri("sip:plain.example.test:5060")
        quitter = asyncio.ensure_future(resolver.resolve(uri))
        stayer = asyncio.ensure_future(resolver.resolve(uri))
        await asyncio.sleep(0.01)
        quitter.cancel()
        flows = await stayer
        assert quitter.cancelled()
    assert sorted(str(f) for f in flows) == ["udp:192.0.2.21:5060", "udp:192.0.2.22:5060"]
    assert server.queries == {("plain.example.test.", "A"): 1, ("plain.example.test.", "AAAA"): 1}
