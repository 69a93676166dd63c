"""The anyio backend of the shared async code (runs on asyncio and trio)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from functools import partial
from typing import Any, ClassVar, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from s2s_core.proxy import ProxyConfig
from s2s_core.urls import WebSocketTarget

from ._asyncio_stream import AsyncioByteStream, open_asyncio_stream

T = TypeVar("T")

_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError)


class AnyioBackend:
    """Backend for ``_s2s_async`` on anyio."""

    name = "anyio"

    @property
    def transport_errors(self) -> tuple[type[BaseException], ...]:
        """A broken transport's exceptions, trio's included once trio runs (see ``connect``)."""
        trio = sys.modules.get("trio")
        if trio is None:
            return _TRANSPORT_ERRORS
        return (*_TRANSPORT_ERRORS, trio.BrokenResourceError, trio.ClosedResourceError)

    async def connect(self, target: WebSocketTarget, ssl_context: ssl.SSLContext | None,
                      proxy: ProxyConfig | None = None) -> Any:
        # The running library's own streams: anyio's wrappers cost a loop
        # round-trip per send on asyncio, and a layer per call on trio.
        if not running_on_asyncio():
            from s2s_trio._backend import BACKEND as TRIO  # anyio's other backend is trio

            return await TRIO.connect(target, ssl_context, proxy)
        return await open_asyncio_stream(target.host, target.port, ssl_context, proxy,
                                         tls_server_name=target.tls_server_name)

    async def send_all(self, stream: Any, data: bytes) -> None:
        await stream.send_all(data)

    async def receive_some(self, stream: Any, max_bytes: int) -> bytes:
        data: bytes = await stream.receive_some(max_bytes)
        return data

    async def aclose_forcefully(self, stream: Any) -> None:
        if isinstance(stream, AsyncioByteStream):
            # Its aclose is bounded and aborts the transport itself; in anyio's
            # cancelled scope it could not wait for a close echo still buffered.
            await stream.aclose()
            return
        await anyio.aclose_forcefully(stream)

    def current_time(self) -> float:
        # anyio.current_time() detects the running library on every call; this
        # is called per message. On asyncio it is the loop's clock, as anyio's.
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return anyio.current_time()

    def clock(self) -> Callable[[], float]:
        # Bound once: get_running_loop() costs a getpid() system call per call.
        try:
            return asyncio.get_running_loop().time
        except RuntimeError:
            import trio  # anyio's other backend

            return trio.current_time

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    def event(self) -> Any:
        return self.event_type()()

    def event_type(self) -> Callable[[], Any]:
        # anyio.Event() looks up the running library (sniffio) at every creation,
        # and a connection makes one per wait for events.
        try:
            return partial(LoopEvent, asyncio.get_running_loop())
        except RuntimeError:
            return anyio.Event

    def task_group(self) -> AbstractAsyncContextManager[Any]:
        return anyio.create_task_group()

    def start_background(self, fn: Callable[[], Awaitable[None]], name: str) -> Any:
        if not running_on_asyncio():
            from s2s_trio._backend import BACKEND as TRIO  # anyio's other backend is trio

            return TRIO.start_background(fn, name)
        return AsyncioBackground(fn, name)

    async def run_sync_in_thread(self, fn: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)

    @contextmanager
    def move_on_at(self, deadline: float) -> Iterator[Any]:
        with anyio.CancelScope(deadline=deadline) as scope:
            yield scope

    @contextmanager
    def cancel_shielded(self) -> Iterator[Any]:
        with anyio.CancelScope(shield=True) as scope:
            yield scope

    def cancelled_class(self) -> type[BaseException]:
        return anyio.get_cancelled_exc_class()


class LoopEvent:
    """A one-shot flag on asyncio futures: ``set``, ``is_set``, ``wait``.

    Each waiter awaits a future of its own, so one cancelled waiter (anyio
    cancels by cancelling the awaited future) leaves the others waiting.
    Unlike anyio's, ``wait`` on a set flag returns without a schedule point.
    """

    __slots__ = ("_flag", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._flag = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def is_set(self) -> bool:
        return self._flag

    async def wait(self) -> None:
        if self._flag:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if not self._flag and self._waiters is not None:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)


class AsyncioBackground:
    """A plain asyncio task: no task group ties it to the task that started it."""

    _running: ClassVar[set[asyncio.Task[None]]] = set()  # the loop keeps only weak references

    def __init__(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        loop = asyncio.get_running_loop()
        self.done = LoopEvent(loop)
        self._task = loop.create_task(self._run(fn), name=name)
        self._running.add(self._task)
        self._task.add_done_callback(self._running.discard)

    async def _run(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except Exception:
            logging.getLogger("s2s_anyio").exception("background task failed")
        finally:
            self.done.set()

    def cancel(self) -> None:
        self._task.cancel()


def running_on_asyncio() -> bool:
    """Whether the running library is asyncio (anyio's other one is trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


BACKEND = AnyioBackend()

