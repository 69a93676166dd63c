"""Latency metrics of one request, on the caller's clock (sans-IO).

Nothing here reads a clock: the ``RequestTable`` hands its ``RequestMeter``
the ``now`` the adapters already pass with every input (setup, audio sent,
bytes read, timers), and ``Metrics`` is computed from those times only.

The output's lag behind the input is measured per output audio chunk: the
time the chunk arrived minus the time the input it covers was sent. The
chunk's ``stop_s`` (else ``start_s``) says, in input seconds, how far into the
input it reaches; the meter keeps the send time of every 80 ms slot of input
(one float per slot, in an array) to tell when that input went out.
Percentiles come from a fixed log-spaced histogram (bounded memory whatever
the length of the session).
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from typing import Final

import msgspec
import numpy as np

from ._wav import _parse_wav_header
from .audio_input import _WavClock
from .errors import InvalidAudio
from .events import Audio, Ready
from .formats import FRAME_SECONDS, Codec, Direction, lookup_format
from .protocol import AudioInput
from .setup import Setup

__all__ = [
    "Metrics",
    "RequestMeter",
    "LAG_FLOOR_S",
    "LAG_BIN_RATIO",
    "LAG_CEILING_S",
    "SLOT_WINDOW",
]

LAG_FLOOR_S: Final = 1e-4
"""Lags below this share the histogram's first bin (absolute error < 0.1 ms there)."""
LAG_BIN_RATIO: Final = 1.01
"""Each histogram bin is 1% wider than the one before: percentiles within 0.5%."""
LAG_CEILING_S: Final = 1000.0
"""Lags above this share the last bin (reported clamped to the exact maximum)."""
SLOT_WINDOW: Final = 8192
"""80 ms input slots always kept (655 s of input); at twice this, the older ones are dropped."""

_MAX_SLOTS: Final = 2 * SLOT_WINDOW
_SLOTS_PER_S: Final = 1.0 / FRAME_SECONDS
_SLOT_EPS: Final = 1e-6  # a stop_s on a slot boundary belongs to the slot before it
_LOG_RATIO: Final = math.log(LAG_BIN_RATIO)
_INV_LOG_RATIO: Final = 1.0 / _LOG_RATIO
_INV_FLOOR: Final = 1.0 / LAG_FLOOR_S
_BINS: Final = int(math.log(LAG_CEILING_S / LAG_FLOOR_S) / _LOG_RATIO) + 2

_LAST_BIN: Final = _BINS - 1
_log = math.log

