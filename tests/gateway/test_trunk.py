"""The gateway behind a SIP trunk: Kamailio as registrar and authenticating, record-routing
proxy (tests/kamailio.py, tests/sip/kamailio/proxy.cfg; reference/deps.md §7.2).

1. ``[sip.account]`` registers the gateway with a qop=auth digest that Kamailio itself checks;
   health and the ``pygasi_registration_state`` metric follow; a wrong password leaves the
   gateway not ready and retrying; ``stop()`` removes the binding (Kamailio's ``lookup`` finds
   the gateway before and nothing after).
2. A SIPp phone calls the trunk: Kamailio challenges it (407), looks the gateway up and relays
   the INVITE with Record-Route; the gateway joins the sandbox room, answers, audio flows both
   ways (checked by tone), and ACK and BYE come back through the proxy. The phone's RTP goes
   straight to the gateway.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from gateway.session import Phase, Result
from sip.digest import CredentialStore
from sip.headers import NameAddr
from sip.offer_answer import MediaNegotiator, OfferAnswerConfig
from sip.registration import Registration, RegistrationState
from sip.transport import ListenSpec
from sip.ua import CallFailedError, UAConfig, UserAgent
from sip.uri import parse_uri
from tests.gateway.harness import first_lines, only_call, phone_keys, running_gateway, wait_until
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.kamailio import HOST, PASSWORD, Kamailio, kamailio
from tests.peers import SippResult, free_port, run_sipp
from tests.phone import RtpPhone
from tests.xmpp.prosody import Prosody

pytestmark = [
    pytest.mark.kamailio,
    pytest.mark.prosody,
    pytest.mark.sipp,
    pytest.mark.slow,
    pytest.mark.timeout(90),
]

SCENARIO = Path(__file__).parent / "scenarios" / "trunk_dialin.xml"
GATEWAY_USER = "pygasi"  # the gateway's account at the trunk: sip:pygasi@127.0.0.1
AOR = f"sip:{GATEWAY_USER}@{HOST}"
ROOM = "sandbox"
ALICE, BOB = 440.0, 660.0  # the web participants
PHONE = 1000.0
TONES = [ALICE, BOB, PHONE]


# -- helpers ------------------------------------------------------------------------------------


def trunk_config(
    prosody_server: Prosody, kam: Kamailio, password: str = PASSWORD, **sections: dict[str, object]
) -> GatewayConfig:
    """The sandbox configuration with an account at Kamailio (its domain is its address, and
    the template accepts any user with :data:`PASSWORD`)."""
    account = {"uri": AOR, "password": password, "registrar": kam.address()}
    return gateway_config(prosody_server, sip__account=account, **sections)


async def registered(gateway: Gateway, kam: Kamailio) -> Registration:
    await wait_until(
        lambda: (
            gateway.registration is not None
            and gateway.registration.state is RegistrationState.REGISTERED
        ),
        timeout=5,
        what=f"registered\n{kam.log_tail()}",
    )
    assert gateway.registration is not None
    return gateway.registration


def metric_lines(gateway: Gateway, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the gateway's Prometheus text."""
    body, _ = gateway.metrics.render()
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        match = re.match(rf"{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def registration_state(gateway: Gateway) -> dict[str, float]:
    """The ``pygasi_registration_state`` enum: state -> 0.0 or 1.0."""
    return {
        re.sub(r'.*="(.*)"\}', r"\1", labels): value
        for labels, value in metric_lines(gateway, "pygasi_registration_state").items()
    }


async def call_the_aor(kam: Kamailio) -> tuple[CallFailedError, str]:
    """Place an INVITE (no room header) to the gateway's AOR through Kamailio, as a caller
    that authenticates to it, and return how it failed: the gateway refuses it (486, no
    room) when Kamailio found its binding; Kamailio answers 404 when it found none. Also
    returns how Kamailio routed it (its ROUTE line: ``location`` or ``not-found``)."""
    credentials = CredentialStore()
    credentials.add(None, "caller", PASSWORD)
    caller = UserAgent(UAConfig(listen=[ListenSpec("udp", HOST, 0)]), credentials=credentials)
    await caller.start()
    try:
        call = await caller.invite(
            parse_uri(AOR),
            NameAddr(uri=parse_uri(f"sip:caller@{HOST}")),
            negotiator=MediaNegotiator(
                HOST, free_port(even=True), OfferAnswerConfig(codecs=("PCMA",))
            ),
            proxy=kam.uri(),
        )
        with pytest.raises(CallFailedError) as failure:
            await asyncio.wait_for(call.wait_answered(), 10)
        routed = [r[2] for r in kam.lines("ROUTE") if r[1] == call.call_id]
        assert len(routed) == 1, kam.log_tail()
        return failure.value, routed[0]
    finally:
        await caller.close()


def trunk_call(
    kam: Kamailio, phone: RtpPhone, *, duration_ms: int, timeout: float = 30.0
) -> asyncio.Task[SippResult]:
    """SIPp calls the gateway's AOR at Kamailio (trunk_dialin.xml) with X-Room-Name."""
    key_args = phone_keys(room=ROOM, extra=("X-Test", "trunk"), phone=phone)
    return asyncio.ensure_future(
        run_sipp(
            str(SCENARIO),
            kam.address(),
            args=[
                *key_args,
                *("-s", GATEWAY_USER, "-d", str(duration_ms)),
                *("-au", "phone", "-ap", PASSWORD),
            ],
            timeout=timeout,
        )
    )


def record_routes(message: str) -> list[str]:
    entries: list[str] = []
    for value in re.findall(r"^Record-Route: *(.*?)\s*$", message, re.M | re.I):
        entries.extend(part.strip() for part in value.split(","))
    return entries


def digest_params(header: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="?([^",]*)"?', header))


