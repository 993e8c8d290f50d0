"""The brewery: how Jicofo finds us for dial-out (reference/jigasi.md §3.1-§3.3, jingle.md §9).

An authenticated account (``jigasi@auth.<domain>``) joins the brewery MUC
(``JigasiBrewery@internal.auth.<domain>``) with its XMPP resource as nick and publishes its load
as a colibri ``<stats>`` presence (§3.2). Jicofo treats every brewery occupant with stats as an
instance, picks the one with the fewest ``participants`` that is not shutting down and supports
SIP, and relays a Rayo ``<dial>`` to its occupant JID; Prosody delivers it to our connection
from Jicofo's occupant JID in the brewery (``JigasiBrewery@internal.auth…/focus``), which is why
the allowed sender defaults to the brewery room's bare JID (§3.3).

Sans-IO: `BreweryStats` with `fill_stats` / `parse_stats`, `BreweryConfig`. The shell:
`BreweryMember`, one c2s connection (`xmpp.connection.XmppConnection`) that keeps retrying its
login with back-off (a wrong password included, the reason in `problem`), re-joins after a
reconnect or a removal, re-publishes the latest stats, and answers Rayo ``dial`` / ``hangup``
through the gateway's coroutines ``on_dial`` / ``on_hangup``.

Events (pyee): ``"joined"`` (str: our occupant JID; after every (re-)join), ``"left"`` (str: why
we are no longer in the brewery).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from pyee.asyncio import AsyncIOEventEmitter
from slixmpp import JID, Iq, Presence
from slixmpp.jid import InvalidJID
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp import stanzas
from xmpp.caps import DISCO_INFO, GATEWAY_IDENTITY, JIGASI, PING, DiscoInfo, fill_disco_info
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.connection import XmppConnection, reply
from xmpp.errors import ConnectionFailed, JoinError, JoinTimeout, StanzaParseError
from xmpp.presence import join_error, parse_departure
from xmpp.rayo import DialRefused, DialRequest, build_ref, fill_error, parse_dial

log = logging.getLogger("pygasi.xmpp.brewery")

# disco#info of the brewery connection: Jigasi adds its marker to Smack's defaults (§3.1).
BREWERY_DISCO_INFO = DiscoInfo((GATEWAY_IDENTITY,), (DISCO_INFO, PING, JIGASI))

DialHandler = Callable[[DialRequest, str], Awaitable[str]]
HangupHandler = Callable[[str, str], Awaitable[None]]


# --- stats (jigasi.md §3.2) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreweryStats:
    """What an instance tells Jicofo. ``conferences``: sessions whose room is joined;
    ``participants``: the sum over those rooms of the occupants but the focus (not the number
    of calls: Jicofo picks the lowest); ``stress_level``: conferences / threshold (Jicofo does
    not use it); ``region``: only published when set."""

    conferences: int = 0
    participants: int = 0
    graceful_shutdown: bool = False
    stress_level: float = 0.0
    region: str | None = None
    version: str = ""
    supports_sip: bool = True
    supports_transcription: bool = False


def _bool(value: bool) -> str:
    return "true" if value else "false"


def stats_items(stats: BreweryStats) -> list[tuple[str, str]]:
    """The ``<stat name value>`` pairs in Jigasi's order (jigasi.md §3.2)."""
    items = [
        ("conferences", str(stats.conferences)),
        ("participants", str(stats.participants)),
        ("graceful_shutdown", _bool(stats.graceful_shutdown)),
        ("stress_level", repr(float(stats.stress_level))),  # like Java's Double.toString
    ]
    if stats.region:
        items.append(("region", stats.region))
    items += [
        ("version", stats.version),
        ("supports_transcription", _bool(stats.supports_transcription)),
        ("supports_sip", _bool(stats.supports_sip)),
    ]
    return items


def fill_stats(presence: Presence, stats: BreweryStats) -> None:
    """Add ``<stats xmlns="http://jitsi.org/protocol/colibri">`` with its ``<stat>`` children to
    an (addressed) presence stanza."""
    element = presence["colibri_stats"]
    for name, value in stats_items(stats):
        stat = stanzas.ColibriStat()
        # Straight into the attributes: slixmpp drops an attribute set to "" (an empty
        # version is still published).
        stat.xml.attrib.update(name=name, value=value)
        element.append(stat)