_RAW, _WAV, _UNTIMED = 0, 1, 2  # how the duration of input bytes is known
_WAV_FALLBACK_HEADER = 44  # a canonical header, if the first output chunk does not hold it


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """Latency and throughput of one request, in seconds on the caller's clock.

    ``connect_s``, ``ready_s``, ``first_text_s``, ``first_audio_s`` and
    ``elapsed_s`` count from the start of the call: for the first request on
    a connection, the moment the connection started (before TCP connect);
    for a later request on a reused connection, its setup. The clock is the
    ``now`` the adapter passes with every input: no clock is read for these.
    None means "not (yet) known".

    Attributes:
        connect_s: Until the WebSocket upgrade completed (0.0 for a request
            on a connection that was already open).
        ready_s: Until the server's ``ready`` arrived.
        first_text_s: Until the first ``text`` arrived.
        first_audio_s: Until the first output ``audio`` arrived.
        lag_p50_s: Median lag of the output behind the input: for each output
            audio chunk, the time it arrived minus the time the input it
            covers (up to its ``stop_s``, else ``start_s``, in input seconds)
            was sent. From a log-spaced histogram: within 0.5% of the exact
            nearest-rank percentile (0.1 ms absolute below 0.1 ms). Send
            times are kept per 80 ms of input: exact when every send ends on
            an 80 ms boundary (the feeder's chunks, any whole 80 ms chunks,
            batches of them); otherwise a lag may read short by at most the
            time between two sends within one 80 ms slot. Output chunks
            without timing are left out. None until a timed output chunk
            came (always for opus input, whose duration is not known).
        lag_p95_s: 95th percentile of that lag (same precision).
        lag_max_s: Largest lag (exact).
        lag_count: Output audio chunks the lag figures are computed over.
        audio_in_s: Seconds of input audio sent (trailing silence included);
            None for opus input.
        audio_out_s: Seconds of output audio received (from its bytes; the
            wav header excluded); None for opus output.
        real_time_factor: How many times faster than real time the input
            went through: ``audio_in_s`` divided by the wall time from the
            first input sent to the request's end (the latest event while
            it runs). About 1.0 when sent at real time (``pace=1.0``), well
            above when unpaced and the server keeps up. None until the
            clock moved past the first send, or without ``audio_in_s``.
        elapsed_s: From the start of the call to the end (while running:
            to the latest input the adapter passed).
        ended: The request ended (these are its final figures).
    """

    connect_s: float | None = None
    ready_s: float | None = None
    first_text_s: float | None = None
    first_audio_s: float | None = None
    lag_p50_s: float | None = None
    lag_p95_s: float | None = None
    lag_max_s: float | None = None
    lag_count: int = 0
    audio_in_s: float | None = None
    audio_out_s: float | None = None
    real_time_factor: float | None = None
    elapsed_s: float = 0.0
    ended: bool = False


