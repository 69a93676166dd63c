"""A connection over any ``Backend`` (anyio or trio): bytes, timers, wake-ups.

A ``Connection`` owns the transport and a ``RequestTable`` (the core's
requests layer over a ``ClientConnection``). Nothing here knows the protocol
or the requests: the core does. Input reaches the table in one of two ways:

- pushed (asyncio): the stream hands each read to the connection in the
  loop's own callback (``PushStream``), writes go straight to the transport,
  and the core's next deadline is one loop timer. No task of its own: per
  message, the only wake-up is the consumer's.
- pulled (trio): three background tasks, apart from the caller's task so
  any task may close the connection: a reader, a timer sleeping until the
  core's next deadline, and a writer for what they produce (pongs, close
  echoes).
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from s2s_core.connection import ClientConnection, ConnectionState
from s2s_core.errors import ConnectError, ConnectionClosedError, ConnectTimeout, S2SError
from s2s_core.options import LAST_WORDS_S, READ_SIZE, READ_SIZE_MIN, ClientOptions
from s2s_core.proxy import proxy_for
from s2s_core.request_table import RequestHandle, RequestTable
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url

from .backend import Backend, Background, Event, PushStream
from .primitives import Mutex
from .request import Request

__all__ = ["Connection", "OpenConnection", "Connector"]

_CLOSED = ConnectionState.CLOSED


class Connection:
    """One WebSocket to the S2S endpoint and the requests running on it.

    Any task may call any method; ``aclose`` (or leaving ``async with``)
    may run in a task other than the one that opened it.
    """

    def __init__(self, backend: Backend, stream: Any, table: RequestTable) -> None:
        self.backend = backend
        self.table = table
        self.core = table.connection
        self.now: Callable[[], float] = backend.clock()
        """The backend's clock, bound once (read on every send and every read)."""
        self.new_event: Callable[[], Event] = backend.event_type()
        """The backend's events, bound once (one is made per wait for events)."""
        self._stream = stream
        self._push: PushStream | None = stream if isinstance(stream, PushStream) else None
        self._write_lock = Mutex(backend)
        self._timer_wakeup = backend.event()
        self._write_wakeup = backend.event()
        self._room: Event | None = None
        self._tasks: list[Background] = []
        self._timer: Any = None  # push mode: the loop timer of the core's next deadline
        self._timer_at = math.inf
        self._paused = False  # push mode: reading paused for a full queue
        self._transport_closed = False
        self._write_failed = False
        self.closed = backend.event()
        """Set once the core has ended the connection (``closed_event`` is its reason)."""

    def __repr__(self) -> str:
        return f"<Connection {self.core!r}>"

    @property
    def closed_event(self) -> Any:
        """The core's ``Closed`` event, once the connection ended."""
        return self.table.closed

    def _run(self) -> None:
        if self._push is not None:
            self._push.set_receiver(self)
            self._wake_timer()
            return
        backend = self.backend
        self._tasks = [backend.start_background(self._reader, "s2s-reader"),
                       backend.start_background(self._timer_task, "s2s-timer"),
                       backend.start_background(self._writer, "s2s-writer")]

    # -- requests --

    async def start(self, setup: Setup | Mapping[str, Any], *, keep_audio: bool = True) -> Request:
        """Start a request on this connection (several need distinct client_req_ids).

        Raises:
            S2SError: The connection already ended (with the reason it ended).
        """
        handle = self.table.start(setup, keep_audio=keep_audio, now=self.now())
        self._wake_timer()  # its ready deadline may be earlier than the timer's
        request = Request(self, handle)
        await self.flush_for(handle, "start")
        return request

    async def send_end_of_stream(self) -> None:
        """Send the unscoped end_of_stream that asks the server to close a reused socket."""
        self.core.send_end_of_stream(None, now=self.now())
        await self.flush()

    # -- bytes out --

    async def flush(self) -> None:
        """Write whatever the core has to send (the caller waits: backpressure).

        Raises:
            ConnectionClosedError: The transport failed.
        """
        push = self._push
        if push is not None:
            if self.core.has_data_to_send:
                self._write_now(push)
            if push.writing_paused and not self._write_failed:
                try:
                    await push.drain()
                except self.backend.transport_errors as exc:
                    self._on_write_error(exc)
        elif self.core.has_data_to_send:
            async with self._write_lock:
                await self._write_pending()
        if self._write_failed:
            raise ConnectionClosedError(1006, "", "write failed")

    async def flush_for(self, handle: RequestHandle, what: str) -> None:
        """``flush`` for a request's send: a failed write raises the request's real reason.

        Raises:
            S2SError: Why the request failed (the peer's error, usually).
        """
        try:
            await self.flush()
        except ConnectionClosedError:
            # The reader may still drain what explains the failure (the core
            # bounds that wait); raise that, not the symptom.
            await self.closed.wait()
            handle.check_send(what)
            raise

    def _write_now(self, push: PushStream) -> None:
        """Push mode: hand the core's outbox to the transport (it never blocks)."""
        data = self.core.data_to_send()
        if not data or self._write_failed or self._transport_closed:
            return  # nowhere to go
        try:
            push.write_nowait(data)
        except self.backend.transport_errors as exc:
            self._on_write_error(exc)

    def _on_write_error(self, exc: BaseException) -> None:
        self._write_failed = True
        self.core.write_failed(exc, now=self.now())
        self._wake_timer()

    async def _write_pending(self) -> None:
        """Send the core's outbox; call with the write lock held."""
        backend, core = self.backend, self.core
        while True:
            data = core.data_to_send()
            if not data:
                return
            if self._write_failed or self._transport_closed:
                continue  # nowhere to go
            try:
                await backend.send_all(self._stream, data)
            except backend.cancelled_class():
                # A write cut short leaves the stream in an unknown state.
                self.table.transport_failed(ConnectionAbortedError("write cancelled"),
                                            now=self.now())
                self._after_input()
                raise
            except backend.transport_errors as exc:
                self._on_write_error(exc)

    async def _writer(self) -> None:
        """Send what the reader and timer produce (pongs, close echoes), so they never block."""
        while not self._transport_closed:
            await self._write_wakeup.wait()
            self._write_wakeup = self.backend.event()
            async with self._write_lock:
                await self._write_pending()

    # -- bytes and time in: pushed (the stream calls these in the loop's callbacks) --

    def data_in(self, data: bytes) -> None:
        """Bytes read."""
        if self.core.state is _CLOSED:
            return  # read with the close; nothing more is taken
        table = self.table
        table.receive_data(data, now=self.now())
        self._after_input()
        if table.saturated and not self._paused and self.core.state is not _CLOSED:
            # A consumer is behind: stop reading (backpressure) until its queue drains.
            self._paused = True
            assert self._push is not None
            self._push.pause_reading()
            self.core.pause_reading(now=self.now())
            self._wake_timer()

    def eof_in(self) -> None:
        """The peer ended its side."""
        if self.core.state is not _CLOSED:
            self.table.receive_eof(now=self.now())
            self._after_input()

    def lost_in(self, exc: BaseException) -> None:
        """The transport broke."""
        if self.core.state is not _CLOSED:
            self.table.transport_failed(exc, now=self.now())
            self._after_input()

    def write_resumed(self) -> None:
        """The transport took our output (``flush`` waits for that itself)."""

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self.core.state is _CLOSED:
            return
        self.table.handle_timer(self.now())
        self._after_input()
        self._wake_timer()

    # -- bytes and time in: pulled (tasks) --

    async def _reader(self) -> None:
        """Read and feed the table until the connection is closed."""
        backend, table, core = self.backend, self.table, self.core
        size = READ_SIZE_MIN
        try:
            while core.state is not _CLOSED:
                if table.saturated:
                    await self._wait_for_room()
                    continue
                try:
                    data = await backend.receive_some(self._stream, size)
                except backend.transport_errors as exc:
                    table.transport_failed(exc, now=self.now())
                else:
                    # Sized to what comes (see READ_SIZE_MIN): the transport
                    # allocates what is asked at each read.
                    if len(data) >= size:
                        size = min(size * 2, READ_SIZE)
                    elif len(data) * 4 < size and size > READ_SIZE_MIN:
                        size //= 2
                    if data:
                        table.receive_data(data, now=self.now())
                    else:
                        table.receive_eof(now=self.now())
                    del data  # not held while the next read waits
                self._after_input()
        finally:
            if core.state is not _CLOSED:
                # Cancelled: the socket goes now, no handshake.
                table.transport_failed(ConnectionAbortedError("reader cancelled"),
                                       now=self.now())
                self._after_input()
            with backend.cancel_shielded():
                await self._close_transport()

    async def _wait_for_room(self) -> None:
        """A consumer is behind: stop reading (backpressure) until its queue drains."""
        backend, table, core = self.backend, self.table, self.core
        core.pause_reading(now=self.now())
        self._wake_timer()
        while table.saturated and core.state is not _CLOSED:
            room = self._room = backend.event()
            await room.wait()
        core.resume_reading(now=self.now())
        self._wake_timer()

    def consumer_took(self) -> None:
        """A consumer took events: reading may resume."""
        if self._paused:
            if not self.table.saturated:
                self._paused = False
                if self.core.state is not _CLOSED:
                    assert self._push is not None
                    self.core.resume_reading(now=self.now())
                    self._push.resume_reading()
                    self._wake_timer()
            return
        room = self._room
        if room is not None and not self.table.saturated:
            self._room = None
            room.set()

    async def _timer_task(self) -> None:
        """Run the core's timers at its deadlines."""
        backend, table, core = self.backend, self.table, self.core
        while core.state is not _CLOSED:
            deadline = core.next_deadline()
            with backend.move_on_at(math.inf if deadline is None else deadline):
                await self._timer_wakeup.wait()
            if self._timer_wakeup.is_set():
                self._timer_wakeup = backend.event()
            table.handle_timer(self.now())
            self._after_input()

    def _wake_timer(self) -> None:
        """The core's next deadline may have moved earlier: the timer must not sleep past it."""
        push = self._push
        if push is None:
            self._timer_wakeup.set()
            return
        if self.core.state is _CLOSED:
            self._cancel_timer()
            return
        deadline = self.core.next_deadline()
        if deadline is not None and deadline < self._timer_at:
            # A later deadline needs no re-arming: the timer runs what is due
            # when it fires, then arms itself for what is next.
            self._cancel_timer()
            self._timer_at = deadline
            self._timer = push.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        timer, self._timer, self._timer_at = self._timer, None, math.inf
        if timer is not None:
            timer.cancel()

    def _after_input(self) -> None:
        """Drain the table's outputs: bytes to the writer, wake-ups to waiters."""
        core = self.core
        if core.has_data_to_send:
            if self._push is not None:
                self._write_now(self._push)
            else:
                self._write_wakeup.set()
        for handle in self.table.handles_to_wake():
            waker = handle.waker
            if waker is not None:
                handle.waker = None
                waker.set()
        if self.table.closed is not None and not self.closed.is_set():
            self.closed.set()
            self._wake_timer()
            self.consumer_took()  # a paused reader sees the end
            if self._push is not None and not self._transport_closed:
                # Last words (a close echo) were just written; they go out first.
                self._transport_closed = True
                self._push.close_soon(LAST_WORDS_S)

    # -- closing --

    async def _close_transport(self) -> None:
        if self._transport_closed and self._push is None:
            return
        backend = self.backend
        if self._push is not None:
            self._cancel_timer()
            self._transport_closed = True
            await backend.aclose_forcefully(self._stream)
            return
        if self.core.has_data_to_send:
            # Last words (a close echo) go out before the socket closes.
            with backend.move_on_at(self.now() + LAST_WORDS_S):
                async with self._write_lock:
                    await self._write_pending()
        self._transport_closed = True
        self._write_wakeup.set()
        await backend.aclose_forcefully(self._stream)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket (closing handshake, bounded by the close timeout).

        Callable from any task, any number of times.
        """
        backend, core = self.backend, self.core
        with backend.cancel_shielded():
            if core.state is not _CLOSED:
                self.table.close(code, reason, now=self.now())
                self._after_input()
                self._wake_timer()
                self.consumer_took()  # nobody consumes any more: no backpressure
                with contextlib.suppress(ConnectionClosedError):
                    await self.flush()  # on failure the reader reports how it ended
                # The core's close deadline ends this wait (the timer runs it).
                deadline = core.next_deadline()
                bound = math.inf if deadline is None else deadline + LAST_WORDS_S
                with backend.move_on_at(bound):
                    await self.closed.wait()
            if self._push is not None and core.state is not _CLOSED:
                # The handshake did not end in time: the socket goes now.
                self.table.transport_failed(ConnectionAbortedError("closed without a reply"),
                                            now=self.now())
                self._after_input()
            await self._close_transport()
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                await task.done.wait()


class OpenConnection:
    """``async with open_connection(...) as conn``: connect on entry, close on exit.

    The exit (or ``conn.aclose()``) may happen in another task than the entry.
    """

    def __init__(self, backend: Backend, url: str, *, api_key: str | None, token: str | None,
                 options: ClientOptions) -> None:
        self._backend = backend
        self._url = url
        self._api_key = api_key
        self._token = token
        self._options = options
        self._conn: Connection | None = None

    async def __aenter__(self) -> Connection:
        self._conn = await _connect(self._backend, self._url, api_key=self._api_key,
                                    token=self._token, options=self._options)
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.aclose()


async def _connect(backend: Backend, url: str, *, api_key: str | None, token: str | None,
                   options: ClientOptions) -> Connection:
    """TCP, TLS, the upgrade, within ``connect_timeout``; then the tasks start.

    ``options.proxy`` (else, with ``options.trust_env``, the proxy
    environment variables) chooses a proxy to tunnel through
    (``s2s_core.proxy.proxy_for``).

    Raises:
        ConnectError: The socket or TLS could not be opened (``ProxyError``:
            the proxy refused).
        ConnectTimeout: It took more than ``connect_timeout``.
        HandshakeRejected: The server refused the upgrade.
        ServerError: The server refused the credentials (error, then close).
        ConnectionClosedError: The connection ended during the upgrade.
    """
    target = parse_ws_url(url, token=token, server_hostname=options.server_hostname)
    proxy = proxy_for(url, proxy=options.proxy, trust_env=options.trust_env)
    ssl_context = options.ssl_context
    if target.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    now = backend.current_time()
    core = ClientConnection(url, api_key=api_key, token=token, now=now,
                            **options.connection_kwargs())
    table = RequestTable(core, queue_size=options.queue_size)
    timeout = options.connect_timeout
    stream = None
    with backend.move_on_at(math.inf if timeout is None else now + timeout) as scope:
        try:
            stream = await backend.connect(target, ssl_context if target.secure else None,
                                           proxy)
        except ConnectError:
            raise  # a proxy's refusal, already typed (ProxyError is an OSError too)
        except backend.transport_errors as exc:
            raise ConnectError(f"cannot connect to {target.host_header}: "
                               f"{_describe(exc)}") from exc
        try:
            await _upgrade(backend, stream, table)
        except BaseException:
            with backend.cancel_shielded():
                await backend.aclose_forcefully(stream)
            raise
    if scope.cancelled_caught or table.closed is not None:
        if stream is not None:
            with backend.cancel_shielded():
                await backend.aclose_forcefully(stream)
        if scope.cancelled_caught:
            raise ConnectTimeout(f"connecting to {target.host_header} took more than "
                                 f"{timeout} s")
        raise _upgrade_failure(table)
    conn = Connection(backend, stream, table)
    conn._run()
    conn._after_input()  # bytes that came with the upgrade response may hold events
    return conn


async def _upgrade(backend: Backend, stream: Any, table: RequestTable) -> None:
    core = table.connection
    try:
        await backend.send_all(stream, core.data_to_send())
        while core.state is ConnectionState.CONNECTING:
            data = await backend.receive_some(stream, READ_SIZE)
            if data:
                table.receive_data(data, now=backend.current_time())
            else:
                table.receive_eof(now=backend.current_time())
        if table.closed is not None and core.has_data_to_send:
            # The server's error and close came with the 101: echo the close (RFC 6455 5.5.1).
            with backend.move_on_at(backend.current_time() + LAST_WORDS_S):
                await backend.send_all(stream, core.data_to_send())
    except backend.transport_errors as exc:
        table.transport_failed(exc, now=backend.current_time())


def _upgrade_failure(table: RequestTable) -> S2SError:
    closed = table.closed
    assert closed is not None
    return table.close_error(closed)


def _describe(exc: BaseException) -> str:
    """An exception's text, with its cause's (trio wraps TLS errors)."""
    if str(exc):
        return str(exc)
    cause = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {cause}" if cause is not None else type(exc).__name__


class Connector(Protocol):
    """What opens the connections of a chain of requests (``S2SClient`` is one)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def options(self) -> ClientOptions: ...

    def connection(self) -> OpenConnection: ...
