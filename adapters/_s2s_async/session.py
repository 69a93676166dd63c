"""Connections, requests and sessions over any ``Backend`` (anyio or trio).

A ``Connection`` owns the transport and a ``ClientConnection`` core, and runs
two tasks: a reader (reads >= 64 KiB at a time, feeds the core, routes the
events to each request's bounded channel) and a timer (sleeps until the
core's next deadline). Writes are coalesced under one lock. Nothing here
knows the protocol: the core does.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from s2s_core.connection import ClientConnection, ConnectionState

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup
from s2s_core.errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    LocalProtocolError,
    S2SError,
)
from s2s_core.events import (
    Closed,
    ErrorMessage,
    Ready,
    ServerEvent,
)
from s2s_core.protocol import AudioInput
from s2s_core.proxy import ProxyConfig, proxy_for
from s2s_core.request_state import RequestTracker
from s2s_core.results import S2SResult, TextWithTimestamps, error_from_event
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url

from .backend import Backend
from .common import SessionBase
from .primitives import Inbox, Mutex

__all__ = ["Connection", "Request", "Session", "open_connection", "unwrap_group"]

READ_SIZE = 256 * 1024


class Request:
    """One request on a connection: send its audio, iterate its events.

    Iteration yields ``Ready``, ``Text``, ``Audio``, ``UnknownMessage`` and
    finally ``EndOfStream``, then stops. A server ``error`` raises the
    matching ``ServerError``; a connection that ends first raises
    ``ConnectionClosedError`` (or the timeout or protocol error that ended
    it). Every error carries ``partial_result`` with what arrived before;
    events that arrived before a failure are yielded before it is raised.
    """

    def __init__(self, conn: Connection, setup: Setup, *, queue_size: int,
                 keep_audio: bool) -> None:
        self._conn = conn
        self.setup = setup
        self.client_req_id = setup.client_req_id
        self._track = RequestTracker(setup.output_format, keep_audio=keep_audio)
        self.collector = self._track.collector
        self._inbox: Inbox[ServerEvent] = Inbox(conn.backend, queue_size)
        self._ready_event = conn.backend.event()
        self._ended = False  # reader side: nothing more will be queued
        self._iterating = False
        self._unyielded = 0

    # -- sending --

    async def send_audio(self, audio: AudioInput) -> None:
        """Send one chunk of input audio (bytes in the input format, or samples)."""
        self._queue_audio(audio)
        await self._flush("send_audio")

    def _queue_audio(self, audio: AudioInput) -> None:
        """Hand a chunk to the core; it goes out with the next flush."""
        self._queue_audio_many((audio,))

    def _queue_audio_many(self, chunks: Sequence[AudioInput]) -> None:
        """Hand several chunks to the core at once (one check: nothing runs in between)."""
        self._check_send("send_audio")
        conn = self._conn
        send, rid, now = conn.core.send_audio, self.client_req_id, conn.backend.current_time()
        for audio in chunks:
            send(audio, rid, now=now)

    async def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        self._check_send("send_end_of_stream")
        conn = self._conn
        conn.core.send_end_of_stream(self.client_req_id, now=conn.backend.current_time())
        await self._flush("send_end_of_stream")

    send_eos = send_end_of_stream

    def _check_send(self, what: str) -> None:
        core = self._conn.core
        self._track.check_send(what, core.protocol.request(self.client_req_id),
                               core.closed_event)

    async def _flush(self, what: str) -> None:
        try:
            await self._conn.flush()
        except ConnectionClosedError:
            # A failed write: the reader is about to tell how the connection
            # ended (and drain what arrived first); raise that, not the symptom.
            backend = self._conn.backend
            with backend.move_on_at(backend.current_time() + 2.0):
                await self._conn.closed.wait()
            self._check_send(what)
            raise

    # -- receiving --

    @property
    def ready(self) -> Ready | None:
        """The server's ``ready``, once received."""
        return self.collector.ready

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments received so far (in iteration order)."""
        return self.collector.texts

    async def wait_ready(self) -> Ready:
        """Wait for ``ready`` (events before it stay queued for iteration).

        Raises:
            S2SError: The request failed before ready (timeout, error, close).
        """
        await self._ready_event.wait()
        if self.collector.ready is None:
            raise self._track.failure()
        return self.collector.ready

    async def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        track = self._track
        if track.finished:
            if self.collector.error is not None:
                raise self.collector.error
            return None
        inbox = self._inbox
        if len(inbox):
            # Taken without waiting: yield now and then, to stay cancellable and
            # fair (before taking, so a cancellation loses nothing).
            self._unyielded += 1
            if self._unyielded >= 32:
                self._unyielded = 0
                await self._conn.backend.checkpoint()
        else:
            await inbox.wait_readable()
            self._unyielded = 0
            if not len(inbox):
                # A closed inbox returns without a schedule point: take one, so a
                # cancelled caller gets its cancellation, not the close it caused.
                await self._conn.backend.checkpoint()
                raise track.failure()
        return track.consume(inbox.pop())

    def __aiter__(self) -> AsyncIterator[ServerEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ServerEvent]:
        if self._iterating:
            raise LocalProtocolError("this request is already being iterated by another consumer")
        self._iterating = True
        try:
            while True:
                event = await self.receive()
                if event is None:
                    return
                yield event
        finally:
            self._iterating = False

    async def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        if self._iterating:
            raise LocalProtocolError("this request is already being iterated by another consumer")
        self._iterating = True
        try:
            while await self.receive() is not None:
                pass
        finally:
            self._iterating = False
        return self.collector.result()

    # -- called by the connection's reader --

    async def _deliver(self, event: ServerEvent) -> None:
        if self._ended:
            return
        ends = self._track.delivered(event)
        if type(event) is Ready:
            self._ready_event.set()
        await self._inbox.put(event)
        if ends:
            self._end(None)

    def _try_deliver(self, event: ServerEvent) -> bool:
        """Deliver without waiting; False (nothing changed) when the inbox is full."""
        if self._ended:
            return True
        if not self._inbox.put_nowait(event):
            return False
        ends = self._track.delivered(event)
        if type(event) is Ready:
            self._ready_event.set()
        if ends:
            self._end(None)
        return True

    def _deliver_nowait(self, event: ServerEvent) -> None:
        """Deliver if there is room (the connection is closing; nobody waits)."""
        if self._ended:
            return
        ends = self._track.delivered(event)
        if type(event) is Ready:
            self._ready_event.set()
        self._inbox.put_nowait(event)  # dropped when full: the connection is going away
        if ends:
            self._end(None)

    def _end(self, error: S2SError | None) -> None:
        """Nothing more will be queued (``error``: why the connection ended first)."""
        if error is not None:
            self._track.ended(error)
        self._ended = True
        self._inbox.close()
        self._ready_event.set()


class Connection:
    """One WebSocket to the S2S endpoint and the requests running on it."""

    def __init__(self, backend: Backend, stream: Any, core: ClientConnection, *,
                 queue_size: int) -> None:
        self.backend = backend
        self.core = core
        self._stream = stream
        self._queue_size = queue_size
        self._write_lock = Mutex(backend)
        self._requests: dict[str | None, Request] = {}
        self._timer_wakeup = backend.event()
        self._write_wakeup = backend.event()
        self._route_lock = Mutex(backend)
        self._discarding = False
        self._delivery_scope: Any = None
        self.closed = backend.event()
        self.closed_event: Closed | None = None
        self._transport_closed = False
        self._write_error: BaseException | None = None
        self._close_wait = (core.close_timeout or 5.0) + 1.0
        self._orphan_error: ErrorMessage | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.core!r}>"

    # -- requests --

    async def start(self, setup: Setup | Mapping[str, Any], *, keep_audio: bool = True) -> Request:
        """Start a request on this connection (several need distinct client_req_ids)."""
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        if self.closed_event is not None or self.core.closed_event is not None:
            await self._route_events()  # what the server said before closing is the reason
            if self._orphan_error is not None:
                raise error_from_event(self._orphan_error)
            closed = self.closed_event or self.core.closed_event
            assert closed is not None
            raise error_from_event(closed)
        self.core.send_setup(setup, now=self.backend.current_time())
        request = Request(self, setup, queue_size=self._queue_size, keep_audio=keep_audio)
        self._requests[setup.client_req_id] = request
        self._wake_timer()
        await self.flush()
        return request

    async def send_end_of_stream(self) -> None:
        """Send the unscoped end_of_stream that asks the server to close a reused socket."""
        self.core.send_end_of_stream(None, now=self.backend.current_time())
        await self.flush()

    # -- bytes --

    async def flush(self) -> None:
        """Write whatever the core has to send (the caller waits: backpressure)."""
        if not self.core.has_data_to_send:
            return
        async with self._write_lock:
            await self._write_pending()

    async def _write_pending(self) -> None:
        """Send the core's outbox; call with the write lock held."""
        while not self._transport_closed:
            if self._write_error is not None:
                self.core.data_to_send()  # nowhere to go
                raise ConnectionClosedError(1006, "", f"write failed: {self._write_error!r}")
            data = self.core.data_to_send()
            if not data:
                return
            try:
                await self.backend.send_all(self._stream, data)
            except self.backend.cancelled_class():
                # A write cut short leaves the stream in an unknown state.
                self.core.transport_failed(ConnectionAbortedError("write cancelled"))
                self._wake_timer()
                raise
            except self.backend.transport_errors as exc:
                # The reader still drains what the peer sent before it went away,
                # then reports the close; a write error must not lose that data.
                self._write_error = exc
                return

    def _kick_writer(self) -> None:
        if self.core.has_data_to_send:
            self._write_wakeup.set()

    async def writer(self) -> None:
        """Send what the reader and timer produce (pongs, close echoes), so they never block."""
        while True:
            await self._write_wakeup.wait()
            self._write_wakeup = self.backend.event()
            async with self._write_lock:
                try:
                    await self._write_pending()
                except ConnectionClosedError:
                    return
            if self.core.state is ConnectionState.CLOSED or self._transport_closed:
                return

    async def reader(self) -> None:
        """Read, feed the core, route events; until the connection is closed."""
        backend, core = self.backend, self.core
        try:
            while core.state is not ConnectionState.CLOSED:
                try:
                    data = await backend.receive_some(self._stream, READ_SIZE)
                except backend.transport_errors as exc:
                    core.transport_failed(exc, now=backend.current_time())
                    data = None
                else:
                    if data:
                        core.receive_data(data, now=backend.current_time())
                    else:
                        core.receive_eof(now=backend.current_time())
                self._kick_writer()
                await self._route_events()
        finally:
            if core.state is not ConnectionState.CLOSED:
                # Cancelled (the caller's scope ended): the socket goes now, no handshake.
                core.transport_failed(ConnectionAbortedError("reader cancelled"),
                                      now=backend.current_time())
            self._route_events_nowait()
            await self._close_transport()

    def _route_events_nowait(self) -> None:
        """Deliver what the core still holds without waiting (room permitting)."""
        for event in self.core.events_received():
            if isinstance(event, Closed):
                self._on_closed(event)
                continue
            request = self._route(getattr(event, "client_req_id", None))
            if request is not None:
                request._deliver_nowait(event)

    async def timer(self) -> None:
        """Run the core's timers at its deadlines."""
        backend, core = self.backend, self.core
        while core.state is not ConnectionState.CLOSED:
            deadline = core.next_deadline()
            with backend.move_on_at(math.inf if deadline is None else deadline):
                await self._timer_wakeup.wait()
            if self._timer_wakeup.is_set():
                self._timer_wakeup = backend.event()
            core.handle_timer(backend.current_time())
            self._kick_writer()
            await self._route_events()
        await self._close_transport()

    def _wake_timer(self) -> None:
        self._timer_wakeup.set()

    async def _route_events(self) -> None:
        """Deliver the core's events in order (one router at a time keeps the order).

        The common case takes no lock and no await: every inbox has room.
        From the first full inbox on, the rest wait their turn under the lock.
        """
        events = self.core.events_received()
        if not self._route_lock.locked():
            done = 0
            for event in events:
                if isinstance(event, Closed) or self._discarding:
                    break
                request = self._route(getattr(event, "client_req_id", None))
                if request is None or not request._try_deliver(event):
                    break
                done += 1
            if done == len(events):
                return
            events = events[done:]
        async with self._route_lock:
            for event in events:
                if isinstance(event, Closed):
                    self._on_closed(event)
                    continue
                request = self._route(getattr(event, "client_req_id", None))
                if request is None:
                    if isinstance(event, ErrorMessage):
                        self._orphan_error = event  # e.g. a bad key, before any request
                    continue
                if self._discarding:
                    request._deliver_nowait(event)
                    continue
                with self.backend.move_on_at(math.inf) as scope:
                    self._delivery_scope = scope
                    await request._deliver(event)
                self._delivery_scope = None
                if scope.cancelled_caught:
                    request._deliver_nowait(event)

    def _route(self, client_req_id: str | None) -> Request | None:
        request = self._requests.get(client_req_id)
        if request is None and client_req_id is None:
            live = [r for r in self._requests.values() if not r._ended]
            if live:
                return live[0]
        return request

    def _on_closed(self, event: Closed) -> None:
        self.closed_event = event
        for request in self._requests.values():
            if not request._ended:
                request._end(error_from_event(event, request.collector.request_id))
        self.closed.set()
        self._wake_timer()

    async def _close_transport(self) -> None:
        if self._transport_closed:
            return
        backend = self.backend
        with backend.cancel_shielded():
            if self.core.has_data_to_send:
                # Last words (a close echo) go out before the socket closes.
                with backend.move_on_at(backend.current_time() + 1.0):
                    async with self._write_lock:
                        with suppress(ConnectionClosedError):
                            await self._write_pending()
            self._transport_closed = True
            self._write_wakeup.set()
            await backend.aclose_forcefully(self._stream)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket (closing handshake, bounded by the close timeout)."""
        core = self.core
        # Nobody will read what is still queued: stop waiting to deliver it.
        self._discarding = True
        if self._delivery_scope is not None:
            self._delivery_scope.cancel()
        if core.state is not ConnectionState.CLOSED:
            core.close(code, reason, now=self.backend.current_time())
            self._wake_timer()
            with contextlib.suppress(ConnectionClosedError):
                await self.flush()  # on failure the reader reports how the connection ended
            # The core's close timeout ends this; the bound covers a reader already gone.
            backend = self.backend
            with backend.move_on_at(backend.current_time() + self._close_wait):
                await self.closed.wait()
        await self._close_transport()


class Session(SessionBase["Connection", Request]):
    """A connection with its one request (what ``connect`` and ``s2s_realtime`` give).

    Send with ``send_audio``/``send_end_of_stream``, iterate with
    ``async for event in session``; ``connection`` and ``request`` give the
    layers below.
    """

    async def wait_ready(self) -> Ready:
        """Wait for ``ready``."""
        return await self.request.wait_ready()

    async def send_audio(self, audio: AudioInput) -> None:
        """Send one chunk of input audio."""
        await self.request.send_audio(audio)

    async def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        await self.request.send_end_of_stream()

    send_eos = send_end_of_stream

    async def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``."""
        return await self.request.receive()

    def __aiter__(self) -> AsyncIterator[ServerEvent]:
        return self.request.__aiter__()

    async def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        return await self.request.result()

    async def close(self) -> None:
        """Close the connection (the closing handshake, bounded by its timeout)."""
        await self.connection.aclose()


