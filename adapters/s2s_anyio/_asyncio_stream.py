"""A byte stream on asyncio's transports, for the anyio adapter on asyncio.

anyio's asyncio socket stream yields to the loop on every send and pauses
and resumes reading (two epoll_ctl calls) around every receive. Here a
receive with data buffered returns it at once (the data came from the
loop's own callbacks, so the caller did yield to get it), a send only waits
when the transport asks for backpressure, and reading is paused only when
more than ``_HIGH_WATER`` bytes wait unread.

Reads land in one buffer per thread (a ``BufferedProtocol``), not in a
fresh 256 KiB allocation per read: what was read is copied out at its real
size before the next read reuses the buffer. A ``Receiver`` set with
``set_receiver`` gets the bytes in the loop's own callback, so a
connection's input needs no task of its own (no wake-up per message).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

import anyio

from s2s_core.options import LAST_WORDS_S
from s2s_core.proxy import NO_TUNNEL_TIMEOUT, TUNNEL_ERRORS, ProxyConfig, tunnel_args, tunnel_error

__all__ = ["AsyncioByteStream", "Receiver", "open_asyncio_stream"]

_HIGH_WATER = 1 << 20
_READ_BUFFER = 256 * 1024
"""Bytes one read may take: a burst's worth (the buffer is shared, not per connection)."""
_HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended connection attempt delay
# What this stream calls on its transport (asyncio's, or another loop's such as uvloop's).
_TRANSPORT_METHODS = ("write", "is_closing", "close", "abort", "pause_reading",
                      "resume_reading", "can_write_eof", "write_eof", "get_write_buffer_size")


class Receiver(Protocol):
    """Who takes a stream's input in the loop's callbacks (``set_receiver``)."""

    def data_in(self, data: bytes) -> None:
        """Bytes read."""

    def eof_in(self) -> None:
        """The peer ended its side."""

    def lost_in(self, exc: BaseException) -> None:
        """The transport broke."""

    def write_resumed(self) -> None:
        """The transport's buffer went back under its limit."""


_buffers = threading.local()
_guardians: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Guardian] = (
    weakref.WeakKeyDictionary())


class _Guardian:
    """Aborts a loop's pushed streams still open when the loop shuts down.

    A stream that pushes its input needs no task, so nothing of it would be
    cancelled when ``asyncio.run`` ends (or anyio's run): one task per loop
    stands in for the tasks it saves, and on cancellation fails each
    receiver and aborts its transport, so no socket outlives its loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.streams: set[AsyncioByteStream] = set()
        self.task = loop.create_task(self._guard(), name="s2s-guardian")

    async def _guard(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            streams, self.streams = self.streams, set()
            for stream in streams:
                stream.abandon()

    @classmethod
    def watch(cls, loop: asyncio.AbstractEventLoop, stream: AsyncioByteStream) -> None:
        guardian = _guardians.get(loop)
        if guardian is None or guardian.task.done():
            guardian = _guardians[loop] = cls(loop)
        guardian.streams.add(stream)

    @staticmethod
    def forget(loop: asyncio.AbstractEventLoop, stream: AsyncioByteStream) -> None:
        guardian = _guardians.get(loop)
        if guardian is not None:
            guardian.streams.discard(stream)


def _read_buffer() -> memoryview:
    """This thread's read buffer (one per event loop thread, reused by every read)."""
    buffer: memoryview | None = getattr(_buffers, "view", None)
    if buffer is None:
        buffer = _buffers.view = memoryview(bytearray(_READ_BUFFER))
    return buffer


