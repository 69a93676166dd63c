"""Message-level protocol objects: the S2S lifecycle without any WebSocket.

``ClientProtocol`` is for users who already have a WebSocket (websockets,
aiohttp, a browser bridge): it turns calls into JSON text to send and
received text into events. ``ServerProtocol`` is its mirror, used by the
local server. Both check every message against ``_state``'s table: our own
misuse raises ``LocalProtocolError`` and changes nothing; a peer's raises
``RemoteProtocolError``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from ._pcm import Int16Array, to_pcm16, wire_samples
from ._state import ENDED, SIDE_EFFECTS, Kind, RequestState, Sender, next_state
from ._wire import (
    AUDIO_MESSAGE_HEAD,
    audio_message_tail,
    b64encode,
    decode_audio_at,
    decode_client_audio,
    decode_client_message,
    decode_server_message,
    encode_end_of_stream,
    encode_error,
    encode_ready,
    encode_server_audio,
    encode_server_end_of_stream,
    encode_setup,
    encode_text,
)
from .errors import InvalidAudio, LocalProtocolError, RemoteProtocolError, S2SError
from .events import (
    Audio,
    AudioReceived,
    ClientEvent,
    EndOfStream,
    EndOfStreamReceived,
    ErrorMessage,
    Ready,
    ServerEvent,
    SetupReceived,
    Text,
    UnknownMessage,
)
from .formats import Codec, Direction, lookup_format
from .setup import Setup

__all__ = ["ClientProtocol", "ServerProtocol", "ProtocolState", "RequestInfo", "AudioInput"]

_WIRE_INT16 = np.dtype("<i2")
AudioInput = bytes | bytearray | memoryview | np.ndarray
"""Audio accepted by ``send_audio``: raw bytes in the input format, or samples."""

_KIND_OF_SERVER_EVENT: dict[type, Kind] = {
    Ready: Kind.READY,
    Text: Kind.TEXT,
    Audio: Kind.AUDIO,
    EndOfStream: Kind.END_OF_STREAM,
    ErrorMessage: Kind.ERROR,
}


# The hot path: text and audio while the server side streams. The table maps
# them to the same state with no side effect; checked here so the shortcut in
# ClientProtocol.receive_message cannot drift from the table.
_SERVER_STREAMING = RequestState.STREAMING
_SELF_LOOP_EVENTS = (Text, Audio)
for _kind in (Kind.TEXT, Kind.AUDIO):
    assert next_state(Sender.SERVER, _SERVER_STREAMING, _kind) is _SERVER_STREAMING
    assert (Sender.SERVER, _kind) not in SIDE_EFFECTS
# The same for the client's audio, which ClientProtocol._encode_audio_parts checks
# against STREAMING without applying anything.
_CLIENT_STREAMING = RequestState.STREAMING
assert next_state(Sender.CLIENT, _CLIENT_STREAMING, Kind.AUDIO) is _CLIENT_STREAMING
assert (Sender.CLIENT, Kind.AUDIO) not in SIDE_EFFECTS
_PCM16 = Codec.PCM16

# base64 reads any C-contiguous buffer, an int16 array included.
_b64encode = cast(Callable[[bytes | bytearray | memoryview | Int16Array], bytes], b64encode)


class ProtocolState(enum.Enum):
    """State of the socket as a whole, seen from the messages."""

    IDLE = "idle"
    """No request live; a setup may start one."""
    ACTIVE = "active"
    """At least one request is live."""
    FINISHED = "finished"
    """No more requests: the socket is (about to be) closed by the server."""


class RequestInfo:
    """What is known of one request (its id, both sides' states, ready)."""

    __slots__ = (
        "_audio_kind",
        "_audio_tail",
        "_sample_bytes",
        "client",
        "client_req_id",
        "closes_socket",
        "error",
        "ready",
        "server",
        "setup",
    )

    def __init__(self, setup: Setup) -> None:
        self.client_req_id = setup.client_req_id
        self.setup = setup
        self.client = RequestState.IDLE
        self.server = RequestState.IDLE
        self.ready: Ready | None = None
        self.error: ErrorMessage | None = None
        self.closes_socket = not setup.reuses_socket
        fmt = lookup_format(setup.input_format, Direction.INPUT)
        self._audio_kind = fmt.codec
        self._sample_bytes = fmt.bytes_per_sample or 1
        self._audio_tail = audio_message_tail(setup.client_req_id)

    @property
    def ended(self) -> bool:
        """True once the server side is done or failed."""
        return self.server in ENDED

    def __repr__(self) -> str:
        return (f"RequestInfo(client_req_id={self.client_req_id!r}, client={self.client.value}, "
                f"server={self.server.value})")


class _Lifecycle:
    """The requests of one socket, and the table applied to them."""

    def __init__(self) -> None:
        self.requests: dict[str | None, RequestInfo] = {}
        self.finished = False
        self.reusable: bool | None = None

    @property
    def state(self) -> ProtocolState:
        if self.finished:
            return ProtocolState.FINISHED
        if any(not r.ended for r in self.requests.values()):
            return ProtocolState.ACTIVE
        return ProtocolState.IDLE

    def live(self) -> list[RequestInfo]:
        return [r for r in self.requests.values() if not r.ended]

    def check_setup(self, setup: Setup) -> str | None:
        """Why ``setup`` cannot start a request now, or None."""
        if self.finished:
            return "the socket takes no more requests (its last request ended or it is closing)"
        if self.reusable is False:
            return ("the socket is single-use: send close_ws_on_eos=False in the first setup "
                    "to reuse it")
        rid = setup.client_req_id
        previous = self.requests.get(rid)
        if previous is not None and not previous.ended:
            return f"client_req_id {rid!r} is still live"
        live = self.live()
        if live and (rid is None or any(r.client_req_id is None for r in live)):
            return "concurrent requests on one socket need a distinct client_req_id each"
        return None

    def start(self, setup: Setup) -> RequestInfo:
        request = RequestInfo(setup)
        self.requests[setup.client_req_id] = request
        if self.reusable is None:
            self.reusable = setup.reuses_socket
        self._apply(request, Sender.CLIENT, Kind.SETUP)
        return request

    def route(self, client_req_id: str | None) -> RequestInfo | None:
        """The request a message belongs to (an unscoped message goes to the only one)."""
        request = self.requests.get(client_req_id)
        if request is None and client_req_id is None:
            live = self.live()
            if len(live) == 1:
                return live[0]
        return request

    def allowed(self, request: RequestInfo, sender: Sender, kind: Kind) -> RequestState | None:
        state = request.client if sender is Sender.CLIENT else request.server
        return next_state(sender, state, kind)

    def _apply(self, request: RequestInfo, sender: Sender, kind: Kind) -> None:
        if sender is Sender.CLIENT:
            target = next_state(sender, request.client, kind)
            assert target is not None
            request.client = target
        else:
            target = next_state(sender, request.server, kind)
            assert target is not None
            request.server = target
        effect = SIDE_EFFECTS.get((sender, kind))
        if effect is not None:
            other, forced = effect
            if other is Sender.CLIENT:
                if request.client not in ENDED:
                    request.client = forced
            elif request.server not in ENDED:
                request.server = forced
        if request.ended and request.closes_socket:
            self.finished = True

    def apply(self, request: RequestInfo, sender: Sender, kind: Kind) -> None:
        self._apply(request, sender, kind)

    def final_end_of_stream_ok(self) -> bool:
        """An unscoped end_of_stream with no unscoped request live closes the socket."""
        return not self.finished and self.reusable is True and not self.live()


def _describe(request: RequestInfo | None, kind: Kind, sender: Sender) -> str:
    if request is None:
        return f"{kind.value} is not allowed: no request is open (send setup first)"
    state = request.client if sender is Sender.CLIENT else request.server
    rid = f" {request.client_req_id!r}" if request.client_req_id is not None else ""
    return f"{kind.value} is not allowed in request{rid} whose {sender.value} side is {state.value}"


class ClientProtocol:
    """The client's side of the S2S protocol over text messages, no I/O.

    Example:
        >>> proto = ClientProtocol()
        >>> websocket.send(proto.send_setup(Setup(voice_id="v")))
        >>> for event in proto.receive_message(websocket.recv()): ...
    """

    def __init__(self) -> None:
        self._life = _Lifecycle()

    @property
    def state(self) -> ProtocolState:
        """The socket-level state seen from the messages."""
        return self._life.state

    def request(self, client_req_id: str | None = None) -> RequestInfo | None:
        """The request with this id (None: the unscoped one), if any."""
        return self._life.requests.get(client_req_id)

    # -- sending: the text to send (ClientConnection frames the private bytes twins) --

    def send_setup(self, setup: Setup | Mapping[str, Any]) -> str:
        """Start a request; returns the JSON text to send."""
        return self._encode_setup(setup).decode()

    def send_audio(self, audio: AudioInput, client_req_id: str | None = None, *,
                   downmix: bool = False) -> str:
        """Send one chunk of input audio; returns the JSON text to send.

        Args:
            audio: Bytes in the input format, or numpy samples (pcm formats):
                int16, float32/64 (clipped), 1-D, or 2-D (samples, channels)
                or (channels, samples) (``s2s_core.audio.channels_last``).
            client_req_id: The request (None: the unscoped one).
            downmix: Average the channels of a 2-D array instead of refusing it.

        Raises:
            InvalidAudio: The chunk is not valid for the input format.
            LocalProtocolError: The request cannot take audio now.
        """
        return self._encode_audio(audio, client_req_id, downmix=downmix).decode()

    def send_end_of_stream(self, client_req_id: str | None = None) -> str:
        """End the input of a request (or, unscoped with none live, the socket)."""
        return self._encode_end_of_stream(client_req_id).decode()

    def _encode_setup(self, setup: Setup | Mapping[str, Any]) -> bytes:
        """``send_setup`` as UTF-8 bytes (what ``ClientConnection`` frames)."""
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        why = self._life.check_setup(setup)
        if why is not None:
            raise LocalProtocolError(f"cannot send setup: {why}")
        self._life.start(setup)
        return encode_setup(setup)

    def _encode_audio(self, audio: AudioInput, client_req_id: str | None = None, *,
                      downmix: bool = False) -> bytes:
        """``send_audio`` as UTF-8 bytes (what ``ClientConnection`` frames)."""
        return b"".join(self._encode_audio_parts(audio, client_req_id, downmix=downmix))

    def _encode_audio_parts(self, audio: AudioInput, client_req_id: str | None = None, *,
                            downmix: bool = False) -> tuple[bytes, bytes, bytes]:
        """Like ``_encode_audio``, as the message's head, base64 audio and tail, unjoined.

        A frame writer copies the three once into the frame (``FrameWriter.text_frame``).
        """
        request = self._life.requests.get(client_req_id)
        if request is None or request.client is not _CLIENT_STREAMING or request.server in ENDED:
            raise _audio_refusal(request)
        # The table's no-op self-loop (asserted at import): nothing to apply.
        samples: bytes | bytearray | memoryview | Int16Array | None = None
        if type(audio) is np.ndarray and request._audio_kind is _PCM16:
            samples = wire_samples(audio)  # numpy samples go to base64 as an int16 array
        if samples is None:
            samples = _input_bytes(audio, request, downmix)
        return AUDIO_MESSAGE_HEAD, _b64encode(samples), request._audio_tail

    def _encode_end_of_stream(self, client_req_id: str | None = None) -> bytes:
        """``send_end_of_stream`` as UTF-8 bytes (what ``ClientConnection`` frames)."""
        life = self._life
        request = life.requests.get(client_req_id)
        if request is not None and request.client is RequestState.STREAMING:
            life.apply(request, Sender.CLIENT, Kind.END_OF_STREAM)
            return encode_end_of_stream(client_req_id)
        if client_req_id is None and life.final_end_of_stream_ok():
            life.finished = True
            return encode_end_of_stream(None)
        raise LocalProtocolError(
            f"cannot send end_of_stream: {_describe(request, Kind.END_OF_STREAM, Sender.CLIENT)}"
        )

    # -- receiving --

    def _receive_audio_at(self, data: bytes, start: int) -> Audio | None:
        """``receive_message(data[start:])`` for its common case, or None.

        The common case: an ``audio`` message that ``decode_audio_at`` takes (it
        need not have been checked as UTF-8 first) for a request whose server
        side streams, the table's no-op self-loop. None, with nothing changed,
        for anything else: call ``receive_message``.
        """
        event = decode_audio_at(data, start)
        if event is None:
            return None
        request = self._life.requests.get(event.client_req_id)
        if request is None or request.server is not _SERVER_STREAMING:
            return None
        return event

    def receive_message(self, data: str | bytes) -> list[ServerEvent]:
        """Decode one server message and apply it to the lifecycle.

        Returns:
            The events it carries (one, as a list for symmetry with the
            connection level).

        Raises:
            RemoteProtocolError: Malformed, or not allowed now (the state is
                unchanged; the caller should close the socket).
        """
        event = decode_server_message(data)
        if type(event) in _SELF_LOOP_EVENTS:
            request = self._life.requests.get(event.client_req_id)  # type: ignore[union-attr]
            if request is not None and request.server is _SERVER_STREAMING:
                return [event]  # the table's no-op self-loop, without the lookups
        kind = _KIND_OF_SERVER_EVENT.get(type(event))
        if kind is None:
            return [event]  # unknown message types never move the lifecycle
        client_req_id: str | None = event.client_req_id  # type: ignore[union-attr]
        life = self._life
        request = life.route(client_req_id)
        if kind is Kind.ERROR and client_req_id is None and request is not None and request.ended:
            request = None  # an unscoped error between requests is about the socket
        if request is None:
            if kind is Kind.ERROR:
                # An unscoped error with no single request to blame: the socket is done.
                life.finished = True
                for live in life.live():
                    live.server = live.client = RequestState.FAILED
                    live.error = event  # type: ignore[assignment]
                return [event]
            raise RemoteProtocolError(
                f"server sent {kind.value} for unknown client_req_id {client_req_id!r}"
                if client_req_id is not None else
                f"server sent {kind.value} with no request open"
            )
        if life.allowed(request, Sender.SERVER, kind) is None:
            raise RemoteProtocolError(f"server broke the protocol: "
                                      f"{_describe(request, kind, Sender.SERVER)}")
        life.apply(request, Sender.SERVER, kind)
        if kind is Kind.READY:
            assert isinstance(event, Ready)
            request.ready = event
        elif kind is Kind.ERROR:
            assert isinstance(event, ErrorMessage)
            request.error = event
        return [event]


def _audio_refusal(request: RequestInfo | None) -> LocalProtocolError:
    if request is None or request.client is not _CLIENT_STREAMING:
        return LocalProtocolError(
            f"cannot send audio: {_describe(request, Kind.AUDIO, Sender.CLIENT)}")
    return LocalProtocolError("cannot send audio: the server already ended the request")


def _input_bytes(audio: AudioInput, request: RequestInfo,
                 downmix: bool) -> bytes | bytearray | memoryview:
    if isinstance(audio, np.ndarray):
        if request._audio_kind is not Codec.PCM16:
            raise InvalidAudio(
                f"numpy audio needs a pcm input_format; this request sends "
                f"{request.setup.input_format!r} (pass encoded bytes instead)"
            )
        if audio.dtype == _WIRE_INT16 and audio.ndim == 1 and audio.flags.c_contiguous:
            return audio.data  # already wire samples: base64 reads them in place
        return to_pcm16(audio, downmix=downmix)
    if not isinstance(audio, (bytes, bytearray, memoryview)):
        raise InvalidAudio(f"audio must be bytes or a numpy array, not {type(audio).__name__}")
    if request._sample_bytes == 2 and len(audio) % 2:
        raise InvalidAudio(
            f"pcm audio must hold whole 16-bit samples; got {len(audio)} bytes (odd)"
        )
    return audio


class ServerProtocol:
    """The server's side of the S2S protocol over text messages, no I/O.

    ``receive_message`` raises ``RemoteProtocolError`` whose ``close_code``
    is the error code to answer with (1002 for order, 1008 for a bad setup).
    """

    def __init__(self) -> None:
        self._life = _Lifecycle()

    @property
    def state(self) -> ProtocolState:
        """The socket-level state seen from the messages."""
        return self._life.state

    def request(self, client_req_id: str | None = None) -> RequestInfo | None:
        """The request with this id (None: the unscoped one), if any."""
        return self._life.requests.get(client_req_id)

    def receive_message(self, data: str | bytes) -> list[ClientEvent | UnknownMessage]:
        """Decode one client message and apply it to the lifecycle.

        Raises:
            RemoteProtocolError: Malformed or out of order (``close_code``
                1002), or a setup with a bad field (1008).
        """
        if type(data) is bytes:
            # The hot path: audio in a request both sides stream (checked against
            # the table at import, like the client's).
            audio = decode_client_audio(data)
            if audio is not None:
                request = self._life.requests.get(audio.client_req_id)
                if (request is not None and request.client is _CLIENT_STREAMING
                        and request.server not in ENDED):
                    return [audio]
                return self._receive_event(audio)
        try:
            event = decode_client_message(data)
        except S2SError as exc:
            if isinstance(exc, RemoteProtocolError):
                raise
            raise RemoteProtocolError(str(exc), close_code=1008) from None
        return self._receive_event(event)

    def _receive_event(self, event: ClientEvent | UnknownMessage) -> list[
            ClientEvent | UnknownMessage]:
        """Apply one decoded client message to the lifecycle (see ``receive_message``)."""
        life = self._life
        if isinstance(event, SetupReceived):
            why = life.check_setup(event.setup)
            if why is not None:
                raise RemoteProtocolError(f"setup refused: {why}", close_code=1002)
            life.start(event.setup)
            return [event]
        if isinstance(event, UnknownMessage):
            raise RemoteProtocolError(f"unknown message type {event.type!r}", close_code=1002)
        kind = Kind.AUDIO if isinstance(event, AudioReceived) else Kind.END_OF_STREAM
        request = life.requests.get(event.client_req_id)
        if request is None and not life.requests:
            raise RemoteProtocolError("Session not found. Send setup first.", close_code=1002)
        if (kind is Kind.END_OF_STREAM and (request is None or request.client in ENDED)
                and event.client_req_id is None and life.final_end_of_stream_ok()):
            life.finished = True
            return [EndOfStreamReceived(final=True)]
        if request is not None and request.server in ENDED:
            # Sent before the client saw our end of the request: a race, not a fault.
            return []
        if request is None or life.allowed(request, Sender.CLIENT, kind) is None:
            raise RemoteProtocolError(
                f"client broke the protocol: {_describe(request, kind, Sender.CLIENT)}",
                close_code=1002,
            )
        life.apply(request, Sender.CLIENT, kind)
        return [event]

    def _server_send(self, kind: Kind, client_req_id: str | None) -> RequestInfo:
        request = self._life.route(client_req_id)
        if request is None or self._life.allowed(request, Sender.SERVER, kind) is None:
            raise LocalProtocolError(f"cannot send {kind.value}: "
                                     f"{_describe(request, kind, Sender.SERVER)}")
        self._life.apply(request, Sender.SERVER, kind)
        return request

    def send_ready(self, request_id: str, sample_rate: int, *, frame_size: int | None = None,
                   model_name: str | None = None, client_req_id: str | None = None) -> bytes:
        """Accept the request's setup."""
        request = self._server_send(Kind.READY, client_req_id)
        request.ready = Ready(request_id=request_id, sample_rate=sample_rate,
                              frame_size=frame_size, model_name=model_name,
                              client_req_id=client_req_id)
        return encode_ready(request_id, sample_rate, model_name=model_name,
                            frame_size=frame_size, client_req_id=client_req_id)

    def _streaming(self, client_req_id: str | None) -> bool:
        """Whether the server side of this request streams: text and audio change nothing."""
        request = self._life.requests.get(client_req_id)
        return request is not None and request.server is _SERVER_STREAMING

    def send_text(self, text: str, start_s: float, stop_s: float, *,
                  client_req_id: str | None = None, stream_id: int | None = None) -> bytes:
        """Send a text segment."""
        if not self._streaming(client_req_id):
            self._server_send(Kind.TEXT, client_req_id)
        return encode_text(text, start_s, stop_s, stream_id=stream_id,
                           client_req_id=client_req_id)

    def send_audio(self, audio: bytes | bytearray | memoryview, start_s: float | None = None,
                   stop_s: float | None = None, *, client_req_id: str | None = None,
                   stream_id: int | None = None) -> bytes:
        """Send a chunk of output audio."""
        if not self._streaming(client_req_id):
            self._server_send(Kind.AUDIO, client_req_id)
        return encode_server_audio(audio, start_s, stop_s, stream_id=stream_id,
                                   client_req_id=client_req_id)

    def send_end_of_stream(self, client_req_id: str | None = None) -> bytes:
        """End the request's output."""
        self._server_send(Kind.END_OF_STREAM, client_req_id)
        return encode_server_end_of_stream(client_req_id)

    def send_error(self, message: str, code: int | None, client_req_id: str | None = None) -> bytes:
        """Fail a request (or, with no request to scope it to, the socket)."""
        request = self._life.route(client_req_id)
        if request is not None and not request.ended:
            self._life.apply(request, Sender.SERVER, Kind.ERROR)
        else:
            self._life.finished = True
        return encode_error(message, code, client_req_id)
