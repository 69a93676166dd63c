"""Binding the shared async API to one backend (what each adapter exports)."""

from __future__ import annotations

from typing import Protocol, Unpack

from s2s_core.client_base import SetupLike
from s2s_core.client_docs import CONNECT, OPEN_CONNECTION, shared_doc
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

    @shared_doc(CONNECT)
    def connect(url: str, setup: SetupLike, *, api_key: str | None = None,
                token: str | None = None, keep_audio: bool = False,
                options: ClientOptions | None = None,
                **kwargs: Unpack[OptionKwargs]) -> OpenSession:
        """Open a session: ``async with connect(...) as session``; close when the block exits.

        Connects and sends ``setup`` on entry.
        """
        return OpenSession(backend, url, setup, api_key=api_key, token=token,
                           keep_audio=keep_audio,
                           options=ClientOptions.from_kwargs(options, **kwargs))

    @shared_doc(OPEN_CONNECTION)
    def open_connection(url: str, *, api_key: str | None = None, token: str | None = None,
                        options: ClientOptions | None = None,
                        **kwargs: Unpack[OptionKwargs]) -> OpenConnection:
        """Open a bare connection for several requests (``await conn.start(setup)``)."""
        return OpenConnection(backend, url, api_key=api_key, token=token,
                              options=ClientOptions.from_kwargs(options, **kwargs))

    return connect, open_connection