def parse_stats(presence: Presence) -> BreweryStats | None:
    """Jicofo's reading of an occupant's stats (tolerant: a bad value keeps its default);
    None when the presence has no colibri ``<stats>``."""
    element = presence.get_plugin("colibri_stats", check=True)
    if element is None:
        return None
    values: dict[str, str] = {}
    for child in element.xml:
        if child.tag == f"{{{stanzas.NS_COLIBRI}}}stat" and "name" in child.attrib:
            values[str(child.attrib["name"])] = str(child.attrib.get("value", ""))
    default = BreweryStats()

    def integer(name: str, fallback: int) -> int:
        try:
            return int(values[name])
        except (KeyError, ValueError):
            return fallback

    def number(name: str, fallback: float) -> float:
        try:
            value = float(values[name])
        except (KeyError, ValueError):
            return fallback
        return value if math.isfinite(value) else fallback

    def flag(name: str, fallback: bool) -> bool:
        value = values.get(name)
        return fallback if value is None else value.strip().lower() == "true"

    return BreweryStats(
        conferences=integer("conferences", default.conferences),
        participants=integer("participants", default.participants),
        graceful_shutdown=flag("graceful_shutdown", default.graceful_shutdown),
        stress_level=number("stress_level", default.stress_level),
        region=values.get("region") or None,
        version=values.get("version", default.version),
        supports_sip=flag("supports_sip", default.supports_sip),
        supports_transcription=flag("supports_transcription", default.supports_transcription),
    )


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BreweryConfig:
    """The brewery account (jigasi.md §3.1). ``room``: the bare brewery room JID;
    ``username``: a bare JID (a random resource is generated, as Jigasi's
    ``AUTO_GENERATE_RESOURCE``) or a full JID (its resource is the nick); ``allowed_jid``: whose
    dials and hangups are accepted (a bare JID; default the brewery room's, §3.3)."""

    room: str
    username: str
    password: str
    server: XmppServer = field(default_factory=XmppServer)
    allowed_jid: str | None = None
    # Timers (seconds), as in ParticipantConfig.
    connect_timeout: float = 10.0
    join_timeout: float = 10.0
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    reconnect_backoff: tuple[float, float] = (0.5, 30.0)  # first and maximum delay

    def __post_init__(self) -> None:
        for what, value in (("room", self.room), ("username", self.username)):
            try:
                jid = JID(value)
            except InvalidJID as exc:
                raise ValueError(f"brewery {what} {value!r} is not a JID: {exc}") from None
            if not jid.user:
                raise ValueError(f"brewery {what} {value!r} needs a local part")
        if JID(self.room).resource:
            raise ValueError(f"brewery room {self.room!r} must be a bare JID")
        if self.allowed_jid is not None:
            try:
                JID(self.allowed_jid)
            except InvalidJID as exc:
                raise ValueError(f"allowed_jid {self.allowed_jid!r} is not a JID: {exc}") from None

    @property
    def room_jid(self) -> str:
        """The room, normalised as the server echoes it (nodeprep lower-cases it)."""
        return str(JID(self.room).bare)

    @property
    def allowed(self) -> str:
        return str(JID(self.allowed_jid).bare) if self.allowed_jid else self.room_jid

    def participant_config(self) -> ParticipantConfig:
        """The connection settings (`XmppConnection` takes a ParticipantConfig)."""
        jid = JID(self.username)
        return ParticipantConfig(
            domain=jid.domain,
            server=self.server,
            username=jid.bare,
            password=self.password,
            connect_timeout=self.connect_timeout,
            join_timeout=self.join_timeout,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            reconnect_backoff=self.reconnect_backoff,
        )


def generated_resource() -> str:
    """A resource (and brewery nick) like Jigasi's auto-generated ones: prefix and random."""
    return f"pygasi-{secrets.token_hex(4)}"


# --- the member --------------------------------------------------------------------------------


