"""PCM16 samples: int16/float conversion with clipping, downmix to mono, 80 ms framing.

The wire's sample format is 16-bit signed little-endian mono (PROTOCOL.md
section 4). Everything here is pure and vectorized with numpy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, TypeAlias, cast

import numpy as np
import numpy.typing as npt

from .errors import InvalidAudio
from .formats import Direction, lookup_format

__all__ = [
    "MAX_CHANNELS",
    "AudioInput",
    "channels_last",
    "check_array",
    "mono_samples",
    "Int16Array",
    "bytes_per_80ms",
    "float_to_int16",
    "frame_bytes",
    "pcm16_view",
    "to_pcm16",
    "wire_samples",
]

Int16Array = npt.NDArray[np.int16]
AudioInput = bytes | bytearray | memoryview | npt.NDArray[np.generic]
"""What ``to_pcm16`` accepts: raw little-endian PCM16 bytes or a numpy array."""

_LE_INT16 = np.dtype("<i2")
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
# Largest float that still maps below 32767.5 after scaling: clipping to it
# *before* scaling gives the same result as clipping after, without overflow.
_FLOAT_MAX = 32767.0 / 32768.0


def float_to_int16(samples: npt.NDArray[Any]) -> Int16Array:
    """Convert float samples in [-1, 1] to int16: scale by 32768, round, clip.

    Rounding is half to even (``np.rint``), out-of-range values are clipped to
    [-32768, 32767] (so +1.0 gives 32767, never a wrap to -32768) and NaN gives 0.

    Args:
        samples: A float32 or float64 array of any shape.

    Returns:
        A new int16 array of the same shape.

    Raises:
        InvalidAudio: The array is not float32 or float64.
    """
    lo, hi, scale = _float_scalars(samples.dtype)
    # Clip before scaling (no overflow) to the float that scales to 32767, scale (exact:
    # a power of two), round in place, cast. NaN goes through all of them and is
    # mended only when present.
    buf: npt.NDArray[Any] = _clip(samples, lo, hi)
    np.multiply(buf, scale, out=buf)
    one_d = buf.ndim == 1
    flat = buf if one_d else buf.reshape(-1)
    squares = np.dot(flat, flat)  # finite unless a NaN went through: one pass to find out
    if squares != squares:
        buf[np.isnan(buf)] = 0.0
    np.rint(buf, out=buf)  # round half to even; the values are now exact integers
    # A 1-D result is contiguous anyway; other shapes are returned in C order.
    return buf.astype(_INT16) if one_d else buf.astype(_INT16, order="C")


def _float_scalars(dtype: np.dtype[Any]) -> _Scalars:
    """The clip bounds and the scale for a float dtype, as scalars of that precision."""
    if dtype is _F32:
        return _F32_SCALARS
    if dtype is _F64:
        return _F64_SCALARS
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise InvalidAudio(f"expected float32 or float64 samples, got dtype {dtype}")
    return _F32_SCALARS if dtype.itemsize == 4 else _F64_SCALARS


# numpy resolves a Python float operand (a "weak" scalar) more slowly than a scalar of
# the array's own type: the bounds and the scale are kept in both precisions.
_Scalars: TypeAlias = tuple[np.floating[Any], np.floating[Any], np.floating[Any]]
_F32_SCALARS: _Scalars = (np.float32(-1.0), np.float32(_FLOAT_MAX), np.float32(32768.0))
_F64_SCALARS: _Scalars = (np.float64(-1.0), np.float64(_FLOAT_MAX), np.float64(32768.0))
_INT16 = np.dtype(np.int16)


def _downmix(samples: npt.NDArray[np.generic]) -> Int16Array:
    """Average the channels of an (n, channels) int16 or float array into int16 mono."""
    mono = _mean_channels(samples)
    return mono if mono.dtype.kind == "i" else float_to_int16(mono)


def _mean_channels(samples: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The channel average of (n, channels) samples: int16 for int16, float64 for floats."""
    if samples.shape[1] == 1:
        column: npt.NDArray[Any] = samples[:, 0]
        return column if column.dtype.kind == "f" else column.astype(np.int16)
    mean: npt.NDArray[np.float64] = samples.mean(axis=1, dtype=np.float64)
    if samples.dtype.kind == "f":
        return mean
    # The mean of int16 values is in range: only rounding is needed.
    np.rint(mean, out=mean)
    return mean.astype(np.int16)


