"""A test double of the conference media transport (the `xmpp.media_api.MediaTransport` shape):
no sockets, a fixed local transport, and a record of what the signalling asked of it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable

from pyee.asyncio import AsyncIOEventEmitter

from media.rtp import RtpPacket
from xmpp.transport_info import (
    AudioSession,
    DtlsFingerprint,
    IceCandidate,
    MediaSource,
    TransportDescription,
)

FINGERPRINT = ":".join(f"{b:02X}" for b in range(32))


def local_transport() -> TransportDescription:
    return TransportDescription(
        ufrag=secrets.token_hex(2),
        pwd=secrets.token_hex(11),
        candidates=(
            IceCandidate("3c9a", 1, "udp", 2130706431, "192.0.2.50", 41234, "host", 0, "k2j4"),
            IceCandidate(
                "77aa",
                1,
                "udp",
                1694498815,
                "203.0.113.60",
                41234,
                "srflx",
                0,
                "k2j5",
                0,
                "192.0.2.50",
                41234,
            ),
        ),
        fingerprints=(DtlsFingerprint("sha-256", FINGERPRINT, "active"),),
    )


class FakeMedia(AsyncIOEventEmitter):
    """Records prepare/connect/sources/close; ``fail_connect`` makes connect() raise."""

    instances: list[FakeMedia] = []

    def __init__(self, *, fail_connect: bool = False, connect_delay: float = 0.0) -> None:
        super().__init__()
        self.on_packet: Callable[[MediaSource, RtpPacket, float], None] | None = None
        self.wants: Callable[[int, float], bool] | None = None
        self.local = local_transport()
        self.fail_connect = fail_connect
        self.connect_delay = connect_delay
        self.remote: TransportDescription | None = None
        self.session: AudioSession | None = None
        self.local_ssrc: int | None = None
        self.sources: dict[int, MediaSource] = {}
        self.prepared = False
        self.closed = False
        self.connected = asyncio.Event()
        FakeMedia.instances.append(self)

    async def prepare(self) -> TransportDescription:
        self.prepared = True
        return self.local

    async def connect(
        self, remote: TransportDescription, session: AudioSession, local_ssrc: int
    ) -> None:
        self.remote, self.session, self.local_ssrc = remote, session, local_ssrc
        self.add_sources(session.sources)
        if self.connect_delay:
            await asyncio.sleep(self.connect_delay)
        if self.fail_connect:
            self.emit("state", "failed")
            raise ConnectionError("ICE failed (test double)")
        self.emit("state", "connected")
        self.connected.set()

    def add_sources(self, sources: Iterable[MediaSource]) -> None:
        for source in sources:
            if source.media == "audio":
                self.sources[source.ssrc] = source

    def remove_sources(self, ssrcs: Iterable[int]) -> None:
        for ssrc in ssrcs:
            self.sources.pop(ssrc, None)

    def send_audio(
        self, payload: bytes, timestamp: int, *, marker: bool, level: int | None, voice: bool
    ) -> None:
        pass

    def fail(self) -> None:
        """A later ICE failure (consent expiry)."""
        self.emit("state", "failed")

    async def close(self) -> None:
        self.closed = True
        self.emit("state", "closed")
