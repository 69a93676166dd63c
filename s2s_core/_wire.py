"""Wire codec: JSON text messages <-> events, both directions.

Decoding goes through one msgspec tagged-union decoder per direction. Audio
payloads are kept as ``msgspec.Raw`` and base64-decoded with pybase64, which
is about twice as fast as msgspec's own base64 on 10 KB frames. Unknown
message types become ``UnknownMessage``; anything malformed becomes a
``RemoteProtocolError`` naming the message type and the field.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

import msgspec

from ._surrogates import replace_lone_surrogates
from .errors import InvalidSetup, RemoteProtocolError
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
from .setup import JSON_CONFIG_KEYS, Setup

try:
    from functools import partial as _partial

    import pybase64 as _b64

    # Bound C callables: no Python frame per call on the hot paths.
    _b64decode: Callable[[bytes | str | memoryview], bytes] = _partial(
        _b64.b64decode, validate=True)
    _b64encode: Callable[[bytes | bytearray | memoryview], bytes] = _b64.b64encode

except ImportError:  # pragma: no cover - pybase64 is a dependency; this is a safety net
    import base64 as _std_b64

    def _b64decode(data: bytes | str | memoryview) -> bytes:
        return _std_b64.b64decode(data, validate=True)

    def _b64encode(data: bytes | bytearray | memoryview) -> bytes:
        return _std_b64.b64encode(data)


__all__ = [
    "encode_setup",
    "encode_audio",
    "AUDIO_MESSAGE_HEAD",
    "audio_message_tail",
    "encode_end_of_stream",
    "decode_server_message",
    "decode_audio_at",
    "encode_ready",
    "encode_text",
    "encode_server_audio",
    "encode_server_end_of_stream",
    "encode_error",
    "decode_client_message",
    "decode_client_audio",
    "b64encode",
    "b64decode",
]

b64encode = _b64encode
b64decode = _b64decode


# --- server -> client -------------------------------------------------------

class _ReadyWire(msgspec.Struct, tag="ready", tag_field="type"):
    request_id: str
    sample_rate: int
    model_name: str | None = None
    frame_size: int | None = None
    client_req_id: str | None = None


class _TextWire(msgspec.Struct, tag="text", tag_field="type"):
    text: str
    start_s: float
    stop_s: float | None = None
    stream_id: int | None = None
    client_req_id: str | None = None


class _AudioWire(msgspec.Struct, tag="audio", tag_field="type"):
    audio: msgspec.Raw
    start_s: float | None = None
    stop_s: float | None = None
    stream_id: int | None = None
    client_req_id: str | None = None


class _EndWire(msgspec.Struct, tag="end_of_stream", tag_field="type"):
    client_req_id: str | None = None


class _ErrorWire(msgspec.Struct, tag="error", tag_field="type"):
    message: str = ""
    code: int | None = None
    client_req_id: str | None = None


_ServerWire = _ReadyWire | _TextWire | _AudioWire | _EndWire | _ErrorWire
_server_decoder = msgspec.json.Decoder(_ServerWire)
_SERVER_TYPES = frozenset(("ready", "text", "audio", "end_of_stream", "error"))


def _raw_base64(raw: msgspec.Raw, kind: str) -> bytes:
    """Decode a Raw JSON string holding base64 without building a str first."""
    body = memoryview(raw)
    if len(body) < 2 or body[0] != 0x22 or body[-1] != 0x22:
        raise RemoteProtocolError(f"{kind} message: field 'audio' must be a base64 string")
    try:
        return _b64decode(body[1:-1])
    except (binascii.Error, ValueError):
        pass
    # Slow path: the JSON string may hold escapes such as "\/" that a strict
    # base64 decoder rejects; undo them, then decode again.
    try:
        return _b64decode(msgspec.json.decode(body, type=str))
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise RemoteProtocolError(
            f"{kind} message: field 'audio' is not valid base64 ({exc})"
        ) from None


class _AudioTail(msgspec.Struct, gc=False):
    """The members after ``audio`` in the usual layout.

    ``type`` and ``audio`` are there only to see a duplicate (under any spelling of
    the key, escapes included): an empty ``Raw`` means absent, since any JSON value,
    ``null`` included, gives a non-empty one.
    """

    start_s: float | None = None
    stop_s: float | None = None
    stream_id: int | None = None
    client_req_id: str | None = None
    type: msgspec.Raw = msgspec.Raw()
    audio: msgspec.Raw = msgspec.Raw()


_audio_wire_decoder = msgspec.json.Decoder(_AudioWire)
_audio_tail_decoder = msgspec.json.Decoder(_AudioTail)
_AUDIO_KEY = b'"audio":"'
_AUDIO_PREFIX = b'{"type":"audio","audio":"'  # how the service and the local server start
_TAIL_OPEN = b'{"":0'
# How far from the end of a message its base64 audio's closing quote is looked for.
_TAIL_WINDOW = 1024


def decode_audio_at(data: bytes, start: int = 0) -> Audio | None:
    """Decode the ``audio`` message ``data[start:]`` without a JSON parser scanning its payload.

    The base64 string is most of the message: it is base64-decoded in place
    (pybase64's strict mode accepts only the base64 alphabet, so the string
    holds no escape and no quote), and only the rest is parsed. Returns None
    whenever the shortcut cannot be proven right (another type, the key nested
    or after an escape, a second ``audio`` or ``type`` member, bad base64,
    malformed JSON...): ``decode_server_message`` then takes the general path,
    which also produces the precise error.

    The message need not have been checked as UTF-8: an event is returned only
    for a message proven valid (the parts outside the base64 string are
    validated; the string is ASCII).
    """
    prefixed = data.startswith(_AUDIO_PREFIX, start)
    if prefixed:
        audio_start = start + len(_AUDIO_PREFIX)
    else:
        audio_start = _audio_member_start(data, start)
        if audio_start < 0:
            return None
    # The closing quote is looked for near the end only: if the span up to the quote
    # found decodes as strict base64, it holds no quote, so that quote is the first.
    end = data.find(b'"', max(audio_start, len(data) - _TAIL_WINDOW))
    if end < 0:
        return None
    tail = data[end + 1:]
    if not (tail.isascii() or _is_utf8(tail)):
        return None
    if not prefixed and (b'"audio"' in tail or b"\\" in tail):
        # Another "audio" member after this one would win: let the general path judge
        # (a backslash could spell the key with escapes).
        return None
    rest: _AudioTail | _AudioWire
    try:
        audio = _b64decode(memoryview(data)[audio_start:end])
        if prefixed:
            # Only the members after the audio are left to parse: reopen them as an
            # object (a dummy first member keeps a dangling comma an error).
            rest = _audio_tail_decoder.decode(_TAIL_OPEN + tail)
            if rest.type or rest.audio:
                return None
        else:
            rest = _audio_wire_decoder.decode(data[start:audio_start] + b'"' + tail)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    return Audio(audio=audio, start_s=rest.start_s, stop_s=rest.stop_s,
                 stream_id=rest.stream_id, client_req_id=rest.client_req_id)


def _audio_member_start(data: bytes, start: int) -> int:
    """Where the base64 of a top-level ``"audio":"`` member starts in ``data[start:]``, or -1."""
    key = data.find(_AUDIO_KEY, start)
    if key <= start:
        return -1
    audio_start = key + len(_AUDIO_KEY)
    head = data[start:audio_start]
    # The key must be a member of the top-level object: before it, one '{' (the
    # first byte), no other bracket, no backslash (so every quote is a delimiter),
    # every string closed (an even number of quotes before the key's three).
    if (head[0] != 0x7B or head.count(b"{") != 1 or b"}" in head or b"[" in head
            or b"\\" in head or not head.count(b'"') % 2):
        return -1
    if not (head.isascii() or _is_utf8(head)):
        return -1
    return audio_start


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fast_audio(data: bytes) -> Audio | None:
    """``decode_audio_at`` on a whole message (the shortcut of ``decode_server_message``)."""
    return decode_audio_at(data, 0)


