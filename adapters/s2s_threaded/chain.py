"""The requests of one input read as one stream: one, or several when it is split (blocking).

``RequestChain`` keeps each request of an input with the connection it runs
on. The input side (the stream's pump in the consuming thread, or
``send_audio`` of a live session in any thread) starts the next request when
the core's ``InputFeeder`` says so (``START``: a new connection, set up while
the previous request's tail still streams back) and sends each request its
chunks once its ``ready`` came. The consumer reads the requests in order
through the core's ``Stitcher``, which makes them one stream in input time.

A later request that fails before anything of it reached the caller is
opened again (as ``options.retry`` says, once the request before it has
ended) and everything it was sent is sent again (the feeder keeps it). The
decisions are the core's; here is the waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from s2s_core.client_base import ChainView
from s2s_core.errors import S2SError
from s2s_core.events import StreamEvent
from s2s_core.feeder import InputFeeder
from s2s_core.options import WRITE_BATCH_BYTES
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .connection import Connection, Connector
from .request import SLICE_S, TIMEOUT, Request, Timeout, Woken

__all__ = ["RequestChain"]


class _Link:
    """One request of the chain and the connection it runs on."""

    __slots__ = ("conn", "eos_sent", "failure", "lock", "owned", "request", "retrier", "sent")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.request: Request | None = None
        self.owned = False
        """The chain opened the connection: it closes it."""
        self.failure: S2SError | None = None
        """Why the request failed for good (not retried any more)."""
        self.lock = threading.RLock()
        """Orders sends to this request and its replacement by a retry."""
        self.retrier: Retrier | None = None
        self.sent = 0
        """Replay chunks the current request was sent."""
        self.eos_sent = False


class RequestChain(ChainView[Request]):
    """The requests of one input, in order (see the module doc).

    Args:
        client: Opens the connections of the later requests.
        setup: Every request's setup.
        feeder: The input side's decisions (and the replay of what was sent).
        stitcher: Joins the requests' events into one stream.
        conn: The first request's connection (the caller closes it).
        request: The first request.
    """

    def __init__(self, client: Connector, setup: Setup, feeder: InputFeeder, stitcher: Stitcher,
                 conn: Connection, request: Request) -> None:
        self._client = client
        self._setup = setup
        self.feeder = feeder
        self.stitcher = stitcher
        stitcher.metrics_source = self._current_metrics
        first = _Link()
        first.conn, first.request = conn, request
        self._links: dict[int, _Link] = {0: first}
        self._changed = threading.Condition()
        self._pending: deque[StreamEvent] = deque()
        self._closed = False

    # -- the input side --

    def start(self, segment: int, *, consumer: bool = False) -> None:
        """Open request ``segment`` (``Step.START``): connect, setup, ready.

        Args:
            consumer: The consuming thread itself opens it: a retry then
                waits for its backoff only (that thread reads the request
                before it, so it cannot wait for that one's end).

        Raises:
            S2SError: It failed and is not retried (the consumer gets it too).
        """
        link = _Link()
        with self._changed:
            self._links[segment] = link
            self._changed.notify_all()
        with link.lock:
            self._open(segment, link, None, wait=not consumer)

    def send(self, segment: int, chunks: Sequence[bytes | memoryview], *,
             consumer: bool = False) -> None:
        """Send chunks to request ``segment`` (``Step.SEND``).

        Args:
            consumer: The consuming thread itself writes (see
                ``Request.consumer_writing``).

        Raises:
            S2SError: The request failed and is not retried.
        """
        link = self._links[segment]
        with link.lock:
            while True:
                request = self._live(link)
                try:
                    self._send(segment, link, request, chunks, consumer)
                    return
                except S2SError as exc:
                    self._recover(segment, link, request, exc, wait=not consumer)

    def end(self, segment: int, *, consumer: bool = False) -> None:
        """Send request ``segment``'s end_of_stream (``Step.END_OF_STREAM``).

        Raises:
            S2SError: The request failed and is not retried.
        """
        link = self._links[segment]
        with link.lock:
            while True:
                request = self._live(link)
                try:
                    self._send(segment, link, request, (), consumer)
                    if not link.eos_sent:
                        link.eos_sent = True
                        request.send_end_of_stream()
                    return
                except S2SError as exc:
                    self._recover(segment, link, request, exc, wait=not consumer)

    def finished(self, segment: int) -> bool:
        """Whether the caller has read request ``segment`` to its end."""
        return self.stitcher.plan.finished > segment or self.stitcher.done

    def wait_finished(self, segment: int) -> None:
        """Wait until the caller (another thread) has read request ``segment`` to its end."""
        with self._changed:
            while not self.finished(segment) and not self._closed:
                self._changed.wait(SLICE_S)

    def fail_input(self, error: S2SError) -> None:
        """Bad input: fail the request it was going to, so its consumer sees it."""
        link = self._links[max(self._links)]
        if link.request is None or link.conn is None:
            link.failure = link.failure or error
            self._notify()
            return
        conn = link.conn
        with conn._lock:
            conn.table.fail_input(link.request.handle, error, now=time.monotonic())
        conn.close(1000, "bad input")

    def _live(self, link: _Link) -> Request:
        if link.failure is not None:
            raise link.failure
        assert link.request is not None
        return link.request

    def _send(self, segment: int, link: _Link, request: Request,
              chunks: Sequence[bytes | memoryview], consumer: bool) -> None:
        """Send ``chunks``; for a request still replayable, what the feeder kept instead."""
        if self._replay_kept(segment):
            chunks = self.feeder.replay_from(segment, link.sent)
            link.sent += len(chunks)
        batch: list[bytes | memoryview] = []
        size = 0
        for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH_BYTES:
                self._write(request, batch, consumer)
                batch, size = [], 0
        if batch:
            self._write(request, batch, consumer)

    @staticmethod
    def _write(request: Request, batch: list[bytes | memoryview], consumer: bool) -> None:
        if consumer:
            with request.consumer_writing():
                request.send_chunks(batch)
        else:
            request.send_chunks(batch)

    def _replay_kept(self, segment: int) -> bool:
        return segment > 0 and self.feeder.replayable(segment)

    def _open(self, segment: int, link: _Link, failed: S2SError | None, *, wait: bool) -> None:
        """Connect, set up and wait for ready, retrying as the policy says.

        Args:
            wait: The caller may wait for the request before it to end (not
                the consuming thread: it is the one that reads it).
        """
        if link.retrier is None:
            link.retrier = Retrier(self._client.options.retry, start=time.monotonic())
        while True:
            if failed is not None:
                decision = link.retrier.on_failure(
                    failed, now=time.monotonic(),
                    output_reached_caller=not self._replay_kept(segment), replayable=True)
                if isinstance(decision, GiveUp):
                    link.failure = failed
                    self._notify()
                    raise failed
                if wait:
                    self.wait_finished(segment - 1)  # its concurrency slot is free then
                time.sleep(decision.delay_s)
            try:
                self._connect(link)
                self._notify()
                return
            except S2SError as exc:
                failed = exc

    def _connect(self, link: _Link) -> None:
        opened = self._client.connection()
        conn = opened.__enter__()
        try:
            request = conn.start(self._setup, keep_audio=False)
            request.wait_ready()
        except BaseException:
            conn.close()
            raise
        link.conn, link.request, link.owned = conn, request, True
        link.sent = 0

    def _recover(self, segment: int, link: _Link, request: Request, error: S2SError, *,
                 wait: bool) -> None:
        """``request`` failed: replace it (and send it all again) if its output is unseen.

        Raises:
            S2SError: ``error``, when it is not retried.
        """
        if link.request is not request:
            return  # already replaced (the consumer saw it first)
        if not self._replay_kept(segment):
            raise error
        if link.conn is not None and link.owned:
            link.conn.close()
        link.request = None
        self._open(segment, link, error, wait=wait)
        if link.eos_sent:
            assert link.request is not None
            self._send(segment, link, link.request, (), False)
            link.request.send_end_of_stream()

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
        stitcher = self.stitcher
        while not pending:
            if stitcher.done:
                return None
            index = stitcher.current
            link = self._readable(index, deadline, woken)
            if link is None:
                return TIMEOUT
            request = link.request
            assert request is not None
            try:
                if request.handle.terminal is not None and self._replay_kept(index):
                    raise request.handle.terminal  # failed before its output was read
                event = request.receive_until(deadline, woken)
            except S2SError as exc:
                if self._retried(index, link, request, exc):
                    continue
                raise stitcher.fail(exc) from None
            if event is TIMEOUT:
                return TIMEOUT
            if event is None:  # the stitcher moves on at every end_of_stream
                raise AssertionError(f"request {index} ended without its end_of_stream")
            pending.extend(stitcher.take(event))
            if stitcher.current != index:
                self._notify()
                if link.owned and link.conn is not None:
                    link.conn.close()  # the server closes it after end_of_stream
        return pending.popleft()

    def _readable(self, index: int, deadline: float | None, woken: Woken | None) -> _Link | None:
        """The link of request ``index`` once it has a request (None: ``deadline`` passed)."""
        with self._changed:
            while True:
                link = self._links.get(index)
                if link is not None:
                    if link.failure is not None and (link.request is None
                                                     or link.request.handle.ended):
                        raise self.stitcher.fail(link.failure)
                    if link.request is not None:
                        return link
                wait = SLICE_S if deadline is None else min(SLICE_S,
                                                            deadline - time.monotonic())
                if wait <= 0 or (woken is not None and woken()):
                    return None
                self._changed.wait(wait)

    def _retried(self, index: int, link: _Link, request: Request, error: S2SError) -> bool:
        """Whether the failed ``request`` was (or is being) replaced by a retry."""
        if link.request is not request:
            return True
        if not self._replay_kept(index) or link.failure is not None:
            return False
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
        for link in list(self._links.values()):
            if link.owned and link.conn is not None:
                link.conn.close()
        self._notify()
