"""Dial-out through a SIP trunk to a real phone (reference/jigasi.md §3, deps.md §7.2).

Kamailio is the trunk (tests/kamailio.py: registrar and authenticating, record-routing proxy);
baresip (tests/baresip.py) is the phone, registered at Kamailio as ``1001``, answering by
itself and saying a 1000 Hz tone. The gateway registers at Kamailio with ``[sip.account]`` and
joins the brewery; the Jicofo emulator relays Rayo dials to it.

1. The emulator dials the bare number ``1001``: the gateway joins the room, answers the dial
   with its ``ref``, and when the focus invites it sends ``INVITE sip:1001@<trunk domain>`` to
   the registrar as next hop. Kamailio challenges it (407), our stack answers the challenge,
   Kamailio's location lookup routes it to baresip, which rings and answers. Audio is checked
   by tone both ways (baresip's recording; the bridge emulator's stream of the leg), then a
   web participant's Rayo hangup sends baresip a BYE through the proxy.
2. A draining gateway refuses a Rayo dial sent straight to its brewery occupant (bypassing
   Jicofo's selection) with ``service-unavailable`` and publishes ``graceful_shutdown``; its
   call goes on, and once it ends the gateway un-REGISTERs.
3. A Rayo hangup on the brewery connection ends the dial-out call: CANCEL while the phone
   rings, BYE once it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from slixmpp import Iq
from slixmpp.exceptions import IqError

from gateway.app import Gateway
from gateway.config import GatewayConfig
from gateway.dialout import OutboundCall
from gateway.session import Phase, Result
from sip.registration import RegistrationState
from tests.baresip import Baresip, baresip
from tests.gateway.harness import header, running_gateway, statuses, wait_until
from tests.gateway.sandbox import Sandbox, gateway_config
from tests.kamailio import HOST, PASSWORD, Kamailio, LogLine, kamailio
from tests.xmpp.prosody import Prosody
from xmpp.connection import send_iq
from xmpp.rayo import DialRequest, build_dial, build_hangup, parse_ref

pytestmark = [
    pytest.mark.prosody,
    pytest.mark.kamailio,
    pytest.mark.baresip,
    pytest.mark.slow,
    pytest.mark.timeout(60),
]

ROOM = "sandbox"
GATEWAY_USER = "pygasi"  # the gateway's account at the trunk
AOR = f"sip:{GATEWAY_USER}@{HOST}"
PHONE_USER = "1001"  # baresip's account at the trunk: the number the meeting dials
ALICE, BOB, PHONE = 440.0, 660.0, 1000.0
TONES = [ALICE, BOB, PHONE]


# -- helpers ------------------------------------------------------------------------------------


def trunk_dialout_config(prosody: Prosody, kam: Kamailio) -> GatewayConfig:
    """The sandbox configuration with an account at Kamailio (its domain is its address; the
    registrar, given apart, is also the next hop of dialled numbers) and the brewery."""
    return gateway_config(
        prosody,
        sip__account={"uri": AOR, "password": PASSWORD, "registrar": kam.address()},
        brewery={
            "room": f"JigasiBrewery@{prosody.internal_muc_domain}",
            "username": f"jigasi@{prosody.auth_domain}",
            "password": prosody.password("jigasi"),
        },
        inbound={"status_linger": 1.0},
    )


@contextlib.asynccontextmanager
async def trunk_with_phone(
    prosody: Prosody, *, answermode: str = "auto"
) -> AsyncIterator[tuple[Kamailio, Baresip, Gateway]]:
    """Kamailio, baresip registered at it as :data:`PHONE_USER`, and the gateway registered at
    it too."""
    async with (
        kamailio() as kam,
        baresip(
            user=PHONE_USER,
            password=PASSWORD,
            registrar=kam.address(),
            tone=PHONE,
            answermode=answermode,
        ) as phone,
        running_gateway(trunk_dialout_config(prosody, kam)) as gateway,
    ):
        await wait_until(
            lambda: (
                gateway.registration is not None
                and gateway.registration.state is RegistrationState.REGISTERED
            ),
            timeout=5,
            what=f"gateway registered\n{kam.log_tail()}",
        )
        yield kam, phone, gateway


async def ready(sandbox: Sandbox, gateway: Gateway) -> None:
    """Jicofo in the brewery, the gateway too, and its stats seen."""
    await sandbox.jicofo.join_brewery()
    brewery = gateway.brewery
    assert brewery is not None
    await wait_until(lambda: brewery.joined, what="brewery joined")
    await wait_until(lambda: len(sandbox.jicofo.brewery_instances) >= 1, what="stats seen")


async def two_web(sandbox: Sandbox) -> None:
    await sandbox.add_web(ROOM, "a1a1a1a1", ALICE)
    await sandbox.add_web(ROOM, "b2b2b2b2", BOB)


def only_outbound(gateway: Gateway) -> OutboundCall:
    (call,) = gateway.calls.values()
    assert isinstance(call, OutboundCall)
    return call


def invite_auth(kam: Kamailio, call_id: str) -> list[tuple[str, str]]:
    """Kamailio's AUTH lines of one call's INVITEs: (result, CSeq) - ``-5`` no credentials
    (challenged with 407), ``1`` accepted."""
    return [(a[1], a[3]) for a in kam.lines("AUTH") if a[0] == "INVITE" and a[2] == call_id]


def routed(kam: Kamailio, call_id: str) -> list[tuple[str, str]]:
    """How Kamailio routed one call's requests: (method, ``location`` / ``loose`` / ...)."""
    return [(r[0], r[2]) for r in kam.lines("ROUTE") if r[1] == call_id]


