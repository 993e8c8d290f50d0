"""The call session: one phone call bound to one conference participant (sans-IO).

`CallFlow` is the state machine of an inbound call, in the style of h11: inputs are method
calls with the time passed in, outputs are `Action` values the asyncio shell
(`gateway.call.InboundCall`) carries out (SIP responses and requests, presence, media, timers).
It reads top to bottom as the rules of reference/jigasi.md §1, §4 and §1.9:

::

    JOINING --joined--> WAITING --session started--> CONNECTED <--session started--+
       |                  |   \\--alone timer: answer--> ANSWERED_WAITING -----------+
       |                  |                                ^   (terminate, focus left,
       |                  |                                |    connection lost)
       |                  |                                +------- CONNECTED
       |  invite timeout: 408 (unanswered) or BYE with Reason SIP;cause=408 (answered)
       |  kicked / room destroyed / only gateways left: BYE (or a final response) with why
       +-- the phone's BYE/CANCEL: LEAVING (our status shows the reason), leave 5 s later
                                                                  -> ENDED

Mute state is kept here too (§4.3): the user's mute (the IVR's muteRequest, a moderator's
mute), hold (a sendonly/inactive re-INVITE, §9 item 23) and what the meeting has been told
(``<audiomuted>``/``SourceInfo``). The media is gated by ``user_muted or held``.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from gateway import info

STATUS_INITIALIZING = "Initializing Call"  # jigasi.md §2.2 / §3.6
STATUS_CONNECTED = "Connected"
# Dial-out call states as jitsi-meet spells them (jigasi.md §3.6).
STATUS_CALLING = "calling"
STATUS_RINGING = "Ringing"
STATUS_NO_ANSWER = "expired"  # jitsi-meet's label for a call nobody answered


class Phase(enum.Enum):
    JOINING = "joining"  # INVITE taken (100, 180 sent); the conference leg is joining the room
    WAITING = "waiting"  # in the room, not answered: waiting for the focus's invite
    CONNECTED = "connected"  # answered; the conference session is up
    ANSWERED_WAITING = "answered-waiting"  # answered; no conference session (yet, or again)
    CALLING = "calling"  # dial-out: the INVITE is out, the callee has not answered yet
    LEAVING = "leaving"  # the phone hung up; our status shows why until we leave
    ENDED = "ended"

    @property
    def answered(self) -> bool:
        return self in (Phase.CONNECTED, Phase.ANSWERED_WAITING)

    @property
    def in_room(self) -> bool:
        return self in (Phase.WAITING, Phase.CALLING, Phase.CONNECTED, Phase.ANSWERED_WAITING)


class Result(enum.Enum):
    """How a call ended, for metrics (gateway.metrics ``call_ended``)."""

    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ERROR = "error"


# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Action:
    pass


@dataclass(frozen=True, slots=True)
class Answer(Action):
    """Send the 200 with our SDP answer and start the phone's media in the room mixer."""


@dataclass(frozen=True, slots=True)
class Dial(Action):
    """Dial-out: send the INVITE to the callee (jigasi.md §3.4: when the focus invites us)."""


@dataclass(frozen=True, slots=True)
class Reject(Action):
    """A final response to the unanswered INVITE (the reason phrase names the cause)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Hangup(Action):
    """BYE with ``Reason: SIP;cause=<status>;text="<reason>"`` (RFC 3326)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class SetStatus(Action):
    """Our presence ``<status>``."""

    text: str


@dataclass(frozen=True, slots=True)
class PublishMuted(Action):
    """Our presence ``<audiomuted>`` and ``SourceInfo`` (jingle.md §7)."""

    muted: bool


@dataclass(frozen=True, slots=True)
class GateMedia(Action):
    """Stop (True) or resume (False) the phone's audio towards the meeting: no mixing, no
    uplink. Muted by the user or a moderator, or on hold."""

    closed: bool


@dataclass(frozen=True, slots=True)
class BindConference(Action):
    """A conference session started: its media transport carries the phone's audio."""


@dataclass(frozen=True, slots=True)
class UnbindConference(Action):
    """The conference session ended (the phone stays in the room's mixer)."""


