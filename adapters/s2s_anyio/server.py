"""The local S2S server on anyio: ``serve`` and ``run_server``.

All protocol and engine logic is in ``s2s_core.loopback``; this module
accepts sockets, moves bytes and sleeps until the session's next deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.tls import TLSStream

from _s2s_async.primitives import Mutex
from s2s_core.connection import ConnectionState, HttpRequest, ServerConnection
from s2s_core.loopback import (
    EngineFactory,
    FaultPlan,
    ServerConfig,
    ServerSession,
    loopback_engine,
)
from s2s_core.loopback.rest import LocalRest
from s2s_core.options import LAST_WORDS_S
from s2s_core.urls import S2S_ROUTE

from ._asyncio_stream import AsyncioByteStream
from ._backend import BACKEND, running_on_asyncio

__all__ = ["serve", "run_server", "ServerConfig", "server_url"]

_READ_SIZE = 256 * 1024
_PUSH_READ = 64 * 1024
"""Most bytes one callback takes from one client (about a dozen audio messages):
a server behind on 1000 clients would otherwise spend seconds per loop round on
256 KiB reads, and new connections would time out before their upgrade."""
_DROP_WAIT_S = 2.0
"""How long an injected drop waits for the client's end after our FIN."""
_TRANSPORT_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError,
                     anyio.EndOfStream, ssl.SSLError)


