"""Our SIP stack against a real Kamailio as registrar and authenticating, record-routing proxy
(issue #2; recipe in reference/deps.md §7.2, config in tests/sip/kamailio/proxy.cfg).

Kamailio checks our digest answers itself (qop=auth with nonce counts), so a passing
registration here is a verdict by an independent implementation. What Kamailio did is read
from the ``PYGASI`` lines its config logs (tests/kamailio.py parses them).

SIPp callers authenticate to Kamailio like any phone would (407, then
``[authentication]``), so every INVITE that reaches us has passed the proxy's challenge.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sip.digest import CredentialStore
from sip.headers import NameAddr
from sip.message import Request
from sip.offer_answer import MediaNegotiator, OfferAnswerConfig
from sip.registration import Registration, RegistrationConfig, RegistrationState
from sip.transaction import TimerValues
from sip.transport import ListenSpec, TlsSettings
from sip.ua import Call, UAConfig, UserAgent
from sip.uri import parse_uri
from tests.kamailio import HOST, PASSWORD, TEMPLATE, Kamailio, KamailioError, kamailio
from tests.peers import SippResult, free_port, run_sipp
from tests.sip.uas_app import TestUas

pytestmark = [pytest.mark.kamailio, pytest.mark.timeout(30)]

SIPP_AUTH = ["-au", "sipp", "-ap", PASSWORD]


# -- helpers ------------------------------------------------------------------------------------


def _credentials(user: str, password: str = PASSWORD) -> CredentialStore:
    store = CredentialStore()
    store.add(None, user, password)  # any realm: Kamailio's is the To/From domain
    return store


async def _phone(
    user: str,
    *,
    timers: TimerValues | None = None,
    listen: list[ListenSpec] | None = None,
    tls: TlsSettings | None = None,
) -> TestUas:
    """A TestUas (answers every call) with credentials for ``user``."""
    uas = TestUas(timers=timers, listen=listen, tls=tls, credentials=_credentials(user))
    await uas.start()
    return uas


class CallLog:
    """The ACKs (``confirmed``) and BYEs a UA's incoming calls received."""

    def __init__(self, ua: UserAgent) -> None:
        self.acks: list[Request] = []
        self.byes: list[Request] = []
        # Registered before any call arrives, and pyee calls listeners synchronously, so no
        # ACK can slip past (TestUas answers in the same step as it queues the call).
        ua.on("call", self._on_call)

    def _on_call(self, call: Call) -> None:
        call.on("confirmed", self.acks.append)
        call.on("bye", self.byes.append)


async def _until(
    condition: Callable[[], bool], timeout: float = 5.0, what: str | Callable[[], str] = ""
) -> float:
    """Wait until ``condition()`` holds; returns how long that took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            raise TimeoutError(f"not within {timeout} s: {what() if callable(what) else what}")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def _register(
    ua: UserAgent,
    kam: Kamailio,
    user: str,
    transport: str = "udp",
    *,
    expires: int = 600,
    keepalive_interval: float = 30.0,
    backoff_initial: float = 2.0,
    backoff_cap: float = 300.0,
) -> Registration:
    registration = await ua.register(
        RegistrationConfig(
            aor=parse_uri(f"sip:{user}@{HOST}"),
            registrar=kam.uri(transport),
            expires=expires,
            keepalive_interval=keepalive_interval,
            backoff_initial=backoff_initial,
            backoff_cap=backoff_cap,
        )
    )
    await _until(
        lambda: registration.state is RegistrationState.REGISTERED,
        what=lambda: f"{user} registered ({registration.reason})\n{kam.log_tail()}",
    )
    return registration


def _statuses(result: SippResult) -> list[str]:
    return [m.split(" ", 2)[1] for m in result.received() if m.startswith("SIP/2.0 ")]


def _final_ok(result: SippResult) -> str:
    (ok,) = [
        m
        for m in result.received()
        if m.startswith("SIP/2.0 200") and re.search(r"^CSeq: *\d+ INVITE", m, re.M | re.I)
    ]
    return ok


def _record_routes(message: str) -> list[str]:
    """Every Record-Route entry of a message's text, in order."""
    entries: list[str] = []
    for value in re.findall(r"^Record-Route: *(.*?)\s*$", message, re.M | re.I):
        entries.extend(part.strip() for part in value.split(","))
    return entries


# -- 1. registration ------------------------------------------------------------------------------


