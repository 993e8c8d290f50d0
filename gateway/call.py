"""An inbound call: the asyncio shell around `gateway.session.CallFlow`.

It wires one SIP `sip.ua.Call` and one `xmpp.participant.ConferenceParticipant` to the flow:
their events become the flow's inputs, the flow's actions become SIP responses and requests,
presence updates, media changes and timers. One line is logged per call event, with the call
id, room and direction (`gateway.logs.call_logger`); passwords are never logged.

Events (pyee): ``"dtmf"`` (digit, how: ``"rfc4733"`` or ``"info"``), the phone's key presses
(the PIN IVR of a later issue takes them); ``"ended"`` (Result).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pyee.asyncio import AsyncIOEventEmitter

from gateway import info
from gateway.call_media import CallMedia
from gateway.conference import Conferences
from gateway.logs import CallLogger, call_logger
from gateway.media_settings import DEFAULT as DEFAULT_MEDIA
from gateway.media_settings import MediaSettings
from gateway.rooms import RoomTarget
from gateway.session import (
    Action,
    Answer,
    BindConference,
    CallFlow,
    CancelTimer,
    Finished,
    FlowSettings,
    GateMedia,
    Hangup,
    Leave,
    Phase,
    PublishMuted,
    Reject,
    Result,
    SendInfo,
    SetStatus,
    StartTimer,
    StopMedia,
    UnbindConference,
)
from media.ports import PortAllocator, PortsExhaustedError
from sip.errors import SipParseError
from sip.offer_answer import NegotiatedStream, NegotiationError, OfferAnswerConfig
from sip.ua import Call, CallEnd, InfoRequest
from xmpp.config import ParticipantConfig
from xmpp.errors import (
    ConferenceRequestError,
    ConnectionFailed,
    JoinError,
    JoinTimeout,
    LobbyEnabled,
    NotAllowed,
    RoomFull,
    RoomPasswordError,
    XmppError,
)
from xmpp.media_api import MediaFactory
from xmpp.participant import (
    ConferenceParticipant,
    MuteRequested,
    SessionStarted,
    SessionTerminated,
)
from xmpp.presence import Departure, Occupant
from xmpp.transport_info import MediaSource

log = logging.getLogger("pygasi.call")


class CallMetrics(Protocol):
    """What a call reports (`gateway.metrics.Metrics` has these)."""

    def call_started(self, direction: str) -> None: ...

    def call_ended(self, direction: str, result: str, duration: float) -> None: ...

    def call_setup(self, seconds: float) -> None: ...


@dataclass
class CallServices:
    """What every call shares: the process's mixer rooms, ports, codecs and conference set-up."""

    conferences: Conferences
    allocator: PortAllocator
    rtp_host: str  # where RTP sockets bind
    sdp_address: str  # what the SDP says (the public address behind NAT)
    offer_config: OfferAnswerConfig
    flow: FlowSettings
    participant_config: Callable[[RoomTarget], ParticipantConfig]
    media_factory: MediaFactory
    metrics: CallMetrics | None = None
    media: MediaSettings = DEFAULT_MEDIA  # [media]: jitter buffers, mixers, Opus
    focus_nick: str = "focus"
    translator: bool = False  # [sip] translator: forward Opus without mixing when negotiated
    room_header: tuple[
        str, ...
    ] = ()  # [inbound] room_header: dial-out names the room with the first


def reason_text(header: str | None) -> str | None:
    """The ``text`` of an RFC 3326 Reason header (``SIP;cause=200;text="Call completed"``)."""
    if not header:
        return None
    match = re.search(r'text\s*=\s*"((?:[^"\\]|\\.)*)"', header)
    if match is None:
        return None
    text = re.sub(r"\\(.)", r"\1", match.group(1)).strip()
    return text[:120] or None


