"""Binding the shared async API to one backend (what each adapter exports)."""

from __future__ import annotations

from typing import Protocol, Unpack

from s2s_core.client_base import SetupLike
from s2s_core.options import ClientOptions, OptionKwargs

from .backend import Backend
from .connection import OpenConnection
from .session import OpenSession

__all__ = ["ConnectFunction", "OpenConnectionFunction", "bind"]


class ConnectFunction(Protocol):
    def __call__(self, url: str, setup: SetupLike, *, api_key: str | None = None,
                 token: str | None = None, keep_audio: bool = False,
                 options: ClientOptions | None = None,
                 **kwargs: Unpack[OptionKwargs]) -> OpenSession: ...


class OpenConnectionFunction(Protocol):
    def __call__(self, url: str, *, api_key: str | None = None, token: str | None = None,
                 options: ClientOptions | None = None,
                 **kwargs: Unpack[OptionKwargs]) -> OpenConnection: ...


def bind(backend: Backend) -> tuple[ConnectFunction, OpenConnectionFunction]:
    """The adapter's ``connect`` and ``open_connection`` for ``backend``."""

    def connect(url: str, setup: SetupLike, *, api_key: str | None = None,
                token: str | None = None, keep_audio: bool = False,
                options: ClientOptions | None = None,
                **kwargs: Unpack[OptionKwargs]) -> OpenSession:
        """Open a session: connect, send ``setup``; close when the block exits.

        Args:
            url: The ``ws://``/``wss://`` S2S endpoint.
            setup: A ``Setup`` or a dict of its fields.
            api_key: Sent as ``x-api-key``.
            token: Single-use token, sent as ``?token=``.
            keep_audio: Keep output audio for ``result()``.
            options: Every connection setting (``ClientOptions``).
            **kwargs: Any ``ClientOptions`` field, replacing ``options``'
                (``connect_timeout=``, ``idle_timeout=``, ``queue_size=``...).
        """
        return OpenSession(backend, url, setup, api_key=api_key, token=token,
                           keep_audio=keep_audio,
                           options=ClientOptions.from_kwargs(options, **kwargs))

    def open_connection(url: str, *, api_key: str | None = None, token: str | None = None,
                        options: ClientOptions | None = None,
                        **kwargs: Unpack[OptionKwargs]) -> OpenConnection:
        """Open a bare connection for several requests (``await conn.start(setup)``).

        Arguments as for ``connect``.
        """
        return OpenConnection(backend, url, api_key=api_key, token=token,
                              options=ClientOptions.from_kwargs(options, **kwargs))

    return connect, open_connection
