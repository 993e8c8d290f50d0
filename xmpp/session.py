"""The Jingle session with the focus, as an explicit sans-IO state machine.

Input: parsed Jingle requests with the IQ's sender, the result of our session-accept, media
failure, occupants leaving, our own leave. Output: the IQ reply to send (always decided at
once: Jicofo waits for it, jingle.md §3.1), then a list of actions for the asyncio shell
(`xmpp.participant`) to carry out in order.

States::

    IDLE --session-initiate from the focus--> ACCEPTING --accept acknowledged--> ACTIVE
      ^                                          |                                |
      +---- terminate / transport-replace / accept refused / media failed / leave-+

Rules (jingle.md §3-§6, §12; jigasi.md §2.3):

* Jingle is trusted only from the focus occupant (``room@conference…/focus``): the IQ's
  ``from``, never the ``initiator`` attribute, whose form varies. A session-initiate from anyone
  else is acknowledged and then terminated, as Jigasi does; any other action from anyone else is
  refused with ``forbidden``.
* A session-initiate while a session exists replaces it (Jicofo only re-invites after it ended
  its side; keeping a session it forgot would leave us deaf). An offer without audio/Opus, ICE
  credentials or a DTLS fingerprint is acknowledged and terminated with
  ``incompatible-parameters`` (Jigasi's "offer unusable").
* source-add/remove (and the legacy addsource/removesource) keep the remote audio SSRCs with
  their owners; video sources are ignored; an occupant leaving the MUC drops its SSRCs (current
  Jicofo sends no source-remove then, §6).
* transport-replace: acknowledged, then we leave and re-join the MUC, as Jigasi does
  (jigasi.md §1.9): Jicofo's default re-invite method is terminate + initiate anyway, and the
  re-join gives the same result without a second ICE transport on one session.
* An error answer to our session-accept ended the session on Jicofo's side for good (§4.1):
  leave and re-join with a fresh SSRC.
* A media (ICE/DTLS) failure: session-terminate with ``<connectivity-error/>`` and
  ``<bridge-session id restart="true"/>``, after which Jicofo sends a new session-initiate
  (§12 step 9).
* Actions for an unknown sid get ``item-not-found`` with ``<unknown-session/>`` (what
  lib-jitsi-meet answers, §6); unimplemented actions ``feature-not-implemented``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from xmpp import jingle as J
from xmpp.jingle import BridgeSessionInfo, JingleReason, JingleRequest
from xmpp.transport_info import MediaSource


class SessionState(enum.Enum):
    IDLE = "idle"
    ACCEPTING = "accepting"
    ACTIVE = "active"


# --- the IQ reply ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An IQ error (RFC 6120 §8.3): ``condition`` with ``type``; ``unknown_session`` adds the
    XEP-0166 §10 ``<unknown-session/>`` application condition."""

    condition: str
    type: str = "cancel"
    text: str | None = None
    unknown_session: bool = False


# --- actions for the shell -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartSession:
    """Take the offer: create the media transport, send (transport-info and) session-accept,
    connect the media."""

    offer: JingleRequest
    local_ssrc: int


@dataclass(frozen=True, slots=True)
class StopMedia:
    """Close the media transport of this session."""

    sid: str


@dataclass(frozen=True, slots=True)
class SendTerminate:
    """Send a session-terminate to ``to``."""

    to: str
    sid: str
    reason: JingleReason
    bridge_session_id: str | None = None
    restart: bool = False


@dataclass(frozen=True, slots=True)
class SourcesAdded:
    sources: tuple[MediaSource, ...]


@dataclass(frozen=True, slots=True)
class SourcesRemoved:
    sources: tuple[MediaSource, ...]


@dataclass(frozen=True, slots=True)
class SessionAccepted:
    """Jicofo acknowledged our session-accept."""

    sid: str


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The session is over. ``by_remote``: Jicofo terminated it; ``restart_requested``: we
    asked for a new invite (media failure); ``rejoin``: the shell re-joins the MUC."""

    sid: str
    reason: JingleReason | None
    by_remote: bool
    restart_requested: bool = False


@dataclass(frozen=True, slots=True)
class Rejoin:
    """Leave and re-join the MUC (with a fresh SSRC when ``fresh_ssrc``)."""

    reason: str
    fresh_ssrc: bool


Action = (
    StartSession
    | StopMedia
    | SendTerminate
    | SourcesAdded
    | SourcesRemoved
    | (SessionAccepted | SessionEnded | Rejoin)
)


def owner_nick(source: MediaSource) -> str | None:
    """The endpoint id (MUC nick) owning a source: ``ssrc-info`` owner as a bare nick or a full
    occupant JID (jingle.md §3.1), else the source name's ``<nick>-a0`` prefix."""
    if source.owner:
        return source.owner.rsplit("/", 1)[-1] if "/" in source.owner else source.owner
    if source.name and "-" in source.name:
        return source.name.rsplit("-", 1)[0]
    return None


