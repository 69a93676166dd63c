"""The anyio backend of the shared async code (runs on asyncio and trio)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from s2s_core.urls import WebSocketTarget


class AnyioBackend:
    """Backend for ``_s2s_async`` on anyio."""

    name = "anyio"
    transport_errors: tuple[type[BaseException], ...] = (
        OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError)

    async def connect(self, target: WebSocketTarget, ssl_context: ssl.SSLContext | None) -> Any:
        stream: anyio.abc.ByteStream = await anyio.connect_tcp(target.host, target.port)
        if ssl_context is not None:
            try:
                stream = await TLSStream.wrap(stream, hostname=target.host,
                                              ssl_context=ssl_context, standard_compatible=False)
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
        return stream

    async def send_all(self, stream: Any, data: bytes) -> None:
        await stream.send(data)

    async def receive_some(self, stream: Any, max_bytes: int) -> bytes:
        try:
            data: bytes = await stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        return data

    async def aclose_forcefully(self, stream: Any) -> None:
        await anyio.aclose_forcefully(stream)

    def current_time(self) -> float:
        # anyio.current_time() detects the running library on every call; this
        # is called per message. On asyncio it is the loop's clock, as anyio's.
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return anyio.current_time()

    async def sleep_until(self, deadline: float) -> None:
        await anyio.sleep_until(deadline)

    async def checkpoint(self) -> None:
        await anyio.lowlevel.checkpoint()

    def event(self) -> anyio.Event:
        return anyio.Event()

    def lock(self) -> Any:
        return anyio.Lock()

    def task_group(self) -> AbstractAsyncContextManager[Any]:
        return anyio.create_task_group()

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


BACKEND = AnyioBackend()

