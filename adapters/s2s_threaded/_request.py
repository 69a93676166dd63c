"""One request's side of a connection: its bounded event queue, sending, iterating.

The connection's reader thread fills the queue (``_deliver``, ``_end``); the
thread that iterates drains it, in waits of at most ``_SLICE`` seconds.
"""

from __future__ import annotations

import enum
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from s2s_core.connection import ConnectionState
from s2s_core.errors import LocalProtocolError, S2SError
from s2s_core.events import Ready, ServerEvent
from s2s_core.protocol import AudioInput
from s2s_core.request_state import RequestTracker
from s2s_core.results import S2SResult, TextWithTimestamps
from s2s_core.setup import Setup

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Request"]

_SLICE = 0.5
"""Longest single wait, so Ctrl-C is seen promptly even where lock waits ignore it."""


class _Signal(enum.Enum):
    END = "end"
    TIMEOUT = "timeout"


_Item = ServerEvent | Literal[_Signal.END]


class _Inbox:
    """A request's bounded event queue, handed over in batches.

    The reader puts the events of one read at once and blocks while the
    queue holds ``maxsize`` or more; the consumer takes everything queued at
    once and then pops from its own batch, so the two threads meet once per
    read, not once per event. At most ``2 * maxsize`` events plus one read's
    are held.
    """

    def __init__(self, maxsize: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._queued: deque[_Item] = deque()
        self._taken: deque[_Item] = deque()  # the consumer's own; no lock needed
        self._bound = maxsize
        self._limit = maxsize
        self._released = False

    def put_many(self, items: Sequence[_Item]) -> None:
        """Queue ``items`` (in order), waiting while the queue is full."""
        with self._cond:
            while len(self._queued) >= self._limit:
                self._cond.wait()
            self._queued.extend(items)
            self._cond.notify_all()

    def full(self) -> bool:
        """Whether a ``put_many`` would wait now."""
        with self._cond:
            return len(self._queued) >= self._limit

    def get(self, timeout: float) -> _Item:
        """The next item, waiting up to ``timeout`` seconds.

        Raises:
            queue.Empty: Nothing arrived in time.
        """
        taken = self._taken
        if taken:
            return taken.popleft()
        with self._cond:
            if not self._queued and timeout > 0:
                self._cond.wait(timeout)
            if not self._queued:
                raise queue.Empty
            self._taken, self._queued = self._queued, taken
            self._cond.notify_all()  # room for the reader
        return self._taken.popleft()

    def unbound(self) -> None:
        """Stop bounding for good: a blocked ``put_many`` returns (nobody waits for room)."""
        with self._cond:
            self._released = True
            self._limit = sys.maxsize
            self._cond.notify_all()

    def set_bounded(self, bounded: bool) -> None:
        """Lift (False) or restore (True) the bound."""
        with self._cond:
            if not self._released:
                self._limit = self._bound if bounded else sys.maxsize
                self._cond.notify_all()


class Request:
    """One request on a connection: send its audio, iterate its events.

    Iteration yields ``Ready``, ``Text``, ``Audio``, ``UnknownMessage`` and
    finally ``EndOfStream``, then stops. A server ``error`` raises the
    matching ``ServerError``; a connection that ends first raises
    ``ConnectionClosedError`` (or the timeout or protocol error that ended
    it). Every error carries ``partial_result`` with what arrived before.
    Events that arrived before a failure are yielded before it is raised.
    """

    def __init__(self, conn: Connection, setup: Setup, *, queue_size: int,
                 keep_audio: bool) -> None:
        self._conn = conn
        self.setup = setup
        self.client_req_id = setup.client_req_id
        self._track = RequestTracker(setup.output_format, keep_audio=keep_audio)
        self.collector = self._track.collector
        self._inbox = _Inbox(queue_size)
        self._ready_event = threading.Event()
        self._ended = False  # reader side: nothing more will be queued
        self._iterating = False

    # -- sending --

    def send_audio(self, audio: AudioInput) -> None:
        """Send one chunk of input audio (bytes in the input format, or samples).

        Blocks while the socket cannot take more (backpressure).
        """
        self._queue_audio(audio)
        self._conn.flush()

    def _queue_audio(self, audio: AudioInput) -> None:
        """Hand a chunk to the core; it goes out with the next flush."""
        self._queue_audio_many((audio,))

    def _queue_audio_many(self, chunks: Sequence[AudioInput]) -> None:
        """Hand chunks to the core, checked and queued under one hold of the lock."""
        conn = self._conn
        with conn._lock:
            core = conn.core
            self._track.check_send("send_audio", core.protocol.request(self.client_req_id),
                                   core.closed_event)
            send, rid, now = core.send_audio, self.client_req_id, time.monotonic()
            for audio in chunks:
                send(audio, rid, now=now)

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        self._check_open("send_end_of_stream")
        conn = self._conn
        with conn._lock:
            conn.core.send_end_of_stream(self.client_req_id, now=time.monotonic())
        conn.flush()

    send_eos = send_end_of_stream

    @contextmanager
    def _consumer_writing(self) -> Iterator[None]:
        """Lift the queue bound while the consuming thread itself writes.

        That thread cannot drain the queue meanwhile: if the reader stopped
        on a full queue, the server would stop reading our input and the
        write would never end. The reader then queues what the server makes
        of input already in the socket buffers, a bounded amount.
        """
        self._inbox.set_bounded(False)
        try:
            yield
        finally:
            self._inbox.set_bounded(True)

    def _check_open(self, what: str) -> None:
        conn = self._conn
        with conn._lock:
            info = conn.core.protocol.request(self.client_req_id)
            closed = conn.core.closed_event
        self._track.check_send(what, info, closed)

    # -- receiving --

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received."""
        return self.collector.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far (in iteration order)."""
        return self.collector.texts

    def wait_ready(self) -> Ready:
        """Wait for ``ready`` (events before it stay queued for iteration).

        Raises:
            S2SError: The request failed before ready (timeout, error, close).
        """
        self._wait_ready_until(None)
        if self.collector.ready is None:
            raise self._track.failure()
        return self.collector.ready

    def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        event = self._receive_until(None)
        assert event is not _Signal.TIMEOUT
        return event

    def __iter__(self) -> Iterator[ServerEvent]:
        return self._iterate()

    def _iterate(self) -> Iterator[ServerEvent]:
        if self._iterating:
            raise LocalProtocolError("this request is already being iterated by another consumer")
        self._iterating = True
        try:
            while True:
                event = self.receive()
                if event is None:
                    return
                yield event
        finally:
            self._iterating = False

    def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        for _ in self:
            pass
        return self.collector.result()

    def _wait_ready_until(self, deadline: float | None) -> bool:
        """Wait for ready (or the end) until ``deadline``; whether it came."""
        while True:
            wait = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            if self._ready_event.wait(max(wait, 0.0)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _receive_until(self, deadline: float | None
                       ) -> ServerEvent | Literal[_Signal.TIMEOUT] | None:
        """The next event, None after the end, or TIMEOUT once ``deadline`` passed."""
        track = self._track
        if track.finished:
            if self.collector.error is not None:
                raise self.collector.error
            return None
        item = self._get(deadline)
        if item is _Signal.TIMEOUT:
            return item
        if item is _Signal.END:
            raise track.failure()
        return track.consume(item)

    def _get(self, deadline: float | None) -> _Item | Literal[_Signal.TIMEOUT]:
        inbox = self._inbox
        while True:
            wait = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
            try:
                return inbox.get(wait)
            except queue.Empty:
                if wait <= 0:
                    return _Signal.TIMEOUT

    def _input_failed(self, error: S2SError) -> None:
        """(consumer) Our input could not be sent: fail the request unless it already ended."""
        conn = self._conn
        with conn._lock:
            closing = conn.core.state is not ConnectionState.OPEN
        # A connection already ending gets its real reason from the reader.
        if not closing and not self._ended:
            self._end(error)
            conn.close(1000, "bad input")

    # -- called by the connection's reader --

    def _deliver(self, events: list[ServerEvent]) -> None:
        """(reader) Queue events of this request, in order, up to its end."""
        if self._ended:
            return  # nobody reads past the end
        ready = False
        with self._conn._lock:
            delivered = self._track.delivered
            for index, event in enumerate(events):
                ready = ready or type(event) is Ready
                if delivered(event):
                    self._ended = True
                    del events[index + 1:]
                    break
        if ready:
            self._ready_event.set()
        self._inbox.put_many(events)  # blocks while full: backpressure on the socket
        if self._ended:
            self._ready_event.set()

    def _end(self, error: S2SError) -> None:
        with self._conn._lock:
            self._track.ended(error)
            self._ended = True
        self._inbox.unbound()
        self._inbox.put_many((_Signal.END,))
        self._ready_event.set()



def _wait(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait`` in short slices (Ctrl-C stays prompt everywhere)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
        if event.wait(max(wait, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
