"""gateway.media_settings: the [media] section reaches the engine; with opus_bandwidth = "phone"
a phone's voice is encoded in its codec's own audio band and still arrives at its pitch and
level."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.app import Gateway
from gateway.call_media import CallMedia
from gateway.config import GatewayConfig, MediaConfig
from gateway.config_loader import validate
from gateway.media_settings import DEFAULT, MediaSettings
from media.codecs import codec_info, create_decoder, create_encoder
from media.codecs.opus import Bandwidth, OpusConfig, OpusDecoder, OpusEncoder
from media.frame import PCM
from media.jitterbuffer import JitterConfig
from media.mixer import MixerConfig
from media.pipeline import PipelineConfig
from media.ports import PortAllocator
from media.resample import FrameResampler
from media.tones import ToneGenerator, dominant_frequency, tone_amplitudes
from sip.offer_answer import NegotiatedCodec, NegotiatedStream, OfferAnswerConfig
from sip.sdp import Direction

PHONE_CODECS = {"PCMU": 0, "G722": 9, "opus": 111}


def test_the_defaults_are_the_engines_own() -> None:
    assert DEFAULT.jitter == JitterConfig()
    assert DEFAULT.mixer == MixerConfig()
    assert DEFAULT.pipeline == PipelineConfig()
    for rate in (8000, 16000, 48000):
        assert DEFAULT.uplink_opus(rate) == OpusConfig()


def test_every_key_reaches_the_engine() -> None:
    settings = MediaSettings.from_config(
        MediaConfig(
            jitter_initial_ms=60,
            jitter_max_ms=400,
            opus_bitrate=24000,
            opus_complexity=3,
            opus_fec=False,
            opus_bandwidth="phone",
            loudest=4,
        )
    )
    assert (settings.jitter.initial_delay_ms, settings.jitter.max_delay_ms) == (60, 400)
    assert settings.jitter.capacity * 10 >= 400  # holds the cap's worth of 10 ms packets
    assert MediaSettings.from_config(MediaConfig(jitter_max_ms=1000)).jitter.capacity >= 100
    assert settings.mixer.jitter == settings.jitter == settings.pipeline.jitter
    assert settings.mixer.max_decoded == 4
    opus = settings.uplink_opus(8000)
    assert (opus.bitrate, opus.complexity, opus.inband_fec) == (24000, 3, False)
    assert opus.max_bandwidth is Bandwidth.NARROWBAND
    assert settings.uplink_opus(16000).max_bandwidth is Bandwidth.WIDEBAND
    assert settings.uplink_opus(48000).max_bandwidth is Bandwidth.FULLBAND  # an Opus phone
    assert MediaSettings.from_config(MediaConfig(loudest=0)).mixer.max_decoded is None


def _toc_band(packet: bytes) -> str:
    """The audio bandwidth a packet's TOC byte declares (RFC 6716 §3.1, Table 2)."""
    config = packet[0] >> 3
    if config < 12:  # SILK: NB, MB, WB in fours
        return ("NB", "MB", "WB")[config // 4]
    if config < 16:  # hybrid
        return "SWB" if config < 14 else "FB"
    return ("NB", "WB", "SWB", "FB")[(config - 16) // 4]  # CELT


def _phone_voice(codec: str, frequency: float, frames: int) -> list[PCM]:
    """What the uplink encodes for a phone sending a tone: the codec's round trip, then the
    engine's resampling to 48 kHz."""
    info = codec_info(codec)
    encoder, decoder = create_encoder(codec), create_decoder(codec)
    tone = ToneGenerator(frequency, info.sample_rate, -20.0)
    up = FrameResampler(info.sample_rate, 48000)
    return [
        up.process(decoder.decode(encoder.encode(tone.next(info.frame_samples)))).copy()
        for _ in range(frames)
    ]


@pytest.mark.parametrize(
    ("codec", "frequency", "band"), [("PCMU", 1000.0, "NB"), ("G722", 5000.0, "WB")]
)
def test_phone_band_encodes_the_voice_in_its_band_and_it_arrives(
    codec: str, frequency: float, band: str
) -> None:
    settings = MediaSettings.from_config(MediaConfig(opus_bandwidth="phone"))
    voice = _phone_voice(codec, frequency, 50)
    heard: dict[str, tuple[set[str], float, float]] = {}
    for name, config in (
        ("phone", settings.uplink_opus(codec_info(codec).sample_rate)),
        ("full", OpusConfig()),
    ):
        encoder, decoder = OpusEncoder(config), OpusDecoder()
        packets = [encoder.encode(frame) for frame in voice]
        pcm = np.concatenate([decoder.decode(p).copy() for p in packets])[-24000:]
        level = 20 * np.log10(tone_amplitudes(pcm, 48000, [frequency])[frequency] / 32767.0)
        heard[name] = ({_toc_band(p) for p in packets[5:]}, dominant_frequency(pcm, 48000), level)
    bands, pitch, level = heard["phone"]
    assert bands == {band}
    assert pitch == pytest.approx(frequency, abs=2.0)
    assert level == pytest.approx(-20.0, abs=1.5)
    # Left to itself the encoder spends bits on the empty bands above: the setting matters.
    assert heard["full"][0] != {band}
    assert heard["full"][2] == pytest.approx(level, abs=1.0)


@pytest.mark.parametrize("codec", PHONE_CODECS)
def test_a_call_encodes_its_phone_with_the_settings_for_its_codec(codec: str) -> None:
    settings = MediaSettings.from_config(MediaConfig(opus_bandwidth="phone", opus_bitrate=20000))
    media = CallMedia(
        PortAllocator((41000, 41100), host="127.0.0.1"),
        host="127.0.0.1",
        sdp_address="127.0.0.1",
        offer_config=OfferAnswerConfig(),
        now=0.0,
        pipeline_config=settings.pipeline,
        uplink_opus=settings.uplink_opus,
    )
    info = codec_info(codec)
    pt = PHONE_CODECS[codec]
    stream = NegotiatedStream(
        remote_address="127.0.0.1",
        remote_port=41200,
        remote_rtcp_address="127.0.0.1",
        remote_rtcp_port=41201,
        rtcp_mux=False,
        codec=NegotiatedCodec(codec, pt, pt, info.clock_rate, 2 if codec == "opus" else 1),
        telephone_event=None,
        ptime=20,
        remote_ptime=None,
        direction=Direction.SENDRECV,
        srtp=None,
    )
    try:
        media.negotiated(stream, 0.0)
        assert media.uplink is not None
        assert media.uplink.encoder.config == settings.uplink_opus(info.sample_rate)
        assert media.uplink.encoder.config.bitrate == 20000
    finally:
        media.close(0.0)


def test_the_gateway_takes_its_media_settings_from_the_config() -> None:
    config = validate(GatewayConfig(media=MediaConfig(loudest=3, jitter_max_ms=300)))
    gateway = Gateway(config)
    assert gateway.conferences.config.max_decoded == 3
    assert gateway.conferences.config.jitter.max_delay_ms == 300
    assert gateway.media_settings.pipeline.jitter.max_delay_ms == 300
