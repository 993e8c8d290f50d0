"""A Jicofo emulator for tests, faithful to reference/jingle.md.

* ``focus.<domain>``: an external component (XEP-0114) answering the conference IQ (§2.2) with
  ``ready="true"`` and ``focusjid`` (optionally ``ready="false"`` a few times first); the room is
  created and joined by the focus occupant before the answer, as Jicofo does.
* the ``focus`` occupant (``focus@auth.<domain>``, a Prosody admin, so it owns the rooms): joins
  first, configures the room through the MUC owner form (whois anyone, optional password,
  members-only), discovers each participant's features with disco#info (with the caps node,
  §2.4), and once ``min_participants`` non-focus occupants are in (§2.5: the count is real,
  fake web participants are occupants with their own presence) sends every not yet invited
  participant a Jicofo-shaped ``session-initiate`` (§3.1) whose transport comes from a bridge
  allocation (`FakeBridge` here, `tests.xmpp.bridge.BridgeEndpoint` for media);
* afterwards: ``source-add`` / ``source-remove`` as fake participants come and go (or on
  demand), the accepted sources of one leg signalled to the others, mute IQs and
  session-terminate on demand, a re-invite after ``session-terminate`` with
  ``<bridge-session restart="true">``;
* every stanza its connections send and receive is recorded (`JicofoEmulator.stanzas`);
* dial-out (jingle.md §9 "Brewery selection", "Rayo dial-out relay"): on `join_brewery` the
  focus joins ``JigasiBrewery@internal.auth.<domain>`` as ``focus``, tracks each occupant that
  publishes colibri ``<stats>`` as a Jigasi instance (keyed by occupant JID) and records every
  stats presence; `dial` builds the dial as lib-jitsi-meet does, picks the instance with the
  fewest participants (not shutting down, SIP supported, the bridge's region first), relays
  it to that occupant JID, and on an error or a 15 s timeout tries up to 2 others; a fake web
  participant can send the Rayo hangup to a ``ref`` (`rayo_hangup`).

Connections reconnect after a Prosody restart (the focus rejoins its rooms).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from slixmpp import JID, ComponentXMPP, Iq, Presence
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import ET, StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from tests.xmpp.prosody import Prosody
from xmpp import stanzas
from xmpp.brewery import BreweryStats, parse_stats
from xmpp.caps import JINGLE_RTP_AUDIO
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.connection import XmppConnection, reply, send_iq, stop_send_task
from xmpp.jingle import (
    SESSION_ACCEPT,
    SESSION_INITIATE,
    SESSION_TERMINATE,
    SOURCE_ADD,
    SOURCE_REMOVE,
    TRANSPORT_INFO,
    JingleReason,
    JingleRequest,
    add_bundle_group,
    add_payload_type,
    add_source,
    add_transport,
    build_session_terminate,
    build_sources,
    parse_jingle,
)
from xmpp.presence import LocalPresence, Occupant, fill_presence, parse_occupant, random_nick
from xmpp.rayo import DialRequest, build_dial, build_hangup, ref_jid
from xmpp.transport_info import (
    AUDIO_LEVEL_URI,
    DtlsFingerprint,
    IceCandidate,
    MediaSource,
    PayloadType,
    TransportDescription,
)

log = logging.getLogger("tests.jicofo")

FOCUS_NICK = "focus"
# Jicofo's default audio offer (jingle.md §0 items 3-4, §3.1).
OPUS = PayloadType(111, "opus", 48000, 2, (("minptime", "10"), ("useinbandfec", "1")))
TELEPHONE_EVENT = PayloadType(126, "telephone-event", 8000)
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
VIDEO = "urn:xmpp:jingle:apps:rtp:video"
SCTP = "urn:xmpp:jingle:transports:dtls-sctp:1"


class BridgeAllocation(Protocol):
    """The bridge side of one participant's session (what Jicofo allocates by colibri2)."""

    async def prepare(self) -> TransportDescription: ...

    async def connect(self, remote: TransportDescription) -> None: ...

    def feedback_source(self) -> MediaSource: ...

    async def close(self) -> None: ...


