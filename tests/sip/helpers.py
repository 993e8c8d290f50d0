"""A scripted SIP peer for driving the sans-IO core with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip import Request, Response, parse_message
from sip.core import CoreConfig, SipCore
from sip.events import Event
from sip.flow import Flow
from sip.transaction import TimerValues

GW = "192.0.2.10"  # the core's address
PEER = ("192.0.2.20", 5060)
FLOW = Flow("udp", PEER)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.20\r\ns=-\r\nc=IN IP4 192.0.2.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def invite(
    call_id: str = "call-1",
    branch: str = "z9hG4bKinv1",
    cseq: int = 1,
    from_tag: str = "peer1",
    to_tag: str | None = None,
    extra: str = "",
    body: bytes = SDP,
    method: str = "INVITE",
) -> bytes:
    to = f"<sip:room@{GW}>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:room@{GW} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch={branch};rport\r\n"
        f'From: "Alice" <sip:+15550001@{PEER[0]}>;tag={from_tag}\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        f"Max-Forwards: 70\r\n"
        f"Contact: <sip:alice@{PEER[0]}:{PEER[1]}>\r\n"
        f"{extra}"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def request_in_dialog(
    method: str,
    response: Response,
    cseq: int,
    branch: str,
    body: bytes = b"",
    content_type: str = "",
    extra: str = "",
) -> bytes:
    """A request from the peer inside the dialog a response of ours created."""
    to = response.headers.get("To")
    frm = response.headers.get("From")
    head = (
        f"{method} sip:pygasi@{GW}:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PEER[0]}:{PEER[1]};branch={branch}\r\n"
        f"From: {frm}\r\nTo: {to}\r\nCall-ID: {response.call_id}\r\n"
        f"CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}"
    )
    if body:
        head += f"Content-Type: {content_type}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def response_to(
    request: Request,
    status: int,
    reason: str = "",
    to_tag: str | None = "callee1",
    extra: str = "",
    body: bytes = b"",
) -> bytes:
    """A response from the peer to a request the core sent."""
    to = request.headers.get("To") or ""
    if to_tag and ";tag=" not in to:
        to += f";tag={to_tag}"
    vias = "".join(f"Via: {v}\r\n" for v in request.headers.get_all("Via"))
    head = (
        f"SIP/2.0 {status} {reason or 'Reason'}\r\n{vias}"
        f"From: {request.headers.get('From')}\r\nTo: {to}\r\n"
        f"Call-ID: {request.call_id}\r\nCSeq: {request.headers.get('CSeq')}\r\n"
        f"Contact: <sip:callee@{PEER[0]}:{PEER[1]}>\r\n{extra}"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


@dataclass
class Harness:
    core: SipCore = field(
        default_factory=lambda: SipCore(
            CoreConfig(host=GW, ports={"udp": 5060}, timers=TimerValues())
        )
    )
    now: float = 0.0
    sent: list[tuple[Request | Response, Flow]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def feed(self, data: bytes, flow: Flow = FLOW) -> None:
        self.core.receive(data, flow, self.now)
        self._collect()

    def advance(self, seconds: float, step: float = 0.05) -> None:
        """Move the clock, firing every timer on the way."""
        end = self.now + seconds
        while True:
            deadline = self.core.get_timer()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
            self._collect()
        self.now = end

    def _collect(self) -> None:
        for data, flow in self.core.datagrams_to_send():
            self.sent.append((parse_message(data), flow))
        while (event := self.core.next_event()) is not None:
            self.events.append(event)

    def take(self) -> list[Request | Response]:
        self._collect()
        out = [m for m, _ in self.sent]
        self.sent.clear()
        return out

    def take_events(self) -> list[Event]:
        self._collect()
        out = list(self.events)
        self.events.clear()
        return out

    def responses(self) -> list[Response]:
        return [m for m in self.take() if isinstance(m, Response)]


def statuses(messages: list[Request | Response]) -> list[int | str]:
    return [m.status if isinstance(m, Response) else m.method for m in messages]
