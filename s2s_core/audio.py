"""Audio helpers: PCM16 conversion, 80 ms framing, G.711, WAV and resampling.

The public face of four private modules, one subject each:

- ``_pcm``: int16/float conversion with clipping, 2-D layouts and downmix, PCM16
  views, framing;
- ``_g711``: mu-law and A-law, and the codecs of the headerless formats;
- ``_wav``: WAV read and write, whole or streaming;
- ``_resample``: sample-rate conversion with libsoxr (one-shot or streaming).

The format table of PROTOCOL.md section 4 lives in ``s2s_core.formats``.
Everything here is pure and vectorized with numpy: no I/O besides the file
objects handed to the WAV writers, no clock.

Example:
    >>> import numpy as np
    >>> from s2s_core.audio import to_pcm16
    >>> to_pcm16(np.array([0.0, 1.0], dtype=np.float32))
    b'\\x00\\x00\\xff\\x7f'
"""

from __future__ import annotations

from ._g711 import alaw_decode, alaw_encode, decode_raw, encode_raw, ulaw_decode, ulaw_encode
from ._pcm import (
    MAX_CHANNELS,
    AudioInput,
    bytes_per_80ms,
    channels_last,
    float_to_int16,
    frame_bytes,
    pcm16_view,
    to_pcm16,
)
from ._resample import Resampler, resample
from ._wav import WavAudio, WavStreamDecoder, WavStreamWriter, read_wav, wav_header, write_wav

__all__ = [
    "MAX_CHANNELS",
    "AudioInput",
    "Resampler",
    "WavAudio",
    "WavStreamDecoder",
    "WavStreamWriter",
    "alaw_decode",
    "alaw_encode",
    "bytes_per_80ms",
    "channels_last",
    "decode_raw",
    "encode_raw",
    "float_to_int16",
    "frame_bytes",
    "pcm16_view",
    "read_wav",
    "resample",
    "to_pcm16",
    "ulaw_decode",
    "ulaw_encode",
    "wav_header",
    "write_wav",
]
