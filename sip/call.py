"""One call: an INVITE dialog usage as a sans-IO state machine (RFC 3261 §13-§15, RFC 4028).

A :class:`CallLeg` is created by the core for an incoming INVITE or by the application for an
outgoing one. It owns its dialog, the INVITE transactions, the UAS 2xx retransmissions until the
ACK (§13.3.1.4), the UAC ACK and the ACK+BYE of extra 2xx (§13.2.2.4), CANCEL (§9), re-INVITE
glare (§14), session timers (RFC 4028) and in-dialog requests (BYE, INFO, UPDATE).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sip.dialog import Dialog, DialogState
from sip.digest import DigestAuthenticator
from sip.errors import SipParseError
from sip.events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    CallFailed,
    CallProgress,
    RequestCompleted,
)
from sip.flow import Flow
from sip.headers import Headers, NameAddr
from sip.message import Request, Response, reason_phrase
from sip.session_timer import SessionTimer
from sip.timed import Timed
from sip.transaction import ClientTransaction, ServerTransaction, State, same_branch_request

if TYPE_CHECKING:
    from sip.core import SipCore

log = logging.getLogger("pygasi.sip.call")


class CallState(enum.Enum):
    INCOMING = "incoming"  # INVITE received, not answered yet
    CALLING = "calling"  # our INVITE sent, no provisional with a tag yet
    EARLY = "early"  # our INVITE got a provisional
    ANSWERED = "answered"  # we sent 2xx, waiting for the ACK
    CONFIRMED = "confirmed"
    ENDING = "ending"  # our BYE or CANCEL is on its way
    ENDED = "ended"


class Direction(enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


@dataclass
class Cause:
    """Why we end a call: goes into the ``Reason`` header of BYE/CANCEL (RFC 3326) and the
    reason phrase of a final response."""

    status: int
    text: str

    def reason_header(self) -> str:
        text = self.text.replace("\\", "").replace('"', "'")
        return f'SIP;cause={self.status};text="{text}"'


@dataclass
class _PendingRequest:
    request_id: int
    method: str
    tx: ClientTransaction
    auth_retried: bool = False


class CallLeg(Timed):
    def __init__(
        self,
        core: SipCore,
        direction: Direction,
        invite: Request,
        flow: Flow,
        local_tag: str,
        now: float,
    ) -> None:
        super().__init__(core)
        self.core = core
        self.direction = direction
        self.invite = invite  # the initial INVITE (ours, or the peer's)
        self.flow = flow  # where the dialog's peer was last reached
        self.local_tag = local_tag
        self.call_id = invite.call_id
        self.dialog: Dialog | None = None
        self.state = CallState.INCOMING if direction is Direction.INBOUND else CallState.CALLING
        self.created = now
        self.session_timer: SessionTimer | None = None
        self.auth: DigestAuthenticator | None = None
        self.local_sdp: bytes = b""  # the SDP we last sent (offer or answer)
        self.remote_sdp: bytes = b""
        self.end_cause: Cause | None = None
        # UAS side
        self.invite_tx: ServerTransaction | None = None
        self._ok: Response | None = None  # the 2xx we retransmit until the ACK
        self._ok_interval = 0.0
        self._ok_cseq = 0
        self._bye_after_ack = False
        self._reinvite_server: ServerTransaction | None = None
        # UAC side
        self.invite_client: ClientTransaction | None = None
        self._ack: Request | None = None  # our ACK for the 2xx, resent for each retransmission
        self._cancel_pending: Cause | None = None
        self._got_provisional = False
        self._invite_auth_retried = False
        self._pending: dict[int, _PendingRequest] = {}
        # RFC 3263 §4.3: further targets for our INVITE if the current one does not answer.
        self.alternatives: list[Flow] = []
        self._reinvite_client: _PendingRequest | None = None
        self._reinvite_ack: Request | None = None
        self._glare_sdp: bytes | None = None

    # -- identity ----------------------------------------------------------------------------

    @property
    def remote_tag(self) -> str | None:
        return self.dialog.remote_tag if self.dialog else None

    @property
    def ended(self) -> bool:
        return self.state is CallState.ENDED

    @property
    def headers(self) -> Headers:
        return self.invite.headers

    def __repr__(self) -> str:
        return f"<CallLeg {self.direction.value} {self.call_id} {self.state.value}>"

    # -- UAS: answering an incoming INVITE -------------------------------------------------

    def send_provisional(
        self, status: int, reason: str | None, now: float, body: bytes = b""
    ) -> None:
        if self.state is not CallState.INCOMING or self.invite_tx is None:
            return
        response = self.core.make_response(self.invite, status, reason, to_tag=self.local_tag)
        if status > 100:
            response.headers.add("Contact", self.core.contact_for(self.flow))
            if self.dialog is None:
                self.dialog = Dialog.as_uas(self.invite, self.local_tag, confirmed=False)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.invite_tx.respond(response, now)

    def answer(self, sdp: bytes, now: float) -> None:
        """Send the 2xx (RFC 3261 §13.3.1.4) and retransmit it until the ACK arrives."""
        if self.state is not CallState.INCOMING or self.invite_tx is None:
            raise RuntimeError(f"cannot answer a call in state {self.state.value}")
        response = self.core.make_response(self.invite, 200, "OK", to_tag=self.local_tag)
        self.core.add_dialog_headers(response, self.flow)
        self.session_timer = SessionTimer.for_uas(self.invite, self.core.config.min_se)
        if self.session_timer is not None:
            self.session_timer.add_to_response(response)
        if sdp:
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp
            self.local_sdp = sdp
        if self.invite.body:
            self.remote_sdp = self.invite.body
        # §12.1.1: the 2xx creates (or confirms) the dialog, Record-Route copied into it.
        for route in self.invite.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", route)
        if self.dialog is None:
            self.dialog = Dialog.as_uas(self.invite, self.local_tag, confirmed=True)
        else:
            self.dialog.state = DialogState.CONFIRMED
        self.state = CallState.ANSWERED
        self._start_ok_retransmission(response, self.invite_tx, now)

    def reject(
        self,
        status: int,
        reason: str | None,
        now: float,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        if self.state is not CallState.INCOMING or self.invite_tx is None:
            return
        response = self.core.make_response(self.invite, status, reason, to_tag=self.local_tag)
        for name, value in headers or []:
            response.headers.add(name, value)
        if status >= 400 and reason and reason != reason_phrase(status):
            # RFC 3261 §20.43: a human-readable cause for operators reading traces.
            response.headers.add(
                "Warning", f'399 {self.core.config.host} "{_warning_text(reason)}"'
            )
        self.invite_tx.respond(response, now)
        self.end_cause = Cause(status, reason or reason_phrase(status))
        self._finish(now, by_remote=False, reason=self.end_cause.text, emit=False)

    def _start_ok_retransmission(
        self, response: Response, tx: ServerTransaction, now: float
    ) -> None:
        self._ok = response
        self._ok_cseq = response.cseq.seq
        tx.respond(response, now)
        t = self.core.config.timers
        if not self.flow.reliable:
            self._ok_interval = t.t1
            self._start("2xx", now, t.t1)
        self._start("no-ack", now, 64 * t.t1)

    def _stop_ok_retransmission(self) -> None:
        self._ok = None
        self._stop("2xx", "no-ack")

    def receive_ack(self, ack: Request, now: float) -> None:
        if self._ok is None or ack.cseq.seq != self._ok_cseq:
            return  # a retransmitted ACK, or one for an older 2xx
        reinvite = self.state is not CallState.ANSWERED
        self._stop_ok_retransmission()
        if ack.body:
            self.remote_sdp = ack.body
        if self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED
            if self.session_timer is not None:
                self._arm_session_timer(now)
        self.core.emit(CallConfirmed(self, ack))
        if reinvite:
            log.debug("ACK for re-INVITE 2xx on %s", self.call_id)
        if self._bye_after_ack:
            self._send_bye(self.end_cause or Cause(200, "Call ended"), now)

    # -- UAC: our own INVITE -----------------------------------------------------------------

    def start_outgoing(self, now: float) -> None:
        if self.invite.body:
            self.local_sdp = self.invite.body
        self.invite_client = self.core.start_client_transaction(self.invite, self.flow, self, now)

    def on_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        if tx is self.invite_client:
            self._invite_response(response, now)
            return
        pending = next((p for p in self._pending.values() if p.tx is tx), None)
        if pending is not None:
            self._pending_response(pending, response, now)

    def on_failure(self, tx: ClientTransaction, reason: str, now: float) -> None:
        if tx is self.invite_client:
            if self.state is CallState.CALLING and self.alternatives and not self._got_provisional:
                # RFC 3263 §4.3: nothing answered; try the next server with a new transaction.
                self.flow = self.alternatives.pop(0)
                log.info("call %s: %s, trying next target %s", self.call_id, reason, self.flow)
                self._resend_invite(
                    now, {"Contact": self.core.contact_for(self.flow, self.invite.from_.uri.user)}
                )
                return
            if self.state in (CallState.CALLING, CallState.EARLY, CallState.ENDING):
                status = 408 if reason == "timeout" else 503
                self.core.emit(CallFailed(self, status, f"{reason_phrase(status)} ({reason})"))
                self._finish(now, by_remote=False, reason=reason, emit=False)
            return
        pending = next((p for p in self._pending.values() if p.tx is tx), None)
        if pending is None:
            return
        del self._pending[pending.request_id]
        if pending is self._reinvite_client:
            self._reinvite_client = None
        self.core.emit(RequestCompleted(self, pending.request_id, pending.method, None, reason))
        if pending.method == "BYE" or pending.method == "CANCEL":
            self._finish(
                now, by_remote=False, reason=(self.end_cause.text if self.end_cause else reason)
            )
        elif self.state is CallState.CONFIRMED:
            # RFC 5057 §5.1: a timed-out request in the dialog ends the dialog usage.
            self._send_bye(Cause(408, f"{pending.method} timed out"), now)

    def _invite_response(self, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            if status == 100:
                self._got_provisional = True
            else:
                self._got_provisional = True
                if response.to.tag and self.dialog is None:
                    self.dialog = Dialog.as_uac(self.invite, response)
                if self.state is CallState.CALLING:
                    self.state = CallState.EARLY
                self.core.emit(CallProgress(self, response))
            if self._cancel_pending is not None:
                cause, self._cancel_pending = self._cancel_pending, None
                self._send_cancel(cause, now)
            return
        if status < 300:
            self._invite_ok(response, now)
            return
        if (
            status in (401, 407)
            and not self._invite_auth_retried
            and self._retry_with_auth(response, now)
        ):
            return
        if status == 422 and not self._invite_auth_retried:
            min_se = response.headers.get("Min-SE")
            if min_se and min_se.split(";")[0].strip().isdigit():
                self._invite_auth_retried = True
                self._resend_invite(now, {"Session-Expires": min_se.split(";")[0].strip()})
                return
        if self.state is CallState.ENDING and status == 487:
            self._finish(
                now, by_remote=False, reason=self.end_cause.text if self.end_cause else "cancelled"
            )
            return
        self.core.emit(CallFailed(self, status, response.reason or reason_phrase(status), response))
        self._finish(now, by_remote=False, reason=response.reason, emit=False)

    def _retry_with_auth(self, response: Response, now: float) -> bool:
        if self.core.credentials is None:
            return False
        if self.auth is None:
            self.auth = DigestAuthenticator(self.core.credentials)
        result = self.auth.handle_challenge(list(response.headers))
        if not result.should_retry:
            log.warning("call %s: authentication failed: %s", self.call_id, result.reason)
            return False
        self._invite_auth_retried = result.outcome.value != "stale-retry"
        self._resend_invite(now, {})
        return True

    def _resend_invite(self, now: float, replace_headers: dict[str, str]) -> None:
        """The same INVITE with a new branch and CSeq (RFC 3261 §22.2), e.g. with credentials."""
        headers = self.invite.headers.copy()
        headers.set("Via", self.core.new_via(self.flow))
        headers.set("CSeq", f"{self.invite.cseq.seq + 1} INVITE")
        for name, value in replace_headers.items():
            headers.set(name, value)
        for name in ("Authorization", "Proxy-Authorization"):
            headers.remove(name)
        invite = Request(
            method="INVITE", uri=self.invite.uri, headers=headers, body=self.invite.body
        )
        if self.auth is not None:
            for name, value in self.auth.authorization_headers(
                "INVITE", str(invite.uri), invite.body
            ):
                invite.headers.add(name, value)
        self.invite = invite
        self._got_provisional = False
        self.invite_client = self.core.start_client_transaction(invite, self.flow, self, now)

    def _invite_ok(self, response: Response, now: float) -> None:
        tag = response.to.tag or ""
        if self.dialog is not None and self.dialog.state is DialogState.CONFIRMED:
            if tag == self.dialog.remote_tag:
                if self._ack is not None:
                    self.core.transmit_to_target(self._ack, self.dialog, self.flow)
            else:
                self._ack_and_bye_fork(response, now)
            return
        if self.dialog is None or self.dialog.remote_tag != tag:
            self.dialog = Dialog.as_uac(self.invite, response)
        else:
            self.dialog.confirm_from(response)
        self.dialog.local_seq = max(self.dialog.local_seq, self.invite.cseq.seq)
        self.remote_sdp = response.body
        self._ack = self._build_ack(self.dialog, self.invite)
        self.core.transmit_to_target(self._ack, self.dialog, self.flow)
        self.session_timer = SessionTimer.for_uac(self.invite, response)
        if self.state is CallState.ENDING or self._cancel_pending is not None:
            # We hung up while the INVITE was outstanding: ACK, then BYE (§15).
            cause = self._cancel_pending or self.end_cause or Cause(487, "Cancelled")
            self._cancel_pending = None
            self.state = CallState.CONFIRMED
            self._send_bye(cause, now)
            return
        self.state = CallState.CONFIRMED
        if self.session_timer is not None:
            self._arm_session_timer(now)
        self.core.emit(CallAnswered(self, response))

    def _build_ack(self, dialog: Dialog, invite: Request) -> Request:
        """The ACK for a 2xx is a new transaction-less request in the dialog with the INVITE's
        CSeq number (§13.2.2.4) and its credentials (§22.1)."""
        ack = dialog.build_request("ACK", self.core.new_via(self.flow), None, seq=invite.cseq.seq)
        for name in ("Authorization", "Proxy-Authorization"):
            for value in invite.headers.get_all(name):
                ack.headers.add(name, value)
        return ack

    def _ack_and_bye_fork(self, response: Response, now: float) -> None:
        """A 2xx from another fork: ACK it, then BYE it (§13.2.2.4)."""
        fork = Dialog.as_uac(self.invite, response)
        ack = self._build_ack(fork, self.invite)
        self.core.transmit_to_target(ack, fork, self.flow)
        bye = fork.build_request("BYE", self.core.new_via(self.flow), None)
        bye.headers.add("Reason", Cause(200, "Call completed elsewhere").reason_header())
        self.core.start_in_dialog(bye, fork, self.flow, _ForkOwner(), now)

    def receive_stray_2xx(self, response: Response, now: float) -> None:
        """A 2xx after the INVITE transaction ended (Timer M): re-ACK, or ACK+BYE a fork."""
        if self.dialog is None:
            return
        if response.to.tag == self.dialog.remote_tag:
            if self._ack is not None and response.cseq.seq == self._ack.cseq.seq:
                self.core.transmit_to_target(self._ack, self.dialog, self.flow)
            elif (
                self._reinvite_ack is not None and response.cseq.seq == self._reinvite_ack.cseq.seq
            ):
                self.core.transmit_to_target(self._reinvite_ack, self.dialog, self.flow)
        else:
            self._ack_and_bye_fork(response, now)

    # -- hanging up ------------------------------------------------------------------------

    def hangup(self, cause: Cause, now: float) -> None:
        """End the call whatever its state: a final response to an unanswered incoming INVITE,
        CANCEL for an unanswered outgoing one, BYE for an established dialog."""
        if self.state in (CallState.ENDED, CallState.ENDING):
            return
        self.end_cause = cause
        if self.state is CallState.INCOMING:
            self.reject(cause.status if cause.status >= 300 else 480, cause.text, now)
            self.core.emit(CallEnded(self, by_remote=False, reason=cause.text))
        elif self.state in (CallState.CALLING, CallState.EARLY):
            self.state = CallState.ENDING
            if self._got_provisional:
                self._send_cancel(cause, now)
            else:
                # §9.1: no CANCEL before a provisional response; send it when one arrives.
                self._cancel_pending = cause
        elif self.state is CallState.ANSWERED:
            # §15: the callee may not send BYE before the ACK (or its timeout).
            self._bye_after_ack = True
            self.state = CallState.ENDING
        else:
            self._send_bye(cause, now)

    def _send_cancel(self, cause: Cause, now: float) -> None:
        if self.invite_client is None or self.invite_client.state not in (
            State.PROCEEDING,
            State.CALLING,
        ):
            return
        # §9.1: the CANCEL copies the INVITE's Via (branch), Route, From, To and CSeq number.
        cancel = same_branch_request(self.invite, "CANCEL", self.invite.headers.get("To") or "")
        cancel.headers.add("Reason", cause.reason_header())
        tx = self.core.start_client_transaction(cancel, self.flow, self, now)
        rid = self.core.next_id()
        self._pending[rid] = _PendingRequest(rid, "CANCEL", tx)

    def _send_bye(self, cause: Cause, now: float) -> None:
        if self.dialog is None:
            self._finish(now, by_remote=False, reason=cause.text)
            return
        self.end_cause = cause
        self.state = CallState.ENDING
        self._stop("session-refresh", "session-expiry", "glare")
        self._stop_ok_retransmission()
        bye = self.dialog.build_request("BYE", self.core.new_via(self.flow), None)
        bye.headers.add("Reason", cause.reason_header())
        self._add_auth(bye)
        tx = self.core.start_in_dialog(bye, self.dialog, self.flow, self, now)
        rid = self.core.next_id()
        self._pending[rid] = _PendingRequest(rid, "BYE", tx)

    def _finish(
        self,
        now: float,
        by_remote: bool,
        reason: str,
        request: Request | None = None,
        emit: bool = True,
    ) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        if self.dialog is not None:
            self.dialog.state = DialogState.TERMINATED
        self._stop_all()
        if emit:
            self.core.emit(CallEnded(self, by_remote=by_remote, reason=reason, request=request))
        self.core.call_finished(self)

    # -- requests from the peer inside the dialog ------------------------------------------

    def receive_bye(self, request: Request, tx: ServerTransaction, now: float) -> None:
        tx.respond(self.core.make_response(request, 200, "OK"), now)
        if self.state is CallState.INCOMING and self.invite_tx is not None:
            # A BYE in an early dialog: the INVITE gets 487 (§15.1.2).
            self.invite_tx.respond(
                self.core.make_response(self.invite, 487, None, to_tag=self.local_tag), now
            )
        reason = request.headers.get("Reason") or "BYE"
        self._finish(now, by_remote=True, reason=reason, request=request)

    def receive_cancel(self, cancel: Request, now: float) -> None:
        """CANCEL matched our unanswered INVITE: 487 it (§9.2); the CANCEL got its 200."""
        if self.state is not CallState.INCOMING or self.invite_tx is None:
            return
        if self.invite_tx.state is not State.PROCEEDING:
            return
        self.invite_tx.respond(
            self.core.make_response(self.invite, 487, None, to_tag=self.local_tag), now
        )
        self.end_cause = Cause(487, "Request Terminated")
        self.core.emit(CallCancelled(self, cancel))
        self._finish(
            now,
            by_remote=True,
            reason=cancel.headers.get("Reason") or "CANCEL",
            request=cancel,
            emit=False,
        )

    def receive_reinvite(self, request: Request, tx: ServerTransaction, now: float) -> bool:
        """Return False when the re-INVITE was rejected here (glare, pending transaction)."""
        if self._reinvite_client is not None or self.state in (CallState.CALLING, CallState.EARLY):
            # §14.2: our own INVITE transaction is pending: glare.
            tx.respond(self.core.make_response(request, 491, None), now)
            return False
        if (
            self._reinvite_server is not None
            and not self._reinvite_server.terminated
            and self._reinvite_server.state is State.PROCEEDING
        ) or self.state is CallState.ANSWERED:
            # §14.2: a previous INVITE from the peer is still unanswered.
            response = self.core.make_response(
                request, 500, "Server Internal Error (INVITE pending)"
            )
            response.headers.add("Retry-After", str(self.core.rng.randint(0, 10)))
            tx.respond(response, now)
            return False
        self._reinvite_server = tx
        if self.dialog is not None:
            self.dialog.refresh_target(request)
        return True

    def answer_offer(
        self,
        tx: ServerTransaction,
        request: Request,
        sdp: bytes | None,
        status: int,
        reason: str | None,
        now: float,
    ) -> None:
        """Answer a re-INVITE or UPDATE the application saw as an OfferReceived event."""
        if status >= 300:
            tx.respond(self.core.make_response(request, status, reason), now)
            return
        response = self.core.make_response(request, status, reason)
        self.core.add_dialog_headers(response, self.flow)
        if self.session_timer is not None or "Session-Expires" in request.headers:
            timer = SessionTimer.for_uas(request, self.core.config.min_se)
            if timer is not None:
                self.session_timer = timer
                timer.add_to_response(response)
                self._arm_session_timer(now)
        if sdp:
            response.headers.add("Content-Type", "application/sdp")
            response.body = sdp
            self.local_sdp = sdp
        if request.body:
            self.remote_sdp = request.body
        if request.method == "INVITE":
            self._start_ok_retransmission(response, tx, now)
        else:
            tx.respond(response, now)

    def receive_session_refresh(self, request: Request, tx: ServerTransaction, now: float) -> None:
        """An UPDATE without a body: only a session refresh (RFC 4028 §7.4 / RFC 3311)."""
        self.answer_offer(tx, request, None, 200, "OK", now)

    # -- requests we send inside the dialog -------------------------------------------------

    def send_request(
        self,
        method: str,
        now: float,
        content_type: str | None = None,
        body: bytes = b"",
        headers: list[tuple[str, str]] | None = None,
    ) -> int:
        if self.dialog is None or self.state not in (
            CallState.CONFIRMED,
            CallState.ANSWERED,
            CallState.EARLY,
        ):
            raise RuntimeError(f"no dialog to send {method} in (call {self.state.value})")
        contact = self.core.contact_for(self.flow) if method in ("INVITE", "UPDATE") else None
        request = self.dialog.build_request(method, self.core.new_via(self.flow), contact)
        for name, value in headers or []:
            request.headers.add(name, value)
        if body:
            request.headers.add("Content-Type", content_type or "application/octet-stream")
            request.body = body
        self._add_auth(request)
        tx = self.core.start_in_dialog(request, self.dialog, self.flow, self, now)
        rid = self.core.next_id()
        pending = _PendingRequest(rid, method, tx)
        self._pending[rid] = pending
        return rid

    def reinvite(self, sdp: bytes, now: float) -> int:
        """Send a re-INVITE offering ``sdp`` (hold, unhold, session refresh)."""
        if self._reinvite_client is not None or (
            self._reinvite_server is not None and self._reinvite_server.state is State.PROCEEDING
        ):
            raise RuntimeError(
                "an INVITE transaction is already in progress in this dialog (§14.1)"
            )
        extra: list[tuple[str, str]] = [
            ("Allow", self.core.allow_header()),
            ("Supported", self.core.supported_header()),
        ]
        if self.session_timer is not None:
            extra.append(
                (
                    "Session-Expires",
                    self.session_timer.refresh_header_value(self.direction is Direction.OUTBOUND),
                )
            )
        rid = self.send_request("INVITE", now, "application/sdp", sdp, extra)
        self._reinvite_client = self._pending[rid]
        self.local_sdp = sdp
        return rid

    def _add_auth(self, request: Request) -> None:
        if self.auth is not None:
            for name, value in self.auth.authorization_headers(
                request.method, str(request.uri), request.body
            ):
                request.headers.add(name, value)

    def _pending_response(self, pending: _PendingRequest, response: Response, now: float) -> None:
        status = response.status
        if status < 200:
            return
        del self._pending[pending.request_id]
        is_reinvite = pending is self._reinvite_client
        if is_reinvite:
            self._reinvite_client = None
        if status in (401, 407) and not pending.auth_retried and self.core.credentials is not None:
            if self.auth is None:
                self.auth = DigestAuthenticator(self.core.credentials)
            if (
                self.auth.handle_challenge(list(response.headers)).should_retry
                and self.dialog is not None
            ):
                retry = self._clone_in_dialog(pending.tx.request)
                tx = self.core.start_in_dialog(retry, self.dialog, self.flow, self, now)
                again = _PendingRequest(pending.request_id, pending.method, tx, auth_retried=True)
                self._pending[pending.request_id] = again
                if is_reinvite:
                    self._reinvite_client = again
                return
        if pending.method == "INVITE" and 200 <= status < 300 and self.dialog is not None:
            self.dialog.refresh_target(response)
            self._reinvite_ack = self._build_ack(self.dialog, pending.tx.request)
            self.core.transmit_to_target(self._reinvite_ack, self.dialog, self.flow)
            if response.body:
                self.remote_sdp = response.body
            timer = SessionTimer.for_uac(pending.tx.request, response)
            if timer is not None:
                self.session_timer = timer
                self._arm_session_timer(now)
        if pending.method == "UPDATE" and 200 <= status < 300:
            timer = SessionTimer.for_uac(pending.tx.request, response)
            if timer is not None:
                self.session_timer = timer
                self._arm_session_timer(now)
        if pending.method == "INVITE" and status == 491:
            # §14.1: glare; retry after a random wait, longer if we own the Call-ID.
            self._glare_sdp = pending.tx.request.body
            delay = (
                self.core.rng.uniform(2.1, 4.0)
                if self.direction is Direction.OUTBOUND
                else self.core.rng.uniform(0.0, 2.0)
            )
            self._start("glare", now, delay)
        self.core.emit(RequestCompleted(self, pending.request_id, pending.method, response))
        if pending.method in ("BYE", "CANCEL"):
            if pending.method == "BYE" or self.state is not CallState.ENDING:
                self._finish(
                    now,
                    by_remote=False,
                    reason=self.end_cause.text if self.end_cause else "hung up",
                )
            return
        if status in (408, 481) and self.state is CallState.CONFIRMED:
            # RFC 5057 §5.1 / RFC 3261 §12.2.1.2: the dialog is gone.
            if status == 481:
                self._finish(now, by_remote=True, reason=f"{status} {response.reason}")
            else:
                self._send_bye(Cause(408, f"{pending.method} timed out"), now)

    def _clone_in_dialog(self, request: Request) -> Request:
        assert self.dialog is not None
        clone = self.dialog.build_request(
            request.method, self.core.new_via(self.flow), request.headers.get("Contact")
        )
        skip = {
            "via",
            "route",
            "max-forwards",
            "from",
            "to",
            "call-id",
            "cseq",
            "contact",
            "authorization",
            "proxy-authorization",
            "content-length",
        }
        for name, value in request.headers:
            if name.lower() not in skip:
                clone.headers.add(name, value)
        clone.body = request.body
        self._add_auth(clone)
        return clone

    # -- session timers (RFC 4028) ---------------------------------------------------------

    def _arm_session_timer(self, now: float) -> None:
        timer = self.session_timer
        if timer is None or self.state not in (CallState.CONFIRMED, CallState.ANSWERED):
            return
        self._stop("session-refresh", "session-expiry")
        if timer.we_refresh:
            self._start("session-refresh", now, timer.interval / 2)
        # §10: without a refresh by this time, the session is dead; BYE it.
        self._start("session-expiry", now, timer.interval - min(32, timer.interval / 3))

    def refresh_received(self, now: float) -> None:
        if self.session_timer is not None:
            self._arm_session_timer(now)

    def _refresh_session(self, now: float) -> None:
        if self.state is not CallState.CONFIRMED or self.dialog is None:
            return
        if self._reinvite_client is not None:
            return
        peer_allows = (
            {m.upper() for m in self.invite.headers.values("Allow")}
            if self.direction is Direction.INBOUND
            else set()
        )
        timer = self.session_timer
        assert timer is not None
        if "UPDATE" in peer_allows:
            # RFC 4028 §7.4: UPDATE without a body refreshes without renegotiating media.
            self.send_request(
                "UPDATE",
                now,
                headers=[
                    (
                        "Session-Expires",
                        timer.refresh_header_value(self.direction is Direction.OUTBOUND),
                    ),
                    ("Supported", "timer"),
                ],
            )
        elif self.local_sdp:
            # A re-INVITE with the unchanged SDP (same o= version: RFC 3264 §8).
            self.reinvite(self.local_sdp, now)

    # -- timers ------------------------------------------------------------------------------

    def _fire(self, name: str, now: float) -> None:
        t = self.core.config.timers
        if name == "2xx" and self._ok is not None:
            self._ok_interval = min(2 * self._ok_interval, t.t2)
            if (
                self.invite_tx is not None
                and self._ok_cseq == self.invite.cseq.seq
                and not self.invite_tx.terminated
            ):
                self.invite_tx.respond(self._ok, now)
            elif self._reinvite_server is not None and not self._reinvite_server.terminated:
                self._reinvite_server.respond(self._ok, now)
            else:
                self.core.transmit(self._ok, self.flow)
            self._start("2xx", now, self._ok_interval)
        elif name == "no-ack" and self._ok is not None:
            # §13.3.1.4: no ACK within 64*T1: confirm and end the session with a BYE.
            self._stop_ok_retransmission()
            self.state = CallState.CONFIRMED
            self._send_bye(Cause(408, "ACK not received"), now)
        elif name == "session-refresh":
            self._refresh_session(now)
        elif name == "session-expiry":
            self._send_bye(Cause(408, "Session timer expired"), now)
        elif name == "glare" and self._glare_sdp is not None and self.state is CallState.CONFIRMED:
            sdp, self._glare_sdp = self._glare_sdp, None
            try:
                self.reinvite(sdp, now)
            except RuntimeError:
                self._start("glare", now, self.core.rng.uniform(0.0, 2.0))
                self._glare_sdp = sdp


class _ForkOwner:
    """Owner of the BYE sent to an extra fork: nothing to report."""

    def on_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        return

    def on_failure(self, tx: ClientTransaction, reason: str, now: float) -> None:
        return


def _warning_text(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]


def display_name_of(addr: NameAddr) -> str:
    """Jigasi's rule (jigasi.md §1.10): the display name, else the user part, else the URI."""
    if addr.display_name:
        return addr.display_name
    if addr.uri.user_unescaped:
        return addr.uri.user_unescaped
    return str(addr.uri).removeprefix("sip:").removeprefix("sips:")


__all__ = ["CallLeg", "CallState", "Cause", "Direction", "SipParseError", "display_name_of"]
