"""A test double of gateway.app.Gateway for the API and daemon tests."""

from __future__ import annotations

import asyncio
from typing import Any


class FakeGateway:
    """Records what the daemon asks; ``calls`` active calls end when ``end_calls()`` is called
    (or at stop)."""

    def __init__(
        self, *, ready: bool = True, reason: str = "", start_error: Exception | None = None
    ):
        self.ready = ready
        self.reason = reason
        self.start_error = start_error
        self.started = False
        self.stopped = False
        self.drain_timeout: float | None = None
        self.events: list[str] = []
        self.calls = 1
        self._draining = False
        self._calls_ended = asyncio.Event()
        self.start_delay = 0.0

    @property
    def draining(self) -> bool:
        return self._draining

    async def start(self) -> None:
        self.events.append("start")
        if self.start_delay:
            await asyncio.sleep(self.start_delay)
        if self.start_error is not None:
            raise self.start_error
        self.started = True

    async def drain(self, timeout: float | None = None) -> None:
        self.events.append("drain")
        self._draining = True
        self.drain_timeout = timeout
        await self._calls_ended.wait()
        self.events.append("drained")

    async def stop(self) -> None:
        self.events.append("stop")
        self.stopped = True
        self.end_calls()

    def end_calls(self) -> None:
        self.calls = 0
        self._calls_ended.set()

    def health(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"sip": "listening", "xmpp": "reachable"}
        if self._draining:
            return False, {**details, "reason": "draining"}
        if not self.ready:
            return False, {**details, "reason": self.reason}
        return True, details

    def stats(self) -> dict[str, Any]:
        return {
            "conferences": self.calls,
            "participants": 3 * self.calls,
            "stress_level": 0.01 * self.calls,
            "graceful_shutdown": self._draining,
            "total_conferences_completed": 7,
            "total_participants": 21,
            "total_conference_seconds": 420,
            "total_calls_with_dropped_media": 0,
        }

    def version(self) -> dict[str, str]:
        return {"name": "pygasi", "version": "0.1.0", "os": "Linux"}
