"""The requests of one input read as one stream: the bookkeeping, without the waiting.

An adapter's ``RequestChain`` keeps each request of an input with the
connection it runs on. The input side (a feeder task, a stream's pump, or
``send_audio`` of a live session) starts the next request when the core's
``InputFeeder`` says so (``START``: a new connection, set up while the
previous request's tail still streams back) and sends each request its
chunks once its ``ready`` came. The consumer reads the requests in order
through the core's ``Stitcher``, which makes them one stream in input time.

A later request that fails before anything of it reached the caller is
opened again (as ``options.retry`` says, once the request before it has
ended, so a concurrency cap it held is free) and everything it was sent is
sent again (the feeder keeps it).

``ChainView`` holds the links and makes every decision; the adapters'
``RequestChain`` add the waiting (locks, wake-ups, connecting, writing,
reading), async or blocking.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from .errors import S2SError
from .events import Ready, ServerEvent, StreamEvent
from .feeder import InputFeeder
from .metrics import Metrics
from .options import WRITE_BATCH_BYTES, ClientOptions
from .request_table import RequestHandle
from .results import TextWithTimestamps
from .retry import GiveUp, Retrier
from .setup import Setup
from .stitcher import Stitcher

__all__ = ["ChainLink", "ChainView", "ChainRequest"]


class ChainRequest(Protocol):
    """What the chain reads of a request (every adapter's ``Request`` is one)."""

    @property
    def handle(self) -> RequestHandle: ...

    @property
    def ready(self) -> Ready | None: ...

    @property
    def metrics(self) -> Metrics: ...


ConnT = TypeVar("ConnT")
RequestT = TypeVar("RequestT", bound=ChainRequest)
LockT = TypeVar("LockT")


class ChainLink(Generic[ConnT, RequestT, LockT]):
    """One request of a chain and the connection it runs on.

    Args:
        lock: Orders sends to this request and its replacement by a retry
            (the adapter's kind of lock).
        conn: The connection, once open.
        request: The request, once started.
    """

    __slots__ = ("conn", "eos_sent", "failure", "lock", "owned", "request", "retrier", "sent")

    def __init__(self, lock: LockT, conn: ConnT | None = None,
                 request: RequestT | None = None) -> None:
        self.lock = lock
        self.conn = conn
        self.request = request
        self.owned = False
        """The chain opened the connection: it closes it."""
        self.failure: S2SError | None = None
        """Why the request failed for good (not retried any more)."""
        self.retrier: Retrier | None = None
        self.sent = 0
        """Replay chunks the current request was sent."""
        self.eos_sent = False

    def live(self) -> RequestT:
        """The request to send to.

        Raises:
            S2SError: It failed for good.
        """
        if self.failure is not None:
            raise self.failure
        assert self.request is not None
        return self.request

    def connected(self, conn: ConnT, request: RequestT) -> None:
        """A (new) request on a connection the chain opened, ready, sent nothing yet."""
        self.conn, self.request, self.owned = conn, request, True
        self.sent = 0


class _HasOptions(Protocol):
    @property
    def options(self) -> ClientOptions: ...


class ChainView(Generic[ConnT, RequestT, LockT]):
    """The links of one input's requests and every decision about them (see the module doc).

    Args:
        client: The adapter's client: it opens the connections of the later
            requests, and its ``options.retry`` retries them.
        setup: Every request's setup.
        feeder: The input side's decisions (and the replay of what was sent).
        stitcher: Joins the requests' events into one stream.
        conn: The first request's connection (the caller closes it).
        request: The first request.
    """

    def __init__(self, client: _HasOptions, setup: Setup, feeder: InputFeeder,
                 stitcher: Stitcher, conn: ConnT, request: RequestT) -> None:
        self._setup = setup
        self.feeder = feeder
        self.stitcher = stitcher
        stitcher.metrics_source = self._current_metrics
        self._retry = client.options.retry
        self._links: dict[int, ChainLink[ConnT, RequestT, LockT]] = {
            0: ChainLink(self._new_lock(), conn, request)}
        self._pending: deque[StreamEvent] = deque()

    def __repr__(self) -> str:
        return f"<RequestChain {len(self._links)} request(s), reading {self.stitcher.current}>"

    def _notify(self) -> None:
        """Wake whoever waits for a change of the links (the adapter's wake-up)."""
        raise NotImplementedError

    def _new_lock(self) -> LockT:
        """A lock for a new link (the adapter's kind)."""
        raise NotImplementedError

    # -- what it tells --

    @property
    def ready(self) -> Ready | None:
        """The first request's ``ready``, once received."""
        first = self._links[0].request
        return first.ready if first is not None else None

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments read so far, in input time."""
        return self.stitcher.texts

    def _current_metrics(self) -> Metrics | None:
        """The current request's metrics, or None before any request started."""
        link = self._links.get(self.stitcher.current, self._links.get(0))
        request = None if link is None else link.request
        return None if request is None else request.metrics

    @property
    def metrics(self) -> Metrics:
        """The latency figures of the request being read now (live).

        A split input's requests each have their own; this is the current
        one's (the first request's until the second one's output begins).
        """
        return self.request.metrics

    @property
    def request(self) -> RequestT:
        """The request being read now."""
        link = self._links.get(self.stitcher.current, self._links[0])
        request = link.request or self._links[0].request
        assert request is not None
        return request

    @property
    def requests(self) -> list[RequestT]:
        """Every request started so far, in input order."""
        return [link.request for _, link in sorted(self._links.items())
                if link.request is not None]

    def finished(self, segment: int) -> bool:
        """Whether the caller has read request ``segment`` to its end."""
        return self.stitcher.plan.finished > segment or self.stitcher.done

    # -- the input side --

    def _add(self, segment: int) -> ChainLink[ConnT, RequestT, LockT]:
        """The link of request ``segment``, started now (``Step.START``)."""
        link = self._links[segment] = ChainLink(self._new_lock())
        self._notify()
        return link

    def _replay_kept(self, segment: int) -> bool:
        """Whether what request ``segment`` was sent is kept (its output is unseen)."""
        return segment > 0 and self.feeder.replayable(segment)

    def _writes(self, segment: int, link: ChainLink[ConnT, RequestT, LockT],
                chunks: Sequence[bytes | memoryview]) -> Iterator[list[bytes | memoryview]]:
        """The writes that send ``chunks`` (for a request still replayable, what the
        feeder kept instead), each at most ``WRITE_BATCH_BYTES`` of audio."""
        if self._replay_kept(segment):
            chunks = self.feeder.replay_from(segment, link.sent)
            link.sent += len(chunks)
        batch: list[bytes | memoryview] = []
        size = 0
        for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            if size >= WRITE_BATCH_BYTES:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def _input_link(self, error: S2SError) -> ChainLink[ConnT, RequestT, LockT] | None:
        """Bad input: the link whose request it fails.

        None when that request is not open yet: it is marked failed here.
        """
        link = self._links[max(self._links)]
        if link.request is None or link.conn is None:
            link.failure = link.failure or error
            self._notify()
            return None
        return link

    def _opening(self, link: ChainLink[ConnT, RequestT, LockT], now: float) -> None:
        """The first attempt at opening ``link``'s request starts (its retries count from now)."""
        if link.retrier is None:
            link.retrier = Retrier(self._retry, start=now)

    def _retry_delay(self, segment: int, link: ChainLink[ConnT, RequestT, LockT],
                     failed: S2SError, now: float) -> float:
        """How long to wait before opening request ``segment`` again.

        Raises:
            S2SError: ``failed``, when it is not retried (the link is failed).
        """
        assert link.retrier is not None
        decision = link.retrier.on_failure(
            failed, now=now, output_reached_caller=not self._replay_kept(segment),
            replayable=True)
        if isinstance(decision, GiveUp):
            link.failure = failed
            self._notify()
            raise failed
        return decision.delay_s

    def _drop(self, segment: int, link: ChainLink[ConnT, RequestT, LockT], request: RequestT,
              error: S2SError) -> ConnT | None:
        """Let the failed ``request`` go, to be replaced (and sent all again) while its
        output is unseen.

        Returns:
            Its connection, to close before opening the replacement (the
            chain opened it); None when a retry replaced it already.

        Raises:
            S2SError: ``error``, when it is not retried (its output is seen).
        """
        if link.request is not request:
            return None
        if not self._replay_kept(segment):
            raise error
        # A request still replayable is a later one: the chain opened its connection.
        assert link.owned and link.conn is not None
        link.request = None
        return link.conn

    # -- the consumer side --

    def _reading(self) -> int | None:
        """The request to read next, or None once the joined stream ended."""
        return None if self.stitcher.done else self.stitcher.current

    def _readable(self, index: int) -> tuple[ChainLink[ConnT, RequestT, LockT], RequestT] | None:
        """Request ``index``'s link and request once it has one (None: not yet).

        Raises:
            S2SError: It failed for good (the joined partial result attached).
        """
        link = self._links.get(index)
        if link is None:
            return None
        request = link.request
        if link.failure is not None and (request is None or request.handle.ended):
            raise self.stitcher.fail(link.failure)
        return None if request is None else (link, request)

    def _check_unread(self, index: int, request: RequestT) -> None:
        """Before reading ``request``: raise its failure while its output is unseen.

        Raises:
            S2SError: It failed before its output was read (it is retried
                rather than read).
        """
        terminal = request.handle.terminal
        if terminal is not None and self._replay_kept(index):
            raise terminal

    def _retry_done(self, index: int, link: ChainLink[ConnT, RequestT, LockT],
                    request: RequestT) -> bool | None:
        """After reading ``request`` failed: True, a retry replaced it already; False, it
        is not retried; None, try one now."""
        if link.request is not request:
            return True
        if not self._replay_kept(index) or link.failure is not None:
            return False
        return None

    def _took(self, index: int, event: ServerEvent | None) -> ConnT | None:
        """Queue what ``event`` of request ``index`` gives the caller.

        Returns:
            The connection to close when the stitcher moved on to the next
            request and the chain opened this one's (the server closes it
            after end_of_stream); else None.
        """
        if event is None:  # the stitcher moves on at every end_of_stream
            raise AssertionError(f"request {index} ended without its end_of_stream")
        self._pending.extend(self.stitcher.take(event))
        if self.stitcher.current == index:
            return None
        self._notify()
        link = self._links[index]
        return link.conn if link.owned else None

    def _owned(self) -> list[ConnT]:
        """The connections the chain opened (the first one is the caller's)."""
        return [link.conn for link in list(self._links.values())
                if link.owned and link.conn is not None]
