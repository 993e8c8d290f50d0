"""Codecs: G.711 bit-exactness, registry facts, tone round trips, Opus PLC/FEC and bad input."""

from __future__ import annotations

import fractions
import importlib
import warnings
from types import ModuleType

import av
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.codecs import (
    G722,
    OPUS,
    PCMA,
    PCMU,
    UnknownCodecError,
    codec_info,
    codec_names,
    create_decoder,
    create_encoder,
    info_for_payload_type,
)
from media.codecs.g711 import (
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
    PcmaDecoder,
    PcmaEncoder,
    PcmuDecoder,
    PcmuEncoder,
)
from media.codecs.opus import OpusConfig, OpusDecoder, OpusEncoder, libopus, packet_samples
from media.errors import MediaParseError
from media.frame import PCM
from media.tones import ToneGenerator, dominant_frequency, rms_dbfs, tone_amplitudes

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:  # Python >= 3.13
            pytest.skip("audioop is not available on this Python")


# -- registry ---------------------------------------------------------------------------------


def test_registry_descriptors() -> None:
    assert codec_names() == ["PCMU", "PCMA", "G722", "opus"]
    assert codec_info("pcmu") is PCMU and PCMU.payload_type == 0 and PCMU.static
    assert codec_info("PCMA").payload_type == 8
    assert info_for_payload_type(9) is G722
    assert codec_info("OPUS") is OPUS and OPUS.payload_type is None and not OPUS.static
    assert [c.rtpmap for c in (PCMU, PCMA, G722, OPUS)] == [
        "PCMU/8000",
        "PCMA/8000",
        "G722/8000",
        "opus/48000/2",
    ]
    # RFC 3551 §4.5.2: 16 kHz audio, 8 kHz clock, timestamp +160 per 20 ms.
    assert (G722.sample_rate, G722.clock_rate, G722.frame_ticks, G722.frame_samples) == (
        16000,
        8000,
        160,
        320,
    )
    assert (OPUS.frame_ticks, OPUS.frame_samples) == (960, 960)
    with pytest.raises(UnknownCodecError):
        codec_info("speex")
    with pytest.raises(UnknownCodecError):
        info_for_payload_type(18)


def test_factories_build_the_right_classes() -> None:
    assert isinstance(create_encoder("pcmu"), PcmuEncoder)
    assert isinstance(create_decoder("PCMA"), PcmaDecoder)
    assert isinstance(create_encoder("opus", bitrate=24000), OpusEncoder)
    assert isinstance(create_decoder("opus"), OpusDecoder)


# -- G.711 ------------------------------------------------------------------------------------


def test_g711_known_code_points() -> None:
    enc_u = PcmuEncoder().encode(np.array([0, -1, 32767, -32768, 8, -8], dtype=np.int16))
    assert enc_u == bytes([0xFF, 0x7E, 0x80, 0x00, 0xFE, 0x7E])
    enc_a = PcmaEncoder().encode(np.array([0, -1, 32767, -32768], dtype=np.int16))
    assert enc_a == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert list(ULAW_DECODE_TABLE[[0xFF, 0x7F, 0x80, 0x00, 0xFE]]) == [0, 0, 32124, -32124, 8]
    assert list(ALAW_DECODE_TABLE[[0xD5, 0x55, 0xAA, 0x2A]]) == [8, -8, 32256, -32256]


def test_g711_tables_bit_exact_with_audioop() -> None:
    audioop = _audioop()
    data = ALL_INT16.tobytes()
    codes = bytes(range(256))
    assert ULAW_ENCODE_TABLE[ALL_INT16.view(np.uint16)].tobytes() == audioop.lin2ulaw(data, 2)
    assert ALAW_ENCODE_TABLE[ALL_INT16.view(np.uint16)].tobytes() == audioop.lin2alaw(data, 2)
    assert ULAW_DECODE_TABLE.tobytes() == audioop.ulaw2lin(codes, 2)
    assert ALAW_DECODE_TABLE.tobytes() == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize(
    ("encode_table", "decode_table", "clip", "small"),
    [
        (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, 32124, 11),
        (ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE, 32256, 8),
    ],
)
def test_g711_full_range_round_trip_error(
    encode_table: np.ndarray, decode_table: PCM, clip: int, small: int
) -> None:
    x = ALL_INT16.astype(np.int32)
    y = decode_table[encode_table[ALL_INT16.view(np.uint16)]].astype(np.int32)
    err = np.abs(y - x)
    mag = np.abs(x)
    inside = mag <= clip
    # Logarithmic companding: error at most ~1/16 of the magnitude (half a step of the
    # segment), a few LSB near zero; beyond the largest code it is the clipping distance.
    assert np.all(err[inside & (mag > 256)] <= mag[inside & (mag > 256)] / 16)
    assert err[mag <= 256].max() <= small
    assert np.all(err[~inside] <= mag[~inside] - clip + 1)
    # Decoding the encoding of a decoded value is the identity (codes are fixed points).
    assert np.array_equal(decode_table[encode_table[decode_table.view(np.uint16)]], decode_table)