def replies(kam: Kamailio, call_id: str) -> list[LogLine]:
    return [r for r in kam.lines("REPLY") if r[5] == call_id]


# -- 1. a number dialled through the trunk to a real phone ----------------------------------------


async def test_number_dialled_through_the_trunk_reaches_baresip_with_audio_both_ways(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    room_jid = f"{ROOM}@{prosody_server.muc_domain}"
    async with trunk_with_phone(prosody_server) as (kam, phone, gateway):
        await ready(sandbox, gateway)
        answer = await sandbox.jicofo.dial(ROOM, PHONE_USER, headers=[("X-Customer", "acme")])
        call = only_outbound(gateway)
        participant = call.participant
        assert participant is not None
        nick = participant.nick
        # The dial's result is the ref of our occupant in the room (jigasi.md §3.3).
        assert parse_ref(answer) == f"xmpp:{room_jid}/{nick}"
        # A bare number goes to the trunk's domain.
        assert str(call.target) == f"sip:{PHONE_USER}@{HOST}"
        await wait_until(
            lambda: call.phase is Phase.CONNECTED,
            what=f"baresip answered\n{kam.log_tail()}\n{phone.log_tail()}",
        )
        bridge = sandbox.bridges[nick]
        await wait_until(lambda: bridge.connected.is_set(), what="bridge connected")
        await asyncio.sleep(3.0)  # audio both ways

        # The meeting hears the phone's tone on the leg's SSRC ...
        from_phone = bridge.heard(participant.local_ssrc, TONES, skip_frames=50)
        assert from_phone.present == {PHONE}, from_phone.amplitudes
        # ... and the phone hears both web participants (its recording, decoded PCMU/PCMA).
        recordings = phone.recordings("dec")
        assert len(recordings) == 1, (recordings, phone.log_tail())
        heard = phone.heard(TONES, skip_seconds=1.0)
        assert heard.present == {ALICE, BOB}, heard.amplitudes

        # A web participant hangs up with Rayo: a BYE through Kamailio reaches baresip.
        hangup = await sandbox.jicofo.rayo_hangup("a1a1a1a1", parse_ref(answer))
        assert hangup["type"] == "result"
        assert await asyncio.wait_for(call.wait_finished(), 5.0) is Result.COMPLETED
        await phone.wait_for_log(r"^BYE sip:", timeout=5.0)
        await wait_until(lambda: nick not in sandbox.jicofo.room(ROOM).occupants, what="left")
        sip_call = call.sip
        assert sip_call is not None
        call_id = sip_call.call_id
        # Kamailio challenged the INVITE (407), accepted the second one with our answer, found
        # baresip by its registration and record-routed the dialog: ACK and BYE followed it.
        auth = invite_auth(kam, call_id)
        assert [result for result, _ in auth] == ["-5", "1"], kam.log_tail()
        assert int(auth[1][1]) == int(auth[0][1]) + 1
        assert routed(kam, call_id) == [("INVITE", "location"), ("ACK", "loose"), ("BYE", "loose")]
        # (Kamailio's UDP workers log the 180 and the 200 in either order.)
        assert "200" in [r[0] for r in replies(kam, call_id) if r[1] == "INVITE"]

        # The INVITE as baresip got it: our room and direction headers, the Rayo extra
        # header, no credentials (Kamailio consumed them), Kamailio's Record-Route.
        (invite,) = phone.requests("INVITE")
        assert re.match(rf"INVITE sip:{PHONE_USER}-\S*@{HOST}:{phone.sip_port}\S* SIP/2.0", invite)
        assert header(invite, "X-Room-Name") == room_jid
        assert header(invite, "JigasiCallDirection") == "out"
        assert header(invite, "X-Customer") == "acme"
        assert header(invite, "Proxy-Authorization") is None
        assert kam.address() in (header(invite, "Record-Route") or "")
        assert header(invite, "Call-ID") == call_id
        (bye,) = phone.requests("BYE")
        assert header(bye, "Reason") == 'SIP;cause=200;text="Hung up from the meeting"'

    # "Ringing" only when the 180 came before the 200 (see the test below).
    seen = statuses(sandbox, room_jid, nick)
    expected = ["Initializing Call", "calling", "Ringing", "Connected"]
    if "Ringing" not in seen:
        expected.remove("Ringing")
    assert seen[: len(expected)] == expected


# -- 2. a draining gateway refuses dials ----------------------------------------------------------


async def test_draining_gateway_refuses_a_dial_sent_straight_to_its_brewery_occupant(
    prosody_server: Prosody, sandbox: Sandbox
) -> None:
    await two_web(sandbox)
    room_jid = f"{ROOM}@{prosody_server.muc_domain}"
    async with trunk_with_phone(prosody_server) as (kam, phone, gateway):
        await ready(sandbox, gateway)
        brewery = gateway.brewery
        assert brewery is not None
        occupant = brewery.occupant_jid
        assert list(sandbox.jicofo.brewery_instances) == [occupant]
        # A call, so that the drain has something to wait for.
        answer = await sandbox.jicofo.dial(ROOM, PHONE_USER)
        call = only_outbound(gateway)
        await wait_until(lambda: call.phase is Phase.CONNECTED, what="baresip answered")
        registration = gateway.registration
        assert registration is not None
        invites = len([r for r in kam.lines("REQ") if r[0] == "INVITE"])

        drain = asyncio.ensure_future(gateway.drain(timeout=30.0))
        try:
            await wait_until(
                lambda: sandbox.jicofo.brewery_instances[occupant].graceful_shutdown,
                what="graceful_shutdown=true published",
            )
            # Jicofo would not pick it any more; a dial sent to it anyway is refused.
            iq = sandbox.jicofo.focus.iq(occupant)
            build_dial(iq, DialRequest("1002", None, room_jid, None))
            with pytest.raises(IqError) as refused:
                await send_iq(iq, 5.0)
            error = refused.value.iq["error"]
            assert (error["condition"], error["type"]) == ("service-unavailable", "cancel")
            assert str(refused.value.iq["from"]) == occupant
            # Nothing was started: no new call, no INVITE to the trunk; the call goes on.
            assert list(gateway.calls.values()) == [call]
            assert gateway.totals.calls == 1
            assert len([r for r in kam.lines("REQ") if r[0] == "INVITE"]) == invites
            assert call.phase is Phase.CONNECTED
            assert not drain.done()

            # The last call ends: the drain finishes and un-REGISTERs from the trunk.
            await sandbox.jicofo.rayo_hangup("a1a1a1a1", parse_ref(answer))
            await asyncio.wait_for(drain, 10.0)
        finally:
            if not drain.done():
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
        assert call.result is Result.COMPLETED
        await phone.wait_for_log(r"^BYE sip:", timeout=5.0)
        last = kam.lines("SAVE")[-1]
        assert (last[0], last[2]) == (registration.call_id, "0"), kam.log_tail()
    # Every stats presence after the drain began says so.
    published = sandbox.jicofo.stats_of(occupant)
    first = next(i for i, s in enumerate(published) if s.graceful_shutdown)
    assert all(s.graceful_shutdown for s in published[first:])


# -- 3. Rayo hangup on the brewery connection -----------------------------------------------------


@pytest.mark.parametrize(
    ("answermode", "method"),
    [("manual", "CANCEL"), ("auto", "BYE")],
    ids=["ringing-cancel", "answered-bye"],
)
async def test_rayo_hangup_on_the_brewery_connection_ends_the_dial_out_call(
    prosody_server: Prosody, sandbox: Sandbox, answermode: str, method: str
) -> None:
    await two_web(sandbox)
    room_jid = f"{ROOM}@{prosody_server.muc_domain}"
    async with trunk_with_phone(prosody_server, answermode=answermode) as (kam, phone, gateway):
        await ready(sandbox, gateway)
        brewery = gateway.brewery
        assert brewery is not None
        await sandbox.jicofo.dial(ROOM, PHONE_USER)
        call = only_outbound(gateway)
        if answermode == "auto":
            await wait_until(lambda: call.phase is Phase.CONNECTED, what="baresip answered")
        else:
            # baresip rings and waits for a human.
            await wait_until(lambda: call.dial_flow.ringing, what="ringing")
            await wait_until(
                lambda: any(m.startswith("SIP/2.0 180 ") for m in phone.sip_messages("send")),
                what="baresip sent 180",
            )
        participant = call.participant
        assert participant is not None
        nick = participant.nick

        def hangup_iq() -> Iq:
            # From Jicofo's occupant in the brewery to ours; Prosody delivers it with our
            # brewery connection's JID as "to".
            iq = sandbox.jicofo.focus.iq(brewery.occupant_jid)
            build_hangup(iq)
            return iq

        # With a second dial-out call (a quiet room: it waits for an invite that does not
        # come) the hangup names no call: refused, and both calls go on.
        await sandbox.jicofo.dial("quiet", "sip:+15550101@127.0.0.1:9")
        (quiet,) = [c for c in gateway.calls.values() if c is not call]
        assert isinstance(quiet, OutboundCall)
        with pytest.raises(IqError) as ambiguous:
            await send_iq(hangup_iq(), 5.0)
        assert ambiguous.value.iq["error"]["condition"] == "item-not-found"
        assert "2 dial-out calls" in str(ambiguous.value.iq["error"]["text"])
        assert not call.finished.done() and not quiet.finished.done()
        quiet.hangup_requested("test")
        assert await asyncio.wait_for(quiet.wait_finished(), 5.0) is Result.COMPLETED

        # One call left: the brewery hangup ends it.
        answer = await send_iq(hangup_iq(), 5.0)
        assert answer["type"] == "result"
        assert await asyncio.wait_for(call.wait_finished(), 5.0) is Result.COMPLETED
        await phone.wait_for_log(rf"^{method} sip:", timeout=5.0)
        await wait_until(lambda: nick not in sandbox.jicofo.room(ROOM).occupants, what="left")
        sip_call = call.sip
        assert sip_call is not None
        (request,) = phone.requests(method)
        assert header(request, "Call-ID") == sip_call.call_id
        if method == "CANCEL":
            # baresip ends the INVITE with 487, relayed back through Kamailio.
            await kam.wait_for(
                "REPLY", lambda r: r[5] == sip_call.call_id and r[0] == "487", timeout=5.0
            )
            assert "200" not in [r[0] for r in replies(kam, sip_call.call_id)]
        else:
            assert routed(kam, sip_call.call_id)[-1] == ("BYE", "loose")
            assert header(request, "Reason") == 'SIP;cause=200;text="Hung up from the meeting"'
    seen = statuses(sandbox, room_jid, nick)
    expected = ["Initializing Call", "calling", "Ringing"]
    if method == "BYE":
        expected.append("Connected")
        # baresip answering at once sends 180 and 200 back to back; Kamailio's UDP workers
        # relay them in parallel and the 180 may come second, when the call is already
        # answered and "Ringing" is rightly not shown (DialOutFlow.progress).
        if "Ringing" not in seen:
            expected.remove("Ringing")
    assert seen == [*expected, "Hung up from the meeting"]
