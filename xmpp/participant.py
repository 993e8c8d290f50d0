"""The conference participant: one phone call's occupant in one Jitsi room (the gateway binds a
SIP call to one of these). The asyncio shell around the sans-IO pieces: `xmpp.presence`,
`xmpp.focus`, `xmpp.caps`, `xmpp.jingle` and the `xmpp.session` state machine; the connection is
`xmpp.connection.XmppConnection`, the media an `xmpp.media_api.MediaTransport` per session.

Join (jingle.md §2, §12 steps 1-4): connect, ask the focus for the room (retrying while it
answers ``ready="false"``), join the MUC with our presence, answer disco#info. Then Jicofo
invites us when two participants are in (§2.5) and the session handler takes it (§3-§6).

Events (pyee ``AsyncIOEventEmitter``, listeners may be coroutines):

* ``"joined"`` (Occupant: ourselves), ``"rejoined"`` (Occupant) after a re-join;
* ``"session_started"`` (SessionStarted: sid, the new media transport - bind ``on_packet``
  here -, the remote audio sources, the bridge session, our SSRC), ``"session_accepted"`` (sid),
  ``"session_terminated"`` (SessionTerminated: sid, reason, by_remote, restart_requested);
  after a termination the focus may invite again: the gateway decides how long to wait;
* ``"media_state"`` (str), ``"dtmf"`` (MediaSource, DtmfDigit) relayed from the media;
* ``"sources_added"`` / ``"sources_removed"`` (tuple[MediaSource, ...]: remote audio with owner);
* ``"mute_requested"`` (MuteRequested: the focus asked us to mute; a ``false`` is acknowledged
  and ignored, unmuting is the phone user's choice, jingle.md §7);
* ``"hangup_requested"`` (str: the sender's occupant JID): a Rayo ``<hangup
  xmlns="urn:xmpp:rayo:1"/>`` sent to our occupant JID (the dial result's ``ref``, jigasi.md
  §3.5) by the focus or a current occupant of the room, already answered ``result``; the
  gateway hangs the call up and leaves. From anyone else it is answered ``forbidden``;
* ``"occupant_joined"`` / ``"occupant_left"`` (Occupant, ``is_gateway`` for Jigasi-like ones),
  ``"focus_joined"`` / ``"focus_left"`` (Occupant);
* ``"kicked"`` (Departure: kicked / banned / removed / shutdown), ``"room_destroyed"``
  (Departure);
* ``"connection_lost"`` (reason), ``"connection_restored"``, ``"failed"`` (XmppError: a
  re-join after a reconnect or a refused accept failed; the participant is then out of the
  room).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from pyee.asyncio import AsyncIOEventEmitter
from slixmpp import JID, Iq, Presence
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp.caps import DiscoInfo, caps_ver, fill_disco_info, gateway_disco_info
from xmpp.config import ParticipantConfig
from xmpp.connection import XmppConnection, reply, send_iq, send_iq_nowait
from xmpp.errors import (
    ConferenceRequestError,
    JoinError,
    JoinTimeout,
    RequestRefused,
    StanzaParseError,
    XmppError,
)
from xmpp.focus import (
    Backoff,
    build_conference_request,
    build_mute,
    parse_conference_response,
    parse_mute,
)
from xmpp.jingle import (
    BridgeSessionInfo,
    JingleReason,
    JingleRequest,
    LocalAudio,
    build_session_accept,
    build_session_terminate,
    build_transport_info,
    parse_jingle,
)
from xmpp.media_api import MediaFactory, MediaTransport
from xmpp.presence import (
    STATUS_SELF,
    VALID_NICK,
    Departure,
    LocalPresence,
    Occupant,
    fill_presence,
    join_error,
    nick_for,
    parse_departure,
    parse_occupant,
)
from xmpp.session import (
    Action,
    ErrorReply,
    JingleSession,
    Rejoin,
    SendTerminate,
    SessionAccepted,
    SessionEnded,
    SessionState,
    SourcesAdded,
    SourcesRemoved,
    StartSession,
    StopMedia,
)
from xmpp.transport_info import MediaSource

log = logging.getLogger("pygasi.xmpp.participant")

# lib-jitsi-meet sends a per-browser id; ours is per process (it matters only to Jicofo's
# authentication sessions, jingle.md §2.2).
_MACHINE_UID = secrets.token_hex(16)


def random_ssrc() -> int:
    """A random SSRC (RFC 3550 §8.1); Jicofo rejects 0 and duplicates (jingle.md §4.1)."""
    return 1 + secrets.randbelow(0xFFFFFFFE)


class ParticipantState(enum.Enum):
    NEW = "new"
    JOINING = "joining"
    JOINED = "joined"
    REJOINING = "rejoining"  # connection lost, or leaving to re-join
    LEFT = "left"  # left, kicked, destroyed or failed: final


@dataclass(frozen=True, slots=True)
class SessionStarted:
    sid: str
    media: MediaTransport
    sources: tuple[MediaSource, ...]
    bridge_session: BridgeSessionInfo | None
    local_ssrc: int
    start_muted_audio: bool | None


@dataclass(frozen=True, slots=True)
class SessionTerminated:
    sid: str
    reason: JingleReason | None
    by_remote: bool
    restart_requested: bool


@dataclass(frozen=True, slots=True)
class MuteRequested:
    actor: str | None  # the moderator's occupant JID, when Jicofo names it


class ConferenceParticipant(AsyncIOEventEmitter):
    """One occupant of ``room`` (a bare room JID, or a name in ``config.muc``)."""

    def __init__(
        self,
        config: ParticipantConfig,
        room: str,
        display_name: str | None = None,
        *,
        password: str | None = None,
        media_factory: MediaFactory,
        connection: XmppConnection | None = None,
        conference_properties: Mapping[str, str] | None = None,
        nick: str | None = None,
    ) -> None:
        """``nick`` forces the MUC nick (Jigasi's USE_SIP_USER_AS_XMPP_RESOURCE); it must
        satisfy mod_muc_resource_validate and, with anonymous_strict, cannot be used with
        anonymous login. By default the nick follows `xmpp.presence.nick_for`."""
        super().__init__()
        if nick is not None and not VALID_NICK.match(nick):
            raise ValueError(f"nick {nick!r} is not ^[a-zA-Z0-9][a-zA-Z0-9_]*$ (jingle.md §2.3)")
        self.fixed_nick = nick
        self.config = config
        # Normalised as the server will echo it (RFC 7622 nodeprep lower-cases the room).
        self.room = JID(room if "@" in room else f"{room}@{config.muc}").bare
        self.display_name = display_name
        self.password = password
        self.media_factory = media_factory
        self.connection = connection if connection is not None else XmppConnection(config)
        self.conference_properties = dict(
            conference_properties
            if conference_properties is not None
            else config.conference_properties
        )
        self.disco: DiscoInfo = gateway_disco_info(
            jigasi=config.advertise_jigasi, audio_mute=config.advertise_audio_mute
        )
        self.caps_ver = caps_ver(self.disco)
        features = [f for f in self.disco.features if f in _PRESENCE_FEATURES]
        self.presence = LocalPresence(
            nick="",
            display_name=display_name,
            caps_node=config.caps_node,
            caps_ver=self.caps_ver,
            features=tuple(features),
            region=config.region,
            stats_id=config.stats_id,
        )
        self.state = ParticipantState.NEW
        self.focus_jid: str | None = None  # the focus's real JID from the conference IQ
        self.occupants: dict[str, Occupant] = {}
        self.me: Occupant | None = None
        self._nick_jid: str | None = None
        self.session = JingleSession(f"{self.room}/{config.focus_nick}", random_ssrc())
        self.media: MediaTransport | None = None
        self._media_sid: str | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._join_future: asyncio.Future[Occupant] | None = None
        self._leave_future: asyncio.Future[None] | None = None
        self._rejoin_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        client = self.connection.client
        client.register_handler(
            Callback("pygasi jingle", StanzaPath("iq@type=set/jingle"), self._on_jingle)
        )
        client.register_handler(
            Callback("pygasi mute", StanzaPath("iq@type=set/mute"), self._on_mute)
        )
        client.register_handler(
            Callback("pygasi rayo hangup", StanzaPath("iq@type=set/rayo_hangup"), self._on_hangup)
        )
        client.register_handler(
            Callback(
                "pygasi disco#info", StanzaPath("iq@type=get/disco_info_query"), self._on_disco
            )
        )
        client.add_event_handler("presence", self._on_presence)
        self.connection.on("offline", self._connection_lost)
        self.connection.on("online", self._connection_restored)

    # -- properties ---------------------------------------------------------------------------

    @property
    def nick(self) -> str:
        return self.presence.nick

    @property
    def occupant_jid(self) -> str:
        return f"{self.room}/{self.nick}"

    @property
    def focus_occupant_jid(self) -> str:
        return f"{self.room}/{self.config.focus_nick}"

    @property
    def local_ssrc(self) -> int:
        return self.session.local_ssrc

    @property
    def remote_sources(self) -> dict[int, MediaSource]:
        return dict(self.session.sources)

    @property
    def session_state(self) -> SessionState:
        return self.session.state

    # -- joining ----------------------------------------------------------------------------------

    async def join(self) -> Occupant:
        """Connect if needed, request the room from the focus, join the MUC. Raises
        `ConnectionFailed`/`AuthenticationFailed`, `ConferenceRequestError`, or a `JoinError`
        subclass (`RoomPasswordError`, `LobbyEnabled`, `RoomFull`, `NotAllowed`, `JoinTimeout`,
        ...)."""
        if self.state is not ParticipantState.NEW:
            raise XmppError(f"join() in state {self.state.value}")
        self.state = ParticipantState.JOINING
        try:
            if not self.connection.online:
                await self.connection.start()
            me = await self._join_room()
        except BaseException:
            self.state = ParticipantState.LEFT
            await self.connection.close(wait=0.2)
            raise
        self.state = ParticipantState.JOINED
        self.emit("joined", me)
        return me

    async def _join_room(self) -> Occupant:
        cfg = self.config
        if cfg.conference_request:
            await self._request_conference()
        if self._nick_jid != self.connection.jid:
            # A new login (first join, or after a reconnect) gets a new nick: an anonymous JID
            # dictates it, and the old occupant may linger (jigasi.md §1.9). A re-join on the
            # same connection keeps it (mod_muc_resource_validate allows no other).
            self._nick_jid = self.connection.jid
            nick = self.fixed_nick or nick_for(self._nick_jid, cfg.anonymous)
            self.presence = replace(self.presence, nick=nick)
        self.occupants = {}
        self.me = None
        loop = asyncio.get_running_loop()
        self._join_future = loop.create_future()
        self._send_presence(join=True)
        try:
            return await asyncio.wait_for(asyncio.shield(self._join_future), cfg.join_timeout)
        except TimeoutError:
            raise JoinTimeout(cfg.join_timeout) from None
        finally:
            self._join_future = None

    async def _request_conference(self) -> None:
        """jingle.md §2.2. Errors and timeouts are logged and the join goes ahead, as Jigasi
        does (jigasi.md §1.5): the room may already exist with the focus in it."""
        cfg = self.config
        backoff = Backoff(*cfg.conference_backoff)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.conference_timeout
        attempt = 0
        while True:
            iq = self.connection.iq(cfg.focus)
            build_conference_request(
                iq,
                room=self.room,
                machine_uid=cfg.machine_uid or _MACHINE_UID,
                properties=self.conference_properties,
            )
            try:
                answer = await send_iq(iq, cfg.reply_timeout)
                response = parse_conference_response(answer)
            except IqError as exc:
                log.warning("conference request refused (%s); joining anyway", _condition(exc))
                return
            except (IqTimeout, StanzaParseError) as exc:
                log.warning("no usable conference response (%s); joining anyway", exc)
                return
            if response.ready:
                self.focus_jid = response.focus_jid
                return
            attempt += 1
            delay = backoff.delay(attempt)
            if loop.time() + delay > deadline:
                raise ConferenceRequestError(
                    f"the focus was not ready within {cfg.conference_timeout:g} s"
                )
            log.info("focus not ready for %s; retry in %g s", self.room, delay)
            await asyncio.sleep(delay)

    def _send_presence(self, *, join: bool = False) -> None:
        if not self.connection.online:
            return
        presence = self.connection.client.Presence()
        presence["to"] = self.occupant_jid
        fill_presence(presence, self.presence, join=join, password=self.password)
        cast(Any, presence).send()

    # -- our presence -------------------------------------------------------------------------

    def set_status(self, text: str | None) -> None:
        """``<status>`` in our presence: "Initializing Call", "Connected", a failure reason
        (jigasi.md §2.2)."""
        self.presence = replace(self.presence, status=text)
        if self.state is ParticipantState.JOINED:
            self._send_presence()

    def set_muted(self, muted: bool) -> None:
        """Publish our mute state: ``<SourceInfo>`` and the legacy ``<audiomuted>`` (§7)."""
        self.presence = replace(self.presence, audio_muted=muted)
        if self.state is ParticipantState.JOINED:
            self._send_presence()

    def set_display_name(self, name: str | None) -> None:
        self.presence = replace(self.presence, display_name=name)
        self.display_name = name
        if self.state is ParticipantState.JOINED:
            self._send_presence()

    async def request_mute(self, muted: bool = True, target: str | None = None) -> None:
        """Send ``<mute jid=target>`` to the focus (AV moderation, jingle.md §7): mute another
        occupant (a nick or occupant JID), or with ``muted=False`` and no target, lift a
        bridge force-mute on ourselves. Raises `RequestRefused`."""
        jid = self.occupant_jid if target is None else target
        if "/" not in jid:
            jid = f"{self.room}/{jid}"
        iq = self.connection.iq(self.focus_occupant_jid)
        build_mute(iq, target=jid, muted=muted)
        try:
            await send_iq(iq, self.config.reply_timeout)
        except IqError as exc:
            raise RequestRefused("mute request", _condition(exc), _text(exc)) from exc
        except IqTimeout as exc:
            raise RequestRefused("mute request", None) from exc

    # -- leaving --------------------------------------------------------------------------------

    async def leave(self, reason: str | None = None, wait: float = 2.0) -> None:
        """Hang up the Jingle session (session-terminate ``<success/>``), leave the MUC (with
        ``reason`` as the presence status, jigasi.md §1.9) and close the connection."""
        if self.state is ParticipantState.LEFT and not self.connection.online:
            return
        was_in_room = self.state in (ParticipantState.JOINED, ParticipantState.REJOINING)
        self.state = ParticipantState.LEFT
        if self._rejoin_task is not None:
            self._rejoin_task.cancel()
        self._run(self.session.hang_up())
        if was_in_room and self.connection.online:
            await self._send_unavailable(reason, wait)
        await self._close_media()
        for task in list(self._tasks):
            task.cancel()
        await self.connection.close(wait=min(wait, 1.0))

    async def _send_unavailable(self, reason: str | None, wait: float) -> None:
        presence = self.connection.client.Presence()
        presence["to"] = self.occupant_jid
        presence["type"] = "unavailable"
        if reason:
            presence["status"] = reason
        loop = asyncio.get_running_loop()
        self._leave_future = loop.create_future()
        cast(Any, presence).send()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._leave_future), wait)
        self._leave_future = None

    async def _close_media(self) -> None:
        media, self.media, self._media_sid = self.media, None, None
        task, self._session_task = self._session_task, None
        if task is not None and not task.done():
            task.cancel()
        if media is not None:
            try:
                await media.close()
            except Exception as exc:  # closing must finish
                log.debug("media close: %s", exc)

    # -- incoming stanzas -------------------------------------------------------------------------

    def _from_focus(self, sender: str) -> bool:
        """The focus occupant, and - when the room shows real JIDs and the conference IQ named
        the focus - the right account behind it (lib-jitsi-meet trusts only ``focusjid``)."""
        if sender != self.focus_occupant_jid:
            return False
        focus = self.occupants.get(self.config.focus_nick)
        if focus is not None and focus.real_jid and self.focus_jid:
            return focus.real_jid.split("/", 1)[0] == self.focus_jid.split("/", 1)[0]
        return True

    def _on_jingle(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        sender = str(iq["from"])
        try:
            request = parse_jingle(iq["jingle"])
        except StanzaParseError as exc:
            log.info("malformed Jingle from %s: %s", sender, exc.reason)
            self._reply_error(iq, ErrorReply(exc.condition, "modify", exc.reason))
            return
        if self.state not in (ParticipantState.JOINED, ParticipantState.JOINING):
            self._reply_error(iq, ErrorReply("item-not-found", unknown_session=True))
            return
        answer, actions = self.session.receive(sender, request, from_focus=self._from_focus(sender))
        if answer is None:
            reply(iq).send()  # at once: Jicofo waits for it (jingle.md §3.1)
        else:
            self._reply_error(iq, answer)
        self._run(actions)

    def _reply_error(self, iq: Iq, error: ErrorReply) -> None:
        answer = reply(iq)
        answer["type"] = "error"
        answer["error"]["type"] = error.type
        answer["error"]["condition"] = error.condition
        if error.text:
            answer["error"]["text"] = error.text
        if error.unknown_session:
            answer["error"].enable("unknown_session")
        answer.send()

    def _on_mute(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        sender = str(iq["from"])
        if not self._from_focus(sender):
            # Only the focus may push a mute (jingle.md §7).
            self._reply_error(
                iq, ErrorReply("forbidden", "auth", "mute is accepted from the focus")
            )
            return
        try:
            request = parse_mute(iq)
        except StanzaParseError as exc:
            self._reply_error(iq, ErrorReply(exc.condition, "modify", exc.reason))
            return
        reply(iq).send()
        if request.muted:
            self.emit("mute_requested", MuteRequested(request.actor))
        else:
            log.debug("remote unmute from %s ignored (the phone user's choice)", sender)

    def _may_hang_up(self, sender: JID) -> bool:
        """The focus, or a current occupant of our room other than ourselves (jigasi.md §3.5:
        the web client sends the hangup to the ``ref`` occupant JID, and Prosody delivers it
        from the sender's occupant JID; a non-occupant cannot send through the room)."""
        if self._from_focus(str(sender)):
            return True
        return (
            sender.bare == self.room
            and bool(sender.resource)
            and sender.resource != self.nick
            and sender.resource in self.occupants
        )

    def _on_hangup(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        sender = iq["from"]
        if not self._may_hang_up(sender):
            log.info("Rayo hangup from %s refused: not an occupant of %s", sender, self.room)
            self._reply_error(
                iq, ErrorReply("forbidden", "auth", "hangup is accepted from the room's occupants")
            )
            return
        reply(iq).send()
        self.emit("hangup_requested", str(sender))

    def _on_disco(self, stanza: StanzaBase) -> None:
        """disco#info with or without ``node`` (jingle.md §2.4): Jicofo asks with
        ``<caps node>#<ver>``; another node is unknown (XEP-0030 §3.1 item-not-found)."""
        iq = cast(Iq, stanza)
        query = iq["disco_info_query"]
        node = str(query.xml.attrib.get("node", ""))
        if node and node != f"{self.config.caps_node}#{self.caps_ver}":
            self._reply_error(iq, ErrorReply("item-not-found"))
            return
        answer = reply(iq)
        result = answer["disco_info_query"]
        if node:
            result["node"] = node
        fill_disco_info(result, self.disco)
        answer.send()

    def _on_presence(self, stanza: StanzaBase) -> None:
        presence = cast(Presence, stanza)
        sender = presence["from"]
        if sender.bare != self.room or not sender.resource:
            return
        kind = presence["type"]
        nick = sender.resource
        occupant = parse_occupant(presence)
        if nick == self.nick or STATUS_SELF in occupant.status_codes:
            self._own_presence(presence, occupant, kind)
            return
        if kind == "error":
            return
        if kind == "unavailable":
            known = self.occupants.pop(nick, None)
            if known is None:
                return
            self._run(self.session.occupant_left(nick))
            self.emit("occupant_left", replace(known, available=False))
            if nick == self.config.focus_nick:
                self.emit("focus_left", known)
            return
        new = nick not in self.occupants
        self.occupants[nick] = occupant
        if new:
            self.emit("occupant_joined", occupant)
            if nick == self.config.focus_nick:
                self.emit("focus_joined", occupant)

    def _own_presence(self, presence: Presence, occupant: Occupant, kind: str) -> None:
        join = self._join_future
        if kind == "error":
            if join is not None and not join.done():
                join.set_exception(join_error(presence, password_given=self.password is not None))
            return
        if kind == "unavailable":
            leave = self._leave_future
            if leave is not None and not leave.done():
                leave.set_result(None)
                return
            if join is not None and not join.done():
                join.set_exception(JoinError("removed while joining"))
                return
            if self.state is ParticipantState.JOINED:
                self._removed(parse_departure(presence))
            return
        self.me = occupant
        if join is not None and not join.done():
            join.set_result(occupant)

    def _removed(self, departure: Departure) -> None:
        """Kicked, banned or the room destroyed: the session ends, we stay out."""
        self.state = ParticipantState.LEFT
        self._run(self.session.reset(JingleReason("gone", f"{departure.kind} from the room")))
        self.occupants = {}
        self.emit("room_destroyed" if departure.kind == "destroyed" else "kicked", departure)
        self._spawn(self.connection.close(wait=0.5))

    # -- the session's actions ------------------------------------------------------------------

    def _run(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, StartSession):
                self._start(action)
            elif isinstance(action, StopMedia):
                if action.sid == self._media_sid:
                    self._spawn(self._close_media())
            elif isinstance(action, SendTerminate):
                self._send_terminate(action)
            elif isinstance(action, SourcesAdded):
                if self.media is not None:
                    self.media.add_sources(action.sources)
                self.emit("sources_added", action.sources)
            elif isinstance(action, SourcesRemoved):
                if self.media is not None:
                    self.media.remove_sources(s.ssrc for s in action.sources)
                self.emit("sources_removed", action.sources)
            elif isinstance(action, SessionAccepted):
                self.emit("session_accepted", action.sid)
            elif isinstance(action, SessionEnded):
                self.emit(
                    "session_terminated",
                    SessionTerminated(
                        action.sid, action.reason, action.by_remote, action.restart_requested
                    ),
                )
            elif isinstance(action, Rejoin):
                self._schedule_rejoin(action)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start(self, action: StartSession) -> None:
        media = self.media_factory()
        sid = action.offer.sid
        self.media, self._media_sid = media, sid
        media.add_listener("state", lambda state: self._media_state(sid, state))
        media.add_listener("dtmf", lambda source, digit: self.emit("dtmf", source, digit))
        media.add_sources(self.session.sources.values())
        self.emit(
            "session_started",
            SessionStarted(
                sid=sid,
                media=media,
                sources=tuple(self.session.sources.values()),
                bridge_session=action.offer.bridge_session,
                local_ssrc=action.local_ssrc,
                start_muted_audio=action.offer.start_muted_audio,
            ),
        )
        self._session_task = self._spawn(self._answer(media, action.offer, action.local_ssrc))

    async def _answer(self, media: MediaTransport, offer: JingleRequest, ssrc: int) -> None:
        cfg = self.config
        sid = offer.sid
        try:
            local = await media.prepare()
        except Exception as exc:  # any media error ends the session the same way
            log.warning("cannot answer %s: %s", sid, exc)
            self._run(self.session.answer_failed(sid, str(exc)))
            return
        audio = LocalAudio.for_nick(self.nick, ssrc)
        if cfg.send_transport_info:
            info = self.connection.iq(self.focus_occupant_jid)
            build_transport_info(info["jingle"], offer=offer, local=local)
            with contextlib.suppress(IqError, IqTimeout):
                await send_iq(info, cfg.reply_timeout)  # Jigasi waits for it (jigasi.md §2.3)
        accept = self.connection.iq(self.focus_occupant_jid)
        build_session_accept(
            accept["jingle"], offer=offer, local=local, audio=audio, responder=self.connection.jid
        )
        accepted = asyncio.ensure_future(send_iq(accept, cfg.reply_timeout))
        assert offer.transport is not None and offer.audio is not None  # checked by the session
        connecting = asyncio.ensure_future(media.connect(offer.transport, offer.audio, ssrc))
        error: str | None = None
        try:
            await accepted
        except IqError as exc:
            error = _condition(exc) or "error"
        except IqTimeout:
            log.info("no answer to session-accept %s: counted as success", sid)
        if error is not None:
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
            self._run(self.session.accept_answered(sid, error))
            return
        self._run(self.session.accept_answered(sid, None))
        try:
            await connecting
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport raises its own error type
            log.warning("media of %s failed: %s", sid, exc)
            self._run(self.session.media_failed(sid, str(exc)))

    def _media_state(self, sid: str, state: str) -> None:
        if sid != self._media_sid:
            return
        self.emit("media_state", state)
        if state == "failed" and self.session.state is SessionState.ACTIVE:
            self._run(self.session.media_failed(sid, "ICE/DTLS failed"))

    def _send_terminate(self, action: SendTerminate) -> None:
        """Queued at once, so that it precedes a leave presence sent right after."""
        if not self.connection.online:
            return
        iq = self.connection.iq(action.to)
        build_session_terminate(
            iq["jingle"],
            sid=action.sid,
            reason=action.reason,
            bridge_session_id=action.bridge_session_id,
            restart=action.restart,
        )
        answer = send_iq_nowait(iq, self.config.reply_timeout)
        self._spawn(_log_answer(answer, f"session-terminate {action.sid}"))

    # -- re-joining -----------------------------------------------------------------------------

    def _schedule_rejoin(self, action: Rejoin) -> None:
        if self.state is not ParticipantState.JOINED or self._rejoin_task is not None:
            return
        self._rejoin_task = self._spawn(self._rejoin(action.reason, action.fresh_ssrc))

    async def _rejoin(self, reason: str, fresh_ssrc: bool) -> None:
        log.info("re-joining %s: %s", self.room, reason)
        self.state = ParticipantState.REJOINING
        try:
            await self._send_unavailable(None, 2.0)
            self._run(self.session.reset(JingleReason("gone", reason)))
            if fresh_ssrc:
                self.session.local_ssrc = random_ssrc()
            await self._rejoin_room()
        finally:
            self._rejoin_task = None

    async def _rejoin_room(self) -> None:
        try:
            me = await self._join_room()
        except XmppError as exc:
            log.warning("re-join of %s failed: %s", self.room, exc)
            self.state = ParticipantState.LEFT
            self.emit("failed", exc)
            return
        self.state = ParticipantState.JOINED
        self.emit("rejoined", me)

    def _connection_lost(self, reason: str) -> None:
        if self.state in (ParticipantState.LEFT, ParticipantState.NEW):
            return
        self.state = ParticipantState.REJOINING
        self._run(self.session.reset(JingleReason("connectivity-error", "XMPP connection lost")))
        self.occupants = {}
        join = self._join_future
        if join is not None and not join.done():
            join.set_exception(JoinError("connection lost while joining"))
        self.emit("connection_lost", reason)

    def _connection_restored(self, jid: str) -> None:
        if self.state is not ParticipantState.REJOINING:
            return
        self.emit("connection_restored")
        if self._rejoin_task is None:
            # A new anonymous JID gives a new nick: the old occupant may linger (jigasi.md §1.9).
            self.session.local_ssrc = random_ssrc()
            self._rejoin_task = self._spawn(self._restore())

    async def _restore(self) -> None:
        try:
            await self._rejoin_room()
        finally:
            self._rejoin_task = None


# Presence <features> (jingle.md §2.3, jigasi.md §2.2): the Jigasi marker, the dial pad and
# audio-mute, when they are advertised at all.
_PRESENCE_FEATURES = frozenset(
    {
        "http://jitsi.org/protocol/jigasi",
        "urn:xmpp:jingle:dtmf:0",
        "http://jitsi.org/protocol/audio-mute",
    }
)


async def _log_answer(answer: asyncio.Future[Iq], what: str) -> None:
    try:
        await answer
    except (IqError, IqTimeout) as exc:
        log.info("%s not acknowledged: %s", what, exc)


def _condition(exc: IqError) -> str | None:
    return str(exc.iq["error"]["condition"] or "") or None


def _text(exc: IqError) -> str | None:
    return str(exc.iq["error"]["text"] or "") or None


__all__ = [
    "ConferenceParticipant",
    "MuteRequested",
    "ParticipantState",
    "SessionStarted",
    "SessionTerminated",
    "random_ssrc",
]
