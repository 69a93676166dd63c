"""The few primitives the shared async code needs from an event-loop library."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable

from s2s_core.proxy import ProxyConfig
from s2s_core.urls import WebSocketTarget

T = TypeVar("T")


class ByteStream(Protocol):
    """A connected transport, as the backend wraps it."""


class CancelScope(Protocol):
    """A scope that can be cancelled and tells whether it caught a cancellation."""

    @property
    def cancelled_caught(self) -> bool: ...

    def cancel(self) -> None: ...


class TaskGroup(Protocol):
    """A structured group of tasks."""

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None: ...

    @property
    def cancel_scope(self) -> CancelScope: ...


class Event(Protocol):
    """A one-shot flag tasks can wait on."""

    def set(self) -> None: ...

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


class Background(Protocol):
    """A task that runs apart from the task that started it (a connection's reader).

    It outlives the caller's cancel scopes, so a connection can be closed
    from any task; ``cancel`` ends it, ``done`` is set once it returned.
    """

    @property
    def done(self) -> Event: ...

    def cancel(self) -> None: ...


class Timer(Protocol):
    """A callback scheduled on the event loop."""

    def cancel(self) -> None: ...


@runtime_checkable
class PushStream(Protocol):
    """A stream whose input comes in the event loop's own callbacks (asyncio's).

    A connection on such a stream needs no task of its own: ``set_receiver``
    makes the stream call ``data_in``/``eof_in``/``lost_in`` on it, writes go
    to the transport at once (``write_nowait``; ``drain`` waits while its
    buffer is over its limit), and the core's deadline is a loop timer
    (``call_at``, on the backend's clock).
    """

    @property
    def writing_paused(self) -> bool: ...

    def set_receiver(self, receiver: Any) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def write_nowait(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close_soon(self, abort_after: float) -> None: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer: ...


class Backend(Protocol):
    """What an adapter supplies: transport, clock, sleeping, tasks, events."""

    name: str
    @property
    def transport_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions of a broken transport (reset, closed, TLS failure)."""
        ...
    async def connect(self, target: WebSocketTarget, ssl_context: ssl.SSLContext | None,
                      proxy: ProxyConfig | None = None) -> Any:
        """A byte stream to ``target``: TCP (through ``proxy``'s tunnel when given), then TLS
        with the service's host name when ``ssl_context`` is given.

        Raises:
            ProxyError: The proxy was unreachable or refused the tunnel.
            ConnectTimeout: The proxy did not open the tunnel in time.
            OSError: (or another of ``transport_errors``) the socket or TLS failed.
        """
        ...

    async def send_all(self, stream: Any, data: bytes) -> None: ...

    async def receive_some(self, stream: Any, max_bytes: int) -> bytes:
        """Bytes read; b"" at end of stream."""
        ...

    async def aclose_forcefully(self, stream: Any) -> None: ...

    def current_time(self) -> float: ...

    def clock(self) -> Callable[[], float]:
        """``current_time`` bound to the running loop (cheaper per call; same values)."""
        ...

    async def sleep_until(self, deadline: float) -> None: ...

    async def checkpoint(self) -> None: ...

    def event(self) -> Event: ...

    def event_type(self) -> Callable[[], Event]:
        """What ``event`` makes, bound to the running loop (cheaper per event)."""
        ...

    def task_group(self) -> AbstractAsyncContextManager[TaskGroup]: ...

    def start_background(self, fn: Callable[[], Awaitable[None]], name: str) -> Background:
        """Run ``fn`` in a task of its own (it must not raise: it logs and returns)."""
        ...

    async def run_sync_in_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread; a cancelled caller does not wait for it (abandoned)."""
        ...

    def move_on_at(self, deadline: float) -> AbstractContextManager[CancelScope]: ...

    def cancel_shielded(self) -> AbstractContextManager[CancelScope]: ...

    def cancelled_class(self) -> type[BaseException]: ...