class AsyncioByteStream(asyncio.BufferedProtocol):
    """One TCP (or TLS) stream: ``send_all``, ``receive_some``, ``send_eof``, ``aclose``.

    ``on_connect`` is called with the stream once connected (a server's accept).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *,
                 on_connect: Callable[[AsyncioByteStream], None] | None = None,
                 max_read: int = _READ_BUFFER) -> None:
        self._loop = loop
        self._on_connect = on_connect
        self._max_read = min(max_read, _READ_BUFFER)
        self._transport: asyncio.Transport | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._receiver: Receiver | None = None

    # -- asyncio.Protocol callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's transports do not subclass asyncio's.
        if not all(hasattr(transport, name) for name in _TRANSPORT_METHODS):
            raise TypeError(f"not a stream transport: {type(transport).__name__}")
        self._transport = cast(asyncio.Transport, transport)
        if self._on_connect is not None:
            self._on_connect(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        buffer = _read_buffer()
        return buffer if self._max_read == _READ_BUFFER else buffer[:self._max_read]

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(_read_buffer()[:nbytes]))

    def data_received(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is not None:
            receiver.data_in(data)
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._reading_paused:
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        if self._receiver is not None:
            self._receiver.eof_in()
        return False  # let the transport close: a WebSocket has nothing to say after EOF

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._wake_reader()
        receiver = self._receiver
        if receiver is not None:
            _Guardian.forget(self._loop, self)
            if exc is not None:
                receiver.lost_in(self._broken("the connection was lost"))
            elif not self._eof:
                receiver.eof_in()
        self._writing_paused = False
        self._wake_writer()
        waiter = self._lost_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()
        if self._receiver is not None:
            self._receiver.write_resumed()

    # -- the stream --

    def set_receiver(self, receiver: Receiver) -> None:
        """From now on, hand every input to ``receiver`` in the loop's callbacks.

        What was buffered (and an end already seen) is handed over first.
        Reading then pauses only when ``pause_reading`` says so.
        """
        self._receiver = receiver
        if not self._lost:
            _Guardian.watch(self._loop, self)
        chunks, self._chunks = self._chunks, deque()
        self._buffered = 0
        if self._reading_paused:
            self.resume_reading()
        for data in chunks:
            receiver.data_in(data)
        if self._lost and self._error is not None:
            receiver.lost_in(self._broken("the connection was lost"))
        elif self._eof or self._lost:
            receiver.eof_in()

    def pause_reading(self) -> None:
        """Stop reading from the socket (the receiver is full)."""
        transport = self._transport
        if not self._reading_paused and transport is not None and not self._lost:
            self._reading_paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after ``pause_reading``."""
        transport = self._transport
        if self._reading_paused and transport is not None and not self._lost:
            self._reading_paused = False
            transport.resume_reading()

    @property
    def writing_paused(self) -> bool:
        """The transport's buffer is over its limit: ``drain`` before writing more."""
        return self._writing_paused

    @property
    def lost(self) -> bool:
        """The transport is gone (``connection_lost`` ran)."""
        return self._lost

    @property
    def buffered(self) -> bool:
        """Received bytes wait unread (``receive_some`` would not wait)."""
        return bool(self._chunks)

    def write_nowait(self, data: bytes) -> None:
        """Hand ``data`` to the transport now (it buffers what the socket does not take).

        Raises:
            anyio.BrokenResourceError: The connection is closed.
        """
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            raise self._broken("the connection is closed")
        transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its limit.

        Raises:
            anyio.BrokenResourceError: The connection was lost meanwhile.
        """
        while self._writing_paused:
            waiter = self._drain_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._drain_waiter = None
            if self._lost:
                raise self._broken("the connection was lost while sending")

    def abandon(self) -> None:
        """The loop is ending with the stream open: fail the receiver, drop the socket."""
        receiver = self._receiver
        if receiver is not None and not self._lost:
            receiver.lost_in(anyio.BrokenResourceError("the event loop is closing"))
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """``callback()`` at ``when`` on the loop's clock."""
        return self._loop.call_at(when, callback)

    def close_soon(self, abort_after: float) -> None:
        """Close without waiting: buffered bytes go out first, for at most ``abort_after`` s."""
        transport = self._transport
        if transport is None or self._lost:
            return
        if abort_after > 0 and transport.get_write_buffer_size():
            transport.close()
            self._loop.call_later(abort_after, transport.abort)
        else:
            transport.abort()

    async def send_all(self, data: bytes) -> None:
        """Write ``data``; waits only while the transport's buffer is over its limit."""
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            raise self._broken("the connection is closed")
        transport.write(data)
        if self._writing_paused:
            await self.drain()

    async def receive_some(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` received bytes; b"" at the end of the stream."""
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._broken("the connection was lost")
            if self._eof or self._lost:
                return b""
            waiter = self._read_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._read_waiter = None
        data = chunks.popleft()
        if len(data) > max_bytes:
            chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        self._buffered -= len(data)
        if self._reading_paused and self._buffered <= _HIGH_WATER // 4:
            self._reading_paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return data

    async def send_eof(self) -> None:
        """End our side of the stream (a FIN; TLS, which cannot half-close, closes)."""
        self.write_eof()

    def write_eof(self) -> None:
        """``send_eof`` without waiting (the transport sends the FIN after its buffer).

        Raises:
            anyio.BrokenResourceError: The connection is closed.
        """
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            raise self._broken("the connection is closed")
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()

    async def aclose(self) -> None:
        """Close the connection; the socket is closed when this returns.

        Bytes the transport still buffers get up to ``LAST_WORDS_S`` to go
        out (a close echo: trio's ``send_all`` would already have handed them
        to the kernel), then the transport is aborted. No TLS close_notify
        exchange is awaited: once the WebSocket closing handshake is over
        nothing more needs saying, and asyncio would wait up to 30 s for a
        silent peer's answer, leaving the socket to the garbage collector if
        the loop ends first.
        """
        transport = self._transport
        if transport is None or self._lost:
            return
        try:
            if transport.get_write_buffer_size():
                transport.close()  # flushes first
                with anyio.move_on_after(LAST_WORDS_S):
                    await self._wait_lost()
        finally:
            transport.abort()
        # The transport closes the socket on the loop's next pass.
        with anyio.move_on_after(LAST_WORDS_S):
            await self._wait_lost()

    # -- internals --

    def _broken(self, what: str) -> anyio.BrokenResourceError:
        error = anyio.BrokenResourceError(f"{what}: {self._error}" if self._error else what)
        error.__cause__ = self._error
        return error

    async def _wait_lost(self) -> None:
        while not self._lost:
            waiter = self._lost_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._lost_waiter = None

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def open_asyncio_stream(host: str, port: int, ssl_context: ssl.SSLContext | None,
                              proxy: ProxyConfig | None = None, *,
                              tls_server_name: str | None = None) -> AsyncioByteStream:
    """Connect (happy eyeballs across addresses; TLS when ``ssl_context`` is given).

    Through ``proxy`` when given: python-socks opens the tunnel, then TLS to
    the service runs inside it. TLS names ``tls_server_name`` (default:
    ``host``) for SNI and verification.
    """
    loop = asyncio.get_running_loop()
    server_hostname = (tls_server_name or host) if ssl_context is not None else None
    if proxy is None:
        extra: dict[str, Any] = {}
        if isinstance(loop, asyncio.BaseEventLoop):
            # asyncio's own loops take it; others (uvloop) refuse the keyword.
            extra["happy_eyeballs_delay"] = _HAPPY_EYEBALLS_DELAY
        _, protocol = await loop.create_connection(
            lambda: AsyncioByteStream(loop), host, port, ssl=ssl_context,
            server_hostname=server_hostname, **extra)
        return protocol
    sock = await _tunnel(proxy, host, port)
    try:
        _, protocol = await loop.create_connection(
            lambda: AsyncioByteStream(loop), sock=sock, ssl=ssl_context,
            server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise
    return protocol


async def _tunnel(proxy: ProxyConfig, host: str, port: int) -> socket.socket:
    """A socket connected to ``host:port`` through ``proxy`` (python-socks' asyncio flavour)."""
    from python_socks.async_.asyncio import Proxy

    try:
        return await Proxy(**tunnel_args(proxy)).connect(host, port, timeout=NO_TUNNEL_TIMEOUT)
    except TUNNEL_ERRORS as exc:
        raise tunnel_error(exc, proxy, host, port) from exc
