"""Opus (RFC 6716 / RFC 7587): 48 kHz mono, with libopus's own PLC and in-band FEC.

Design, from measurements on the project's 2-vCPU reference machine (µs per 20 ms frame, 48 kHz
mono, complexity 5, 32 kbit/s, in-band FEC on; median of 7 x 2000 calls):

=====================================================  ========  ========
path                                                    encode    decode
=====================================================  ========  ========
PyAV ``libopus`` CodecContext (AudioFrame + Packet)     155       37
opuslib 3.0.1 ``Encoder.encode`` / ``Decoder.decode``   149       65
ctypes ``opus_encode``/``opus_decode``, reused buffers  104-137   27-35
=====================================================  ========  ========

* PyAV cannot conceal: FFmpeg's libopus wrapper always calls ``opus_decode(..., decode_fec=0)``
  and treats an empty packet as end of stream, so neither PLC nor FEC is reachable through it.
  PLC and FEC also need the *same* decoder state that decoded the preceding packets, so a PyAV
  decoder cannot be paired with an opuslib one for losses.
* opuslib is slow not because of ctypes (a trivial ctypes call costs 0.26 µs) nor because of
  libopus 1.3.1 (the same packets decode in the same time with 1.3.1 and 1.6.1) but because of
  its wrapper: per call it allocates a ctypes array and then converts the result with
  ``pcm_pointer[:n]`` (a Python list of 960 ints) -> ``array`` -> ``bytes``, ~32 µs.
* So this module calls libopus's entry points directly through ctypes, decoding into a reused
  numpy buffer: normal decode, PLC (``opus_decode(st, NULL, 0, ...)``, 30 µs) and FEC
  (``decode_fec=1``, 23-30 µs) all run on the one decoder state, at libopus's own cost.
  Encoding goes the same way (one reused output buffer, no AudioFrame), which also beats PyAV.

The library loaded is the libopus bundled in the PyAV wheel (1.6.1 with av 18; PyAV is already a
hard dependency through aiortc), falling back to the system ``libopus.so.0`` (what opuslib finds,
Debian's 1.3.1). ``PYGASI_LIBOPUS`` overrides the path.

RFC 7587 §7: SDP always says ``opus/48000/2``; we send mono, and a mono decoder down-mixes stereo
packets, so the engine only ever sees mono PCM.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import weakref
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from media.codecs import OPUS, CodecInfo, Decoder, Encoder
from media.errors import MediaParseError
from media.frame import PCM

MAX_PACKET_BYTES = 1500  # what fits in one RTP packet on an Ethernet path
MAX_FRAME_SAMPLES = 5760  # 120 ms at 48 kHz, the longest Opus packet (RFC 6716 §3.2.5)

# Request codes from opus_defines.h.
_SET_APPLICATION = 4000
_SET_BITRATE = 4002
_SET_MAX_BANDWIDTH = 4004
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
_SET_DTX = 4016
_SET_SIGNAL = 4024
_RESET_STATE = 4028
_OK = 0


class Application(IntEnum):
    VOIP = 2048
    AUDIO = 2049
    RESTRICTED_LOWDELAY = 2051


class Signal(IntEnum):
    AUTO = -1000
    VOICE = 3001
    MUSIC = 3002


class Bandwidth(IntEnum):
    NARROWBAND = 1101
    MEDIUMBAND = 1102
    WIDEBAND = 1103
    SUPERWIDEBAND = 1104
    FULLBAND = 1105


# The Opus audio band that holds everything a phone codec carries (RFC 6716 §2: narrowband is
# 4 kHz of audio, wideband 8 kHz), by the codec's sampling rate: G.711 at 8 kHz, G.722 at
# 16 kHz. Encoding the empty bands above costs libopus twice the work (bench/README.md: 105 µs
# against 47 µs a frame for a G.711 voice) for nothing a listener can hear.
PHONE_BANDWIDTH = {8000: Bandwidth.NARROWBAND, 16000: Bandwidth.WIDEBAND}


class OpusError(RuntimeError):
    """libopus refused a configuration (never raised for peer data: that is MediaParseError)."""


def _library_candidates() -> list[str]:
    override = os.environ.get("PYGASI_LIBOPUS")
    if override:
        return [override]
    found: list[str] = []
    try:
        import av  # the wheel bundles libopus next to its FFmpeg (auditwheel / delocate layout)

        base = os.path.dirname(os.path.abspath(av.__file__))
        for pattern in (
            "../av.libs/libopus*.so*",
            ".dylibs/libopus*.dylib",
            "../av.libs/opus*.dll",
        ):
            found.extend(sorted(glob.glob(os.path.join(base, pattern))))
    except ImportError:
        pass
    system = ctypes.util.find_library("opus")
    if system:
        found.append(system)
    return found


class _LibOpus:
    """The handful of libopus entry points we use, with their C signatures."""

    def __init__(self) -> None:
        errors = []
        for path in _library_candidates():
            try:
                self.lib = ctypes.CDLL(path)
                self.path = os.path.normpath(path)
                break
            except OSError as exc:
                errors.append(f"{path}: {exc}")
        else:
            raise ImportError(
                "no usable libopus found (install av, or libopus0): " + "; ".join(errors)
            )
        lib = self.lib
        vp, i32, c_int = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int
        lib.opus_get_version_string.restype = ctypes.c_char_p
        lib.opus_get_version_string.argtypes = ()
        lib.opus_strerror.restype = ctypes.c_char_p
        lib.opus_strerror.argtypes = (c_int,)
        lib.opus_encoder_create.restype = vp
        lib.opus_encoder_create.argtypes = (i32, c_int, c_int, ctypes.POINTER(c_int))
        lib.opus_encoder_destroy.restype = None
        lib.opus_encoder_destroy.argtypes = (vp,)
        lib.opus_encode.restype = i32
        lib.opus_encode.argtypes = (vp, vp, c_int, vp, i32)
        lib.opus_decoder_create.restype = vp
        lib.opus_decoder_create.argtypes = (i32, c_int, ctypes.POINTER(c_int))
        lib.opus_decoder_destroy.restype = None
        lib.opus_decoder_destroy.argtypes = (vp,)
        # const unsigned char *data: c_char_p passes a bytes object without copying, or NULL.
        lib.opus_decode.restype = c_int
        lib.opus_decode.argtypes = (vp, ctypes.c_char_p, i32, vp, c_int, c_int)
        lib.opus_packet_get_nb_samples.restype = c_int
        lib.opus_packet_get_nb_samples.argtypes = (ctypes.c_char_p, i32, i32)
        # The *_ctl functions are variadic: no argtypes, every argument wrapped explicitly.
        lib.opus_encoder_ctl.restype = c_int
        lib.opus_decoder_ctl.restype = c_int
        self.has_lbrr: Any = getattr(lib, "opus_packet_has_lbrr", None)  # libopus >= 1.5
        if self.has_lbrr is not None:
            self.has_lbrr.restype = c_int
            self.has_lbrr.argtypes = (ctypes.c_char_p, i32)
        self.version: str = lib.opus_get_version_string().decode()

    def strerror(self, code: int) -> str:
        message: bytes = self.lib.opus_strerror(code)
        return message.decode()


_LIB: _LibOpus | None = None


def libopus() -> _LibOpus:
    """The loaded libopus (loaded on first use)."""
    global _LIB
    if _LIB is None:
        _LIB = _LibOpus()
    return _LIB


def libopus_version() -> str:
    return libopus().version


@dataclass(frozen=True, slots=True)
class OpusConfig:
    """Encoder settings. The defaults suit a voice leg: complexity 5 costs about half of
    complexity 10 (reference/anchors.md §6.1), 32 kbit/s is transparent for wideband speech,
    and in-band FEC with a 10 % expected loss makes every packet carry a low-bitrate copy of the
    previous one (RFC 6716 §2.1.7)."""

    bitrate: int = 32000
    complexity: int = 5
    application: Application = Application.VOIP
    inband_fec: bool = True
    packet_loss_perc: int = 10
    dtx: bool = False
    signal: Signal = Signal.AUTO
    max_bandwidth: Bandwidth = Bandwidth.FULLBAND


class OpusEncoder(Encoder):
    info: CodecInfo = OPUS

    def __init__(self, config: OpusConfig | None = None, **options: Any) -> None:
        self.config = config if config is not None else OpusConfig(**options)
        lib = libopus()
        self._lib = lib.lib
        error = ctypes.c_int()
        state = self._lib.opus_encoder_create(
            OPUS.sample_rate, 1, int(self.config.application), ctypes.byref(error)
        )
        if error.value != _OK or not state:
            raise OpusError(f"opus_encoder_create: {lib.strerror(error.value)}")
        self._state = ctypes.c_void_p(state)
        self._finalizer = weakref.finalize(self, self._lib.opus_encoder_destroy, self._state)
        self._out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        # The PCM goes to libopus from a buffer of our own whose address is known: asking a
        # numpy array for its address (`ndarray.ctypes.data`) costs 0.85 µs a call, the copy
        # of a 20 ms frame into this buffer 0.17 µs.
        self._pcm: PCM = np.zeros(MAX_FRAME_SAMPLES, dtype=np.int16)
        self._in_address = self._pcm.ctypes.data
        self._configure()

    def _ctl(self, request: int, value: int) -> None:
        rc = self._lib.opus_encoder_ctl(self._state, ctypes.c_int(request), ctypes.c_int32(value))
        if rc != _OK:
            raise OpusError(f"opus_encoder_ctl({request}, {value}): {libopus().strerror(rc)}")

    def _configure(self) -> None:
        c = self.config
        self._ctl(_SET_BITRATE, c.bitrate)
        self._ctl(_SET_COMPLEXITY, c.complexity)
        self._ctl(_SET_INBAND_FEC, 1 if c.inband_fec else 0)
        self._ctl(_SET_PACKET_LOSS_PERC, c.packet_loss_perc)
        self._ctl(_SET_DTX, 1 if c.dtx else 0)
        self._ctl(_SET_SIGNAL, int(c.signal))
        self._ctl(_SET_MAX_BANDWIDTH, int(c.max_bandwidth))

    def encode(self, pcm: PCM) -> bytes:
        if pcm.dtype != np.int16:
            raise TypeError(f"Opus encodes int16 PCM, got {pcm.dtype}")
        samples = len(pcm)
        if samples > MAX_FRAME_SAMPLES:
            raise ValueError(f"opus_encode({samples} samples): longer than 120 ms")
        self._pcm[:samples] = pcm
        n = self._lib.opus_encode(
            self._state, self._in_address, samples, self._out, MAX_PACKET_BYTES
        )
        if n < 0:
            # Only a frame size that is not 2.5/5/10/20/40/60 ms gets here: a programming error.
            raise ValueError(f"opus_encode({samples} samples): {libopus().strerror(n)}")
        return self._out.raw[:n]  # (string_at: 0.27 µs, this 0.11 µs)

    def reset(self) -> None:
        self._lib.opus_encoder_ctl(self._state, ctypes.c_int(_RESET_STATE))

    def close(self) -> None:
        self._finalizer()


class OpusDecoder(Decoder):
    """One libopus decoder state per received stream: decode, PLC and FEC share it."""

    info: CodecInfo = OPUS

    def __init__(self, sample_rate: int = OPUS.sample_rate) -> None:
        """``sample_rate``: what the decoder outputs (8000, 12000, 16000, 24000 or 48000,
        RFC 6716 §2); below 48 kHz libopus skips the upper bands' synthesis."""
        lib = libopus()
        self._libopus = lib
        self._lib = lib.lib
        error = ctypes.c_int()
        state = self._lib.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
        if error.value != _OK or not state:
            raise OpusError(f"opus_decoder_create: {lib.strerror(error.value)}")
        self._state = ctypes.c_void_p(state)
        self._finalizer = weakref.finalize(self, self._lib.opus_decoder_destroy, self._state)
        self._buf: PCM = np.zeros(MAX_FRAME_SAMPLES, dtype=np.int16)
        self._ptr = self._buf.ctypes.data
        self.frame_samples = OPUS.frame_samples * sample_rate // OPUS.sample_rate
        self._quantum = sample_rate // 400  # 2.5 ms

    def _run(self, payload: bytes | None, samples: int, fec: int) -> PCM:
        length = len(payload) if payload is not None else 0
        n = self._lib.opus_decode(self._state, payload, length, self._ptr, samples, fec)
        if n < 0:
            raise MediaParseError(f"opus: {self._libopus.strerror(n)}")
        return self._buf[:n]

    def decode(self, payload: bytes) -> PCM:
        if not payload:
            # A zero-length payload would mean "conceal" to libopus; from the wire it is garbage.
            raise MediaParseError("opus: empty payload")
        pcm = self._run(bytes(payload), MAX_FRAME_SAMPLES, 0)
        if len(pcm):
            self.frame_samples = len(pcm)
        return pcm

    def conceal(self, samples: int | None = None) -> PCM:
        # PLC: libopus extrapolates from its state and fades by itself (RFC 6716 §4.4).
        return self._run(None, self._plc_size(samples), 0)

    def can_recover(self, next_payload: bytes) -> bool:
        if not next_payload:
            return False
        has_lbrr = self._libopus.has_lbrr
        if has_lbrr is not None:
            return bool(has_lbrr(bytes(next_payload), len(next_payload)) == 1)
        # libopus < 1.5: LBRR exists only in SILK and hybrid frames (TOC config 0-15,
        # RFC 6716 §3.1); CELT-only packets never carry it.
        return (next_payload[0] >> 3) < 16

    def recover(self, next_payload: bytes, samples: int | None = None) -> PCM:
        # decode_fec=1 decodes the LBRR copy of the *previous* frame carried in next_payload
        # (opus_decode's documented FEC mode); without LBRR libopus returns PLC instead.
        if not next_payload:
            return self.conceal(samples)
        return self._run(bytes(next_payload), self._plc_size(samples), 1)

    def is_dtx(self, payload: bytes) -> bool:
        # A DTX/comfort frame is a TOC byte with no (or a 1-byte) frame: RFC 6716 §3.2.1 and
        # libopus's DTX output of <= 2 bytes.
        return 0 < len(payload) <= 2

    def _plc_size(self, samples: int | None) -> int:
        n = self.frame_samples if samples is None else samples
        # Opus decodes in multiples of 2.5 ms (120 samples at 48 kHz), at most 120 ms.
        q = self._quantum
        n = max(q, min(48 * q, n))
        return n - n % q

    def reset(self) -> None:
        self._lib.opus_decoder_ctl(self._state, ctypes.c_int(_RESET_STATE))

    def close(self) -> None:
        self._finalizer()


def packet_samples(payload: bytes) -> int:
    """Samples (48 kHz) in an Opus packet, from its TOC and frame count (RFC 6716 §3.1)."""
    if not payload:
        raise MediaParseError("opus: empty payload")
    n: int = libopus().lib.opus_packet_get_nb_samples(
        bytes(payload), len(payload), OPUS.sample_rate
    )
    if n < 0:
        raise MediaParseError(f"opus: {libopus().strerror(n)}")
    return n