def reason_phrase(text: str) -> str:
    """A reason phrase: printable ASCII on one line (RFC 3261 §25.1 Reason-Phrase)."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return cleaned[:120] or "Error"


class CallSession(AsyncIOEventEmitter):
    """What an inbound and an outbound call share: one SIP call (``call``, None until an
    outbound call has dialled), one conference participant, their media, and a sans-IO flow
    whose actions this shell carries out. Subclasses handle the actions that differ (answering
    versus dialling) in `_do_own`."""

    direction = "inbound"

    def __init__(
        self,
        services: CallServices,
        room: RoomTarget,
        display_name: str,
        flow: CallFlow,
        *,
        call: Call | None,
        started_at: float,
        log_id: str,
    ) -> None:
        super().__init__()
        self.services = services
        self.call = call
        self.room = room
        self.display_name = display_name
        self.loop = asyncio.get_running_loop()
        self.received_at = started_at
        self.log_id = log_id
        self.log: CallLogger = call_logger(log_id, room.jid, self.direction)
        self.flow = flow
        self.media: CallMedia | None = None
        self.participant: ConferenceParticipant | None = None
        self.session: SessionStarted | None = None
        self.result: Result | None = None
        self.finished = asyncio.get_running_loop().create_future()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._join_task: asyncio.Task[None] | None = None
        self._leave_task: asyncio.Task[None] | None = None
        self._metrics_started = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.room.jid} {self.flow.phase.value}>"

    @property
    def call_id(self) -> str:
        return self.call.call_id if self.call is not None else self.log_id

    @property
    def phase(self) -> Phase:
        return self.flow.phase

    # -- shared set-up ---------------------------------------------------------------------------

    def _count_start(self) -> None:
        if self.services.metrics is not None:
            self.services.metrics.call_started(self.direction)
            self._metrics_started = True

    def _open_media(self, now: float) -> CallMedia:
        """The SIP leg's media (its RTP ports reserved now). Raises PortsExhaustedError."""
        services = self.services
        media = CallMedia(
            services.allocator,
            host=services.rtp_host,
            sdp_address=services.sdp_address,
            offer_config=services.offer_config,
            now=now,
            pipeline_config=services.media.pipeline,
            translator=services.translator,
            uplink_opus=services.media.uplink_opus,
        )
        media.on_dtmf = lambda digit: self._digit(digit, "rfc4733")
        self.media = media
        return media

    def _wire_call(self, call: Call) -> None:
        call.on("bye", self._on_bye)
        call.on("ended", self._on_ended)
        call.on("info", self._on_info)
        call.on("media", self._on_media)

    def _start_participant(self) -> ConferenceParticipant:
        services = self.services
        participant = ConferenceParticipant(
            services.participant_config(self.room),
            self.room.jid,
            self.display_name,
            password=self.room.password,
            media_factory=services.media_factory,
        )
        self.participant = participant
        participant.on("session_started", self._on_session_started)
        participant.on("session_terminated", self._on_session_terminated)
        participant.on("media_state", self._on_media_state)
        participant.on("sources_added", self._on_sources_added)
        participant.on("sources_removed", self._on_sources_removed)
        participant.on("mute_requested", self._on_mute_requested)
        participant.on("occupant_joined", self._on_occupants_changed)
        participant.on("occupant_left", self._on_occupants_changed)
        participant.on("focus_left", self._on_focus_left)
        participant.on("kicked", self._on_removed)
        participant.on("room_destroyed", self._on_removed)
        participant.on("connection_lost", self._on_connection_lost)
        participant.on("rejoined", self._on_rejoined)
        participant.on("failed", self._on_failed)
        participant.on("dtmf", self._on_conference_dtmf)
        self._join_task = self._spawn(self._join(participant))
        return participant

    # -- hooks for the subclasses ---------------------------------------------------------------

    def _joined(self, me: Occupant) -> None:
        self.log.info(
            "joined %s as %s (display name %r)", self.room.jid, me.nick, self.display_name
        )
        self._run(self.flow.joined(self.loop.time()))

    def _do_own(self, action: Action) -> bool:
        """Carry out what only this direction does; True when handled."""
        return False

    async def _join(self, participant: ConferenceParticipant) -> None:
        try:
            me = await participant.join()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            status, reason, result = _join_failure(exc)
            self.log.warning("could not join %s: %s", self.room.jid, exc)
            self._run(self.flow.join_failed(status, reason, result))
            return
        self._joined(me)

    # -- the conference leg's events -------------------------------------------------------------

    def _on_session_started(self, session: SessionStarted) -> None:
        self.session = session
        self.log.info(
            "session-initiate %s from the focus (%d sources)", session.sid, len(session.sources)
        )
        self._run(self.flow.session_started(self.loop.time()))
        if session.start_muted_audio and self.flow.phase is Phase.CONNECTED:
            # The room starts everyone muted (jigasi.md §4.3 start muted): ask the IVR.
            self._run(self.flow.mute_requested_by_moderator(self.loop.time()))

    def _on_session_terminated(self, ended: SessionTerminated) -> None:
        reason = ended.reason
        why = (
            "" if reason is None else reason.condition + (f": {reason.text}" if reason.text else "")
        )
        if self.flow.phase in (Phase.ENDED, Phase.LEAVING):
            self.log.info("conference session ended (%s)", why)
        else:
            self.log.info("conference session ended (%s): waiting for a new invite", why)
        self.session = None
        self._run(self.flow.session_ended(self.loop.time()))

    def _on_media_state(self, state: str) -> None:
        if state == "connected":
            self.log.info("conference media connected")
            self._run(self.flow.media_connected(self.loop.time()))

    def _on_sources_added(self, sources: tuple[MediaSource, ...]) -> None:
        if self.media is not None:
            self.media.sources_added(sources)

    def _on_sources_removed(self, sources: tuple[MediaSource, ...]) -> None:
        if self.media is not None:
            self.media.sources_removed(sources)

    def _on_mute_requested(self, request: MuteRequested) -> None:
        self.log.info("moderator mute (%s)", request.actor or "focus")
        self._run(self.flow.mute_requested_by_moderator(self.loop.time()))

    def _on_occupants_changed(self, occupant: Occupant) -> None:
        participant = self.participant
        if participant is None:
            return
        focus = self.services.focus_nick
        others = [o for nick, o in participant.occupants.items() if nick != focus]
        only_gateways = all(o.is_gateway for o in others)
        if only_gateways and not self.flow.only_gateways:
            self.log.info("%s left; no participant but gateways is left", occupant.nick)
        self._run(self.flow.occupants_changed(self.loop.time(), only_gateways))

    def _on_focus_left(self, occupant: Occupant) -> None:
        self.log.info("the focus left the room: waiting for it to invite us again")

    def _on_removed(self, departure: Departure) -> None:
        self.log.info("removed from the room: %s (%s)", departure.kind, departure.reason)
        self._run(self.flow.removed(departure.kind, departure.reason))

    def _on_connection_lost(self, reason: str) -> None:
        self.log.warning("XMPP connection lost (%s): reconnecting, the call stays up", reason)
        self._run(self.flow.connection_lost())

    def _on_rejoined(self, me: Occupant) -> None:
        self.log.info("re-joined %s as %s", self.room.jid, me.nick)
        self._run(self.flow.rejoined(self.loop.time()))

    def _on_failed(self, error: XmppError) -> None:
        self.log.warning("conference leg failed: %s", error)
        self._run(self.flow.conference_failed(f"Conference leg failed: {error}"))

    def _on_conference_dtmf(self, source: MediaSource, digit: Any) -> None:
        """A web participant's key press (RFC 4733 on the bridge leg) to the phone."""
        key = str(getattr(digit, "digit", digit))
        media = self.media
        if media is not None and media.send_dtmf(key):
            self.log.info("DTMF %s from %s to the phone (RFC 4733)", key, source.owner)
            return
        if self.flow.phase.answered:
            self.log.info("DTMF %s from %s to the phone (INFO)", key, source.owner)
            self._run([SendInfo(info.DTMF_RELAY, info.dtmf_relay(key))])

    # -- the phone's events ----------------------------------------------------------------------

    def _on_bye(self, request: Any) -> None:
        reason = reason_text(request.headers.get("Reason")) or "Hung up"
        self.log.info("BYE from the phone (%s)", reason)
        self._run(self.flow.phone_hung_up(self.loop.time(), reason, cancelled=False))

    def _on_cancel(self, request: Any) -> None:
        reason = reason_text(request.headers.get("Reason")) or "Cancelled"
        self.log.info("CANCEL from the phone (%s)", reason)
        self._run(self.flow.phone_hung_up(self.loop.time(), reason, cancelled=True))

    def _on_ended(self, end: CallEnd) -> None:
        if self.flow.phase in (Phase.ENDED, Phase.LEAVING):
            return
        # The dialog ended without a BYE we acted on: no ACK for our 200, a session timer, a
        # 481 to an in-dialog request.
        self.log.info("SIP call ended: %s", end.reason)
        self._run(
            self.flow.phone_hung_up(self.loop.time(), reason_phrase(end.reason), cancelled=False)
        )

    def _on_media(self, stream: NegotiatedStream) -> None:
        media = self.media
        if media is None:
            return
        was_held = media.held
        media.negotiated(stream, self.loop.time())
        if media.held != was_held:
            self.log.info("call %s hold", "put on" if media.held else "taken off")
        self._run(self.flow.hold(media.held))

    def _on_info(self, request: InfoRequest) -> None:
        headers = request.request.headers
        try:
            message = info.parse_info(
                request.content_type, request.body, info.charset_of(headers.get("Content-Type"))
            )
        except info.InfoParseError as exc:
            self.log.info("INFO refused: %s", exc.reason)
            request.respond(400, reason_phrase(f"Bad Request ({exc.reason})"))
            return
        request.respond(200)
        if isinstance(message, info.MuteRequest):
            self.log.info("INFO muteRequest %s audio=%s", message.id, message.audio)
            self._run(self.flow.mute_requested_by_phone(message.id, message.audio))
        elif isinstance(message, info.MuteResponse):
            self.log.info("INFO muteResponse %s %s", message.id, "OK" if message.ok else "FAILED")
            self._run(self.flow.mute_response_from_phone(message.id, message.ok))
        elif isinstance(message, info.Heartbeat):
            self._run(self.flow.heartbeat_received())
        elif isinstance(message, info.DtmfInfo):
            self._digit(message.digit, "info")
        elif isinstance(message, info.OtherMessage):
            self.log.info("INFO %s ignored (not supported yet)", message.kind)

    def _digit(self, digit: str, how: str) -> None:
        self.log.info("DTMF %s from the phone (%s)", digit, how)
        self.emit("dtmf", digit, how)

    # -- the gateway -----------------------------------------------------------------------------

    def shutdown(self, reason: str = "Gateway shutting down") -> None:
        self._run(self.flow.shutdown(reason))

    async def wait_finished(self) -> Result:
        return await asyncio.shield(self.finished)

    async def closed(self) -> None:
        """Wait until the conference leg has left and every task of the call is done."""
        await asyncio.shield(self.finished)
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    # -- actions ---------------------------------------------------------------------------------

    def _run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            try:
                self._do(action)
            except Exception:
                self.log.exception("error carrying out %s", action)

    def _do(self, action: Action) -> None:
        now = self.loop.time()
        media = self.media
        participant = self.participant
        if self._do_own(action):
            return
        if isinstance(action, SetStatus):
            if participant is not None:
                participant.set_status(action.text)
        elif isinstance(action, PublishMuted):
            self.log.info("published %s", "muted" if action.muted else "unmuted")
            if participant is not None:
                participant.set_muted(action.muted)
        elif isinstance(action, GateMedia):
            if media is not None:
                media.set_gated(action.closed)
        elif isinstance(action, BindConference):
            session = self.session
            if media is not None and session is not None:
                sources = list(participant.remote_sources.values()) if participant else []
                media.bind(session.media, session.local_ssrc, sources)
        elif isinstance(action, UnbindConference):
            if media is not None:
                media.unbind()
        elif isinstance(action, StopMedia):
            if media is not None:
                media.close(now, "call ended")
        elif isinstance(action, Leave):
            self._leave(action.status)
        elif isinstance(action, SendInfo):
            self._spawn(self._send_info(action))
        elif isinstance(action, StartTimer):
            self._cancel_timer(action.name)
            self._timers[action.name] = self.loop.call_at(action.at, self._fire, action.name)
        elif isinstance(action, CancelTimer):
            self._cancel_timer(action.name)
        elif isinstance(action, Finished):
            self._finished(action)

    def _attach_media(self) -> None:
        """The phone's media joins the room (its mixer, or the clock in translator mode)."""
        media, participant = self.media, self.participant
        if media is not None and participant is not None:
            media.attach(self.services.conferences, self.room.jid, self, participant.local_ssrc)

    def _leave(self, status: str | None) -> None:
        participant = self.participant
        join = self._join_task
        if join is not None and not join.done():
            join.cancel()
        if participant is not None and self._leave_task is None:
            self._leave_task = self._spawn(self._leave_room(participant, status))

    async def _leave_room(self, participant: ConferenceParticipant, status: str | None) -> None:
        try:
            await participant.leave(status)
        except Exception as exc:  # leaving must not fail the call's end
            self.log.debug("leave: %s", exc)
        self.log.info("left %s", self.room.jid)

    async def _send_info(self, action: SendInfo) -> None:
        call = self.call
        if call is None or call.ended:
            return
        try:
            response = await call.send_info(action.content_type, action.body, timeout=10.0)
        except RuntimeError as exc:  # no dialog (yet, or any more)
            self.log.info("INFO not sent: %s", exc)
            response = None
        if action.mute_id is not None and (response is None or response.status >= 300):
            self._run(self.flow.mute_info_failed(action.mute_id))

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self._run(self.flow.timer(name, self.loop.time()))

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _finished(self, action: Finished) -> None:
        self.result = action.result
        self.log.info("call ended: %s (%s)", action.result.value, action.reason)
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self.media is not None:
            self.media.close(self.loop.time())
        metrics = self.services.metrics
        if metrics is not None and self._metrics_started:
            answered = self.flow.answered_at
            duration = self.loop.time() - answered if answered is not None else 0.0
            metrics.call_ended(self.direction, action.result.value, duration)
        if not self.finished.done():
            self.finished.set_result(action.result)
        self.emit("ended", action.result)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error("call task failed", exc_info=task.exception())