class FakeBridge:
    """A bridge allocation without media: a fixed-looking JVB transport (§3.1: one UDP host
    candidate on port 10000, fingerprint ``actpass``, a colibri web-socket URL)."""

    def __init__(self) -> None:
        self.ufrag = secrets.token_hex(7)
        self.pwd = secrets.token_hex(13)
        self.feedback_ssrc = 1 + secrets.randbelow(0xFFFFFFFE)
        self.connected_with: TransportDescription | None = None
        self.closed = False

    async def prepare(self) -> TransportDescription:
        fingerprint = ":".join(f"{b:02X}" for b in secrets.token_bytes(32))
        return TransportDescription(
            ufrag=self.ufrag,
            pwd=self.pwd,
            candidates=(
                IceCandidate("1", 1, "udp", 2130706431, "198.51.100.7", 10000, "host", 0, "a1"),
                IceCandidate(
                    "2",
                    1,
                    "udp",
                    1694498815,
                    "203.0.113.9",
                    10000,
                    "srflx",
                    0,
                    "a2",
                    0,
                    "198.51.100.7",
                    10000,
                ),
            ),
            fingerprints=(DtlsFingerprint("sha-256", fingerprint, "actpass"),),
            websocket_url=f"wss://meet.test/colibri-ws/default-id/{uuid.uuid4().hex}/x?pwd=y",
        )

    async def connect(self, remote: TransportDescription) -> None:
        self.connected_with = remote

    def feedback_source(self) -> MediaSource:
        return MediaSource(
            self.feedback_ssrc, "jvb-a0", "jvb", "mixedmslabel mixedlabelaudio0", "audio"
        )

    async def close(self) -> None:
        self.closed = True


BridgeFactory = Callable[[str], Awaitable[BridgeAllocation]]


async def fake_bridge(nick: str) -> BridgeAllocation:
    return FakeBridge()


@dataclass(frozen=True)
class Recorded:
    """One stanza an emulator connection sent (``out``) or received (``in``)."""

    direction: str
    connection: str  # "focus", "component", or a fake participant's nick
    xml: ET.Element

    @property
    def text(self) -> str:
        return ET.tostring(self.xml, encoding="unicode")


@dataclass
class Invite:
    """One participant's Jingle session with the emulated focus."""

    room: str
    nick: str
    sid: str
    bridge: BridgeAllocation
    offer_transport: TransportDescription
    bridge_session_id: str
    initiate: ET.Element | None = None
    accept: JingleRequest | None = None
    accept_xml: ET.Element | None = None
    transport_infos: list[JingleRequest] = field(default_factory=list)
    transport_info_xml: list[ET.Element] = field(default_factory=list)
    terminate: JingleRequest | None = None
    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    signalled: set[int] = field(default_factory=set)  # SSRCs this participant was told about
    # Loop time when the session-initiate was sent and the session-accept arrived (the
    # participant's share of the call set-up, bench/load.py).
    initiated_at: float = 0.0
    accepted_at: float | None = None

    @property
    def sources(self) -> tuple[MediaSource, ...]:
        if self.accept is None:
            return ()
        return tuple(
            MediaSource(s.ssrc, s.name, self.nick, s.msid, s.media) for s in self.accept.sources
        )


@dataclass
class FakeWebParticipant:
    """A web client in the room: an occupant with its own presence and one audio source."""

    nick: str
    source: MediaSource
    connection: XmppConnection


@dataclass
class EmulatedRoom:
    jid: str
    password: str | None = None
    members_only: bool = False
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    occupants: dict[str, Occupant] = field(default_factory=dict)
    features: dict[str, frozenset[str]] = field(default_factory=dict)
    fakes: dict[str, FakeWebParticipant] = field(default_factory=dict)
    invites: dict[str, Invite] = field(default_factory=dict)  # current session per nick
    inviting: set[str] = field(default_factory=set)  # allocating a bridge for these
    history: list[Invite] = field(default_factory=list)


@dataclass(frozen=True)
class StatsPresence:
    """One brewery presence with colibri ``<stats>`` the focus received."""

    occupant_jid: str
    stats: BreweryStats
    xml: ET.Element


@dataclass
class JigasiInstance:
    """A brewery occupant that publishes stats (Jicofo's ``JigasiDetector``, jingle.md §9)."""

    occupant_jid: str
    stats: BreweryStats
    presence: ET.Element


@dataclass(frozen=True)
class DialAttempt:
    """One relay of a dial to an instance: ``outcome`` is ``result``, ``error`` (with its
    condition) or ``timeout``."""

    instance: str  # the instance's occupant JID in the brewery
    outcome: str
    condition: str | None
    request: ET.Element
    answer: ET.Element | None = None


class NoJigasiAvailable(RuntimeError):
    """No brewery instance qualifies (Jicofo answers the client ``service-unavailable``)."""


