"""Locating SIP servers (RFC 3263): NAPTR, SRV, A and AAAA records to an ordered target list.

Two layers, in the sans-IO style of the rest of sip/:

- :class:`Lookup` is the RFC 3263 §4 selection for one URI. It asks for DNS records
  (:meth:`Lookup.queries`), is told the answers (:meth:`Lookup.feed`), and ends with the
  ordered :class:`~sip.flow.Flow` targets to try in turn (§4.3: the caller moves to the next
  one on a timeout or a transport error). No sockets, no clock; randomness (RFC 2782 weights)
  comes from an injected :class:`random.Random`.
- :class:`SipResolver` runs lookups over :mod:`dns.asyncresolver` with a TTL-respecting,
  bounded cache, shares queries in flight, and offers :meth:`SipResolver.cached` to code that
  cannot await.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import ipaddress
import logging
import random
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.NAPTR import NAPTR
from dns.rdtypes.IN.SRV import SRV

from sip.flow import Flow
from sip.uri import Uri, bare_host

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp", "tls"]
RecordType = Literal["NAPTR", "SRV", "A", "AAAA", "HOSTS"]

DEFAULT_PORTS: dict[str, int] = {"udp": 5060, "tcp": 5060, "tls": 5061}
# RFC 3263 §4.1: the preference among the transports a domain offers is ours to choose; TLS
# first, as the RFC's own NAPTR example orders them.
DEFAULT_TRANSPORTS: tuple[Transport, ...] = ("tls", "tcp", "udp")
# RFC 3263 §4.1 NAPTR service field -> transport (SIPS+D2T is TLS over TCP).
NAPTR_SERVICES: dict[str, Transport] = {"sips+d2t": "tls", "sip+d2t": "tcp", "sip+d2u": "udp"}
# RFC 3263 §4.1/§4.2 SRV service and protocol labels per transport.
SRV_PREFIXES: dict[str, str] = {"tls": "_sips._tcp.", "tcp": "_sip._tcp.", "udp": "_sip._udp."}
_RDTYPE_BY_VERSION: dict[int, RecordType] = {4: "A", 6: "AAAA"}
_ADDITIONAL_TYPES: dict[str, RecordType] = {"SRV": "SRV", "A": "A", "AAAA": "AAAA"}


class SipDnsError(ValueError):
    """A URI that cannot be turned into a target: ``host`` names what was looked up and
    ``reason`` what went wrong ("NXDOMAIN", "no records", "timeout", "server failure",
    "service not available", "unsupported transport", "invalid URI")."""

    def __init__(self, host: str, reason: str, detail: str = "") -> None:
        message = f"cannot resolve SIP host {host!r}: {reason}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)
        self.host = host
        self.reason = reason
        self.detail = detail


class DnsStatus(enum.Enum):
    """How a query ended; the values are what error messages say."""

    OK = "ok"
    NO_RECORDS = "no records"
    NXDOMAIN = "NXDOMAIN"
    TIMEOUT = "timeout"
    FAILURE = "server failure"

    @property
    def transient(self) -> bool:
        """A failure that says nothing about the name (the next attempt may answer)."""
        return self in (DnsStatus.TIMEOUT, DnsStatus.FAILURE)


# Which failure an error reports when several queries failed: the least definitive first,
# since "timeout" explains a missing answer better than a "no records" next to it.
_SEVERITY = {
    DnsStatus.TIMEOUT: 0,
    DnsStatus.FAILURE: 1,
    DnsStatus.NXDOMAIN: 2,
    DnsStatus.NO_RECORDS: 3,
    DnsStatus.OK: 4,
}


@dataclass(frozen=True, slots=True)
class Query:
    """One question: ``name`` is absolute and lower-case ("_sip._udp.example.com.").
    ``HOSTS`` is not DNS: it asks the system's name service (``/etc/hosts``) for addresses."""

    name: str
    rdtype: RecordType


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str  # absolute, lower-case


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str  # absolute, lower-case; "." means "no service here" (RFC 2782)


Record = NaptrRecord | SrvRecord | str  # str: an IP address (A, AAAA, HOSTS)


