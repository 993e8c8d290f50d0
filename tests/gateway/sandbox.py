"""A local sandbox conference for the dial-in tests and ``make demo``: Prosody (the real
server), the Jicofo emulator, and per invited gateway leg a videobridge endpoint that sends
each web participant's tone on its own SSRC and records what the leg sends
(tests/xmpp/jicofo.py and tests/xmpp/bridge.py follow reference/jingle.md).

Web participants are real MUC occupants (their own XMPP connections); what they "say" is a
sine at a frequency of their own, so every test can tell by FFT who is heard where.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.config import GatewayConfig
from tests.peers import free_port
from tests.xmpp.bridge import BridgeEndpoint, FakeParticipant
from tests.xmpp.jicofo import BridgeAllocation, EmulatedRoom, FakeWebParticipant, JicofoEmulator
from tests.xmpp.prosody import Prosody


class Sandbox:
    """``async with Sandbox(prosody) as sandbox:``."""

    def __init__(self, prosody: Prosody, *, min_participants: int = 2) -> None:
        self.prosody = prosody
        self.tones: dict[str, float] = {}  # web participant nick -> its frequency
        self.bridges: dict[str, BridgeEndpoint] = {}  # gateway leg nick -> its bridge endpoint
        self.web: dict[str, tuple[str, FakeParticipant | None]] = {}
        self.jicofo = JicofoEmulator(
            prosody, bridge_factory=self._allocate, min_participants=min_participants
        )

    async def __aenter__(self) -> Sandbox:
        await self.jicofo.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.jicofo.stop()
        for bridge in self.bridges.values():
            await bridge.close()

    def _room_of(self, nick: str) -> EmulatedRoom | None:
        for room in self.jicofo.rooms.values():
            if nick in room.occupants:
                return room
        return None

    async def _allocate(self, nick: str) -> BridgeAllocation:
        """What JVB forwards to a newly invited leg: every web participant's audio, each on the
        SSRC its source carries in Jingle."""
        bridge = BridgeEndpoint(("127.0.0.1",))
        room = self._room_of(nick)
        if room is not None:
            for fake in room.fakes.values():
                bridge.add_participant(fake.nick, self.tones[fake.nick], ssrc=fake.source.ssrc)
        old = self.bridges.get(nick)
        if old is not None:
            await old.close()
        self.bridges[nick] = bridge
        return bridge

    async def add_web(self, room: str, nick: str, frequency: float) -> FakeWebParticipant:
        """A web participant joins ``room`` and talks at ``frequency``; legs already invited
        get a source-add and, from their bridge endpoint, the new tone."""
        self.tones[nick] = frequency
        fake = await self.jicofo.add_fake_participant(room, nick)
        emulated = self.jicofo.room(room)
        for leg in emulated.invites:
            bridge = self.bridges.get(leg)
            # A leg invited while this participant joined already has it (_allocate).
            if bridge is not None and all(p.endpoint_id != nick for p in bridge.participants):
                bridge.add_participant(nick, frequency, ssrc=fake.source.ssrc)
        return fake

    async def remove_web(self, room: str, nick: str) -> None:
        await self.jicofo.remove_fake_participant(room, nick)
        for bridge in self.bridges.values():
            for participant in list(bridge.participants):
                if participant.endpoint_id == nick:
                    bridge.remove_participant(participant)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError("condition not met in time")
            await asyncio.sleep(0.05)


def gateway_config(prosody: Prosody, **sections: dict[str, Any]) -> GatewayConfig:
    """A gateway configuration for the sandbox: SIP on a free loopback port, ICE on loopback
    (aioice never offers 127.0.0.1 on its own, reference/deps.md §3), Prosody's self-signed
    certificate accepted. ``sections`` override keys per section, e.g.
    ``inbound={"default_room": "standup"}``."""
    config = GatewayConfig()
    config.sip.listen = f"127.0.0.1:{free_port()}"
    base = 20000 + 2 * (free_port() % 10000)
    config.sip.rtp_ports = f"{base}-{base + 199}"
    config.xmpp.server = f"127.0.0.1:{prosody.c2s_port}"
    config.xmpp.domain = prosody.domain
    config.xmpp.muc_domain = prosody.muc_domain
    config.xmpp.focus = prosody.focus_domain
    config.xmpp.tls_verify = False
    config.xmpp.ice_addresses = ["127.0.0.1"]
    config.xmpp.ice_ports = f"{base + 200}-{base + 399}"
    config.api.listen = ""
    for section, values in sections.items():
        target = config
        for part in section.split("__"):
            target = getattr(target, part)
        for key, value in values.items():
            if not hasattr(target, key):
                raise AttributeError(f"no key {key} in [{section}]")
            setattr(target, key, value)
    return config


__all__ = ["Sandbox", "gateway_config"]
