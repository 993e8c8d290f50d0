"""Dial-out against real Prosody and the Jicofo emulator (jigasi.md §3, jingle.md §9): the
brewery member's join and stats presence, Jicofo's instance selection, the Rayo dial relayed to
``on_dial`` and its ``ref`` result, the allowed-JID check, refusals as IQ errors, the Rayo hangup
on a call's own connection, re-joining after a Prosody restart, and a wrong password."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET, StanzaBase

from tests.peers import free_port
from tests.xmpp.harness import Leg
from tests.xmpp.jicofo import JicofoEmulator, NoJigasiAvailable
from tests.xmpp.prosody import Prosody
from xmpp.brewery import BreweryConfig, BreweryMember, BreweryStats
from xmpp.caps import JIGASI
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.connection import XmppConnection, send_iq
from xmpp.rayo import DialRefused, DialRequest, build_dial, build_hangup, parse_ref

pytestmark = pytest.mark.prosody

COLIBRI = "http://jitsi.org/protocol/colibri"
NS_MUC = "http://jabber.org/protocol/muc"
SERVER_ADDED = {"{http://jabber.org/protocol/muc#user}x", "{urn:xmpp:occupant-id:0}occupant-id"}


def brewery_config(prosody: Prosody, **overrides: Any) -> BreweryConfig:
    config = BreweryConfig(
        room=f"JigasiBrewery@{prosody.internal_muc_domain}",
        username=f"jigasi@{prosody.auth_domain}",
        password=prosody.password("jigasi"),
        server=XmppServer(port=prosody.c2s_port, tls_verify=False),
        join_timeout=5.0,
        reconnect_backoff=(0.1, 0.5),
    )
    return dataclasses.replace(config, **overrides)


class Dials:
    """An ``on_dial`` that records its calls and answers with a ref (or what ``answer`` does)."""

    def __init__(self, answer: Callable[[DialRequest], Awaitable[str]] | None = None) -> None:
        self.calls: list[tuple[DialRequest, str]] = []
        self.answer = answer

    async def __call__(self, request: DialRequest, sender: str) -> str:
        self.calls.append((request, sender))
        if self.answer is not None:
            return await self.answer(request)
        return f"xmpp:{request.room}/c0ffee{len(self.calls):02d}"


@pytest.fixture
async def members(prosody_server: Prosody) -> AsyncIterator[list[BreweryMember]]:
    """Brewery members made by the test, stopped at the end."""
    made: list[BreweryMember] = []
    yield made
    for member in made:
        await member.stop(wait=0.2)


def member(
    made: list[BreweryMember], prosody: Prosody, stats: BreweryStats | None = None, **config: Any
) -> BreweryMember:
    created = BreweryMember(brewery_config(prosody, **config), stats or BreweryStats())
    made.append(created)
    return created


def record_outgoing(created: BreweryMember) -> list[ET.Element]:
    sent: list[ET.Element] = []

    def outgoing(stanza: StanzaBase) -> StanzaBase:
        sent.append(copy.deepcopy(stanza.xml))
        return stanza

    created.connection.client.add_filter("out", outgoing)
    return sent


def stat_pairs(presence: ET.Element) -> list[tuple[str, str]]:
    stats = presence.find(f"{{{COLIBRI}}}stats")
    assert stats is not None
    return [(s.attrib["name"], s.attrib["value"]) for s in stats]


def condition(exc: IqError) -> str:
    return str(exc.iq["error"]["condition"])


async def other_connection(
    prosody: Prosody, user: str = "jigasi", resource: str = "intruder"
) -> XmppConnection:
    connection = XmppConnection(
        ParticipantConfig(
            domain=prosody.domain,
            username=f"{user}@{prosody.auth_domain}",
            password=prosody.password(user),
            server=XmppServer(port=prosody.c2s_port, tls_verify=False),
            ping_interval=300.0,
        ),
        resource=resource,
    )
    await connection.start()
    return connection


async def test_member_joins_with_its_resource_and_publishes_stats(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    stats = BreweryStats(
        conferences=3, participants=11, stress_level=0.03, region="us-east-1", version="0.1.0"
    )
    brewery = member(members, prosody_server, stats)
    assert brewery.problem == "not started" and not brewery.joined
    sent = record_outgoing(brewery)
    await brewery.start()
    assert brewery.joined and brewery.problem is None
    # A generated resource (AUTO_GENERATE_RESOURCE) is the nick (jigasi.md §3.1).
    assert brewery.nick.startswith("pygasi-")
    assert brewery.connection.jid == f"jigasi@{prosody_server.auth_domain}/{brewery.nick}"
    assert brewery.occupant_jid == f"{jicofo.brewery_jid}/{brewery.nick}"
    assert jicofo.brewery_jid == f"jigasibrewery@{prosody_server.internal_muc_domain}"
    await jicofo.wait_for(lambda: brewery.occupant_jid in jicofo.jigasis)
    assert jicofo.jigasis[brewery.occupant_jid].stats == stats
    assert jicofo.brewery_instances == {brewery.occupant_jid: stats}
    # What Jicofo received: the stats element of §3.2, element by element, beside what
    # Prosody adds (the muc#user item, XEP-0421 occupant-id).
    (received,) = [p for p in jicofo.brewery_stats if p.occupant_jid == brewery.occupant_jid]
    assert received.stats == stats
    assert [child.tag for child in received.xml if child.tag not in SERVER_ADDED] == [
        f"{{{COLIBRI}}}stats"
    ]
    assert stat_pairs(received.xml) == [
        ("conferences", "3"),
        ("participants", "11"),
        ("graceful_shutdown", "false"),
        ("stress_level", "0.03"),
        ("region", "us-east-1"),
        ("version", "0.1.0"),
        ("supports_transcription", "false"),
        ("supports_sip", "true"),
    ]
    # What we sent: one join presence, <x xmlns=muc> and the stats, nothing else.
    presences = [x for x in sent if x.tag == "{jabber:client}presence"]
    (join,) = presences
    assert join.attrib["to"] == brewery.occupant_jid and "type" not in join.attrib
    assert [child.tag for child in join] == [f"{{{NS_MUC}}}x", f"{{{COLIBRI}}}stats"]
    # disco#info of the brewery connection has the Jigasi marker (§3.1).
    iq = jicofo.focus.iq(brewery.occupant_jid, "get")
    iq.enable("disco_info_query")
    answer = await send_iq(iq, 5.0)
    features = [
        f.attrib["var"] for f in answer.xml.iter("{http://jabber.org/protocol/disco#info}feature")
    ]
    assert JIGASI in features
    # A configured resource is used as is.
    named = member(
        members, prosody_server, username=f"jigasi@{prosody_server.auth_domain}/gw-east-1"
    )
    await named.start()
    assert named.nick == "gw-east-1" and named.joined
    await jicofo.wait_for(lambda: f"{jicofo.brewery_jid}/gw-east-1" in jicofo.jigasis)
    # Leaving removes the instance.
    await brewery.stop()
    assert not brewery.joined and brewery.problem == "stopped"
    await jicofo.wait_for(lambda: brewery.occupant_jid not in jicofo.jigasis)


async def test_publish_only_on_change(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server)
    await brewery.start()
    await jicofo.wait_for(lambda: len(jicofo.stats_of(brewery.occupant_jid)) == 1)
    brewery.publish(BreweryStats())  # equal: nothing sent
    busy = BreweryStats(conferences=1, participants=2, stress_level=0.01)
    brewery.publish(busy)
    brewery.publish(dataclasses.replace(busy))  # equal again
    await jicofo.wait_for(lambda: len(jicofo.stats_of(brewery.occupant_jid)) == 2)
    draining = dataclasses.replace(busy, graceful_shutdown=True)
    brewery.publish(draining)
    await jicofo.wait_for(lambda: len(jicofo.stats_of(brewery.occupant_jid)) == 3)
    # Stanza order is kept, so an extra presence would have arrived before the last one.
    assert jicofo.stats_of(brewery.occupant_jid) == [BreweryStats(), busy, draining]
    assert brewery.stats == draining


async def test_dial_reaches_on_dial_and_returns_the_ref(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server)
    dials = Dials()
    brewery.on_dial = dials
    await brewery.start()
    await jicofo.wait_for(lambda: brewery.occupant_jid in jicofo.jigasis)
    answer = await jicofo.dial(
        "dialroom",
        "+15551234567",
        password="s3cret",
        headers=[("X-Account", "team 7"), ("User-to-User", "04fa")],
        from_number="fromnumber",
    )
    room = f"dialroom@{prosody_server.muc_domain}"
    ((request, sender),) = dials.calls
    assert request == DialRequest(
        to="+15551234567",
        from_="fromnumber",
        room=room,
        password="s3cret",
        headers=(("X-Account", "team 7"), ("User-to-User", "04fa")),
    )
    # Prosody delivers the relayed dial from Jicofo's occupant JID in the brewery (§3.3).
    assert sender == f"{jicofo.brewery_jid}/focus"
    assert answer["type"] == "result"
    assert parse_ref(answer) == f"xmpp:{room}/c0ffee01"
    (attempt,) = jicofo.dial_attempts
    assert (attempt.instance, attempt.outcome) == (brewery.occupant_jid, "result")
    headers = [
        (h.attrib["name"], h.attrib["value"])
        for h in attempt.request.iter("{urn:xmpp:rayo:1}header")
    ]
    assert headers == [
        ("JvbRoomName", room),
        ("JvbRoomPassword", "s3cret"),
        ("X-Account", "team 7"),
        ("User-to-User", "04fa"),
    ]
    # Without a password: no JvbRoomPassword header, password None.
    await jicofo.dial("dialroom", "sip:100@pbx.test")
    assert dials.calls[1][0] == DialRequest("sip:100@pbx.test", None, room, None, ())


async def test_dial_from_another_jid_is_forbidden(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server)
    dials = Dials()
    hangups: list[tuple[str, str]] = []

    async def on_hangup(to: str, sender: str) -> None:
        hangups.append((to, sender))

    brewery.on_dial = dials
    brewery.on_hangup = on_hangup
    await brewery.start()
    request = DialRequest("+15550100", None, f"r@{prosody_server.muc_domain}", None)
    # Straight to the member's own JID from another connection of the same account, and from
    # the focus account outside the brewery: the bare JID is not the brewery room's.
    for user in ("jigasi", "focus"):
        intruder = await other_connection(prosody_server, user)
        try:
            iq = intruder.iq(brewery.connection.jid)
            build_dial(iq, request)
            with pytest.raises(IqError) as refused:
                await send_iq(iq, 5.0)
            assert condition(refused.value) == "forbidden"
            assert refused.value.iq["error"]["type"] == "auth"
            iq = intruder.iq(brewery.connection.jid)
            build_hangup(iq)
            with pytest.raises(IqError) as refused:
                await send_iq(iq, 5.0)
            assert condition(refused.value) == "forbidden"
        finally:
            await intruder.close(wait=0.2)
    assert dials.calls == [] and hangups == []
    # From the brewery (the allowed JID) a hangup reaches on_hangup, with the IQ's "to".
    iq = jicofo.focus.iq(brewery.occupant_jid)
    build_hangup(iq)
    answer = await send_iq(iq, 5.0)
    assert answer["type"] == "result"
    assert hangups == [(brewery.connection.jid, f"{jicofo.brewery_jid}/focus")]
    # A malformed dial from the allowed sender: bad-request with the reason.
    iq = jicofo.focus.iq(brewery.occupant_jid)
    iq["type"] = "set"
    ET.SubElement(iq.xml, "{urn:xmpp:rayo:1}dial", {"to": " "})
    with pytest.raises(IqError) as refused:
        await send_iq(iq, 5.0)
    assert condition(refused.value) == "bad-request"
    assert "'to'" in str(refused.value.iq["error"]["text"])
    assert dials.calls == []


async def test_an_allowed_jid_can_be_configured(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server, allowed_jid=prosody_server.focus_jid)
    brewery.on_dial = Dials()
    await brewery.start()
    await jicofo.wait_for(lambda: brewery.occupant_jid in jicofo.jigasis)
    # Now the brewery occupant JID is refused and the focus account directly accepted.
    with pytest.raises(IqError) as refused:
        await jicofo.dial("r", "100")
    assert condition(refused.value) == "forbidden"
    focus = await other_connection(prosody_server, "focus", "direct")
    try:
        iq = focus.iq(brewery.connection.jid)
        build_dial(iq, DialRequest("100", None, "r@conference.meet.test", None))
        assert parse_ref(await send_iq(iq, 5.0)) == "xmpp:r@conference.meet.test/c0ffee01"
    finally:
        await focus.close(wait=0.2)


async def test_refusals_become_error_conditions(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server)
    await brewery.start()
    await jicofo.wait_for(lambda: brewery.occupant_jid in jicofo.jigasis)
    # No handler: dial-out is off.
    with pytest.raises(IqError) as refused:
        await jicofo.dial("r", "100")
    assert condition(refused.value) == "service-unavailable"

    async def refuse(request: DialRequest) -> str:
        raise DialRefused("item-not-found", "no such room")

    brewery.on_dial = Dials(refuse)
    with pytest.raises(IqError) as refused:
        await jicofo.dial("r", "100")
    assert condition(refused.value) == "item-not-found"
    assert refused.value.iq["error"]["text"] == "no such room"

    async def crash(request: DialRequest) -> str:
        raise RuntimeError("Fail to join muc!")

    brewery.on_dial = Dials(crash)
    with pytest.raises(IqError) as refused:
        await jicofo.dial("r", "100")
    assert condition(refused.value) == "internal-server-error"
    assert refused.value.iq["error"]["text"] == "Fail to join muc!"
    assert brewery.joined  # a failing dial does not hurt the member

    async def refuse_hangup(to: str, sender: str) -> None:
        raise DialRefused("item-not-found", "no such call")

    brewery.on_hangup = refuse_hangup
    iq = jicofo.focus.iq(brewery.occupant_jid)
    build_hangup(iq)
    with pytest.raises(IqError) as refused:
        await send_iq(iq, 5.0)
    assert condition(refused.value) == "item-not-found"
    # Every attempt was recorded; with a single instance there is nothing to retry on.
    assert [(a.outcome, a.condition) for a in jicofo.dial_attempts] == [
        ("error", "service-unavailable"),
        ("error", "item-not-found"),
        ("error", "internal-server-error"),
    ]


async def test_selection_fewest_participants_and_never_a_draining_instance(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    busy = member(members, prosody_server, BreweryStats(conferences=2, participants=9))
    quiet = member(members, prosody_server, BreweryStats(conferences=1, participants=2))
    busy_dials, quiet_dials = Dials(), Dials()
    busy.on_dial, quiet.on_dial = busy_dials, quiet_dials
    await asyncio.gather(busy.start(), quiet.start())
    await jicofo.wait_for(lambda: {busy.occupant_jid, quiet.occupant_jid} <= set(jicofo.jigasis))
    await jicofo.dial("pick", "100")
    assert jicofo.dial_attempts[-1].instance == quiet.occupant_jid
    assert (len(busy_dials.calls), len(quiet_dials.calls)) == (0, 1)
    # The quiet one drains: it is never picked, although it has fewer participants.
    quiet.publish(BreweryStats(conferences=1, participants=2, graceful_shutdown=True))
    await jicofo.wait_for(lambda: jicofo.jigasis[quiet.occupant_jid].stats.graceful_shutdown)
    for _ in range(3):
        await jicofo.dial("pick", "100")
    assert [a.instance for a in jicofo.dial_attempts[1:]] == [busy.occupant_jid] * 3
    assert len(quiet_dials.calls) == 1
    # An instance that refuses is skipped for the next one (Jicofo's retry, jingle.md §9).
    quiet.publish(BreweryStats(conferences=1, participants=2))
    await jicofo.wait_for(lambda: not jicofo.jigasis[quiet.occupant_jid].stats.graceful_shutdown)

    async def refuse(request: DialRequest) -> str:
        raise DialRefused("service-unavailable", "draining")

    quiet.on_dial = Dials(refuse)
    answer = await jicofo.dial("pick", "100")
    assert answer["type"] == "result"
    assert [(a.instance, a.outcome, a.condition) for a in jicofo.dial_attempts[4:]] == [
        (quiet.occupant_jid, "error", "service-unavailable"),
        (busy.occupant_jid, "result", None),
    ]
    # Both draining (or gone): no instance qualifies.
    busy.publish(BreweryStats(graceful_shutdown=True))
    await quiet.stop()
    await jicofo.wait_for(
        lambda: (
            quiet.occupant_jid not in jicofo.jigasis
            and jicofo.jigasis[busy.occupant_jid].stats.graceful_shutdown
        )
    )
    with pytest.raises(NoJigasiAvailable):
        await jicofo.dial("pick", "100")


async def test_hangup_on_the_call_connection(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg = Leg(prosody_server, "hangroom")
    await leg.join()
    participant = leg.participant
    web = await jicofo.add_fake_participant("hangroom", "web1")
    await jicofo.wait_for(lambda: "web1" in participant.occupants)
    # The web client sends the hangup to the ref occupant JID (jigasi.md §3.5).
    answer = await jicofo.rayo_hangup("web1", f"xmpp:{participant.occupant_jid}")
    assert answer["type"] == "result"
    (sender,) = await leg.wait_event("hangup_requested")
    assert sender == f"{participant.room}/web1"
    # The focus may too.
    iq = jicofo.focus.iq(participant.occupant_jid)
    build_hangup(iq)
    assert (await send_iq(iq, 5.0))["type"] == "result"
    (sender,) = await leg.wait_event("hangup_requested", count=2)
    assert sender == participant.focus_occupant_jid
    # Someone outside the room, straight to our real JID: forbidden.
    outsider = XmppConnection(
        ParticipantConfig(
            domain=prosody_server.domain,
            server=XmppServer(port=prosody_server.c2s_port, tls_verify=False),
            ping_interval=300.0,
        )
    )
    await outsider.start()
    try:
        iq = outsider.iq(participant.connection.jid)
        build_hangup(iq)
        with pytest.raises(IqError) as refused:
            await send_iq(iq, 5.0)
        assert condition(refused.value) == "forbidden"
        # The web participant's own real JID is not its occupant JID either.
        iq = web.connection.iq(participant.connection.jid)
        build_hangup(iq)
        with pytest.raises(IqError) as refused:
            await send_iq(iq, 5.0)
        assert condition(refused.value) == "forbidden"
    finally:
        await outsider.close(wait=0.2)
    assert len(leg.of("hangup_requested")) == 2
    await leg.leave()


async def test_rejoins_and_republishes_after_a_prosody_restart(
    prosody_server: Prosody, jicofo: JicofoEmulator, members: list[BreweryMember]
) -> None:
    await jicofo.join_brewery()
    brewery = member(members, prosody_server, BreweryStats(conferences=1, participants=3))
    brewery.on_dial = Dials()
    events: list[tuple[str, str]] = []
    brewery.on("joined", lambda jid: events.append(("joined", jid)))
    brewery.on("left", lambda reason: events.append(("left", reason)))
    await brewery.start()
    await jicofo.wait_for(lambda: brewery.occupant_jid in jicofo.jigasis)
    before = len(jicofo.brewery_stats)
    await prosody_server.restart(pause=0.3)
    await jicofo.wait_for(lambda: not brewery.joined)
    assert brewery.problem
    # Calls ended while the server was away: the latest stats are the ones re-published.
    latest = BreweryStats(conferences=0, participants=0, version="0.1.0")
    brewery.publish(latest)
    await brewery.wait_joined(timeout=15.0)
    await jicofo.wait_for(
        lambda: (
            brewery.occupant_jid in jicofo.jigasis
            and jicofo.jigasis[brewery.occupant_jid].stats == latest
        ),
        timeout=15.0,
    )
    assert brewery.problem is None
    assert brewery.connection.reconnects == 1
    assert all(p.stats == latest for p in jicofo.brewery_stats[before:])
    assert [kind for kind, _ in events][:3] == ["joined", "left", "joined"]
    # And dials work again.
    answer = await jicofo.dial("after", "100")
    assert parse_ref(answer).startswith(f"xmpp:after@{prosody_server.muc_domain}/")


async def test_wrong_password_keeps_retrying(
    prosody_server: Prosody, members: list[BreweryMember]
) -> None:
    brewery = member(members, prosody_server, password="wrong", reconnect_backoff=(0.05, 0.1))
    await brewery.start()  # returns after the first attempt, without raising
    assert not brewery.joined
    assert brewery.problem is not None and "authentication failed" in brewery.problem
    await asyncio.wait_for(_until(lambda: brewery.attempts >= 3), 10.0)
    assert not brewery.joined and "authentication failed" in (brewery.problem or "")
    # Nobody listening: the reason says so.
    port = free_port(socket.SOCK_STREAM)
    unreachable = member(
        members, prosody_server, server=XmppServer(port=port, tls_verify=False), connect_timeout=1.0
    )
    await unreachable.start()
    assert unreachable.problem is not None and "XMPP login failed" in unreachable.problem
    assert "authentication" not in unreachable.problem
    await brewery.stop()
    # A stop during the first attempt ends a waiting start() too.
    silent = member(members, prosody_server, server=XmppServer(port=port, tls_verify=False))
    starting = asyncio.ensure_future(silent.start())
    await asyncio.sleep(0)
    await silent.stop()
    await asyncio.wait_for(starting, 2.0)
    assert silent.problem == "stopped"
    attempts = brewery.attempts
    await asyncio.sleep(0.3)
    assert brewery.attempts == attempts  # stopped means stopped


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.02)
