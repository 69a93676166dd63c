"""s2s_threaded: the S2S client for plain synchronous programs (blocking calls).

Each connection runs one background thread, the reader; your threads send
their own audio (and wait when the socket is full). Every blocking call
wakes up on ``close()`` from any thread, and on Ctrl-C.

Example:
    >>> with s2s_threaded.connect(url, setup, api_key=key) as session:
    ...     session.send_audio(chunk)
    ...     session.send_end_of_stream()
    ...     for event in session:
    ...         print(event)
"""

from __future__ import annotations

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

from .client import S2SClient, S2SStream, connect, open_connection
from .connection import Connection
from .request import Request
from .session import Session

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