def state_of(registration: Registration) -> RegistrationState:
    """Its state now (a call, so that mypy does not keep an earlier assert's narrowing)."""
    return registration.state


def xmpp_probed(gateway: Gateway) -> Callable[[], bool]:
    """Health also needs the XMPP server's probe (the first one runs at start)."""
    return lambda: gateway.xmpp_reachable is True


# -- 1. registration ------------------------------------------------------------------------------


async def test_registers_with_digest_reports_health_and_unregisters_on_stop(
    prosody_server: Prosody,
) -> None:
    async with kamailio() as kam:
        gateway = Gateway(trunk_config(prosody_server, kam), Metrics())
        await gateway.start()
        try:
            registration = await registered(gateway, kam)
            await wait_until(xmpp_probed(gateway), timeout=5, what="XMPP probed")
            ready, details = gateway.health()
            assert ready, details
            assert details["registration"] == "registered"
            assert "reason" not in details
            states = registration_state(gateway)
            assert states["registered"] == 1.0, states
            assert sum(states.values()) == 1.0, states

            # Kamailio challenged the first REGISTER and accepted our qop=auth answer.
            auths = [a for a in kam.lines("AUTH") if a[2] == registration.call_id]
            assert [(a[0], a[1], a[3]) for a in auths] == [
                ("REGISTER", "-5", "1"),  # no credentials: challenged
                ("REGISTER", "1", "2"),  # accepted
            ], kam.log_tail()
            params = digest_params(auths[1][4])
            assert params["username"] == GATEWAY_USER
            assert params["realm"] == HOST
            assert params["qop"] == "auth" and params["nc"] == "00000001"
            assert params["uri"] == f"sip:{kam.address()}"
            (save,) = kam.lines("SAVE")
            assert gateway.ua is not None
            contact = f"<sip:{GATEWAY_USER}@{HOST}:{gateway.ua.ports['udp']}>"
            assert (save[0], save[2], save[3]) == (registration.call_id, "600", contact)

            # Kamailio's lookup("location") finds the gateway: it refuses the room-less call
            # itself.
            found, how = await call_the_aor(kam)
            assert (found.status, how) == (486, "location"), found
            assert "no room" in found.reason
            assert gateway.totals.calls_refused == 1
        finally:
            await gateway.stop()

        # stop() un-REGISTERed: Expires 0 for our binding, accepted by Kamailio.
        assert registration.state is RegistrationState.STOPPED
        assert registration.reason == "unregistered (200 OK)"
        last = kam.lines("SAVE")[-1]
        assert (last[0], last[2]) == (registration.call_id, "0")
        assert registration_state(gateway)["stopped"] == 1.0
        ready, details = gateway.health()
        assert not ready and details["registration"] == "stopped"
        # ... and the binding is gone: Kamailio has nowhere to send the call.
        missing, how = await call_the_aor(kam)
        assert (missing.status, missing.reason, how) == (404, "Not Found", "not-found"), missing


async def test_registers_through_the_outbound_proxy(prosody_server: Prosody) -> None:
    # No registrar: the REGISTER names the AOR's domain (RFC 3261 §10.2), and goes to the
    # outbound proxy, which is the registrar here.
    async with kamailio() as kam:
        account = {"uri": AOR, "password": PASSWORD, "outbound_proxy": kam.address()}
        config = gateway_config(prosody_server, sip__account=account)
        async with running_gateway(config) as gateway:
            registration = await registered(gateway, kam)
            registers = [r for r in kam.lines("REQ") if r[4] == registration.call_id]
            assert [(r[0], r[6]) for r in registers] == [("REGISTER", f"sip:{HOST}")] * 2
            assert digest_params(kam.lines("AUTH")[-1][4])["uri"] == f"sip:{HOST}"
            found, how = await call_the_aor(kam)
            assert (found.status, how) == (486, "location"), found
        assert kam.lines("SAVE")[-1][2] == "0"


