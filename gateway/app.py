"""The gateway: one process's SIP user agent, its calls, and what the HTTP API reports.

`Gateway` owns what every call shares - the SIP user agent (listening on UDP and TCP, and TLS
when configured; registered to the trunk when ``[sip.account]`` names one), the media clock
and RTP port range, the rooms' mixers, the TLS context and DTLS certificate of the conference
legs - and turns each INVITE into an `InboundCall` once it passed the access policy
(`gateway.access`) and named a room (`gateway.rooms`).

Life cycle, driven by ``pygasi run`` (`gateway.cli.Daemon`): `start()` (raises
`GatewayStartError` with a message an operator can act on), then either `drain()` - new INVITEs
get ``503`` with ``Retry-After`` while active calls go on, the trunk is un-REGISTERed when the
last one ends or the timeout hangs the rest up - or `stop()`, which hangs every call up at once
with a Reason.

Health (`health()`, ``GET /about/health``) needs no test call (jigasi.md §7.3): SIP is
listening, the trunk is registered when one is configured, and the XMPP server answered the
last periodic connect probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.access import AccessPolicy, Verdict
from gateway.call import CallServices, CallSession, InboundCall, reason_phrase
from gateway.caller_id import caller_display_name, number_display_name
from gateway.conference import Conferences
from gateway.config import GatewayConfig
from gateway.config_loader import parse_host_port
from gateway.dialout import OutboundCall, dial_target, extra_headers
from gateway.logs import call_logger
from gateway.media_report import media_report
from gateway.media_settings import MediaSettings
from gateway.memory import IDLE_DELAY, LATE_DELAY, release_memory
from gateway.metrics import Metrics
from gateway.rooms import RoomNotFound, RoomResolver, RoomTarget, names_of
from gateway.session import FlowSettings, Phase, Result
from media.clock import MediaClock
from media.ports import PortAllocator
from sip.digest import CredentialStore
from sip.errors import SipParseError
from sip.events import RegistrationChanged
from sip.headers import NameAddr
from sip.offer_answer import MediaNegotiator, OfferAnswerConfig, SrtpMode
from sip.registration import Registration, RegistrationConfig, RegistrationState
from sip.transport import ListenSpec, TlsSettings
from sip.ua import Call, UAConfig, UserAgent
from sip.uri import Uri, parse_uri
from xmpp.brewery import BreweryConfig as BreweryClientConfig
from xmpp.brewery import BreweryMember, BreweryStats
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.connection import resolve_server
from xmpp.datagram_poller import DatagramPoller
from xmpp.media_api import MediaFactory, MediaTransport
from xmpp.rayo import DialRefused, DialRequest

log = logging.getLogger("pygasi.gateway")

# jigasi.md §3.2: stress_level = conferences / CONFERENCES_THRESHOLD (default 100).
CONFERENCES_THRESHOLD = 100
# jigasi.md §7.2: /about/stats conference_sizes has 22 buckets (index = members - 1, capped).
SIZE_BUCKETS = 22
PROBE_INTERVAL = 30.0  # the XMPP server reachability probe (health)
PROBE_TIMEOUT = 5.0
QUALITY_INTERVAL = 5.0  # RTP loss/jitter into the metrics
STOP_WAIT = 10.0  # how long stop() waits for hung-up calls to leave their rooms
STATS_INTERVAL = 1.0  # brewery stats re-published this often when they changed
DIAL_CONFIRM_TIMEOUT = 10.0  # jigasi.md §3.3: answer the dial before Jicofo's 15 s


class GatewayStartError(Exception):
    """The gateway cannot start; the message says why (a port in use, ...)."""


@dataclass
class Totals:
    """Counters since start, for ``/about/stats`` (Jigasi's ``total_*`` keys that apply)."""

    calls: int = 0
    calls_completed: int = 0
    calls_failed: int = 0  # rejected, failed, timed out or errors
    calls_refused: int = 0  # no room, not allowed, draining: never became a call
    conference_seconds: float = 0.0
    participants: int = 0  # phones that were in a room


def warm_up() -> None:
    """Load at start what the first call would otherwise load: the codec libraries (PyAV's
    libopus, G.722), aiortc, the DTLS certificate. The first call then costs no more than the
    tenth (issue #5, "warm start")."""
    import numpy as np

    from media.codecs import create_decoder, create_encoder
    from media.frame import FRAME_SAMPLES
    from media.resample import FrameResampler
    from xmpp.media_transport import ConferenceMediaTransport, shared_certificate

    silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    for name in ("opus", "G722", "PCMU", "PCMA"):
        encoder, decoder = create_encoder(name), create_decoder(name)
        decoder.decode(encoder.encode(_frame_for(name, silence)))
    for rate in (8000, 16000):
        FrameResampler(48000, rate).process(silence)
    shared_certificate()
    del ConferenceMediaTransport


def _frame_for(codec: str, pcm48k: Any) -> Any:
    """A frame at the codec's own rate (encoders take their native rate)."""
    from media.codecs import codec_info

    rate = codec_info(codec).sample_rate
    return pcm48k[:: 48000 // rate] if rate < 48000 else pcm48k


class Gateway:
    """The gateway of one process (see the module docstring)."""

    def __init__(
        self,
        config: GatewayConfig,
        metrics: Metrics | None = None,
        *,
        media_factory: MediaFactory | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self.resolver = RoomResolver(config.inbound, config.xmpp)
        self.access = AccessPolicy(config.inbound)
        self.clock = MediaClock()
        # First on the clock: the conference legs' datagrams are in before the rooms mix.
        self.datagram_poller = DatagramPoller()
        self.clock.add(self.datagram_poller)
        self.media_settings = MediaSettings.from_config(config.media)
        self.conferences = Conferences(self.clock, self.media_settings.mixer)
        self.ua: UserAgent | None = None
        self.registration: Registration | None = None
        self.calls: dict[str, CallSession] = {}  # by log id (the inbound Call-ID)
        self.totals = Totals()
        self.started_at = time.time()
        self.xmpp_reachable: bool | None = None  # None: not probed yet
        self.xmpp_problem = "not probed yet"
        self._media_factory = media_factory
        self.brewery: BreweryMember | None = None
        self._dials = 0
        self._draining = False
        self._services: CallServices | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._release: asyncio.TimerHandle | None = None  # gateway.memory, once idle
        self.memory_releases = 0
        self.idle_release_delay = IDLE_DELAY
        self.late_release_delay = LATE_DELAY  # from the same idle moment (gateway.memory)
        host, port = parse_host_port(config.xmpp.server, 5222)
        self.xmpp_server = XmppServer(host=host, port=port, tls_verify=config.xmpp.tls_verify)

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self._draining

    async def start(self) -> None:
        config = self.config
        warm_up()
        self.clock.start()
        ua = UserAgent(self._ua_config(), credentials=self._credentials())
        try:
            await ua.start()
        except OSError as exc:
            raise GatewayStartError(f"cannot listen for SIP on {config.sip.listen}: {exc}") from exc
        self.ua = ua
        ua.on("call", self._on_call)
        ua.on("registration", self._on_registration)
        listen_host, _ = parse_host_port(config.sip.listen)
        public = config.sip.public_address
        sdp_address = parse_host_port(public, 0)[0] if public else ua.address
        allocator = PortAllocator(config.sip.rtp_ports, host=listen_host)
        self._services = CallServices(
            conferences=self.conferences,
            allocator=allocator,
            rtp_host=listen_host,
            sdp_address=sdp_address,
            offer_config=OfferAnswerConfig(
                codecs=tuple(config.sip.codecs), srtp=SrtpMode(config.sip.srtp)
            ),
            flow=self.flow_settings(),
            participant_config=self.participant_config,
            media_factory=self._media_factory or self._conference_media,
            metrics=self.metrics,
            translator=config.sip.translator,
            room_header=names_of(config.inbound.room_header),
            media=self.media_settings,
        )
        log.info(
            "SIP on %s (%s), RTP ports %s, SDP address %s",
            config.sip.listen,
            ", ".join(f"{t} {p}" for t, p in sorted(ua.ports.items())),
            config.sip.rtp_ports,
            sdp_address,
        )
        if self.access.open:
            # jigasi.md §6: Jigasi takes calls from anyone silently; we say so.
            log.warning(
                "inbound calls are accepted from ANY source: set [inbound] allowed_sources "
                "or [inbound.digest] users to restrict them"
            )
        if config.sip.account.uri:
            await self._register()
        else:
            self.metrics.registration_state("none")
        self._spawn(self._probe_xmpp_forever())
        self._spawn(self._report_quality_forever())
        if config.brewery.room:
            self._start_brewery()

    async def drain(self, timeout: float | None = None) -> None:
        """Graceful: refuse new calls with 503 + Retry-After, wait for the active ones (up to
        ``timeout``, then hang them up), un-REGISTER, stop."""
        timeout = self.config.drain.timeout if timeout is None else timeout
        self._draining = True
        if self.ua is not None:
            self.ua.refuse_calls(
                503, "Service Unavailable (draining)", self.config.drain.retry_after
            )
        if self.brewery is not None:
            self.brewery.publish(self.brewery_stats())  # Jicofo stops choosing us at once
        log.info("draining: %d call(s) active", len(self.calls))
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("drain timeout (%g s): hanging up %d call(s)", timeout, len(self.calls))
        await self.stop()

    async def stop(self, reason: str = "Gateway shutting down") -> None:
        """Hang up every call with a Reason, un-REGISTER and close everything."""
        self._draining = True
        if self.ua is not None:
            self.ua.refuse_calls(503, "Service Unavailable (shutting down)", None)
        if self._release is not None:
            self._release.cancel()
            self._release = None
        calls = list(self.calls.values())
        for call in calls:
            call.shutdown(reason)
        if calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.closed() for c in calls), return_exceptions=True),
                    STOP_WAIT,
                )
        if self.brewery is not None:
            self.brewery.publish(self.brewery_stats())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.brewery is not None:
            with contextlib.suppress(Exception):
                await self.brewery.stop()
            self.brewery = None
        if self.ua is not None:
            await self.ua.close(unregister=True)
            self.ua = None
        await self.clock.stop()

    # -- configuration pieces --------------------------------------------------------------------

    def _ua_config(self) -> UAConfig:
        sip = self.config.sip
        host, port = parse_host_port(sip.listen)
        listen = [ListenSpec("udp", host, port), ListenSpec("tcp", host, port)]
        if sip.tls_listen:
            tls_host, tls_port = parse_host_port(sip.tls_listen)
            listen.append(ListenSpec("tls", tls_host, tls_port))
        return UAConfig(
            listen=listen,
            public_address=parse_host_port(sip.public_address, 0)[0]
            if sip.public_address
            else None,
            tls=TlsSettings(
                certfile=sip.tls_cert or None, keyfile=sip.tls_key or None, verify=sip.tls_verify
            ),
        )

    def _credentials(self) -> CredentialStore | None:
        account = self.config.sip.account
        if not account.uri:
            return None
        uri = parse_uri(account.uri)
        store = CredentialStore()
        user = uri.user_unescaped or ""
        store.add(None, user, account.password, account.auth_username or None)
        return store

    def flow_settings(self) -> FlowSettings:
        inbound = self.config.inbound
        return FlowSettings(
            invite_timeout=inbound.invite_timeout,
            answer_alone_after=inbound.answer_alone_after,
            status_linger=inbound.status_linger,
            heartbeat_seconds=inbound.heartbeat_seconds,
            hangup_when_only_gateways=inbound.hangup_when_only_gateways,
            ring_timeout=self.config.sip.account.ring_timeout,
        )

    def participant_config(self, room: RoomTarget) -> ParticipantConfig:
        """The conference leg's settings for a room (jigasi.md §1.3-§1.4: the login domain and
        focus follow the room's MUC domain, so a tenant's room uses the tenant's focus)."""
        xmpp = self.config.xmpp
        focus = xmpp.focus if room.domain == self.resolver.domain else f"focus.{room.domain}"
        return ParticipantConfig(
            domain=room.domain,
            muc_domain=room.muc_domain,
            focus_component=focus,
            server=self.xmpp_server,
            username=xmpp.username or None,
            password=xmpp.password or None,
            region=xmpp.region or None,
            stats_id=xmpp.stats_id or None,
        )

    def _conference_media(self) -> MediaTransport:
        from media.ports import parse_port_range
        from xmpp.media_transport import ConferenceMediaTransport, MediaTransportConfig

        xmpp = self.config.xmpp
        return ConferenceMediaTransport(
            MediaTransportConfig(
                host_addresses=tuple(xmpp.ice_addresses) or None,
                port_range=parse_port_range(xmpp.ice_ports),
                poller=self.datagram_poller,
            )
        )

    # -- registration ----------------------------------------------------------------------------

    async def _register(self) -> None:
        assert self.ua is not None
        account = self.config.sip.account
        aor = parse_uri(account.uri)
        # The AOR's host (and port, when it has one) unless a registrar is configured.
        home = f"{aor.host}:{aor.port}" if aor.port else aor.host
        registrar = _target_uri(account.registrar, home, account.transport)
        assert registrar is not None  # the AOR's host at least
        proxy = _target_uri(account.outbound_proxy, None, account.transport)
        config = RegistrationConfig(aor=aor, registrar=registrar, expires=account.expires)
        self.metrics.registration_state("registering")
        try:
            self.registration = await self.ua.register(config, via=proxy)
        except (OSError, LookupError, ValueError) as exc:
            # The registrar's name does not resolve (yet): keep trying in the background, as
            # for any other registration failure (jigasi.md §9 item 25: Jigasi gives up).
            log.warning("registrar %s not reachable yet: %s; retrying", registrar, exc)
            self.metrics.registration_state("retrying")
            self._spawn(self._register_later(config, proxy))

    async def _register_later(self, config: RegistrationConfig, proxy: Uri | None) -> None:
        delay = 2.0
        while self.ua is not None and self.registration is None:
            await asyncio.sleep(delay)
            try:
                self.registration = await self.ua.register(config, via=proxy)
            except (OSError, LookupError, ValueError) as exc:
                log.warning("registrar %s still not reachable: %s", config.registrar, exc)
                delay = min(delay * 2, 300.0)

    def _on_registration(self, event: RegistrationChanged) -> None:
        state = event.state
        log.info("registration %s: %s", state, event.reason)
        mapped = {
            RegistrationState.REGISTERING.value: "registering",
            RegistrationState.REGISTERED.value: "registered",
            RegistrationState.RETRYING.value: "retrying",
        }.get(state, "stopped")
        self.metrics.registration_state(mapped)

    # -- calls -----------------------------------------------------------------------------------

    def _on_call(self, call: Call) -> None:
        """A new INVITE (the core already sent 100 Trying)."""
        services = self._services
        if services is None or self.ua is None:
            call.reject(503, "Service Unavailable (starting)")
            return
        now = self.ua.now()
        request = call.request
        source = call.source.remote[0]
        clog = call_logger(call.call_id, None, "inbound")
        decision = self.access.check(
            source,
            method="INVITE",
            uri=str(request.uri),
            authorization=request.headers.get_all("Authorization"),
            now=now,
            body=request.body,
        )
        if decision.verdict is Verdict.CHALLENGE:
            clog.info("INVITE from %s challenged (%s)", source, decision.reason)
            call.reject(401, "Unauthorized", list(decision.headers))
            return
        if decision.verdict is Verdict.FORBID:
            clog.warning("INVITE from %s refused: %s", source, decision.reason)
            self.totals.calls_refused += 1
            call.reject(403, f"Forbidden ({decision.reason})")
            return
        try:
            room = self.resolver.resolve(
                request.headers,
                request_user=request.uri.user_unescaped,
                to_user=call.to.uri.user_unescaped,
            )
        except RoomNotFound as exc:
            # jigasi.md §9 item 1: the caller's operator must be able to read why.
            clog.warning("INVITE from %s refused: %s", source, exc.reason)
            self.totals.calls_refused += 1
            call.reject(486, reason_phrase(f"Busy Here ({exc.reason})"), [_warning(exc.reason)])
            return
        inbound = self.config.inbound
        display = caller_display_name(
            call.from_, mask=inbound.mask_caller_id, keep_digits=inbound.mask_keep_digits
        )
        session = InboundCall(services, call, room, display, received_at=now)
        self.calls[session.log_id] = session
        self._busy()
        self.totals.calls += 1
        session.on("ended", lambda result: self._call_ended(session, result))
        try:
            session.start()
        except (SipParseError, ValueError) as exc:
            clog.warning("call could not start: %s", exc)
            if not call.ended:
                call.reject(400, reason_phrase(f"Bad Request ({exc})"))
            self._forget(session)

    def _call_ended(self, session: CallSession, result: Result) -> None:
        flow = session.flow
        if result is Result.COMPLETED or result is Result.CANCELLED:
            self.totals.calls_completed += 1
        else:
            self.totals.calls_failed += 1
        if flow.answered_at is not None:
            self.totals.participants += 1
            self.totals.conference_seconds += max(0.0, session.loop.time() - flow.answered_at)
        self._forget(session)

    def _forget(self, session: CallSession) -> None:
        if self.calls.get(session.log_id) is session:
            del self.calls[session.log_id]
        if not self.calls:
            self._idle.set()
            if self._release is not None:
                self._release.cancel()
            loop = asyncio.get_running_loop()
            self._release = loop.call_later(self.idle_release_delay, self._release_memory)

    def _busy(self) -> None:
        self._idle.clear()
        if self._release is not None:
            self._release.cancel()
            self._release = None

    def _release_memory(self, again: bool = True) -> None:
        self._release = None
        if not self.calls:
            if self._services is not None:
                self._services.allocator.purge(asyncio.get_running_loop().time())
            release_memory()
            self.memory_releases += 1
            if again:  # once more when the ended calls' timers have let go of them
                delay = max(0.0, self.late_release_delay - self.idle_release_delay)
                loop = asyncio.get_running_loop()
                self._release = loop.call_later(delay, self._release_memory, False)

    # -- dial-out (jigasi.md §3) --------------------------------------------------------------

    def _start_brewery(self) -> None:
        brewery = self.config.brewery
        member = BreweryMember(
            BreweryClientConfig(
                room=brewery.room,
                username=brewery.username,
                password=brewery.password,
                server=self.xmpp_server,
                allowed_jid=brewery.allowed_jid or None,
            ),
            self.brewery_stats(),
        )
        member.on_dial = self._on_dial
        member.on_hangup = self._on_brewery_hangup
        self.brewery = member
        self._spawn(member.start())
        self._spawn(self._publish_stats_forever())

    def brewery_stats(self) -> BreweryStats:
        """jigasi.md §3.2, from what /about/stats reports."""
        stats = self.stats()
        return BreweryStats(
            conferences=stats["conferences"],
            participants=stats["participants"],
            graceful_shutdown=self._draining,
            stress_level=stats["stress_level"],
            region=self.config.xmpp.region or None,
            version=self.version()["version"],
        )

    async def _publish_stats_forever(self) -> None:
        # publish() sends only what changed: a call starting or ending, a room growing or
        # shrinking, a drain reach Jicofo within a second.
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            if self.brewery is not None:
                self.brewery.publish(self.brewery_stats())

    async def _on_dial(self, request: DialRequest, sender: str) -> str:
        """A Rayo dial relayed by Jicofo: join the room, answer with our occupant's ``ref``
        URI, call the number when the focus invites us (jigasi.md §3.3-§3.4)."""
        services, ua = self._services, self.ua
        if self._draining or services is None or ua is None:
            raise DialRefused("service-unavailable", "this gateway takes no new calls")
        account = self.config.sip.account
        target = dial_target(request.to, account)
        headers = extra_headers(request.headers)
        if not request.room:
            raise DialRefused("bad-request", "no JvbRoomName header")
        try:
            room = self.resolver.target(request.room, request.password, "rayo")
        except ValueError as exc:
            raise DialRefused("bad-request", f"JvbRoomName: {exc}") from None
        inbound = self.config.inbound
        display = number_display_name(
            request.to, mask=inbound.mask_caller_id, keep_digits=inbound.mask_keep_digits
        )
        self._dials += 1
        call = OutboundCall(
            services,
            self._send_invite,
            target,
            room,
            display,
            headers,
            started_at=ua.now(),
            log_id=f"dial-{self._dials}",
        )
        self.calls[call.log_id] = call
        self._busy()
        self.totals.calls += 1
        call.on("ended", lambda result: self._call_ended(call, result))
        call.log.info("Rayo dial of %s from %s", request.to, sender)
        try:
            return await asyncio.wait_for(call.start(), DIAL_CONFIRM_TIMEOUT)
        except TimeoutError:
            # Jicofo gives up after 15 s and tries another gateway: ours must be gone by
            # then, or the phone would ring twice (jigasi.md §3.3).
            call.stop("Could not join the room in time")
            raise DialRefused("remote-server-timeout", "could not join the room in time") from None

    async def _send_invite(
        self, uri: Uri, headers: list[tuple[str, str]], negotiator: MediaNegotiator
    ) -> Call:
        assert self.ua is not None
        account = self.config.sip.account
        if account.uri:
            from_addr = NameAddr(uri=parse_uri(account.uri))
        else:
            from_addr = NameAddr(uri=Uri(user="pygasi", host=self.ua.address))
        # The next hop: the outbound proxy, else a registrar given apart from the AOR's domain
        # (the trunk's edge), else RFC 3263 on the Request-URI's own host.
        proxy = _target_uri(account.outbound_proxy or account.registrar, None, account.transport)
        return await self.ua.invite(
            uri, from_addr, negotiator=negotiator, headers=headers, proxy=proxy
        )

    async def _on_brewery_hangup(self, to: str, sender: str) -> None:
        """A Rayo hangup on the brewery connection (jigasi.md §3.5: Jigasi's CallControl
        looks the session up by the IQ's ``to``).

        On the wire that ``to`` cannot name a call: the IQ is addressed to our occupant JID in
        the brewery, and the MUC service rewrites ``to`` to the occupant's real JID - our
        brewery connection's own full JID - before delivering it (a call's occupant JID lives
        in another room, on the call's own connection). So a ``to`` naming a call's occupant
        (its ``ref``, with or without ``xmpp:``) selects that call, and a ``to`` naming this
        brewery member selects its dial-out call when there is exactly one; with several it
        is ambiguous and refused (``item-not-found``): a hangup for one of them goes to the
        call's ``ref`` JID, as the meeting sends it. Anything else names no call of ours."""
        outbound = [c for c in self.calls.values() if isinstance(c, OutboundCall)]
        for call in outbound:
            participant = call.participant
            if participant is not None and to in (
                participant.occupant_jid,
                f"xmpp:{participant.occupant_jid}",
            ):
                call.hangup_requested(sender)
                return
        brewery = self.brewery
        if brewery is not None and to in (
            brewery.connection.jid,
            brewery.occupant_jid,
            f"xmpp:{brewery.occupant_jid}",
        ):
            live = [c for c in outbound if c.phase not in (Phase.LEAVING, Phase.ENDED)]
            if len(live) == 1:
                live[0].hangup_requested(sender)
                return
            if live:
                raise DialRefused(
                    "item-not-found",
                    f"{len(live)} dial-out calls here: send the hangup to the call's ref JID",
                )
            raise DialRefused("item-not-found", "no dial-out call here")
        raise DialRefused("item-not-found", f"no call {to}")

    # -- health and stats ------------------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {}
        problems: list[str] = []
        if self.ua is None:
            problems.append("SIP not listening")
            details["sip"] = "stopped"
        else:
            details["sip"] = "listening"
        if self.config.sip.account.uri:
            registration = self.registration
            if registration is None:
                details["registration"] = "not registered"
                problems.append("SIP trunk not registered yet")
            else:
                details["registration"] = registration.state.value
                if registration.state is not RegistrationState.REGISTERED:
                    problems.append(f"SIP trunk not registered: {registration.reason}")
        if self.config.brewery.room:
            brewery = self.brewery
            if brewery is not None and brewery.joined:
                details["brewery"] = "joined"
            else:
                details["brewery"] = "not joined"
                why = brewery.problem if brewery is not None else None
                problems.append(f"brewery {self.config.brewery.room} not joined: {why or '...'}")
        if self.xmpp_reachable:
            details["xmpp"] = "reachable"
        else:
            details["xmpp"] = "unreachable"
            problems.append(f"XMPP server {self.config.xmpp.server}: {self.xmpp_problem}")
        if problems:
            details["reason"] = "; ".join(problems)
        return not problems, details

    def rooms(self) -> dict[str, list[CallSession]]:
        """Our calls that are in their room, by room."""
        rooms: dict[str, list[CallSession]] = {}
        for call in self.calls.values():
            if call.phase.in_room or call.phase is Phase.LEAVING:
                rooms.setdefault(call.room.jid, []).append(call)
        return rooms

    def stats(self) -> dict[str, Any]:
        """jigasi.md §7.2 ``/about/stats`` keys that apply (and §3.2's participants rule:
        everyone in our rooms except the focus)."""
        sizes = [0] * SIZE_BUCKETS
        participants = 0
        rooms = self.rooms()
        for calls in rooms.values():
            members = _room_members(calls)
            participants += members
            sizes[min(max(members, 1), SIZE_BUCKETS) - 1] += 1
        totals = self.totals
        return {
            "conferences": len(rooms),
            "participants": participants,
            "calls": len(self.calls),
            "stress_level": round(len(rooms) / CONFERENCES_THRESHOLD, 4),
            "conference_sizes": sizes,
            "threads": threading.active_count(),
            "graceful_shutdown": self._draining,
            "total_calls": totals.calls,
            "total_calls_completed": totals.calls_completed,
            "total_calls_failed": totals.calls_failed,
            "total_calls_refused": totals.calls_refused,
            "total_participants": totals.participants,
            "total_conference_seconds": round(totals.conference_seconds),
            "uptime_seconds": round(time.time() - self.started_at),
            "media": media_report(self.clock, self.calls.values(), self.conferences),
        }

    def version(self) -> dict[str, str]:
        from gateway.cli import package_version

        return {"name": "pygasi", "version": package_version(), "os": platform.system()}

    # -- background work -------------------------------------------------------------------------

    async def probe_xmpp(self) -> None:
        """One TCP connect to the XMPP server (no login): enough to tell an operator that
        Prosody is down or unreachable before a caller finds out."""
        server = self.xmpp_server
        try:
            address = await resolve_server(server.host)
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(address, server.port), PROBE_TIMEOUT
            )
        except (OSError, TimeoutError, Exception) as exc:  # resolver errors too
            if self.xmpp_reachable is not False:
                log.warning("XMPP server %s unreachable: %s", self.config.xmpp.server, exc)
            self.xmpp_reachable = False
            self.xmpp_problem = str(exc) or type(exc).__name__
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if self.xmpp_reachable is False:
            log.info("XMPP server %s reachable again", self.config.xmpp.server)
        self.xmpp_reachable = True
        self.xmpp_problem = ""

    async def _probe_xmpp_forever(self) -> None:
        while True:
            await self.probe_xmpp()
            await asyncio.sleep(PROBE_INTERVAL)

    async def _report_quality_forever(self) -> None:
        while True:
            await asyncio.sleep(QUALITY_INTERVAL)
            self._report_quality()

    def _report_quality(self) -> None:
        # Its own frame: the loop above must not keep the last call's objects alive in its
        # variables until the next pass (an ended call's media would stay until then).
        for call in list(self.calls.values()):
            media = call.media
            report = media.rtp_report() if media is not None else None
            if report is not None:
                self.metrics.rtp_quality("sip", *report)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("gateway task failed", exc_info=task.exception())


