"""Binding the shared async API to one backend (what each adapter exports)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from s2s_core.setup import Setup

from .backend import Backend
from .client import ClientOptions
from .client import connect as _connect
from .session import Connection, Session
from .session import open_connection as _open_connection

__all__ = ["ConnectFunction", "OpenConnectionFunction", "bind"]


class ConnectFunction(Protocol):
    def __call__(
        self,
        url: str,
        setup: Setup | Mapping[str, Any],
        *,
        api_key: str | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        connect_timeout: float | None = 10.0,
        ready_timeout: float | None = 15.0,
        idle_timeout: float | None = 60.0,
        close_timeout: float | None = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_message_size: int | None = 16 * 2**20,
        queue_size: int = 256,
        keep_audio: bool = False,
    ) -> AbstractAsyncContextManager[Session]: ...


class OpenConnectionFunction(Protocol):
    def __call__(self, url: str, *, api_key: str | None = None, token: str | None = None,
                 **kwargs: Any) -> AbstractAsyncContextManager[Connection]: ...


def bind(backend: Backend) -> tuple[ConnectFunction, OpenConnectionFunction]:
    """The adapter's ``connect`` and ``open_connection`` for ``backend``."""

    def connect(
        url: str,
        setup: Setup | Mapping[str, Any],
        *,
        api_key: str | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        connect_timeout: float | None = 10.0,
        ready_timeout: float | None = 15.0,
        idle_timeout: float | None = 60.0,
        close_timeout: float | None = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_message_size: int | None = 16 * 2**20,
        queue_size: int = 256,
        keep_audio: bool = False,
    ) -> AbstractAsyncContextManager[Session]:
        """Open a session: connect, send ``setup``; close when the block exits.

        Args:
            url: The ``ws://``/``wss://`` S2S endpoint.
            setup: A ``Setup`` or a dict of its fields.
            api_key: Sent as ``x-api-key``.
            token: Single-use token, sent as ``?token=``.
            ssl_context: Trust a custom CA (verification is always on).
            extra_headers: More upgrade headers.
            connect_timeout: TCP + TLS + upgrade (``ConnectTimeout``).
            ready_timeout: Setup to ready (``ReadyTimeout``).
            idle_timeout: Silence while a request is live (``IdleTimeout``).
            close_timeout: Closing handshake (``CloseTimeout``).
            ping_interval: Keepalive pings (None: off).
            ping_timeout: Pong wait (``KeepaliveTimeout``).
            max_message_size: Largest message accepted (``MessageTooBig``).
            queue_size: Events buffered before reading pauses (backpressure).
            keep_audio: Keep output audio for ``result()``.
        """
        options = ClientOptions(ssl_context=ssl_context, extra_headers=extra_headers,
                                connect_timeout=connect_timeout, ready_timeout=ready_timeout,
                                idle_timeout=idle_timeout, close_timeout=close_timeout,
                                ping_interval=ping_interval, ping_timeout=ping_timeout,
                                max_message_size=max_message_size, queue_size=queue_size)
        return _connect(backend, url, setup, api_key=api_key, token=token,
                        keep_audio=keep_audio, options=options)

    def open_connection(url: str, *, api_key: str | None = None, token: str | None = None,
                        **kwargs: Any) -> AbstractAsyncContextManager[Connection]:
        """Open a bare connection for several requests (``await conn.start(setup)``)."""
        return _open_connection(backend, url, api_key=api_key, token=token, **kwargs)

    return connect, open_connection
