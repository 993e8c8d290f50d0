"""The ``[media]`` section as the media engine's own settings: the jitter buffers of both sides,
the room mixers, and the Opus encoder of each phone's voice towards the conference."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from gateway.config import MediaConfig
from media.codecs.opus import PHONE_BANDWIDTH, OpusConfig
from media.jitterbuffer import JitterConfig
from media.mixer import MixerConfig
from media.pipeline import PipelineConfig

_DEFAULT_CAPACITY = JitterConfig().capacity


@dataclass(frozen=True)
class MediaSettings:
    jitter: JitterConfig
    mixer: MixerConfig
    pipeline: PipelineConfig
    opus: OpusConfig
    opus_follows_phone: bool = False  # opus_bandwidth = "phone"

    @classmethod
    def from_config(cls, config: MediaConfig) -> MediaSettings:
        jitter = JitterConfig(
            initial_delay_ms=config.jitter_initial_ms,
            max_delay_ms=config.jitter_max_ms,
            # Room for the cap's worth of 10 ms packets (the shortest ptime we accept), with
            # some reordering on top: a buffer that may wait 1 s must be able to hold 1 s.
            capacity=max(_DEFAULT_CAPACITY, math.ceil(config.jitter_max_ms / 10.0) + 8),
        )
        return cls(
            jitter=jitter,
            mixer=MixerConfig(jitter=jitter, max_decoded=config.loudest or None),
            pipeline=PipelineConfig(jitter=jitter),
            opus=OpusConfig(
                bitrate=config.opus_bitrate,
                complexity=config.opus_complexity,
                inband_fec=config.opus_fec,
            ),
            opus_follows_phone=config.opus_bandwidth == "phone",
        )

    def uplink_opus(self, phone_rate: int) -> OpusConfig:
        """The encoder settings for the voice of a phone whose codec samples at `phone_rate`."""
        band = PHONE_BANDWIDTH.get(phone_rate) if self.opus_follows_phone else None
        return self.opus if band is None else dataclasses.replace(self.opus, max_bandwidth=band)


DEFAULT = MediaSettings.from_config(MediaConfig())

__all__ = ["DEFAULT", "MediaSettings"]