class RequestMeter:
    """Records one request's times as the table routes its sends and events.

    Per audio message received the work is a few arithmetic steps (the slot
    of its input, the lag, a histogram bin); per batch of audio sent, the
    byte count and the slots it completes. Memory is bounded: the histogram
    has a fixed size and at most ``2 * SLOT_WINDOW`` slot times are kept.

    Args:
        setup: The request's setup (its formats tell the audio durations).
        origin: The start of the call on the caller's clock.
        opened_at: When the connection's upgrade completed (None: not yet;
            ``opened`` tells later).
    """

    __slots__ = ("_hist", "_in_bytes", "_in_kind", "_in_s", "_out_byte_rate", "_out_bytes",
                 "_out_codec", "_out_header", "_out_rate_named", "_sample_bytes", "_sent_at",
                 "_slot_base", "_slot_bytes", "_wav_clock", "ended_at", "first_audio_at",
                 "first_send_at", "first_text_at", "lag_count", "lag_max", "last_send_at",
                 "opened_at", "origin", "ready_at")

    def __init__(self, setup: Setup, *, origin: float, opened_at: float | None) -> None:
        self.origin = origin
        self.opened_at = opened_at
        self.ready_at: float | None = None
        self.first_text_at: float | None = None
        self.first_audio_at: float | None = None
        self.first_send_at: float | None = None
        self.last_send_at: float | None = None
        self.ended_at: float | None = None
        self.lag_count = 0
        self.lag_max = 0.0
        self._hist = array("I", bytes(4 * _BINS))  # 6.5 KB, whatever the session's length
        self._sent_at = array("d")
        self._slot_base = 0  # slots dropped from the front of _sent_at
        self._in_bytes = 0
        self._in_s = 0.0
        self._out_bytes = 0
        self._setup_input(setup)
        self._setup_output(setup)

    def _setup_input(self, setup: Setup) -> None:
        fmt = lookup_format(setup.input_format, Direction.INPUT)
        self._sample_bytes = fmt.bytes_per_sample or 1
        self._slot_bytes = fmt.bytes_per_frame or 0
        self._wav_clock: _WavClock | None = None
        if fmt.is_raw:
            self._in_kind = _RAW
        elif fmt.codec is Codec.WAV:
            self._in_kind = _WAV
            self._wav_clock = _WavClock()
        else:
            self._in_kind = _UNTIMED

    def _setup_output(self, setup: Setup) -> None:
        fmt = lookup_format(setup.output_format, Direction.OUTPUT)
        self._out_codec = fmt.codec
        self._out_header = 0
        # Plain "pcm" takes ready's rate; a rate in the name wins (PROTOCOL.md 4, 9).
        self._out_rate_named = fmt.name != "pcm"
        rate = fmt.sample_rate or 0
        self._out_byte_rate = float(rate * (fmt.bytes_per_sample or 2))

    # -- what the table records --

    def opened(self, now: float) -> None:
        """The connection's upgrade completed at ``now`` (if not known yet)."""
        if self.opened_at is None:
            self.opened_at = now

    def sent(self, chunks: Sequence[AudioInput], now: float) -> None:
        """``chunks`` of input audio were queued for sending at ``now``."""
        if self.first_send_at is None:
            self.first_send_at = now
        self.last_send_at = now
        kind = self._in_kind
        if kind is _RAW:
            size = self._in_bytes
            for chunk in chunks:
                cls = type(chunk)
                if cls is bytes:
                    size += len(chunk)
                elif cls is memoryview:
                    size += chunk.nbytes  # type: ignore[union-attr]
                else:
                    size += self._size(chunk)
            self._in_bytes = size
            done = size // self._slot_bytes
        elif kind is _WAV:
            done = self._sent_wav(chunks)
        else:
            return
        times = self._sent_at
        missing = done - self._slot_base - len(times)
        if missing == 1 and len(times) < _MAX_SLOTS:
            times.append(now)
        elif missing > 0:
            self._fill(missing, now)

    def _size(self, chunk: AudioInput) -> int:
        if isinstance(chunk, np.ndarray):
            # Samples at the format's rate, to int16; a 2-D chunk (downmixed) has its
            # channels along its short dimension, whichever way round it is.
            samples = len(chunk) if chunk.ndim == 1 else max(chunk.shape)
            return samples * self._sample_bytes
        if isinstance(chunk, memoryview):
            return chunk.nbytes
        return len(chunk)

    def _sent_wav(self, chunks: Sequence[AudioInput]) -> int:
        clock = self._wav_clock
        assert clock is not None
        try:
            for chunk in chunks:
                assert not isinstance(chunk, np.ndarray)  # the protocol refused it
                clock.read_header(chunk)  # type: ignore[arg-type]
                self._in_s += clock.seconds(self._size(chunk))
        except InvalidAudio:
            self._in_kind = _UNTIMED  # not a WAV stream we can time: no lag, no seconds
            return 0
        return int(self._in_s * _SLOTS_PER_S + _SLOT_EPS)

    def _fill(self, missing: int, now: float) -> None:
        times = self._sent_at
        times.extend(array("d", (now,)) * missing)
        if len(times) > _MAX_SLOTS:
            drop = len(times) - SLOT_WINDOW  # keep the latest SLOT_WINDOW slots
            del times[:drop]
            self._slot_base += drop

    def ready(self, event: Ready, now: float) -> None:
        """``ready`` arrived at ``now``."""
        if self.ready_at is None:
            self.ready_at = now
            if not self._out_rate_named and self._out_codec is Codec.PCM16:
                self._out_byte_rate = float(event.sample_rate * 2)

    def text(self, now: float) -> None:
        """A ``text`` arrived at ``now``."""
        if self.first_text_at is None:
            self.first_text_at = now

    def audio(self, event: Audio, now: float) -> None:
        """An output ``audio`` chunk arrived at ``now`` (the hot path: keep it short)."""
        self._out_bytes += len(event.audio)
        if self.first_audio_at is None:
            self._first_audio(event, now)
        position = event.stop_s
        if position is None:
            position = event.start_s
            if position is None:
                return  # untimed: which input it covers is unknown
        times = self._sent_at
        index = int(position * _SLOTS_PER_S - _SLOT_EPS) - self._slot_base
        if 0 <= index < len(times):
            sent: float | None = times[index]
        else:
            sent = self._sent_outside(index)
            if sent is None:
                return
        lag = now - sent  # type: ignore[operator]
        self.lag_count += 1
        if lag > self.lag_max:
            self.lag_max = lag
        if lag >= LAG_FLOOR_S:
            index = int(_log(lag * _INV_FLOOR) * _INV_LOG_RATIO) + 1
            self._hist[index if index < _BINS else _LAST_BIN] += 1
        else:
            self._hist[0] += 1

    def _sent_outside(self, index: int) -> float | None:
        """When input outside the kept slots was sent (None: unknown)."""
        if self._in_kind is _UNTIMED:
            return None
        if index >= 0:
            # Past the last whole slot (the input's tail): its latest send covers it.
            return self.last_send_at
        if self._slot_base:
            return None  # too old: its slot was dropped
        return self.first_send_at  # at or before the input's start

    def _first_audio(self, event: Audio, now: float) -> None:
        self.first_audio_at = now
        if self._out_codec is not Codec.WAV:
            return
        try:
            header = _parse_wav_header(event.audio, final=False)
        except InvalidAudio:
            header = None
        if header is None:
            self._out_header = _WAV_FALLBACK_HEADER
            return
        self._out_header = header.data_offset
        self._out_byte_rate = float(header.sample_rate * header.frame_size)

    def end(self, now: float) -> None:
        """The request ended at ``now`` (end_of_stream, error or close)."""
        if self.ended_at is None:
            self.ended_at = now

    # -- the figures --

    def metrics(self, now: float) -> Metrics:
        """The figures so far; ``now`` is the latest time known while it runs."""
        origin = self.origin
        end = self.ended_at if self.ended_at is not None else now
        p50 = p95 = lag_max = None
        if self.lag_count:
            lag_max = self.lag_max  # read first: a concurrent update cannot reorder them
            cumulative = list(accumulate(self._hist))
            p50 = min(_percentile(cumulative, 0.50), lag_max)
            p95 = min(_percentile(cumulative, 0.95), lag_max)
        audio_in = self._audio_in_s()
        rtf = None
        first_send = self.first_send_at
        if audio_in is not None and first_send is not None and end > first_send:
            rtf = audio_in / (end - first_send)
        return Metrics(
            connect_s=None if self.opened_at is None else max(0.0, self.opened_at - origin),
            ready_s=_since(self.ready_at, origin),
            first_text_s=_since(self.first_text_at, origin),
            first_audio_s=_since(self.first_audio_at, origin),
            lag_p50_s=p50,
            lag_p95_s=p95,
            lag_max_s=lag_max,
            lag_count=self.lag_count,
            audio_in_s=audio_in,
            audio_out_s=self._audio_out_s(),
            real_time_factor=rtf,
            elapsed_s=max(0.0, end - origin),
            ended=self.ended_at is not None,
        )

    def _audio_in_s(self) -> float | None:
        if self._in_kind is _RAW:
            return self._in_bytes / (self._slot_bytes * _SLOTS_PER_S)
        if self._in_kind is _WAV:
            return self._in_s
        return None

    def _audio_out_s(self) -> float | None:
        if self._out_codec is Codec.OPUS or not self._out_byte_rate:
            return None
        return max(0, self._out_bytes - self._out_header) / self._out_byte_rate


def _since(at: float | None, origin: float) -> float | None:
    return None if at is None else at - origin


def _percentile(cumulative: list[int], q: float) -> float:
    """The nearest-rank ``q`` percentile of the histogram: its bin's geometric middle."""
    rank = max(1, math.ceil(q * cumulative[-1]))
    index = bisect_left(cumulative, rank)
    if index == 0:
        return LAG_FLOOR_S / 2
    return float(LAG_FLOOR_S * LAG_BIN_RATIO ** (index - 0.5))
