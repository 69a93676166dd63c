"""G.711 mu-law and A-law (bit-exact with the ITU/Sun reference), and the headerless codecs.

``decode_raw``/``encode_raw`` pick the codec of a headerless format of
PROTOCOL.md section 4 (pcm, ulaw_8000, alaw_8000). Table driven: one numpy
``take`` per call.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._pcm import Int16Array, pcm16_view, to_pcm16
from .errors import InvalidAudio
from .formats import AudioFormat, Codec

__all__ = ["alaw_decode", "alaw_encode", "decode_raw", "encode_raw", "ulaw_decode", "ulaw_encode"]

_SEG_END = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def _all_int16() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its uint16 bit pattern (the encode-table index)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_tables() -> tuple[npt.NDArray[np.uint8], Int16Array]:
    x = _all_int16()
    negative = x < 0
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    seg = np.searchsorted(_SEG_END, magnitude).astype(np.int32)
    code = (seg << 4) | ((magnitude >> (seg + 3)) & 0xF)
    encode = (code ^ np.where(negative, 0x7F, 0xFF)).astype(np.uint8)

    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0xF) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    decode = np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)
    return encode, decode


def _build_alaw_tables() -> tuple[npt.NDArray[np.uint8], Int16Array]:
    x = _all_int16()
    negative = x < 0
    # 13-bit magnitude; negatives use the one's complement, as G.711 does.
    magnitude = np.where(negative, ~x, x) >> 3
    seg = np.searchsorted(_SEG_END >> 3, magnitude).astype(np.int32)
    quant = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0xF
    code = (seg << 4) | quant  # the 13-bit magnitude never exceeds segment 7
    encode = (code ^ np.where(negative, 0x55, 0xD5)).astype(np.uint8)

    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg_d = (a & 0x70) >> 4
    t = ((a & 0xF) << 4) + np.where(seg_d == 0, 8, 0x108)
    t = t << np.maximum(seg_d - 1, 0)
    decode = np.where(a & 0x80, t, -t).astype(np.int16)
    return encode, decode


_ULAW_ENCODE, _ULAW_DECODE = _build_ulaw_tables()
_ALAW_ENCODE, _ALAW_DECODE = _build_alaw_tables()


def _g711_index(pcm: npt.NDArray[np.generic]) -> npt.NDArray[np.uint16]:
    if pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        raise InvalidAudio(f"G.711 encoding needs int16 samples, got dtype {pcm.dtype}")
    return np.asarray(pcm, dtype=np.int16).view(np.uint16)


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples to G.711 mu-law bytes (bit-exact with the Sun/ITU reference)."""
    return _ULAW_ENCODE.take(_g711_index(pcm)).tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview) -> Int16Array:
    """Decode G.711 mu-law bytes to int16 samples."""
    return _ULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


def alaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """Encode int16 samples to G.711 A-law bytes (bit-exact with the Sun/ITU reference)."""
    return _ALAW_ENCODE.take(_g711_index(pcm)).tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> Int16Array:
    """Decode G.711 A-law bytes to int16 samples."""
    return _ALAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


def decode_raw(data: bytes | bytearray | memoryview, fmt: AudioFormat) -> npt.NDArray[np.int16]:
    """Decode the bytes of a headerless format (PCM16, mu-law, A-law) to int16.

    PCM16 gives a read-only zero-copy view (see ``pcm16_view``).

    Raises:
        InvalidAudio: Not a raw format, or an odd PCM16 length.
    """
    if fmt.codec is Codec.PCM16:
        return pcm16_view(data)
    if fmt.codec is Codec.ULAW:
        return ulaw_decode(data)
    if fmt.codec is Codec.ALAW:
        return alaw_decode(data)
    raise InvalidAudio(f"format {fmt.name!r} is not a raw sample format")


def encode_raw(pcm: npt.NDArray[np.int16], fmt: AudioFormat) -> bytes:
    """Encode int16 mono samples into a headerless format (PCM16, mu-law, A-law).

    Raises:
        InvalidAudio: Not a raw format, or samples that are not int16.
    """
    if fmt.codec is Codec.PCM16:
        if pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
            raise InvalidAudio(f"PCM16 encoding needs int16 samples, got dtype {pcm.dtype}")
        return to_pcm16(pcm)
    if fmt.codec is Codec.ULAW:
        return ulaw_encode(pcm)
    if fmt.codec is Codec.ALAW:
        return alaw_encode(pcm)
    raise InvalidAudio(f"format {fmt.name!r} is not a raw sample format")