def _room_members(calls: Iterable[CallSession]) -> int:
    """Everyone in a room except the focus, as our calls' conference legs see it."""
    members: set[str] = set()
    for call in calls:
        participant = call.participant
        if participant is None:
            continue
        focus = participant.config.focus_nick
        members.update(nick for nick in participant.occupants if nick != focus)
        if participant.me is not None:
            members.add(participant.me.nick)
    return len(members)


def _target_uri(value: str, default_host: str | None, transport: str) -> Uri | None:
    """A registrar or proxy setting (host, host:port or a SIP URI) as a URI; None when empty
    and no default."""
    text = value.strip() or (default_host or "")
    if not text:
        return None
    if not text.lower().startswith(("sip:", "sips:")):
        text = f"sip:{text}"
    uri = parse_uri(text)
    if transport != "udp" and "transport" not in uri.params:
        uri = uri.with_params(transport=transport)
    return uri


def _warning(text: str) -> tuple[str, str]:
    """RFC 3261 §20.43 Warning 399 (miscellaneous) carrying the cause in full."""
    printable = "".join(ch if " " <= ch <= "~" else "?" for ch in text)[:300]
    cleaned = printable.replace("\\", "").replace('"', "'")
    return ("Warning", f'399 pygasi "{cleaned}"')


__all__ = ["Gateway", "GatewayStartError", "Totals", "warm_up"]