def decode_server_message(data: bytes | str) -> ServerEvent:
    """Decode one server message into its event.

    Raises:
        RemoteProtocolError: Not JSON, not an object, no string ``type``, a
            field of the wrong type, or audio that is not base64.
    """
    if type(data) is bytes and len(data) > 512:
        event = decode_audio_at(data)
        if event is not None:
            return event
    return _decode_server_general(data)


def _decode_server_general(data: bytes | str) -> ServerEvent:
    """``decode_server_message`` without the audio shortcut (the reference)."""
    try:
        wire = _server_decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _unknown_or_error(data, exc, _SERVER_TYPES)
    except msgspec.DecodeError as exc:
        fixed = replace_lone_surrogates(data)
        if fixed is not None:
            return _decode_server_general(fixed)
        raise RemoteProtocolError(f"server message is not valid JSON: {exc}") from None
    if type(wire) is _AudioWire:
        return Audio(
            audio=_raw_base64(wire.audio, "audio"),
            start_s=wire.start_s,
            stop_s=wire.stop_s,
            stream_id=wire.stream_id,
            client_req_id=wire.client_req_id,
        )
    if type(wire) is _TextWire:
        return Text(
            text=wire.text,
            start_s=wire.start_s,
            stop_s=wire.start_s if wire.stop_s is None else wire.stop_s,
            stream_id=wire.stream_id,
            client_req_id=wire.client_req_id,
        )
    if type(wire) is _ReadyWire:
        return Ready(
            request_id=wire.request_id,
            sample_rate=wire.sample_rate,
            model_name=wire.model_name,
            frame_size=wire.frame_size,
            client_req_id=wire.client_req_id,
        )
    if type(wire) is _EndWire:
        return EndOfStream(client_req_id=wire.client_req_id)
    assert type(wire) is _ErrorWire
    return ErrorMessage(message=wire.message, code=wire.code, client_req_id=wire.client_req_id)