@dataclass(frozen=True, slots=True)
class StopMedia(Action):
    """The phone leaves the room's mixer; the SIP leg's RTP stops."""


@dataclass(frozen=True, slots=True)
class Leave(Action):
    """Leave the room now (session-terminate, unavailable presence with ``status``)."""

    status: str | None


@dataclass(frozen=True, slots=True)
class SendInfo(Action):
    """An INFO to the phone; ``mute_id`` names a muteRequest whose INFO transaction outcome
    the shell reports back (`mute_info_failed`)."""

    content_type: str
    body: bytes
    mute_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartTimer(Action):
    name: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Action):
    name: str


@dataclass(frozen=True, slots=True)
class Finished(Action):
    """The call is over (the last action of a flow)."""

    result: Result
    reason: str


# Timer names.
INVITE_TIMER = "invite"
ALONE_TIMER = "alone"
LEAVE_TIMER = "leave"
HEARTBEAT_TIMER = "heartbeat"
MUTE_TIMER = "mute-response"
GATEWAYS_TIMER = "only-gateways"
RING_TIMER = "ring"


@dataclass(frozen=True, slots=True)
class FlowSettings:
    invite_timeout: float = 30.0  # jigasi.md §1.8 JVB_INVITE_TIMEOUT
    answer_alone_after: float = 15.0  # §1.8: a lone caller is answered and waits
    status_linger: float = 5.0  # §1.9: the reason stays visible this long
    heartbeat_seconds: float = 0.0  # §1.8 HEARTBEAT_SECONDS; 0: off
    hangup_when_only_gateways: bool = True  # §1.9 ALLOW_ONLY_JIGASIS_IN_ROOM=false
    gateways_grace: float = 5.0  # ... after this long with only gateways in the room
    mute_response_timeout: float = 10.0  # how long a moderator's mute waits for the IVR
    ring_timeout: float = 60.0  # dial-out: CANCEL after this long unanswered


