"""The trio-native backend of the shared async code (no anyio at run time)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

import trio

from s2s_core.proxy import NO_TUNNEL_TIMEOUT, TUNNEL_ERRORS, ProxyConfig, tunnel_args, tunnel_error
from s2s_core.urls import WebSocketTarget

T = TypeVar("T")


class TrioBackend:
    """Backend for ``_s2s_async`` on trio."""

    name = "trio"
    transport_errors: tuple[type[BaseException], ...] = (
        OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)

    async def connect(self, target: WebSocketTarget, ssl_context: ssl.SSLContext | None,
                      proxy: ProxyConfig | None = None) -> Any:
        stream: trio.abc.Stream
        if proxy is None:
            stream = await trio.open_tcp_stream(target.host, target.port)
        else:
            stream = trio.SocketStream(await _tunnel(proxy, target))
        # TLS to the service inside the tunnel: SNI and verification name the service.
        if ssl_context is not None:
            tls = trio.SSLStream(stream, ssl_context, server_hostname=target.tls_server_name,
                                 https_compatible=False)
            try:
                await tls.do_handshake()
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            return tls
        return stream

    async def send_all(self, stream: Any, data: bytes) -> None:
        await stream.send_all(data)

    async def receive_some(self, stream: Any, max_bytes: int) -> bytes:
        data: bytes = await stream.receive_some(max_bytes)
        return data

    async def aclose_forcefully(self, stream: Any) -> None:
        await trio.aclose_forcefully(stream)

    def current_time(self) -> float:
        return trio.current_time()

    def clock(self) -> Callable[[], float]:
        return trio.current_time

    async def sleep_until(self, deadline: float) -> None:
        await trio.sleep_until(deadline)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    def event(self) -> trio.Event:
        return trio.Event()

    def event_type(self) -> Callable[[], trio.Event]:
        return trio.Event

    def task_group(self) -> AbstractAsyncContextManager[Any]:
        return trio.open_nursery()

    def start_background(self, fn: Callable[[], Awaitable[None]], name: str) -> TrioBackground:
        return TrioBackground(fn, name)

    async def run_sync_in_thread(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, abandon_on_cancel=True)

    @contextmanager
    def move_on_at(self, deadline: float) -> Iterator[Any]:
        with trio.move_on_at(deadline) as scope:
            yield scope

    @contextmanager
    def cancel_shielded(self) -> Iterator[Any]:
        with trio.CancelScope(shield=True) as scope:
            yield scope

    def cancelled_class(self) -> type[BaseException]:
        return trio.Cancelled


class TrioBackground:
    """A trio system task: outside every caller's nursery, so any task may end it."""

    def __init__(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        self.done = trio.Event()
        self._scope = trio.CancelScope()
        trio.lowlevel.spawn_system_task(self._run, fn, name=name)

    async def _run(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            with self._scope:
                await fn()
        except Exception:
            # A system task's exception would crash the whole run (TrioInternalError).
            logging.getLogger("s2s_trio").exception("background task failed")
        finally:
            self.done.set()

    def cancel(self) -> None:
        self._scope.cancel()
async def _tunnel(proxy: ProxyConfig, target: WebSocketTarget) -> trio.socket.SocketType:
    """A socket connected to ``target`` through ``proxy`` (python-socks' trio flavour)."""
    from python_socks.async_.trio import Proxy

    try:
        return await Proxy(**tunnel_args(proxy)).connect(target.host, target.port,
                                                         timeout=NO_TUNNEL_TIMEOUT)
    except TUNNEL_ERRORS as exc:
        raise tunnel_error(exc, proxy, target.host, target.port) from exc


BACKEND = TrioBackend()
