"""One XMPP c2s connection: a thin asyncio shell around slixmpp's `ClientXMPP`.

One connection per call, as Jigasi does (jigasi.md §1.4: every call is its own occupant, and
the focus addresses Jingle to the occupant JID). What makes that cheap:

* no thread: slixmpp is pure asyncio, but it would resolve a server name with
  ``getaddrinfo`` (the loop's thread pool); we connect to an address, resolving a name ourselves
  with dnspython's asyncio resolver (or ``/etc/hosts``), and load none of slixmpp's plugins
  (their XEP-0030/0115 machinery is replaced by `xmpp.caps` and `xmpp.stanzas`);
* one `ssl.SSLContext` for every connection with the same TLS settings (`shared_ssl_context`):
  a context loads the CA store, about 0.8 MiB each.

Login: plain TCP, then STARTTLS (RFC 6120 §5) verified against the XMPP domain unless
``tls_verify`` is off; SASL ANONYMOUS when no username is configured, else SCRAM/PLAIN over TLS
(RFC 6120 §6). Keepalive: XEP-0199 pings to the server; a lost or silent connection is
re-established with exponential back-off, and ``"online"`` is emitted again so the owner can
re-join its room.

Events (pyee): ``"online"`` (bound JID, str), ``"offline"`` (reason, str),
``"reconnect_failed"`` (the `ConnectionFailed` of one background attempt; `last_error` keeps
its text until the next success, for a health check).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import dns.asyncresolver
import dns.exception
import dns.resolver
from pyee.asyncio import AsyncIOEventEmitter
from slixmpp import ClientXMPP, Iq
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from xmpp import stanzas  # noqa: F401  (registers the stanza classes)
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.errors import AuthenticationFailed, ConnectionFailed

log = logging.getLogger("pygasi.xmpp.connection")

_CONTEXTS: dict[tuple[bool, str | None], ssl.SSLContext] = {}


def shared_ssl_context(server: XmppServer) -> ssl.SSLContext:
    """The process's TLS client context for these settings (created once)."""
    key = (server.tls_verify, server.ca_file)
    context = _CONTEXTS.get(key)
    if context is None:
        context = ssl.create_default_context(cafile=server.ca_file)
        if not server.tls_verify:
            # A self-signed Prosody certificate is common (jingle.md §11).
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _CONTEXTS[key] = context
    return context


def _hosts_file(name: str, path: Path = Path("/etc/hosts")) -> str | None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and name.lower() in (f.lower() for f in fields[1:]):
            return fields[0]
    return None


async def resolve_server(host: str) -> str:
    """An address for ``host`` without a thread: literal, /etc/hosts, then DNS A/AAAA."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host))
    listed = _hosts_file(host)
    if listed is not None:
        return listed
    resolver = dns.asyncresolver.Resolver()
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(host, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            raise ConnectionFailed(f"cannot resolve {host}: {exc}") from exc
        for record in answer:
            return str(record.address)
    raise ConnectionFailed(f"{host} has no address")


def reply(stanza: StanzaBase) -> Any:
    """``stanza.reply()`` (slixmpp leaves it untyped)."""
    return cast(Any, stanza).reply()


def send_iq_nowait(iq: Iq, timeout: float) -> asyncio.Future[Iq]:
    """Queue an IQ now (stanza order is kept) and return the future of its answer."""
    return cast("asyncio.Future[Iq]", cast(Any, iq).send(timeout=timeout))


async def send_iq(iq: Iq, timeout: float) -> Iq:
    """Send an IQ and wait for its result; raises slixmpp's IqError / IqTimeout."""
    return await send_iq_nowait(iq, timeout)


class _Client(ClientXMPP):
    """slixmpp's client with pygasi's defaults: no plugins, no SRV lookups, no direct TLS."""

    def __init__(self, jid: str, password: str, context: ssl.SSLContext, server: XmppServer):
        super().__init__(jid, password, ssl_context=context)
        self.enable_direct_tls = False  # 5222: plain TCP, then STARTTLS
        self.enable_starttls = server.starttls
        self.enable_plaintext = not server.starttls
        self.use_ipv6 = True
        # Our own XEP-0199 pings keep the connection alive; keep slixmpp's whitespace ones off.
        self.whitespace_keepalive = False

    def encrypted(self) -> bool:
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None


