"""Dial-out from a meeting (reference/jigasi.md §3): a Rayo ``dial`` becomes a conference
participant that joins the room and, once the focus invites it, a SIP call to the number.

`dial_target` turns the Rayo ``to`` into the INVITE's Request-URI. Jigasi strips ``#``, ``*``
and capitals from numbers without telling anyone (jigasi.md §3.4, §9 item 16); here a number
keeps every character that means something (digits, ``+``, ``*``, ``#``, ``A``-``D``), only
RFC 3966 visual separators (spaces, ``-``, ``.``, parentheses) are dropped, and anything that is
neither a number, a SIP user part nor a SIP URI is refused with the reason.

`OutboundCall` is the asyncio shell of `gateway.session.DialOutFlow`; what it shares with an
inbound call (the participant's events, mute, hold, INFO, DTMF, the media) is
`gateway.call.CallSession`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence

from gateway.call import CallServices, CallSession, reason_phrase
from gateway.config import SipAccountConfig
from gateway.rooms import RoomTarget
from gateway.session import Action, Answer, Dial, DialOutFlow, Hangup, Reject, Result
from media.ports import PortsExhaustedError
from sip.errors import SipParseError
from sip.grammar import is_token
from sip.message import Response
from sip.offer_answer import MediaNegotiator
from sip.ua import Call
from sip.uri import Uri, escape_user, parse_uri
from xmpp.presence import Occupant
from xmpp.rayo import DialRefused

# RFC 3966 §5.1.1 visual separators: they carry no meaning and trunks do not want them.
_VISUAL_SEPARATORS = re.compile(r"[\s\-.()]")
# A dialled number: digits and what a keypad sends (RFC 4733's events 0-9 * # A-D), with an
# optional leading + (E.164).
_NUMBER = re.compile(r"\+?[0-9A-Da-d*#]+")
# A SIP user part (RFC 3261 §25.1 unreserved / user-unreserved, unescaped), for extensions
# such as "reception" or "alice.smith".
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/#]+")

# SIP headers a Rayo dial may not set: they belong to the dialog and its transport.
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route",
        "Record-Route", "Content-Type", "Content-Length", "Authorization",
        "Proxy-Authorization", "Expires", "Allow", "Supported", "Require",
    )
)  # fmt: skip

DIRECTION_HEADER = ("JigasiCallDirection", "out")  # jigasi.md §3.4

# (Request-URI, extra headers, the SDP negotiator) -> the SIP call, INVITE sent.
Dialer = Callable[[Uri, list[tuple[str, str]], MediaNegotiator], Awaitable[Call]]


def dial_target(to: str, account: SipAccountConfig) -> Uri:
    """The Request-URI for a Rayo ``to``: a ``sip:``/``sips:`` URI as given (sent to its own
    host when no trunk is configured, RFC 3263), a ``tel:`` URI or a number through the trunk
    (``outbound_prefix`` + number @ the trunk's domain). Raises DialRefused(bad-request)."""
    text = to.strip()
    if not text:
        raise DialRefused("bad-request", "empty destination")
    lower = text.lower()
    if lower.startswith(("sip:", "sips:")):
        try:
            uri = parse_uri(text)
        except SipParseError as exc:
            raise DialRefused("bad-request", f"not a SIP URI: {exc.reason}") from None
        if not uri.host:
            raise DialRefused("bad-request", "SIP URI without a host")
        return uri
    number = text[4:].split(";", 1)[0] if lower.startswith("tel:") else text
    cleaned = _VISUAL_SEPARATORS.sub("", number)
    if not cleaned or not (_NUMBER.fullmatch(cleaned) or _USER.fullmatch(cleaned)):
        raise DialRefused(
            "bad-request", f"{text[:60]!r} is neither a phone number nor a SIP address"
        )
    domain = _trunk_domain(account)
    if domain is None:
        raise DialRefused(
            "bad-request",
            f"no SIP trunk configured ([sip.account]): dial a sip: URI, not {text[:60]!r}",
        )
    host, _, port = domain.partition(":")
    return Uri(
        scheme="sip",
        user=escape_user(account.outbound_prefix + cleaned),
        host=host,
        port=int(port) if port.isdigit() else None,
    )


def _trunk_domain(account: SipAccountConfig) -> str | None:
    if not account.uri:
        return None
    aor = parse_uri(account.uri)
    return aor.host or None


def extra_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The Rayo dial's other headers as SIP headers (jigasi.md §3.3). Raises
    DialRefused(bad-request) for a name that is not a SIP token, a value with a line break,
    or a header that belongs to the dialog."""
    result: list[tuple[str, str]] = []
    for name, value in headers:
        if not is_token(name):
            raise DialRefused("bad-request", f"header name {name[:40]!r} is not a SIP token")
        if name.lower() in _RESERVED_HEADERS:
            raise DialRefused("bad-request", f"header {name} cannot be set by a dial")
        if any(ch in value for ch in "\r\n\0"):
            raise DialRefused("bad-request", f"header {name} has a line break in its value")
        result.append((name, value))
    return result


class OutboundCall(CallSession):
    """One dial-out call: `start()` joins the room and returns the Rayo ``ref`` URI; the SIP
    call is placed when the focus invites us."""

    direction = "outbound"

    def __init__(
        self,
        services: CallServices,
        dialer: Dialer,
        target: Uri,
        room: RoomTarget,
        display_name: str,
        headers: list[tuple[str, str]],
        *,
        started_at: float,
        log_id: str,
    ) -> None:
        super().__init__(
            services,
            room,
            display_name,
            DialOutFlow(services.flow, started_at),
            call=None,
            started_at=started_at,
            log_id=log_id,
        )
        self.dialer = dialer
        self.target = target
        self.headers = headers
        self.dial_flow: DialOutFlow = self.flow  # type: ignore[assignment]
        self.sip: Call | None = None
        self._in_room: asyncio.Future[str] = self.loop.create_future()

    async def start(self) -> str:
        """Join the room; the ``ref`` URI of our occupant (jigasi.md §3.3). Raises DialRefused
        when the call could not get that far - and then it has ended: a dial is never answered
        with an error while its call lives on (Jicofo would try another gateway, and the phone
        would ring twice, jigasi.md §3.3)."""
        self._count_start()
        self.log.info("dial %s for room %s", self.target, self.room.jid)
        try:
            self._open_media(self.loop.time())
        except PortsExhaustedError:
            self._run(self.flow.refused(503, "No RTP port free", Result.FAILED))
            raise DialRefused("service-unavailable", "no RTP port free") from None
        self._start_participant()
        finished = asyncio.ensure_future(asyncio.shield(self.finished))
        try:
            await asyncio.wait([self._in_room, finished], return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
        if self._in_room.done() and not self._in_room.cancelled():
            return self._in_room.result()
        raise DialRefused("service-unavailable", f"could not join the room: {self.flow.end_reason}")

    def hangup_requested(self, sender: str) -> None:
        """Rayo ``hangup`` (jigasi.md §3.5), from the meeting or the brewery."""
        self.log.info("hangup requested by %s", sender)
        self._run(self.dial_flow.hangup_requested())

    def stop(self, reason: str) -> None:
        """End the call now (the dial could not be confirmed in time)."""
        self.shutdown(reason)

    # -- hooks ---------------------------------------------------------------------------------

    def _joined(self, me: Occupant) -> None:
        super()._joined(me)
        participant = self.participant
        if participant is not None and not self._in_room.done():
            self._in_room.set_result(f"xmpp:{participant.occupant_jid}")
        if participant is not None:
            participant.on("hangup_requested", self.hangup_requested)

    def _do_own(self, action: Action) -> bool:
        if isinstance(action, Dial):
            self._spawn(self._dial())
        elif isinstance(action, Answer):
            now = self.loop.time()
            self.log.info("the callee answered after %.2f s", now - self.received_at)
            if self.services.metrics is not None:
                self.services.metrics.call_setup(now - self.received_at)
            self._attach_media()
        elif isinstance(action, Reject | Hangup):
            # Before the callee answers this is a CANCEL, after it a BYE; both carry the
            # cause (RFC 3326). Nothing was dialled yet: nothing to tell the trunk.
            if self.sip is not None and not self.sip.ended:
                self.log.info("hanging up: %d %s", action.status, action.reason)
                self.sip.hangup(action.status, reason_phrase(action.reason))
        else:
            return False
        return True

    async def _dial(self) -> None:
        media = self.media
        if media is None:
            return
        headers = [(self._room_header(), self.room.jid), DIRECTION_HEADER, *self.headers]
        try:
            call = await self.dialer(self.target, headers, media.negotiator)
        except Exception as exc:  # DNS, no route, transport: the call fails with the reason
            self.log.warning("INVITE to %s not sent: %s", self.target, exc)
            self._run(self.dial_flow.callee_failed(self.loop.time(), 503, "Service Unavailable"))
            return
        self.sip = self.call = call
        self.log.info("INVITE sent to %s (Call-ID %s)", self.target, call.call_id)
        if self.flow.phase.value in ("leaving", "ended"):
            call.hangup(487, "Request Terminated")  # hung up while we were dialling
            return
        self._wire_call(call)
        call.on("progress", self._on_progress)
        call.on("answered", self._on_answered)
        call.on("failed", self._on_failed_response)

    def _room_header(self) -> str:
        names = self.services.room_header
        return names[0] if names else "Jitsi-Conference-Room"

    def _on_progress(self, response: Response) -> None:
        if response.status in (180, 183):
            self._run(self.dial_flow.progress())

    def _on_answered(self, response: Response) -> None:
        self._run(self.dial_flow.callee_answered(self.loop.time(), self.session is not None))

    def _on_failed_response(self, status: int, reason: str) -> None:
        self.log.info("the callee's answer: %d %s", status, reason)
        self._run(self.dial_flow.callee_failed(self.loop.time(), status, reason))


__all__ = ["DIRECTION_HEADER", "Dialer", "OutboundCall", "dial_target", "extra_headers"]
