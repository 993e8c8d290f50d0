"""The connection shell's name handling: addresses without a thread (asyncio would resolve a
name with getaddrinfo in its thread pool), and one TLS context per setting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.xmpp.harness import Leg
from tests.xmpp.prosody import Prosody
from xmpp.config import XmppServer
from xmpp.connection import _hosts_file, resolve_server, shared_ssl_context


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