async def test_register_with_qop_digest_and_refresh() -> None:
    async with kamailio(min_expires=1) as kam:
        ua = UserAgent(
            UAConfig(listen=[ListenSpec("udp", HOST, 0)]), credentials=_credentials("alice")
        )
        await ua.start()
        try:
            loop = asyncio.get_running_loop()
            registration = await _register(ua, kam, "alice", expires=2, keepalive_interval=0)
            registered_at = loop.time()
            assert registration.granted == 2
            # With a 2 s binding we refresh halfway: two refreshes about 2 s after the first.
            saves = await kam.wait_for(
                "SAVE", lambda line: line[0] == registration.call_id, count=3, timeout=4
            )
            elapsed = loop.time() - registered_at
            assert 1.7 <= elapsed <= 3.5, elapsed
            contact = f"<sip:alice@{HOST}:{ua.ports['udp']}>"
            assert [(s[2], s[3]) for s in saves] == [("2", contact)] * 3

            auths = [a for a in kam.lines("AUTH") if a[2] == registration.call_id]
            # The first REGISTER goes out without credentials and is challenged.
            assert auths[0][0] == "REGISTER" and auths[0][1] != "1" and auths[0][4] == "<null>"
            accepted = auths[1:4]
            assert [a[1] for a in accepted] == ["1", "1", "1"], kam.log_tail()
            assert [int(a[3]) for a in auths[:4]] == [1, 2, 3, 4]  # CSeq counts up (RFC 3261 §10.2)
            params = [dict(re.findall(r'(\w+)="?([^",]*)"?', a[4])) for a in accepted]
            for p in params:
                assert p["username"] == "alice" and p["qop"] == "auth" and p["algorithm"] == "MD5"
                assert p["uri"] == str(kam.uri())
            # Refreshes reuse the nonce with the nonce count going up (RFC 7616 §3.4), and a
            # new cnonce each time; Kamailio's nonce_count check accepted each of them.
            assert len({p["nonce"] for p in params}) == 1
            assert [p["nc"] for p in params] == ["00000001", "00000002", "00000003"]
            assert len({p["cnonce"] for p in params}) == 3
        finally:
            await ua.close()
        # close() un-REGISTERs (Expires: 0) with the same credentials.
        assert registration.state is RegistrationState.STOPPED
        assert registration.reason == "unregistered (200 OK)"
        last_save = kam.lines("SAVE")[-1]
        assert last_save[0] == registration.call_id and last_save[2] == "0"


async def test_wrong_password_keeps_retrying() -> None:
    async with kamailio() as kam:
        ua = UserAgent(
            UAConfig(listen=[ListenSpec("udp", HOST, 0)]),
            credentials=_credentials("alice", "wrong"),
        )
        await ua.start()
        try:
            registration = await ua.register(
                RegistrationConfig(
                    aor=parse_uri(f"sip:alice@{HOST}"),
                    registrar=kam.uri(),
                    backoff_initial=0.2,
                    backoff_cap=0.4,
                )
            )
            await _until(lambda: registration.failures >= 2, what="two failed attempts")
            assert registration.state is RegistrationState.RETRYING
            assert registration.reason.startswith("authentication failed"), registration.reason
            assert registration.granted is None
            auths = [a for a in kam.lines("AUTH") if a[2] == registration.call_id]
            # Kamailio's codes: -5 no credentials (challenged), -2 wrong password. After a
            # rejected answer the next attempt starts over from a fresh challenge.
            assert [(a[1], a[3]) for a in auths[:4]] == [
                ("-5", "1"),
                ("-2", "2"),
                ("-5", "3"),
                ("-2", "4"),
            ]
            assert all(a[1] != "1" for a in auths)
            assert not kam.lines("SAVE")
        finally:
            await ua.close()


# -- 2. a SIPp caller reaches us through Kamailio ----------------------------------------------


@pytest.mark.sipp
async def test_sipp_call_through_proxy_reaches_registered_uas() -> None:
    async with kamailio() as kam:
        uas = await _phone("alice")
        calls = CallLog(uas.ua)
        try:
            await _register(uas.ua, kam, "alice")
            result = await run_sipp(
                "uac_proxy_auth.xml", kam.address(), args=["-s", "alice", *SIPP_AUTH], timeout=10
            )
            assert result.returncode == 0, result.stdout + result.errors + kam.log_tail()
            assert result.successful_calls == 1
            assert _statuses(result)[0] == "407"  # Kamailio challenged SIPp's first INVITE

            (answered,) = uas.calls
            call = answered.call
            # Kamailio's rr module appends the caller's From tag (append_fromtag).
            rr = f"<sip:{HOST}:{kam.port};lr;ftag={call.from_.tag}>"
            assert call.headers.get("X-Room-Name") == "standup"
            assert "Proxy-Authorization" not in call.headers  # consumed by the proxy
            assert [str(r) for r in call.request.record_routes] == [rr]
            assert answered.streams[0].codec.name == "PCMA"
            # §12.1.1: our 200 copied Kamailio's Record-Route, so SIPp's ACK and BYE came back
            # through the proxy (two Vias: Kamailio's on top) and reached our dialog.
            assert _record_routes(_final_ok(result)) == [rr]
            (ack,) = calls.acks
            (bye,) = calls.byes
            for request in (ack, bye):
                assert len(request.vias) == 2
                assert request.top_via.sent_by == (HOST, kam.port)
            assert answered.end is not None and answered.end.by_remote
            routed = [(r[0], r[2]) for r in kam.lines("ROUTE") if r[1] == call.call_id]
            assert routed == [("INVITE", "location"), ("ACK", "loose"), ("BYE", "loose")]
        finally:
            await uas.close()


