"""Where a message came from or goes to: the transport, the remote address and, for stream
transports, the connection (RFC 3261 §18: responses go back over the connection the request
came on)."""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls"})


@dataclass(frozen=True, slots=True)
class Flow:
    transport: str  # "udp", "tcp" or "tls"
    remote: Address
    # Set by the shell for messages received on a stream connection; responses reuse it.
    connection_id: int | None = None

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE_TRANSPORTS

    def __str__(self) -> str:
        host, port = self.remote
        host = f"[{host}]" if ":" in host else host
        return f"{self.transport}:{host}:{port}"
