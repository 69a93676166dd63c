"""An input's pieces for the thread that iterates the stream, pulled elsewhere when they may wait.

``S2SStream`` sends its input from the thread that reads its events. Taking
the next piece of a live source (a microphone, ``sys.stdin.buffer`` piped
from a process that pauses, a socket) may wait for as long as the speaker
pauses: on that thread, the output of what was said before would wait too.
So such a source is read by a thread of its own into a small bounded
hand-off, and the consuming thread only takes what is there: it waits for
whichever comes first, an event or the next piece (``RequestChain.wake``).
Whether a source may wait is the core's decision (``may_block``); input in
memory is read on the consuming thread, as nothing there can wait.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import numpy as np

from s2s_core.feeder import may_block, replayable
from s2s_core.options import SOURCE_READ_AHEAD, THREAD_JOIN_S

__all__ = ["AudioPiece", "AudioSource", "Source", "Pending", "PENDING"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece]
"""Input audio: all at once, or an iterable of chunks."""


class Pending(enum.Enum):
    """No piece yet: the source is still producing it."""

    PENDING = "pending"


PENDING: Literal[Pending.PENDING] = Pending.PENDING


class Source:
    """Pieces from whatever the caller gave: one buffer or an iterable.

    A retry makes a new one; a one-shot iterator nothing was pulled from is
    taken over from the ``previous`` attempt's source as it is.

    A source that may block is read by a daemon thread (``s2s-source-...``),
    started at the first ``take``, at most ``SOURCE_READ_AHEAD`` pieces
    ahead (then it waits: backpressure). It ends at the source's end or
    error (``take`` joins it then) or at ``close``. A thread that is inside
    the source's ``next()`` when the stream closes is not waited for: it
    ends once that call returns, dropping the piece, and nothing joins it.

    Args:
        audio: What the caller gave.
        previous: The previous attempt's source (a retry).
        wake: Wakes the consuming thread (any thread may call it) once a
            piece came after ``take`` said ``PENDING``.
    """

    def __init__(self, audio: AudioSource, previous: Source | None = None, *,
                 wake: Callable[[], None]) -> None:
        self.pulled = False
        """Anything was asked of the source (a one-shot one cannot be replayed then)."""
        self._pieces: Iterator[AudioPiece]
        if previous is not None and not previous.pulled and not replayable(audio):
            self._pieces = previous._pieces
        elif isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
            self._pieces = iter((audio,))
        else:
            self._pieces = iter(audio)
        self._reader = _Reader(self._pieces, wake) if may_block(audio) else None

    def take(self) -> AudioPiece | Pending | None:
        """The next piece, None at the source's end, or ``PENDING`` (not there yet).

        Raises:
            BaseException: What the source raised (once every piece before
                it was taken).
        """
        self.pulled = True
        if self._reader is None:
            return next(self._pieces, None)
        return self._reader.take()

    def arrived(self) -> bool:
        """Whether ``take`` has something now (a piece, the end or an error)."""
        return self._reader is None or self._reader.arrived()

    def close(self) -> None:
        """Stop reading ahead (see the class doc for a thread inside the source)."""
        if self._reader is not None:
            self._reader.close()


class _End(enum.Enum):
    END = "end"


_END = _End.END


class _Raised:
    """What the source raised, handed to the consuming thread."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_Item = AudioPiece | _End | _Raised


class _Reader:
    """A thread that pulls ``pieces`` into a bounded hand-off for one consumer."""

    def __init__(self, pieces: Iterator[AudioPiece], wake: Callable[[], None]) -> None:
        self._pieces = pieces
        self._wake = wake
        self._changed = threading.Condition(threading.Lock())
        self._ready: deque[_Item] = deque()
        self._waiting = False  # the consumer found nothing: wake it at the next item
        self._closed = False
        self._in_source = False
        self._thread: threading.Thread | None = None

    def take(self) -> AudioPiece | Pending | None:
        with self._changed:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"s2s-source-{id(self):x}")
                self._thread.start()
            if not self._ready:
                self._waiting = True
                return PENDING
            item = self._ready.popleft()
            self._changed.notify()  # room for the next piece
        if isinstance(item, _End):
            self._join()
            return None
        if isinstance(item, _Raised):
            self._join()
            raise item.error
        return item

    def arrived(self) -> bool:
        # No lock: the reader appends before it wakes, and the consumer asks
        # before it waits (see ``Request._wait``).
        return bool(self._ready)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            in_source = self._in_source
        if not in_source:
            self._join()

    def _join(self) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(THREAD_JOIN_S)

    def _run(self) -> None:
        changed, ready = self._changed, self._ready
        while True:
            with changed:
                while len(ready) >= SOURCE_READ_AHEAD and not self._closed:
                    changed.wait()
                if self._closed:
                    return
                self._in_source = True
            item: _Item
            try:
                piece = next(self._pieces, None)
                item = _END if piece is None else piece
            except BaseException as exc:  # the consumer's to raise, as if it had pulled
                item = _Raised(exc)
            with changed:
                self._in_source = False
                if self._closed:
                    return
                ready.append(item)
                wake, self._waiting = self._waiting, False
            if wake:
                self._wake()
            if isinstance(item, (_End, _Raised)):
                return
