"""The sans-IO SIP endpoint: every datagram in, every datagram and event out.

The asyncio shell (``sip/ua.py``) feeds it received bytes with :meth:`SipCore.receive`, calls
:meth:`SipCore.handle_timer` at :meth:`SipCore.get_timer`, sends what
:meth:`SipCore.datagrams_to_send` returns and dispatches :meth:`SipCore.next_event`. Nothing here
touches a socket or reads a clock, so every rule below is unit-tested with a fake clock.
"""

from __future__ import annotations

import heapq
import logging
import random
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from sip.call import CallLeg, CallState, Cause, Direction
from sip.dialog import Dialog
from sip.digest import CredentialStore
from sip.errors import SipParseError
from sip.events import Event, IncomingCall, InfoReceived, OfferReceived, OptionsResponse
from sip.flow import Flow
from sip.grammar import WS, split_commas
from sip.headers import Headers, NameAddr, Via, parse_via
from sip.message import (
    KNOWN_METHODS,
    Request,
    Response,
    check_request,
    lenient_response_fields,
    parse_message,
    reason_phrase,
)
from sip.registration import Registration, RegistrationConfig
from sip.session_timer import SessionTimer
from sip.timed import Timed
from sip.transaction import (
    MAGIC_COOKIE,
    ClientOwner,
    ClientTransaction,
    ServerTransaction,
    TimerValues,
    Transaction,
    client_key,
    server_key,
)
from sip.uri import Uri, bare_host, format_host

log = logging.getLogger("pygasi.sip")

MAX_DATAGRAM = 65535
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}
# Bodies we take in INFO (jigasi.md §4, §4.4) and INVITE.
ACCEPTED_TYPES = (
    "application/sdp",
    "application/json",
    "application/dtmf-relay",
    "application/dtmf",
)


@dataclass
class CoreConfig:
    host: str = "127.0.0.1"  # our address in Via and Contact (the public one behind NAT)
    ports: dict[str, int] = field(default_factory=lambda: {"udp": 5060})
    user_agent: str = "pygasi"
    timers: TimerValues = field(default_factory=TimerValues)
    min_se: int = 90  # RFC 4028 Min-SE
    session_expires: int = 1800  # what we ask for on our INVITEs
    allow: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
    supported: tuple[str, ...] = ("timer",)
    # Send in-dialog requests back over the flow the dialog came from instead of to the
    # peer's Contact: for peers behind NAT that advertise a private Contact.
    symmetric_signalling: bool = False