def _describe(exc: BaseException) -> str:
    """An exception's text, with its cause's (trio wraps TLS errors)."""
    if str(exc):
        return str(exc)
    cause = exc.__cause__ or exc.__context__  # trio's BrokenResourceError wraps the SSL error
    return f"{type(exc).__name__}: {cause}" if cause is not None else type(exc).__name__


def _early_failure(core: ClientConnection) -> S2SError:
    """Why a connection ended during the upgrade (an auth error arrives just after it)."""
    closed = core.closed_event
    assert closed is not None
    for event in core.events_received():
        if isinstance(event, ErrorMessage):
            return error_from_event(event)
    return error_from_event(closed)


def unwrap_group(exc: BaseException, cancelled: type[BaseException]) -> BaseException:
    """The one meaningful exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner: list[BaseException] = [e for e in exc.exceptions if not isinstance(e, cancelled)]
        if len(inner) != 1:
            first: BaseException = exc.exceptions[0]
            return first if not inner else exc
        exc = inner[0]
    return exc


@asynccontextmanager
async def open_connection(
    backend: Backend,
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
    proxy: str | ProxyConfig | None = None,
    trust_env: bool = True,
) -> AsyncIterator[Connection]:
    """Open a WebSocket to ``url`` and run its tasks until the block exits.

    ``proxy`` (else, with ``trust_env``, the proxy environment variables)
    chooses a proxy to tunnel through: ``s2s_core.proxy.proxy_for``.
    """
    target = parse_ws_url(url, token=token)
    if target.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    now = backend.current_time()
    core = ClientConnection(url, api_key=api_key, token=token, extra_headers=extra_headers,
                            ready_timeout=ready_timeout, idle_timeout=idle_timeout,
                            close_timeout=close_timeout, ping_interval=ping_interval,
                            ping_timeout=ping_timeout, max_message_size=max_message_size,
                            now=now)
    deadline = math.inf if connect_timeout is None else now + connect_timeout
    stream = None
    with backend.move_on_at(deadline) as scope:
        try:
            stream = await backend.connect(target, ssl_context if target.secure else None,
                                           proxy_for(url, proxy=proxy, trust_env=trust_env))
        except ConnectError:
            raise  # a proxy's refusal, already typed
        except backend.transport_errors as exc:
            raise ConnectError(f"cannot connect to {target.host_header}: "
                               f"{_describe(exc)}") from exc
        try:
            await backend.send_all(stream, core.data_to_send())
            while core.state is ConnectionState.CONNECTING:
                data = await backend.receive_some(stream, READ_SIZE)
                if data:
                    core.receive_data(data, now=backend.current_time())
                else:
                    core.receive_eof(now=backend.current_time())
        except backend.transport_errors as exc:
            core.transport_failed(exc)
        except BaseException:
            with backend.cancel_shielded():
                await backend.aclose_forcefully(stream)
            raise
    if scope.cancelled_caught or core.state is ConnectionState.CLOSED:
        if stream is not None:
            with backend.cancel_shielded():
                await backend.aclose_forcefully(stream)
        if scope.cancelled_caught:
            raise ConnectTimeout(f"connecting to {target.host_header} took more than "
                                 f"{connect_timeout} s")
        raise _early_failure(core)
    conn = Connection(backend, stream, core, queue_size=queue_size)
    failure: BaseException | None = None
    try:
        async with backend.task_group() as tasks:
            tasks.start_soon(conn.reader)
            tasks.start_soon(conn.timer)
            tasks.start_soon(conn.writer)
            try:
                # Bytes that came with the upgrade response may hold events.
                await conn.flush()
                await conn._route_events()
                yield conn
            finally:
                with backend.cancel_shielded():
                    await conn.aclose()
                tasks.cancel_scope.cancel()
    except BaseException as exc:
        failure = unwrap_group(exc, backend.cancelled_class())
    if failure is not None:
        raise failure
