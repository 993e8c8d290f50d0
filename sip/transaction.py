"""SIP transactions (RFC 3261 §17, amended by RFC 6026): sans-IO state machines.

A transaction never touches a socket or a clock. It sends through a :class:`TransactionSink`
(the UA core, which queues datagrams for the asyncio shell) and asks the sink to wake it at a
deadline; the core calls :meth:`handle_timers` with the current time. Client transactions report
responses and failures to their owner (a call, a registration, an in-dialog request).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from sip.flow import Flow
from sip.headers import Headers, Via
from sip.message import Request, Response
from sip.timed import Timed

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class TimerValues:
    """RFC 3261 §17.1.1.1 and Table 4: T1 (RTT estimate), T2 (maximum non-INVITE
    retransmission interval), T4 (time a message may stay in the network)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class TransactionSink(Protocol):
    def transmit(self, message: Request | Response, flow: Flow) -> None: ...

    def wake_at(self, target: Timed, deadline: float) -> None: ...

    def transaction_terminated(self, transaction: Transaction) -> None: ...


class ClientOwner(Protocol):
    """Whoever sent the request: told about every response and about failures."""

    def on_response(self, tx: ClientTransaction, response: Response, now: float) -> None: ...

    def on_failure(self, tx: ClientTransaction, reason: str, now: float) -> None: ...


class State(enum.Enum):
    CALLING = "calling"  # INVITE client, before any response
    TRYING = "trying"  # non-INVITE client and server, before any response
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026 §7.1/§7.2: INVITE after a 2xx
    COMPLETED = "completed"
    CONFIRMED = "confirmed"  # INVITE server after the ACK for a non-2xx
    TERMINATED = "terminated"


def server_key(request: Request, via: Via) -> tuple[str, ...]:
    """The RFC 3261 §17.2.3 matching key; ACK matches its INVITE's transaction. Requests
    without the magic cookie fall back to RFC 2543 matching (RFC 3261 §17.2.3, last part)."""
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    host, port = via.sent_by
    if branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, host.lower(), str(port or ""), method)
    to_tag = request.to.tag or ""
    if request.method == "ACK":
        # An RFC 2543 ACK carries the To tag of the response; the INVITE had none.
        to_tag = ""
    return (
        "2543",
        str(request.uri.without_headers()),
        to_tag,
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        method,
        str(via),
    )


def same_branch_request(original: Request, method: str, to: str) -> Request:
    """A request that reuses an INVITE's top Via (its branch), Route set, From, Call-ID and
    CSeq number: the ACK for a non-2xx (§17.1.1.3) and the CANCEL (§9.1) are built alike."""
    headers = Headers()
    headers.add("Via", original.headers.values("Via")[0])
    for route in original.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", original.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", original.call_id)
    headers.add("CSeq", f"{original.cseq.seq} {method}")
    return Request(method=method, uri=original.uri, headers=headers)


def client_key(branch: str, method: str) -> tuple[str, str]:
    """RFC 3261 §17.1.3: top Via branch and CSeq method (CANCEL has its own transaction)."""
    return (branch, method)


class Transaction(Timed):
    """What the four kinds share: the sink, the flow and the state."""

    def __init__(self, sink: TransactionSink, flow: Flow, timers: TimerValues) -> None:
        super().__init__(sink)
        self.sink = sink
        self.flow = flow
        self.timer_values = timers
        self.state = State.TRYING

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def handle_timers(self, now: float) -> None:
        if not self.terminated:
            super().handle_timers(now)

    def _terminate(self) -> None:
        if self.state is not State.TERMINATED:
            self.state = State.TERMINATED
            self._stop_all()
            self.sink.transaction_terminated(self)


