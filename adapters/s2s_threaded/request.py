"""One request on a connection: send its audio, iterate its events (blocking).

The bookkeeping (queue, result, why a send is refused) is the core's
``RequestHandle``; here is only the waiting. The consumer takes a whole
read's events under one hold of the lock, then consumes them on its own.
"""

from __future__ import annotations

import enum
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, Protocol

from s2s_core.client_base import BlockingRequestIteration, RequestView
from s2s_core.events import Ready, ServerEvent
from s2s_core.metrics import Metrics
from s2s_core.protocol import AudioInput
from s2s_core.request_table import RequestHandle, RequestTable
from s2s_core.results import S2SResult


class RequestLink(Protocol):
    """What a request needs of its connection (``Connection`` is one)."""

    _lock: threading.Lock

    @property
    def table(self) -> RequestTable: ...

    def flush_for(self, handle: RequestHandle, what: str) -> None: ...

    def consumer_took(self) -> None: ...

    def close(self, code: int = 1000, reason: str = "") -> None: ...

__all__ = ["Request", "Timeout", "TIMEOUT", "SLICE_S", "wait_sliced", "Woken"]

SLICE_S = 0.5
"""Longest single wait, so Ctrl-C is seen promptly even where lock waits ignore it."""


class Timeout(enum.Enum):
    """A wait that reached its deadline."""

    TIMEOUT = "timeout"


TIMEOUT: Literal[Timeout.TIMEOUT] = Timeout.TIMEOUT

Woken = Callable[[], bool]
"""Ends a wait early (as its deadline would) once it returns True: something
other than an event needs the waiting thread. Whoever makes it True then
sets the request's waker, so a wait that began before is woken."""


def wait_sliced(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait`` in short slices (Ctrl-C stays prompt everywhere)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = SLICE_S if deadline is None else min(SLICE_S, deadline - time.monotonic())
        if event.wait(max(wait, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class Request(RequestView):
    """One request on a connection: send its audio, iterate its events.

    Iteration yields ``Ready``, ``Text``, ``Audio``, ``UnknownMessage`` and
    finally ``EndOfStream``, then stops. A server ``error`` raises the
    matching ``ServerError``; a connection that ends first raises
    ``ConnectionClosedError`` (or the timeout or protocol error that ended
    it). Every error carries ``partial_result`` with what arrived before.
    Events that arrived before a failure are yielded before it is raised.
    """

    def __init__(self, conn: RequestLink, handle: RequestHandle) -> None:
        self._conn = conn
        self.handle = handle
        handle.waker = threading.Event()
        self._taken: deque[ServerEvent] = deque()

    # -- sending --

    def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (bytes in the input format, or samples).

        ``downmix`` averages the channels of a 2-D array (samples, channels)
        or (channels, samples) instead of refusing it.

        Blocks while the socket cannot take more (backpressure).

        Raises:
            S2SError: The request failed or ended (the reason, with the
                partial result), or the chunk is invalid (``InvalidAudio``).
        """
        self.send_chunks((audio,), downmix=downmix)

    def send_chunks(self, chunks: Sequence[AudioInput], *, downmix: bool = False) -> None:
        """Send several chunks in one write."""
        conn = self._conn
        with conn._lock:
            conn.table.send_audio(self.handle, chunks, now=time.monotonic(), downmix=downmix)
        conn.flush_for(self.handle, "send_audio")

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        conn = self._conn
        with conn._lock:
            conn.table.send_end_of_stream(self.handle, now=time.monotonic())
        conn.flush_for(self.handle, "send_end_of_stream")

    send_eos = send_end_of_stream
    """The official SDK's name."""

    @contextmanager
    def consumer_writing(self) -> Iterator[None]:
        """Lift the queue bound while the consuming thread itself writes.

        That thread cannot drain the queue meanwhile: if the reader stopped
        on a full queue, the server would stop reading our input and the
        write would never end. The reader then queues what the server makes
        of input already in the socket buffers, a bounded amount.
        """
        conn = self._conn
        with conn._lock:
            self.handle.lift_bound()
        conn.consumer_took()
        try:
            yield
        finally:
            with conn._lock:
                self.handle.restore_bound()

    # -- receiving --

    @property
    def metrics(self) -> Metrics:
        """Latency and throughput so far (live; final once the request ended)."""
        with self._conn._lock:  # the reader thread records them
            return self.handle.metrics()

    def wait_ready(self) -> Ready:
        """Wait for ``ready`` (events before it stay queued for iteration).

        Raises:
            S2SError: The request failed before ready (timeout, error, close).
        """
        self.wait_ready_until(None)
        ready = self.handle.ready
        assert ready is not None
        return ready

    def wait_ready_until(self, deadline: float | None, woken: Woken | None = None) -> bool:
        """Wait for ready until ``deadline`` (or ``woken``); whether it came.

        Raises:
            S2SError: The request failed before ready.
        """
        handle, conn = self.handle, self._conn
        while True:
            with conn._lock:
                if handle.ready is not None:
                    return True
                failure = handle.ready_failure()
                if failure is None:
                    handle.waker.clear()
            if failure is not None:
                raise failure
            if not self._wait(deadline, woken):
                return False

    def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        event = self.receive_until(None)
        assert event is not TIMEOUT
        return event

    def receive_until(self, deadline: float | None,
                      woken: Woken | None = None) -> ServerEvent | Timeout | None:
        """The next event, None after the end, or ``TIMEOUT`` once ``deadline`` passed.

        ``woken`` returning True (checked before every wait) ends the wait
        with ``TIMEOUT`` too.
        """
        handle = self.handle
        while True:
            if self._taken:
                return handle.consume(self._taken.popleft())
            if not self._take():
                return None
            if self._taken:
                continue
            if not self._wait(deadline, woken):
                return TIMEOUT

    def _take(self) -> bool:
        """Move every queued event here (one lock hold); False after the end.

        Raises:
            S2SError: The request failed and nothing is left to consume.
        """
        handle, conn = self.handle, self._conn
        with conn._lock:
            if handle.finished:
                if handle.collector.error is not None:
                    raise handle.collector.error
                return False
            batch = handle.take_batch()
            if not batch:
                if handle.ended:
                    raise handle.failure()
                handle.waker.clear()
        if batch:
            self._taken = batch
            conn.consumer_took()
        return True

    def _wait(self, deadline: float | None, woken: Woken | None = None) -> bool:
        """Wait for a wake-up until ``deadline``; False once it passed or ``woken``.

        The waker was cleared before: a ``woken`` made True after this check
        sets it, so the wait below ends at once.
        """
        if woken is not None and woken():
            return False
        if deadline is None:
            return wait_sliced(self.handle.waker, None)
        left = deadline - time.monotonic()
        return left > 0 and wait_sliced(self.handle.waker, left)

    def __iter__(self) -> Iterator[ServerEvent]:
        return _EventIterator(self)

    def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        for _ in _EventIterator(self):
            pass
        return self.handle.result()


class _EventIterator(BlockingRequestIteration[Request]):
    """``for event in request``."""

    def __next__(self) -> ServerEvent:
        request = self._request
        request.claim(self)
        try:
            event = request.receive()
        except BaseException:
            request.release(self)
            raise
        return self._took(event)