def test_g711_decoder_accepts_any_length_and_reuses_its_buffer() -> None:
    dec = PcmuDecoder()
    a = dec.decode(b"\xff" * 240)  # 30 ms packet
    assert len(a) == 240 and a.dtype == np.int16 and not a.any()
    b = dec.decode(b"\x00" * 160)
    assert len(b) == 160 and np.all(b == -32124)
    # Views of one reused buffer (the concealer's history line), no allocation per frame.
    assert a.base is not None and a.base is b.base
    assert len(dec.decode(b"")) == 0


# -- tone round trips ---------------------------------------------------------------------------


def _round_trip(name: str, frames: int = 50, **options: object) -> tuple[PCM, PCM, int]:
    enc = create_encoder(name, **options)
    dec = create_decoder(name)
    info = enc.info
    gen = ToneGenerator(1000, info.sample_rate, -10.0)
    sent, received = [], []
    for _ in range(frames):
        frame = gen.next(info.frame_samples)
        payload = enc.encode(frame)
        sent.append(frame)
        received.append(dec.decode(payload).copy())
    return np.concatenate(sent), np.concatenate(received), info.sample_rate


@pytest.mark.parametrize(
    ("name", "tolerance_db", "payload_bytes"),
    [("pcmu", 0.3, 160), ("pcma", 0.3, 160), ("g722", 1.0, 160), ("opus", 1.5, None)],
)
def test_codec_round_trips_a_tone(
    name: str, tolerance_db: float, payload_bytes: int | None
) -> None:
    sent, received, rate = _round_trip(name)
    assert len(received) == len(sent)
    tail = received[rate // 5 :]  # skip the codec's start-up and algorithmic delay
    assert dominant_frequency(tail, rate) == pytest.approx(1000.0, abs=2.0)
    amplitude = tone_amplitudes(tail, rate, [1000.0])[1000.0]
    expected = tone_amplitudes(sent[rate // 5 :], rate, [1000.0])[1000.0]
    assert 20 * np.log10(amplitude / expected) == pytest.approx(0.0, abs=tolerance_db)
    if payload_bytes is not None:
        info = codec_info(name)
        enc = create_encoder(name)
        assert len(enc.encode(np.zeros(info.frame_samples, dtype=np.int16))) == payload_bytes


def test_g711_snr_of_a_tone() -> None:
    sent, received, _ = _round_trip("pcmu")
    noise = received.astype(np.float64) - sent
    snr = 10 * np.log10(np.mean(sent.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr > 35.0  # G.711 gives ~38 dB on a -10 dBFS sine


# -- Opus ---------------------------------------------------------------------------------------


def test_opus_uses_a_libopus_with_plc_and_fec_entry_points() -> None:
    assert libopus().version.startswith("libopus ")


def test_opus_bitrate_is_configurable() -> None:
    gen = ToneGenerator([300.0, 1200.0, 2500.0], 48000, -16.0)
    frames = gen.frames(50)
    sizes = {}
    for bitrate in (16000, 64000):
        enc = OpusEncoder(OpusConfig(bitrate=bitrate, complexity=3))
        sizes[bitrate] = np.mean([len(enc.encode(f)) for f in frames[10:]])
    # 20 ms at 16 / 64 kbit/s is ~40 / ~160 bytes.
    assert sizes[16000] == pytest.approx(40, rel=0.35)
    assert sizes[64000] == pytest.approx(160, rel=0.35)


def _stereo_opus_packets(frames: int) -> list[bytes]:
    """Stereo Opus from PyAV's libopus encoder: 1 kHz left, 1 kHz right at -10 dBFS."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.layout = "stereo"
    ctx.format = "s16"
    ctx.bit_rate = 64000
    ctx.time_base = fractions.Fraction(1, 48000)
    gen = ToneGenerator(1000, 48000, -10.0)
    packets: list[bytes] = []
    for i in range(frames):
        mono = gen.next()
        inter = np.repeat(mono, 2)[None, :]
        frame = av.AudioFrame.from_ndarray(inter, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        packets.extend(bytes(p) for p in ctx.encode(frame))
    return packets


def test_opus_decodes_stereo_streams_to_mono() -> None:
    packets = _stereo_opus_packets(30)
    assert packets and all(p[0] & 0x04 for p in packets)  # TOC stereo flag set
    dec = OpusDecoder()
    out = np.concatenate([dec.decode(p).copy() for p in packets])
    assert len(out) == 960 * len(packets)
    assert dominant_frequency(out[9600:], 48000) == pytest.approx(1000.0, abs=2.0)
    assert rms_dbfs(out[9600:]) == pytest.approx(-10.0, abs=1.5)


def test_opus_plc_continues_the_tone_from_the_same_state() -> None:
    enc, dec = OpusEncoder(), OpusDecoder()
    gen = ToneGenerator(1000, 48000, -10.0)
    for _ in range(25):
        dec.decode(enc.encode(gen.next()))
    plc = dec.conceal().copy()
    assert len(plc) == 960
    assert dominant_frequency(plc, 48000) == pytest.approx(1000.0, abs=10.0)
    assert rms_dbfs(plc) > -20.0  # the first concealed frame is not silence
    assert len(dec.conceal(480)) == 480  # any multiple of 2.5 ms


def _decoded_after(packets: list[bytes], count: int) -> OpusDecoder:
    dec = OpusDecoder()
    for p in packets[:count]:
        dec.decode(p)
    return dec


def _correlation(a: PCM, b: PCM) -> float:
    x, y = a.astype(np.float64), b.astype(np.float64)
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def test_opus_in_band_fec_recovers_the_missing_frame() -> None:
    # Speech-like (several harmonics) so that SILK's LBRR is produced; loss expectation 20 %.
    enc = OpusEncoder(OpusConfig(packet_loss_perc=20))
    gen = ToneGenerator([200.0, 400.0, 600.0, 1000.0], 48000, [-14.0, -16.0, -18.0, -16.0])
    packets = [enc.encode(gen.next()) for _ in range(60)]
    probe = OpusDecoder()
    recoverable = [k for k in range(30, 58) if probe.can_recover(packets[k + 1])]
    assert recoverable, "the encoder produced no LBRR at all"
    lost = recoverable[0]
    truth = _decoded_after(packets, lost).decode(packets[lost]).copy()
    plc = _decoded_after(packets, lost).conceal().copy()
    dec = _decoded_after(packets, lost)
    recovered = dec.recover(packets[lost + 1]).copy()
    assert len(recovered) == 960
    # The LBRR copy is close to what the lost packet would have given, closer than PLC's guess.
    assert _correlation(recovered, truth) > 0.9
    assert _correlation(recovered, truth) > _correlation(plc, truth) + 0.05
    assert len(dec.decode(packets[lost + 1])) == 960  # the next packet still decodes after


def test_opus_rejects_garbage_with_media_parse_error() -> None:
    dec = OpusDecoder()
    with pytest.raises(MediaParseError):
        dec.decode(b"")
    with pytest.raises(MediaParseError):
        dec.decode(b"\xff\xff\xff")  # code 3 packet with an impossible frame count
    with pytest.raises(MediaParseError):
        packet_samples(b"")
    assert packet_samples(OpusEncoder().encode(np.zeros(960, dtype=np.int16))) == 960


def test_opus_dtx_frames_are_recognised() -> None:
    enc = OpusEncoder(OpusConfig(dtx=True))
    dec = OpusDecoder()
    packets = [enc.encode(np.zeros(960, dtype=np.int16)) for _ in range(40)]
    assert any(dec.is_dtx(p) for p in packets)
    assert not dec.is_dtx(_round_trip_payload())


def _round_trip_payload() -> bytes:
    return OpusEncoder().encode(ToneGenerator(1000, 48000).next())


@given(st.binary(max_size=400))
def test_decoders_raise_only_media_parse_error(payload: bytes) -> None:
    for decoder in (PcmuDecoder(), PcmaDecoder(), create_decoder("g722"), OpusDecoder()):
        try:
            pcm = decoder.decode(payload)
        except MediaParseError:
            continue
        assert pcm.dtype == np.int16
        assert len(decoder.conceal()) >= 120
