"""The asyncio transports under the SIP core: UDP, TCP and TLS (RFC 3261 §18).

Datagrams and framed stream messages are handed to a receive callback with the :class:`Flow`
they arrived on; :meth:`Transports.send` routes outgoing bytes by flow: UDP to the address,
TCP/TLS over the flow's connection, an existing connection to that address, or a new one.
Nothing a peer sends can raise out of here into the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from sip.errors import SipParseError
from sip.flow import Address, Flow
from sip.message import StreamFramer

log = logging.getLogger("pygasi.sip.transport")

ReceiveCallback = Callable[[bytes, Flow], None]
Resolve = Callable[[str], Awaitable[str]]

MAX_UDP = 65535
CRLF_PING = b"\r\n\r\n"
CRLF_PONG = b"\r\n"


@dataclass
class ListenSpec:
    transport: str  # udp, tcp, tls
    host: str
    port: int


@dataclass
class TlsSettings:
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    verify: bool = True  # verify the peer's certificate on connections we open
    server_name: str | None = None


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, owner: Transports) -> None:
        self.owner = owner
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport
        # (it does from 3.12, reference/deps.md §8.2), so no isinstance check here.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if data in (CRLF_PING, CRLF_PONG) or not data.strip(b"\r\n"):
            return  # keep-alive
        self.owner.deliver(data, Flow("udp", (host, port)))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: nothing to do but note it.
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, owner: Transports, transport_name: str) -> None:
        self.owner = owner
        self.name = transport_name
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.connection_id = next(owner.ids)
        self.remote: Address = ("", 0)
        self.connected = asyncio.get_running_loop().create_future()

    @property
    def flow(self) -> Flow:
        return Flow(self.name, self.remote, self.connection_id)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.remote = (str(peer[0]), int(peer[1]))
        self.owner.register_connection(self)
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.framer.feed(data)
        pings = self.framer.pings
        try:
            messages = self.framer.messages()
        except SipParseError as exc:
            # The stream cannot be re-framed (RFC 4475 §3.1.2.3): close it.
            log.warning("closing %s: %s", self.flow, exc.reason)
            if self.transport is not None:
                self.transport.close()
            return
        if self.framer.pings > pings and self.transport is not None:
            self.transport.write(CRLF_PONG)  # RFC 5626 §3.5.1 keep-alive pong
        for message in messages:
            self.owner.deliver(message, self.flow)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.unregister_connection(self)
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("connection closed"))

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


@dataclass
class Transports:
    receive: ReceiveCallback
    tls: TlsSettings = field(default_factory=TlsSettings)
    resolve: Resolve | None = None
    on_connection_lost: Callable[[Flow], None] | None = None
    on_send_error: Callable[[Flow], None] | None = None

    def __post_init__(self) -> None:
        self.ids = itertools.count(1)
        self._udp: dict[int, _Datagram] = {}  # by address family
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: dict[int, _Stream] = {}
        self._by_remote: dict[tuple[str, Address], _Stream] = {}
        self._connecting: dict[tuple[str, Address], asyncio.Task[_Stream]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound: dict[str, Address] = {}
        self._client_ctx: ssl.SSLContext | None = None
        self._server_ctx: ssl.SSLContext | None = None

    # -- set-up ------------------------------------------------------------------------------

    async def listen(self, spec: ListenSpec) -> Address:
        loop = asyncio.get_running_loop()
        if spec.transport == "udp":
            family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Datagram(self), local_addr=(spec.host, spec.port), family=family
            )
            self._udp[family] = protocol
            sock = transport.get_extra_info("socket")
            # A large receive buffer absorbs bursts of INVITEs without drops.
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            except OSError:
                pass
            address = transport.get_extra_info("sockname")
        elif spec.transport in ("tcp", "tls"):
            ctx = self._server_context() if spec.transport == "tls" else None
            name = spec.transport
            server = await loop.create_server(
                lambda: _Stream(self, name), spec.host, spec.port, ssl=ctx, reuse_address=True
            )
            self._servers.append(server)
            address = server.sockets[0].getsockname()
        else:
            raise ValueError(f"unknown SIP transport {spec.transport!r}")
        bound = (str(address[0]), int(address[1]))
        self.bound[spec.transport] = bound
        return bound

    def _server_context(self) -> ssl.SSLContext:
        if self._server_ctx is None:
            if not self.tls.certfile:
                raise ValueError("TLS listening needs a certificate (tls certfile/keyfile)")
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls.certfile, self.tls.keyfile)
            self._server_ctx = ctx
        return self._server_ctx

    def _client_context(self) -> ssl.SSLContext:
        # One context for every connection (each costs memory; design.md).
        if self._client_ctx is None:
            ctx = ssl.create_default_context(cafile=self.tls.cafile)
            if not self.tls.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.tls.certfile:
                ctx.load_cert_chain(self.tls.certfile, self.tls.keyfile)
            self._client_ctx = ctx
        return self._client_ctx

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        for protocol in self._udp.values():
            if protocol.transport is not None:
                protocol.transport.close()
        for task in list(self._connecting.values()):
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._udp.clear()

    # -- receive -----------------------------------------------------------------------------

    def deliver(self, data: bytes, flow: Flow) -> None:
        try:
            self.receive(data, flow)
        except Exception:  # the core never raises, but a bug must not kill the transport
            log.exception("error delivering a SIP message from %s", flow)

    def register_connection(self, conn: _Stream) -> None:
        self._connections[conn.connection_id] = conn
        self._by_remote[(conn.name, conn.remote)] = conn

    def unregister_connection(self, conn: _Stream) -> None:
        self._connections.pop(conn.connection_id, None)
        if self._by_remote.get((conn.name, conn.remote)) is conn:
            del self._by_remote[(conn.name, conn.remote)]
        if self.on_connection_lost is not None:
            self.on_connection_lost(conn.flow)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    # -- send --------------------------------------------------------------------------------

    def send(self, data: bytes, flow: Flow) -> None:
        host = flow.remote[0]
        if not is_ip(host):
            self._spawn(self._resolve_and_send(data, flow))
            return
        if flow.transport == "udp":
            self._send_udp(data, flow)
            return
        conn = self._connections.get(flow.connection_id or -1) or self._by_remote.get(
            (flow.transport, flow.remote)
        )
        if conn is not None:
            conn.write(data)
            return
        self._spawn(self._connect_and_send(data, flow))

    def _send_udp(self, data: bytes, flow: Flow) -> None:
        family = socket.AF_INET6 if ":" in flow.remote[0] else socket.AF_INET
        protocol = self._udp.get(family)
        if protocol is None or protocol.transport is None:
            log.warning("no UDP socket for %s", flow)
            if self.on_send_error is not None:
                self.on_send_error(flow)
            return
        if len(data) > MAX_UDP:
            log.warning("message too large for UDP (%d bytes) to %s", len(data), flow)
            return
        protocol.transport.sendto(data, flow.remote)

    def send_keepalive(self, flow: Flow) -> None:
        """RFC 5626 §3.5.1 CRLF keep-alive on a stream connection."""
        conn = self._by_remote.get((flow.transport, flow.remote))
        if conn is not None:
            conn.write(CRLF_PING)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_and_send(self, data: bytes, flow: Flow) -> None:
        try:
            if self.resolve is None:
                infos = await asyncio.get_running_loop().getaddrinfo(flow.remote[0], None)
                address = str(infos[0][4][0])
            else:
                address = await self.resolve(flow.remote[0])
        except (OSError, ValueError) as exc:
            log.warning("cannot resolve %s: %s", flow.remote[0], exc)
            if self.on_send_error is not None:
                self.on_send_error(flow)
            return
        self.send(data, Flow(flow.transport, (address, flow.remote[1]), flow.connection_id))

    async def _connect_and_send(self, data: bytes, flow: Flow) -> None:
        key = (flow.transport, flow.remote)
        task = self._connecting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._connect(flow))
            self._connecting[key] = task
            task.add_done_callback(lambda _t: self._connecting.pop(key, None))
        try:
            conn = await task
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            log.warning("cannot connect to %s: %s", flow, exc)
            if self.on_send_error is not None:
                self.on_send_error(flow)
            return
        conn.write(data)

    async def _connect(self, flow: Flow) -> _Stream:
        loop = asyncio.get_running_loop()
        ctx = self._client_context() if flow.transport == "tls" else None
        server_hostname = (self.tls.server_name or flow.remote[0]) if ctx is not None else None
        name = flow.transport
        _, protocol = await asyncio.wait_for(
            loop.create_connection(
                lambda: _Stream(self, name),
                flow.remote[0],
                flow.remote[1],
                ssl=ctx,
                server_hostname=server_hostname,
            ),
            timeout=10.0,
        )
        await protocol.connected
        return protocol
