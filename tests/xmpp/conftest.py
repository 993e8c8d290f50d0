"""Fixtures for the conference-leg tests: a fresh Prosody and Jicofo emulator per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.xmpp.jicofo import JicofoEmulator
from tests.xmpp.prosody import Prosody, prosody


@pytest.fixture
async def prosody_server() -> AsyncIterator[Prosody]:
    async with prosody() as server:
        yield server


@pytest.fixture
async def jicofo(prosody_server: Prosody) -> AsyncIterator[JicofoEmulator]:
    async with JicofoEmulator(prosody_server) as emulator:
        yield emulator
