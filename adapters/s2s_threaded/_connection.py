"""Connections, requests and sessions for plain threads.

A ``Connection`` owns the socket and a ``ClientConnection`` core, and runs
ONE background thread, the reader: it waits (``selectors``) on the socket
and a wake-up socketpair with the core's next deadline as timeout, reads
>= 64 KiB at a time, feeds the core, runs its timers and routes the events
to each request's bounded queue. Application threads write their own data.
Nothing here knows the protocol: the core does.

Locks: ``_lock`` guards every call into the core (it is not thread-safe) and
is never held while blocking; ``_write_lock`` orders writes to the socket and
is taken before ``_lock``, never after it.
"""

from __future__ import annotations

import contextlib
import enum
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from s2s_core.connection import ClientConnection, ConnectionState
from s2s_core.errors import ConnectionClosedError, LocalProtocolError, S2SError
from s2s_core.events import Audio, Closed, EndOfStream, ErrorMessage, Ready, ServerEvent, Text
from s2s_core.protocol import AudioInput
from s2s_core.results import ResultCollector, S2SResult, TextWithTimestamps, error_from_event
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url

from ._transport import READ_SIZE, connect_websocket

__all__ = ["Connection", "Request", "Session", "open_connection"]

_SLICE = 0.5
"""Longest single wait, so Ctrl-C is seen promptly even where lock waits ignore it."""
_LAST_WORDS_S = 1.0
_JOIN_S = 5.0


class _Signal(enum.Enum):
    END = "end"
    TIMEOUT = "timeout"


_Item = ServerEvent | Literal[_Signal.END]