def server_url(host: str, port: int, *, secure: bool = False) -> str:
    """The S2S URL clients use for a local server."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'wss' if secure else 'ws'}://{shown}:{port}/api/{S2S_ROUTE}"


def make_config(*, api_keys: Iterable[str] | None = None, tokens: Iterable[str] = (),
                max_audio_s: float = 300.0, idle_timeout_s: float = 300.0,
                engine_factory: EngineFactory = loopback_engine, input_block_s: float = 0.0,
                fault: FaultPlan | None = None) -> ServerConfig:
    """Build a ``ServerConfig`` from plain arguments."""
    return ServerConfig(api_keys=None if api_keys is None else frozenset(api_keys),
                        tokens=set(tokens), max_audio_s=max_audio_s,
                        idle_timeout_s=idle_timeout_s, engine_factory=engine_factory,
                        input_block_s=input_block_s, fault=fault)


async def serve(host: str = "127.0.0.1", port: int = 8765, *,
                config: ServerConfig | None = None, ssl_context: ssl.SSLContext | None = None,
                rest: LocalRest | None = None,
                task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
                **config_args: Any) -> None:
    """Serve the S2S protocol, and its REST routes, until cancelled (asyncio or trio).

    Args:
        host: Address to listen on.
        port: Port (0 picks a free one; the URL given to ``task_status`` says which).
        config: Server settings; or pass ``make_config``'s arguments
            (``api_keys``, ``tokens``, ``max_audio_s``, ``idle_timeout_s``,
            ``engine_factory``, ``input_block_s``, ``fault``) directly.
        ssl_context: Serve ``wss://`` with this server context.
        rest: The REST side (voices, credits, tokens); default: a fresh
            ``LocalRest()``. Pass one to set the starting credits or to read
            its ledger.
        task_status: Receives the server's URL once it listens.
    """
    if config is None:
        config = make_config(**config_args)
    elif config_args:
        raise TypeError("pass either config or its arguments, not both")
    if rest is None:
        rest = LocalRest()
    if running_on_asyncio():
        await _serve_asyncio(host, port, config, rest, ssl_context, task_status)
        return
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        bound = listener.extra(anyio.abc.SocketAttribute.local_port)
        task_status.started(server_url(host, bound, secure=ssl_context is not None))
        await listener.serve(partial(_handle, config=config, rest=rest,
                                     ssl_context=ssl_context))


async def _serve_asyncio(host: str, port: int, config: ServerConfig, rest: LocalRest,
                         ssl_context: ssl.SSLContext | None,
                         task_status: anyio.abc.TaskStatus[str]) -> None:
    """asyncio's own server: it accepts every pending connection at each wake-up
    (anyio's listener takes one per loop round, which starves a busy server),
    and each connection is served in the loop's callbacks (``_PushPeer``)."""
    loop = asyncio.get_running_loop()
    peers: set[_PushPeer] = set()
    # Every stream whose transport may still be open, a finished peer's too (its
    # last words or a drop's wait are still on a timer): at the end they are all
    # aborted, so none is left for the garbage collector to close after the
    # server (CPython 3.13.0's server then fails in its _detach).
    streams: weakref.WeakSet[AsyncioByteStream] = weakref.WeakSet()

    stopping = False

    def accepted(stream: AsyncioByteStream) -> None:
        if stopping:
            stream.close_soon(0.0)
            return
        _PushPeer(stream, config, rest, peers)

    def new_stream() -> AsyncioByteStream:
        stream = AsyncioByteStream(loop, on_connect=accepted, max_read=_PUSH_READ)
        streams.add(stream)
        return stream

    server = await loop.create_server(
        new_stream, host, port,
        ssl=ssl_context, ssl_handshake_timeout=10 if ssl_context is not None else None,
        backlog=4096)
    try:
        bound = server.sockets[0].getsockname()[1]
        task_status.started(server_url(host, bound, secure=ssl_context is not None))
        await anyio.sleep_forever()
    finally:
        stopping = True
        server.close()
        for peer in list(peers):
            peer.abort()
        with anyio.CancelScope(shield=True):
            # Aborted sockets close on the next loop round; one just accepted
            # is aborted when it is made. Bounded: 1 s.
            for _ in range(_STOP_ROUNDS):
                left = [stream for stream in streams if not stream.lost]
                if not left:
                    break
                for stream in left:
                    stream.close_soon(0.0)
                await anyio.sleep(_STOP_ROUND_S)


_STOP_ROUNDS = 100
_STOP_ROUND_S = 0.01
"""At shutdown, how often and how long to wait for the aborted sockets to close."""


class _PushPeer:
    """(asyncio) One accepted connection, served in the loop's callbacks.

    What ``_Peer`` does with a reader and a timer task, without a task: the
    stream hands each read to ``data_in``, the session's next deadline is one
    loop timer, and output goes to the transport at once. No wake-up per
    message; reading pauses while the client does not take our output.
    """

    def __init__(self, stream: AsyncioByteStream, config: ServerConfig, rest: LocalRest,
                 peers: set[_PushPeer]) -> None:
        self.stream = stream
        self.config = config
        self.rest = rest
        self.now: Callable[[], float] = asyncio.get_running_loop().time
        now = self.now()
        self.conn = ServerConnection(now=now)
        self.session = ServerSession(self.conn, config, now,
                                     engine_factory=rest.metered(config.engine_factory))
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._finished = False
        self._dropping = False
        self._peers = peers
        peers.add(self)
        stream.set_receiver(self)
        self._after(now)

    # -- the stream's callbacks --

    def data_in(self, data: bytes) -> None:
        if self._finished:
            return  # after the end (or during an injected drop), input is dropped
        now = self.now()
        conn = self.conn
        conn.receive_data(data, now=now)
        if conn.http_request is not None:  # a REST call, not a WebSocket
            self._answer(conn.http_request)
        else:
            self.session.handle_events(conn.events_received(), now)
        self._after(now)

    def eof_in(self) -> None:
        if self._finished:
            if self._dropping:
                self.stream.close_soon(LAST_WORDS_S)  # the client read our FIN and answered
            return
        now = self.now()
        self.conn.receive_eof(now=now)
        self.session.handle_events(self.conn.events_received(), now)
        self._after(now)

    def lost_in(self, exc: BaseException) -> None:
        if self._finished:
            return
        now = self.now()
        self.conn.transport_failed(exc, now=now)
        self.session.handle_events(self.conn.events_received(), now)
        self._after(now)

    def write_resumed(self) -> None:
        """The client took our output: read its input again."""
        if not self._finished:
            self.stream.resume_reading()

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, math.inf
        if self._finished:
            return
        now = self.now()
        self.session.handle_timer(now)
        self.session.handle_events(self.conn.events_received(), now)
        self._after(now)

    # -- after every input --

    def _after(self, now: float) -> None:
        stream = self.stream
        data = self.conn.data_to_send()
        if data:  # what was queued before an injected drop still goes out
            with contextlib.suppress(*_TRANSPORT_ERRORS):
                stream.write_nowait(data)
            if stream.writing_paused:
                stream.pause_reading()  # backpressure: the client does not read
        if self.conn.state is ConnectionState.CLOSED or self.session.abort_transport:
            self._finish()
            return
        deadline = self.session.next_deadline()
        if deadline is not None and deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = stream.call_at(deadline, self._on_timer)

    def _answer(self, request: HttpRequest) -> None:
        config = self.config
        answer = self.rest.answer(request.method, request.target, request.header("x-api-key"),
                                  api_keys=config.api_keys, tokens=config.tokens,
                                  now=time.time())
        self.conn.respond(answer.status, answer.body)

    def _finish(self) -> None:
        """Last words go out (bounded), then the socket closes; a drop ends with a FIN."""
        self._finished = True
        self._peers.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        stream = self.stream
        if not self.session.abort_transport:
            stream.close_soon(LAST_WORDS_S)
            return
        # The injected drop: a FIN, not a reset (closing with unread input
        # would make the kernel send RST, which can discard what the client
        # has not read yet); then wait (bounded) for the client's end.
        self._dropping = True
        try:
            stream.write_eof()
        except _TRANSPORT_ERRORS:
            stream.close_soon(0.0)
            return
        stream.call_at(self.now() + _DROP_WAIT_S, self.abort)

    def abort(self) -> None:
        """Drop the socket now (the server is stopping, or a drop's wait ended)."""
        self._finished = True
        self._peers.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.stream.close_soon(0.0)


async def _handle(stream: anyio.abc.ByteStream, *, config: ServerConfig, rest: LocalRest,
                  ssl_context: ssl.SSLContext | None) -> None:
    """(trio) One accepted connection: TLS if asked, then the session."""
    try:
        if ssl_context is not None:
            with anyio.fail_after(10):
                stream = await TLSStream.wrap(stream, server_side=True, ssl_context=ssl_context,
                                              standard_compatible=False)
        await _Peer(_AnyioStream(stream), config, rest).run()
    except (*_TRANSPORT_ERRORS, TimeoutError):
        pass
    finally:
        await anyio.aclose_forcefully(stream)


class _ServerStream(Protocol):
    async def receive_some(self, max_bytes: int) -> bytes: ...

    async def send_all(self, data: bytes) -> None: ...

    async def send_eof(self) -> None: ...

    async def aclose(self) -> None:
        """Close at once (no graceful TLS close)."""
        ...


class _AnyioStream:
    """An anyio byte stream with the calls ``_Peer`` makes (b"" at the end of the stream)."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""

    async def send_all(self, data: bytes) -> None:
        await self._stream.send(data)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self._stream)


class _Peer:
    """One accepted connection: a reader task and a timer task around a ServerSession."""

    def __init__(self, stream: _ServerStream, config: ServerConfig, rest: LocalRest) -> None:
        self.stream = stream
        self.config = config
        self.rest = rest
        # The running loop's clock, bound once (anyio.current_time looks the library up).
        self.now: Callable[[], float] = BACKEND.clock()
        now = self.now()
        self.conn = ServerConnection(now=now)
        # Engines charge the REST ledger; the config (its counters) stays the caller's.
        self.session = ServerSession(self.conn, config, now,
                                     engine_factory=rest.metered(config.engine_factory))
        self.lock = Mutex(BACKEND)
        self.wakeup = anyio.Event()
        self.timer_deadline = math.inf  # what the timer task sleeps until

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._until_done, self.reader, tasks.cancel_scope)
            tasks.start_soon(self._until_done, self.timer, tasks.cancel_scope)
        with anyio.move_on_after(1), contextlib.suppress(*_TRANSPORT_ERRORS):
            await self.flush()  # last words: a close frame, an echo
        if self.session.abort_transport:
            await self._drop()
        await self.stream.aclose()

    async def _until_done(self, loop: Callable[[], Awaitable[None]],
                          scope: anyio.CancelScope) -> None:
        await loop()
        scope.cancel()  # the other task may be blocked; the connection is over

    def done(self) -> bool:
        return self.conn.state is ConnectionState.CLOSED or self.session.abort_transport

    async def reader(self) -> None:
        conn, session = self.conn, self.session
        while not self.done():
            try:
                data = await self.stream.receive_some(_READ_SIZE)
            except _TRANSPORT_ERRORS as exc:
                conn.transport_failed(exc, now=self.now())
                return
            now = self.now()
            if data:
                conn.receive_data(data, now=now)
            else:
                conn.receive_eof(now=now)
            if conn.http_request is not None:  # a REST call, not a WebSocket
                self._answer(conn.http_request)
            else:
                session.handle_events(conn.events_received(), now)
            await self.flush()
            deadline = session.next_deadline()
            if self.done() or (deadline is not None and deadline < self.timer_deadline):
                self.wakeup.set()  # the timer must sleep less (or stop)

    async def timer(self) -> None:
        session = self.session
        while not self.done():
            deadline = session.next_deadline()
            self.timer_deadline = math.inf if deadline is None else deadline
            with anyio.CancelScope(deadline=self.timer_deadline):
                await self.wakeup.wait()
            self.wakeup = anyio.Event()
            now = self.now()
            session.handle_timer(now)
            session.handle_events(self.conn.events_received(), now)
            await self.flush()

    def _answer(self, request: HttpRequest) -> None:
        config = self.config
        answer = self.rest.answer(request.method, request.target, request.header("x-api-key"),
                                  api_keys=config.api_keys, tokens=config.tokens,
                                  now=time.time())
        self.conn.respond(answer.status, answer.body)

    async def flush(self) -> None:
        async with self.lock:
            data = self.conn.data_to_send()
            if data:  # what was queued before an injected drop still goes out
                await self.stream.send_all(data)
        # Let the other sessions run before this one writes again: its next
        # output then goes out with whatever else came due meanwhile. A
        # reader with no input buffered waits for the loop anyway.
        if getattr(self.stream, "buffered", True):
            await anyio.lowlevel.checkpoint()

    async def _drop(self) -> None:
        """End TCP without a close frame (the injected drop).

        A FIN, not a reset: closing with unread input would make the kernel
        send RST, which can discard what the client has not read yet, and
        the test could no longer tell what it received before the fault.
        """
        with anyio.move_on_after(2), contextlib.suppress(*_TRANSPORT_ERRORS):
            await self.stream.send_eof()
            while await self.stream.receive_some(_READ_SIZE):
                pass


@contextmanager
def run_server(host: str = "127.0.0.1", port: int = 0, *, backend: str = "asyncio",
               config: ServerConfig | None = None, ssl_context: ssl.SSLContext | None = None,
               **config_args: Any) -> Iterator[str]:
    """Run ``serve`` on a background thread; yield its URL; stop on exit."""
    with anyio.from_thread.start_blocking_portal(backend) as portal:
        future, url = portal.start_task(
            partial(serve, host, port, config=config, ssl_context=ssl_context, **config_args))
        try:
            yield url
        finally:
            future.cancel()
