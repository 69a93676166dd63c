"""Public events: what the peer said, as frozen msgspec Structs named after the wire.

Server events (``Ready``, ``Text``, ``Audio``, ``EndOfStream``, ``ErrorMessage``,
``UnknownMessage``) come out of ``ClientProtocol.receive_message`` and
``ClientConnection.events_received``; client events (``SetupReceived``,
``AudioReceived``, ``EndOfStreamReceived``) out of the server roles.
``Closed`` is the connection-level end, always the last event.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec
import numpy as np
import numpy.typing as npt

from ._pcm import pcm16_view
from .errors import S2SError
from .setup import Setup

__all__ = [
    "Ready",
    "Text",
    "Audio",
    "EndOfStream",
    "ErrorMessage",
    "UnknownMessage",
    "RequestStarted",
    "Closed",
    "ServerEvent",
    "StreamEvent",
    "Event",
    "SetupReceived",
    "AudioReceived",
    "EndOfStreamReceived",
    "ClientEvent",
    "ServerSideEvent",
]


class Ready(msgspec.Struct, frozen=True, kw_only=True):
    """The server accepted the setup.

    Attributes:
        request_id: The server's id for this request.
        sample_rate: Rate of the OUTPUT audio (the authority for PCM output).
        model_name: The model that serves the request, when sent.
        frame_size: Output samples per frame, when sent.
        client_req_id: The multiplexing id, when the request has one.
    """

    type: ClassVar[str] = "ready"
    request_id: str
    sample_rate: int
    model_name: str | None = None
    frame_size: int | None = None
    client_req_id: str | None = None


class Text(msgspec.Struct, frozen=True, kw_only=True):
    """A segment of (translated) text with its timing in the input audio."""

    type: ClassVar[str] = "text"
    text: str
    start_s: float
    stop_s: float
    stream_id: int | None = None
    client_req_id: str | None = None


class Audio(msgspec.Struct, frozen=True, kw_only=True):
    """A chunk of output audio, base64-decoded, in the setup's output format."""

    type: ClassVar[str] = "audio"
    audio: bytes
    start_s: float | None = None
    stop_s: float | None = None
    stream_id: int | None = None
    client_req_id: str | None = None

    def pcm16(self) -> npt.NDArray[np.int16]:
        """Zero-copy read-only int16 view of PCM output audio."""
        return pcm16_view(self.audio)


class EndOfStream(msgspec.Struct, frozen=True, kw_only=True):
    """The server has sent everything for the request."""

    type: ClassVar[str] = "end_of_stream"
    client_req_id: str | None = None


class ErrorMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The server's ``error`` message: terminal for its request."""

    type: ClassVar[str] = "error"
    message: str
    code: int | None = None
    client_req_id: str | None = None


class UnknownMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A well-formed message of a type this library does not know (kept raw)."""

    type: str
    raw: bytes


class RequestStarted(msgspec.Struct, frozen=True, kw_only=True):
    """The next request of a split input took over; it stands in for that request's ``Ready``.

    An input longer than the service's per-request limit is sent as several
    requests (``ClientOptions.max_request_s``); their events reach you as one
    stream. The first request's ``Ready`` comes as usual; each later one
    comes as this event, right after the previous request's last event, so a
    loop written for one request (``Ready``, then ``Text``/``Audio``, then one
    ``EndOfStream``) goes on working: it sees events of a type it does not
    handle, like ``UnknownMessage``.

    Attributes:
        index: The request's number in the input (1 for the second).
        input_start_s: Where its audio starts in the input, seconds (its
            ``Text`` and ``Audio`` timings are already shifted by it).
        ready: The request's own ``Ready``.
    """

    type: ClassVar[str] = "request_started"
    index: int
    input_start_s: float
    ready: Ready

    @property
    def request_id(self) -> str:
        """The server's id of the request."""
        return self.ready.request_id

    @property
    def client_req_id(self) -> str | None:
        """The request's multiplexing id, when it has one."""
        return self.ready.client_req_id


class Closed(msgspec.Struct, frozen=True, kw_only=True):
    """The connection is closed; the last event it will produce.

    Attributes:
        code: The close code (1006 when the transport ended without a close).
        reason: The close reason.
        error: Why this is a failure, or None for a normal end (a normal
            close after every request ended).
    """

    type: ClassVar[str] = "closed"
    code: int
    reason: str = ""
    error: S2SError | None = None


class SetupReceived(msgspec.Struct, frozen=True, kw_only=True):
    """(Server role) a validated setup from the client."""

    type: ClassVar[str] = "setup"
    setup: Setup


class AudioReceived(msgspec.Struct, frozen=True, kw_only=True):
    """(Server role) a chunk of input audio, base64-decoded."""

    type: ClassVar[str] = "audio"
    audio: bytes
    client_req_id: str | None = None


class EndOfStreamReceived(msgspec.Struct, frozen=True, kw_only=True):
    """(Server role) the client's end_of_stream; ``final`` when it closes the socket."""

    type: ClassVar[str] = "end_of_stream"
    client_req_id: str | None = None
    final: bool = False


ServerEvent = Ready | Text | Audio | EndOfStream | ErrorMessage | UnknownMessage
StreamEvent = Ready | Text | Audio | EndOfStream | ErrorMessage | UnknownMessage | RequestStarted
"""What a client's stream yields: the server's events, and ``RequestStarted`` at each
later request of a split input."""
Event = Ready | Text | Audio | EndOfStream | ErrorMessage | UnknownMessage | Closed
ClientEvent = SetupReceived | AudioReceived | EndOfStreamReceived
ServerSideEvent = SetupReceived | AudioReceived | EndOfStreamReceived | Closed
