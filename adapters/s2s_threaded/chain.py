"""The requests of one input read as one stream (blocking): the waiting of ``s2s_core.chain``.

The links and every decision (which request, what to send again, when to
retry, what the caller gets) are the core's ``ChainView``; here are the
locks, the wake-ups, connecting, writing and reading. The input side is the
stream's pump in the consuming thread, or ``send_audio`` of a live session
in any thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from s2s_core.chain import ChainLink, ChainView
from s2s_core.errors import S2SError
from s2s_core.events import StreamEvent
from s2s_core.feeder import FeedStep, InputFeeder, Step
from s2s_core.results import S2SResult
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .connection import Connection, Connector
from .request import SLICE_S, TIMEOUT, Request, Timeout, Woken

__all__ = ["RequestChain"]

_Link = ChainLink[Connection, Request, threading.RLock]


class RequestChain(ChainView[Connection, Request, threading.RLock]):
    """The requests of one input, in order, for blocking callers (``ChainView``'s arguments)."""

    def __init__(self, client: Connector, setup: Setup, feeder: InputFeeder, stitcher: Stitcher,
                 conn: Connection, request: Request) -> None:
        self._client = client
        self._changed = threading.Condition()
        self._closed = False
        super().__init__(client, setup, feeder, stitcher, conn, request)

    def _new_lock(self) -> threading.RLock:
        return threading.RLock()

    # -- the input side --

    def run(self, step: FeedStep, *, consumer: bool = False) -> None:
        """Do one of the feeder's request steps (``START``, ``SEND``, ``END_OF_STREAM``, and,
        from another thread than the consumer's, ``WAIT_FOR_OUTPUT``).

        Args:
            consumer: The consuming thread itself runs it: a write lifts the
                queue bound (``Request.consumer_writing``), and a retry waits
                for its backoff only (that thread reads the request before
                it, so it cannot wait for that one's end).

        Raises:
            S2SError: The request failed and is not retried (the consumer gets it too).
        """
        kind, segment, chunks = step.kind, step.segment, step.chunks
        if kind is Step.SEND:
            self._deliver(segment, chunks, end=False, consumer=consumer)
        elif kind is Step.START:
            link = self._add(segment)
            with link.lock:
                self._open(segment, link, None, wait=not consumer)
        elif kind is Step.WAIT_FOR_OUTPUT and not consumer:
            self.wait_finished(segment)
        elif kind is Step.END_OF_STREAM:
            self._deliver(segment, (), end=True, consumer=consumer)
        else:  # pragma: no cover - the callers handle the other steps
            raise AssertionError(f"not a request step here: {kind}")

    def _deliver(self, segment: int, chunks: Sequence[bytes | memoryview], *, end: bool,
                 consumer: bool) -> None:
        """Send ``chunks`` (then end_of_stream, once, if ``end``), replacing a failed request."""
        link = self._links[segment]
        with link.lock:
            while True:
                request = link.live()
                try:
                    self._send(segment, link, request, chunks, consumer)
                    if end and not link.eos_sent:
                        link.eos_sent = True
                        request.send_end_of_stream()
                    return
                except S2SError as exc:
                    self._recover(segment, link, request, exc, wait=not consumer)

    def wait_finished(self, segment: int) -> None:
        """Wait until the caller (another thread) has read request ``segment`` to its end."""
        with self._changed:
            while not self.finished(segment) and not self._closed:
                self._changed.wait(SLICE_S)

    def fail_input(self, error: S2SError) -> None:
        """Bad input: fail the request it was going to, so its consumer sees it."""
        link = self._input_link(error)
        if link is None or link.conn is None or link.request is None:
            return
        conn = link.conn
        with conn._lock:
            conn.table.fail_input(link.request.handle, error, now=time.monotonic())
        conn.close(1000, "bad input")

    def _send(self, segment: int, link: _Link, request: Request,
              chunks: Sequence[bytes | memoryview], consumer: bool) -> None:
        for batch in self._writes(segment, link, chunks):
            if consumer:
                with request.consumer_writing():
                    request.send_chunks(batch)
            else:
                request.send_chunks(batch)

    def _open(self, segment: int, link: _Link, failed: S2SError | None, *, wait: bool) -> None:
        """Connect, set up and wait for ready, retrying as the policy says.

        Args:
            wait: The caller may wait for the request before it to end (not
                the consuming thread: it is the one that reads it).
        """
        self._opening(link, time.monotonic())
        while True:
            if failed is not None:
                delay = self._retry_delay(segment, link, failed, time.monotonic())
                if wait:
                    self.wait_finished(segment - 1)  # its concurrency slot is free then
                time.sleep(delay)
            try:
                self._connect(link)
            except S2SError as exc:
                failed = exc
            else:
                self._notify()
                return

    def _connect(self, link: _Link) -> None:
        opened = self._client.connection()
        conn = opened.__enter__()
        try:
            request = conn.start(self._setup, keep_audio=False)
            request.wait_ready()
        except BaseException:
            conn.close()
            raise
        link.connected(conn, request)

    def _recover(self, segment: int, link: _Link, request: Request, error: S2SError, *,
                 wait: bool) -> None:
        """``request`` failed: replace it while its output is unseen (else raise ``error``)."""
        stale = self._drop(segment, link, request, error)
        if stale is None:
            return  # a retry replaced it already
        stale.close()
        self._open(segment, link, error, wait=wait)
        if link.eos_sent:
            replacement = link.live()
            self._send(segment, link, replacement, (), False)
            replacement.send_end_of_stream()

    # -- the consumer side --

    def receive(self) -> StreamEvent | None:
        """The next event of the joined stream, or None after its end.

        Raises:
            S2SError: A request failed (``partial_result`` holds the joined
                output before it; ``segment`` says which part of the input).
        """
        event = self.receive_until(None)
        assert event is not TIMEOUT
        return event

    def receive_until(self, deadline: float | None,
                      woken: Woken | None = None) -> StreamEvent | Timeout | None:
        """The next event, None after the end, or ``TIMEOUT`` once ``deadline`` passed.

        ``woken`` returning True ends the wait with ``TIMEOUT`` too (whoever
        makes it True calls ``wake``).
        """
        pending = self._pending
        while not pending:
            index = self._reading()
            if index is None:
                return None
            readable = self._wait_readable(index, deadline, woken)
            if readable is None:
                return TIMEOUT
            link, request = readable
            try:
                self._check_unread(index, request)
                event = request.receive_until(deadline, woken)
            except S2SError as exc:
                if self._retried(index, link, request, exc):
                    continue
                failure = self.stitcher.fail(exc)
                raise failure from failure.__cause__  # its own cause kept (a source's error)
            if event is TIMEOUT:
                return TIMEOUT
            finished = self._took(index, event)
            if finished is not None:
                finished.close()
        return pending.popleft()

    def _wait_readable(self, index: int, deadline: float | None,
                       woken: Woken | None = None) -> tuple[_Link, Request] | None:
        """Request ``index``'s link and request once it has one (None: ``deadline`` passed,
        or ``woken`` said so)."""
        with self._changed:
            while (readable := self._readable(index)) is None:
                wait = SLICE_S if deadline is None else min(SLICE_S,
                                                            deadline - time.monotonic())
                if wait <= 0 or (woken is not None and woken()):
                    return None
                self._changed.wait(wait)
            return readable

    def _retried(self, index: int, link: _Link, request: Request, error: S2SError) -> bool:
        """Whether the failed ``request`` was (or is being) replaced by a retry."""
        done = self._retry_done(index, link, request)
        if done is not None:
            return done
        try:
            with link.lock:
                self._recover(index, link, request, error, wait=False)
        except S2SError:
            return False
        return True

    def result(self) -> S2SResult:
        """Read to the end and return the joined result.

        Raises:
            S2SError: A request failed (see ``receive``).
        """
        self.stitcher.keep_audio = True
        while self.receive() is not None:
            pass
        return self.stitcher.result()

    # -- wake-ups and closing --

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wake(self) -> None:
        """Wake the consumer wherever it waits (any thread): see ``receive_until``'s ``woken``."""
        with self._changed:
            self._changed.notify_all()
            requests = [link.request for link in self._links.values()]
        for request in requests:
            if request is not None:
                request.handle.waker.set()

    def close(self) -> None:
        """Close the connections the chain opened (the first one is the caller's)."""
        self._closed = True
        for conn in self._owned():
            conn.close()
        self._notify()
