"""Events the sans-IO SIP core hands to its shell (popped with ``SipCore.next_event()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sip.flow import Flow
from sip.message import Request, Response

if TYPE_CHECKING:
    from sip.call import CallLeg
    from sip.registration import Registration


@dataclass
class Event:
    pass


@dataclass
class IncomingCall(Event):
    """A new INVITE. The application answers with ``ringing``/``answer``/``reject``."""

    call: CallLeg
    request: Request
    flow: Flow


@dataclass
class CallProgress(Event):
    """Our INVITE got a provisional response (180/183 ...)."""

    call: CallLeg
    response: Response


@dataclass
class CallAnswered(Event):
    """Our INVITE got a 2xx; the ACK has been sent."""

    call: CallLeg
    response: Response


@dataclass
class CallConfirmed(Event):
    """The ACK for our 2xx arrived (it carries the answer when we offered in the 2xx)."""

    call: CallLeg
    ack: Request


@dataclass
class CallFailed(Event):
    """Our INVITE failed: a final non-2xx response, a timeout or a transport error."""

    call: CallLeg
    status: int
    reason: str
    response: Response | None = None


@dataclass
class CallCancelled(Event):
    """The caller cancelled before we answered; we have answered the INVITE with 487."""

    call: CallLeg
    request: Request


@dataclass
class CallEnded(Event):
    """The dialog ended: a BYE from the peer (``request`` set), our own hang-up completed, or
    a failure (no ACK for our 2xx, session timer expiry, 408/481 to an in-dialog request)."""

    call: CallLeg
    by_remote: bool
    reason: str
    request: Request | None = None


@dataclass
class OfferReceived(Event):
    """A re-INVITE (or UPDATE) in the dialog. The application answers it with
    ``answer_offer`` (SDP answer or a rejection). ``request.body`` is empty for a re-INVITE
    without an offer: the answer to it is our offer, and the ACK will carry the peer's answer."""

    call: CallLeg
    request: Request
    transaction_id: int


@dataclass
class InfoReceived(Event):
    """An INFO in the dialog; the application responds with ``respond``."""

    call: CallLeg
    request: Request
    transaction_id: int


@dataclass
class RequestCompleted(Event):
    """A request we sent in a dialog (INFO, re-INVITE, UPDATE, BYE) got its final response,
    or failed (``response`` None, ``reason`` says why)."""

    call: CallLeg
    request_id: int
    method: str
    response: Response | None
    reason: str = ""


@dataclass
class RegistrationChanged(Event):
    registration: Registration
    state: str
    reason: str
    expires: int | None = None


@dataclass
class OptionsResponse(Event):
    """A response (or a timeout, ``response`` None) to an out-of-dialog OPTIONS we sent."""

    request_id: int
    response: Response | None