class CallFlow:
    """The state machine of one inbound call. Every input returns the actions to carry out,
    in order; the shell feeds back timers (`timer`) and the outcome of what it did."""

    def __init__(self, settings: FlowSettings, now: float) -> None:
        self.settings = settings
        self.phase = Phase.JOINING
        self.started = now
        self.answered_at: float | None = None
        self.user_muted = False
        self.held = False
        self.published_muted = False
        self.pending_mutes: set[str] = set()  # our muteRequest ids awaiting the IVR
        self.heartbeats_unanswered = 0
        self.only_gateways = False  # a hang-up for "only gateways left" is pending
        self.leave_status: str | None = None
        self.result: Result | None = None
        self.end_reason = ""
        self._ids = itertools.count(1)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    @property
    def media_gated(self) -> bool:
        return self.user_muted or self.held

    def _finish(self, result: Result, reason: str, actions: list[Action]) -> list[Action]:
        self.phase = Phase.ENDED
        self.result = result
        self.end_reason = reason
        # A muteRequest still unanswered has nobody to tell any more: its late outcome
        # (mute_response_from_phone, mute_info_failed, the MUTE timer) must not publish.
        self.pending_mutes.clear()
        actions += [
            CancelTimer(INVITE_TIMER),
            CancelTimer(ALONE_TIMER),
            CancelTimer(LEAVE_TIMER),
            CancelTimer(HEARTBEAT_TIMER),
            CancelTimer(MUTE_TIMER),
            CancelTimer(GATEWAYS_TIMER),
            Finished(result, reason),
        ]
        return actions

    def _end_call(self, status: int, reason: str, result: Result) -> list[Action]:
        """We end the call: a final response while unanswered, else BYE with the cause; the
        conference leg leaves at once (there is nobody left to tell)."""
        actions: list[Action] = [StopMedia()]
        if self.phase.answered:
            actions.append(Hangup(status, reason))
        else:
            actions.append(Reject(status, reason))
        actions.append(Leave(reason))
        return self._finish(result, reason, actions)

    def _answer(self, now: float) -> list[Action]:
        self.answered_at = now
        actions: list[Action] = [Answer(), CancelTimer(ALONE_TIMER)]
        if self.settings.heartbeat_seconds > 0:
            actions.append(StartTimer(HEARTBEAT_TIMER, now + self.settings.heartbeat_seconds))
        return actions

    def _publish(self) -> list[Action]:
        muted = self.media_gated
        if muted == self.published_muted:
            return []
        self.published_muted = muted
        return [PublishMuted(muted)]

    def _gate(self) -> list[Action]:
        return [GateMedia(self.media_gated)]

    def new_id(self) -> str:
        return f"pygasi-{next(self._ids)}"

    # -- the conference leg --------------------------------------------------------------------

    def joined(self, now: float) -> list[Action]:
        """We are in the room (§1.6 success): Initializing Call, and the invite timeout."""
        if self.phase is not Phase.JOINING:
            return []
        self.phase = Phase.WAITING
        actions: list[Action] = [
            SetStatus(STATUS_INITIALIZING),
            StartTimer(INVITE_TIMER, now + self.settings.invite_timeout),
        ]
        alone = self.settings.answer_alone_after
        if 0 < alone < self.settings.invite_timeout:
            actions.append(StartTimer(ALONE_TIMER, now + alone))
        if self.published_muted or self.media_gated:
            self.published_muted = self.media_gated
            actions.append(PublishMuted(self.media_gated))
        return actions

    def join_failed(self, status: int, reason: str, result: Result) -> list[Action]:
        """The join failed (wrong password, lobby, room full, server unreachable...)."""
        if self.phase is not Phase.JOINING:
            return []
        return self._finish(result, reason, [StopMedia(), Reject(status, reason), Leave(None)])

    def refused(
        self, status: int, reason: str, result: Result, headers: tuple[tuple[str, str], ...] = ()
    ) -> list[Action]:
        """The INVITE cannot be taken (its SDP, no RTP port): a final response, nothing else."""
        if self.phase is not Phase.JOINING:
            return []
        return self._finish(result, reason, [StopMedia(), Reject(status, reason, headers)])

    def session_started(self, now: float) -> list[Action]:
        """The focus invited us (session-initiate): answer the phone first, then the Jingle
        session is accepted (jigasi.md §1.1 step 6)."""
        if self.phase is Phase.WAITING:
            self.phase = Phase.CONNECTED
            return [CancelTimer(INVITE_TIMER), *self._answer(now), BindConference()]
        if self.phase is Phase.ANSWERED_WAITING:
            self.phase = Phase.CONNECTED
            return [CancelTimer(INVITE_TIMER), BindConference()]
        return []

    def media_connected(self, now: float) -> list[Action]:
        """ICE and DTLS are up towards the bridge: Connected (§1.1 step 7)."""
        if self.phase is Phase.CONNECTED:
            return [SetStatus(STATUS_CONNECTED)]
        return []

    def session_ended(self, now: float) -> list[Action]:
        """session-terminate, the focus left, ICE failed, the connection dropped: keep the
        phone call and wait for a new invite within the timeout (§1.9)."""
        if self.phase is not Phase.CONNECTED:
            return []
        self.phase = Phase.ANSWERED_WAITING
        return [
            UnbindConference(),
            StartTimer(INVITE_TIMER, now + self.settings.invite_timeout),
        ]

    def rejoined(self, now: float) -> list[Action]:
        """Back in the room after a reconnect or a transport-replace."""
        if not self.phase.in_room:
            return []
        return [SetStatus(STATUS_INITIALIZING)]

    def conference_failed(self, reason: str) -> list[Action]:
        """The conference leg is gone for good (a re-join failed)."""
        if self.phase in (Phase.ENDED, Phase.LEAVING):
            return []
        if self.phase is Phase.JOINING:
            return self.join_failed(503, reason, Result.FAILED)
        return self._end_call(503, reason, Result.FAILED)

    def removed(self, kind: str, reason: str | None) -> list[Action]:
        """Kicked, banned, or the room destroyed: BYE (or a final response while unanswered,
        §9 item 24: the phone must stop ringing)."""
        if self.phase in (Phase.ENDED, Phase.LEAVING):
            return []
        if kind == "destroyed":
            text = "Conference ended"
            # RFC 3326: the BYE's cause is normal clearing; an unanswered call gets a 480.
            status = 200 if self.phase.answered else 480
        else:
            text = f"{kind.capitalize()} from the conference"
            status = 403
        if reason:
            text += f": {reason}"
        return self._end_call(status, text, Result.COMPLETED)

    def occupants_changed(self, now: float, only_gateways: bool) -> list[Action]:
        """Someone joined or left; ``only_gateways``: no participant but gateways (and the
        focus) is in the room (§1.9, §9 item 27). The hang-up waits ``gateways_grace``: a web
        user reloading the page comes back within it, and when the XMPP server shuts down its
        occupants leave just before our own connection drops (`connection_lost`), which must
        not end a phone call that survives the restart."""
        if not self.settings.hangup_when_only_gateways or not self.phase.in_room:
            return []
        if not only_gateways:
            if not self.only_gateways:
                return []
            self.only_gateways = False
            return [CancelTimer(GATEWAYS_TIMER)]
        if self.only_gateways:
            return []
        self.only_gateways = True
        return [StartTimer(GATEWAYS_TIMER, now + self.settings.gateways_grace)]

    def connection_lost(self) -> list[Action]:
        """The XMPP connection dropped: what we saw of the room no longer counts (we re-join
        and see it afresh)."""
        if not self.only_gateways:
            return []
        self.only_gateways = False
        return [CancelTimer(GATEWAYS_TIMER)]

    def _only_gateways_left(self) -> list[Action]:
        # As for a destroyed room: a BYE's cause is normal clearing, while an unanswered
        # INVITE needs a final error response (a 200 would answer it without SDP).
        status = 200 if self.phase.answered else 480
        return self._end_call(status, "Only gateways left in the conference", Result.COMPLETED)

    # -- the phone -------------------------------------------------------------------------------

    def phone_hung_up(self, now: float, reason: str, cancelled: bool) -> list[Action]:
        """BYE or CANCEL: our status becomes the reason, and we leave the room
        ``status_linger`` seconds later so the meeting sees why (§1.9)."""
        result = Result.CANCELLED if cancelled else Result.COMPLETED
        if self.phase is Phase.JOINING:
            return self._finish(result, reason, [StopMedia(), Leave(None)])
        if not self.phase.in_room:
            return []
        self.phase = Phase.LEAVING
        self.leave_status = reason
        self.result = result
        self.end_reason = reason
        return [
            StopMedia(),
            UnbindConference(),
            CancelTimer(INVITE_TIMER),
            CancelTimer(ALONE_TIMER),
            CancelTimer(HEARTBEAT_TIMER),
            CancelTimer(MUTE_TIMER),
            CancelTimer(GATEWAYS_TIMER),
            SetStatus(reason),
            StartTimer(LEAVE_TIMER, now + self.settings.status_linger),
        ]

    def shutdown(self, reason: str) -> list[Action]:
        """The gateway stops: everything is hung up with a Reason at once."""
        if self.phase is Phase.ENDED:
            return []
        if self.phase is Phase.LEAVING:
            return self._finish(self.result or Result.COMPLETED, self.end_reason, [Leave(None)])
        if self.phase is Phase.JOINING:
            return self.join_failed(503, reason, Result.FAILED)
        return self._end_call(503, reason, Result.COMPLETED)

    def hold(self, held: bool) -> list[Action]:
        """A re-INVITE put the call on hold (sendonly/inactive) or took it off: on hold the
        meeting hears nothing (no hold music, §9 item 23) and sees us muted."""
        if held == self.held or self.phase is Phase.ENDED:
            return []
        self.held = held
        return [*self._gate(), *self._publish()]

    # -- SIP INFO (jigasi.md §4) -----------------------------------------------------------------

    def mute_requested_by_phone(self, request_id: str, audio: bool) -> list[Action]:
        """The IVR's muteRequest: applied in mixer and translator mode alike, published, and
        answered with a muteResponse of the same id."""
        if self.phase in (Phase.LEAVING, Phase.ENDED):
            return []  # the phone has hung up: no dialog to answer in
        if not self.phase.in_room:
            return [SendInfo(info.JSON, info.mute_response(request_id, False, audio))]
        self.user_muted = audio
        return [
            *self._gate(),
            *self._publish(),
            SendInfo(info.JSON, info.mute_response(request_id, True, audio)),
        ]

    def mute_requested_by_moderator(self, now: float) -> list[Action]:
        """A moderator's mute IQ from the focus: muted at once, the IVR asked with a
        muteRequest; the meeting is told once the IVR says OK (§4.3). A phone without an IVR
        (the INFO refused, or no muteResponse in time) stays muted and is published so: the
        moderator's mute holds in mixer mode too."""
        if not self.phase.in_room:
            return []
        request_id = self.new_id()
        self.pending_mutes.add(request_id)
        self.user_muted = True
        return [
            *self._gate(),
            SendInfo(info.JSON, info.mute_request(request_id, True), mute_id=request_id),
            StartTimer(MUTE_TIMER, now + self.settings.mute_response_timeout),
        ]

    def mute_response_from_phone(self, request_id: str, ok: bool) -> list[Action]:
        if request_id not in self.pending_mutes:
            return []
        self.pending_mutes.discard(request_id)
        actions: list[Action] = []
        if not self.pending_mutes:
            actions.append(CancelTimer(MUTE_TIMER))
        if not ok:
            self.user_muted = False  # the IVR refused: the caller stays audible
            return [*actions, *self._gate(), *self._publish()]
        return [*actions, *self._publish()]

    def mute_info_failed(self, request_id: str) -> list[Action]:
        """Our muteRequest INFO got an error response or none: no IVR to ask."""
        if request_id not in self.pending_mutes:
            return []
        self.pending_mutes.discard(request_id)
        return self._publish()

    def heartbeat_received(self) -> list[Action]:
        """``{"t":11}``: the answer to ours, or the IVR's own, which we answer (§4.2)."""
        if self.heartbeats_unanswered:
            self.heartbeats_unanswered = 0
            return []
        if self.phase.answered:
            return [SendInfo(info.JSON, info.heartbeat())]
        return []

    # -- timers ----------------------------------------------------------------------------------

    def timer(self, name: str, now: float) -> list[Action]:
        if name == INVITE_TIMER and self.phase in (Phase.WAITING, Phase.ANSWERED_WAITING):
            return self._end_call(408, "No invite from conference focus", Result.TIMEOUT)
        if name == ALONE_TIMER and self.phase is Phase.WAITING:
            self.phase = Phase.ANSWERED_WAITING
            return self._answer(now)
        if name == LEAVE_TIMER and self.phase is Phase.LEAVING:
            return self._finish(
                self.result or Result.COMPLETED, self.end_reason, [Leave(self.leave_status)]
            )
        if name == HEARTBEAT_TIMER and self.phase.answered:
            if self.heartbeats_unanswered >= 2:
                return self._end_call(408, "No response on heartbeat", Result.TIMEOUT)
            self.heartbeats_unanswered += 1
            return [
                SendInfo(info.JSON, info.heartbeat()),
                StartTimer(HEARTBEAT_TIMER, now + self.settings.heartbeat_seconds),
            ]
        if name == GATEWAYS_TIMER and self.only_gateways and self.phase.in_room:
            return self._only_gateways_left()
        if name == MUTE_TIMER and self.pending_mutes:
            self.pending_mutes.clear()
            return self._publish()
        return []


