"""Sample-rate conversion to int16 mono, one-shot or streaming, with libsoxr.

The interface is narrow on purpose (``Resampler(from_rate, to_rate)`` with
``process``/``flush``, and ``resample``): every caller that resamples a
stream keeps ONE ``Resampler`` for it, so the filter's state carries over
chunk edges and the sample count never drifts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from ._pcm import _clip, float_to_int16
from .errors import InvalidAudio

__all__ = ["QUALITY", "Resampler", "resample", "round_to_int16"]

QUALITY = "HQ"
"""libsoxr's recipe: "HQ" is 20-bit precision, passband to 91.3% of the lower
Nyquist frequency, linear phase (more than 16-bit audio needs)."""

_F32 = np.dtype(np.float32)
_INT16_SCALE = np.float32(1.0 / 32768.0)
_INT16_MIN = np.float32(-32768.0)
_INT16_MAX = np.float32(32767.0)


def _check(chunk: npt.NDArray[Any]) -> None:
    """Refuse what is not 1-D int16, float32 or float64 samples (InvalidAudio)."""
    dtype = chunk.dtype
    if chunk.ndim != 1 or not ((dtype.kind == "i" and dtype.itemsize == 2)
                               or (dtype.kind == "f" and dtype.itemsize in (4, 8))):
        raise InvalidAudio(f"resampling needs 1-D int16, float32 or float64 samples, "
                           f"got {dtype} of shape {chunk.shape}")


def _as_float32(chunk: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Checked samples as contiguous float32 in [-1, 1] (int16 / 32768 is exact)."""
    if chunk.dtype.kind == "i":
        scaled: npt.NDArray[np.float32] = np.multiply(chunk, _INT16_SCALE, dtype=np.float32)
        return scaled
    return np.ascontiguousarray(chunk, dtype=_F32)


class Resampler:
    """Streaming sample-rate converter to int16 mono (``soxr.ResampleStream``).

    libsoxr's "HQ" recipe on float32 samples; int16 input is scaled by
    1/32768 (exact) and the output is rounded half to even and clipped to
    int16 (``float_to_int16``), so a float input is quantized once, after
    resampling. The converter keeps its filter state across ``process``
    calls: any chunking gives the same output, bit for bit, as ``resample``
    of the whole (libsoxr works in blocks of its own, whatever the calls).
    For ``n`` input samples the whole stream holds
    ``floor(n * to / from + 1/2)`` output samples: no drift however the
    input is cut. ``process`` holds back what the filter still needs
    (libsoxr emits in blocks: about 10 to 50 ms late, in bursts);
    ``flush`` ends the stream, returns the rest and resets the converter.

    Args:
        from_rate: Input samples per second (> 0).
        to_rate: Output samples per second (> 0).

    Raises:
        InvalidAudio: A rate is not positive (also a ValueError).
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise InvalidAudio(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._stream = None if from_rate == to_rate else self._new_stream()
        self._taken = 0  # input samples since the last flush
        self._given = 0  # output samples since the last flush

    def _new_stream(self) -> Any:  # soxr.ResampleStream (soxr ships no type marker)
        return soxr.ResampleStream(self.from_rate, self.to_rate, 1, dtype="float32",
                                   quality=QUALITY)

    def process(self, chunk: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
        """Feed mono samples (int16, or float in [-1, 1]); return the int16 samples now ready.

        Raises:
            InvalidAudio: The chunk is not 1-D int16, float32 or float64.
        """
        _check(chunk)
        if self._stream is None:
            return float_to_int16(chunk) if chunk.dtype.kind == "f" else chunk.astype(np.int16)
        if len(chunk) == 0:
            return np.empty(0, dtype=np.int16)
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(_as_float32(chunk))
        self._taken += len(chunk)
        self._given += len(out)
        return float_to_int16(out)

    def flush(self) -> npt.NDArray[np.int16]:
        """End the stream: return the remaining samples and reset the converter."""
        if self._stream is None:
            return np.empty(0, dtype=np.int16)
        return float_to_int16(self.flush_float())

    def process_float(self, chunk: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``process`` minus the conversions: float32 in, libsoxr's float32 out, in any scale.

        libsoxr's float path is linear and a power-of-two scale is exact in
        floating point, so int16 values given as float32 come out in int16
        units: ``round_to_int16`` of them is what ``process`` returns for the
        int16 samples, bit for bit (the tests hold it to that). The local
        server converts its input once this way for the VAD and the
        resampler. The same rates give the chunk back.

        Args:
            chunk: C-contiguous float32 samples, 1-D or as one column
                ``(n, 1)`` (libsoxr's own layout: no reshaping on the way);
                not checked, the caller builds them.

        Returns:
            The float32 samples now ready, in the chunk's shape: a new array
            (the caller may overwrite it), or ``chunk`` itself at the same rates.
        """
        stream = self._stream
        if stream is None or len(chunk) == 0:
            return chunk
        out: npt.NDArray[np.float32] = stream.resample_chunk(chunk)
        self._taken += len(chunk)
        self._given += len(out)
        return out

    def flush_float(self) -> npt.NDArray[np.float32]:
        """``flush`` minus the quantization (see ``process_float``)."""
        stream = self._stream
        if stream is None:
            return np.empty(0, dtype=_F32)
        tail: npt.NDArray[np.float32] = stream.resample_chunk(np.empty(0, dtype=_F32), last=True)
        self._stream = self._new_stream()  # a fresh state (``clear`` is not in every soxr)
        # libsoxr rounds an exact half sample its own way: hold the count to the rule.
        want = (2 * self._taken * self.to_rate + self.from_rate) // (2 * self.from_rate)
        missing = want - self._given - len(tail)
        if missing > 0:
            tail = np.concatenate((tail, np.zeros(missing, dtype=_F32)))
        elif missing < 0:
            tail = tail[:max(len(tail) + missing, 0)]
        self._taken = self._given = 0
        return tail


def round_to_int16(samples: npt.NDArray[np.float32], out: npt.NDArray[np.int16]) -> None:
    """Write float32 samples in int16 units to ``out``: clipped, rounded half to even.

    The rounding and clipping of ``float_to_int16`` for samples already
    scaled by 32768 (see ``Resampler.process_float``), in place and without
    a new array. NaN is not handled (libsoxr's output of finite input is
    finite).

    Args:
        samples: float32 samples, 1-D or one column ``(n, 1)`` (scratch:
            overwritten).
        out: 1-D int16 array (any byte order) of ``len(samples)`` samples.
    """
    _clip(samples, _INT16_MIN, _INT16_MAX, samples)
    np.rint(samples, samples)
    out[:] = samples.reshape(-1)  # exact integers in range: the cast is exact


def resample(pcm: npt.NDArray[Any], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """Resample mono audio (int16, or float in [-1, 1]) to int16 in one call.

    The same as one ``Resampler``'s ``process`` and ``flush`` (see there):
    ``floor(len(pcm) * to_rate / from_rate + 1/2)`` samples; the same rate
    returns a copy as int16.

    Raises:
        InvalidAudio: A rate is not positive, or the samples are not 1-D
            int16, float32 or float64.
    """
    resampler = Resampler(from_rate, to_rate)
    head = resampler.process(pcm)
    tail = resampler.flush()
    return np.concatenate((head, tail)) if len(tail) else head