MAX_CHANNELS = 8
"""The most channels a 2-D array may hold: its other dimension (more than
this) is the samples, so (samples, channels) and (channels, samples) are
told apart by shape."""


def channels_last(shape: tuple[int, ...], hint: bool | None = None) -> bool:
    """Whether a 2-D shape is (samples, channels) rather than (channels, samples).

    The channels are the dimension of at most ``MAX_CHANNELS`` when the other
    one is longer. When both are that short, ``hint`` decides (the layout of
    the stream's earlier chunks); without one, a dimension of 1 is the
    channel (mono either way), and anything else is ambiguous.

    Raises:
        InvalidAudio: No dimension is a channel count (both longer than
            ``MAX_CHANNELS``), or the shape is ambiguous; the message names it.
    """
    rows, columns = shape
    if columns <= MAX_CHANNELS < rows:
        return True
    if rows <= MAX_CHANNELS < columns:
        return False
    if rows > MAX_CHANNELS:
        raise InvalidAudio(
            f"audio of shape {shape} has no channel dimension: a 2-D array is (samples, "
            f"channels) or (channels, samples) with at most {MAX_CHANNELS} channels")
    if hint is not None:
        return hint
    if columns == 1 or rows == 1:
        return columns == 1
    raise InvalidAudio(
        f"audio of shape {shape} is ambiguous: either dimension could be the channels. A "
        f"2-D array is (samples, channels) or (channels, samples) with at most {MAX_CHANNELS} "
        "channels and more samples than that; pass 1-D mono samples, or longer chunks")


def check_array(audio: npt.NDArray[Any], *, downmix: bool = False,
                hint: bool | None = None) -> bool | None:
    """Check an array's dtype and shape as audio; return its layout.

    Returns:
        None for 1-D (mono) samples; for 2-D, whether the channels are last
        (``channels_last``, with ``hint``).

    Raises:
        InvalidAudio: Unsupported dtype or shape, an ambiguous 2-D shape, or
            several channels without ``downmix`` (the message names the shape).
    """
    dtype = audio.dtype
    if dtype.kind not in "if" or (dtype.kind == "i" and dtype.itemsize != 2) or (
        dtype.kind == "f" and dtype.itemsize not in (4, 8)
    ):
        raise InvalidAudio(
            f"unsupported audio dtype {dtype}; expected int16, float32 or float64"
        )
    if audio.ndim == 1:
        return None
    if audio.ndim != 2:
        raise InvalidAudio(f"audio must be 1-D (samples) or 2-D (samples, channels) or "
                           f"(channels, samples), got shape {audio.shape}")
    last = channels_last(audio.shape, hint)
    channels = audio.shape[1] if last else audio.shape[0]
    if channels != 1 and not downmix:
        layout = "(samples, channels)" if last else "(channels, samples)"
        raise InvalidAudio(
            f"audio of shape {audio.shape} has {channels} channels, read as {layout}; the "
            "protocol is mono: pass downmix=True to average the channels")
    return last


def mono_samples(audio: npt.NDArray[Any], *, downmix: bool = False,
                 hint: bool | None = None) -> npt.NDArray[Any]:
    """Checked 1-D samples of an array: int16 as is, floats as float (not yet clipped).

    1-D arrays are mono. 2-D arrays are (samples, channels) or (channels,
    samples), told apart by ``channels_last`` (with ``hint``); several
    channels are averaged when ``downmix`` is set, else refused.

    Raises:
        InvalidAudio: As ``check_array``.
    """
    last = check_array(audio, downmix=downmix, hint=hint)
    if last is None:
        return audio
    return _mean_channels(audio if last else audio.T)


def _as_int16_mono(audio: npt.NDArray[np.generic], downmix: bool) -> npt.NDArray[np.int16]:
    """Validate dtype and shape of an array and return int16 mono (maybe a view)."""
    mono = mono_samples(audio, downmix=downmix)
    if mono.dtype.kind == "f":
        return float_to_int16(mono)
    return cast(Int16Array, mono)