def _unknown_or_error(
    data: bytes | str, exc: msgspec.ValidationError, known: frozenset[str]
) -> UnknownMessage:
    """Tell an unknown message type apart from a malformed known one.

    An unknown message's ``raw`` is what was decoded: with lone surrogate
    escapes replaced, if it had any.
    """
    try:
        generic = msgspec.json.decode(data)
    except msgspec.DecodeError as decode_exc:
        # The typed decoder can fail on the type before reaching a string that
        # only the generic pass reads: a lone surrogate is replaced here too.
        fixed = replace_lone_surrogates(data)
        if fixed is None:
            raise RemoteProtocolError(f"message is not valid JSON: {decode_exc}") from None
        return _unknown_or_error(fixed, exc, known)
    if not isinstance(generic, dict):
        raise RemoteProtocolError(
            f"message is not a JSON object (got {type(generic).__name__})"
        ) from None
    kind = generic.get("type")
    if not isinstance(kind, str):
        raise RemoteProtocolError(f"message has no string 'type' field (got {kind!r})") from None
    if kind in known:
        raise RemoteProtocolError(f"{kind} message: {exc}") from None
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return UnknownMessage(type=kind, raw=raw)


# --- client -> server -------------------------------------------------------

_encoder = msgspec.json.Encoder()
_AUDIO_HEAD = b'{"type":"audio","audio":"'
_EOS = b'{"type":"end_of_stream"}'


def encode_setup(setup: Setup) -> bytes:
    """Encode a setup message (formats always explicit)."""
    return _encoder.encode(setup.to_wire())


