"""Operational properties of the conference leg against real Prosody: a server restart in the
middle of a call, and no thread per leg (Jigasi's thread leaks, design.md "Concurrency")."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from tests.xmpp.harness import Leg
from tests.xmpp.jicofo import JicofoEmulator
from tests.xmpp.prosody import Prosody, prosody
from tests.xmpp.test_invite import invited
from xmpp.connection import shared_ssl_context
from xmpp.errors import JoinTimeout
from xmpp.jingle import JingleReason
from xmpp.participant import ParticipantState
from xmpp.session import SessionState

pytestmark = pytest.mark.prosody


async def test_prosody_restart_mid_call(prosody_server: Prosody, jicofo: JicofoEmulator) -> None:
    leg = Leg(prosody_server, "phoenix", reply_timeout=2.0)
    await leg.join()
    await jicofo.add_fake_participant("phoenix")
    first = await invited(jicofo, "phoenix", leg)
    media = leg.media
    old_nick = leg.participant.nick
    await prosody_server.restart(pause=0.3)
    (reason,) = await leg.wait_event("connection_lost")
    assert reason
    (ended,) = await leg.wait_event("session_terminated")
    # Prosody's shutdown may tell us the focus left the room before it closes our stream.
    assert ended.sid == first.sid
    assert ended.reason in (
        JingleReason("connectivity-error", "XMPP connection lost"),
        JingleReason("gone", "Focus left"),
    )
    await asyncio.sleep(0)
    assert media.closed
    await leg.wait_event("connection_restored", timeout=10.0)
    (me,) = await leg.wait_event("rejoined", timeout=15.0)
    participant = leg.participant
    assert participant.state is ParticipantState.JOINED
    assert participant.connection.reconnects == 1
    # A new anonymous login, so a new nick (the old occupant may linger, jigasi.md §1.9).
    assert me.nick == participant.nick != old_nick
    # The focus is back in the room and sees us; with a web participant back, a new invite.
    room = jicofo.room("phoenix")
    await jicofo.wait_for(lambda: participant.nick in room.occupants and "focus" in room.occupants)
    await jicofo.add_fake_participant("phoenix")
    second = await invited(jicofo, "phoenix", leg)
    assert second.sid != first.sid
    assert participant.session_state is SessionState.ACTIVE
    assert leg.media is not media
    await leg.leave()


async def test_thread_count_does_not_grow_with_legs(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    warm_up = Leg(prosody_server, "warmup")  # imports, the shared SSL context, the loop
    await warm_up.join()
    await warm_up.leave()
    before = threading.active_count()
    legs = [Leg(prosody_server, "crowd") for _ in range(20)]
    started = time.perf_counter()
    await asyncio.gather(*(leg.join() for leg in legs))
    joined = time.perf_counter() - started
    await jicofo.add_fake_participant("crowd")
    await jicofo.wait_for(
        lambda: all(leg.participant.session_state is SessionState.ACTIVE for leg in legs),
        timeout=20.0,
    )
    # Every leg hears every other leg and the web participant (the emulator's source-add).
    await jicofo.wait_for(
        lambda: all(len(leg.participant.remote_sources) == 1 + 19 + 1 for leg in legs),
        timeout=20.0,
    )
    assert threading.active_count() == before
    # One TLS context for all of them (each would cost about 0.8 MiB).
    contexts = {id(leg.participant.connection.client.ssl_context) for leg in legs}
    assert contexts == {id(shared_ssl_context(legs[0].participant.config.server))}
    assert all(leg.participant.connection.encrypted for leg in legs)
    assert joined < 10.0
    await asyncio.gather(*(leg.leave() for leg in legs))
    assert threading.active_count() == before


async def test_a_silent_server_is_noticed_by_pings(
    prosody_server: Prosody, jicofo: JicofoEmulator
) -> None:
    leg = Leg(prosody_server, "silent", ping_interval=0.2, ping_timeout=0.3, connect_timeout=1.0)
    await leg.join()
    await asyncio.sleep(0.5)
    pings = [x for x in leg.sent if x.find("{urn:xmpp:ping}ping") is not None]
    assert len(pings) >= 2  # XEP-0199 client-to-server pings, answered while all is well
    assert all(p.attrib["to"] == prosody_server.domain and p.attrib["type"] == "get" for p in pings)
    assert leg.of("connection_lost") == []
    # A server that stops answering (not a closed socket): the ping times out.
    assert prosody_server.process is not None
    pid = prosody_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await leg.wait_event("connection_lost", timeout=3.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    await leg.wait_event("rejoined", timeout=10.0)
    assert leg.participant.state is ParticipantState.JOINED
    await leg.leave()


async def test_join_timeout(prosody_server: Prosody) -> None:
    leg = Leg(prosody_server, "stalled", conference_request=False, join_timeout=0.3)
    await leg.participant.connection.start()
    assert prosody_server.process is not None
    pid = prosody_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(JoinTimeout):
            await leg.join()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert leg.participant.state is ParticipantState.LEFT


async def test_prosody_fixture_starts_fast_and_leaves_nothing() -> None:
    started = time.perf_counter()
    async with prosody() as server:
        assert time.perf_counter() - started < 1.0
        assert server.process is not None
        group = server.process.pid
        # The brewery MUC exists (internal.auth.<domain>), for Jigasi-style stats presence.
        leg = Leg(server, f"JigasiBrewery@{server.internal_muc_domain}", conference_request=False)
        await leg.join()
        assert leg.participant.room == f"jigasibrewery@{server.internal_muc_domain}"
        await leg.leave()
        await server.restart()
        assert server.running and server.process.pid != group
        group = server.process.pid
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