def _clip_two_calls(x: npt.NDArray[Any], lo: float, hi: float,
                    out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
    result: npt.NDArray[Any] = np.minimum(x, hi, out=out)
    np.maximum(result, lo, out=result)
    return result


def _clip_ufunc() -> Any:
    """numpy's clip ufunc itself: ``np.clip`` wraps it in ~3 us of Python per call."""
    for name in ("numpy._core.umath", "numpy.core.umath"):
        try:
            module = __import__(name, fromlist=["clip"])
        except ImportError:
            continue
        clip = getattr(module, "clip", None)
        if isinstance(clip, np.ufunc):
            return clip
    return _clip_two_calls  # pragma: no cover - every numpy >= 1.17 has the ufunc


_clip = _clip_ufunc()
_NATIVE_IS_LE = sys.byteorder == "little"


def to_pcm16(audio: AudioInput, *, downmix: bool = False) -> bytes:
    """Convert audio to 16-bit signed little-endian mono PCM bytes.

    Args:
        audio: PCM16 bytes (an even number of them), or a numpy array: int16
            (passed through), float32/float64 in [-1, 1] (see
            ``float_to_int16``), 1-D, or 2-D as (samples, channels) or
            (channels, samples) (see ``channels_last``).
        downmix: Average the channels of a 2-D array instead of refusing it.

    Returns:
        Little-endian PCM16 bytes, whatever the host byte order.

    Raises:
        InvalidAudio: Odd byte length, unsupported dtype or shape, an
            ambiguous 2-D shape, or several channels without ``downmix``.
    """
    if type(audio) is np.ndarray and audio.ndim == 1 and _NATIVE_IS_LE:
        # The common case first: one chunk of samples, int16 or float.
        dtype = audio.dtype
        if dtype is _LE_INT16:
            return audio.tobytes()
        if dtype is _F32 or dtype is _F64:
            return float_to_int16(audio).tobytes()
    if isinstance(audio, bytes | bytearray | memoryview):
        view = memoryview(audio)
        if view.nbytes % 2:
            raise InvalidAudio(
                f"PCM16 audio must hold whole 2-byte samples, got {view.nbytes} bytes"
            )
        return audio if isinstance(audio, bytes) else view.tobytes()
    if not isinstance(audio, np.ndarray):
        raise InvalidAudio(
            f"unsupported audio type {type(audio).__name__}; expected bytes or a numpy array"
        )
    mono = _as_int16_mono(audio, downmix)
    return np.asarray(mono, dtype=_LE_INT16).tobytes()


def wire_samples(audio: npt.NDArray[Any]) -> Int16Array | None:
    """One chunk of samples as a contiguous little-endian int16 array, without a copy to bytes.

    ``to_pcm16``'s common case (a 1-D int16, float32 or float64 array) minus its
    final ``tobytes``: an int16 array is returned as is, a float one converted
    by ``float_to_int16``. Anything else (other dtypes, shapes or layouts, a
    big-endian host) gives None: ``to_pcm16`` checks and converts it.
    """
    if audio.ndim != 1 or not _NATIVE_IS_LE:
        return None
    dtype = audio.dtype
    if dtype is _LE_INT16:
        return audio if audio.flags.c_contiguous else None
    if dtype is _F32 or dtype is _F64:
        return float_to_int16(audio)
    return None


def pcm16_view(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """Return a zero-copy, read-only little-endian int16 view of PCM16 bytes.

    Raises:
        InvalidAudio: The length is odd.
    """
    view = memoryview(data)
    if view.nbytes % 2:
        raise InvalidAudio(f"PCM16 audio must hold whole 2-byte samples, got {view.nbytes} bytes")
    array: npt.NDArray[np.int16] = np.frombuffer(view, dtype=_LE_INT16)
    array.flags.writeable = False
    return array


def frame_bytes(data: bytes, bytes_per_frame: int) -> Iterator[bytes]:
    """Slice audio bytes into frames (80 ms chunks); the last one may be shorter.

    Args:
        data: The audio bytes.
        bytes_per_frame: Frame size, e.g. from ``bytes_per_80ms``.

    Raises:
        ValueError: ``bytes_per_frame`` is not positive.
    """
    if bytes_per_frame <= 0:
        raise ValueError(f"bytes_per_frame must be positive, got {bytes_per_frame}")
    for start in range(0, len(data), bytes_per_frame):
        yield data[start : start + bytes_per_frame]


def bytes_per_80ms(format_name: str, direction: Direction) -> int | None:
    """Bytes in one 80 ms frame of a format, or None for containers (wav, opus).

    Raises:
        ValueError: Unknown format name.
    """
    return lookup_format(format_name, direction).bytes_per_frame
