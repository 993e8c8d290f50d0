"""Audio codecs behind one small interface, and the registry the SDP layer looks them up in.

An `Encoder` turns one frame of PCM at the codec's native rate into an RTP payload; a `Decoder`
turns a payload back into native-rate PCM and, when a packet is missing, produces concealment
(`conceal`) or, where the codec carries in-band redundancy (Opus), recovers the missing frame from
the next packet (`recover`). `CodecInfo` is the descriptor the signalling layers need: encoding
name, static payload type, RTP clock rate, native sample rate and channel count.

Implementations are imported lazily, so using G.711 never loads libopus.

Decoders return views of a buffer they reuse: the PCM is valid until the next call on the same
decoder (no per-frame numpy allocation). Copy it if you need to keep it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from media.frame import FRAME_MS, PCM, samples_per_frame

__all__ = [
    "G722",
    "OPUS",
    "PCMA",
    "PCMU",
    "CodecInfo",
    "Decoder",
    "Encoder",
    "UnknownCodecError",
    "codec_info",
    "codec_names",
    "create_decoder",
    "create_encoder",
    "info_for_payload_type",
    "register_codec",
]


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """What signalling needs to know about a codec (the a=rtpmap line, RFC 4566 §6)."""

    name: str  # encoding name as written in a=rtpmap; matched case-insensitively
    clock_rate: int  # RTP timestamp units per second
    sample_rate: int  # rate of the PCM the encoder takes and the decoder returns
    channels: int = 1  # channel count in a=rtpmap (Opus is always 2, RFC 7587 §7)
    payload_type: int | None = None  # static payload type (RFC 3551 §6), None if dynamic
    frame_ms: int = FRAME_MS

    @property
    def static(self) -> bool:
        return self.payload_type is not None

    @property
    def frame_samples(self) -> int:
        """Native-rate PCM samples in one frame."""
        return samples_per_frame(self.sample_rate, self.frame_ms)

    @property
    def frame_ticks(self) -> int:
        """RTP timestamp increment per frame (160 for G.722 at 20 ms, RFC 3551 §4.5.2)."""
        return samples_per_frame(self.clock_rate, self.frame_ms)

    @property
    def rtpmap(self) -> str:
        """The encoding part of a=rtpmap, e.g. ``PCMU/8000`` or ``opus/48000/2``."""
        base = f"{self.name}/{self.clock_rate}"
        return f"{base}/{self.channels}" if self.channels != 1 else base


PCMU = CodecInfo("PCMU", 8000, 8000, 1, 0)
PCMA = CodecInfo("PCMA", 8000, 8000, 1, 8)
# RFC 3551 §4.5.2: G.722 is sampled at 16 kHz but its RTP clock runs at 8000 Hz (a historical
# error kept for compatibility), so a 20 ms packet advances the timestamp by 160.
G722 = CodecInfo("G722", 8000, 16000, 1, 9)
# RFC 7587 §4.1/§7: the RTP clock is always 48000 and a=rtpmap always says 2 channels, whatever
# the stream carries; we encode and decode mono.
OPUS = CodecInfo("opus", 48000, 48000, 2, None)


class Encoder(ABC):
    """PCM at `info.sample_rate` -> one RTP payload."""

    info: CodecInfo

    @abstractmethod
    def encode(self, pcm: PCM) -> bytes:
        """Encode one frame (`info.frame_samples` int16 samples) into a payload."""

    def encode_many(self, frames: PCM) -> list[bytes]:
        """`encode` for each row of a 2-D block of frames, in order (a stateless codec can
        do them all at once)."""
        return [self.encode(row) for row in frames]

    def reset(self) -> None:  # noqa: B027 - stateless codecs need nothing
        """Forget the inter-frame state (e.g. after a long pause)."""


class Decoder(ABC):
    """One RTP payload -> PCM at `info.sample_rate`, plus loss handling.

    `decode` raises `media.errors.MediaParseError` for a payload the codec cannot decode; the
    returned arrays are views of a reused buffer, valid until the next call.
    """

    info: CodecInfo

    @abstractmethod
    def decode(self, payload: bytes) -> PCM:
        """Decode one payload (any duration the payload holds)."""

    @abstractmethod
    def conceal(self, samples: int | None = None) -> PCM:
        """Concealment for a missing packet: `samples` of PCM (default one frame)."""

    def can_recover(self, next_payload: bytes) -> bool:
        """True if `next_payload` carries redundancy for the packet before it (Opus LBRR)."""
        return False

    def recover(self, next_payload: bytes, samples: int | None = None) -> PCM:
        """Rebuild the missing packet before `next_payload` from its redundancy; the next
        packet itself must still be decoded afterwards. Falls back to concealment."""
        return self.conceal(samples)

    def is_dtx(self, payload: bytes) -> bool:
        """True if the payload is a discontinuous-transmission frame: the sender is silent and
        the gap that follows is silence, not loss."""
        return False

    def reset(self) -> None:  # noqa: B027 - stateless codecs need nothing
        """Forget the inter-frame state (new stream)."""


class UnknownCodecError(LookupError):
    """No codec is registered under that name or payload type."""


@dataclass(frozen=True, slots=True)
class _Entry:
    info: CodecInfo
    encoder: Callable[..., Encoder]
    decoder: Callable[..., Decoder]


_REGISTRY: dict[str, _Entry] = {}


def _lazy(module: str, attr: str) -> Callable[..., Any]:
    """A factory that imports `module` on first use (keeps libopus unloaded until needed)."""

    def factory(**options: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(**options)

    return factory


def register_codec(
    info: CodecInfo, encoder: Callable[..., Encoder], decoder: Callable[..., Decoder]
) -> None:
    """Register (or replace) a codec under `info.name` (case-insensitive)."""
    _REGISTRY[info.name.lower()] = _Entry(info, encoder, decoder)


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise UnknownCodecError(f"no codec named {name!r}") from None


def codec_info(name: str) -> CodecInfo:
    """The descriptor for an encoding name (``"pcmu"``, ``"G722"``, ``"opus"``...)."""
    return _entry(name).info


def codec_names() -> list[str]:
    """Registered encoding names, in registration order."""
    return [entry.info.name for entry in _REGISTRY.values()]


def info_for_payload_type(payload_type: int) -> CodecInfo:
    """The codec with this static payload type (RFC 3551 §6)."""
    for entry in _REGISTRY.values():
        if entry.info.payload_type == payload_type:
            return entry.info
    raise UnknownCodecError(f"no codec with static payload type {payload_type}")


def create_encoder(name: str, **options: Any) -> Encoder:
    """A new encoder; `options` go to the implementation (Opus: bitrate, complexity...)."""
    return _entry(name).encoder(**options)


def create_decoder(name: str, **options: Any) -> Decoder:
    """A new decoder with its own state (one per received stream)."""
    return _entry(name).decoder(**options)


register_codec(
    PCMU, _lazy("media.codecs.g711", "PcmuEncoder"), _lazy("media.codecs.g711", "PcmuDecoder")
)
register_codec(
    PCMA, _lazy("media.codecs.g711", "PcmaEncoder"), _lazy("media.codecs.g711", "PcmaDecoder")
)
register_codec(
    G722, _lazy("media.codecs.g722", "G722Encoder"), _lazy("media.codecs.g722", "G722Decoder")
)
register_codec(
    OPUS, _lazy("media.codecs.opus", "OpusEncoder"), _lazy("media.codecs.opus", "OpusDecoder")
)