class BreweryMember(AsyncIOEventEmitter):
    """Our instance in the brewery: `start()`, `publish(stats)` on every change, `stop()`.

    Set ``on_dial`` (called with the request and the sender's full JID once the sender passed
    the allowed-JID check; returns the ``ref`` URI, or raises `DialRefused`) and ``on_hangup``
    (called with the IQ's ``to`` and the sender's JID). They must answer in time themselves:
    Jicofo gives up after 15 s and retries elsewhere (jingle.md §9), Jigasi answers within its
    10 s MUC join timeout."""

    def __init__(self, config: BreweryConfig, stats: BreweryStats | None = None) -> None:
        super().__init__()
        self.config = config
        self.resource = JID(config.username).resource or generated_resource()
        self.room = config.room_jid
        self.allowed_jid = config.allowed
        self.connection = XmppConnection(config.participant_config(), resource=self.resource)
        self.on_dial: DialHandler | None = None
        self.on_hangup: HangupHandler | None = None
        self._stats = stats if stats is not None else BreweryStats()
        self._published: BreweryStats | None = None
        self._joined = False
        self._problem: str | None = "not started"
        self._started = False
        self._closing = False
        self._settled = asyncio.Event()  # the first attempt is over (joined, or a problem)
        self._joined_event = asyncio.Event()
        self._join_future: asyncio.Future[None] | None = None
        self._leave_future: asyncio.Future[None] | None = None
        self._login_task: asyncio.Task[None] | None = None
        self._join_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.attempts = 0  # logins and joins tried (for tests and logs)
        client = self.connection.client
        client.register_handler(
            Callback("pygasi brewery dial", StanzaPath("iq@type=set/rayo_dial"), self._on_dial)
        )
        client.register_handler(
            Callback(
                "pygasi brewery hangup", StanzaPath("iq@type=set/rayo_hangup"), self._on_hangup
            )
        )
        client.register_handler(
            Callback(
                "pygasi brewery disco#info",
                StanzaPath("iq@type=get/disco_info_query"),
                self._on_disco,
            )
        )
        client.add_event_handler("presence", self._on_presence)
        self.connection.on("online", self._online)
        self.connection.on("offline", self._offline)
        self.connection.on("reconnect_failed", self._reconnect_failed)

    # -- state ----------------------------------------------------------------------------------

    @property
    def nick(self) -> str:
        """Our nick in the brewery: the XMPP resource (jigasi.md §3.1)."""
        return self.resource

    @property
    def occupant_jid(self) -> str:
        return f"{self.room}/{self.nick}"

    @property
    def joined(self) -> bool:
        return self._joined

    @property
    def problem(self) -> str | None:
        """Why we are not in the brewery (None when joined): for the health check."""
        return None if self._joined else self._problem

    @property
    def stats(self) -> BreweryStats:
        """The latest stats given (published when joined)."""
        return self._stats

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Log in, join the brewery and publish the stats. Returns once the first attempt is
        over, joined or not: failures (an unreachable server, a wrong password, a refused
        join) are retried in the background with back-off, the reason in `problem`."""
        if self._started:
            raise RuntimeError("BreweryMember.start() called twice")
        self._started = True
        self._problem = "connecting"
        self._login_task = self._spawn(self._login())
        await self._settled.wait()

    async def wait_joined(self, timeout: float | None = None) -> None:
        """Wait until we are in the brewery (raises TimeoutError)."""
        await asyncio.wait_for(self._joined_event.wait(), timeout)

    async def stop(self, wait: float = 1.0) -> None:
        """Leave the brewery and close the connection. Dial and hangup handlers still running
        are cancelled (without an answer: Jicofo times out and tries another instance)."""
        if self._closing:
            return
        self._closing = True
        self._settled.set()  # a start() still waiting for its first attempt returns
        for task in (self._login_task, self._join_task, *self._tasks):
            if task is not None:
                task.cancel()
        if self._joined and self.connection.online:
            presence = self.connection.client.Presence()
            presence["to"] = self.occupant_jid
            presence["type"] = "unavailable"
            self._leave_future = asyncio.get_running_loop().create_future()
            cast(Any, presence).send()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._leave_future), wait)
            self._leave_future = None
        self._set_left("stopped")
        await self.connection.close(wait=min(wait, 1.0))

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # A bug, not a network condition: make it visible (and never leave start() waiting).
        log.error("brewery task failed", exc_info=task.exception())
        self._fail(f"internal error: {task.exception()!r}")

    def _backoff(self, delay: float) -> tuple[float, float]:
        """The jittered sleep for ``delay`` and the next delay."""
        maximum = self.config.reconnect_backoff[1]
        return delay * random.uniform(0.8, 1.2), min(maximum, delay * 2)

    def _fail(self, reason: str) -> None:
        if reason != self._problem:
            log.warning("brewery %s: %s", self.room, reason)
        self._problem = reason
        self._settled.set()

    async def _login(self) -> None:
        """Log in until it works; the connection then re-establishes itself (`_online`)."""
        delay = self.config.reconnect_backoff[0]
        while not self._closing:
            self.attempts += 1
            try:
                await self.connection.start()  # emits "online": `_online` joins
            except ConnectionFailed as exc:  # AuthenticationFailed included: keep trying
                self._fail(f"XMPP login failed: {exc}")
                pause, delay = self._backoff(delay)
                await asyncio.sleep(pause)
                continue
            return

    def _online(self, _jid: str) -> None:
        if self._closing:
            return
        self._start_joining(0.0)

    def _start_joining(self, first_delay: float) -> None:
        if self._join_task is not None and not self._join_task.done():
            self._join_task.cancel()  # sleeping after a failure: start afresh
        self._join_task = self._spawn(self._join_loop(first_delay))

    async def _join_loop(self, first_delay: float) -> None:
        if first_delay:
            await asyncio.sleep(first_delay)
        delay = self.config.reconnect_backoff[0]
        while not self._closing and self.connection.online and not self._joined:
            self.attempts += 1
            try:
                await self._join()
            except JoinError as exc:
                self._fail(f"cannot join the brewery {self.room}: {exc}")
                pause, delay = self._backoff(delay)
                await asyncio.sleep(pause)

    async def _join(self) -> None:
        """One MUC join with the stats in the join presence (§3.1: join, then stats)."""
        self._join_future = asyncio.get_running_loop().create_future()
        self._send_presence(join=True)
        try:
            await asyncio.wait_for(asyncio.shield(self._join_future), self.config.join_timeout)
        except TimeoutError:
            raise JoinTimeout(self.config.join_timeout) from None
        finally:
            self._join_future = None
        self._joined = True
        self._problem = None
        self._joined_event.set()
        self._settled.set()
        log.info("joined the brewery as %s", self.occupant_jid)
        self.emit("joined", self.occupant_jid)
        if self._published != self._stats:
            self._send_presence()  # publish() was called while we were joining

    def _send_presence(self, *, join: bool = False) -> None:
        if not self.connection.online:
            return
        presence = self.connection.client.Presence()
        presence["to"] = self.occupant_jid
        if join:
            presence.enable("muc_join")
        fill_stats(presence, self._stats)
        self._published = self._stats
        cast(Any, presence).send()

    def publish(self, stats: BreweryStats) -> None:
        """Re-publish the stats presence when ``stats`` differ from the last ones (§3.2: on
        every session added or removed, room joined, graceful-shutdown toggle); a no-op when
        equal. Not joined: kept for the next join."""
        if stats == self._stats:
            return
        self._stats = stats
        if self._joined:
            self._send_presence()

    def _set_left(self, reason: str) -> None:
        was_joined, self._joined = self._joined, False
        self._joined_event.clear()
        self._problem = reason
        if was_joined:
            self.emit("left", reason)

    # -- presence -------------------------------------------------------------------------------

    def _on_presence(self, stanza: StanzaBase) -> None:
        presence = cast(Presence, stanza)
        sender = presence["from"]
        if sender.bare != self.room or sender.resource != self.nick:
            return  # another instance, or Jicofo
        kind = presence["type"]
        join = self._join_future
        if kind == "error":
            if join is not None and not join.done():
                join.set_exception(join_error(presence, password_given=False))
            return
        if kind == "unavailable":
            leave = self._leave_future
            if leave is not None and not leave.done():
                leave.set_result(None)
                return
            if join is not None and not join.done():
                join.set_exception(JoinError("removed from the brewery while joining"))
                return
            if self._joined and not self._closing:
                departure = parse_departure(presence)
                detail = f": {departure.reason}" if departure.reason else ""
                self._set_left(f"out of the brewery {self.room} ({departure.kind}{detail})")
                # A Prosody shutdown sends this before closing the stream; the join loop then
                # stops at the connection loss, and `_online` starts it again.
                self._start_joining(self.config.reconnect_backoff[0])
            return
        if join is not None and not join.done():
            join.set_result(None)

    # -- the connection -------------------------------------------------------------------------

    def _offline(self, reason: str) -> None:
        self._set_left(f"XMPP connection lost: {reason}")
        join = self._join_future
        if join is not None and not join.done():
            join.set_exception(JoinError("connection lost while joining"))

    def _reconnect_failed(self, error: ConnectionFailed) -> None:
        self._fail(f"XMPP reconnect failed: {error}")

    # -- IQs ------------------------------------------------------------------------------------

    def _allowed(self, sender: JID) -> bool:
        """jigasi.md §3.3: the bare ``from`` must equal the allowed JID."""
        return str(sender.bare) == self.allowed_jid

    def _answer_error(self, iq: Iq, condition: str, text: str | None) -> None:
        if not self.connection.online:
            return
        answer = reply(iq)
        fill_error(answer, condition, text)
        answer.send()

    def _on_dial(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        sender = iq["from"]
        if not self._allowed(sender):
            log.warning("Rayo dial from %s refused: only %s may dial", sender, self.allowed_jid)
            self._answer_error(iq, "forbidden", "not allowed to dial")
            return
        try:
            request = parse_dial(iq)
        except StanzaParseError as exc:
            log.info("malformed Rayo dial from %s: %s", sender, exc.reason)
            self._answer_error(iq, exc.condition, exc.reason)
            return
        handler = self.on_dial
        if handler is None:
            self._answer_error(iq, "service-unavailable", "dial-out is not enabled")
            return
        self._spawn(self._dial(iq, request, str(sender), handler))

    async def _dial(self, iq: Iq, request: DialRequest, sender: str, handler: DialHandler) -> None:
        try:
            uri = await handler(request, sender)
        except DialRefused as exc:
            log.info("dial to %s refused: %s", request.to, exc)
            self._answer_error(iq, exc.condition, exc.text)
            return
        except Exception as exc:  # the gateway's failure: the dial fails, we stay up
            log.exception("dial to %s failed", request.to)
            self._answer_error(iq, "internal-server-error", str(exc) or type(exc).__name__)
            return
        if self.connection.online:
            answer = reply(iq)
            build_ref(answer, uri)
            answer.send()

    def _on_hangup(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        sender = iq["from"]
        if not self._allowed(sender):
            log.warning("Rayo hangup from %s refused: only %s may", sender, self.allowed_jid)
            self._answer_error(iq, "forbidden", "not allowed to hang up")
            return
        handler = self.on_hangup
        if handler is None:
            self._answer_error(iq, "service-unavailable", "dial-out is not enabled")
            return
        self._spawn(self._hangup(iq, str(iq["to"]), str(sender), handler))

    async def _hangup(self, iq: Iq, to: str, sender: str, handler: HangupHandler) -> None:
        try:
            await handler(to, sender)
        except DialRefused as exc:
            self._answer_error(iq, exc.condition, exc.text)
            return
        except Exception as exc:
            log.exception("hangup of %s failed", to)
            self._answer_error(iq, "internal-server-error", str(exc) or type(exc).__name__)
            return
        if self.connection.online:
            reply(iq).send()

    def _on_disco(self, stanza: StanzaBase) -> None:
        """disco#info of the brewery connection, with the Jigasi marker (§3.1)."""
        iq = cast(Iq, stanza)
        node = str(iq["disco_info_query"].xml.attrib.get("node", ""))
        if node:
            self._answer_error(iq, "item-not-found", None)  # we announce no caps node here
            return
        answer = reply(iq)
        fill_disco_info(answer["disco_info_query"], BREWERY_DISCO_INFO)
        answer.send()


__all__ = [
    "BREWERY_DISCO_INFO",
    "BreweryConfig",
    "BreweryMember",
    "BreweryStats",
    "DialHandler",
    "HangupHandler",
    "fill_stats",
    "generated_resource",
    "parse_stats",
    "stats_items",
]
