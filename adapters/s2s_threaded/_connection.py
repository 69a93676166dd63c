"""Connections and sessions for plain threads (requests are in ``_request``).

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
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from _s2s_async.common import SessionBase
from s2s_core.connection import ClientConnection, ConnectionState
from s2s_core.errors import ConnectionClosedError, S2SError
from s2s_core.events import Closed, EndOfStream, ErrorMessage, Ready, ServerEvent
from s2s_core.protocol import AudioInput
from s2s_core.proxy import ProxyConfig, proxy_for
from s2s_core.results import S2SResult, error_from_event
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url

from ._request import _SLICE, Request, _wait
from ._transport import READ_SIZE, connect_websocket

__all__ = ["Connection", "Session", "open_connection"]

_LAST_WORDS_S = 1.0
_JOIN_S = 5.0


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
            # Runs of consecutive events for one request go over in one batch.
            runs: list[tuple[Request | Closed | None, list[ServerEvent]]] = []
            ending: set[Request] = set()  # ended by an event of this batch, not yet delivered
            for event in events:
                target: Request | Closed | None
                if isinstance(event, Closed):
                    target = event
                else:
                    target = self._route(getattr(event, "client_req_id", None), ending)
                    if target is not None and isinstance(event, (EndOfStream, ErrorMessage)):
                        ending.add(target)
                if runs and target is not None and runs[-1][0] is target:
                    runs[-1][1].append(event)  # type: ignore[arg-type]
                else:
                    runs.append((target, [event]))  # type: ignore[list-item]
        for target, batch in runs:
            if isinstance(target, Closed):
                self._on_closed(target)
            elif target is not None:
                target._deliver(batch)
            else:
                event = batch[0]
                if type(event) is ErrorMessage and event.client_req_id is None:
                    # Sent before any request (bad key): it explains the close to come.
                    self._unclaimed_error = event
        return closed

    def _route(self, client_req_id: str | None, ending: set[Request]) -> Request | None:
        request = self._requests.get(client_req_id)
        if client_req_id is None and (request is None or request._ended or request in ending):
            live = [r for r in self._requests.values() if not r._ended and r not in ending]
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


class Session(SessionBase["Connection", Request]):
    """A connection with its one request (what ``connect`` and ``s2s_realtime`` give).

    Send with ``send_audio``/``send_end_of_stream``, iterate with
    ``for event in session``; ``connection`` and ``request`` give the layers
    below. Sending everything before reading can stall on a large input
    (the server stops reading while its replies wait): send from one thread
    and iterate in another, or use ``S2SClient.s2s_stream``.
    """

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
    proxy: str | ProxyConfig | None = None,
    trust_env: bool = True,
) -> Iterator[Connection]:
    """Open a bare connection for several requests (``conn.start(setup)``); close on exit.

    Arguments as for ``connect``; ``proxy`` (else, with ``trust_env``, the
    proxy environment variables) chooses a proxy: ``s2s_core.proxy.proxy_for``.
    Leaving the block on Ctrl-C drops the socket at once instead of waiting
    for the closing handshake.
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
                             connect_timeout, proxy_for(url, proxy=proxy, trust_env=trust_env))
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
