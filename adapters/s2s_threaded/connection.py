"""A connection for plain threads: one reader thread, bytes, timers, wake-ups.

A ``Connection`` owns the socket and a ``RequestTable`` (the core's requests
layer over a ``ClientConnection``), and runs ONE background thread, the
reader: it waits (``selectors``) on the socket and a wake-up socketpair with
the core's next deadline as timeout, feeds the table, runs its timers and
wakes the requests that got events. Application threads write their own
data. Nothing here knows the protocol or the requests: the core does.

Locks: ``_lock`` guards every call into the table and core (they are not
thread-safe) and is never held while blocking; ``_write_lock`` orders writes
to the socket and is taken before ``_lock``, never after it.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

from s2s_core.connection import ClientConnection, ConnectionState
from s2s_core.errors import ConnectionClosedError, S2SError
from s2s_core.events import Closed
from s2s_core.options import (
    LAST_WORDS_S,
    READ_SIZE,
    READ_SIZE_MIN,
    THREAD_JOIN_S,
    ClientOptions,
)
from s2s_core.proxy import proxy_for
from s2s_core.request_table import RequestHandle, RequestTable
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url

from .request import SLICE_S, Request, wait_sliced
from .transport import connect_websocket

__all__ = ["Connection", "OpenConnection", "Connector"]

_CLOSED = ConnectionState.CLOSED


class Connection:
    """One WebSocket to the S2S endpoint and the requests running on it.

    Every method may be called from any thread; each request should be
    consumed by one thread.
    """

    def __init__(self, sock: socket.socket, table: RequestTable) -> None:
        self.table = table
        self.core = table.connection
        self._sock = sock
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._write_failed = False
        self._transport_closed = False
        self._paused = False
        self._read_size = READ_SIZE_MIN
        self._reader = threading.Thread(target=self._run, name=f"s2s-reader-{id(self):x}",
                                        daemon=True)
        self.closed = threading.Event()
        """Set once the core has ended the connection (``closed_event`` is its reason)."""

    def __repr__(self) -> str:
        return f"<Connection {self.core!r}>"

    @property
    def closed_event(self) -> Closed | None:
        """The core's ``Closed`` event, once the connection ended."""
        return self.table.closed

    def _start(self) -> None:
        self._reader.start()

    # -- requests --

    def start(self, setup: Setup | Mapping[str, Any], *, keep_audio: bool = True) -> Request:
        """Start a request on this connection (several need distinct client_req_ids).

        Raises:
            S2SError: The connection already ended (with the reason it ended).
        """
        with self._lock:
            handle = self.table.start(setup, keep_audio=keep_audio, now=time.monotonic())
        request = Request(self, handle)
        self._wake()  # its ready deadline may be earlier than the reader's
        self.flush_for(handle, "start")
        return request

    def send_end_of_stream(self) -> None:
        """Send the unscoped end_of_stream that asks the server to close a reused socket."""
        with self._lock:
            self.core.send_end_of_stream(None, now=time.monotonic())
        self.flush()

    # -- writing (application threads) --

    def flush(self) -> None:
        """Write whatever the core has to send (the caller waits: backpressure).

        Raises:
            ConnectionClosedError: The transport failed.
        """
        self._flush()
        if self._write_failed:
            raise ConnectionClosedError(1006, "", "write failed")

    def flush_for(self, handle: RequestHandle, what: str) -> None:
        """``flush`` for a request's send: a failed write raises the request's real reason."""
        try:
            self.flush()
        except ConnectionClosedError:
            # The reader may still drain what explains it (the core bounds the wait).
            wait_sliced(self.closed, None)
            with self._lock:
                handle.check_send(what)
            raise

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
                    self.core.write_failed(exc, now=time.monotonic())
                self._wake()
            except BaseException:
                # A write cut short (Ctrl-C) leaves the stream in an unknown state.
                self._write_failed = True
                with self._lock:
                    self.table.transport_failed(ConnectionAbortedError("write interrupted"),
                                                now=time.monotonic())
                self._wake()
                raise

    def _wake(self) -> None:
        # Full: the reader wakes anyway. Closed: the reader is gone.
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def consumer_took(self) -> None:
        """A consumer took events: a reader paused by backpressure may resume."""
        if self._paused:
            self._wake()

    # -- the reader thread --

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(self._sock, selectors.EVENT_READ)
            while True:
                self._flush(blocking=False)
                if self._after_input():
                    break
                timeout = self._pace_reading(selector)
                for key, _ in selector.select(timeout):
                    if key.fileobj is self._wake_r:
                        self._drain_wakeups()
                    else:
                        self._read()
                with self._lock:
                    self.table.handle_timer(time.monotonic())
        except BaseException as exc:
            # A bug here must not leave requests waiting forever.
            with self._lock:
                self.table.transport_failed(exc, now=time.monotonic())
            self._after_input()
            raise
        finally:
            selector.close()
            if not self.closed.is_set():
                with self._lock:
                    self.table.transport_failed(ConnectionAbortedError("reader stopped"),
                                                now=time.monotonic())
                self._after_input()
            self._close_transport()
            self._wake_r.close()
            self._wake_w.close()

    def _pace_reading(self, selector: selectors.BaseSelector) -> float | None:
        """Stop or resume watching the socket as the table's backpressure says; the timeout."""
        with self._lock:
            saturated = self.table.saturated
            now = time.monotonic()
            if saturated and not self._paused:
                self.core.pause_reading(now=now)
            elif not saturated and self._paused:
                self.core.resume_reading(now=now)
            deadline = self.core.next_deadline()
        if saturated != self._paused:
            self._paused = saturated
            if saturated:
                selector.unregister(self._sock)
            else:
                selector.register(self._sock, selectors.EVENT_READ)
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _read(self) -> None:
        sock = self._sock
        while True:
            size = self._read_size
            try:
                data = sock.recv(size)
            except OSError as exc:
                with self._lock:
                    self.table.transport_failed(exc, now=time.monotonic())
                return
            # Sized to what comes (see READ_SIZE_MIN): recv allocates what is asked.
            if len(data) >= size:
                self._read_size = min(size * 2, READ_SIZE)
            elif len(data) * 4 < size and size > READ_SIZE_MIN:
                self._read_size = size // 2
            with self._lock:
                if data:
                    self.table.receive_data(data, now=time.monotonic())
                else:
                    self.table.receive_eof(now=time.monotonic())
            # Bytes TLS already decrypted are invisible to select().
            if not data or not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                return

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _after_input(self) -> bool:
        """Wake the requests that got events; whether the connection is closed."""
        with self._lock:
            woken = self.table.handles_to_wake()
            closed = self.core.state is _CLOSED
        for handle in woken:
            handle.waker.set()
        if closed:
            self.closed.set()
        return closed

    def _close_transport(self) -> None:
        """(reader, at exit) Last words (a close echo), then close the socket."""
        self._flush(timeout=LAST_WORDS_S)
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
        try:
            with self._lock:
                if self.core.state is not _CLOSED:
                    self.table.close(code, reason, now=time.monotonic())
                deadline = self.core.next_deadline()
            self._wake()
            budget = None if deadline is None else deadline - time.monotonic() + LAST_WORDS_S
            # A writer stuck on a peer that does not read must not hold us here:
            # it sends our close frame itself once it gets through.
            self._flush(timeout=-1 if budget is None else max(budget, 0.0))
            if not wait_sliced(self.closed, budget):
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
        deadline = time.monotonic() + THREAD_JOIN_S
        while self._reader.is_alive() and time.monotonic() < deadline:
            self._reader.join(SLICE_S)
        if self._reader.is_alive():
            self._shutdown()
            self._reader.join(THREAD_JOIN_S)