# -- 3. our INVITE through Kamailio -----------------------------------------------------------------


async def test_outgoing_invite_answers_407_and_reaches_callee() -> None:
    async with kamailio() as kam:
        bob = await _phone("bob")
        bob_calls = CallLog(bob.ua)
        alice = UserAgent(
            UAConfig(listen=[ListenSpec("udp", HOST, 0)]), credentials=_credentials("alice")
        )
        await alice.start()
        try:
            await _register(bob.ua, kam, "bob")
            custom = ("X-Jitsi-Conference", "room@conference.example.com; a=b;c, d")
            call = await alice.invite(
                parse_uri(f"sip:bob@{HOST}"),
                NameAddr(uri=parse_uri(f"sip:alice@{HOST}"), display_name="Alice"),
                negotiator=MediaNegotiator(
                    HOST, free_port(even=True), OfferAnswerConfig(codecs=("PCMA",))
                ),
                headers=[custom],
                proxy=kam.uri(),
            )
            stream = await asyncio.wait_for(call.wait_answered(), 5)
            assert stream is not None and stream.codec.name == "PCMA"

            (answered,) = bob.calls
            received = answered.call
            assert received.headers.get_all(custom[0]) == [custom[1]]
            assert "Proxy-Authorization" not in received.headers
            assert received.from_.uri.user == "alice" and received.from_.display_name == "Alice"
            assert received.call_id == call.call_id

            auths = [a for a in kam.lines("AUTH") if a[2] == call.call_id]
            assert [(a[0], a[3]) for a in auths] == [("INVITE", "1"), ("INVITE", "2")]
            challenged, accepted = auths
            assert challenged[1] != "1" and challenged[4] == "<null>"
            assert accepted[1] == "1", kam.log_tail()
            assert 'username="alice"' in accepted[4] and "qop=auth" in accepted[4]
            assert "nc=00000001" in accepted[4]

            # Our UAC built its route set from the 200's Record-Route: the ACK and our BYE
            # went through Kamailio (loose_route) and reached bob's dialog.
            await _until(lambda: len(bob_calls.acks) == 1, what="bob saw the ACK")
            assert bob_calls.acks[0].top_via.sent_by == (HOST, kam.port)
            call.hangup(200, "Done")
            end = await asyncio.wait_for(call.wait_ended(), 5)
            assert not end.by_remote
            await _until(lambda: answered.end is not None, what="bob saw the BYE")
            assert answered.end is not None and answered.end.by_remote
            (bye,) = bob_calls.byes
            assert bye.top_via.sent_by == (HOST, kam.port)
            routed = [(r[0], r[2]) for r in kam.lines("ROUTE") if r[1] == call.call_id]
            assert routed == [("INVITE", "location"), ("ACK", "loose"), ("BYE", "loose")]
        finally:
            await alice.close()
            await bob.close()


# -- 4. Kamailio restarts -----------------------------------------------------------------------------


