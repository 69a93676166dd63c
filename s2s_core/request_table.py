"""The requests of one client connection: routing, queues, results, refusals (sans-IO).

A ``RequestTable`` wraps a ``ClientConnection``. The adapters feed every
transport input through it (``receive_data``, ``receive_eof``,
``transport_failed``, ``handle_timer``), so each event is routed the moment
the core produces it, against the same view of which requests are live that
the core's lifecycle used. After every input they drain, as from the
connection: ``connection.data_to_send()``, ``handles_to_wake()`` and
``connection.next_deadline()``; and they pause reading while ``saturated``.

Each request is a ``RequestHandle``: its queue of events not yet consumed,
its result so far, why it ended, and why a send would be refused. Adapters
hold no request logic of their own: they wait, wake and move bytes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .connection import ClientConnection
from .errors import ConnectionClosedError, LocalProtocolError, S2SError
from .events import (
    Audio,
    Closed,
    EndOfStream,
    ErrorMessage,
    Ready,
    ServerEvent,
    Text,
    UnknownMessage,
)
from .metrics import Metrics, RequestMeter
from .options import QUEUE_SIZE
from .protocol import AudioInput, RequestInfo
from .results import ResultCollector, S2SResult, TextWithTimestamps, error_from_event
from .setup import Setup

__all__ = ["RequestTable", "RequestHandle", "WAIT"]


class _Wait:
    __slots__ = ()

    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = _Wait()
"""What ``RequestHandle.next`` returns when no event is queued yet."""


class RequestHandle:
    """One request's side of the table: its queue, its result, its end.

    The table (on the transport's side) queues events; the consumer takes
    them with ``next`` (or ``take_batch`` then ``consume``, to take a whole
    read's events in one step across threads).

    Attributes:
        setup: The request's setup.
        client_req_id: Its multiplexing id (None on a single-use socket).
        collector: Everything consumed so far (the partial result).
        ended: Nothing more will be queued (end_of_stream, error, or close).
        terminal: Why it ended, when that is a failure, known before the
            consumer reaches it (senders and ``wait_ready`` fail with it).
        finished: The consumer has seen the end.
        meter: The request's times, as routed (``metrics()`` gives the figures).
        waker: A slot for the adapter's wake-up object (the table never
            touches it).
    """

    __slots__ = ("_full", "_info", "_pending", "_queue_size", "_table", "_wake_queued",
                 "client_req_id", "collector", "ended", "finished", "keep_audio", "meter",
                 "setup", "terminal", "unbounded", "waker")

    def __init__(self, table: RequestTable, setup: Setup, info: RequestInfo, *,
                 keep_audio: bool, queue_size: int, meter: RequestMeter) -> None:
        self._table = table
        self._info = info
        self.setup = setup
        self.client_req_id = setup.client_req_id
        self.meter = meter
        self.collector = ResultCollector(setup.output_format)
        self.collector.metrics_source = self.metrics
        self.keep_audio = keep_audio
        self._pending: deque[ServerEvent] = deque()
        self._queue_size = queue_size
        self._full = False
        self._wake_queued = False
        self.unbounded = 0
        """While above zero the queue has no bound (the consumer is busy writing)."""
        self.ended = False
        self.terminal: S2SError | None = None
        self.finished = False
        self.waker: Any = None

    def __repr__(self) -> str:
        return (f"<RequestHandle client_req_id={self.client_req_id!r} queued={len(self._pending)}"
                f" ended={self.ended} finished={self.finished}>")

    # -- what the consumer sees --

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received (before it is consumed)."""
        return self.collector.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments consumed so far."""
        return self.collector.texts

    def metrics(self, now: float | None = None) -> Metrics:
        """The request's metrics: final once it ended, live while it runs.

        Args:
            now: The current time on the adapter's clock; by default the
                latest time the connection was given (no clock is read).
        """
        connection = self._table.connection
        meter = self.meter
        if meter.opened_at is None and connection.opened_at is not None:
            meter.opened(connection.opened_at)  # its setup went out before the upgrade
        return meter.metrics(connection.now if now is None else now)

    @property
    def queued(self) -> int:
        """Events queued, not yet consumed."""
        return len(self._pending)

    def next(self) -> ServerEvent | _Wait | None:
        """The next event, ``WAIT`` when none is queued yet, None after the end.

        Raises:
            S2SError: The request failed (``partial_result`` attached); raised
                again on every later call.
        """
        if self.finished:
            if self.collector.error is not None:
                raise self.collector.error
            return None
        pending = self._pending
        if pending:
            event = pending.popleft()
            if self._full and len(pending) < self._queue_size:
                self._set_full(False)
            return self.consume(event)
        if self.ended:
            raise self.failure()
        return WAIT

    def take_batch(self) -> deque[ServerEvent]:
        """Every queued event at once (for ``consume`` one by one, elsewhere)."""
        batch, self._pending = self._pending, deque()
        if self._full:
            self._set_full(False)
        return batch

    def consume(self, event: ServerEvent) -> ServerEvent:
        """Account for an event taken from the queue.

        Raises:
            S2SError: The event is the server's error for this request.
        """
        kind = type(event)
        collector = self.collector
        if kind is Audio:
            if self.keep_audio:
                collector.add(event)
        elif kind is Text:
            collector.add(event)
        elif kind is EndOfStream:
            collector.add(event)
            self.finished = True
        elif kind is ErrorMessage:
            self.finished = True
            assert isinstance(event, ErrorMessage)
            raise collector.fail(self.terminal or error_from_event(event, collector.request_id))
        return event

    def failure(self) -> S2SError:
        """The error of a request that ended without its end_of_stream."""
        self.finished = True
        if self.collector.error is not None:
            return self.collector.error
        error = self.terminal or ConnectionClosedError(1006, "", "the request ended unexpectedly")
        return self.collector.fail(error)

    def ready_failure(self) -> S2SError | None:
        """Why ``ready`` will never come, or None while it still may."""
        if self.collector.ready is not None or not self.ended:
            return None
        return self.failure()

    def result(self) -> S2SResult:
        """The result, once the consumer has seen the end.

        Raises:
            S2SError: The request failed.
        """
        return self.collector.result()

    def check_send(self, what: str) -> None:
        """Raise the reason a send cannot go out now, if there is one.

        Raises:
            S2SError: The request failed (its error, with the partial result).
            LocalProtocolError: The request ended normally.
        """
        error = self.terminal or self.collector.error
        if error is None and self._info.error is not None:
            # The core knows a server error before it is routed here.
            error = error_from_event(self._info.error, self.collector.request_id)
        closed = self._table.closed
        if error is None and closed is not None and not self.collector.done:
            error = self._table.close_error(closed, self.collector.request_id)
        if error is None:
            if self.finished or self.ended:
                raise LocalProtocolError(f"cannot {what}: the request has ended")
            return
        if error.partial_result is None:
            error.partial_result = self.collector.snapshot()
        raise error

    def lift_bound(self) -> None:
        """No bound while the consumer itself writes (it cannot drain meanwhile)."""
        self.unbounded += 1
        if self._full:
            self._set_full(False)

    def restore_bound(self) -> None:
        """Undo one ``lift_bound``."""
        self.unbounded -= 1
        if (not self.unbounded and not self._full and not self.ended
                and len(self._pending) >= self._queue_size):
            self._set_full(True)

    # -- the table's side --

    def _put(self, event: ServerEvent, now: float) -> None:
        kind = type(event)
        if kind is Audio:
            self.meter.audio(event, now)  # type: ignore[arg-type]
        elif kind is Text:
            self.meter.text(now)
        elif kind is Ready:
            self.collector.ready = event  # type: ignore[assignment]
            self.meter.ready(event, now)  # type: ignore[arg-type]
        elif kind is EndOfStream:
            self._end(None, now)
        elif kind is ErrorMessage:
            if self.terminal is None:
                self.terminal = error_from_event(event, self.collector.request_id)  # type: ignore[arg-type]
            self._end(None, now)
        pending = self._pending
        pending.append(event)
        if (not self._full and len(pending) >= self._queue_size and not self.unbounded
                and not self.ended):
            self._set_full(True)

    def _end(self, error: S2SError | None, now: float) -> None:
        if error is not None and self.terminal is None:
            self.terminal = error
        self.ended = True
        self.meter.end(now)
        if self._full:
            self._set_full(False)  # an ended request never holds the socket back

    def _set_full(self, full: bool) -> None:
        self._full = full
        self._table._saturated += 1 if full else -1


class RequestTable:
    """The requests of one ``ClientConnection``, routed by ``client_req_id``.

    Args:
        connection: The core this table feeds (it owns no other state).
        queue_size: Events queued per request before ``saturated`` (reading
            should pause: backpressure).
    """

    def __init__(self, connection: ClientConnection, *, queue_size: int = QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        self.connection = connection
        self._queue_size = queue_size
        self._handles: dict[str | None, RequestHandle] = {}
        self._to_wake: list[RequestHandle] = []
        self._saturated = 0
        self._started = 0
        self.discarding = False
        """Set once nobody will consume queued events (closing): no backpressure."""
        self.socket_error: ErrorMessage | None = None
        """An unscoped ``error``: it explains the close that follows."""
        self.closed: Closed | None = None
        """The connection's ``Closed`` event, once routed."""

    def __repr__(self) -> str:
        return f"<RequestTable {len(self._handles)} request(s) {self.connection!r}>"

    # -- application calls --

    def start(self, setup: Setup | Mapping[str, Any], *, keep_audio: bool = True,
              now: float | None = None) -> RequestHandle:
        """Send ``setup`` and return the new request's handle.

        Raises:
            S2SError: The connection already ended (the reason it ended).
            LocalProtocolError: The socket takes no such request now.
        """
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        closed = self.closed or self.connection.closed_event
        if closed is not None:
            self._route()
            raise self.close_error(self.closed or closed)
        connection = self.connection
        connection.send_setup(setup, now=now)
        info = connection.protocol.request(setup.client_req_id)
        assert info is not None
        for rid in [rid for rid, h in self._handles.items() if h.ended]:
            del self._handles[rid]  # their consumers keep their handles
        # The first request's call began with the connection; a later one's with its setup.
        origin = connection.started_at if not self._started else connection.now
        self._started += 1
        meter = RequestMeter(setup, origin=origin, opened_at=connection.opened_at)
        handle = RequestHandle(self, setup, info, keep_audio=keep_audio,
                               queue_size=self._queue_size, meter=meter)
        self._handles[setup.client_req_id] = handle
        return handle

    def send_audio(self, handle: RequestHandle, chunks: Sequence[AudioInput], *,
                   now: float | None = None, downmix: bool = False) -> None:
        """Queue ``chunks`` of input audio for ``handle`` (checked once for all).

        ``downmix`` averages the channels of 2-D arrays (``ClientProtocol.send_audio``).

        Raises:
            S2SError: Why the request cannot take audio (see ``check_send``).
            InvalidAudio: A chunk is not valid for the input format.
        """
        handle.check_send("send_audio")
        connection = self.connection
        send, rid = connection.send_audio, handle.client_req_id
        for audio in chunks:
            send(audio, rid, now=now, downmix=downmix)
        handle.meter.sent(chunks, connection.now if now is None else now)

    def send_end_of_stream(self, handle: RequestHandle, *, now: float | None = None) -> None:
        """End ``handle``'s input.

        Raises:
            S2SError: Why the request cannot take it (see ``check_send``).
        """
        handle.check_send("send_end_of_stream")
        self.connection.send_end_of_stream(handle.client_req_id, now=now)

    def fail_input(self, handle: RequestHandle, error: S2SError, *,
                   now: float | None = None) -> None:
        """``handle``'s input could not be sent (bad audio): fail it, close the socket.

        A request that already ended keeps its own reason.
        """
        if handle.ended:
            return
        handle._end(error, self.connection.now if now is None else now)
        self._queue_wake(handle)
        self.close(1000, "bad input", now=now)

    def close(self, code: int = 1000, reason: str = "", *, now: float | None = None) -> None:
        """Start the closing handshake; nobody consumes queued events any more."""
        self.discarding = True
        self.connection.close(code, reason, now=now)
        self._route()

    # -- transport inputs (each routes what it produced) --

    def receive_data(self, data: bytes, *, now: float | None = None) -> None:
        """Bytes read from the transport."""
        self.connection.receive_data(data, now=now)
        self._route()

    def receive_eof(self, *, now: float | None = None) -> None:
        """The transport has no more data."""
        self.connection.receive_eof(now=now)
        self._route()

    def transport_failed(self, exc: BaseException, *, now: float | None = None) -> None:
        """The transport broke."""
        self.connection.transport_failed(exc, now=now)
        self._route()

    def handle_timer(self, now: float) -> None:
        """Run the connection's timers due at ``now``."""
        self.connection.handle_timer(now)
        self._route()

    # -- outputs --

    def handles_to_wake(self) -> list[RequestHandle]:
        """Requests that got events or ended since the last call."""
        woken, self._to_wake = self._to_wake, []
        for handle in woken:
            handle._wake_queued = False
        return woken

    @property
    def saturated(self) -> bool:
        """A live request's queue is full: stop reading until it drains."""
        return self._saturated > 0 and not self.discarding

    def close_error(self, closed: Closed, request_id: str | None = None) -> S2SError:
        """The error a close stands for (an unscoped ``error`` before it explains it)."""
        if self.socket_error is not None:
            return error_from_event(self.socket_error, request_id)
        return error_from_event(closed, request_id)

    def live(self) -> list[RequestHandle]:
        """Requests that may still get events."""
        return [h for h in self._handles.values() if not h.ended]

    # -- routing: the core's rule --

    def _route(self) -> None:
        handles = self._handles
        connection = self.connection
        now = connection.now  # the time of the input that produced the events
        for event in connection.events_received():
            kind = type(event)
            if kind is Closed:
                self._on_closed(event, now)  # type: ignore[arg-type]
                continue
            if kind is UnknownMessage:
                targets = self._unscoped_targets()[:1]
            else:
                rid = event.client_req_id  # type: ignore[union-attr]
                handle = handles.get(rid)
                if kind is ErrorMessage and rid is None:
                    targets = self._error_targets(event)  # type: ignore[arg-type]
                elif handle is not None and not handle.ended:
                    targets = [handle]
                elif rid is None:
                    targets = self._unscoped_targets()
                else:
                    targets = []  # the core only lets through events of live requests
            for handle in targets:
                if not handle.ended:
                    handle._put(event, now)  # type: ignore[arg-type]
                    self._queue_wake(handle)

    def _unscoped_targets(self) -> list[RequestHandle]:
        """The request an id-less message belongs to: the unscoped one, else the only live one."""
        handle = self._handles.get(None)
        if handle is not None and not handle.ended:
            return [handle]
        live = self.live()
        return live if len(live) == 1 else live[:1]

    def _error_targets(self, event: ErrorMessage) -> list[RequestHandle]:
        """Every request the core failed with this unscoped error (all live ones, or one)."""
        targets = [h for h in self._handles.values() if not h.ended and h._info.error is event]
        if len(targets) != 1:
            self.socket_error = event  # about the socket: it explains the close to come
        return targets

    def _on_closed(self, event: Closed, now: float) -> None:
        self.closed = event
        for handle in self._handles.values():
            if not handle.ended:
                handle._end(self.close_error(event, handle.collector.request_id), now)
                self._queue_wake(handle)

    def _queue_wake(self, handle: RequestHandle) -> None:
        if not handle._wake_queued:
            handle._wake_queued = True
            self._to_wake.append(handle)
