"""The connection shell's name handling: addresses without a thread (asyncio would resolve a
name with getaddrinfo in its thread pool), and one TLS context per setting."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.xmpp.harness import Leg
from tests.xmpp.prosody import Prosody
from xmpp.config import XmppServer
from xmpp.connection import _hosts_file, expire_scheduled, resolve_server, shared_ssl_context


async def test_literal_addresses_need_no_lookup() -> None:
    assert await resolve_server("127.0.0.1") == "127.0.0.1"
    assert await resolve_server("::1") == "::1"


def test_hosts_file(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# comment\n10.0.0.7  xmpp.internal  xmpp  # the server\n::1 ip6-localhost\n")
    assert _hosts_file("XMPP.internal", hosts) == "10.0.0.7"
    assert _hosts_file("xmpp", hosts) == "10.0.0.7"
    assert _hosts_file("ip6-localhost", hosts) == "::1"
    assert _hosts_file("comment", hosts) is None
    assert _hosts_file("x", tmp_path / "missing") is None


def test_one_tls_context_per_setting() -> None:
    a = shared_ssl_context(XmppServer(tls_verify=False))
    assert shared_ssl_context(XmppServer(port=1, tls_verify=False)) is a
    b = shared_ssl_context(XmppServer())
    assert b is not a and b.check_hostname and not a.check_hostname


@pytest.mark.prosody
async def test_connect_by_name_without_a_thread(prosody_server: Prosody) -> None:
    before = threading.active_count()
    leg = Leg(
        prosody_server,
        "byname",
        server=XmppServer("localhost", prosody_server.c2s_port, tls_verify=False),
    )
    await leg.join()
    assert leg.participant.connection.encrypted
    assert threading.active_count() == before
    await leg.leave()


async def test_a_closed_stream_times_its_iqs_out_now_and_cancels_other_timers() -> None:
    """slixmpp keeps a timer per IQ awaiting an answer (120 s by default) and the timer keeps
    the stream - and whoever registered handlers on it - alive; on a closed stream no answer
    can come, so the IQs time out at once and the other timers are cancelled."""
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    stream = SimpleNamespace(
        scheduled_events={
            "IqTimeout_7": loop.call_later(60.0, ran.append, "iq 7 timed out"),
            "Whitespace Keepalive": loop.call_later(60.0, ran.append, "keepalive"),
        }
    )
    expire_scheduled(stream)
    assert stream.scheduled_events == {}
    await asyncio.sleep(0)
    assert ran == ["iq 7 timed out"]
    await asyncio.sleep(0.05)
    assert ran == ["iq 7 timed out"]
    expire_scheduled(SimpleNamespace())  # a stream without timers: nothing to do
