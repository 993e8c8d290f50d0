"""Values exchanged between the Jingle signalling and the conference media transport.

Jingle stanzas (``xmpp/jingle.py``) are parsed into these plain values and built from them; the
media transport (``xmpp/media_transport.py``) takes the remote ones and produces the local ones.
Neither side needs the other's classes. Field meanings follow reference/jingle.md §3.1 and §4.2.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IceCandidate:
    """``<candidate>`` of ``urn:xmpp:jingle:transports:ice-udp:1`` (XEP-0176)."""

    foundation: str
    component: int
    protocol: str  # "udp" (the bridge only uses UDP, jingle.md §4.1)
    priority: int
    ip: str
    port: int
    type: str  # host, srflx, prflx, relay
    generation: int = 0  # the bridge ignores candidates whose generation is not 0 (§4.1)
    id: str = ""
    network: int = 0
    rel_addr: str | None = None
    rel_port: int | None = None
    tcptype: str | None = None


@dataclass(frozen=True)
class DtlsFingerprint:
    """``<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash= setup=>``."""

    hash: str  # e.g. "sha-256"
    value: str  # colon-separated upper-case hex
    setup: str  # actpass (the bridge's offer), active (our answer), passive


@dataclass(frozen=True)
class TransportDescription:
    """One ICE-UDP transport with its DTLS fingerprints (BUNDLEd: one for all contents)."""

    ufrag: str
    pwd: str
    candidates: tuple[IceCandidate, ...] = ()
    fingerprints: tuple[DtlsFingerprint, ...] = ()
    rtcp_mux: bool = True
    websocket_url: str | None = None  # the colibri WebSocket, unused by an audio-only leg


@dataclass(frozen=True)
class PayloadType:
    """``<payload-type>`` of ``urn:xmpp:jingle:apps:rtp:1``."""

    id: int
    name: str
    clockrate: int
    channels: int = 1
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HeaderExtension:
    """``<rtp-hdrext>``: an RTP header extension id and its URI."""

    id: int
    uri: str


AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


@dataclass(frozen=True)
class MediaSource:
    """``<source xmlns="urn:xmpp:jingle:apps:rtp:ssma:0">`` with its owner (``<ssrc-info>``)."""

    ssrc: int
    name: str | None = None
    owner: str | None = None  # endpoint id (MUC nick) or a full occupant JID (jingle.md §3.1)
    msid: str | None = None
    media: str = "audio"


@dataclass(frozen=True)
class AudioSession:
    """What a session-initiate offers for audio, and what the media transport needs to run."""

    payload_types: tuple[PayloadType, ...]
    header_extensions: tuple[HeaderExtension, ...] = ()
    sources: tuple[MediaSource, ...] = field(default_factory=tuple)

    def payload(self, name: str) -> PayloadType | None:
        return next((p for p in self.payload_types if p.name.lower() == name.lower()), None)

    def extension_id(self, uri: str) -> int | None:
        return next((e.id for e in self.header_extensions if e.uri == uri), None)