class XmppConnection(AsyncIOEventEmitter):
    """One c2s session that stays up: `start()` logs in once (raising on failure); afterwards a
    lost connection is re-established in the background until `close()`."""

    def __init__(
        self,
        config: ParticipantConfig,
        *,
        resource: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        jid = config.user_jid()
        if resource and not config.anonymous:
            jid = f"{jid}/{resource}"
        context = ssl_context if ssl_context is not None else shared_ssl_context(config.server)
        self.client = _Client(jid, config.password or "", context, config.server)
        self.client.add_event_handler("disconnected", self._disconnected)
        self.client.add_event_handler("ssl_invalid_chain", self._invalid_chain)
        self.client.register_handler(
            Callback("XEP-0199 ping", StanzaPath("iq@type=get/xmpp_ping"), self._pinged)
        )
        self._online = False
        self._closing = False
        self._address: str | None = None
        self._failure: str | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._reconnect: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.last_error: str | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    @property
    def jid(self) -> str:
        """Our bound full JID (changes on every anonymous login)."""
        return str(self.client.boundjid)

    @property
    def encrypted(self) -> bool:
        return self.client.encrypted()

    # -- connecting -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and log in; raises `ConnectionFailed` / `AuthenticationFailed`."""
        if self._closing:
            raise ConnectionFailed("connection closed")
        await self._attempt()
        self._went_online()

    async def _attempt(self) -> None:
        cfg = self.config
        if self._address is None:
            self._address = await resolve_server(cfg.server.host)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()
        self._failure = None

        def settle(result: str) -> Callable[[Any], None]:
            def handler(data: Any) -> None:
                if not outcome.done():
                    detail = f": {data}" if data not in (None, {}) and result != "ok" else ""
                    outcome.set_result(result + detail)

            return handler

        handlers = {
            "session_start": settle("ok"),
            "failed_all_auth": settle("auth"),
            "connection_failed": settle("connection failed"),
            "disconnected": settle("disconnected"),
            "stream_error": settle("stream error"),
        }
        for name, handler in handlers.items():
            self.client.add_event_handler(name, handler)
        try:
            self.client.connect(self._address, cfg.server.port)
            try:
                result = await asyncio.wait_for(outcome, cfg.connect_timeout)
            except TimeoutError:
                result = f"no session within {cfg.connect_timeout:g} s"
        finally:
            for name, handler in handlers.items():
                self.client.del_event_handler(name, handler)
        if result == "ok" and not self.client.encrypted() and not cfg.server.allow_plaintext:
            result = "the server did not offer TLS (allow_plaintext is off)"
        if result != "ok":
            # Stop slixmpp's own reconnection schedule: back-off is ours.
            self.client.cancel_connection_attempt()
            self.client.abort()
            detail = self._failure or result
            where = f"{cfg.server.host}:{cfg.server.port}"
            if result.startswith("auth"):
                raise AuthenticationFailed(f"SASL authentication failed at {where}")
            raise ConnectionFailed(f"XMPP connection to {where} failed: {detail}")

    def _went_online(self) -> None:
        self._online = True
        self.last_error = None
        self._keepalive = asyncio.ensure_future(self._ping_loop())
        log.debug("online as %s", self.jid)
        self.emit("online", self.jid)

    def _invalid_chain(self, error: Any) -> None:
        # Registering this handler stops slixmpp from swallowing the reason.
        self._failure = f"TLS certificate not accepted: {error}"
        self.client.abort()

    def _disconnected(self, reason: Any) -> None:
        was_online, self._online = self._online, False
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None
        if was_online and not self._closing:
            text = str(reason) if reason not in (None, {}) else "connection lost"
            log.info("XMPP connection lost (%s); reconnecting", text)
            self.emit("offline", text)
            self._reconnect = asyncio.ensure_future(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        first, maximum = self.config.reconnect_backoff
        delay = first
        while not self._closing:
            # Jitter keeps many calls from hammering a restarted server in step.
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            if self._closing:
                return
            try:
                await self._attempt()
            except ConnectionFailed as exc:
                log.info("XMPP reconnect failed: %s", exc)
                self.last_error = str(exc)
                self.emit("reconnect_failed", exc)
                delay = min(maximum, delay * 2)
                continue
            self.reconnects += 1
            self._went_online()
            return

    def _pinged(self, iq: StanzaBase) -> None:
        reply(iq).send()  # XEP-0199 §4: answer a server's ping

    async def _ping_loop(self) -> None:
        cfg = self.config
        while True:
            await asyncio.sleep(cfg.ping_interval)
            iq = self.client.Iq()
            iq["type"] = "get"
            iq["to"] = self.client.boundjid.domain
            iq.enable("xmpp_ping")
            try:
                await send_iq(iq, cfg.ping_timeout)
            except IqTimeout:
                log.info("no answer to a XEP-0199 ping in %g s: reconnecting", cfg.ping_timeout)
                self.client.abort()
                return
            except IqError:
                pass  # an error answer still proves the connection alive (XEP-0199 §4.2)

    # -- stanzas ----------------------------------------------------------------------------------

    def iq(self, to: str, type_: str = "set") -> Iq:
        iq = self.client.Iq()
        iq["to"] = to
        iq["type"] = type_
        return iq

    async def close(self, wait: float = 1.0) -> None:
        """Stop reconnecting and end the stream (waiting up to ``wait`` for the server)."""
        self._closing = True
        for task in (self._keepalive, self._reconnect):
            if task is not None:
                task.cancel()
        self._online = False
        self.client.cancel_connection_attempt()
        if self.client.transport is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.disconnect(wait=wait), wait + 1.0)
        self.client.abort()
        expire_scheduled(self.client)
        await stop_send_task(self.client)


def expire_scheduled(stream: Any) -> None:
    """Settle a closed stream's timers now. Every IQ sent with a reply expected has a timeout
    timer (slixmpp's ``IqTimeout_<id>``, 120 s when none is given) whose callback holds the
    stream, and through its handlers whatever registered them: a call's participant, media and
    codecs (bench/load.py found ~0.2 MiB per ended call held this way, then left as cyclic
    garbage). No answer can come on a closed stream, so those IQs time out now (their waiters
    get IqTimeout at once instead of later); other timers (keepalives) are cancelled."""
    events: dict[str, asyncio.TimerHandle] = getattr(stream, "scheduled_events", {})
    loop = asyncio.get_running_loop()
    for name, handle in list(events.items()):
        events.pop(name, None)
        # The timer's callback (asyncio.Handle keeps it in private attributes, which cancel()
        # clears): the IQ's timeout, run now.
        callback = getattr(handle, "_callback", None)
        args = getattr(handle, "_args", None) or ()
        handle.cancel()
        if name.startswith("IqTimeout_") and callback is not None:
            loop.call_soon(callback, *args)


async def stop_send_task(stream: Any) -> None:
    """slixmpp starts one send task per stream on connect and cancels it only when the
    object is garbage-collected; a closed connection stops it now (private attribute)."""
    task = getattr(stream, "_run_out_filters", None)
    if isinstance(task, asyncio.Future) and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