@dataclass(frozen=True, slots=True)
class QueryResult:
    status: DnsStatus
    records: tuple[Record, ...] = ()
    ttl: float = 0.0  # how long the shell may cache it; the core ignores it
    detail: str = ""

    @classmethod
    def of(cls, records: Iterable[Record], ttl: float = 0.0) -> QueryResult:
        found = tuple(records)
        return cls(DnsStatus.OK if found else DnsStatus.NO_RECORDS, found, ttl)


# ---------------------------------------------------------------------------------------------
# Pure selection rules


def order_srv(records: Iterable[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782 "Usage rules": priority ascending; within a priority, a weighted random
    order in which weight-0 records come first in the running sum, so they are picked only
    when the random number is 0 (a small chance while heavier records remain)."""
    by_priority: dict[int, list[SrvRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SrvRecord] = []
    for priority in sorted(by_priority):
        group = sorted(by_priority[priority], key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


def order_naptr(
    records: Iterable[NaptrRecord], sips: bool, transports: Sequence[str]
) -> list[tuple[str, Transport]]:
    """The usable NAPTR records as ``(srv_name, transport)``, order then preference (RFC 3403
    §4.1). RFC 3263 §4.1: keep only the SIP services we support, only SIPS+D2T for a sips URI
    (a sip URI keeps SIPS records when TLS is enabled). SIP's NAPTR records are terminal ("S"
    flag) with an empty regexp and the SRV name as replacement; anything else is not for us."""
    usable: list[tuple[int, int, str, Transport]] = []
    for record in records:
        transport = NAPTR_SERVICES.get(record.service.lower())
        if transport is None or transport not in transports:
            continue
        if sips and transport != "tls":
            continue
        if record.flags.lower() != "s" or record.regexp or record.replacement in ("", "."):
            continue
        usable.append((record.order, record.preference, record.replacement, transport))
    usable.sort(key=lambda item: (item[0], item[1]))
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, Transport]] = []
    for _, _, name, transport in usable:
        if (name, transport) not in seen:
            seen.add((name, transport))
            out.append((name, transport))
    return out


def ip_literal(host: str) -> str | None:
    """The address if ``host`` is a numeric IPv4/IPv6 address (brackets allowed), else None."""
    parsed = _parse_address(bare_host(host))
    return None if parsed is None else parsed[1]


@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> tuple[int, str] | None:
    """(IP version, canonical text) of an address, or None. Cached: cached lookups re-run the
    selection on every call, and ipaddress parsing was most of its cost."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address.version, str(address)


def is_localhost(name: str) -> bool:
    """RFC 6761 §6.3: "localhost." and names under it are the loopback, never asked of DNS."""
    return name == "localhost." or name.endswith(".localhost.")


def _domain(host: str) -> str:
    """``host`` as an absolute lower-case DNS name; SipDnsError if it cannot be one."""
    try:
        name = dns.name.from_text(host)
    except (dns.exception.DNSException, ValueError) as exc:
        raise SipDnsError(host, "invalid URI", f"not a domain name: {exc}") from None
    if name == dns.name.root:
        raise SipDnsError(host, "invalid URI", "empty host")
    return name.to_text().lower()


# ---------------------------------------------------------------------------------------------
# The sans-IO lookup


class _Stage(enum.Enum):
    NAPTR = "naptr"
    SRV = "srv"
    ADDRESSES = "addresses"
    HOSTS = "hosts"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class _Candidate:
    """A host still to be turned into addresses, with the port and transport it gets."""

    host: str
    port: int
    transport: Transport


@dataclass
class LookupConfig:
    # Enabled transports, most preferred first (RFC 3263 §4.1 leaves the choice to us).
    transports: tuple[Transport, ...] = DEFAULT_TRANSPORTS
    # Address families, most preferred first: (4, 6), (6, 4), (4,) or (6,).
    ip_versions: tuple[int, ...] = (4, 6)
    # Ask the system's name service (/etc/hosts) when DNS gives no address for the host.
    hosts_fallback: bool = True

    def __post_init__(self) -> None:
        if not self.transports or any(t not in DEFAULT_PORTS for t in self.transports):
            raise ValueError(
                f"transports must be a non-empty subset of udp/tcp/tls: {self.transports}"
            )
        if not self.ip_versions or any(v not in (4, 6) for v in self.ip_versions):
            raise ValueError(f"ip_versions must be a non-empty subset of 4/6: {self.ip_versions}")


class Lookup:
    """RFC 3263 §4 for one URI, driven by the caller::

        lookup = Lookup(uri, config, rng)
        while not lookup.done:
            for query in lookup.queries():
                lookup.feed(query, answer_of(query))
        targets = lookup.result()  # or SipDnsError

    Each round's queries are independent of each other (they may be asked concurrently).
    """

    def __init__(
        self, uri: Uri, config: LookupConfig | None = None, rng: random.Random | None = None
    ) -> None:
        self.config = config or LookupConfig()
        self._rng = rng or random.Random()
        self._stage = _Stage.NAPTR
        self._wanted: list[Query] = []
        self._answers: dict[Query, QueryResult] = {}
        self._failures: list[tuple[Query, QueryResult]] = []
        self._flows: list[Flow] = []
        self._error: SipDnsError | None = None
        self._candidates: list[_Candidate] = []
        # Transport and port for the host's own addresses when neither NAPTR nor SRV gave a
        # target (RFC 3263 §4.2 last paragraph).
        self._fallback: _Candidate | None = None
        self._srv_plan: list[tuple[str, Transport]] = []

        if not uri.is_sip or not uri.host:
            raise SipDnsError(str(uri), "invalid URI", "not a sip or sips URI")
        self._sips = uri.scheme == "sips"
        # RFC 3263 §4: maddr, when present, is the TARGET instead of the host.
        target = uri.maddr or uri.host
        self.host = bare_host(target)
        forced = self._uri_transport(uri)
        address = ip_literal(target)
        if address is not None:
            # §4.1/§4.2: a numeric TARGET needs no DNS at all.
            transport = forced or self._default_transport()
            self._finish([Flow(transport, (address, uri.port or DEFAULT_PORTS[transport]))])
            return
        name = _domain(self.host)
        self._name = name
        if is_localhost(name):
            transport = forced or self._default_transport()
            port = uri.port or DEFAULT_PORTS[transport]
            loopback = {4: "127.0.0.1", 6: "::1"}
            self._finish([Flow(transport, (loopback[v], port)) for v in self.config.ip_versions])
            return
        if uri.port is not None:
            # §4.1: an explicit port means no NAPTR; §4.2: no SRV either, only A/AAAA.
            transport = forced or self._default_transport()
            self._fallback = _Candidate(name, uri.port, transport)
            self._start_addresses([self._fallback])
        elif forced is not None:
            # §4.2: a transport given explicitly skips NAPTR; SRV for that transport only.
            self._fallback = _Candidate(name, DEFAULT_PORTS[forced], forced)
            self._start_srv([(SRV_PREFIXES[forced] + name, forced)])
        else:
            default = self._default_transport()
            self._fallback = _Candidate(name, DEFAULT_PORTS[default], default)
            self._start([Query(name, "NAPTR")], _Stage.NAPTR)

    # -- driving ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._stage is _Stage.DONE

    def queries(self) -> list[Query]:
        """The questions to answer now (none once done)."""
        return [q for q in self._wanted if q not in self._answers]

    def feed(self, query: Query, result: QueryResult) -> None:
        """The answer to one of :meth:`queries`; others are ignored."""
        if query not in self._wanted or query in self._answers:
            return
        if result.status is DnsStatus.OK and not result.records:
            result = QueryResult(DnsStatus.NO_RECORDS, ttl=result.ttl, detail=result.detail)
        self._answers[query] = result
        if result.status is not DnsStatus.OK:
            self._failures.append((query, result))
        if not self.queries():
            self._advance()

    def result(self) -> list[Flow]:
        """The targets in the order to try them; raises SipDnsError if there are none."""
        if self._error is not None:
            raise self._error
        if not self.done:
            raise RuntimeError("lookup not finished")
        return list(self._flows)

    # -- transport selection (§4.1) -----------------------------------------------------------

    def _uri_transport(self, uri: Uri) -> Transport | None:
        value = uri.transport
        if value is None:
            return None
        transport: Transport
        if value == "udp":
            if self._sips:
                # RFC 3261 §19.1: sips needs TLS, which runs over TCP here.
                raise SipDnsError(self.host, "unsupported transport", "sips over udp")
            transport = "udp"
        elif value == "tcp":
            # RFC 3263 §4.1: a sips URI with transport=tcp means TLS over TCP.
            transport = "tls" if self._sips else "tcp"
        elif value == "tls":
            transport = "tls"  # the RFC 2543 form, still seen
        else:
            raise SipDnsError(self.host, "unsupported transport", f"transport={value}")
        if transport not in self.config.transports:
            raise SipDnsError(self.host, "unsupported transport", f"{transport} is not enabled")
        return transport

    def _default_transport(self) -> Transport:
        # RFC 3263 §4.1: UDP for a sip URI, TLS (over TCP) for a sips URI.
        if self._sips:
            if "tls" not in self.config.transports:
                raise SipDnsError(self.host, "unsupported transport", "sips needs tls")
            return "tls"
        return "udp" if "udp" in self.config.transports else self.config.transports[0]

    # -- stages -------------------------------------------------------------------------------

    def _start(self, queries: list[Query], stage: _Stage) -> None:
        if stage is not _Stage.HOSTS:
            # An error tells of the last DNS stage: "_sip._udp" being NXDOMAIN on the way to
            # a host's missing A record is normal and not the story.
            self._failures = []
        self._stage = stage
        self._wanted = list(dict.fromkeys(queries))
        if not self.queries():
            self._advance()

    def _start_srv(self, plan: list[tuple[str, Transport]]) -> None:
        self._srv_plan = plan
        self._start([Query(name, "SRV") for name, _ in plan], _Stage.SRV)

    def _start_addresses(self, candidates: list[_Candidate]) -> None:
        self._candidates = candidates
        queries = [
            Query(c.host, _RDTYPE_BY_VERSION[v])
            for c in candidates
            if ip_literal(c.host.rstrip(".")) is None
            for v in self.config.ip_versions
        ]
        self._start(queries, _Stage.ADDRESSES)

    def _advance(self) -> None:
        if self._stage is _Stage.NAPTR:
            self._after_naptr()
        elif self._stage is _Stage.SRV:
            self._after_srv()
        elif self._stage is _Stage.ADDRESSES:
            self._after_addresses()
        elif self._stage is _Stage.HOSTS:
            self._after_hosts()

    def _records(self, query: Query) -> tuple[Record, ...]:
        return self._answers[query].records

    def _after_naptr(self) -> None:
        query = self._wanted[0]
        status = self._answers[query].status
        if status.transient or status is DnsStatus.NXDOMAIN:
            # A timeout: without the NAPTR answer the domain's transport choice is unknown,
            # and guessing would stack one resolver timeout per SRV query behind this one.
            # NXDOMAIN: nothing exists under the name either (RFC 8020), no SRV, no address.
            self._give_up_on_dns()
            return
        naptr = [r for r in self._records(query) if isinstance(r, NaptrRecord)]
        plan = order_naptr(naptr, self._sips, self.config.transports)
        if plan:
            first = plan[0][1]
            self._fallback = _Candidate(self._name, DEFAULT_PORTS[first], first)
            self._start_srv(plan)
            return
        # §4.1: no (usable) NAPTR records: SRV for each transport we support, "_sips" only
        # for a sips URI; a sip URI may use TLS through "_sips._tcp" too (§4.2).
        transports = [t for t in self.config.transports if not self._sips or t == "tls"]
        self._start_srv([(SRV_PREFIXES[t] + self._name, t) for t in transports])

    def _after_srv(self) -> None:
        results = [self._answers[Query(name, "SRV")] for name, _ in self._srv_plan]
        if any(r.status.transient for r in results):
            self._give_up_on_dns()
            return
        candidates: list[_Candidate] = []
        any_srv = False
        for (_, transport), result in zip(self._srv_plan, results, strict=True):
            srv = [r for r in result.records if isinstance(r, SrvRecord)]
            any_srv = any_srv or bool(srv)
            # RFC 2782: target "." means the service is decidedly not offered; port 0 cannot
            # be connected to.
            usable = [r for r in srv if r.target not in ("", ".") and r.port != 0]
            candidates.extend(
                _Candidate(r.target, r.port, transport) for r in order_srv(usable, self._rng)
            )
        if candidates:
            self._start_addresses(candidates)
        elif any_srv:
            self._fail("service not available", "SRV records with target '.'")
        else:
            # §4.2: no SRV records: the host's A/AAAA at the default port.
            assert self._fallback is not None
            self._start_addresses([self._fallback])

    def _after_addresses(self) -> None:
        flows: list[Flow] = []
        for candidate in self._candidates:
            literal = ip_literal(candidate.host.rstrip("."))
            if literal is not None:
                flows.append(Flow(candidate.transport, (literal, candidate.port)))
                continue
            for version in self.config.ip_versions:
                result = self._answers[Query(candidate.host, _RDTYPE_BY_VERSION[version])]
                flows.extend(
                    Flow(candidate.transport, (address, candidate.port))
                    for address in _addresses(result.records, (version,))
                )
        if flows:
            self._finish(flows)
        elif self._candidates == [self._fallback]:
            self._give_up_on_dns()
        else:
            self._fail(self._worst_status(), "no address for any SRV target")

    def _give_up_on_dns(self) -> None:
        """DNS found nothing for the host itself: try the system's hosts file, if allowed."""
        if self.config.hosts_fallback and self._fallback is not None:
            self._start([Query(self._fallback.host, "HOSTS")], _Stage.HOSTS)
        else:
            self._fail(self._worst_status())

    def _after_hosts(self) -> None:
        assert self._fallback is not None
        result = self._answers[self._wanted[0]]
        # The hosts file is a last resort: its failure is not the story, DNS's is.
        self._failures = [(q, r) for q, r in self._failures if q.rdtype != "HOSTS"]
        fallback = self._fallback
        flows = [
            Flow(fallback.transport, (address, fallback.port))
            for address in _addresses(result.records, self.config.ip_versions)
        ]
        if flows:
            self._finish(flows)
        else:
            self._fail(self._worst_status())

    # -- endings ------------------------------------------------------------------------------

    def _finish(self, flows: list[Flow]) -> None:
        self._flows = list(dict.fromkeys(flows))  # §4.3: trying a target twice is pointless
        self._stage = _Stage.DONE
        self._wanted = []

    def _worst_status(self) -> str:
        if not self._failures:
            return DnsStatus.NO_RECORDS.value
        return min((r.status for _, r in self._failures), key=_SEVERITY.__getitem__).value

    def _fail(self, reason: str, detail: str = "") -> None:
        shown = [
            f"{q.rdtype} {q.name}: {r.status.value}" + (f" {r.detail}" if r.detail else "")
            for q, r in self._failures[:4]
        ]
        if len(self._failures) > 4:
            shown.append(f"{len(self._failures) - 4} more")
        details = "; ".join(([detail] if detail else []) + shown)
        self._error = SipDnsError(self.host, reason, details)
        self._stage = _Stage.DONE
        self._wanted = []


def _addresses(records: Iterable[Record], versions: Sequence[int]) -> list[str]:
    """IP addresses among ``records``, grouped by family in ``versions`` order."""
    parsed = [p for r in records if isinstance(r, str) and (p := _parse_address(r)) is not None]
    return [text for v in versions for version, text in parsed if version == v]


# ---------------------------------------------------------------------------------------------
# The asyncio shell


@dataclass
class ResolverConfig(LookupConfig):
    # Name servers as "address" (port 53) or (address, port); None reads /etc/resolv.conf.
    nameservers: Sequence[str | tuple[str, int]] | None = None
    timeout: float = 4.0  # seconds per query, retries included
    cache_size: int = 1024  # cached answers (one per name and type)
    max_ttl: float = 3600.0  # no answer is kept longer, whatever its TTL
    # RFC 2308 §5: a negative answer lives min(SOA TTL, SOA minimum); this when no SOA came.
    negative_ttl: float = 60.0
    # RFC 2308 §7: remember a timeout or server failure briefly, so that every request does
    # not wait for the same dead server in turn.
    failure_ttl: float = 5.0
    hosts_ttl: float = 60.0


class SipResolver:
    """RFC 3263 server location over DNS, with a cache.

    ``resolve(uri)`` returns the targets to try in order (§4.3) or raises SipDnsError;
    ``cached(uri)`` gives the same from the cache alone, or None. SRV weights are drawn anew
    on every call, so cached answers still spread load (RFC 2782).
    """

    def __init__(
        self,
        config: ResolverConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or ResolverConfig()
        self._clock = clock
        self._rng = rng or random.Random()
        self._dns = self._make_dns_resolver()
        self._cache: OrderedDict[Query, tuple[QueryResult, float]] = OrderedDict()
        self._in_flight: dict[Query, asyncio.Task[QueryResult]] = {}
        self.queries_sent = 0  # DNS questions actually asked (cache misses), for metrics

    def _make_dns_resolver(self) -> dns.asyncresolver.Resolver:
        servers = self.config.nameservers
        if servers is None:
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                log.warning("no /etc/resolv.conf name servers; only the hosts file will answer")
                resolver = dns.asyncresolver.Resolver(configure=False)
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*s)
                if isinstance(s, tuple)
                else dns.nameserver.Do53Nameserver(s)
                for s in servers
            ]
        resolver.lifetime = self.config.timeout
        resolver.timeout = self.config.timeout / 2  # leaves time for one retry per server
        # EDNS0 with a 1232-byte payload (the DNS flag day 2020 figure) keeps NAPTR and SRV
        # sets with additional records in one UDP answer.
        resolver.use_edns(0, 0, 1232)
        return resolver

    # -- public -------------------------------------------------------------------------------

    async def resolve(self, uri: Uri) -> list[Flow]:
        lookup = Lookup(uri, self.config, self._rng)
        while not lookup.done:
            queries = lookup.queries()
            results = await asyncio.gather(*(self._answer(q) for q in queries))
            for query, result in zip(queries, results, strict=True):
                lookup.feed(query, result)
        return lookup.result()

    def cached(self, uri: Uri) -> list[Flow] | None:
        """The targets from cached answers alone; None if anything is missing or expired, or
        if the cached answers end in an error (``resolve`` then raises it)."""
        try:
            lookup = Lookup(uri, self.config, self._rng)
        except SipDnsError:
            return None
        now = self._clock()
        while not lookup.done:
            for query in lookup.queries():
                result = self._from_cache(query, now)
                if result is None:
                    return None
                lookup.feed(query, result)
        try:
            return lookup.result()
        except SipDnsError:
            return None

    def clear(self) -> None:
        self._cache.clear()

    # -- cache and sharing --------------------------------------------------------------------

    def _from_cache(self, query: Query, now: float) -> QueryResult | None:
        entry = self._cache.get(query)
        if entry is None:
            return None
        result, expires = entry
        if now >= expires:
            del self._cache[query]
            return None
        self._cache.move_to_end(query)
        return result

    def _store(self, query: Query, result: QueryResult, ttl: float) -> None:
        ttl = min(ttl, self.config.max_ttl)
        if ttl <= 0 or self.config.cache_size <= 0:
            return
        self._cache[query] = (result, self._clock() + ttl)
        self._cache.move_to_end(query)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)

    async def _answer(self, query: Query) -> QueryResult:
        cached = self._from_cache(query, self._clock())
        if cached is not None:
            return cached
        task = self._in_flight.get(query)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._ask(query))
            self._in_flight[query] = task
            task.add_done_callback(lambda _: self._in_flight.pop(query, None))
        # shield: one caller giving up must not cancel the question for the others.
        return await asyncio.shield(task)

    async def _ask(self, query: Query) -> QueryResult:
        self.queries_sent += 1
        if query.rdtype == "HOSTS":
            result = await self._ask_hosts(query.name)
        else:
            result = await self._ask_dns(query)
        if result.status.transient:
            self._store(query, result, self.config.failure_ttl)
        else:
            self._store(query, result, result.ttl)
        if result.status is not DnsStatus.OK:
            log.debug(
                "DNS %s %s: %s %s", query.rdtype, query.name, result.status.value, result.detail
            )
        return result

    async def _ask_dns(self, query: Query) -> QueryResult:
        try:
            answer = await self._dns.resolve(
                query.name, query.rdtype, raise_on_no_answer=False, search=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses: dict[dns.name.Name, dns.message.Message] = exc.kwargs.get("responses", {})
            ttls = [self._negative_ttl(r) for r in responses.values()]
            return QueryResult(DnsStatus.NXDOMAIN, ttl=min(ttls, default=self.config.negative_ttl))
        except dns.exception.Timeout:
            return QueryResult(DnsStatus.TIMEOUT, detail=f"after {self.config.timeout:g} s")
        except dns.resolver.NoNameservers as exc:
            return QueryResult(DnsStatus.FAILURE, detail=_short(exc))
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            return QueryResult(DnsStatus.FAILURE, detail=_short(exc))
        if answer.rrset is None:
            return QueryResult(DnsStatus.NO_RECORDS, ttl=self._negative_ttl(answer.response))
        records = _convert(answer.rrset)
        self._keep_additional(answer.response, records)
        return QueryResult.of(records, ttl=answer.chaining_result.minimum_ttl)

    def _negative_ttl(self, response: dns.message.Message) -> float:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                for rdata in rrset:
                    if isinstance(rdata, SOA):
                        return float(min(rrset.ttl, rdata.minimum))
        return self.config.negative_ttl

    def _keep_additional(self, response: dns.message.Message, records: Sequence[Record]) -> None:
        """RFC 2782 / RFC 3263 §4.2: a server may put the SRV records of NAPTR replacements and
        the addresses of SRV targets in the additional section; cache those (only for the
        names this answer points at) so that they need no query of their own."""
        wanted = {r.replacement for r in records if isinstance(r, NaptrRecord)}
        wanted |= {r.target for r in records if isinstance(r, SrvRecord)}
        found: dict[Query, tuple[list[Record], float]] = {}
        # Two passes: a NAPTR answer's additional SRV records point at the addresses.
        for _ in range(2):
            for rrset in response.additional:
                name = rrset.name.to_text().lower()
                rdtype = _ADDITIONAL_TYPES.get(dns.rdatatype.to_text(rrset.rdtype))
                if name not in wanted or rdtype is None or Query(name, rdtype) in found:
                    continue
                converted = _convert(rrset)
                found[Query(name, rdtype)] = (converted, float(rrset.ttl))
                wanted |= {r.target for r in converted if isinstance(r, SrvRecord)}
        now = self._clock()
        for query, (found_records, ttl) in found.items():
            if found_records and self._from_cache(query, now) is None:
                self._store(query, QueryResult.of(found_records, ttl), ttl)

    async def _ask_hosts(self, name: str) -> QueryResult:
        loop = asyncio.get_running_loop()
        try:
            # getaddrinfo blocks, so asyncio runs it in its default executor; used only for
            # this last resort, never for DNS proper.
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name.rstrip("."), None, type=socket.SOCK_DGRAM),
                self.config.timeout,
            )
        except TimeoutError:
            return QueryResult(DnsStatus.TIMEOUT, detail="hosts lookup")
        except (OSError, UnicodeError) as exc:
            return QueryResult(DnsStatus.NXDOMAIN, ttl=self.config.negative_ttl, detail=_short(exc))
        addresses = [str(info[4][0]).split("%")[0] for info in infos]
        return QueryResult.of(dict.fromkeys(addresses), ttl=self.config.hosts_ttl)


def _convert(rrset: dns.rrset.RRset) -> list[Record]:
    records: list[Record] = []
    for rdata in rrset:
        if isinstance(rdata, NAPTR):
            records.append(
                NaptrRecord(
                    order=rdata.order,
                    preference=rdata.preference,
                    flags=rdata.flags.decode("ascii", "replace"),
                    service=rdata.service.decode("ascii", "replace"),
                    regexp=rdata.regexp.decode("ascii", "replace"),
                    replacement=rdata.replacement.to_text().lower(),
                )
            )
        elif isinstance(rdata, SRV):
            records.append(
                SrvRecord(rdata.priority, rdata.weight, rdata.port, rdata.target.to_text().lower())
            )
        elif isinstance(rdata, A | AAAA):
            records.append(str(rdata.address))
    return records


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
