"""Where a long input is cut into requests under the service's per-request limit (sans-IO).

The service takes at most 300 s of audio per request (PROTOCOL.md section 5;
its FAQ says "split at silences"). ``PauseSplitter`` watches the input as
int16 samples and decides where each request ends, from frame levels only,
so the cut points are the same however the samples are chunked::

    splitter = PauseSplitter(24000, max_request_s=290.0, split_search_s=60.0)
    cuts = splitter.feed(samples)     # sample positions decided by this piece
    splitter.committed                # samples before it are surely in the current request
    splitter.finish()                 # the input ended: the rest is the last request

The rule, for a request starting at sample ``s`` (``limit`` = ``max_request_s``,
``window`` = the last ``split_search_s`` before ``s + limit``); levels are
the RMS of 20 ms frames in dBFS:

The window is at most half a request long (a request is at least half of
``max_request_s``, unless the input ends first).

1. A *pause*: a run of quiet frames (under ``PAUSE_DBFS``, and at least
   ``PAUSE_BELOW_PEAK_DB`` under the loudest frame of the request so far)
   lasting ``SENTENCE_PAUSE_S``. The first pause in the window is the cut
   (at ``SENTENCE_PAUSE_S / 2`` into it), taken as soon as it is heard.
2. Otherwise, once audio beyond ``s + limit`` exists: the quietest stretch of
   ``STRETCH_S`` in the window (its loudest frame is the quietest; the
   earliest on ties), cut at its middle, if it is at least
   ``MIN_CONTRAST_DB`` under the loudest frame of the window.
3. Otherwise (no pause at all: a tone, music, noise): a hard cut at ``s + limit``.

Live input is never waited for: a cut is decided by the audio already fed,
and ``committed`` tells the caller what it may send to the current request
now. What it holds back (audio after the best candidate so far) is at most
the search window, and in speech with sentence pauses, a fraction of a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .errors import InvalidAudio, S2SError

__all__ = [
    "FRAME_S",
    "MIN_CONTRAST_DB",
    "PAUSE_BELOW_PEAK_DB",
    "PAUSE_DBFS",
    "SENTENCE_PAUSE_S",
    "STRETCH_S",
    "InputTooLong",
    "InvalidSplit",
    "PauseSplitter",
    "Segment",
    "SegmentPlan",
    "check_split",
]

FRAME_S = 0.02
"""Length of one analysis frame (its level is its RMS in dBFS)."""
PAUSE_DBFS = -40.0
"""A frame under this level holds no speech (the local engine's VAD threshold)."""
PAUSE_BELOW_PEAK_DB = 20.0
"""A quiet frame is also this far under the request's loudest frame (a quiet
recording's speech is not mistaken for a pause)."""
SENTENCE_PAUSE_S = 0.48
"""A run of quiet frames this long is a pause between sentences: cut at once."""
STRETCH_S = 0.2
"""Length of the stretches compared when no pause exists."""
MIN_CONTRAST_DB = 10.0
"""The quietest stretch must be this far under the window's loudest frame to be
a cut; else the input has no pause and is cut at the limit."""
_FLOOR_DBFS = -100.0
_FULL_SCALE2 = 32768.0 ** 2


class InvalidSplit(S2SError, ValueError):
    """``max_request_s`` or ``split_search_s`` is out of range (the message says which)."""


def check_split(max_request_s: float | None, split_search_s: float) -> None:
    """Validate the splitting options (the search window is capped at half a request).

    Raises:
        InvalidSplit: ``max_request_s`` is not a finite number of seconds >= 1
            (or None), or ``split_search_s`` is not a finite number >= 0.
    """
    if max_request_s is None:
        return
    if (isinstance(max_request_s, bool) or not isinstance(max_request_s, (int, float))
            or not math.isfinite(max_request_s) or max_request_s < 1.0):
        raise InvalidSplit(f"max_request_s={max_request_s!r}: expected seconds >= 1 "
                           "(the service takes at most 300 s per request), or None to "
                           "send the input as one request")
    if (isinstance(split_search_s, bool) or not isinstance(split_search_s, (int, float))
            or not math.isfinite(split_search_s) or split_search_s < 0):
        raise InvalidSplit(f"split_search_s={split_search_s!r}: expected seconds >= 0 (how far "
                           "before max_request_s a pause is looked for)")


class PauseSplitter:
    """Decides the cut points of one input (see the module doc for the rule).

    Args:
        sample_rate: Samples per second of what ``feed`` gets.
        max_request_s: Most audio in one request.
        split_search_s: How far before the limit a pause is looked for.

    Raises:
        InvalidSplit: The options are out of range.
    """

    def __init__(self, sample_rate: int, *, max_request_s: float,
                 split_search_s: float) -> None:
        check_split(max_request_s, split_search_s)
        self.frame = max(1, round(sample_rate * FRAME_S))
        """Samples per analysis frame; every cut is on a frame boundary."""
        self._limit = max(1, int(max_request_s * sample_rate) // self.frame)
        # At most half a request: the first pause in the window is taken, so a
        # window as long as the request would make requests of a few seconds.
        self._window = min(self._limit // 2, int(split_search_s * sample_rate) // self.frame)
        self._stretch = max(1, round(STRETCH_S / FRAME_S))
        self._half_pause = max(1, round(SENTENCE_PAUSE_S / FRAME_S) // 2)
        self._rest = np.empty(0, dtype=np.int16)
        self._levels: list[float] = []  # levels of the frames of the current request
        self._start = 0  # first frame of the current request
        self._scanned = 0  # frames of the request looked at by _scan
        self._samples = 0
        self._finished = False
        self.cuts: list[int] = []
        """Every cut decided so far (sample positions, ascending)."""
        self._reset_request()

    def _reset_request(self) -> None:
        self._peak = _FLOOR_DBFS  # loudest frame of the request so far
        self._window_peak = _FLOOR_DBFS
        self._run_start: int | None = None  # first frame of the quiet run in progress
        self._best: tuple[float, int] | None = None  # (level, cut frame) of the quietest stretch

    @property
    def committed(self) -> int:
        """Samples before this position belong to requests already known.

        The caller may send them; what lies after is held until a cut (or
        ``finish``) says which request it belongs to.
        """
        if self._finished:
            return self._samples
        return min(self._samples, self._earliest_cut() * self.frame)

    @property
    def request_start(self) -> int:
        """Sample position where the current request starts."""
        return self._start * self.frame

    def feed(self, samples: npt.NDArray[np.int16]) -> list[int]:
        """Take the next samples; return the cuts they decided (sample positions).

        Raises:
            InvalidSplit: Called after ``finish``.
        """
        if self._finished:
            raise InvalidSplit("feed() after finish()")
        if len(samples) == 0:
            return []
        self._samples += len(samples)
        pending = np.concatenate((self._rest, samples)) if len(self._rest) else samples
        count = len(pending) // self.frame
        self._rest = np.array(pending[count * self.frame:], dtype=np.int16)
        if count:
            frames = pending[:count * self.frame].reshape(count, self.frame).astype(np.int64)
            energy = np.einsum("ij,ij->i", frames, frames) / (self.frame * _FULL_SCALE2)
            with np.errstate(divide="ignore"):
                levels = np.maximum(10.0 * np.log10(energy), _FLOOR_DBFS)
            self._levels.extend(levels.tolist())
        first = len(self.cuts)
        self._scan()
        return self.cuts[first:]

    def finish(self) -> None:
        """The input ended: what is held belongs to the last request."""
        self._finished = True

    # -- the rule --

    def _window_start(self) -> int:
        """First frame (relative to the request) of the search window."""
        return self._limit - self._window

    def _scan(self) -> None:
        """Look at the new frames; cut wherever the rule says, as often as it says."""
        while True:
            cut = self._scan_request()
            if cut is None:
                return
            self._cut(cut)

    def _scan_request(self) -> int | None:
        """The cut (relative frame) the frames seen so far decide, or None yet."""
        levels = self._levels
        window_start = self._window_start()
        if self._scanned < window_start:
            # Before the window only the peak and where the current quiet run began matter.
            upto = min(len(levels), window_start)
            if upto > self._scanned:
                part = levels[self._scanned:upto]
                self._peak = max(self._peak, max(part))
                self._scanned = upto
        for index in range(self._scanned, min(len(levels), self._limit)):
            cut = self._look_at(index)
            self._scanned = index + 1
            if cut is not None:
                return cut
        if self._samples > (self._start + self._limit) * self.frame:
            return self._cut_at_limit()
        return None

    def _look_at(self, index: int) -> int | None:
        """One frame in the window: a pause ends here, or the stretch ending here is noted."""
        levels = self._levels
        level = levels[index]
        self._peak = max(self._peak, level)
        self._window_peak = max(self._window_peak, level)
        window_start = self._window_start()
        if index == window_start:
            self._run_start = self._quiet_run_start(index)
        elif self._quiet(level):
            if self._run_start is None:
                self._run_start = index
        else:
            self._run_start = None
        if self._run_start is not None:
            at = max(self._run_start + self._half_pause, window_start)
            if index + 1 >= at + self._half_pause and at < self._limit:
                return at
        stretch = self._stretch
        first = index + 1 - stretch
        if first >= window_start:
            loudest = max(levels[first:index + 1])
            if self._best is None or loudest < self._best[0]:
                self._best = (loudest, first + stretch // 2)
        return None

    def _quiet(self, level: float) -> bool:
        return level < PAUSE_DBFS and level <= self._peak - PAUSE_BELOW_PEAK_DB

    def _quiet_run_start(self, index: int) -> int | None:
        """Where the quiet run that reaches ``index`` began (None: ``index`` is not quiet)."""
        levels = self._levels
        if not self._quiet(levels[index]):
            return None
        start = index
        while start > 0 and self._quiet(levels[start - 1]):
            start -= 1
        return start

    def _cut_at_limit(self) -> int:
        best = self._best
        if best is not None and best[0] <= self._window_peak - MIN_CONTRAST_DB:
            return best[1]
        return self._limit

    def _earliest_cut(self) -> int:
        """The earliest absolute frame a cut may still fall on (nothing before it is held)."""
        window_start = self._window_start()
        earliest = self._limit
        if self._scanned >= window_start:
            if self._best is not None:
                earliest = min(earliest, self._best[1])
            if self._run_start is not None:
                earliest = min(earliest, self._run_start + self._half_pause)
            # A stretch not complete yet (the next one ends on the next frame)
            # cuts no earlier than this; a pause not begun yet cuts later.
            earliest = min(earliest, self._scanned + 1 - self._stretch + self._stretch // 2)
        return self._start + max(earliest, window_start)

    def _cut(self, relative: int) -> None:
        """Start a new request at frame ``relative`` of the current one."""
        self.cuts.append((self._start + relative) * self.frame)
        self._start += relative
        del self._levels[:relative]
        self._scanned = 0
        self._reset_request()


class InputTooLong(InvalidAudio):
    """An input that cannot be split is longer than ``max_request_s`` (an ``InvalidAudio``).

    The client does not decode opus, so an opus input cannot be cut at a
    pause (nor anywhere: Ogg pages carry decoder state). Decode it to pcm or
    wav first, or pass ``max_request_s=None`` to send it as one request (the
    service refuses more than 300 s).
    """


@dataclass
class Segment:
    """One request of a (possibly split) input: what part of the input it carries.

    Attributes:
        index: 0 for the first request.
        start_s: Where its audio starts in the input, seconds.
        lead_in_s: Silence sent before its audio (its output is not the input's).
        duration_s: Seconds of input audio it carries, once known (None while
            the request still takes input).
    """

    index: int
    start_s: float
    lead_in_s: float
    duration_s: float | None = None

    @property
    def stop_s(self) -> float | None:
        """Where its audio ends in the input, once known."""
        return None if self.duration_s is None else self.start_s + self.duration_s

    def describe(self, sent_s: float | None = None) -> str:
        """``request 2 (input 290.00 s - 580.00 s)``; ``sent_s`` stands for an unknown end."""
        stop = self.stop_s if self.stop_s is not None else sent_s
        shown = f"{stop:.2f} s" if stop is not None else "..."
        return f"request {self.index + 1} (input {self.start_s:.2f} s - {shown})"


@dataclass
class SegmentPlan:
    """The requests an input is cut into, shared by its input and output sides.

    The input side (``InputChunker``) appends a ``Segment`` at each cut and
    sets ``input_done`` at the end; the output side (``Stitcher``) counts the
    requests whose output the caller has seen to the end in ``finished``,
    and marks in ``delivered`` those whose output reached the caller (they
    are never replayed).
    """

    segments: list[Segment] = field(default_factory=lambda: [Segment(0, 0.0, 0.0)])
    input_done: bool = False
    finished: int = 0
    delivered: set[int] = field(default_factory=set)

    def is_last(self, index: int) -> bool:
        """Whether request ``index`` is known to be the input's last one."""
        return self.input_done and index == len(self.segments) - 1
