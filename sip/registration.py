"""Registration to a registrar or trunk (RFC 3261 §10.2) as a sans-IO state machine.

Unlike Jigasi (reference/jigasi.md §6), a failure never ends registration: a wrong password, a
timeout or an error response all lead to a retry with capped exponential back-off and jitter,
and the reason is kept for health checks and logs.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sip.digest import CredentialStore, DigestAuthenticator
from sip.events import RegistrationChanged
from sip.flow import Flow
from sip.headers import Headers, NameAddr
from sip.message import Request, Response
from sip.timed import Timed
from sip.transaction import ClientTransaction
from sip.uri import Uri

if TYPE_CHECKING:
    from sip.core import SipCore

log = logging.getLogger("pygasi.sip.registration")


class RegistrationState(enum.Enum):
    REGISTERING = "registering"  # first attempt in progress
    REGISTERED = "registered"
    RETRYING = "retrying"  # the last attempt failed; ``reason`` says why
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass
class RegistrationConfig:
    aor: Uri  # address of record, e.g. sip:gateway@pbx.example.com
    registrar: Uri  # the Request-URI: the registrar's domain (RFC 3261 §10.2)
    expires: int = 600
    display_name: str | None = None
    backoff_initial: float = 2.0
    backoff_cap: float = 300.0
    # OPTIONS keep-alive towards the registrar on UDP, to keep NAT bindings and notice a dead
    # registrar early (the shell sends CRLF keep-alives on TCP/TLS instead). 0 disables.
    keepalive_interval: float = 30.0


class Registration(Timed):
    def __init__(
        self,
        core: SipCore,
        config: RegistrationConfig,
        flow: Flow,
        credentials: CredentialStore | None,
    ) -> None:
        super().__init__(core)
        self.core = core
        self.config = config
        self.flow = flow
        self.state = RegistrationState.REGISTERING
        self.reason = "not registered yet"
        self.expires_requested = config.expires
        self.granted: int | None = None
        self.registered_until: float | None = None
        self.failures = 0
        self.call_id = core.new_call_id()
        self.from_tag = core.new_tag()
        self.cseq = 0
        self.auth = DigestAuthenticator(credentials) if credentials is not None else None
        self._tx: ClientTransaction | None = None
        self._keepalive_tx: ClientTransaction | None = None
        self._auth_attempts = 0
        # RFC 3263 §4.3: the registrar's other addresses, tried in turn when one stops answering.
        self.targets: list[Flow] = [flow]

    # -- control -----------------------------------------------------------------------------

    def start(self, now: float) -> None:
        self._send(now, self.expires_requested)

    def stop(self, now: float) -> None:
        """Un-REGISTER (Expires: 0) and stop refreshing."""
        self._stop_all()
        if self.state is RegistrationState.REGISTERED:
            self._set_state(RegistrationState.UNREGISTERING, "shutting down")
            self._send(now, 0)
        else:
            self._set_state(RegistrationState.STOPPED, "stopped")

    def connection_lost(self, now: float) -> None:
        """The stream connection to the registrar closed: register again at once (the binding
        points at a flow that no longer exists)."""
        if self.state in (RegistrationState.REGISTERED, RegistrationState.RETRYING):
            self._stop("refresh", "retry", "keepalive")
            self._send(now, self.expires_requested)

    # -- requests ----------------------------------------------------------------------------

    def _contact(self) -> NameAddr:
        uri = self.core.contact_uri(self.flow, user=self.config.aor.user)
        return NameAddr(uri=uri)

    def _build(self, expires: int) -> Request:
        self.cseq += 1
        headers = Headers()
        headers.add("Via", self.core.new_via(self.flow))
        headers.add("Max-Forwards", "70")
        to = NameAddr(uri=self.config.aor, display_name=self.config.display_name)
        frm = NameAddr(
            uri=self.config.aor,
            display_name=self.config.display_name,
            params={"tag": self.from_tag},
        )
        headers.add("From", str(frm))
        headers.add("To", str(to))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", str(self._contact()))
        headers.add("Expires", str(expires))
        headers.add("Allow", self.core.allow_header())
        headers.add("User-Agent", self.core.config.user_agent)
        request = Request(method="REGISTER", uri=self.config.registrar, headers=headers)
        if self.auth is not None:
            for name, value in self.auth.authorization_headers("REGISTER", str(request.uri)):
                request.headers.add(name, value)
        return request

    def _send(self, now: float, expires: int) -> None:
        self._tx = self.core.start_client_transaction(self._build(expires), self.flow, self, now)

    # -- responses ---------------------------------------------------------------------------

    def on_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        if tx is self._keepalive_tx:
            if response.status >= 200:
                self._keepalive_tx = None
            return
        if tx is not self._tx or response.status < 200:
            return
        self._tx = None
        status = response.status
        unregistering = self.state is RegistrationState.UNREGISTERING
        if unregistering:
            self._set_state(RegistrationState.STOPPED, f"unregistered ({status} {response.reason})")
            return
        if 200 <= status < 300:
            self._auth_attempts = 0
            self.failures = 0
            granted = self._granted_expiry(response)
            self.granted = granted
            self.registered_until = now + granted
            # Refresh well before the binding runs out: halfway for short bindings, a minute
            # early for long ones.
            self._start("refresh", now, max(granted / 2, granted - 60))
            if self.config.keepalive_interval > 0 and not self.flow.reliable:
                self._start("keepalive", now, self.config.keepalive_interval)
            self._set_state(RegistrationState.REGISTERED, f"registered for {granted} s", granted)
            return
        if status == 423:
            # RFC 3261 §10.2.8: Interval Too Brief; use the registrar's minimum.
            min_expires = response.headers.get("Min-Expires", "") or ""
            if min_expires.strip().isdigit() and int(min_expires) > self.expires_requested:
                self.expires_requested = int(min_expires)
                self._send(now, self.expires_requested)
                return
        if status in (401, 407) and self.auth is not None and self._auth_attempts < 4:
            result = self.auth.handle_challenge(list(response.headers))
            if result.should_retry:
                self._auth_attempts += 1
                self._send(now, self.expires_requested)
                return
            self._fail(now, f"authentication failed: {result.reason}")
            return
        self._fail(now, f"{status} {response.reason}".strip())

    def on_failure(self, tx: ClientTransaction, reason: str, now: float) -> None:
        if tx is self._keepalive_tx:
            self._keepalive_tx = None
            if self.state is RegistrationState.REGISTERED:
                # The registrar stopped answering: assume the binding is lost.
                self._stop("refresh")
                self._next_target()
                self._fail(now, "registrar stopped answering keep-alives")
            return
        if tx is not self._tx:
            return
        self._tx = None
        if self.state is RegistrationState.UNREGISTERING:
            self._set_state(RegistrationState.STOPPED, f"un-REGISTER {reason}")
            return
        self._next_target()
        self._fail(now, "no response from registrar" if reason == "timeout" else reason)

    def _next_target(self) -> None:
        if len(self.targets) > 1:
            index = self.targets.index(self.flow) if self.flow in self.targets else -1
            self.flow = self.targets[(index + 1) % len(self.targets)]

    def _fail(self, now: float, reason: str) -> None:
        self.failures += 1
        self._auth_attempts = 0
        if self.auth is not None:
            self.auth.reset()  # the next attempt starts from a fresh challenge
        delay = min(
            self.config.backoff_cap, self.config.backoff_initial * 2 ** min(self.failures - 1, 30)
        )
        # Jitter keeps a fleet of gateways from retrying in lock-step after an outage.
        delay *= self.core.rng.uniform(0.5, 1.0)
        self._stop("keepalive")
        self._start("retry", now, delay)
        log.warning(
            "registration of %s failed (%s); retrying in %.1f s", self.config.aor, reason, delay
        )
        self._set_state(RegistrationState.RETRYING, reason)

    def _granted_expiry(self, response: Response) -> int:
        ours = self._contact().uri.key()
        for contact in response.contacts:
            if contact.uri.key() == ours and contact.expires is not None:
                return max(1, contact.expires)
        value = response.headers.get("Expires")
        if value and value.strip().isdigit():
            return max(1, min(int(value), 2**31))
        return self.expires_requested

    def _set_state(self, state: RegistrationState, reason: str, expires: int | None = None) -> None:
        changed = state is not self.state or reason != self.reason
        self.state = state
        self.reason = reason
        if changed:
            self.core.emit(RegistrationChanged(self, state.value, reason, expires))

    def _fire(self, name: str, now: float) -> None:
        if name in ("refresh", "retry") and self.state not in (
            RegistrationState.UNREGISTERING,
            RegistrationState.STOPPED,
        ):
            self._stop("keepalive")
            self._send(now, self.expires_requested)
        elif name == "keepalive" and self.state is RegistrationState.REGISTERED:
            if self._keepalive_tx is None:
                request = self.core.build_options(self.config.registrar, self.flow)
                self._keepalive_tx = self.core.start_client_transaction(
                    request, self.flow, self, now
                )
            self._start("keepalive", now, self.config.keepalive_interval)
