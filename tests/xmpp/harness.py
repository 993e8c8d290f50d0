"""Helpers for the conference-leg tests that run against Prosody and the Jicofo emulator."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from slixmpp.xmlstream import ET, StanzaBase

from tests.xmpp.fake_media import FakeMedia
from tests.xmpp.prosody import Prosody
from xmpp.config import ParticipantConfig, XmppServer
from xmpp.media_api import MediaFactory
from xmpp.participant import ConferenceParticipant

EVENTS = (
    "joined",
    "rejoined",
    "session_started",
    "session_accepted",
    "session_terminated",
    "media_state",
    "dtmf",
    "sources_added",
    "sources_removed",
    "mute_requested",
    "hangup_requested",
    "occupant_joined",
    "occupant_left",
    "focus_joined",
    "focus_left",
    "kicked",
    "room_destroyed",
    "connection_lost",
    "connection_restored",
    "failed",
)


def leg_config(prosody: Prosody, **overrides: Any) -> ParticipantConfig:
    config = ParticipantConfig(
        domain=prosody.domain,
        server=XmppServer(port=prosody.c2s_port, tls_verify=False),
        reply_timeout=5.0,
        join_timeout=5.0,
        conference_timeout=10.0,
        reconnect_backoff=(0.1, 0.5),
    )
    return dataclasses.replace(config, **overrides)


class Leg:
    """A ConferenceParticipant with every event and every outgoing stanza recorded."""

    def __init__(
        self,
        prosody: Prosody,
        room: str,
        *,
        display_name: str | None = "+1 555 0100",
        room_password: str | None = None,
        media_factory: MediaFactory = FakeMedia,
        **config: Any,
    ) -> None:
        self.participant = ConferenceParticipant(
            leg_config(prosody, **config),
            room,
            display_name,
            password=room_password,
            media_factory=media_factory,
        )
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.sent: list[ET.Element] = []
        self._changed = asyncio.Event()
        for name in EVENTS:
            self.participant.on(name, self._recorder(name))
        self.participant.connection.client.add_filter("out", self._outgoing)

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.events.append((name, args))
            self._changed.set()

        return record

    def _outgoing(self, stanza: StanzaBase) -> StanzaBase:
        self.sent.append(copy.deepcopy(stanza.xml))
        return stanza

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for event, args in self.events if event == name]

    async def wait_event(self, name: str, count: int = 1, timeout: float = 10.0) -> tuple[Any, ...]:
        """The ``count``-th occurrence of event ``name`` (waiting for it)."""

        async def wait() -> tuple[Any, ...]:
            while len(self.of(name)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.of(name)[count - 1]

        return await asyncio.wait_for(wait(), timeout)

    def sent_with(self, tag: str) -> list[ET.Element]:
        return [x for x in self.sent if x.find(tag) is not None or x.find(f".//{tag}") is not None]

    @property
    def media(self) -> FakeMedia:
        media = self.participant.media
        assert isinstance(media, FakeMedia)
        return media

    async def join(self) -> None:
        await self.participant.join()

    async def leave(self) -> None:
        await self.participant.leave()
