"""s2s_trio: the S2S client for trio, trio-native (no anyio at run time).

Example:
    >>> async with s2s_trio.connect(url, setup, api_key=key) as session:
    ...     await session.send_audio(chunk)
    ...     await session.send_end_of_stream()
    ...     async for event in session:
    ...         print(event)
"""

from __future__ import annotations

from _s2s_async import client as _client
from _s2s_async.api import bind
from _s2s_async.client import S2SStream
from _s2s_async.connection import Connection
from _s2s_async.request import Request
from _s2s_async.session import Session
from s2s_core.errors import (
    ConnectionClosedError,
    HandshakeRejected,
    InvalidAudio,
    InvalidSetup,
    MissingCredentials,
    S2SError,
    S2STimeoutError,
    ServerError,
)
from s2s_core.events import (
    Audio,
    Closed,
    EndOfStream,
    ErrorMessage,
    Ready,
    RequestStarted,
    Text,
    UnknownMessage,
)
from s2s_core.options import ClientOptions
from s2s_core.results import S2SResult, TextWithTimestamps
from s2s_core.setup import Setup

from ._backend import BACKEND

__all__ = [
    "connect",
    "open_connection",
    "S2SClient",
    "S2SStream",
    "Session",
    "Request",
    "Connection",
    "ClientOptions",
    "MissingCredentials",
    # from s2s_core: what users of the client touch
    "Setup",
    "S2SResult",
    "TextWithTimestamps",
    "Audio",
    "Closed",
    "EndOfStream",
    "ErrorMessage",
    "Ready",
    "RequestStarted",
    "Text",
    "UnknownMessage",
    "S2SError",
    "ServerError",
    "ConnectionClosedError",
    "HandshakeRejected",
    "InvalidAudio",
    "InvalidSetup",
    "S2STimeoutError",
]

connect, open_connection = bind(BACKEND)


class S2SClient(_client.S2SClient):
    """The official SDK's S2S calls on trio: ``s2s_realtime``, ``s2s_stream``, ``s2s``.

    Args:
        api_key: Defaults to the GRADIUM_API_KEY environment variable.
        base_url: API base URL (``https://api.gradium.ai/api/``).
        region: Legacy ``"eu"``/``"us"`` host.
        token: Single-use token instead of a key (good for one connection).
        ssl_context: Trust a custom CA (verification is always on).
        options: Timeouts and limits (``ClientOptions``).
    """

    backend = BACKEND
