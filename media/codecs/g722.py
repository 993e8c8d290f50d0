"""G.722 (64 kbit/s, 16 kHz audio on the 8000 Hz RTP clock of RFC 3551 §4.5.2).

Backend: the `g722` wheel (sippy's public-domain libg722, module `G722`). Measured on this
project's 2-vCPU reference machine, per 20 ms frame: `G722` encode 17.7 µs / decode 13.9 µs,
against PyAV's `g722` codec 29.8 µs / 16.1 µs (including the `AudioFrame` / `Packet` objects
PyAV needs for every call). Both produce the same bitstream, so we take the faster, simpler one.

G.722 has no concealment of its own; `media.concealment` repeats the last pitch period with a
fade, as for G.711. (The ADPCM predictor state is not rewound after a loss: the decoder
re-converges within a few milliseconds, which the cross-fade into the first good frame hides.)
"""

from __future__ import annotations

import numpy as np
from G722 import G722 as _G722

from media.codecs import G722, CodecInfo, Decoder, Encoder
from media.concealment import Concealer
from media.frame import PCM

BITRATE = 64000  # mode 1, the only one negotiated in practice (RFC 3551 §4.5.2)


class G722Encoder(Encoder):
    info: CodecInfo = G722

    def __init__(self) -> None:
        self._codec = _G722(G722.sample_rate, BITRATE)

    def encode(self, pcm: PCM) -> bytes:
        if pcm.dtype != np.int16:
            raise TypeError(f"G.722 encodes int16 PCM, got {pcm.dtype}")
        # Two 16 kHz samples make one octet; the codec needs an even count.
        if len(pcm) % 2:
            raise ValueError("G.722 encodes an even number of samples")
        data: bytes = self._codec.encode(np.ascontiguousarray(pcm))
        return data

    def reset(self) -> None:
        self._codec = _G722(G722.sample_rate, BITRATE)


class G722Decoder(Decoder):
    info: CodecInfo = G722

    def __init__(self) -> None:
        self._codec = _G722(G722.sample_rate, BITRATE)
        self._concealer = Concealer(G722.sample_rate, G722.frame_ms)

    def decode(self, payload: bytes) -> PCM:
        # Every octet is valid (two sub-band ADPCM codes); the C decoder returns array('h'),
        # which numpy wraps without copying.
        decoded = self._codec.decode(bytes(payload))
        pcm: PCM = np.frombuffer(decoded, dtype=np.int16)
        return self._concealer.good(pcm)

    def conceal(self, samples: int | None = None) -> PCM:
        return self._concealer.conceal(samples)

    def reset(self) -> None:
        self._codec = _G722(G722.sample_rate, BITRATE)
        self._concealer.reset()
