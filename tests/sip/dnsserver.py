"""A tiny authoritative DNS server on 127.0.0.1 for tests: real DNS messages over UDP,
answered from a zone dict, counting the questions it gets."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


@dataclass
class Zone:
    """Records by (absolute lower-case name, type): a list of rdata texts, and an optional TTL
    per (name, type). Names under ``origin`` that have no record of the asked type get NODATA,
    others NXDOMAIN, both with the SOA (negative TTL ``soa_minimum``, RFC 2308)."""

    records: dict[tuple[str, str], list[str]]
    origin: str = "example.test."
    ttl: int = 300
    ttls: dict[tuple[str, str], int] = field(default_factory=dict)
    soa_minimum: int = 60
    # Names whose questions are dropped (the resolver times out) or answered SERVFAIL.
    drop: set[str] = field(default_factory=set)
    servfail: set[str] = field(default_factory=set)
    # Put the SRV / A / AAAA records that answers point at into the additional section.
    additional: bool = False
    delay: float = 0.0  # seconds before each answer


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.queries: Counter[tuple[str, str]] = Counter()
        self.transport: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        assert self.transport is not None
        port: int = self.transport.get_extra_info("sockname")[1]
        return port

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        if len(query.question) != 1:
            return
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rdtype)] += 1
        if name in self.zone.drop:
            return
        wire = self._response(query, name, rdtype).to_wire()
        loop = asyncio.get_running_loop()
        if self.zone.delay:
            loop.call_later(self.zone.delay, self._send, wire, addr)
        else:
            self._send(wire, addr)

    def _send(self, wire: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def _rrset(self, name: str, rdtype: str) -> dns.rrset.RRset | None:
        rdatas = self.zone.records.get((name, rdtype))
        if not rdatas:
            return None
        ttl = self.zone.ttls.get((name, rdtype), self.zone.ttl)
        return dns.rrset.from_text_list(name, ttl, "IN", rdtype, rdatas)

    def _response(self, query: dns.message.Message, name: str, rdtype: str) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if name in self.zone.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        rrset = self._rrset(name, rdtype)
        if rrset is not None:
            response.answer.append(rrset)
            if self.zone.additional:
                self._add_additional(response, rrset)
            return response
        # A name with records of other types, or with names below it (an "empty
        # non-terminal" such as the "srv" in "_sip._udp.srv"), exists: NODATA, not NXDOMAIN.
        if not any(n == name or n.endswith("." + name) for n, _ in self.zone.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        origin = self.zone.origin
        soa = f"ns.{origin} hostmaster.{origin} 1 3600 600 86400 {self.zone.soa_minimum}"
        response.authority.append(dns.rrset.from_text(origin, 3600, "IN", "SOA", soa))
        return response

    def _add_additional(self, response: dns.message.Message, rrset: dns.rrset.RRset) -> None:
        """What BIND does for NAPTR and SRV answers: the SRV records of NAPTR replacements and
        the addresses of SRV targets."""
        pending = [rrset]
        while pending:
            current = pending.pop(0)
            for rdata in current:
                if rdata.rdtype == dns.rdatatype.NAPTR:
                    wanted = [(rdata.replacement.to_text().lower(), "SRV")]
                elif rdata.rdtype == dns.rdatatype.SRV:
                    target = rdata.target.to_text().lower()
                    wanted = [(target, "A"), (target, "AAAA")]
                else:
                    continue
                for name, rdtype in wanted:
                    extra = self._rrset(name, rdtype)
                    if extra is not None and extra not in response.additional:
                        response.additional.append(extra)
                        pending.append(extra)


async def start_dns_server(zone: Zone) -> DnsServer:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(
        lambda: DnsServer(zone), local_addr=("127.0.0.1", 0)
    )
    return protocol


def stop_dns_server(server: DnsServer) -> None:
    if server.transport is not None:
        server.transport.close()