def encode_audio(pcm: bytes | bytearray | memoryview, client_req_id: str | None = None) -> bytes:
    """Encode an audio message; the bytes are sent as standard padded base64."""
    return b"".join((_AUDIO_HEAD, _b64encode(pcm), audio_message_tail(client_req_id)))


AUDIO_MESSAGE_HEAD = _AUDIO_HEAD
"""What an audio message starts with, up to its base64 audio (see ``audio_message_tail``)."""


def audio_message_tail(client_req_id: str | None = None) -> bytes:
    """What follows the base64 audio in an audio message (``encode_audio``'s layout)."""
    if client_req_id is None:
        return b'"}'
    return b'","client_req_id":' + _encoder.encode(client_req_id) + b"}"


def encode_end_of_stream(client_req_id: str | None = None) -> bytes:
    """Encode an end_of_stream message (unscoped when ``client_req_id`` is None)."""
    if client_req_id is None:
        return _EOS
    return b'{"type":"end_of_stream","client_req_id":' + _encoder.encode(client_req_id) + b"}"


class _SetupWire(msgspec.Struct, tag="setup", tag_field="type"):
    pass


class _ClientAudioWire(msgspec.Struct, tag="audio", tag_field="type"):
    audio: msgspec.Raw
    client_req_id: str | None = None


class _ClientEndWire(msgspec.Struct, tag="end_of_stream", tag_field="type"):
    client_req_id: str | None = None


_client_decoder = msgspec.json.Decoder(_SetupWire | _ClientAudioWire | _ClientEndWire)
_CLIENT_TYPES = frozenset(("setup", "audio", "end_of_stream"))


class _ClientAudioTail(msgspec.Struct, gc=False):
    """The members after ``audio`` in a client's audio message (see ``_AudioTail``)."""

    client_req_id: str | None = None
    type: msgspec.Raw = msgspec.Raw()
    audio: msgspec.Raw = msgspec.Raw()


_client_audio_tail_decoder = msgspec.json.Decoder(_ClientAudioTail)
_NO_REQUEST_ID_TAIL = b"}"


def decode_client_audio(data: bytes) -> AudioReceived | None:
    """An audio message laid out as ``encode_audio`` writes it, decoded without a JSON parser.

    The server's shortcut for the message it gets the most (``decode_audio_at``
    is the client's): a message that starts as ``encode_audio``'s does, whose
    base64 decodes strictly (so it holds no quote and no escape), followed by
    ``"}`` or by members that parse; anything else gives None, and
    ``decode_client_message`` takes the general path (which gives the same
    event, or the precise error).
    """
    if not data.startswith(_AUDIO_HEAD):
        return None
    audio_start = len(_AUDIO_HEAD)
    # The closing quote is looked for near the end only: if the span up to the quote
    # found decodes as strict base64, it holds no quote, so that quote is the first.
    end = data.find(b'"', max(audio_start, len(data) - _TAIL_WINDOW))
    if end < 0:
        return None
    tail = data[end + 1:]
    if not (tail.isascii() or _is_utf8(tail)):
        return None  # (the head and the base64 are ASCII) the general path reports it
    try:
        audio = _b64decode(memoryview(data)[audio_start:end])
        if tail == _NO_REQUEST_ID_TAIL:
            return AudioReceived(audio=audio)
        # Reopen the members after the audio as an object (a dummy first member
        # keeps a dangling comma an error).
        rest = _client_audio_tail_decoder.decode(_TAIL_OPEN + tail)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        return None
    if rest.type or rest.audio:
        return None  # a second "type" or "audio" member: the general path judges
    return AudioReceived(audio=audio, client_req_id=rest.client_req_id)