class OpenConnection:
    """``with open_connection(...) as conn``: connect on entry, close on exit.

    Leaving the block on Ctrl-C drops the socket at once instead of waiting
    for the closing handshake.
    """

    def __init__(self, url: str, *, api_key: str | None, token: str | None,
                 options: ClientOptions) -> None:
        self._url = url
        self._api_key = api_key
        self._token = token
        self._options = options
        self._conn: Connection | None = None

    def __enter__(self) -> Connection:
        self._conn = _connect(self._url, api_key=self._api_key, token=self._token,
                              options=self._options)
        return self._conn

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        conn = self._conn
        if conn is None:
            return
        if exc_type is not None and not issubclass(exc_type, Exception):
            conn._abort()
        conn.close()


def _connect(url: str, *, api_key: str | None, token: str | None,
             options: ClientOptions) -> Connection:
    """Open the socket (through the proxy ``options`` choose) and run the upgrade.

    The reader thread starts.

    Raises:
        S2SError: See ``connect_websocket``.
    """
    target = parse_ws_url(url, token=token, server_hostname=options.server_hostname)
    ssl_context = options.ssl_context
    if target.secure and ssl_context is None:
        ssl_context = ssl.create_default_context()
    core = ClientConnection(url, api_key=api_key, token=token, now=time.monotonic(),
                            **options.connection_kwargs())
    table = RequestTable(core, queue_size=options.queue_size)
    proxy = proxy_for(url, proxy=options.proxy, trust_env=options.trust_env)
    sock = connect_websocket(table, target, ssl_context if target.secure else None,
                             options.connect_timeout, proxy)
    conn = Connection(sock, table)
    conn._start()
    return conn


def connection_failed(conn: Connection, handle: RequestHandle) -> S2SError:
    """The reason ``handle`` cannot go on once its connection ended."""
    with conn._lock:
        closed = conn.table.closed
        if closed is None:
            return ConnectionClosedError(1006, "", "the connection is closed")
        return conn.table.close_error(closed, handle.collector.request_id)


class Connector(Protocol):
    """What opens the connections of a chain of requests (``S2SClient`` is one)."""

    @property
    def options(self) -> ClientOptions: ...

    def connection(self) -> OpenConnection: ...
