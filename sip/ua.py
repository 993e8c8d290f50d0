"""The asyncio user agent: a thin shell around :class:`sip.core.SipCore`.

It owns the transports and one timer, feeds the core what arrives, sends what the core queues
and turns the core's events into pyee events on :class:`UserAgent` (``"call"``) and
:class:`Call` (``"progress"``, ``"answered"``, ``"confirmed"``, ``"media"``, ``"info"``,
``"reinvite"``, ``"bye"``, ``"cancel"``, ``"ended"``, ``"failed"``), the way aiortc's objects
emit theirs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field

from pyee.asyncio import AsyncIOEventEmitter

from sip.call import CallLeg, CallState, Cause, Direction
from sip.core import CoreConfig, SipCore
from sip.digest import CredentialStore
from sip.dns import SipResolver
from sip.errors import SipParseError
from sip.events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallFailed,
    CallProgress,
    Event,
    IncomingCall,
    InfoReceived,
    OfferReceived,
    OptionsResponse,
    RegistrationChanged,
    RequestCompleted,
)
from sip.flow import Flow
from sip.headers import Headers, NameAddr
from sip.message import Request, Response
from sip.offer_answer import MediaNegotiator, NegotiatedStream, NegotiationError
from sip.registration import Registration, RegistrationConfig
from sip.sdp import SessionDescription, parse_sdp
from sip.transaction import TimerValues
from sip.transport import ListenSpec, TlsSettings, Transports
from sip.uri import Uri

log = logging.getLogger("pygasi.sip.ua")


@dataclass
class UAConfig:
    listen: list[ListenSpec] = field(default_factory=lambda: [ListenSpec("udp", "0.0.0.0", 5060)])
    public_address: str | None = None  # our address in Via/Contact/SDP behind NAT
    user_agent: str = "pygasi"
    tls: TlsSettings = field(default_factory=TlsSettings)
    timers: TimerValues = field(default_factory=TimerValues)
    min_se: int = 90
    session_expires: int = 1800
    symmetric_signalling: bool = False
    stream_keepalive: float = 30.0  # CRLF keep-alive period on registration connections


@dataclass
class CallEnd:
    """Why a call ended, for the ``ended`` event."""

    by_remote: bool
    reason: str
    request: Request | None = None
    status: int | None = None


class InfoRequest:
    """An INFO from the peer; answer it with :meth:`respond` (200 when nobody listens)."""

    def __init__(self, call: Call, request: Request, transaction_id: int) -> None:
        self.call = call
        self.request = request
        self._tid = transaction_id
        self.responded = False

    @property
    def content_type(self) -> str | None:
        return self.request.content_type

    @property
    def body(self) -> bytes:
        return self.request.body

    def respond(
        self,
        status: int = 200,
        reason: str | None = None,
        content_type: str | None = None,
        body: bytes = b"",
    ) -> None:
        if self.responded:
            return
        self.responded = True
        ua = self.call.ua
        ua.core.respond(
            self._tid, status, reason, content_type=content_type, body=body, now=ua.now()
        )
        ua.pump()


class Call(AsyncIOEventEmitter):
    def __init__(self, ua: UserAgent, leg: CallLeg) -> None:
        super().__init__()
        self.ua = ua
        self.leg = leg
        self.negotiator: MediaNegotiator | None = None
        self.stream: NegotiatedStream | None = None
        self.end: CallEnd | None = None
        self._ended = asyncio.get_running_loop().create_future()
        self._answered = asyncio.get_running_loop().create_future()
        self._pending: dict[int, asyncio.Future[Response | None]] = {}
        self._local_sdp = b""

    # -- what the call is ---------------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.leg.call_id

    @property
    def direction(self) -> Direction:
        return self.leg.direction

    @property
    def state(self) -> CallState:
        return self.leg.state

    @property
    def request(self) -> Request:
        """The initial INVITE with every header, as received (or as sent)."""
        return self.leg.invite

    @property
    def headers(self) -> Headers:
        return self.leg.invite.headers

    @property
    def from_(self) -> NameAddr:
        return self.leg.invite.from_

    @property
    def to(self) -> NameAddr:
        return self.leg.invite.to

    @property
    def source(self) -> Flow:
        return self.leg.flow

    def __repr__(self) -> str:
        return f"<Call {self.direction.value} {self.call_id} {self.state.value}>"

    # -- answering an incoming call ---------------------------------------------------------

    def ringing(self, status: int = 180) -> None:
        self.leg.send_provisional(status, None, self.ua.now())
        self.ua.pump()

    def negotiate(self, negotiator: MediaNegotiator) -> NegotiatedStream | None:
        """Run the INVITE's offer through ``negotiator`` (None when the INVITE had no SDP: our
        offer goes in the 200 and the answer arrives with the ACK). Raises NegotiationError."""
        self.negotiator = negotiator
        body = self.leg.invite.body
        if not body:
            self._local_sdp = negotiator.create_offer().to_bytes()
            return None
        answer, stream = negotiator.receive_offer(_parse(body))
        self._local_sdp = answer.to_bytes()
        self.stream = stream
        return stream

    def answer(self, sdp: bytes | None = None) -> None:
        """Send the 200 OK with ``sdp`` (or the negotiator's answer/offer)."""
        self.leg.answer(sdp if sdp is not None else self._local_sdp, self.ua.now())
        self.ua.pump()

    def reject(
        self, status: int, reason: str | None = None, headers: list[tuple[str, str]] | None = None
    ) -> None:
        self.leg.reject(status, reason, self.ua.now(), headers)
        self.ua.pump()
        self._finish(CallEnd(by_remote=False, reason=reason or str(status), status=status))

    def hangup(self, status: int = 200, reason: str = "Call ended") -> None:
        """BYE, CANCEL or a final response, whichever the state needs, carrying the cause."""
        self.leg.hangup(Cause(status, reason), self.ua.now())
        self.ua.pump()

    # -- inside the dialog ----------------------------------------------------------------------

    async def send_info(
        self, content_type: str, body: bytes, timeout: float = 40.0
    ) -> Response | None:
        """Send an INFO; returns its final response, or None if it timed out."""
        rid = self.leg.send_request("INFO", self.ua.now(), content_type, body)
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.ua.pump()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(rid, None)

    async def reinvite(self, sdp: bytes | None = None, timeout: float = 40.0) -> Response | None:
        """Send a re-INVITE (the negotiator's new offer when ``sdp`` is None)."""
        if sdp is None:
            if self.negotiator is None:
                raise RuntimeError("no negotiator and no SDP to offer")
            sdp = self.negotiator.create_offer().to_bytes()
        rid = self.leg.reinvite(sdp, self.ua.now())
        future: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        self.ua.pump()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._pending.pop(rid, None)

    async def wait_answered(self) -> NegotiatedStream | None:
        return await asyncio.shield(self._answered)

    async def wait_ended(self) -> CallEnd:
        return await asyncio.shield(self._ended)

    @property
    def ended(self) -> bool:
        return self._ended.done()

    # -- events from the core ---------------------------------------------------------------

    def _take_answer(self, sdp: bytes) -> None:
        if self.negotiator is None or not sdp or not self.negotiator.offer_pending:
            return
        try:
            self.stream = self.negotiator.receive_answer(_parse(sdp))
        except (NegotiationError, SipParseError) as exc:
            log.warning("call %s: unusable SDP answer: %s", self.call_id, exc)
            self.hangup(488, f"Unusable SDP answer: {exc}")
            return
        self.emit("media", self.stream)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, CallProgress):
            self.emit("progress", event.response)
        elif isinstance(event, CallAnswered):
            self._take_answer(event.response.body)
            if not self._answered.done():
                self._answered.set_result(self.stream)
            self.emit("answered", event.response)
        elif isinstance(event, CallConfirmed):
            self._take_answer(event.ack.body)
            if not self._answered.done():
                self._answered.set_result(self.stream)
            self.emit("confirmed", event.ack)
        elif isinstance(event, CallFailed):
            if not self._answered.done():
                self._answered.set_exception(CallFailedError(event.status, event.reason))
                self._answered.exception()  # retrieved: a failed call nobody awaits is fine
            self.emit("failed", event.status, event.reason)
            self._finish(CallEnd(by_remote=True, reason=event.reason, status=event.status))
        elif isinstance(event, CallCancelled):
            self.emit("cancel", event.request)
            self._finish(
                CallEnd(
                    by_remote=True,
                    reason=event.request.headers.get("Reason") or "CANCEL",
                    request=event.request,
                )
            )
        elif isinstance(event, CallEnded):
            if event.by_remote and event.request is not None:
                self.emit("bye", event.request)
            self._finish(
                CallEnd(by_remote=event.by_remote, reason=event.reason, request=event.request)
            )
        elif isinstance(event, InfoReceived):
            info = InfoRequest(self, event.request, event.transaction_id)
            if self.listeners("info"):
                self.emit("info", info)
            else:
                info.respond(200)
        elif isinstance(event, OfferReceived):
            self._answer_offer(event)
        elif isinstance(event, RequestCompleted):
            future = self._pending.get(event.request_id)
            if event.method == "INVITE" and event.response is not None:
                if 200 <= event.response.status < 300:
                    self._take_answer(event.response.body)
                elif self.negotiator is not None and self.negotiator.offer_pending:
                    self.negotiator.rollback()
            if future is not None and not future.done():
                future.set_result(event.response)

    def _answer_offer(self, event: OfferReceived) -> None:
        self.emit("reinvite", event.request)
        now = self.ua.now()
        if self.negotiator is None:
            self.ua.core.answer_offer(event.transaction_id, None, now, 488, "Not Acceptable Here")
            return
        body = event.request.body
        try:
            if body:
                answer, stream = self.negotiator.receive_offer(_parse(body))
                sdp = answer.to_bytes()
            else:
                # A re-INVITE without an offer: offer in the 200, answer in the ACK.
                sdp = self.negotiator.create_offer().to_bytes()
                stream = None
        except NegotiationError as exc:
            self.ua.core.answer_offer(event.transaction_id, None, now, exc.status, exc.reason)
            return
        except SipParseError as exc:
            self.ua.core.answer_offer(
                event.transaction_id, None, now, 400, f"Bad SDP: {exc.reason}"
            )
            return
        self.ua.core.answer_offer(event.transaction_id, sdp, now)
        if stream is not None:
            changed = stream != self.stream
            self.stream = stream
            if changed:
                self.emit("media", stream)

    def _finish(self, end: CallEnd) -> None:
        if self._ended.done():
            return
        self.end = end
        self._ended.set_result(end)
        if not self._answered.done():
            self._answered.set_exception(CallFailedError(end.status or 487, end.reason))
            self._answered.exception()
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self.ua.forget(self)
        self.emit("ended", end)