class _Inbox(queue.Queue[_Item]):
    """A request's bounded event queue; the reader's ``put`` blocks when it is full."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self._bound = maxsize
        self._released = False

    def unbound(self) -> None:
        """Stop bounding for good: a blocked ``put`` returns (nobody waits for room anymore)."""
        with self.not_full:
            self._released = True
            self.maxsize = sys.maxsize
            self.not_full.notify_all()

    def set_bounded(self, bounded: bool) -> None:
        """Lift (False) or restore (True) the bound."""
        with self.not_full:
            if not self._released:
                self.maxsize = self._bound if bounded else sys.maxsize
                self.not_full.notify_all()


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
        self.collector = ResultCollector(setup.output_format)
        self._keep_audio = keep_audio
        self._inbox = _Inbox(queue_size)
        self._ready_event = threading.Event()
        self._terminal: S2SError | None = None
        self._ended = False  # reader side: nothing more will be queued
        self._finished = False  # consumer side: iteration is over
        self._iterating = False

    # -- sending --

    def send_audio(self, audio: AudioInput) -> None:
        """Send one chunk of input audio (bytes in the input format, or samples).

        Blocks while the socket cannot take more (backpressure).
        """
        self._check_open("send_audio")
        conn = self._conn
        with conn._lock:
            conn.core.send_audio(audio, self.client_req_id, now=time.monotonic())
        conn.flush()

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
        if self._finished or self._terminal is not None:
            error = self._terminal or self.collector.error
            if error is not None:
                raise error
            raise LocalProtocolError(f"cannot {what}: the request has ended")

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
            raise self._failure()
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
        if self._finished:
            if self.collector.error is not None:
                raise self.collector.error
            return None
        item = self._get(deadline)
        if item is _Signal.TIMEOUT:
            return item
        if item is _Signal.END:
            self._finished = True
            raise self._failure()
        kind = type(item)
        if kind is Audio:
            if self._keep_audio:
                self.collector.add(item)
        elif kind is Text:
            self.collector.add(item)
        elif kind is EndOfStream:
            self.collector.add(item)
            self._finished = True
        elif isinstance(item, ErrorMessage):
            self._finished = True
            raise self.collector.fail(error_from_event(item, self.collector.request_id))
        return item

    def _get(self, deadline: float | None) -> _Item | Literal[_Signal.TIMEOUT]:
        inbox = self._inbox
        while True:
            if deadline is None:
                wait = _SLICE
            else:
                wait = min(_SLICE, deadline - time.monotonic())
                if wait <= 0:
                    try:
                        return inbox.get_nowait()
                    except queue.Empty:
                        return _Signal.TIMEOUT
            try:
                return inbox.get(timeout=wait)
            except queue.Empty:
                continue

    def _failure(self) -> S2SError:
        if self.collector.error is not None:
            return self.collector.error
        error = self._terminal or ConnectionClosedError(1006, "", "the request ended unexpectedly")
        return self.collector.fail(error)

    def _input_failed(self, error: S2SError) -> None:
        """(consumer) Our input could not be sent: fail the request unless it already ended."""
        conn = self._conn
        with conn._lock:
            closing = conn.core.state is not ConnectionState.OPEN
        # Otherwise the reader is about to deliver the real reason.
        if not closing and not self._ended:
            self._end(error)
            conn.close(1000, "bad input")

    # -- called by the connection's reader --

    def _deliver(self, event: ServerEvent) -> None:
        if self._ended:
            return  # nobody reads past the end
        if type(event) is Ready:
            self.collector.ready = event
            self._ready_event.set()
        if type(event) in (EndOfStream, ErrorMessage):
            self._ended = True
        self._inbox.put(event)  # blocks while full: backpressure on the socket
        if self._ended:
            self._ready_event.set()

    def _end(self, error: S2SError) -> None:
        with self._conn._lock:
            if self._terminal is None:
                self._terminal = error
            self._ended = True
        self._inbox.unbound()
        self._inbox.put(_Signal.END)
        self._ready_event.set()


class Connection:
    """One WebSocket to the S2S endpoint and the requests running on it.

    Every method may be called from any thread; each request should be
    consumed by one thread.
    """

    def __init__(self, sock: socket.socket, core: ClientConnection, *, queue_size: int,
                 close_timeout: float | None) -> None:
        self.core = core
        self._sock = sock
        self._queue_size = queue_size
        self._close_timeout = close_timeout
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._requests: dict[str | None, Request] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._write_failed = False
        self._transport_closed = False
        self._reader = threading.Thread(target=self._run, name=f"s2s-reader-{id(self):x}",
                                        daemon=True)
        self._unclaimed_error: ErrorMessage | None = None
        self.closed = threading.Event()
        self.closed_event: Closed | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.core!r}>"

    def _start(self) -> None:
        self._reader.start()

    # -- requests --

    def start(self, setup: Setup | Mapping[str, Any], *, keep_audio: bool = True) -> Request:
        """Start a request on this connection (several need distinct client_req_ids)."""
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        if self.closed_event is not None:
            raise self._closed_error()
        request = Request(self, setup, queue_size=self._queue_size, keep_audio=keep_audio)
        with self._lock:
            closed = self.core.state is ConnectionState.CLOSED
            if not closed:
                self.core.send_setup(setup, now=time.monotonic())
                for key in [k for k, r in self._requests.items() if r._ended]:
                    del self._requests[key]
                self._requests[setup.client_req_id] = request
        if closed:
            _wait(self.closed, _JOIN_S)  # the reader is routing the reason
            raise self._closed_error()
        self._wake()  # the ready deadline may be earlier than the reader's
        self.flush()
        return request

    def _closed_error(self) -> S2SError:
        if self._unclaimed_error is not None:
            return error_from_event(self._unclaimed_error)
        closed = self.closed_event or self.core.closed_event
        if closed is None or closed.error is None:
            code, reason = (1006, "") if closed is None else (closed.code, closed.reason)
            return ConnectionClosedError(code, reason, "the connection is closed")
        return closed.error

    def send_end_of_stream(self) -> None:
        """Send the unscoped end_of_stream that asks the server to close a reused socket."""
        with self._lock:
            self.core.send_end_of_stream(None, now=time.monotonic())
        self.flush()

    # -- writing (application threads) --

    def flush(self) -> None:
        """Write whatever the core has to send (the caller waits: backpressure)."""
        self._flush()

    def _flush(self, *, blocking: bool = True, timeout: float = -1) -> bool:
        """Write until the outbox is empty; False if the write lock was busy."""
        # Whoever holds the write lock may have missed bytes queued after its
        # last drain: re-check after every release so none are stranded.
        while self._has_data():
            if not self._write_lock.acquire(blocking, timeout):
                return False
            try:
                self._write_pending()
            finally:
                self._write_lock.release()
        return True

    def _has_data(self) -> bool:
        with self._lock:
            return self.core.has_data_to_send

    def _write_pending(self) -> None:
        """Send the core's outbox; call with the write lock held."""
        while True:
            with self._lock:
                data = self.core.data_to_send()
            if not data:
                return
            if self._write_failed or self._transport_closed:
                continue  # nowhere to write: drop it
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self._write_failed = True
                with self._lock:
                    self.core.transport_failed(exc, now=time.monotonic())
                self._wake()
            except BaseException:
                # A write cut short (Ctrl-C) leaves the stream in an unknown state.
                self._write_failed = True
                with self._lock:
                    self.core.transport_failed(ConnectionAbortedError("write interrupted"),
                                               now=time.monotonic())
                self._wake()
                raise

    def _wake(self) -> None:
        # Full: the reader wakes anyway. Closed: the reader is gone.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the reader thread --

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while True:
                self._flush(blocking=False)
                if self._route_events():
                    break
                with self._lock:
                    deadline = self.core.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        self._read()
                with self._lock:
                    self.core.handle_timer(time.monotonic())
        except BaseException as exc:
            # A bug here must not leave requests waiting forever.
            with self._lock:
                self.core.transport_failed(exc, now=time.monotonic())
            self._route_events()
            raise
        finally:
            selector.close()
            if not self.closed.is_set():
                self._on_closed(Closed(code=1006, error=ConnectionClosedError(
                    1006, "", "the connection's reader stopped")))
            self._close_transport()
            self._wake_r.close()
            self._wake_w.close()

    def _read(self) -> None:
        sock = self._sock
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except OSError as exc:
                with self._lock:
                    self.core.transport_failed(exc, now=time.monotonic())
                return
            with self._lock:
                if data:
                    self.core.receive_data(data, now=time.monotonic())
                else:
                    self.core.receive_eof(now=time.monotonic())
            # Bytes TLS already decrypted are invisible to select().
            if not data or not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _route_events(self) -> bool:
        """Deliver the core's events in order; whether the connection is closed."""
        with self._lock:
            events = self.core.events_received()
            closed = self.core.state is ConnectionState.CLOSED
        for event in events:
            if isinstance(event, Closed):
                self._on_closed(event)
                continue
            with self._lock:
                request = self._route(getattr(event, "client_req_id", None))
            if request is not None:
                request._deliver(event)
            elif type(event) is ErrorMessage and event.client_req_id is None:
                # Sent before any request (bad key): it explains the close to come.
                self._unclaimed_error = event
        return closed

    def _route(self, client_req_id: str | None) -> Request | None:
        request = self._requests.get(client_req_id)
        if client_req_id is None and (request is None or request._ended):
            live = [r for r in self._requests.values() if not r._ended]
            if live:
                return live[0]
        return request

    def _on_closed(self, event: Closed) -> None:
        self.closed_event = event
        with self._lock:
            requests = list(self._requests.values())
        reason = self._unclaimed_error or event
        for request in requests:
            if not request._ended:
                request._end(error_from_event(reason, request.collector.request_id))
        self.closed.set()

    def _close_transport(self) -> None:
        """(reader, at exit) Last words (a close echo), then close the socket."""
        self._flush(timeout=_LAST_WORDS_S)
        self._shutdown()
        # Holding the write lock, no writer is inside sendall: the fd can go.
        with self._write_lock:
            self._transport_closed = True
            self._sock.close()

    def _shutdown(self) -> None:
        """Unblock every thread using the socket (reads see EOF, writes fail)."""
        # The plain socket's method: SSLSocket's would drop its TLS state
        # while other threads may still be inside it.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    # -- closing --

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket (closing handshake, bounded by the close timeout).

        Wakes every blocked call: iterators get the request's error (or end),
        the reader thread exits and the socket is closed. Idempotent; callable
        from any thread.
        """
        with self._lock:
            requests = list(self._requests.values())
        for request in requests:
            request._inbox.unbound()  # a reader blocked on a full queue moves on
        try:
            with self._lock:
                if self.core.state is not ConnectionState.CLOSED:
                    self.core.close(code, reason, now=time.monotonic())
            self._wake()
            budget = None if self._close_timeout is None else self._close_timeout + 1.0
            # A writer stuck on a peer that does not read must not hold us here:
            # it sends our close frame itself once it gets through.
            self._flush(timeout=-1 if budget is None else budget)
            if not _wait(self.closed, budget):
                self._shutdown()
            self._join()
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        """Drop the transport without a closing handshake (Ctrl-C on the way out)."""
        self._shutdown()
        self._join()

    def _join(self) -> None:
        if threading.current_thread() is self._reader or not self._reader.is_alive():
            return
        deadline = time.monotonic() + _JOIN_S
        while self._reader.is_alive() and time.monotonic() < deadline:
            self._reader.join(_SLICE)
        if self._reader.is_alive():
            self._shutdown()
            self._reader.join(_JOIN_S)


def _wait(event: threading.Event, timeout: float | None) -> bool:
    """``event.wait`` in short slices (Ctrl-C stays prompt everywhere)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = _SLICE if deadline is None else min(_SLICE, deadline - time.monotonic())
        if event.wait(max(wait, 0.0)):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class Session:
    """A connection with its one request (what ``connect`` and ``s2s_realtime`` give).

    Send with ``send_audio``/``send_end_of_stream``, iterate with
    ``for event in session``; ``connection`` and ``request`` give the layers
    below. Sending everything before reading can stall on a large input
    (the server stops reading while its replies wait): send from one thread
    and iterate in another, or use ``S2SClient.s2s_stream``.
    """

    def __init__(self, conn: Connection, request: Request) -> None:
        self.connection = conn
        self.request = request

    def __repr__(self) -> str:
        return f"<Session {self.connection.core!r}>"

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received."""
        return self.request.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far."""
        return self.request.text_with_timestamps

    def wait_ready(self) -> Ready:
        """Wait for ``ready``."""
        return self.request.wait_ready()

    def send_audio(self, audio: AudioInput) -> None:
        """Send one chunk of input audio."""
        self.request.send_audio(audio)

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        self.request.send_end_of_stream()

    send_eos = send_end_of_stream

    def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``."""
        return self.request.receive()

    def __iter__(self) -> Iterator[ServerEvent]:
        return self.request.__iter__()

    def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        return self.request.result()

    def close(self) -> None:
        """Close the connection (the closing handshake, bounded by its timeout)."""
        self.connection.close()


@contextmanager
def open_connection(
    url: str,
    *,
    api_key: str | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    connect_timeout: float | None = 10.0,
    ready_timeout: float | None = 15.0,
    idle_timeout: float | None = None,
    close_timeout: float | None = 5.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    max_message_size: int | None = 16 * 2**20,
    queue_size: int = 256,
) -> Iterator[Connection]:
    """Open a bare connection for several requests (``conn.start(setup)``); close on exit.

    Arguments as for ``connect``. Leaving the block on Ctrl-C drops the
    socket at once instead of waiting for the closing handshake.
    """
    target = parse_ws_url(url, token=token)
    if target.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    core = ClientConnection(url, api_key=api_key, token=token, extra_headers=extra_headers,
                            ready_timeout=ready_timeout, idle_timeout=idle_timeout,
                            close_timeout=close_timeout, ping_interval=ping_interval,
                            ping_timeout=ping_timeout, max_message_size=max_message_size,
                            now=time.monotonic())
    sock = connect_websocket(core, target, ssl_context if target.secure else None,
                             connect_timeout)
    conn = Connection(sock, core, queue_size=queue_size, close_timeout=close_timeout)
    conn._start()
    try:
        yield conn
    except BaseException as exc:
        if not isinstance(exc, Exception):
            conn._abort()
        raise
    finally:
        conn.close()