@pytest.mark.sipp
async def test_reregisters_after_kamailio_restart() -> None:
    # Short timers so the outage is noticed within a second: a keep-alive OPTIONS every 0.3 s
    # times out after 64*T1 = 0.64 s (RFC 3261 Timer F); retries back off from 0.3 s, doubling,
    # up to a 1 s cap (with jitter), and each failed REGISTER also takes 64*T1.
    timers = TimerValues(t1=0.01, t2=0.25, t4=0.25)
    backoff_cap = 1.0
    async with kamailio() as kam:
        uas = await _phone("alice", timers=timers)
        states: list[str] = []
        uas.ua.on("registration", lambda event: states.append(event.state))
        try:
            registration = await _register(
                uas.ua,
                kam,
                "alice",
                expires=60,  # no refresh during the test: only the outage makes us re-register
                keepalive_interval=0.3,
                backoff_initial=0.3,
                backoff_cap=backoff_cap,
            )
            await kam.stop()
            await _until(
                lambda: registration.state is RegistrationState.RETRYING,
                timeout=3,
                what="outage noticed",
            )
            assert registration.reason == "registrar stopped answering keep-alives"
            # Two REGISTERs fail against nothing: the back-off has reached the cap
            # (0.3 * 2**2 > 1.0).
            await _until(lambda: registration.failures >= 3, timeout=5, what="3 failures")
            assert registration.state is RegistrationState.RETRYING
            assert registration.reason == "no response from registrar"

            await kam.start()  # a new process: it remembers no registration
            took = await _until(
                lambda: registration.state is RegistrationState.REGISTERED,
                timeout=5,
                what="re-registered",
            )
            # The pending retry fires within the cap, or a REGISTER already in flight is
            # retransmitted within T2; either reaches the new Kamailio.
            assert took <= backoff_cap + 0.2, took
            # One event per change of state or reason: the keep-alive failure, then the first
            # REGISTER timeout; later timeouts repeat the reason and are silent.
            assert states == ["registered", "retrying", "retrying", "registered"], states
            assert registration.failures == 0
            saves = kam.lines("SAVE")  # the restarted Kamailio's log only
            assert [s[0] for s in saves] == [registration.call_id]

            # lookup("location") in the new Kamailio finds the new binding.
            result = await run_sipp(
                "uac_proxy_auth.xml", kam.address(), args=["-s", "alice", *SIPP_AUTH], timeout=10
            )
            assert result.returncode == 0, result.stdout + result.errors + kam.log_tail()
            (answered,) = uas.calls
            assert answered.call.headers.get("X-Room-Name") == "standup"
        finally:
            await uas.close()


# -- 5. TLS ---------------------------------------------------------------------------------------------


@pytest.mark.sipp
async def test_register_and_call_over_tls() -> None:
    async with kamailio(tls=True) as kam:
        assert kam.tls is not None and kam.tls_port is not None
        tls = TlsSettings(
            certfile=str(kam.tls.certfile),
            keyfile=str(kam.tls.keyfile),
            cafile=str(kam.tls.certfile),  # we verify Kamailio's certificate against itself
            verify=True,
        )
        uas = await _phone("alice", listen=[ListenSpec("tls", HOST, 0)], tls=tls)
        calls = CallLog(uas.ua)
        try:
            registration = await _register(uas.ua, kam, "alice", transport="tls")
            (register,) = [
                r for r in kam.lines("REQ") if r[4] == registration.call_id and r[5] == "2"
            ]
            assert register[0] == "REGISTER" and register[1] == "tls"
            (save,) = kam.lines("SAVE")
            assert save[3] == f"<sip:alice@{HOST}:{uas.port};transport=tls>"

            # SIPp (no TLS) calls over UDP; Kamailio relays to our TLS contact.
            result = await run_sipp(
                "uac_proxy_auth.xml", kam.address(), args=["-s", "alice", *SIPP_AUTH], timeout=10
            )
            assert result.returncode == 0, result.stdout + result.errors + kam.log_tail()
            (answered,) = uas.calls
            call = answered.call
            assert call.source.transport == "tls"
            assert call.headers.get("X-Room-Name") == "standup"
            # Kamailio changed transport, so it record-routed twice (RFC 5658, r2=on):
            # our 200 carried both entries back in order.
            ftag = call.from_.tag
            expected = [
                f"<sip:{HOST}:{kam.tls_port};transport=tls;r2=on;lr;ftag={ftag}>",
                f"<sip:{HOST}:{kam.port};r2=on;lr;ftag={ftag}>",
            ]
            assert [str(r) for r in call.request.record_routes] == expected
            assert _record_routes(_final_ok(result)) == expected
            replies = [(r[0], r[2]) for r in kam.lines("REPLY") if r[5] == call.call_id]
            assert ("200", "tls") in replies
            assert len(calls.acks) == 1 and len(calls.byes) == 1
            for request in (calls.acks[0], calls.byes[0]):
                assert request.top_via.sent_by == (HOST, kam.tls_port)
                assert request.top_via.transport == "TLS"
            assert answered.end is not None and answered.end.by_remote
        finally:
            await uas.close()


# -- the fixture itself ---------------------------------------------------------------------------


async def test_fixture_rejects_a_broken_config_and_leaves_no_process(tmp_path: Path) -> None:
    broken = tmp_path / "broken.cfg"
    broken.write_text(TEMPLATE.read_text().replace("t_relay();", "t_relay(;", 1))
    with pytest.raises(KamailioError, match=r"kamailio -c rejected .*broken\.cfg") as failure:
        await Kamailio(tmp_path, template=broken).start()
    assert "syntax error" in str(failure.value)

    async with kamailio() as kam:
        assert kam.process is not None
        group = kam.process.pid  # its own session: the process group of it and its children
        os.killpg(group, 0)  # something to signal while it runs
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)  # the main process and every child are gone