class JicofoEmulator:
    """``async with JicofoEmulator(prosody) as jicofo:``."""

    def __init__(
        self,
        prosody: Prosody,
        *,
        bridge_factory: BridgeFactory = fake_bridge,
        min_participants: int = 2,
        not_ready: int = 0,
        region: str | None = "eu-west",
    ) -> None:
        self.prosody = prosody
        self.bridge_factory = bridge_factory
        self.min_participants = min_participants
        self.not_ready = not_ready  # answer ready="false" this many times first
        self.region = region
        self.rooms: dict[str, EmulatedRoom] = {}
        self.stanzas: list[Recorded] = []
        self.conference_requests: list[Iq] = []
        self.accept_error: str | None = None  # answer the next session-accept with this error
        self.mute_requests: list[Iq] = []
        self.restart_requests: list[JingleRequest] = []
        # Dial-out (jingle.md §9).
        self.brewery_jid = str(JID(f"JigasiBrewery@{prosody.internal_muc_domain}").bare)
        self.brewery_joined = asyncio.Event()
        self.jigasis: dict[str, JigasiInstance] = {}  # by occupant JID in the brewery
        self.brewery_stats: list[StatsPresence] = []  # every stats presence received
        self.dial_attempts: list[DialAttempt] = []
        self.dial_timeout = 15.0  # Jicofo's reply timeout
        self._in_brewery = False
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.focus = XmppConnection(
            ParticipantConfig(
                domain=prosody.domain,
                username=prosody.focus_jid,
                password=prosody.password("focus"),
                server=XmppServer(port=prosody.c2s_port, tls_verify=False),
                reconnect_backoff=(0.2, 1.0),
                ping_interval=300.0,
            ),
            resource="focus",
        )
        self._record(self.focus.client, "focus")
        client = self.focus.client
        client.register_handler(
            Callback("emu jingle", StanzaPath("iq@type=set/jingle"), self._on_jingle)
        )
        client.register_handler(Callback("emu mute", StanzaPath("iq@type=set/mute"), self._on_mute))
        client.add_event_handler("presence", self._on_presence)
        self.focus.on("online", self._focus_online)
        self.component: ComponentXMPP | None = None
        self._component_task: asyncio.Task[None] | None = None
        self._closing = False

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.focus.start()
        await self._connect_component()

    async def _connect_component(self) -> None:
        component: ComponentXMPP = cast(Any, ComponentXMPP)(
            self.prosody.focus_domain, self.prosody.component_secret
        )
        self.component = component
        self._record(component, "component")
        component.register_handler(
            Callback(
                "emu conference",
                StanzaPath("iq@type=set/focus_conference"),
                self._on_conference,
            )
        )
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_start(_event: Any) -> None:
            if not started.done():
                started.set_result(None)

        def on_failure(error: Any) -> None:
            if not started.done():
                started.set_exception(OSError(str(error)))

        component.add_event_handler("session_start", on_start)
        component.add_event_handler("connection_failed", on_failure)
        component.connect("127.0.0.1", self.prosody.component_port)
        try:
            await asyncio.wait_for(started, 5.0)
        except BaseException:
            component.cancel_connection_attempt()
            component.abort()
            await stop_send_task(component)
            raise
        component.del_event_handler("connection_failed", on_failure)
        component.add_event_handler("disconnected", self._component_lost)

    def _component_lost(self, _event: Any) -> None:
        if self._closing or self._component_task is not None:
            return
        self._component_task = self._spawn(self._reconnect_component())

    async def _reconnect_component(self) -> None:
        try:
            while not self._closing:
                await asyncio.sleep(0.2)
                old, self.component = self.component, None
                if old is not None:
                    old.del_event_handler("disconnected", self._component_lost)
                    old.cancel_connection_attempt()
                    old.abort()
                    await stop_send_task(old)
                try:
                    await self._connect_component()
                    return
                except (TimeoutError, OSError):
                    continue
        finally:
            self._component_task = None

    async def stop(self) -> None:
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        # Copies: an occupant leaving while we await below changes these dicts.
        for room in list(self.rooms.values()):
            for invite in list(room.invites.values()):
                with contextlib.suppress(Exception):
                    await invite.bridge.close()
            for fake in list(room.fakes.values()):
                await fake.connection.close(wait=0.2)
        await self.focus.close(wait=0.2)
        if self.component is not None:
            self.component.cancel_connection_attempt()
            self.component.abort()
            await stop_send_task(self.component)

    async def __aenter__(self) -> JicofoEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    def _record(self, client: Any, name: str) -> None:
        def incoming(stanza: StanzaBase) -> StanzaBase:
            self.stanzas.append(Recorded("in", name, copy.deepcopy(stanza.xml)))
            return stanza

        def outgoing(stanza: StanzaBase) -> StanzaBase:
            self.stanzas.append(Recorded("out", name, copy.deepcopy(stanza.xml)))
            return stanza

        client.add_filter("in", incoming)
        client.add_filter("out", outgoing)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds: re-checked whenever the emulator's state changes,
        and every 20 ms for state that lives elsewhere (the legs under test)."""

        async def check() -> None:
            async with self._changed:
                while not predicate():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.02)

        await asyncio.wait_for(check(), timeout)

    # -- rooms ----------------------------------------------------------------------------------

    def room(self, room: str) -> EmulatedRoom:
        jid = room if "@" in room else f"{room}@{self.prosody.muc_domain}"
        return self.rooms.setdefault(jid, EmulatedRoom(jid))

    async def prepare_room(
        self, room: str, *, password: str | None = None, members_only: bool = False
    ) -> EmulatedRoom:
        """The focus joins (creating the room) and configures it, before anyone else."""
        emulated = self.room(room)
        emulated.password = password
        emulated.members_only = members_only
        await self._join(emulated)
        return emulated

    async def _join(self, room: EmulatedRoom) -> None:
        room.joined.clear()
        presence = self.focus.client.Presence()
        presence["to"] = f"{room.jid}/{FOCUS_NICK}"
        presence.enable("muc_join")
        cast(Any, presence).send()
        await asyncio.wait_for(room.joined.wait(), 5.0)
        await self._configure(room)

    async def _configure(self, room: EmulatedRoom) -> None:
        """XEP-0045 §10.2 owner form: whois anyone (Jicofo sets it, jingle.md §2.3), optional
        password (§10.2 roomsecret) and members-only."""
        iq = self.focus.iq(room.jid)
        form = iq["muc_owner_query"]["data_form"]
        form["type"] = "submit"
        fields = {
            "FORM_TYPE": "http://jabber.org/protocol/muc#roomconfig",
            "muc#roomconfig_whois": "anyone",
            "muc#roomconfig_membersonly": "1" if room.members_only else "0",
        }
        if room.password is not None:
            fields["muc#roomconfig_passwordprotectedroom"] = "1"
            fields["muc#roomconfig_roomsecret"] = room.password
        for var, value in fields.items():
            item = stanzas.DataField()
            item["var"] = var
            item["value"] = value
            form.append(item)
        await send_iq(iq, 5.0)

    def _focus_online(self, _jid: str) -> None:
        # After a Prosody restart: back into every room (they are gone and re-created).
        if self._closing:
            return
        self.jigasis.clear()
        self.brewery_joined.clear()
        if self._in_brewery:
            self._spawn(self._join_brewery())
        for room in self.rooms.values():
            room.occupants.clear()
            room.invites.clear()
            for fake in room.fakes.values():  # their sessions are gone with the server
                self._spawn(fake.connection.close(wait=0.2))
            room.fakes.clear()
            self._spawn(self._join(room))

    # -- the conference IQ (component) ------------------------------------------------------

    def _on_conference(self, stanza: StanzaBase) -> None:
        self._spawn(self._answer_conference(cast(Iq, stanza)))

    async def _answer_conference(self, iq: Iq) -> None:
        self.conference_requests.append(iq)
        conference = iq["focus_conference"]
        room_jid = str(conference.xml.attrib.get("room", ""))
        answer = reply(iq)
        result = answer["focus_conference"]
        result["room"] = room_jid
        if self.not_ready > 0:
            self.not_ready -= 1
            result["ready"] = "false"
        else:
            room = self.room(room_jid)
            if FOCUS_NICK not in room.occupants and not room.joined.is_set():
                await self._join(room)
            result["ready"] = "true"
            result["focusjid"] = self.prosody.focus_jid
        for name, value in (("authentication", "false"), ("sipGatewayEnabled", "true")):
            prop = stanzas.ConferenceProperty()
            prop["name"] = name
            prop["value"] = value
            result.append(prop)
        answer.send()

    # -- occupants ------------------------------------------------------------------------------

    def _on_presence(self, stanza: StanzaBase) -> None:
        presence = cast(Presence, stanza)
        sender = presence["from"]
        if sender.bare == self.brewery_jid:
            self._on_brewery_presence(presence)
            return
        room = self.rooms.get(sender.bare)
        if room is None or not sender.resource:
            return
        nick = sender.resource
        if presence["type"] == "error":
            return
        if nick == FOCUS_NICK:
            if presence["type"] != "unavailable":
                room.occupants[nick] = parse_occupant(presence)
                room.joined.set()
            return
        if presence["type"] == "unavailable":
            room.occupants.pop(nick, None)
            invite = room.invites.pop(nick, None)
            if invite is not None:
                invite.ended = True
                self._spawn(invite.bridge.close())
            self._spawn(self._notify())
            return
        known = nick in room.occupants
        occupant = parse_occupant(presence)
        room.occupants[nick] = occupant
        if not known:
            self._spawn(self._member_joined(room, occupant))
        else:
            self._spawn(self._notify())

    async def _member_joined(self, room: EmulatedRoom, occupant: Occupant) -> None:
        """jingle.md §2.5: discover features, check min-participants, invite."""
        if occupant.nick not in room.fakes:
            room.features[occupant.nick] = await self._discover(occupant)
        await self._invite_all(room)
        await self._notify()

    async def _discover(self, occupant: Occupant) -> frozenset[str]:
        iq = self.focus.iq(occupant.occupant_jid, "get")
        query = iq["disco_info_query"]
        if occupant.caps_node and occupant.caps_ver:
            query["node"] = f"{occupant.caps_node}#{occupant.caps_ver}"
        try:
            answer = await send_iq(iq, 5.0)
        except (IqError, IqTimeout):
            # Jicofo assumes audio, video and SCTP when disco#info fails (§2.4).
            return frozenset({JINGLE_RTP_AUDIO, VIDEO, SCTP})
        result = answer["disco_info_query"]
        return frozenset(
            str(f.xml.attrib.get("var", ""))
            for f in result.iterables
            if isinstance(f, stanzas.DiscoFeature)
        )

    async def _invite_all(self, room: EmulatedRoom) -> None:
        members = [n for n in room.occupants if n != FOCUS_NICK]
        if len(members) < self.min_participants:
            return
        for nick in members:
            if (
                nick in room.fakes
                or nick in room.invites
                or nick in room.inviting
                or nick not in room.features
            ):
                continue
            await self.invite(room, nick)

    # -- Jingle towards a participant ---------------------------------------------------------

    def sources_for(self, room: EmulatedRoom, nick: str) -> list[MediaSource]:
        """What Jicofo signals to ``nick``: everyone else's sources, never its own (§3.1)."""
        found = [f.source for n, f in room.fakes.items() if n != nick]
        for other, invite in room.invites.items():
            if other != nick:
                found += invite.sources
        return found

    async def invite(self, room: EmulatedRoom, nick: str) -> Invite:
        room.inviting.add(nick)  # the allocation below may yield: one invite per member
        try:
            bridge = await self.bridge_factory(nick)
            transport = await bridge.prepare()
        finally:
            room.inviting.discard(nick)
        invite = Invite(
            room=room.jid,
            nick=nick,
            sid=secrets.token_hex(6),
            bridge=bridge,
            offer_transport=transport,
            bridge_session_id=str(uuid.uuid4()),
        )
        room.invites[nick] = invite
        room.history.append(invite)
        iq = self.focus.iq(f"{room.jid}/{nick}")
        jingle = iq["jingle"]
        features = room.features.get(nick, frozenset({JINGLE_RTP_AUDIO}))
        self._build_initiate(jingle, invite, features, self.sources_for(room, nick), bridge)
        invite.initiate = copy.deepcopy(iq.xml)
        invite.initiated_at = asyncio.get_running_loop().time()
        try:
            await send_iq(iq, 15.0)
        except (IqError, IqTimeout) as exc:
            log.info("session-initiate to %s not acknowledged: %s", nick, exc)
        await self._notify()
        return invite

    def _build_initiate(
        self,
        jingle: stanzas.Jingle,
        invite: Invite,
        features: frozenset[str],
        sources: list[MediaSource],
        bridge: BridgeAllocation,
    ) -> None:
        """jingle.md §3.1, element by element."""
        jingle["action"] = SESSION_INITIATE
        jingle["initiator"] = self.focus.jid
        jingle["sid"] = invite.sid
        names = []
        for media in ("audio", "video"):
            if media == "video" and VIDEO not in features:
                continue
            if media == "audio" and JINGLE_RTP_AUDIO not in features:
                continue
            names.append(media)
            content = stanzas.Content()
            content["creator"] = "initiator"
            content["name"] = media
            content["senders"] = "both"
            jingle.append(content)
            description = content["description"]
            description["media"] = media
            if media == "audio":
                description["maxptime"] = "60"
                add_payload_type(description, OPUS)
                add_payload_type(description, TELEPHONE_EVENT)
                for ext_id, uri in ((1, AUDIO_LEVEL_URI), (10, MID_URI)):
                    ext = stanzas.RtpHdrext()
                    ext["id"] = str(ext_id)
                    ext["uri"] = uri
                    description.append(ext)
                description.enable("extmap_allow_mixed")
                description.enable("rtcp_mux")
                for source in (bridge.feedback_source(), *sources):
                    if source.media == "audio":
                        add_source(description, source, with_owner=True)
                        invite.signalled.add(source.ssrc)
            else:
                add_payload_type(description, PayloadType(100, "VP8", 90000))
                description.enable("rtcp_mux")
            transport = content["transport"]
            if invite.offer_transport.websocket_url:
                transport["web_socket"]["url"] = invite.offer_transport.websocket_url
            transport.enable("rtcp_mux")
            add_transport(content, invite.offer_transport)
        add_bundle_group(jingle, names)
        bridge_session = jingle["bridge_session"]
        bridge_session["id"] = invite.bridge_session_id
        if self.region:
            bridge_session["region"] = self.region

    async def send_jingle(
        self, room: str, nick: str, build: Callable[[Iq], None], timeout: float = 5.0
    ) -> Iq:
        """Send any IQ (built by ``build``) from the focus to an occupant; returns the answer
        (raises IqError / IqTimeout)."""
        iq = self.focus.iq(f"{self.room(room).jid}/{nick}")
        build(iq)
        return await send_iq(iq, timeout)

    async def source_add(self, room: str, nick: str, sources: list[MediaSource]) -> Iq:
        invite = self.room(room).invites[nick]
        invite.signalled.update(s.ssrc for s in sources)
        return await self.send_jingle(
            room,
            nick,
            lambda iq: build_sources(
                iq["jingle"], action=SOURCE_ADD, sid=invite.sid, sources=sources
            ),
        )

    async def source_remove(self, room: str, nick: str, sources: list[MediaSource]) -> Iq:
        invite = self.room(room).invites[nick]
        return await self.send_jingle(
            room,
            nick,
            lambda iq: build_sources(
                iq["jingle"], action=SOURCE_REMOVE, sid=invite.sid, sources=sources
            ),
        )

    async def terminate(
        self, room: str, nick: str, condition: str = "success", text: str | None = None
    ) -> Iq:
        emulated = self.room(room)
        invite = emulated.invites.pop(nick)
        invite.ended = True
        # Jicofo terminates the session, then expires the bridge endpoint: closing it first
        # would make the leg see its DTLS close and end the session itself.
        try:
            return await self.send_jingle(
                room,
                nick,
                lambda iq: build_session_terminate(
                    iq["jingle"], sid=invite.sid, reason=JingleReason(condition, text)
                ),
            )
        finally:
            await invite.bridge.close()

    async def mute(self, room: str, nick: str, muted: bool = True, actor: str | None = None) -> Iq:
        """What Jicofo forwards after a moderator's request (§7): ``actor``, no ``jid``."""

        def build(iq: Iq) -> None:
            element = iq["mute"]
            element["value"] = "true" if muted else "false"
            if actor is not None:
                element["actor"] = actor

        return await self.send_jingle(room, nick, build)

    async def transport_replace(self, room: str, nick: str) -> Iq:
        """Jicofo's ``reinvite-method = ReplaceTransport`` (jingle.md §6): full contents with a
        new bridge transport, same sid."""
        emulated = self.room(room)
        invite = emulated.invites[nick]
        bridge = await self.bridge_factory(nick)
        replacement = Invite(
            room=emulated.jid,
            nick=nick,
            sid=invite.sid,
            bridge=bridge,
            offer_transport=await bridge.prepare(),
            bridge_session_id=str(uuid.uuid4()),
        )
        features = emulated.features.get(nick, frozenset({JINGLE_RTP_AUDIO}))
        sources = self.sources_for(emulated, nick)

        def build(iq: Iq) -> None:
            jingle = iq["jingle"]
            self._build_initiate(jingle, replacement, features, sources, bridge)
            jingle["action"] = "transport-replace"

        return await self.send_jingle(room, nick, build)

    async def kick(self, room: str, nick: str, reason: str = "bye") -> Iq:
        """XEP-0045 §8.2: role none."""
        emulated = self.room(room)
        iq = self.focus.iq(emulated.jid)
        query = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#admin}query")
        item = ET.SubElement(
            query, "{http://jabber.org/protocol/muc#admin}item", nick=nick, role="none"
        )
        ET.SubElement(item, "{http://jabber.org/protocol/muc#admin}reason").text = reason
        return await send_iq(iq, 5.0)

    async def destroy(self, room: str, reason: str = "conference ended") -> Iq:
        """XEP-0045 §10.9: the owner destroys the room."""
        emulated = self.room(room)
        iq = self.focus.iq(emulated.jid)
        query = ET.SubElement(iq.xml, "{http://jabber.org/protocol/muc#owner}query")
        destroy = ET.SubElement(query, "{http://jabber.org/protocol/muc#owner}destroy")
        ET.SubElement(destroy, "{http://jabber.org/protocol/muc#owner}reason").text = reason
        return await send_iq(iq, 5.0)

    # -- Jingle from participants ---------------------------------------------------------------

    def _on_jingle(self, stanza: StanzaBase) -> None:
        # State changes happen here, synchronously, in stanza order (a presence right after
        # must see them); only the follow-ups (bridge, re-invite, source-add) are tasks.
        iq = cast(Iq, stanza)
        sender = iq["from"]
        room = self.rooms.get(sender.bare)
        request = parse_jingle(iq["jingle"])
        nick = sender.resource
        invite = room.invites.get(nick) if room is not None else None
        if room is None or invite is None or invite.sid != request.sid:
            self._error(iq, "bad-request")  # Jicofo: unknown sid (jingle.md §6)
            return
        if request.action == SESSION_ACCEPT:
            invite.accepted_at = asyncio.get_running_loop().time()
            invite.accept = request
            invite.accept_xml = copy.deepcopy(iq.xml)
            if self.accept_error is not None:
                condition, self.accept_error = self.accept_error, None
                self._error(iq, condition, "SSRC is already used")
                invite.ended = True
                room.invites.pop(nick, None)
            else:
                reply(iq).send()
                invite.accepted.set()
                assert request.transport is not None
                self._spawn(invite.bridge.connect(request.transport))
                # The new sources to everyone else in a session; to the newcomer, what was
                # queued while its session was pending (jingle.md §4.1 item 6).
                for other, other_invite in room.invites.items():
                    if other != nick and other_invite.accept is not None:
                        self._spawn(self.source_add(room.jid, other, list(invite.sources)))
                pending = [
                    s for s in self.sources_for(room, nick) if s.ssrc not in invite.signalled
                ]
                if pending:
                    self._spawn(self.source_add(room.jid, nick, pending))
        elif request.action == TRANSPORT_INFO:
            invite.transport_infos.append(request)
            invite.transport_info_xml.append(copy.deepcopy(iq.xml))
            reply(iq).send()
        elif request.action == SESSION_TERMINATE:
            invite.terminate = request
            invite.ended = True
            reply(iq).send()
            room.invites.pop(nick, None)
            self._spawn(invite.bridge.close())
            if request.bridge_session is not None and request.bridge_session.restart:
                # jingle.md §6: a brand-new session-initiate (new sid).
                self.restart_requests.append(request)
                self._spawn(self.invite(room, nick))
        else:
            self._error(iq, "feature-not-implemented")
        self._spawn(self._notify())

    def _error(self, iq: Iq, condition: str, text: str | None = None) -> None:
        answer = reply(iq)
        answer["type"] = "error"
        answer["error"]["type"] = "modify" if condition == "bad-request" else "cancel"
        answer["error"]["condition"] = condition
        if text:
            answer["error"]["text"] = text
        answer.send()

    def _on_mute(self, stanza: StanzaBase) -> None:
        iq = cast(Iq, stanza)
        self.mute_requests.append(iq)
        reply(iq).send()
        self._spawn(self._notify())

    # -- dial-out: the brewery and the Rayo relay (jingle.md §9) ---------------------------------

    async def join_brewery(self) -> None:
        """The focus joins the brewery (``jicofo.jigasi.brewery-jid``) as ``focus``."""
        self._in_brewery = True
        await self._join_brewery()

    async def _join_brewery(self) -> None:
        presence = self.focus.client.Presence()
        presence["to"] = f"{self.brewery_jid}/{FOCUS_NICK}"
        presence.enable("muc_join")
        cast(Any, presence).send()
        await asyncio.wait_for(self.brewery_joined.wait(), 5.0)

    def _on_brewery_presence(self, presence: Presence) -> None:
        sender = presence["from"]
        kind = presence["type"]
        if kind == "error":
            return
        if sender.resource == FOCUS_NICK:
            if kind == "unavailable":
                self.brewery_joined.clear()
            else:
                self.brewery_joined.set()
            return
        occupant_jid = str(sender)
        if kind == "unavailable":
            self.jigasis.pop(occupant_jid, None)
        else:
            stats = parse_stats(presence)
            if stats is None:
                return  # not an instance (JigasiDetector ignores occupants without stats)
            xml = copy.deepcopy(presence.xml)
            self.brewery_stats.append(StatsPresence(occupant_jid, stats, xml))
            self.jigasis[occupant_jid] = JigasiInstance(occupant_jid, stats, xml)
        self._spawn(self._notify())

    @property
    def brewery_instances(self) -> dict[str, BreweryStats]:
        """The current instances' latest stats, by occupant JID in the brewery."""
        return {jid: instance.stats for jid, instance in self.jigasis.items()}

    def stats_of(self, occupant_jid: str) -> list[BreweryStats]:
        """Every stats presence received from one instance, in order."""
        return [p.stats for p in self.brewery_stats if p.occupant_jid == occupant_jid]

    def select_jigasi(self, exclude: Sequence[str] = ()) -> str | None:
        """JigasiDetector's choice for SIP: not in graceful shutdown, ``supports_sip``, not
        excluded; the bridge's region first, then any; the fewest ``participants`` wins
        (``stress_level`` is not used)."""
        candidates = [
            i
            for i in self.jigasis.values()
            if not i.stats.graceful_shutdown
            and i.stats.supports_sip
            and i.occupant_jid not in exclude
        ]
        local = [i for i in candidates if self.region and i.stats.region == self.region]
        pool = local or candidates
        if not pool:
            return None
        return min(pool, key=lambda i: i.stats.participants).occupant_jid

    def room_jid(self, room: str) -> str:
        return room if "@" in room else f"{room}@{self.prosody.muc_domain}"

    async def dial(
        self,
        room: str,
        to: str,
        *,
        password: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        from_number: str | None = None,
    ) -> Iq:
        """What Jicofo's JigasiIqHandler does with a client's dial: the dial as lib-jitsi-meet
        builds it (``JvbRoomName``, ``JvbRoomPassword`` when given, the extra headers),
        relayed from the focus to the selected instance's brewery occupant JID, waiting
        `dial_timeout`; on an error or a timeout up to 2 more instances. Returns the reply;
        raises the last IqError / IqTimeout, or `NoJigasiAvailable`."""
        request = DialRequest(to, from_number, self.room_jid(room), password, tuple(headers))
        tried: list[str] = []
        last: IqError | IqTimeout | None = None
        for _ in range(3):
            instance = self.select_jigasi(exclude=tried)
            if instance is None:
                break
            tried.append(instance)
            iq = self.focus.iq(instance)
            build_dial(iq, request)
            sent = copy.deepcopy(iq.xml)
            try:
                answer = await send_iq(iq, self.dial_timeout)
            except IqError as exc:
                condition = str(exc.iq["error"]["condition"] or "") or None
                self.dial_attempts.append(
                    DialAttempt(instance, "error", condition, sent, copy.deepcopy(exc.iq.xml))
                )
                last = exc
                continue
            except IqTimeout as exc:
                self.dial_attempts.append(DialAttempt(instance, "timeout", None, sent))
                last = exc
                continue
            self.dial_attempts.append(
                DialAttempt(instance, "result", None, sent, copy.deepcopy(answer.xml))
            )
            return answer
        if last is not None:
            raise last
        raise NoJigasiAvailable(
            f"no brewery instance qualifies among {sorted(self.jigasis)} (excluded {tried})"
        )

    async def rayo_hangup(self, from_nick: str, ref_uri: str, timeout: float = 5.0) -> Iq:
        """A web participant (one added with `add_fake_participant`) sends the Rayo hangup
        straight to the ``ref`` occupant JID (jigasi.md §3.5); returns the answer."""
        fake = next((r.fakes[from_nick] for r in self.rooms.values() if from_nick in r.fakes), None)
        if fake is None:
            raise KeyError(f"no fake participant {from_nick!r}")
        iq = fake.connection.iq(ref_jid(ref_uri))
        build_hangup(iq)
        return await send_iq(iq, timeout)

    # -- fake web participants ------------------------------------------------------------------

    async def add_fake_participant(
        self,
        room: str,
        nick: str | None = None,
        *,
        ssrc: int | None = None,
        signal: bool = True,
    ) -> FakeWebParticipant:
        """A web client joins (its own anonymous connection and presence, jingle.md §2.3);
        invited legs get a ``source-add`` for its audio (``signal``)."""
        emulated = self.room(room)
        nick = nick or random_nick()
        source = MediaSource(
            ssrc=ssrc if ssrc is not None else 1 + secrets.randbelow(0xFFFFFFFE),
            name=f"{nick}-a0",
            owner=nick,
            msid=f"{nick}-audio-0-1 {uuid.uuid4()}-1",
        )
        connection = XmppConnection(
            ParticipantConfig(
                domain=self.prosody.domain,
                server=XmppServer(port=self.prosody.c2s_port, tls_verify=False),
                reconnect_backoff=(0.2, 1.0),
                ping_interval=300.0,
            )
        )
        await connection.start()
        fake = FakeWebParticipant(nick, source, connection)
        emulated.fakes[nick] = fake
        self._record(connection.client, nick)
        joined = asyncio.get_running_loop().create_future()

        def on_presence(stanza: StanzaBase) -> None:
            presence = cast(Presence, stanza)
            if str(presence["from"]) == f"{emulated.jid}/{nick}" and not joined.done():
                joined.set_result(presence["type"])

        connection.client.add_event_handler("presence", on_presence)
        presence = connection.client.Presence()
        presence["to"] = f"{emulated.jid}/{nick}"
        fill_presence(
            presence,
            LocalPresence(nick, f"Web {nick}", "https://jitsi.org/jitsi-meet", "x", features=()),
            join=True,
            password=emulated.password,
        )
        cast(Any, presence).send()
        kind = await asyncio.wait_for(joined, 5.0)
        connection.client.del_event_handler("presence", on_presence)
        if kind == "error":
            raise RuntimeError(f"fake participant {nick} could not join {emulated.jid}")
        if signal:
            for other, invite in list(emulated.invites.items()):
                if invite.accept is not None:
                    await self.source_add(emulated.jid, other, [source])
        return fake

    async def remove_fake_participant(
        self, room: str, nick: str, *, send_remove: bool = False
    ) -> None:
        """The web client leaves. Current Jicofo sends no source-remove then (§6); with
        ``send_remove`` the invited legs get one first."""
        emulated = self.room(room)
        fake = emulated.fakes.pop(nick)
        if send_remove:
            for other, invite in list(emulated.invites.items()):
                if invite.accept is not None:
                    await self.source_remove(emulated.jid, other, [fake.source])
        await fake.connection.close(wait=1.0)

    # -- queries for assertions -------------------------------------------------------------------

    def received(self, connection: str = "focus", tag: str | None = None) -> list[Recorded]:
        """Stanzas a connection received, optionally those with a child element ``tag``
        (``{namespace}name``)."""
        return [
            r
            for r in self.stanzas
            if r.direction == "in"
            and r.connection == connection
            and (tag is None or r.xml.find(tag) is not None)
        ]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("emulator task failed: %r", task.exception())