class CallFailedError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def _parse(body: bytes) -> SessionDescription:
    return parse_sdp(body)


class UserAgent(AsyncIOEventEmitter):
    def __init__(
        self,
        config: UAConfig | None = None,
        *,
        credentials: CredentialStore | None = None,
        resolver: SipResolver | None = None,
    ) -> None:
        super().__init__()
        self.config = config or UAConfig()
        # RFC 3263 server location; an operator can point it at specific nameservers.
        self.resolver = resolver or SipResolver()
        self.loop = asyncio.get_running_loop()
        self.core = SipCore(CoreConfig(), credentials=credentials)
        self.transports = Transports(
            receive=self._receive,
            tls=self.config.tls,
            resolve=self._resolve_host,
            on_connection_lost=self._connection_lost,
            on_send_error=self._send_error,
        )
        self._timer: asyncio.TimerHandle | None = None
        self._calls: dict[CallLeg, Call] = {}
        self._options: dict[int, asyncio.Future[Response | None]] = {}
        self.registrations: list[Registration] = []
        self._keepalive_task: asyncio.Task[None] | None = None
        self.address = "127.0.0.1"

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        ports: dict[str, int] = {}
        hosts: list[str] = []
        for spec in self.config.listen:
            host, port = await self.transports.listen(spec)
            ports[spec.transport] = port
            hosts.append(host)
        self.address = self.config.public_address or _advertised_address(hosts)
        self.core.config = CoreConfig(
            host=self.address,
            ports=ports,
            user_agent=self.config.user_agent,
            timers=self.config.timers,
            min_se=self.config.min_se,
            session_expires=self.config.session_expires,
            symmetric_signalling=self.config.symmetric_signalling,
        )
        if self.config.stream_keepalive > 0:
            self._keepalive_task = asyncio.ensure_future(self._stream_keepalives())

    async def close(self, unregister: bool = True, timeout: float = 5.0) -> None:
        if unregister and self.registrations:
            for registration in self.registrations:
                registration.stop(self.now())
            self.pump()
            deadline = self.now() + timeout
            while self.now() < deadline and any(
                r.state.value == "unregistering" for r in self.registrations
            ):
                await asyncio.sleep(0.05)
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        await self.transports.close()

    def now(self) -> float:
        return self.loop.time()

    @property
    def credentials(self) -> CredentialStore | None:
        """Digest credentials for challenges from registrars, proxies and peers."""
        return self.core.credentials

    @credentials.setter
    def credentials(self, store: CredentialStore | None) -> None:
        self.core.credentials = store

    @property
    def ports(self) -> dict[str, int]:
        return dict(self.core.config.ports)

    def refuse_calls(
        self, status: int = 503, reason: str = "Service Unavailable", retry_after: int | None = None
    ) -> None:
        """Answer new INVITEs with ``status`` (graceful drain)."""
        self.core.accepting_calls = False
        self.core.refuse_status = (status, reason, retry_after)

    def accept_calls(self) -> None:
        self.core.accepting_calls = True

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    # -- outgoing ------------------------------------------------------------------------------

    async def targets(self, uri: Uri) -> list[Flow]:
        """Where to send a request for ``uri``, in failover order (RFC 3263 §4)."""
        return await self.resolver.resolve(uri)

    async def _resolve_host(self, host: str) -> str:
        """The address of a host name met in a dialog (a Contact or Route host)."""
        flows = await self.resolver.resolve(Uri(host=host, port=5060))
        return flows[0].remote[0]

    async def register(self, config: RegistrationConfig, via: Uri | None = None) -> Registration:
        """Register ``config.aor`` with its registrar (through ``via``, an outbound proxy)."""
        flows = await self.targets(via or config.registrar)
        registration = self.core.register(config, flows[0], self.now())
        registration.targets = flows
        self.registrations.append(registration)
        self.pump()
        return registration

    async def invite(
        self,
        uri: Uri,
        from_addr: NameAddr,
        *,
        to_addr: NameAddr | None = None,
        negotiator: MediaNegotiator | None = None,
        sdp: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
        proxy: Uri | None = None,
    ) -> Call:
        """Place a call to ``uri`` (through ``proxy`` when given: an outbound proxy that
        loose-routes, RFC 3261 §8.1.2)."""
        flows = await self.targets(proxy or uri)
        routes = (
            [NameAddr(uri=proxy.with_params(lr=None))]
            if proxy is not None and proxy.host != uri.host
            else []
        )
        if negotiator is not None and not sdp:
            sdp = negotiator.create_offer().to_bytes()
        leg = self.core.invite(
            uri,
            from_addr,
            to_addr or NameAddr(uri=uri),
            flows[0],
            sdp,
            self.now(),
            headers=headers,
            routes=routes,
        )
        call = Call(self, leg)
        call.negotiator = negotiator
        self._calls[leg] = call
        self.pump()
        return call

    async def options(self, uri: Uri, timeout: float = 35.0) -> Response | None:
        flows = await self.targets(uri)
        rid = self.core.send_options(uri, flows[0], self.now())
        future: asyncio.Future[Response | None] = self.loop.create_future()
        self._options[rid] = future
        self.pump()
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return None
        finally:
            self._options.pop(rid, None)

    # -- the pump -------------------------------------------------------------------------------

    def _receive(self, data: bytes, flow: Flow) -> None:
        self.core.receive(data, flow, self.now())
        self.pump()

    def _connection_lost(self, flow: Flow) -> None:
        self.core.connection_lost(flow, self.now())
        self.pump()

    def _send_error(self, flow: Flow) -> None:
        self.core.transport_error(flow, self.now())
        self.pump()

    def pump(self) -> None:
        """Send what the core queued, dispatch its events, re-arm the timer."""
        for _ in range(100):
            for data, flow in self.core.datagrams_to_send():
                self.transports.send(data, flow)
            event = self.core.next_event()
            if event is None:
                break
            self._dispatch(event)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.get_timer()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(self.now())
        self.pump()

    def _dispatch(self, event: Event) -> None:
        try:
            if isinstance(event, IncomingCall):
                call = Call(self, event.call)
                self._calls[event.call] = call
                self.emit("call", call)
            elif isinstance(event, RegistrationChanged):
                self.emit("registration", event)
            elif isinstance(event, OptionsResponse):
                future = self._options.get(event.request_id)
                if future is not None and not future.done():
                    future.set_result(event.response)
            else:
                leg = getattr(event, "call", None)
                if isinstance(leg, CallLeg) and leg in self._calls:
                    self._calls[leg]._on_event(event)
        except Exception:
            log.exception("error dispatching %s", type(event).__name__)

    def forget(self, call: Call) -> None:
        self._calls.pop(call.leg, None)

    async def _stream_keepalives(self) -> None:
        while True:
            await asyncio.sleep(self.config.stream_keepalive)
            for registration in self.registrations:
                if registration.flow.reliable:
                    self.transports.send_keepalive(registration.flow)


def _advertised_address(hosts: list[str]) -> str:
    """The address to put in Via/Contact when none is configured: the listening address if it
    is specific, else the address of the interface that routes outwards."""
    for host in hosts:
        if host not in ("0.0.0.0", "::"):
            return host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


__all__ = [
    "Call",
    "CallEnd",
    "CallFailedError",
    "InfoRequest",
    "RegistrationConfig",
    "UAConfig",
    "UserAgent",
]