class SipCore:
    def __init__(
        self,
        config: CoreConfig | None = None,
        *,
        credentials: CredentialStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or CoreConfig()
        self.credentials = credentials
        self.rng = rng or random.Random()
        self._outbox: list[tuple[bytes, Flow]] = []
        self._events: deque[Event] = deque()
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = 0
        self._client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self._server_tx: dict[tuple[str, ...], ServerTransaction] = {}
        self._merge_index: dict[tuple[str, str, int, str], tuple[str, ...]] = {}
        self._calls: dict[tuple[str, str], CallLeg] = {}  # (Call-ID, our tag)
        self._app_tx: dict[int, tuple[ServerTransaction, Request, CallLeg]] = {}
        self._options_ids: dict[ClientTransaction, int] = {}
        self._options_owner = _OptionsOwner(self)
        self.registrations: list[Registration] = []
        self._bad_sources: OrderedDict[str, float] = OrderedDict()
        self.stats = {"received": 0, "malformed": 0, "dropped_responses": 0}
        self.accepting_calls = True
        self.refuse_status: tuple[int, str, int | None] = (503, "Service Unavailable", None)

    # == shell interface ==========================================================================

    def receive(self, data: bytes, flow: Flow, now: float) -> None:
        """A datagram (or a framed stream message) arrived. Never raises."""
        self.stats["received"] += 1
        if len(data) > MAX_DATAGRAM:
            self._log_bad(flow, "datagram over 64 KiB dropped")
            return
        try:
            message = parse_message(data, stream=flow.reliable)
        except SipParseError as exc:
            self.stats["malformed"] += 1
            self._answer_unparseable(data, flow, exc)
            return
        try:
            if isinstance(message, Response):
                self._receive_response(message, flow, now)
            else:
                self._receive_request(message, flow, now)
        except SipParseError as exc:
            self.stats["malformed"] += 1
            self._log_bad(flow, f"unusable message: {exc.reason}")
        except Exception:  # a bug must not take the endpoint down with it
            log.exception("error handling a message from %s", flow)

    def handle_timer(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, target = heapq.heappop(self._heap)
            try:
                target.handle_timers(now)
            except Exception:
                log.exception("error in a SIP timer")

    def get_timer(self) -> float | None:
        while self._heap:
            deadline, _, target = self._heap[0]
            actual = target.next_deadline()
            if actual is None or actual > deadline:
                # A stale entry (the timer was stopped or moved later); a current one exists.
                heapq.heappop(self._heap)
                if actual is not None:
                    self.wake_at(target, actual)
                continue
            return deadline
        return None

    def datagrams_to_send(self) -> list[tuple[bytes, Flow]]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def connection_lost(self, flow: Flow, now: float) -> None:
        """A stream connection closed: fail the transactions that depended on it and let
        registrations over it re-register."""
        for tx in list(self._client_tx.values()):
            if tx.flow.connection_id is not None and tx.flow.connection_id == flow.connection_id:
                tx.transport_error(now)
        for registration in self.registrations:
            if (
                registration.flow.transport == flow.transport
                and registration.flow.remote == flow.remote
            ):
                registration.connection_lost(now)

    def transport_error(self, flow: Flow, now: float) -> None:
        """The shell could not send to ``flow`` (connect refused, ICMP unreachable)."""
        for tx in list(self._client_tx.values()):
            if tx.flow == flow:
                tx.transport_error(now)

    # == application interface ====================================================================

    def invite(
        self,
        request_uri: Uri,
        from_addr: NameAddr,
        to_addr: NameAddr,
        flow: Flow,
        sdp: bytes,
        now: float,
        *,
        headers: list[tuple[str, str]] | None = None,
        routes: list[NameAddr] | None = None,
    ) -> CallLeg:
        """Start an outgoing call through ``flow`` (the trunk or outbound proxy)."""
        tag = self.new_tag()
        frm = NameAddr(from_addr.uri, from_addr.display_name, {**from_addr.params, "tag": tag})
        h = Headers()
        h.add("Via", self.new_via(flow))
        for route in routes or []:
            h.add("Route", str(route))
        h.add("Max-Forwards", "70")
        h.add("From", str(frm))
        h.add(
            "To",
            str(
                NameAddr(
                    to_addr.uri,
                    to_addr.display_name,
                    {k: v for k, v in to_addr.params.items() if k != "tag"},
                )
            ),
        )
        h.add("Call-ID", self.new_call_id())
        h.add("CSeq", "1 INVITE")
        h.add("Contact", self.contact_for(flow, user=from_addr.uri.user))
        h.add("Allow", self.allow_header())
        h.add("Supported", self.supported_header())
        h.add("Session-Expires", str(self.config.session_expires))
        h.add("Min-SE", str(self.config.min_se))
        h.add("User-Agent", self.config.user_agent)
        for name, value in headers or []:
            h.add(name, value)
        invite = Request(method="INVITE", uri=request_uri, headers=h)
        if sdp:
            invite.headers.add("Content-Type", "application/sdp")
            invite.body = sdp
        call = CallLeg(self, Direction.OUTBOUND, invite, flow, tag, now)
        self._calls[(invite.call_id, tag)] = call
        call.start_outgoing(now)
        return call

    def register(self, config: RegistrationConfig, flow: Flow, now: float) -> Registration:
        registration = Registration(self, config, flow, self.credentials)
        self.registrations.append(registration)
        registration.start(now)
        return registration

    def send_options(self, uri: Uri, flow: Flow, now: float) -> int:
        request = self.build_options(uri, flow)
        tx = self.start_client_transaction(request, flow, self._options_owner, now)
        rid = self.next_id()
        self._options_ids[tx] = rid
        return rid

    def respond(
        self,
        transaction_id: int,
        status: int,
        reason: str | None = None,
        *,
        headers: list[tuple[str, str]] | None = None,
        content_type: str | None = None,
        body: bytes = b"",
        now: float = 0.0,
    ) -> None:
        """Answer an InfoReceived (or any request handed to the application)."""
        entry = self._app_tx.pop(transaction_id, None)
        if entry is None:
            return
        tx, request, _call = entry
        response = self.make_response(request, status, reason)
        for name, value in headers or []:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", content_type or "application/octet-stream")
            response.body = body
        tx.respond(response, now)

    def answer_offer(
        self,
        transaction_id: int,
        sdp: bytes | None,
        now: float,
        status: int = 200,
        reason: str | None = None,
    ) -> None:
        """Answer an OfferReceived: ``sdp`` with 200, or a rejection status (e.g. 488)."""
        entry = self._app_tx.pop(transaction_id, None)
        if entry is None:
            return
        tx, request, call = entry
        call.answer_offer(tx, request, sdp, status, reason or reason_phrase(status), now)

    def calls(self) -> list[CallLeg]:
        return list(self._calls.values())

    # == receiving requests =======================================================================

    def _receive_request(self, request: Request, flow: Flow, now: float) -> None:
        problem = check_request(request)
        if problem is not None:
            if request.method != "ACK":
                status, reason = problem
                self._respond_stateless(request, flow, status, reason, now)
            return
        via = self._fix_top_via(request, flow)
        response_flow = self._response_flow(via, flow)
        if request.method == "CANCEL":
            self._receive_cancel(request, via, response_flow, now)
            return
        key = server_key(request, via)
        tx = self._server_tx.get(key)
        if tx is not None:
            tx.receive_request(request, now)
            return
        if request.method == "ACK":
            self._receive_ack(request, now)
            return
        to_tag = request.to.tag
        merge = (request.from_.tag or "", request.call_id, request.cseq.seq, request.method)
        if not to_tag and merge in self._merge_index and self._merge_index[merge] != key:
            # §8.2.2.2: the same request reached us twice by different paths (a fork).
            self._respond_stateless(request, flow, 482, "Loop Detected", now)
            return
        tx = ServerTransaction(self, request, response_flow, key, now, self.config.timers)
        self._server_tx[key] = tx
        if not to_tag:
            self._merge_index[merge] = key
        unsupported = [
            t for t in request.header_tokens("Require") if t.lower() not in self.config.supported
        ]
        if unsupported:
            # §8.2.2.3: a UAS must refuse extensions it does not know (RFC 4475 §3.3.5).
            response = self.make_response(request, 420, None)
            response.headers.add("Unsupported", ", ".join(unsupported))
            tx.respond(response, now)
            return
        if to_tag:
            self._receive_in_dialog(request, tx, flow, now)
        else:
            self._receive_out_of_dialog(request, tx, flow, now)

    def _receive_out_of_dialog(
        self, request: Request, tx: ServerTransaction, flow: Flow, now: float
    ) -> None:
        method = request.method
        if method == "INVITE":
            self._receive_new_invite(request, tx, flow, now)
        elif method == "OPTIONS":
            # Load balancers (Kamailio's dispatcher) probe with OPTIONS (§11.2). While new
            # calls are refused (a drain), so is the probe: the balancer sends them elsewhere.
            if not self.accepting_calls:
                status, reason, retry_after = self.refuse_status
                response = self.make_response(request, status, reason)
                if retry_after is not None:
                    response.headers.add("Retry-After", str(retry_after))
                tx.respond(response, now)
            else:
                tx.respond(self._options_response(request), now)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            tx.respond(self.make_response(request, 481, None), now)
        elif method in KNOWN_METHODS:
            response = self.make_response(request, 405, None)
            response.headers.add("Allow", self.allow_header())
            tx.respond(response, now)
        else:
            response = self.make_response(request, 501, None)
            response.headers.add("Allow", self.allow_header())
            tx.respond(response, now)

    def _receive_new_invite(
        self, request: Request, tx: ServerTransaction, flow: Flow, now: float
    ) -> None:
        if request.body and request.content_type not in ("application/sdp", None):
            response = self.make_response(request, 415, None)
            response.headers.add("Accept", "application/sdp")
            tx.respond(response, now)
            return
        accept = [a.split(";")[0].strip(WS).lower() for a in request.headers.values("Accept") if a]
        if accept and not any(a in ("application/sdp", "application/*", "*/*") for a in accept):
            # RFC 4475 §3.3.15: we can only answer with SDP.
            response = self.make_response(request, 406, None)
            response.headers.add("Accept", "application/sdp")
            response.headers.add(
                "Warning", f'399 {self.config.host} "SDP is the only body we can send"'
            )
            tx.respond(response, now)
            return
        session_expires = request.headers.get("Session-Expires")
        if session_expires is not None:
            interval, _ = SessionTimer.parse(session_expires)
            if interval < self.config.min_se:
                # RFC 4028 §8.1: Session Interval Too Small.
                response = self.make_response(request, 422, None)
                response.headers.add("Min-SE", str(self.config.min_se))
                tx.respond(response, now)
                return
        if not self.accepting_calls:
            status, reason, retry_after = self.refuse_status
            response = self.make_response(request, status, reason, to_tag=self.new_tag())
            if retry_after is not None:
                response.headers.add("Retry-After", str(retry_after))
            tx.respond(response, now)
            return
        # §17.2.1: Trying at once, so the caller stops retransmitting while we join the room.
        tx.respond(self.make_response(request, 100, None), now)
        tag = self.new_tag()
        call = CallLeg(self, Direction.INBOUND, request, flow, tag, now)
        call.invite_tx = tx
        self._calls[(request.call_id, tag)] = call
        self.emit(IncomingCall(call, request, flow))

    def _receive_in_dialog(
        self, request: Request, tx: ServerTransaction, flow: Flow, now: float
    ) -> None:
        call = self._calls.get((request.call_id, request.to.tag or ""))
        if call is None or call.ended:
            tx.respond(self.make_response(request, 481, None), now)
            return
        if call.dialog is not None and not call.dialog.accept_remote_cseq(request):
            # §12.2.2: a CSeq lower than the last one is out of order.
            tx.respond(
                self.make_response(request, 500, "Server Internal Error (CSeq out of order)"), now
            )
            return
        method = request.method
        if method == "BYE":
            call.receive_bye(request, tx, now)
        elif method in ("INVITE", "UPDATE"):
            call.refresh_received(now)
            if method == "INVITE" and not call.receive_reinvite(request, tx, now):
                return
            if method == "UPDATE" and not request.body:
                if call.dialog is not None:
                    call.dialog.refresh_target(request)
                call.receive_session_refresh(request, tx, now)
                return
            tid = self.next_id()
            self._app_tx[tid] = (tx, request, call)
            self.emit(OfferReceived(call, request, tid))
        elif method == "INFO":
            if request.body and request.content_type not in ACCEPTED_TYPES:
                response = self.make_response(request, 415, None)
                response.headers.add("Accept", ", ".join(ACCEPTED_TYPES[1:]))
                tx.respond(response, now)
                return
            tid = self.next_id()
            self._app_tx[tid] = (tx, request, call)
            self.emit(InfoReceived(call, request, tid))
        elif method == "OPTIONS":
            tx.respond(self._options_response(request), now)
        elif method == "PRACK":
            # We never send reliable provisionals (RFC 3262 is not supported).
            tx.respond(self.make_response(request, 481, None), now)
        else:
            response = self.make_response(request, 405 if method in KNOWN_METHODS else 501, None)
            response.headers.add("Allow", self.allow_header())
            tx.respond(response, now)

    def _receive_ack(self, ack: Request, now: float) -> None:
        call = self._calls.get((ack.call_id, ack.to.tag or ""))
        if call is not None:
            call.receive_ack(ack, now)

    def _receive_cancel(self, cancel: Request, via: Via, response_flow: Flow, now: float) -> None:
        key = server_key(cancel, via)
        tx = self._server_tx.get(key)
        if tx is not None:  # a retransmitted CANCEL
            tx.receive_request(cancel, now)
            return
        tx = ServerTransaction(self, cancel, response_flow, key, now, self.config.timers)
        self._server_tx[key] = tx
        invite_key = (*key[:-1], "INVITE")
        invite_tx = self._server_tx.get(invite_key)
        if invite_tx is None:
            tx.respond(self.make_response(cancel, 481, None), now)
            return
        tx.respond(self.make_response(cancel, 200, None), now)
        for call in self._calls.values():
            if call.invite_tx is invite_tx:
                call.receive_cancel(cancel, now)
                break

    # == receiving responses ======================================================================

    def _receive_response(self, response: Response, flow: Flow, now: float) -> None:
        vias = response.vias
        # §8.1.3.3 and §18.1.2: a response meant for us has exactly our Via.
        if len(vias) != 1 or not self._is_our_via(vias[0]):
            self.stats["dropped_responses"] += 1
            return
        via = vias[0]
        key = client_key(via.branch or "", response.cseq.method)
        tx = self._client_tx.get(key)
        if tx is not None:
            tx.receive_response(response, now)
            return
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            call = self._calls.get((response.call_id, response.from_.tag or ""))
            if call is not None:
                call.receive_stray_2xx(response, now)
                return
        self.stats["dropped_responses"] += 1

    def _is_our_via(self, via: Via) -> bool:
        if bare_host(via.host).lower() != bare_host(self.config.host).lower():
            return False
        port = self.config.ports.get(via.transport.lower())
        return port is None or via.port in (None, port)

    # == helpers for calls, registrations and transactions =========================================

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def transmit(self, message: Request | Response, flow: Flow) -> None:
        self._outbox.append((bytes(message), flow))

    def wake_at(self, target: Timed, deadline: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, target))

    def transaction_terminated(self, transaction: Transaction) -> None:
        if isinstance(transaction, ClientTransaction):
            if self._client_tx.get(transaction.key) is transaction:
                del self._client_tx[transaction.key]
            self._options_ids.pop(transaction, None)
        elif isinstance(transaction, ServerTransaction):
            if self._server_tx.get(transaction.key) is transaction:
                del self._server_tx[transaction.key]
            request = transaction.request
            try:
                merge = (request.from_.tag or "", request.call_id, request.cseq.seq, request.method)
            except SipParseError:
                return
            if self._merge_index.get(merge) == transaction.key:
                del self._merge_index[merge]

    def call_finished(self, call: CallLeg) -> None:
        self._calls.pop((call.call_id, call.local_tag), None)
        for tid in [tid for tid, (_, _, c) in self._app_tx.items() if c is call]:
            del self._app_tx[tid]

    def start_client_transaction(
        self, request: Request, flow: Flow, owner: ClientOwner, now: float
    ) -> ClientTransaction:
        tx = ClientTransaction(self, request, flow, owner, now, self.config.timers)
        self._client_tx[tx.key] = tx
        return tx

    def start_in_dialog(
        self, request: Request, dialog: Dialog, fallback: Flow, owner: ClientOwner, now: float
    ) -> ClientTransaction:
        return self.start_client_transaction(
            request, self.dialog_flow(dialog, fallback), owner, now
        )

    def transmit_to_target(self, request: Request, dialog: Dialog, fallback: Flow) -> None:
        self.transmit(request, self.dialog_flow(dialog, fallback))

    def dialog_flow(self, dialog: Dialog, fallback: Flow) -> Flow:
        """The next hop of an in-dialog request (§8.1.2 with RFC 3263 §4 for the port)."""
        if self.config.symmetric_signalling:
            return fallback
        return self.flow_for_uri(dialog.next_hop(), fallback)

    def flow_for_uri(self, uri: Uri, fallback: Flow) -> Flow:
        if uri.scheme == "sips":
            transport = "tls"
        else:
            transport = uri.transport or ("udp" if not fallback.reliable else fallback.transport)
        host = bare_host(uri.maddr or uri.host)
        port = uri.port or DEFAULT_PORTS.get(transport, 5060)
        if (host, port) == fallback.remote and transport == fallback.transport:
            return fallback  # keep using the connection we already have
        if fallback.reliable and transport == fallback.transport and host == fallback.remote[0]:
            return fallback
        return Flow(transport, (host, port))

    def new_via(self, flow: Flow) -> str:
        port = self.config.ports.get(flow.transport, DEFAULT_PORTS.get(flow.transport, 5060))
        branch = MAGIC_COOKIE + secrets.token_hex(8)
        # RFC 3581: ask for rport so responses come back through NATs.
        sent_by = f"{format_host(self.config.host)}:{port}"
        return f"SIP/2.0/{flow.transport.upper()} {sent_by};branch={branch};rport"

    def contact_uri(self, flow: Flow, user: str | None = None) -> Uri:
        port = self.config.ports.get(flow.transport, DEFAULT_PORTS.get(flow.transport, 5060))
        params: dict[str, str | None] = {}
        if flow.transport != "udp":
            params["transport"] = flow.transport
        scheme = "sip"
        return Uri(
            scheme=scheme, user=user or "pygasi", host=self.config.host, port=port, params=params
        )

    def contact_for(self, flow: Flow, user: str | None = None) -> str:
        return f"<{self.contact_uri(flow, user)}>"

    def allow_header(self) -> str:
        return ", ".join(self.config.allow)

    def supported_header(self) -> str:
        return ", ".join(self.config.supported)

    def add_dialog_headers(self, response: Response, flow: Flow) -> None:
        response.headers.add("Contact", self.contact_for(flow))
        response.headers.add("Allow", self.allow_header())
        response.headers.add("Supported", self.supported_header())

    def build_options(self, uri: Uri, flow: Flow) -> Request:
        h = Headers()
        h.add("Via", self.new_via(flow))
        h.add("Max-Forwards", "70")
        local = self.contact_uri(flow)
        h.add("From", str(NameAddr(uri=local, params={"tag": self.new_tag()})))
        h.add("To", str(NameAddr(uri=uri)))
        h.add("Call-ID", self.new_call_id())
        h.add("CSeq", "1 OPTIONS")
        h.add("Accept", "application/sdp")
        h.add("User-Agent", self.config.user_agent)
        return Request(method="OPTIONS", uri=uri, headers=h)

    def make_response(
        self, request: Request, status: int, reason: str | None, to_tag: str | None = None
    ) -> Response:
        """A response with the headers §8.2.6.2 copies from the request."""
        h = Headers()
        for value in request.headers.get_all("Via"):
            h.add("Via", value)
        h.add("From", request.headers.get("From") or "")
        to = request.headers.get("To") or ""
        if to_tag and status > 100 and request.to.tag is None:
            to = f"{to};tag={to_tag}"
        h.add("To", to)
        h.add("Call-ID", request.headers.get("Call-ID") or "")
        h.add("CSeq", request.headers.get("CSeq") or "")
        if status == 100 and "Timestamp" in request.headers:
            h.add("Timestamp", request.headers.get("Timestamp") or "")  # §8.2.6.1
        h.add("Server", self.config.user_agent)
        return Response(status=status, reason=reason or reason_phrase(status), headers=h)

    def new_tag(self) -> str:
        return secrets.token_hex(5)

    def new_call_id(self) -> str:
        return f"{secrets.token_hex(12)}@{bare_host(self.config.host)}"

    def next_id(self) -> int:
        self._seq += 1
        return self._seq

    # == responding ================================================================================

    def _options_response(self, request: Request) -> Response:
        response = self.make_response(request, 200, None)
        response.headers.add("Allow", self.allow_header())
        response.headers.add("Accept", "application/sdp")
        response.headers.add("Supported", self.supported_header())
        return response

    def _respond_stateless(
        self, request: Request, flow: Flow, status: int, reason: str, now: float
    ) -> None:
        try:
            via = self._fix_top_via(request, flow)
            target = self._response_flow(via, flow)
        except SipParseError:
            target = flow
        self.transmit(self.make_response(request, status, reason), target)

    def _answer_unparseable(self, data: bytes, flow: Flow, exc: SipParseError) -> None:
        """§21.4.1/RFC 4475: answer a malformed request with 400 (or 505) naming the problem,
        when enough of it is readable to address a response; otherwise drop it."""
        fields = None if data.lstrip(b"\r\n")[:4] == b"ACK " else lenient_response_fields(data)
        if fields is None:
            self._log_bad(flow, f"malformed message dropped: {exc.reason}")
            return
        h = Headers()
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in fields[name]:
                h.add(name, value)
        h.add("Server", self.config.user_agent)
        reason = reason_phrase(exc.status) if exc.status != 400 else "Bad Request"
        # The reason phrase names the problem so the peer's operator can see it in a trace.
        phrase = f"{reason} ({_phrase_safe(exc.reason)})"
        response = Response(status=exc.status, reason=phrase, headers=h)
        target = flow
        if not flow.reliable:
            try:
                via = parse_via(split_commas(fields["Via"][0])[0])
                target = self._response_flow(self._with_received(via, flow), flow)
            except SipParseError:
                target = flow
        self.transmit(response, target)
        self._log_bad(flow, f"answered {exc.status} to a malformed request: {exc.reason}")

    def _log_bad(self, flow: Flow, what: str) -> None:
        """Log malformed traffic once per source and minute, so a flood cannot fill the log."""
        source = flow.remote[0]
        if source in self._bad_sources:
            self._bad_sources.move_to_end(source)
            return
        self._bad_sources[source] = 0.0
        if len(self._bad_sources) > 1024:
            self._bad_sources.popitem(last=False)
        log.warning("%s from %s", what, flow)

    def forget_bad_sources(self) -> None:
        self._bad_sources.clear()

    def _with_received(self, via: Via, flow: Flow) -> Via:
        """§18.2.1 and RFC 3581 §4: note where the request really came from."""
        source_ip, source_port = flow.remote
        if bare_host(via.host) != source_ip:
            via.params["received"] = source_ip
        if via.has_rport and via.params.get("rport") is None:
            via.params["received"] = source_ip
            via.params["rport"] = str(source_port)
        return via

    def _fix_top_via(self, request: Request, flow: Flow) -> Via:
        via = self._with_received(request.top_via, flow)
        fields = request.headers.get_all("Via")
        first = split_commas(fields[0])
        first[0] = str(via)
        rebuilt = Headers()
        replaced = False
        for name, value in request.headers:
            if name == "Via" and not replaced:
                rebuilt.add("Via", ", ".join(first))
                replaced = True
            else:
                rebuilt.add(name, value)
        request.headers = rebuilt
        return via

    def _response_flow(self, via: Via, flow: Flow) -> Flow:
        """§18.2.2 with RFC 3581: where a response to a request with this Via goes."""
        if flow.reliable:
            return flow
        if via.maddr:
            return Flow(flow.transport, (bare_host(via.maddr), via.port or 5060))
        host = via.received or bare_host(via.host)
        port = via.rport or via.port or DEFAULT_PORTS.get(flow.transport, 5060)
        return Flow(flow.transport, (bare_host(host), port))


class _OptionsOwner:
    def __init__(self, core: SipCore) -> None:
        self.core = core

    def on_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        if response.status >= 200:
            rid = self.core._options_ids.get(tx)
            if rid is not None:
                self.core.emit(OptionsResponse(rid, response))

    def on_failure(self, tx: ClientTransaction, reason: str, now: float) -> None:
        rid = self.core._options_ids.get(tx)
        if rid is not None:
            self.core.emit(OptionsResponse(rid, None))


def _phrase_safe(text: str) -> str:
    return "".join(ch if ch.isprintable() and ch not in "\r\n" else "?" for ch in text)[:120]


__all__ = ["CallState", "Cause", "CoreConfig", "SipCore"]
