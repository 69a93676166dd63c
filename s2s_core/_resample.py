"""Sample-rate conversion of int16 mono audio, one-shot or streaming.

The interface is narrow on purpose (``Resampler(from_rate, to_rate)`` with
``process``/``flush``, and ``resample``), so another implementation can take
this module's place without touching its callers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from .errors import InvalidAudio

__all__ = ["Resampler", "resample"]

_HALF_TAPS = 24  # filter half-length in input samples when not downsampling
_KAISER_BETA = 8.5
_ROLLOFF = 0.92  # cutoff as a fraction of the lower Nyquist frequency
_COEF_SCALE = float(1 << 24)
_MAX_PHASES = 4096
_BLOCK = 4096  # output samples computed per vectorized block


@dataclass(frozen=True)
class _Filter:
    up: int  # L: output rate / gcd
    down: int  # M: input rate / gcd
    half: int  # H: taps on each side of an output instant
    phases: int  # rows of the table, minus the extra row for a fraction of 1.0
    table: npt.NDArray[np.float64]  # (phases + 1, 2H) integer-valued coefficients


@lru_cache(maxsize=32)
def _make_filter(from_rate: int, to_rate: int) -> _Filter:
    g = math.gcd(from_rate, to_rate)
    up, down = to_rate // g, from_rate // g
    ratio = min(1.0, up / down)
    half = math.ceil(_HALF_TAPS / ratio)
    phases = min(up, _MAX_PHASES)
    frac = np.arange(phases + 1, dtype=np.float64)[:, None] / phases
    taps = np.arange(-half + 1, half + 1, dtype=np.float64)[None, :]
    tau = taps - frac  # distance of each tap from the output instant, in input samples
    cutoff = _ROLLOFF * ratio  # relative to the input Nyquist frequency
    window = np.i0(_KAISER_BETA * np.sqrt(np.clip(1.0 - (tau / half) ** 2, 0.0, None)))
    h = np.sinc(cutoff * tau) * window
    h /= h.sum(axis=1, keepdims=True)
    # Integer-valued coefficients keep every product and sum exact in float64
    # (< 2**53), so the result does not depend on summation order or block
    # boundaries: streaming is bit-identical to a one-shot call.
    q = np.rint(h * _COEF_SCALE)
    rows = np.arange(phases + 1)
    q[rows, np.argmax(q, axis=1)] += _COEF_SCALE - q.sum(axis=1)
    q.flags.writeable = False
    return _Filter(up, down, half, phases, q)


class Resampler:
    """Streaming sample-rate converter for int16 mono audio.

    Method: band-limited interpolation with a Kaiser-windowed sinc (beta
    8.5) evaluated on the exact rational time grid ``n * from / to``
    (polyphase table, one row per phase; when the reduced output factor
    exceeds 4096 the nearest of 4096 phases is used). The filter spans 48
    input samples, widened by the decimation factor when downsampling, and
    cuts off at 0.92 of the lower Nyquist frequency. Measured response,
    relative to the lower Nyquist frequency: flat to 0.8, -0.3 dB at 0.85,
    -3 dB at 0.9, -13 dB at 0.95, -37 dB at 1.0, below -90 dB from 1.05 on
    (so images and aliases that land below 0.95 are under -90 dB). About
    250x real time one-shot for 24 kHz -> 48 kHz on one core.
    The filter is centred (zero phase): output time ``t`` samples input time
    ``t`` without delay; the signal is zero before its start and after the end.

    ``process`` holds back only the filter's look-ahead (half the span);
    ``flush`` ends the stream, returns the rest and resets the resampler.
    For a signal of ``n`` samples the output has ``floor(n * to / from + 1/2)``
    samples, and any chunking gives the same output, bit for bit, as
    ``resample`` of the whole.
    """

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate = from_rate
        self.to_rate = to_rate
        self._identity = from_rate == to_rate
        self._filter = None if self._identity else _make_filter(from_rate, to_rate)
        self._reset()

    def _reset(self) -> None:
        half = 0 if self._filter is None else self._filter.half
        # Input history as float64; index 0 holds absolute input sample _base.
        self._buffer = np.zeros(max(half - 1, 0), dtype=np.float64)
        self._base = -(half - 1)
        self._n_in = 0
        self._n_out = 0

    def _output_count(self, n_in: int) -> int:
        return (2 * n_in * self.to_rate + self.from_rate) // (2 * self.from_rate)

    def process(self, chunk: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Feed int16 mono samples; return every output sample now computable.

        Raises:
            InvalidAudio: The chunk is not 1-D int16.
        """
        if chunk.ndim != 1 or chunk.dtype.kind != "i" or chunk.dtype.itemsize != 2:
            raise InvalidAudio(
                f"resampling needs 1-D int16 samples, got {chunk.dtype} of shape {chunk.shape}"
            )
        if self._identity:
            self._n_in += len(chunk)
            return np.array(chunk, dtype=np.int16)
        assert self._filter is not None
        self._buffer = np.concatenate((self._buffer, chunk.astype(np.float64)))
        self._n_in += len(chunk)
        f = self._filter
        # Output n needs input up to floor(n * M / L) + H, which must be < n_in.
        avail = self._n_in - f.half
        limit = -((-avail * f.up) // f.down) if avail > 0 else 0
        return self._emit(min(self._output_count(self._n_in), limit))

    def flush(self) -> npt.NDArray[np.int16]:
        """End the stream: return the remaining samples and reset the resampler."""
        if self._identity:
            self._reset()
            return np.empty(0, dtype=np.int16)
        assert self._filter is not None
        f = self._filter
        total = self._output_count(self._n_in)
        if total > self._n_out:
            last_input = ((total - 1) * f.down) // f.up + f.half
            missing = last_input + 1 - (self._base + len(self._buffer))
            if missing > 0:
                self._buffer = np.concatenate((self._buffer, np.zeros(missing)))
        out = self._emit(total)
        self._reset()
        return out

    def _emit(self, stop: int) -> npt.NDArray[np.int16]:
        """Compute outputs [_n_out, stop) from the buffer and drop consumed input."""
        f = self._filter
        assert f is not None
        start = self._n_out
        if stop <= start:
            return np.empty(0, dtype=np.int16)
        count = stop - start
        out = np.empty(count, dtype=np.float64)
        width = 2 * f.half
        if f.phases == f.up and (f.down == 1 or f.up == 1):
            # Integer ratios (24k -> 48k, 48k -> 16k, ...): each phase is one
            # C-level correlation. Sums of integer-valued products are exact,
            # so this equals the general path below bit for bit.
            for r in range(min(f.up, count)):
                rows = len(range(r, count, f.up))
                instant = (start + r) * f.down
                lo = instant // f.up - (f.half - 1) - self._base
                span = self._buffer[lo : lo + f.down * (rows - 1) + width]
                full = np.correlate(span, f.table[instant % f.up], "valid")
                out[r :: f.up] = full[:: f.down] if f.down > 1 else full
            return self._finish_emit(out, stop)
        windows = np.lib.stride_tricks.sliding_window_view(self._buffer, width)
        if f.phases == f.up and count >= 32 * f.up:
            # Outputs L apart share a phase and are M inputs apart: one strided
            # product per phase, no gathered copies.
            for r in range(f.up):
                rows = len(range(r, count, f.up))
                instant = (start + r) * f.down
                lo = instant // f.up - (f.half - 1) - self._base
                strided = windows[lo : lo + f.down * (rows - 1) + 1 : f.down]
                out[r :: f.up] = np.einsum("ij,j->i", strided, f.table[instant % f.up])
        else:
            for block in range(start, stop, _BLOCK):
                n = np.arange(block, min(block + _BLOCK, stop), dtype=np.int64)
                t = n * f.down
                first = t // f.up - (f.half - 1) - self._base
                phase = t % f.up
                if f.phases != f.up:
                    phase = (phase * f.phases + f.up // 2) // f.up
                out[block - start : block - start + len(n)] = np.einsum(
                    "ij,ij->i", windows[first], f.table[phase]
                )
        return self._finish_emit(out, stop)

    def _finish_emit(self, out: npt.NDArray[np.float64], stop: int) -> npt.NDArray[np.int16]:
        """Drop consumed input; scale, round and clip the outputs."""
        f = self._filter
        assert f is not None
        self._n_out = stop
        keep = (stop * f.down) // f.up - (f.half - 1) - self._base
        self._buffer = self._buffer[keep:]
        self._base += keep
        np.multiply(out, 1.0 / _COEF_SCALE, out=out)
        np.rint(out, out=out)
        np.clip(out, -32768, 32767, out=out)
        return out.astype(np.int16)


def resample(pcm: npt.NDArray[np.int16], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """Resample int16 mono audio (see ``Resampler`` for the method and quality).

    Returns ``floor(len(pcm) * to_rate / from_rate + 1/2)`` samples; the same
    rate returns a copy.
    """
    resampler = Resampler(from_rate, to_rate)
    head = resampler.process(pcm)
    return np.concatenate((head, resampler.flush()))