class DialOutFlow(CallFlow):
    r"""The state machine of a dial-out call (jigasi.md §3): we join the room first, dial the
    number when the focus invites us, and report the call's states in presence (§3.6):
    ``Initializing Call``, ``calling``, ``Ringing``, ``Connected``, or the failure's reason
    phrase, shown for ``status_linger`` seconds before we leave. The rest - mute, hold, the
    callee's BYE, kicks, the focus coming and going - is the inbound call's.

    ::

        JOINING --joined--> WAITING --session started: Dial--> CALLING --answered--> CONNECTED
                               |                                   |  \--ring timeout: CANCEL
                               invite timeout                      +--failure: status, leave
    """

    def __init__(self, settings: FlowSettings, now: float) -> None:
        super().__init__(settings, now)
        self.ringing = False

    def _finish(self, result: Result, reason: str, actions: list[Action]) -> list[Action]:
        return super()._finish(result, reason, [*actions, CancelTimer(RING_TIMER)])

    def joined(self, now: float) -> list[Action]:
        if self.phase is not Phase.JOINING:
            return []
        self.phase = Phase.WAITING
        return [
            SetStatus(STATUS_INITIALIZING),
            StartTimer(INVITE_TIMER, now + self.settings.invite_timeout),
        ]

    def session_started(self, now: float) -> list[Action]:
        """The focus invited us: dial now (the Jingle session is accepted at once, before the
        callee answers, §3.4). A later invite after the callee answered binds the media."""
        if self.phase is Phase.WAITING:
            self.phase = Phase.CALLING
            return [
                CancelTimer(INVITE_TIMER),
                Dial(),
                SetStatus(STATUS_CALLING),
                StartTimer(RING_TIMER, now + self.settings.ring_timeout),
            ]
        if self.phase is Phase.ANSWERED_WAITING:
            self.phase = Phase.CONNECTED
            return [CancelTimer(INVITE_TIMER), BindConference()]
        return []

    def media_connected(self, now: float) -> list[Action]:
        return []  # "Connected" means the callee answered (§3.6), not ICE

    def progress(self) -> list[Action]:
        """180/183 from the callee."""
        if self.phase is not Phase.CALLING or self.ringing:
            return []
        self.ringing = True
        return [SetStatus(STATUS_RINGING)]

    def callee_answered(self, now: float, session_up: bool) -> list[Action]:
        """200 OK: the phone's media joins the room; without a conference session (it ended
        while ringing) we wait for the next invite as an inbound call does."""
        if self.phase is not Phase.CALLING:
            return []
        actions: list[Action] = [CancelTimer(RING_TIMER), SetStatus(STATUS_CONNECTED)]
        actions += self._answer(now)
        if session_up:
            self.phase = Phase.CONNECTED
            actions.append(BindConference())
        else:
            self.phase = Phase.ANSWERED_WAITING
            actions.append(StartTimer(INVITE_TIMER, now + self.settings.invite_timeout))
        return actions

    def callee_failed(self, now: float, status: int, reason: str) -> list[Action]:
        """A final error response: the reason phrase (``Busy Here``, ``Not Found``) becomes
        our status, and we leave ``status_linger`` seconds later (§3.6)."""
        if self.phase is not Phase.CALLING:
            return []
        busy = status in (486, 600, 603)
        return self._show_and_leave(now, reason, Result.REJECTED if busy else Result.FAILED)

    def _show_and_leave(self, now: float, status: str, result: Result) -> list[Action]:
        self.phase = Phase.LEAVING
        self.leave_status = status
        self.result = result
        self.end_reason = status
        return [
            StopMedia(),
            UnbindConference(),
            CancelTimer(INVITE_TIMER),
            CancelTimer(RING_TIMER),
            CancelTimer(HEARTBEAT_TIMER),
            CancelTimer(MUTE_TIMER),
            CancelTimer(GATEWAYS_TIMER),
            SetStatus(status),
            StartTimer(LEAVE_TIMER, now + self.settings.status_linger),
        ]

    def hangup_requested(self, reason: str = "Hung up from the meeting") -> list[Action]:
        """Rayo ``hangup`` (§3.5): CANCEL or BYE, and leave the room now."""
        if not self.phase.in_room and self.phase is not Phase.JOINING:
            return []
        if self.phase is Phase.JOINING:
            return self._finish(Result.COMPLETED, reason, [StopMedia(), Leave(None)])
        return self._end_call(200, reason, Result.COMPLETED)

    def timer(self, name: str, now: float) -> list[Action]:
        if name == RING_TIMER and self.phase is Phase.CALLING:
            return [
                Hangup(408, "No answer"),
                *self._show_and_leave(now, STATUS_NO_ANSWER, Result.TIMEOUT),
            ]
        return super().timer(name, now)


__all__ = [
    "STATUS_CONNECTED",
    "STATUS_INITIALIZING",
    "Action",
    "Answer",
    "BindConference",
    "CallFlow",
    "CancelTimer",
    "Dial",
    "DialOutFlow",
    "Finished",
    "FlowSettings",
    "GateMedia",
    "Hangup",
    "Leave",
    "Phase",
    "PublishMuted",
    "Reject",
    "Result",
    "SendInfo",
    "SetStatus",
    "StartTimer",
    "StopMedia",
    "UnbindConference",
]