def decode_client_message(data: bytes | str) -> ClientEvent | UnknownMessage:
    """Decode one client message (server role).

    Raises:
        RemoteProtocolError: Malformed message.
        InvalidSetup: A setup with a bad field (the server answers 1008).
    """
    try:
        wire = _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        return _unknown_or_error(data, exc, _CLIENT_TYPES)
    except msgspec.DecodeError as exc:
        fixed = replace_lone_surrogates(data)
        if fixed is not None:
            return decode_client_message(fixed)
        raise RemoteProtocolError(f"client message is not valid JSON: {exc}") from None
    if type(wire) is _ClientAudioWire:
        return AudioReceived(audio=_raw_base64(wire.audio, "audio"),
                             client_req_id=wire.client_req_id)
    if type(wire) is _ClientEndWire:
        return EndOfStreamReceived(client_req_id=wire.client_req_id)
    fields = msgspec.json.decode(data)
    assert isinstance(fields, dict)
    fields.pop("type", None)
    # The wire has no opt-out flag; unknown keys from newer clients are ignored.
    known = {k: v for k, v in fields.items() if k in _SETUP_WIRE_FIELDS}
    # What the service assumes when a client (like the official SDK) omits them.
    known.setdefault("input_format", "wav")
    known.setdefault("output_format", "wav")
    known.setdefault("model_name", "default")
    config = known.get("json_config")
    if isinstance(config, dict) and not config.keys() <= JSON_CONFIG_KEYS:
        # Settings this side does not know: kept as the client's raw settings (the
        # client-side key check is for typos; a server does not refuse them).
        known["json_config"] = _encoder.encode(config).decode()
    try:
        return SetupReceived(setup=Setup(**known))
    except InvalidSetup:
        raise
    except TypeError as exc:  # pragma: no cover - keys are filtered above
        raise InvalidSetup("setup", fields, str(exc)) from None


_SETUP_WIRE_FIELDS = frozenset(Setup.__struct_fields__) - {"require_voice_id"}


# --- server -> client encoding (server role) --------------------------------

def _with_id(payload: dict[str, Any], client_req_id: str | None) -> bytes:
    if client_req_id is not None:
        payload["client_req_id"] = client_req_id
    return _encoder.encode(payload)


def encode_ready(
    request_id: str,
    sample_rate: int,
    *,
    model_name: str | None = None,
    frame_size: int | None = None,
    client_req_id: str | None = None,
) -> bytes:
    """Encode a ready message."""
    payload: dict[str, Any] = {"type": "ready", "request_id": request_id,
                               "sample_rate": sample_rate}
    if model_name is not None:
        payload["model_name"] = model_name
    if frame_size is not None:
        payload["frame_size"] = frame_size
    return _with_id(payload, client_req_id)


def encode_text(
    text: str,
    start_s: float,
    stop_s: float,
    *,
    stream_id: int | None = None,
    client_req_id: str | None = None,
) -> bytes:
    """Encode a text message."""
    return _with_id({"type": "text", "text": text, "start_s": start_s, "stop_s": stop_s,
                     "stream_id": stream_id}, client_req_id)


def encode_server_audio(
    audio: bytes | bytearray | memoryview,
    start_s: float | None = None,
    stop_s: float | None = None,
    *,
    stream_id: int | None = None,
    client_req_id: str | None = None,
) -> bytes:
    """Encode an output audio message."""
    tail: dict[str, Any] = {}
    if start_s is not None:
        tail["start_s"] = start_s
    if stop_s is not None:
        tail["stop_s"] = stop_s
    tail["stream_id"] = stream_id
    if client_req_id is not None:
        tail["client_req_id"] = client_req_id
    rest = _encoder.encode(tail)  # '{...}': splice its members after the audio field
    return b"".join((_AUDIO_HEAD, _b64encode(audio), b'",', rest[1:]))


def encode_server_end_of_stream(client_req_id: str | None = None) -> bytes:
    """Encode the server's end_of_stream."""
    return encode_end_of_stream(client_req_id)


def encode_error(message: str, code: int | None, client_req_id: str | None = None) -> bytes:
    """Encode an error message."""
    payload: dict[str, Any] = {"type": "error", "message": message}
    if code is not None:
        payload["code"] = code
    return _with_id(payload, client_req_id)
