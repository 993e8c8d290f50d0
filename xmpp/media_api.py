"""What the signalling needs from a conference media transport.

`xmpp.media_transport.ConferenceMediaTransport` is the real one (aiortc ICE/DTLS-SRTP); tests can
pass any object of this shape. The session handler only uses these members, so it does not
import aiortc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from media.rtp import RtpPacket
from xmpp.transport_info import AudioSession, MediaSource, TransportDescription


class MediaTransport(Protocol):
    """One Jingle session's media (one per session-initiate: a re-invite gets a new one)."""

    on_packet: Callable[[MediaSource, RtpPacket, float], None] | None
    wants: Callable[[int, float], bool] | None

    async def prepare(self) -> TransportDescription:
        """Our transport for the session-accept: ufrag/pwd, candidates (generation 0), DTLS
        fingerprint(s) with setup="active"."""
        ...

    async def connect(
        self, remote: TransportDescription, session: AudioSession, local_ssrc: int
    ) -> None:
        """ICE and DTLS against the bridge's transport; raises on failure or timeout."""
        ...

    def add_sources(self, sources: Iterable[MediaSource]) -> None: ...

    def remove_sources(self, ssrcs: Iterable[int]) -> None: ...

    def send_audio(
        self, payload: bytes, timestamp: int, *, marker: bool, level: int | None, voice: bool
    ) -> None: ...

    def add_listener(self, event: str, f: Callable[..., Any]) -> Any:
        """pyee: ``"state"`` (new/checking/connected/failed/closed), ``"dtmf"``
        (MediaSource, digit)."""
        ...

    async def close(self) -> None: ...


MediaFactory = Callable[[], MediaTransport]