class JingleSession:
    """One participant's Jingle state towards the focus occupant ``focus_jid``."""

    def __init__(self, focus_jid: str, local_ssrc: int) -> None:
        self.focus_jid = focus_jid
        self.local_ssrc = local_ssrc
        self.state = SessionState.IDLE
        self.sid: str | None = None
        self.offer: JingleRequest | None = None
        self.bridge_session: BridgeSessionInfo | None = None
        self.sources: dict[int, MediaSource] = {}  # remote audio SSRC -> source

    # -- incoming Jingle -------------------------------------------------------------------------

    def receive(
        self, sender: str, request: JingleRequest, *, from_focus: bool | None = None
    ) -> tuple[ErrorReply | None, list[Action]]:
        """A Jingle IQ (type set) from ``sender``: the reply (None = ``result``) and actions.
        ``from_focus`` overrides the check ``sender == focus_jid`` (the shell also compares
        the focus occupant's real JID with the conference IQ's ``focusjid``)."""
        action = request.action
        if from_focus is None:
            from_focus = sender == self.focus_jid
        if not from_focus:
            if action == J.SESSION_INITIATE:
                # Acknowledge, then hang up, as Jigasi does (jigasi.md §2.3).
                reason = JingleReason("decline", "Only calls from focus allowed")
                return None, [SendTerminate(sender, request.sid, reason)]
            return ErrorReply("forbidden", "auth", "Jingle is accepted from the focus only"), []
        if action == J.SESSION_INITIATE:
            return None, self._initiate(request)
        if request.sid != self.sid or self.state is SessionState.IDLE:
            return ErrorReply("item-not-found", unknown_session=True), []
        if action in (J.SOURCE_ADD, J.LEGACY_SOURCE_ADD):
            return None, self._add_sources(request.sources)
        if action in (J.SOURCE_REMOVE, J.LEGACY_SOURCE_REMOVE):
            return None, self._remove_sources(request.sources)
        if action == J.SESSION_TERMINATE:
            return None, self._end(request.reason, by_remote=True)
        if action == J.TRANSPORT_REPLACE:
            reason = JingleReason("success", "transport-replace")
            return None, [*self._end(reason, by_remote=True), Rejoin("transport-replace", False)]
        if action in (J.TRANSPORT_INFO, J.SESSION_INFO):
            # transport-info from Jicofo only follows an in-place ICE restart we never request
            # (§6); session-info carries nothing we act on.
            return None, []
        return ErrorReply("feature-not-implemented", text=f"{action} is not supported"), []

    def _initiate(self, request: JingleRequest) -> list[Action]:
        actions: list[Action] = []
        if self.state is not SessionState.IDLE and self.sid is not None:
            actions += self._end(JingleReason("alternative-session", "replaced"), by_remote=True)
        problem = _unusable(request)
        if problem is not None:
            return [
                *actions,
                SendTerminate(
                    self.focus_jid, request.sid, JingleReason("incompatible-parameters", problem)
                ),
            ]
        self.state = SessionState.ACCEPTING
        self.sid = request.sid
        self.offer = request
        self.bridge_session = request.bridge_session
        self.sources = {}
        added = self._store(request.audio_sources)
        actions.append(StartSession(request, self.local_ssrc))
        if added:
            actions.append(SourcesAdded(tuple(added)))
        return actions

    def _store(self, sources: Iterable[MediaSource]) -> list[MediaSource]:
        changed = []
        for source in sources:
            if source.media != "audio" or source.ssrc == self.local_ssrc:
                continue  # video ignored; the bridge never sends us our own SSRC anyway
            if self.sources.get(source.ssrc) != source:
                self.sources[source.ssrc] = source
                changed.append(source)
        return changed

    def _add_sources(self, sources: Iterable[MediaSource]) -> list[Action]:
        added = self._store(sources)
        return [SourcesAdded(tuple(added))] if added else []

    def _remove_sources(self, sources: Iterable[MediaSource]) -> list[Action]:
        # Jicofo matches removals by SSRC only (jingle.md §6).
        removed = [self.sources.pop(s.ssrc) for s in sources if s.ssrc in self.sources]
        return [SourcesRemoved(tuple(removed))] if removed else []

    def _end(
        self, reason: JingleReason | None, *, by_remote: bool, restart: bool = False
    ) -> list[Action]:
        sid = self.sid
        if sid is None or self.state is SessionState.IDLE:
            return []
        removed = tuple(self.sources.values())
        self.state = SessionState.IDLE
        self.sid = None
        self.offer = None
        self.sources = {}
        actions: list[Action] = [StopMedia(sid)]
        if removed:
            actions.append(SourcesRemoved(removed))
        actions.append(SessionEnded(sid, reason, by_remote, restart))
        return actions

    # -- our own events --------------------------------------------------------------------------

    def accept_answered(self, sid: str, error: str | None) -> list[Action]:
        """Jicofo's answer to our session-accept: None for ``result``, else its condition.
        A timeout counts as success, as Jicofo counts ours (§3.1)."""
        if sid != self.sid or self.state is not SessionState.ACCEPTING:
            return []
        if error is None:
            self.state = SessionState.ACTIVE
            return [SessionAccepted(sid)]
        reason = JingleReason("general-error", f"session-accept refused: {error}")
        return [*self._end(reason, by_remote=True), Rejoin(f"accept refused ({error})", True)]

    def answer_failed(self, sid: str, detail: str) -> list[Action]:
        """We could not build an answer (no local candidate...): terminate with
        ``<failed-application/>`` as Jigasi does (jigasi.md §2.3), without asking for a
        restart that would fail the same way."""
        if sid != self.sid or self.state is SessionState.IDLE:
            return []
        reason = JingleReason("failed-application", f"Error: {detail}")
        return [SendTerminate(self.focus_jid, sid, reason), *self._end(reason, by_remote=False)]

    def media_failed(self, sid: str, detail: str) -> list[Action]:
        """ICE/DTLS failed: ask Jicofo for a new invite (jingle.md §6 session-terminate row)."""
        if sid != self.sid or self.state is SessionState.IDLE:
            return []
        bridge_id = self.bridge_session.id if self.bridge_session is not None else None
        reason = JingleReason("connectivity-error", "ICE FAILED")
        terminate = SendTerminate(
            self.focus_jid, sid, reason, bridge_id, restart=bridge_id is not None
        )
        return [
            terminate,
            *self._end(JingleReason("connectivity-error", detail), by_remote=False, restart=True),
        ]

    def occupant_left(self, nick: str) -> list[Action]:
        """An occupant left the MUC: drop its SSRCs (lib-jitsi-meet's updateSsrcOwnersOnLeave);
        the focus leaving ends the session (jigasi.md §1.9 "Focus left")."""
        if self.focus_jid.rsplit("/", 1)[-1] == nick:
            return self._end(JingleReason("gone", "Focus left"), by_remote=True)
        gone = [s for s in self.sources.values() if owner_nick(s) == nick]
        for source in gone:
            del self.sources[source.ssrc]
        return [SourcesRemoved(tuple(gone))] if gone else []

    def hang_up(self, text: str = "Nice talking to you!") -> list[Action]:
        """We end the session (leaving, or the call ended): a polite session-terminate with
        ``<success/>`` (jigasi.md §2.3) before leaving the MUC."""
        sid = self.sid
        if sid is None or self.state is SessionState.IDLE:
            return []
        reason = JingleReason("success", text)
        return [SendTerminate(self.focus_jid, sid, reason), *self._end(reason, by_remote=False)]

    def reset(
        self, reason: JingleReason, focus_jid: str | None = None, local_ssrc: int | None = None
    ) -> list[Action]:
        """Forget the session without telling anyone (connection lost, re-join): the focus
        ends it on its side when we leave the MUC (§6)."""
        actions = self._end(reason, by_remote=False)
        if focus_jid is not None:
            self.focus_jid = focus_jid
        if local_ssrc is not None:
            self.local_ssrc = local_ssrc
        return actions


def _unusable(request: JingleRequest) -> str | None:
    """Why an offer cannot be answered, or None."""
    if request.audio is None:
        return "no audio content"
    if request.audio.payload("opus") is None:
        return "no opus payload type"
    transport = request.transport
    if transport is None or not transport.ufrag or not transport.pwd:
        return "no ICE credentials"
    if not transport.fingerprints:
        return "no DTLS fingerprint"
    return None
