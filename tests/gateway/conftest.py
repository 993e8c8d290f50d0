"""Fixtures of the dial-in tests: a fresh Prosody and sandbox conference per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.sandbox import Sandbox
from tests.xmpp.prosody import Prosody, prosody


@pytest.fixture
async def prosody_server() -> AsyncIterator[Prosody]:
    async with prosody() as server:
        yield server


@pytest.fixture
async def sandbox(prosody_server: Prosody) -> AsyncIterator[Sandbox]:
    # Jicofo invites once three are in: the gateway's leg and two web participants.
    async with Sandbox(prosody_server, min_participants=3) as box:
        yield box
