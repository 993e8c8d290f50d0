"""UDP port allocation for RTP/RTCP from a configured range.

Ports are taken round-robin through the range and really bound before they are handed out, so
a port used by another process is skipped and nothing can take it between "free" and "used".
Released ports rest in quarantine for a while (RFC 3550 has no call identity in RTP: a late
packet of an old call on a reused port would be heard in the new one). Time is passed in.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

DEFAULT_RANGE = "40000-49999"
DEFAULT_QUARANTINE = 10.0


class PortsExhaustedError(RuntimeError):
    """No free port (pair) left in the configured range."""


def parse_port_range(spec: str | tuple[int, int]) -> tuple[int, int]:
    """'40000-49999' (or a (low, high) tuple) -> (low, high), both inclusive."""
    if isinstance(spec, tuple):
        low, high = spec
    else:
        parts = spec.replace(" ", "").split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"port range {spec!r} is not 'LOW-HIGH'")
        low, high = int(parts[0]), int(parts[1])
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {low}-{high} is not within 1-65535 with LOW <= HIGH")
    return low, high


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


@dataclass(eq=False)
class AllocatedPorts:
    """Bound, non-blocking UDP sockets. `rtcp_socket` is None with rtcp-mux (RFC 5761)."""

    host: str
    rtp_port: int
    rtp_socket: socket.socket
    rtcp_port: int | None = None
    rtcp_socket: socket.socket | None = None
    family: socket.AddressFamily = field(default=socket.AF_INET)

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.rtp_port,) if self.rtcp_port is None else (self.rtp_port, self.rtcp_port)

    def close(self) -> None:
        self.rtp_socket.close()
        if self.rtcp_socket is not None:
            self.rtcp_socket.close()


class PortAllocator:
    """Hands out RTP (even) + RTCP (next odd) port pairs, or single rtcp-mux ports."""

    def __init__(
        self,
        port_range: str | tuple[int, int] = DEFAULT_RANGE,
        host: str = "0.0.0.0",
        quarantine: float = DEFAULT_QUARANTINE,
    ) -> None:
        self.low, self.high = parse_port_range(port_range)
        self.host = host
        self.quarantine = quarantine
        self._cursor = self.low
        self._in_use: set[int] = set()
        self._resting: dict[int, float] = {}  # port -> time it may be reused

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def quarantined(self, now: float) -> int:
        return sum(1 for until in self._resting.values() if until > now)

    def _available(self, port: int, now: float) -> bool:
        if port > self.high or port in self._in_use:
            return False
        until = self._resting.get(port)
        if until is None:
            return True
        if until > now:
            return False
        del self._resting[port]
        return True

    def _bind(self, host: str, port: int) -> socket.socket | None:
        sock = socket.socket(_family_of(host), socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError:
            sock.close()
            return None
        return sock

    def allocate(
        self, now: float, rtcp_mux: bool = False, host: str | None = None
    ) -> AllocatedPorts:
        """Bind and return the next free port (pair). Raises PortsExhaustedError."""
        host = self.host if host is None else host
        span = self.high - self.low + 1
        for _ in range(span):
            port = self._cursor
            if not rtcp_mux and port % 2:
                port += 1  # RFC 3550 §11: RTP on an even port, RTCP on the next (odd) one
            step = 1 if rtcp_mux else 2
            nxt = port + step
            self._cursor = nxt if nxt <= self.high else self.low
            if port > self.high:
                continue
            if not self._available(port, now):
                continue
            if not rtcp_mux and not self._available(port + 1, now):
                continue
            rtp = self._bind(host, port)
            if rtp is None:
                continue
            rtcp = None
            if not rtcp_mux:
                rtcp = self._bind(host, port + 1)
                if rtcp is None:
                    rtp.close()
                    continue
            ports = AllocatedPorts(
                host=host,
                rtp_port=port,
                rtp_socket=rtp,
                rtcp_port=None if rtcp_mux else port + 1,
                rtcp_socket=rtcp,
                family=_family_of(host),
            )
            self._in_use.update(ports.ports)
            return ports
        kind = "port" if rtcp_mux else "even/odd port pair"
        raise PortsExhaustedError(
            f"no free {kind} in {self.low}-{self.high} on {host}: {len(self._in_use)} ports "
            f"in use by calls, {self.quarantined(now)} in quarantine, the rest busy elsewhere"
        )

    def purge(self, now: float) -> None:
        """Forget the quarantines that have ended, and let the tables sized by the busiest
        moment go (for an idle gateway: an ended quarantine otherwise stays until the cursor
        comes round to its port, an int and a float made as a call ended, kept at the peak)."""
        self._resting = {port: until for port, until in self._resting.items() if until > now}
        if not self._in_use:
            self._in_use = set()

    def release(self, ports: AllocatedPorts, now: float, close_sockets: bool = True) -> None:
        """Quarantine the ports until now + quarantine and close the sockets (idempotent;
        `close_sockets=False` when asyncio transports own them and close them themselves)."""
        if close_sockets:
            ports.close()
        for port in ports.ports:
            if port in self._in_use:
                self._in_use.discard(port)
                self._resting[port] = now + self.quarantine