class ClientTransaction(Transaction):
    """INVITE (§17.1.1) and non-INVITE (§17.1.2) client transactions."""

    def __init__(
        self,
        sink: TransactionSink,
        request: Request,
        flow: Flow,
        owner: ClientOwner,
        now: float,
        timers: TimerValues | None = None,
    ) -> None:
        super().__init__(sink, flow, timers or TimerValues())
        self.request = request
        self.owner = owner
        self.branch = request.top_via.branch or ""
        self.method = request.method
        self.key = client_key(self.branch, self.method)
        self.is_invite = request.method == "INVITE"
        self.last_response: Response | None = None
        self._interval = self.timer_values.t1
        self._ack: Request | None = None
        t = self.timer_values
        self.state = State.CALLING if self.is_invite else State.TRYING
        sink.transmit(request, flow)
        if not flow.reliable:
            self._start("A" if self.is_invite else "E", now, t.t1)
        self._start("B" if self.is_invite else "F", now, 64 * t.t1)

    def receive_response(self, response: Response, now: float) -> None:
        if self.terminated:
            return
        if self.is_invite:
            self._invite_response(response, now)
        else:
            self._non_invite_response(response, now)

    def transport_error(self, now: float) -> None:
        """The transport could not deliver the request (§17.1.4)."""
        if self.state in (State.CALLING, State.TRYING, State.PROCEEDING):
            self._terminate()
            self.owner.on_failure(self, "transport error", now)

    def _invite_response(self, response: Response, now: float) -> None:
        t = self.timer_values
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            if status < 200:
                self.state = State.PROCEEDING
                self._stop("A")
                self.last_response = response
                self.owner.on_response(self, response, now)
            elif status < 300:
                # RFC 6026 §8.4: stay in Accepted for Timer M so that retransmitted and forked
                # 2xx still reach the TU, which ACKs each of them (§13.2.2.4).
                self.state = State.ACCEPTED
                self._stop("A", "B")
                self._start("M", now, 64 * t.t1)
                self.last_response = response
                self.owner.on_response(self, response, now)
            else:
                self.state = State.COMPLETED
                self._stop("A", "B")
                self._ack = self._build_ack(response)
                self.sink.transmit(self._ack, self.flow)
                self._start("D", now, 0.0 if self.flow.reliable else 32.0)
                self.last_response = response
                self.owner.on_response(self, response, now)
        elif self.state is State.ACCEPTED:
            if 200 <= status < 300:
                self.owner.on_response(self, response, now)
        elif self.state is State.COMPLETED and status >= 300 and self._ack is not None:
            # A retransmitted final response: the ACK was lost (§17.1.1.2).
            self.sink.transmit(self._ack, self.flow)

    def _non_invite_response(self, response: Response, now: float) -> None:
        t = self.timer_values
        if self.state in (State.TRYING, State.PROCEEDING):
            self.last_response = response
            if response.status < 200:
                if self.state is State.TRYING:
                    self.state = State.PROCEEDING
                self.owner.on_response(self, response, now)
            else:
                self.state = State.COMPLETED
                self._stop("E", "F")
                self._start("K", now, 0.0 if self.flow.reliable else t.t4)
                self.owner.on_response(self, response, now)

    def _build_ack(self, response: Response) -> Request:
        """The ACK for a non-2xx final response, part of the transaction (§17.1.1.3)."""
        return same_branch_request(self.request, "ACK", response.headers.get("To") or "")

    def _fire(self, name: str, now: float) -> None:
        t = self.timer_values
        if name == "A" and self.state is State.CALLING:
            # §17.1.1.2: INVITE retransmissions double without the T2 cap.
            self._interval *= 2
            self.sink.transmit(self.request, self.flow)
            self._start("A", now, self._interval)
        elif name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            # §17.1.2.2: doubling up to T2 while trying, every T2 once proceeding.
            self._interval = (
                t.t2 if self.state is State.PROCEEDING else min(2 * self._interval, t.t2)
            )
            self.sink.transmit(self.request, self.flow)
            self._start("E", now, self._interval)
        elif name in ("B", "F"):
            self._terminate()
            self.owner.on_failure(self, "timeout", now)
        elif name in ("D", "K", "M"):
            self._terminate()


class ServerTransaction(Transaction):
    """INVITE (§17.2.1) and non-INVITE (§17.2.2) server transactions."""

    def __init__(
        self,
        sink: TransactionSink,
        request: Request,
        flow: Flow,
        key: tuple[str, ...],
        now: float,
        timers: TimerValues | None = None,
    ) -> None:
        super().__init__(sink, flow, timers or TimerValues())
        self.request = request
        self.key = key
        self.is_invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.is_invite else State.TRYING
        self.last_response: Response | None = None
        self._interval = self.timer_values.t1
        self.acked = False

    def receive_request(self, request: Request, now: float) -> None:
        """A retransmission of the request (or the ACK of a non-2xx) matched this transaction."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                # §17.2.1: the ACK for our non-2xx; absorb retransmissions for Timer I.
                self.acked = True
                self.state = State.CONFIRMED
                self._stop("G", "H")
                self._start("I", now, 0.0 if self.flow.reliable else self.timer_values.t4)
            return
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            self.sink.transmit(self.last_response, self.flow)
        # In Accepted (RFC 6026 §7.1) and Trying the retransmission is absorbed silently.

    def respond(self, response: Response, now: float) -> None:
        if self.terminated or self.state in (State.COMPLETED, State.CONFIRMED):
            return
        t = self.timer_values
        status = response.status
        if self.is_invite and self.state is State.ACCEPTED:
            # RFC 6026 §7.1: the UAS core's 2xx retransmissions pass through Accepted.
            if 200 <= status < 300:
                self.sink.transmit(response, self.flow)
            return
        self.last_response = response
        self.sink.transmit(response, self.flow)
        if status < 200:
            if not self.is_invite:
                self.state = State.PROCEEDING
            return
        if self.is_invite:
            if status < 300:
                self.state = State.ACCEPTED
                self._start("L", now, 64 * t.t1)
            else:
                self.state = State.COMPLETED
                if not self.flow.reliable:
                    self._start("G", now, t.t1)
                self._start("H", now, 64 * t.t1)
        else:
            self.state = State.COMPLETED
            self._start("J", now, 0.0 if self.flow.reliable else 64 * t.t1)

    def _fire(self, name: str, now: float) -> None:
        t = self.timer_values
        if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            self._interval = min(2 * self._interval, t.t2)
            self.sink.transmit(self.last_response, self.flow)
            self._start("G", now, self._interval)
        elif name in ("H", "I", "J", "L"):
            # H: the ACK never came (§17.2.1); the others end the transaction normally.
            self._terminate()