async def test_wrong_password_is_not_ready_and_keeps_retrying(prosody_server: Prosody) -> None:
    async with kamailio() as kam:
        config = trunk_config(prosody_server, kam, password="wrong")
        async with running_gateway(config) as gateway:
            await wait_until(xmpp_probed(gateway), timeout=5, what="XMPP probed")
            # Back-off from 2 s (halved at most by jitter): the second attempt within 2 s.
            await wait_until(
                lambda: gateway.registration is not None and gateway.registration.failures >= 2,
                timeout=6,
                what="two failed attempts",
            )
            registration = gateway.registration
            assert registration is not None
            assert registration.state is RegistrationState.RETRYING
            assert registration.reason.startswith("authentication failed"), registration.reason
            # Never gives up: the next attempt is scheduled.
            assert registration.timer_running("retry")
            ready, details = gateway.health()
            assert not ready
            assert details["registration"] == "retrying"
            assert details["reason"] == f"SIP trunk not registered: {registration.reason}"
            states = registration_state(gateway)
            assert states["retrying"] == 1.0 and sum(states.values()) == 1.0, states

            # Kamailio's codes: -5 no credentials (challenged), -2 wrong password; each
            # attempt starts over from a fresh challenge.
            auths = [a for a in kam.lines("AUTH") if a[2] == registration.call_id]
            assert [a[1] for a in auths[:4]] == ["-5", "-2", "-5", "-2"], kam.log_tail()
            assert not kam.lines("SAVE")
        # stop() ends the retries (nothing to un-REGISTER: no binding was made).
        assert state_of(registration) is RegistrationState.STOPPED
        assert not registration.timer_running("retry")


# -- 2. a call routed through Kamailio ------------------------------------------------------------


async def test_call_through_kamailio_joins_the_room_with_audio_both_ways(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    await sandbox.add_web(ROOM, "b2b2b2b2", BOB)
    phone = RtpPhone("PCMA", PHONE)
    await phone.open()
    try:
        async with kamailio() as kam:
            config = trunk_config(prosody_server, kam, inbound={"status_linger": 0.5})
            async with running_gateway(config) as gateway:
                await registered(gateway, kam)
                sipp = trunk_call(kam, phone, duration_ms=6000)
                call = await only_call(gateway)
                await wait_until(lambda: call.phase is Phase.CONNECTED, what="answered")
                media, participant = call.media, call.participant
                assert media is not None and participant is not None
                assert call.room.jid == f"{ROOM}@{prosody_server.muc_domain}"

                # The INVITE came through Kamailio: its Via on top, its Record-Route, the
                # room header intact, the caller's credentials consumed by the proxy.
                request = call.sip.request
                rr = f"<sip:{HOST}:{kam.port};lr;ftag={call.sip.from_.tag}>"
                assert request.top_via.sent_by == (HOST, kam.port)
                assert len(request.vias) == 2
                assert [str(r) for r in request.record_routes] == [rr]
                assert request.headers.get("X-Room-Name") == ROOM
                assert "Proxy-Authorization" not in request.headers

                # Media straight between the phone and the gateway.
                phone.start((HOST, media.ports.rtp_port))
                bridge = sandbox.bridges[participant.nick]
                await wait_until(lambda: bridge.connected.is_set(), what="bridge connected")
                mark = phone.mark()
                await asyncio.sleep(2.5)
                heard = phone.heard(TONES, since=mark + 25)
                assert heard.present == {ALICE, BOB}, heard
                assert bridge.heard(participant.local_ssrc, TONES, skip_frames=50).present == {
                    PHONE
                }

                result = await sipp
                assert result.successful_calls == 1, result.stdout + result.errors
                finished = await asyncio.wait_for(call.wait_finished(), 10)
                assert finished is Result.COMPLETED
                completed = metric_lines(gateway, "pygasi_calls_total")
                assert completed['{direction="inbound",result="completed"}'] == 1.0, completed

            # SIPp: challenged once, then ringing and the 200 relayed with the route set that
            # our 200 copied (RFC 3261 §12.1.1), so ACK and BYE went through Kamailio.
            lines = first_lines(result.received())
            statuses = [line.split(" ", 2)[1] for line in lines if line.startswith("SIP/2.0 ")]
            assert statuses[0] == "407"
            assert statuses.index("180") < statuses.index("200")
            (ok,) = [
                m
                for m in result.received()
                if m.startswith("SIP/2.0 200") and re.search(r"^CSeq: *2 INVITE", m, re.M | re.I)
            ]
            assert record_routes(ok) == [rr]
            routed = [(r[0], r[2]) for r in kam.lines("ROUTE") if r[1] == call.call_id]
            assert routed == [("INVITE", "location"), ("ACK", "loose"), ("BYE", "loose")]
    finally:
        await phone.close()