class InboundCall(CallSession):
    """A phone call from the trunk, bound to one conference participant (jigasi.md §1)."""

    def __init__(
        self,
        services: CallServices,
        call: Call,
        room: RoomTarget,
        display_name: str,
        *,
        received_at: float,
    ) -> None:
        super().__init__(
            services,
            room,
            display_name,
            CallFlow(services.flow, received_at),
            call=call,
            started_at=received_at,
            log_id=call.call_id,
        )
        self.sip: Call = call

    def start(self) -> None:
        """Take the INVITE: negotiate the SDP, 180 Ringing, and join the room. Synchronous, so
        that 180 follows the core's 100 Trying at once."""
        now = self.loop.time()
        self._count_start()
        self.log.info(
            "INVITE from %s to room %s (found by %s)",
            self.display_name,
            self.room.jid,
            self.room.source,
        )
        try:
            media = self._open_media(now)
        except PortsExhaustedError as exc:
            self._refuse(503, "No RTP port free", Result.FAILED, str(exc))
            return
        call = self.sip
        try:
            stream = call.negotiate(media.negotiator)
        except NegotiationError as exc:
            headers = [("Warning", exc.warning())]
            self._refuse(exc.status, exc.reason, Result.REJECTED, exc.detail, headers)
            return
        except SipParseError as exc:
            self._refuse(400, f"Bad SDP: {exc.reason}", Result.REJECTED, exc.reason)
            return
        if stream is not None:
            media.negotiated(stream, now)
        self._wire_call(call)
        call.on("cancel", self._on_cancel)
        call.ringing()  # jigasi.md §1.1 step 2: 180 at once, no early media
        self._start_participant()

    def _refuse(
        self,
        status: int,
        reason: str,
        result: Result,
        detail: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.log.warning("refused with %d: %s", status, detail)
        self._run(self.flow.refused(status, reason, result, tuple(headers or ())))

    def _do_own(self, action: Action) -> bool:
        call = self.sip
        if isinstance(action, Answer):
            now = self.loop.time()
            call.answer()
            self.log.info("answered (200 OK) after %.2f s", now - self.received_at)
            if self.services.metrics is not None:
                self.services.metrics.call_setup(now - self.received_at)
            self._attach_media()
        elif isinstance(action, Reject):
            self.log.info("rejected: %d %s", action.status, action.reason)
            call.reject(action.status, reason_phrase(action.reason), list(action.headers))
        elif isinstance(action, Hangup):
            self.log.info("hanging up: %d %s", action.status, action.reason)
            call.hangup(action.status, reason_phrase(action.reason))
        else:
            return False
        return True


def _join_failure(exc: BaseException) -> tuple[int, str, Result]:
    """The SIP answer to a failed join (jigasi.md §1.6), with a reason phrase that names the
    cause. Busy-type failures keep Jigasi's 486; an unreachable conference server is 503 so
    that a trunk tries another gateway."""
    if isinstance(exc, RoomPasswordError):
        text = "Wrong room password" if exc.password_given else "The room needs a password"
        return 486, text, Result.REJECTED
    if isinstance(exc, LobbyEnabled):
        return 486, "Lobby enabled on the room (not supported yet)", Result.REJECTED
    if isinstance(exc, RoomFull):
        return 486, "The room is full", Result.REJECTED
    if isinstance(exc, NotAllowed):
        return 403, f"Not allowed in the room ({exc.condition})", Result.REJECTED
    if isinstance(exc, JoinTimeout):
        return 504, "No answer from the conference server to the room join", Result.FAILED
    if isinstance(exc, JoinError):
        return 486, f"Cannot join the room ({exc})", Result.FAILED
    if isinstance(exc, ConferenceRequestError):
        return 503, f"Conference focus not ready ({exc})", Result.FAILED
    if isinstance(exc, ConnectionFailed):
        return 503, f"Conference server unreachable ({exc})", Result.FAILED
    return 500, f"Internal error joining the room ({type(exc).__name__})", Result.ERROR


__all__ = [
    "CallMetrics",
    "CallServices",
    "CallSession",
    "InboundCall",
    "reason_phrase",
    "reason_text",
]
