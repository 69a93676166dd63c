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
from collections.abc import Callable
from typing import Literal

from s2s_core.input_plan import AudioPiece, InputSource
from s2s_core.options import SOURCE_READ_AHEAD, THREAD_JOIN_S

__all__ = ["Source", "Pending", "PENDING"]


class Pending(enum.Enum):
    """No piece yet: the source is still producing it."""

    PENDING = "pending"


PENDING: Literal[Pending.PENDING] = Pending.PENDING


class Source:
    """The pieces of one attempt's ``InputSource``, for the thread that iterates the stream.

    A source that may block is read by a daemon thread (``s2s-source-...``),
    started at the first ``take``, at most ``SOURCE_READ_AHEAD`` pieces
    ahead (then it waits: backpressure). It ends at the source's end or
    error (``take`` joins it then) or at ``close``. A thread that is inside
    the source's ``next()`` when the stream closes is not waited for: it
    ends once that call returns, dropping the piece, and nothing joins it.

    Args:
        source: The attempt's source (the core's: it keeps ``pulled`` for
            retries).
        wake: Wakes the consuming thread (any thread may call it) once a
            piece came after ``take`` said ``PENDING``.
    """

    def __init__(self, source: InputSource, *, wake: Callable[[], None]) -> None:
        self._source = source
        self._reader = _Reader(source, wake) if source.may_block else None

    def take(self) -> AudioPiece | Pending | None:
        """The next piece, None at the source's end, or ``PENDING`` (not there yet).

        Raises:
            BaseException: What the source raised (once every piece before
                it was taken).
        """
        if self._reader is None:
            return self._source.next()
        # Pulled from now on, though the thread may not have asked yet: a
        # retry must not take over an iterator this thread may still read.
        self._source.pulled = True
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
    """A thread that pulls ``source`` into a bounded hand-off for one consumer."""

    def __init__(self, source: InputSource, wake: Callable[[], None]) -> None:
        self._source = source
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
                piece = self._source.next()
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
