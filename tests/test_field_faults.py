"""Issue 12: faults found in the field, each fixed by kind (items 1, 2, 7, 9, 11, 13, 14, 15).

Protocol matters are tested on the sans-IO core fed bytes (whole, and one byte
at a time); what a user meets is tested on every adapter mode through
``harness``, against hand-written servers (a few lines of ``socket`` in a
thread) that send exactly the bytes of the field report.
"""

from __future__ import annotations

import email.utils
import importlib
import io
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
from wsproto.utilities import generate_accept_token

from harness import MODES, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core._wire import decode_client_message, decode_server_message
from s2s_core.audio import alaw_encode, ulaw_encode, wav_header
from s2s_core.audio_input import InputChunker, plan_chunks
from s2s_core.connection import ClientConnection, ConnectionState, ServerConnection, UpgradeRequest
from s2s_core.errors import (
    ConnectTimeout,
    HandshakeRejected,
    InvalidAudio,
    InvalidHeader,
    InvalidSetup,
    InvalidURL,
    LocalProtocolError,
    S2SError,
)
from s2s_core.events import (
    Audio,
    Closed,
    EndOfStream,
    EndOfStreamReceived,
    Ready,
    SetupReceived,
    Text,
    UnknownMessage,
)
from s2s_core.options import ClientOptions
from s2s_core.protocol import ClientProtocol
from s2s_core.results import ResultCollector, S2SResult
from s2s_core.setup import Setup
from s2s_core.urls import parse_ws_url, s2s_url

pytestmark = pytest.mark.timeout(90)

URL = "ws://127.0.0.1:9/api/speech/s2s"
QUIET = {"ping_interval": None, "ready_timeout": None}
SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
GENEROUS = ClientOptions(connect_timeout=30, idle_timeout=30)


def feed(client: ClientConnection, data: bytes, *, step: int | None = None) -> list[list[Any]]:
    """Feed ``data`` in pieces of ``step`` bytes (None: whole); the events after each piece."""
    step = step or len(data)
    out = []
    for i in range(0, len(data), step):
        client.receive_data(data[i:i + step])
        out.append(client.events_received())
    return out


def fresh_client(**kwargs: Any) -> ClientConnection:
    client = ClientConnection(URL, **{**QUIET, **kwargs})
    client.data_to_send()
    return client


# ==========================================================================
# Item 1: every refusal shape HTTP/1.1 allows is reported when it is complete

REFUSALS = {
    "content-length-0": (b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", 401, b""),
    "content-length-n": (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nforbidden",
                         403, b"forbidden"),
    "chunked": (b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"4\r\nbad \r\n7\r\ngateway\r\n0\r\n\r\n", 502, b"bad gateway"),
    "204": (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    "304-length-ignored": (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 304, b""),
    "interim-103-then-401": (b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                             b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nbad", 401,
                             b"bad"),
    "interim-100-then-429": (b"HTTP/1.1 100 Continue\r\n\r\n"
                             b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                             b"Content-Length: 0\r\n\r\n", 429, b""),
}


@pytest.mark.parametrize("name", list(REFUSALS))
@pytest.mark.parametrize("step", [None, 1])
def test_refusal_reported_when_complete(name: str, step: int | None) -> None:
    """The refusal comes out with its last byte (not before, not at EOF), then CLOSED."""
    raw, status, body = REFUSALS[name]
    client = fresh_client()
    batches = feed(client, raw, step=step)
    assert all(batch == [] for batch in batches[:-1])  # nothing before the last byte
    [closed] = batches[-1]
    assert isinstance(closed, Closed) and closed.code == 1006
    assert isinstance(closed.error, HandshakeRejected)
    assert (closed.error.status, closed.error.body) == (status, body)
    assert client.state is ConnectionState.CLOSED
    assert client.closed_event is closed
    # Later bytes or EOF change nothing.
    client.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    client.receive_eof()
    assert client.events_received() == []


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusal_in_every_two_piece_split(name: str) -> None:
    raw, status, body = REFUSALS[name]
    for cut in range(1, len(raw)):
        client = fresh_client()
        batches = feed(client, raw[:cut]) + feed(client, raw[cut:])
        assert batches[0] == [], cut
        [closed] = batches[1]
        assert isinstance(closed.error, HandshakeRejected)
        assert (closed.error.status, closed.error.body) == (status, body), cut


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 500 Internal Server Error\r\n\r\n",
    b"HTTP/1.0 500 Internal Server Error\r\n\r\n",
    b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n",
])
@pytest.mark.parametrize("step", [None, 1])
def test_refusal_without_length_ends_at_eof(head: bytes, step: int | None) -> None:
    """With no Content-Length and no chunking, the body is whatever comes before EOF."""
    client = fresh_client()
    batches = feed(client, head + b"oops, a long story", step=step)
    assert all(batch == [] for batch in batches)
    client.receive_eof()
    [closed] = client.events_received()
    assert isinstance(closed.error, HandshakeRejected)
    assert (closed.error.status, closed.error.body) == (500, b"oops, a long story")


def _accept_for(request: bytes) -> bytes:
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + generate_accept_token(key) + b"\r\n\r\n")


@pytest.mark.parametrize("step", [None, 1])
def test_interim_response_before_the_101_is_skipped(step: int | None) -> None:
    """RFC 9110 15.2: a client must parse 1xx responses before the final one."""
    client = ClientConnection(URL, **QUIET)
    accept = _accept_for(client.data_to_send())
    feed(client, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
         + accept, step=step)
    assert client.state is ConnectionState.OPEN
    assert client.events_received() == []


def _refusing_server(response: bytes, seen: list[bytes]) -> tuple[str, Callable[[], None]]:
    """A TCP server that answers one upgrade with ``response`` and keeps the socket open.

    Returns the ws URL and a function that waits for the server thread to end
    (it ends when the client closes its side, or after 30 s).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            listener.settimeout(30)
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(30)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                seen.append(head)
                conn.sendall(response)
                try:
                    while conn.recv(65536):  # an HTTP/1.1 server keeps the connection open
                        pass
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(35)
        assert not thread.is_alive()

    return f"ws://127.0.0.1:{port}/api/speech/s2s", join


def _call(mode: str, api: str, url: str, **kwargs: Any) -> BaseException | None:
    harness = harness_for(mode)
    kwargs.setdefault("options", GENEROUS)
    try:
        if api == "s2s":
            harness.s2s(url, SETUP, tone_burst(), pace=None, **kwargs)
        elif api == "stream":
            return harness.stream(url, SETUP, tone_burst(), pace=None, **kwargs).error
        else:
            harness.realtime(url, SETUP, [b"\x00\x00" * 960], **kwargs)
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("api", ["s2s", "stream", "realtime"])
@pytest.mark.parametrize("mode", MODES)
def test_refusal_with_empty_body_raises_at_once_on_every_adapter(mode: str, api: str) -> None:
    """The field report: 401 + Content-Length: 0 on a connection kept open."""
    seen: list[bytes] = []
    url, join = _refusing_server(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n"
                                 b"WWW-Authenticate: ApiKey\r\n\r\n", seen)
    error = _call(mode, api, url)
    join()
    assert not isinstance(error, ConnectTimeout), error
    assert isinstance(error, HandshakeRejected), repr(error)
    assert (error.status, error.body) == (401, b"")
    assert (b"www-authenticate", b"ApiKey") in error.headers
    assert len(seen) == 1


# ==========================================================================
# Item 2: the refusal's message says what to do next

def _rejected(raw: bytes) -> HandshakeRejected:
    client = fresh_client()
    client.receive_data(raw)
    client.receive_eof()  # harmless after a complete refusal; ends a length-less one
    [closed] = client.events_received()
    assert isinstance(closed.error, HandshakeRejected)
    return closed.error


def test_redirect_names_the_location_and_is_not_followed() -> None:
    error = _rejected(b"HTTP/1.1 302 Found\r\nLocation: wss://other/api/speech/s2s\r\n"
                      b"Content-Length: 0\r\n\r\n")
    message = str(error)
    assert "302 Found" in message
    assert "wss://other/api/speech/s2s" in message and "not followed" in message
    assert error.location == "wss://other/api/speech/s2s"
    assert error.status == 302 and error.body == b""
    assert (b"location", b"wss://other/api/speech/s2s") in error.headers


@pytest.mark.parametrize("status", [301, 307, 308])
def test_every_redirect_status_names_its_location(status: int) -> None:
    error = _rejected(f"HTTP/1.1 {status} Moved\r\nlocation: https://x.test/new\r\n"
                      f"Content-Length: 0\r\n\r\n".encode())
    assert "https://x.test/new" in str(error) and f"{status} Moved" in str(error)


def test_redirect_without_location_says_so() -> None:
    assert "without a Location" in str(_rejected(b"HTTP/1.1 303 See Other\r\n"
                                                 b"Content-Length: 0\r\n\r\n"))


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_names_the_scheme_and_our_header(status: int) -> None:
    error = _rejected(f"HTTP/1.1 {status} Nope\r\nWWW-Authenticate: Bearer realm=\"api\"\r\n"
                      f"Content-Length: 0\r\n\r\n".encode())
    message = str(error)
    assert f"{status} Nope" in message  # the server's own reason phrase
    assert 'WWW-Authenticate: Bearer realm="api"' in message
    assert "x-api-key" in message


def test_auth_refusal_without_challenge_still_hints_at_the_key() -> None:
    message = str(_rejected(b"HTTP/1.1 401 \r\nContent-Length: 0\r\n\r\n"))
    assert "401 Unauthorized" in message  # the standard phrase when the server sent none
    assert "x-api-key" in message and "WWW-Authenticate" not in message


def test_proxy_auth_refusal_names_the_proxy_scheme() -> None:
    message = str(_rejected(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                            b"Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"))
    assert "Proxy-Authenticate: Basic" in message


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds(status: int) -> None:
    error = _rejected(f"HTTP/1.1 {status} Slow Down\r\nRetry-After: 120\r\n"
                      f"Content-Length: 0\r\n\r\n".encode())
    assert error.retry_after == 120.0
    assert "120 s" in str(error)


def test_retry_after_http_date_is_measured_from_the_date_header() -> None:
    error = _rejected(b"HTTP/1.1 503 Service Unavailable\r\n"
                      b"Date: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                      b"Retry-After: Wed, 21 Oct 2015 07:28:30 GMT\r\nContent-Length: 0\r\n\r\n")
    assert error.retry_after == 30.0


def test_retry_after_http_date_without_date_header_uses_the_clock() -> None:
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    error = _rejected(f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {when}\r\n"
                      f"Content-Length: 0\r\n\r\n".encode())
    assert error.retry_after is not None and 3000 < error.retry_after <= 3601


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", ""])
def test_retry_after_unusable_is_none(value: str) -> None:
    error = _rejected(f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: {value}\r\n"
                      f"Content-Length: 0\r\n\r\n".encode())
    assert error.retry_after is None
    assert "no usable Retry-After" in str(error)


def test_retry_after_in_the_past_is_zero() -> None:
    error = _rejected(b"HTTP/1.1 503 Service Unavailable\r\n"
                      b"Date: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
                      b"Retry-After: Wed, 21 Oct 2015 07:00:00 GMT\r\nContent-Length: 0\r\n\r\n")
    assert error.retry_after == 0.0


def test_body_excerpt_is_escaped_and_bounded() -> None:
    body = b"\x1b[2J\x1b]0;pwned\x07line one\nline two \xff " + "\u202e".encode() + b"x" * 5000
    error = _rejected(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
    message = str(error)
    assert error.body == body  # kept whole
    assert "\x1b" not in message and "\n" not in message and "\u202e" not in message
    assert "\\x1b[2J" in message and "\\n" in message and "\\u202e" in message
    assert "\ufffd" in message  # the invalid byte
    assert len(message) < 400 and message.endswith('..."')


def test_refusal_message_of_a_plain_status() -> None:
    message = str(_rejected(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno route!"))
    assert message == 'WebSocket upgrade refused with HTTP 404 Not Found; body: "no route!"'


# ==========================================================================
# Item 9: a lone UTF-16 surrogate escape becomes U+FFFD; the request goes on

LONE = b'{"type":"text","text":"\\ud83d","start_s":0.0,"stop_s":0.5}'


@pytest.mark.parametrize(("raw", "text"), [
    (LONE, "\ufffd"),
    (b'{"type":"text","text":"a\\uDE00b","start_s":0.0}', "a\ufffdb"),  # lone low, upper case
    (b'{"type":"text","text":"\\ud83d\\ud83d\\ude00\\ude00","start_s":0.0}',
     "\ufffd\U0001f600\ufffd"),
    (b'{"type":"text","text":"\\ud83d\\ude00","start_s":0.0}', "\U0001f600"),  # a valid pair
    (b'{"type":"text","text":"\\\\ud83d","start_s":0.0}', "\\ud83d"),  # an escaped backslash
    (b'{"type":"text","text":"\\\\\\ud83d","start_s":0.0}', "\\\ufffd"),
    (b'{"type":"text","text":"\\ud83d\\n","start_s":0.0}', "\ufffd\n"),
])
def test_lone_surrogates_become_replacement_characters(raw: bytes, text: str) -> None:
    for data in (raw, raw.decode()):
        event = decode_server_message(data)
        assert isinstance(event, Text) and event.text == text


def test_lone_surrogate_in_other_fields_and_messages() -> None:
    error = decode_server_message(b'{"type":"error","message":"\\udead end","code":1011}')
    assert error.message == "\ufffd end"  # type: ignore[union-attr]
    unknown = decode_server_message(b'{"type":"step","text":"\\ud83d"}')
    assert isinstance(unknown, UnknownMessage) and unknown.type == "step"
    ready = decode_server_message(b'{"type":"ready","request_id":"r\\ud800","sample_rate":48000}')
    assert isinstance(ready, Ready) and ready.request_id == "r\ufffd"


def test_lone_surrogates_in_client_messages_on_the_server_side() -> None:
    setup = decode_client_message(b'{"type":"setup","voice_id":"v\\ud83d","input_format":"pcm",'
                                  b'"output_format":"pcm","client_req_id":"\\udc00"}')
    assert isinstance(setup, SetupReceived)
    assert setup.setup.voice_id == "v\ufffd" and setup.setup.client_req_id == "\ufffd"
    end = decode_client_message(b'{"type":"end_of_stream","client_req_id":"\\ud83d"}')
    assert isinstance(end, EndOfStreamReceived) and end.client_req_id == "\ufffd"


def test_valid_messages_never_take_the_repair_path() -> None:
    """The repair runs only after msgspec failed: the hot path pays nothing."""
    from s2s_core._wire import encode_server_audio

    with mock.patch("s2s_core._wire.replace_lone_surrogates",
                    side_effect=AssertionError("repair called")):
        assert isinstance(decode_server_message(encode_server_audio(b"\x00" * 4000, 0.0, 0.1)),
                          Audio)
        assert isinstance(decode_server_message(b'{"type":"text","text":"\\ud83d\\ude00",'
                                                b'"start_s":0.0}'), Text)


@pytest.mark.parametrize("bad", [b'{"type":"text","text":"\\ud83d","start_s":0.0',
                                 b'{"type":"text","text":"\\uZZZZ","start_s":0.0}'])
def test_malformed_json_with_surrogates_is_still_an_error(bad: bytes) -> None:
    from s2s_core.errors import RemoteProtocolError

    with pytest.raises(RemoteProtocolError):
        decode_server_message(bad)


def test_protocol_keeps_the_request_after_a_lone_surrogate() -> None:
    proto = ClientProtocol()
    proto.send_setup(SETUP)
    proto.receive_message('{"type":"ready","request_id":"r","sample_rate":48000}')
    [text] = proto.receive_message(LONE.decode())
    assert isinstance(text, Text) and text.text == "\ufffd"
    proto.send_audio(b"\x00\x00")
    [end] = proto.receive_message('{"type":"end_of_stream"}')
    assert isinstance(end, EndOfStream)


def _server_bytes_with_lone_surrogate(client: ClientConnection) -> bytes:
    """After the upgrade, what a server writes: ready, the text, audio, end, close."""
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    [request] = server.events_received()
    assert isinstance(request, UpgradeRequest)
    server.accept()
    client.receive_data(server.data_to_send())
    assert client.state is ConnectionState.OPEN
    sp = server.protocol
    server.receive_data(client.data_to_send())  # the setup, sent once open
    assert [type(e) for e in server.events_received()] == [SetupReceived]
    server.send_message(sp.send_ready("req-1", 48000, frame_size=3840))
    server.send_message(LONE)
    server.send_message(sp.send_audio(b"\x01\x00" * 3840, 0.0, 0.08))
    server.send_message(sp.send_end_of_stream())
    server.close(1000)
    return server.data_to_send()


@pytest.mark.parametrize("step", [None, 1])
def test_connection_keeps_the_request_after_a_lone_surrogate(step: int | None) -> None:
    client = ClientConnection(URL, **QUIET)
    client.send_setup(SETUP)
    events = [e for batch in feed(client, _server_bytes_with_lone_surrogate(client), step=step)
              for e in batch]
    assert [type(e) for e in events] == [Ready, Text, Audio, EndOfStream, Closed]
    assert events[1].text == "\ufffd"  # type: ignore[attr-defined]
    assert events[-1].error is None  # type: ignore[attr-defined]


@contextmanager
def scripted_server(on_setup: list[bytes], on_end: list[bytes]) -> Iterator[str]:
    """A one-connection server on the core's ServerConnection sending raw messages.

    ``on_setup`` goes out after the setup (after a ready), ``on_end`` after the
    client's end_of_stream, followed by end_of_stream and a normal close.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            listener.settimeout(30)
            sock, _ = listener.accept()
            with sock:
                sock.settimeout(30)
                conn = ServerConnection()
                while conn.state is not ConnectionState.CLOSED:
                    data = sock.recv(65536)
                    if data:
                        conn.receive_data(data)
                    else:
                        conn.receive_eof()
                    for event in conn.events_received():
                        _answer(conn, event, on_setup, on_end)
                    sock.sendall(conn.data_to_send())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}/api/speech/s2s"
    thread.join(35)
    assert not thread.is_alive()


def _answer(conn: ServerConnection, event: Any, on_setup: list[bytes],
            on_end: list[bytes]) -> None:
    sp = conn.protocol
    if isinstance(event, UpgradeRequest):
        conn.accept()
    elif isinstance(event, SetupReceived):
        conn.send_message(sp.send_ready("req-1", 48000, frame_size=3840))
        for message in on_setup:
            conn.send_message(message)
    elif isinstance(event, EndOfStreamReceived):
        for message in on_end:
            conn.send_message(message)
        conn.send_message(sp.send_end_of_stream())
        conn.close(1000)


OUT_AUDIO = b'{"type":"audio","audio":"AQABAAEAAQA=","start_s":0.0,"stop_s":0.01}'


@pytest.mark.parametrize("api", ["s2s", "stream"])
@pytest.mark.parametrize("mode", MODES)
def test_lone_surrogate_end_to_end_on_every_adapter(mode: str, api: str) -> None:
    harness = harness_for(mode)
    audio = np.zeros(2400, dtype=np.int16)
    with scripted_server([LONE], [OUT_AUDIO]) as url:
        if api == "s2s":  # no lead-in: the server's timings and audio come through as sent
            result = harness.s2s(url, SETUP, audio, pace=None, options=GENEROUS,
                                 lead_in_silence_s=0.0)
            assert result.text == "\ufffd" and result.complete
            assert result.text_with_timestamps[0].stop_s == 0.5
            assert result.raw_data == b"\x01\x00" * 4  # the audio after it is kept
        else:
            out = harness.stream(url, SETUP, audio, pace=None, options=GENEROUS,
                                 lead_in_silence_s=0.0)
            assert out.error is None, repr(out.error)
            assert [e.text for e in out.events if isinstance(e, Text)] == ["\ufffd"]
            assert out.audio == b"\x01\x00" * 4


# ==========================================================================
# Item 11: a user header replaces ours; reserved ones are refused, by name

def _request_headers(client: ClientConnection) -> list[tuple[str, str]]:
    head = client.data_to_send().split(b"\r\n\r\n")[0].decode("latin-1")
    return [(k.strip().lower(), v.strip()) for k, v in
            (line.split(":", 1) for line in head.split("\r\n")[1:])]


def _values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k == name]


@pytest.mark.parametrize("as_pairs", [False, True])
def test_user_headers_replace_ours_case_insensitively(as_pairs: bool) -> None:
    extra = {"HOST": "api.gradium.ai", "User-Agent": "mine/1.0", "X-API-SOURCE": "app/2",
             "X-Api-Key": "user-key", "x-trace": "t1"}
    client = ClientConnection(URL, api_key="our-key", **QUIET,
                              extra_headers=list(extra.items()) if as_pairs else extra)
    headers = _request_headers(client)
    assert _values(headers, "host") == ["api.gradium.ai"]
    assert _values(headers, "user-agent") == ["mine/1.0"]
    assert _values(headers, "x-api-source") == ["app/2"]
    assert _values(headers, "x-api-key") == ["user-key"]
    assert _values(headers, "x-trace") == ["t1"]


def test_our_headers_stay_when_not_replaced() -> None:
    headers = _request_headers(ClientConnection(URL, api_key="k", **QUIET,
                                                extra_headers={"x-other": "1"}))
    assert _values(headers, "host") == ["127.0.0.1:9"]
    assert _values(headers, "x-api-key") == ["k"]
    assert len(_values(headers, "user-agent")) == 1


def test_user_host_reaches_the_server() -> None:
    """The server's HTTP parser (h11, which refuses two Host headers) takes the request."""
    client = ClientConnection(URL, extra_headers={"Host": "api.gradium.ai:8443"}, **QUIET)
    request_bytes = client.data_to_send()
    assert request_bytes.lower().count(b"\r\nhost:") == 1
    assert b"\r\nhost: api.gradium.ai:8443\r\n" in request_bytes.lower()
    server = ServerConnection()
    server.receive_data(request_bytes)
    [request] = server.events_received()
    assert isinstance(request, UpgradeRequest)


@pytest.mark.parametrize("name", ["Upgrade", "connection", "Sec-WebSocket-Key",
                                  "sec-websocket-version", "Sec-WebSocket-Protocol",
                                  "Sec-WebSocket-Extensions", "Sec-WebSocket-Accept",
                                  "Content-Length", "Transfer-Encoding"])
def test_reserved_headers_are_refused_by_name(name: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        ClientConnection(URL, extra_headers={name: "x"}, **QUIET)
    error = info.value
    assert isinstance(error, LocalProtocolError) and isinstance(error, ValueError)
    assert error.name == name and name in str(error)


@pytest.mark.parametrize("extra", [
    {"Bad Header": "x"}, {"x:y": "x"}, {"": "x"}, {"x-ok": "a\r\nInjected: 1"},
    {"x-ok": "nul\x00"}, {"x-ok": 5}, [("Host", "a"), ("host", "b")], [("x-ok",)],
    "x-ok: 1", {"Host": "bad..host"}, {"x-é": "v"},
])
def test_bad_extra_headers_are_our_error(extra: Any) -> None:
    with pytest.raises(InvalidHeader):
        ClientConnection(URL, extra_headers=extra, **QUIET)


def test_header_value_whitespace_is_trimmed_and_utf8_kept() -> None:
    headers = _request_headers(ClientConnection(URL, extra_headers={"x-name": "  café\t"},
                                                **QUIET))
    assert _values(headers, "x-name") == ["cafÃ©"]  # UTF-8 bytes, read back as latin-1


def test_tls_server_name_is_set_apart_from_the_host() -> None:
    target = parse_ws_url("wss://10.0.0.7:8443/api/speech/s2s", server_hostname="api.gradium.ai")
    assert (target.host, target.tls_server_name) == ("10.0.0.7", "api.gradium.ai")
    assert parse_ws_url("wss://api.gradium.ai/x").tls_server_name == "api.gradium.ai"


@pytest.mark.parametrize("mode", MODES)
def test_user_headers_on_every_adapter(mode: str) -> None:
    seen: list[bytes] = []
    url, join = _refusing_server(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n", seen)
    options = ClientOptions(connect_timeout=30, extra_headers={
        "Host": "api.gradium.ai", "user-agent": "mine/1", "X-Api-Key": "user-key"})
    error = _call(mode, "s2s", url, options=options, api_key="our-key")
    join()
    assert isinstance(error, HandshakeRejected) and error.status == 418
    lines = [line.lower() for line in seen[0].split(b"\r\n")]
    assert [x for x in lines if x.startswith(b"host:")] == [b"host: api.gradium.ai"]
    assert [x for x in lines if x.startswith(b"user-agent:")] == [b"user-agent: mine/1"]
    assert [x for x in lines if x.startswith(b"x-api-key:")] == [b"x-api-key: user-key"]


@pytest.mark.parametrize("mode", MODES)
def test_reserved_header_refused_before_connecting_on_every_adapter(mode: str) -> None:
    options = ClientOptions(connect_timeout=30, extra_headers={"Upgrade": "h2c"})
    error = _call(mode, "s2s", URL, options=options)  # port 9: nothing listens
    assert isinstance(error, InvalidHeader) and error.name == "Upgrade", repr(error)


# ==========================================================================
# Item 13: unknown json_config keys are refused, with the closest known key

@pytest.mark.parametrize(("key", "closest"), [("target_lang", "target_language"),
                                              ("targetLanguage", "target_language"),
                                              ("Target_Language", "target_language"),
                                              ("zzz", None)])
def test_unknown_json_config_key_is_refused(key: str, closest: str | None) -> None:
    with pytest.raises(InvalidSetup) as info:
        Setup(voice_id="v", json_config={key: "fr"})
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, S2SError)
    message = str(error)
    assert repr(key) in message and error.value == key and error.field == "json_config"
    assert "target_language" in message  # the known keys
    if closest is not None:
        assert f"did you mean {closest!r}" in message
    else:
        assert "did you mean" not in message
    assert "pre-encoded JSON string" in message


def test_unknown_json_config_key_refused_from_a_mapping_too() -> None:
    with pytest.raises(InvalidSetup, match="target_lang"):
        Setup.from_mapping({"voice_id": "v", "json_config": {"target_lang": "fr"}})


def test_raw_settings_pass_as_a_pre_encoded_string() -> None:
    text = '{"target_lang": "fr", "temperature": 0.7}'
    setup = Setup(voice_id="v", json_config=text)
    assert json.loads(ClientProtocol().send_setup(setup))["json_config"] == text


def test_server_side_keeps_unknown_json_config_keys() -> None:
    """The key check guards clients against typos; the local server does not refuse them."""
    event = decode_client_message(b'{"type":"setup","voice_id":"v","input_format":"pcm",'
                                  b'"output_format":"pcm","json_config":{"target_language":"fr",'
                                  b'"future":1}}')
    assert isinstance(event, SetupReceived)
    assert json.loads(event.setup.json_config) == {"target_language": "fr", "future": 1}  # type: ignore[arg-type]
    assert event.setup.target_language == "fr"


@pytest.mark.parametrize("mode", MODES)
def test_json_config_typo_refused_before_connecting_on_every_adapter(mode: str) -> None:
    harness = harness_for(mode)
    with pytest.raises(InvalidSetup, match="target_lang"):
        harness.s2s(URL, {"voice_id": "v", "json_config": {"target_lang": "fr"}},  # type: ignore[arg-type]
                    b"\x00\x00", pace=None, options=GENEROUS)


# ==========================================================================
# Item 14: malformed URLs are our error, naming the URL as given

BAD_BASE_URLS = [
    ("ftp://host/api/", "allowed schemes: ws, wss, http, https"),
    ("file:///etc/passwd", "allowed schemes"),
    ("mailto:someone@example.com", "allowed schemes"),
    ("https:///api/", "no host"),
    ("http://:8080/api/", "no host"),
    ("ws:host/path", "no host"),
    ("http://host:abc/api/", "port"),
    ("http://host:99999/api/", "port"),
    ("http://host:0/api/", "port"),
    ("http://[::1/api/", "IPv6"),
    ("http://[not-ip]/api/", "IPv6"),
    ("http://ho st/api/", "host"),
    ("http://host\t/api/", "control characters"),
    ("http://user:secret@host/api/", "user info"),
    ("wss://host/api/#frag", "fragment"),
    ("", "empty"),
    ("   ", "empty"),
]


@pytest.mark.parametrize(("url", "why"), BAD_BASE_URLS)
def test_bad_base_url_is_our_error(url: str, why: str) -> None:
    with pytest.raises(InvalidURL) as info:
        s2s_url(url)
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, S2SError)
    if "secret" in url:  # a password is masked, never shown
        assert "secret" not in str(error) and error.url == url.replace("secret", "***")
    else:
        assert error.url == url and repr(url) in str(error)
    assert why in str(error)


@pytest.mark.parametrize(("url", "why"), [
    ("ftp://host/api/speech/s2s", "allowed schemes"), ("wss://", "no host"),
    ("ws://h:65536/", "port"), ("ws://u@h/", "user info"), ("ws://h/#", "fragment"),
])
def test_bad_ws_url_is_our_error_at_every_entry(url: str, why: str) -> None:
    for build in (lambda: parse_ws_url(url), lambda: ClientConnection(url)):
        with pytest.raises(InvalidURL, match=why) as info:
            build()
        assert info.value.url == url


def test_non_string_url_is_our_error() -> None:
    with pytest.raises(InvalidURL):
        s2s_url(b"https://host/api/")  # type: ignore[arg-type]


@pytest.mark.parametrize(("base", "ws"), [
    ("https://api.gradium.ai/api/", "wss://api.gradium.ai/api/speech/s2s"),
    ("  https://api.gradium.ai/api  \n", "wss://api.gradium.ai/api/speech/s2s"),
    ("HTTP://Host:8080/api", "ws://Host:8080/api/speech/s2s"),
    ("localhost:8000/api/", "ws://localhost:8000/api/speech/s2s"),
    ("http://[::1]:8080/api/", "ws://[::1]:8080/api/speech/s2s"),
    ("http://host:/api/", "ws://host:/api/speech/s2s"),
])
def test_good_base_urls_still_work(base: str, ws: str) -> None:
    assert s2s_url(base) == ws


def test_request_target_is_percent_encoded() -> None:
    target = parse_ws_url("ws://h/a b/é?q=x y", token="t")
    assert target.target == "/a%20b/%C3%A9?q=x%20y&token=t"
    assert parse_ws_url("ws://h/a%20b?x=%2F").target == "/a%20b?x=%2F"  # escapes kept
    assert parse_ws_url("ws://bücher.example/").host == "bücher.example"


@pytest.mark.parametrize("mode", MODES)
def test_bad_base_url_on_every_adapter(mode: str) -> None:
    module = importlib.import_module({"threaded": "s2s_threaded", "trio": "s2s_trio"}.get(
        mode, "s2s_anyio"))
    with pytest.raises(InvalidURL) as info:
        module.S2SClient(api_key="k", base_url="ftp://host/api/")
    assert info.value.url == "ftp://host/api/"
    assert "ws, wss, http, https" in str(info.value)


# ==========================================================================
# Item 15: a buffered WAV result has its real sizes; S2SResult.save

def _wav_result(samples: int, *, complete: bool = True) -> S2SResult:
    collector = ResultCollector("wav")
    collector.add(Ready(request_id="r", sample_rate=48000))
    pcm = (np.arange(samples) % 200).astype("<i2").tobytes()
    collector.add(Audio(audio=wav_header(48000) + pcm[:1000]))  # the streamed form
    collector.add(Audio(audio=pcm[1000:]))
    if complete:
        collector.add(EndOfStream())
        return collector.result()
    return collector.snapshot()


@pytest.mark.parametrize("complete", [True, False])
def test_wav_result_has_real_sizes(complete: bool) -> None:
    result = _wav_result(48000, complete=complete)
    raw = result.raw_data
    riff, = struct.unpack_from("<I", raw, 4)
    data, = struct.unpack_from("<I", raw, 40)
    assert (riff, data) == (len(raw) - 8, 96000)
    with wave.open(io.BytesIO(raw)) as reader:
        assert reader.getnframes() == 48000
        assert (reader.getframerate(), reader.getsampwidth()) == (48000, 2)


def test_wav_result_with_odd_data_is_padded() -> None:
    collector = ResultCollector("wav")
    collector.add(Ready(request_id="r", sample_rate=48000))
    collector.add(Audio(audio=wav_header(48000) + b"\x01\x00\x02"))
    collector.add(EndOfStream())
    raw = collector.result().raw_data
    assert len(raw) == 44 + 4 and struct.unpack_from("<II", raw, 4)[0] == len(raw) - 8
    assert struct.unpack_from("<I", raw, 40)[0] == 3


def test_wav_result_keeps_metadata_chunks_and_real_sizes() -> None:
    meta = b"LIST" + struct.pack("<I", 10) + b"INFOabcdef"
    head = wav_header(16000)
    head = head[:36] + meta + head[36:]  # fmt, LIST, data
    collector = ResultCollector("wav")
    collector.add(Audio(audio=head + b"\x00\x00" * 100))
    collector.add(EndOfStream())
    with wave.open(io.BytesIO(collector.result().raw_data)) as reader:
        assert reader.getnframes() == 100


def _sox_samples(path: Path) -> int | None:
    if shutil.which("sox") is None:
        return None
    out = subprocess.run(["sox", "--i", "-s", str(path)], capture_output=True, text=True,
                         check=True, timeout=30)
    return int(out.stdout.strip())


def _read_wave(path: Path) -> tuple[int, int, bytes]:
    with wave.open(str(path)) as reader:
        assert reader.getsampwidth() == 2 and reader.getnchannels() == 1
        return reader.getnframes(), reader.getframerate(), reader.readframes(reader.getnframes())


def test_save_wav(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    result = _wav_result(24000)
    result.save(path)
    assert path.read_bytes() == result.raw_data
    assert _read_wave(path)[:2] == (24000, 48000)
    assert _sox_samples(path) in (None, 24000)


@pytest.mark.parametrize(("fmt", "rate"), [("pcm", 44100), ("pcm_16000", 16000),
                                           ("pcm_48000", 48000)])
def test_save_pcm_writes_a_wav_at_the_right_rate(tmp_path: Path, fmt: str, rate: int) -> None:
    pcm = (np.arange(3001) * 7 % 3000).astype("<i2").tobytes() + b"\x05"  # half a sample
    # Plain "pcm": ready's rate is the authority; a named rate wins over ready's.
    result = S2SResult(raw_data=pcm, sample_rate=44100, output_format=fmt, request_id="r",
                       text="", text_with_timestamps=[])
    path = tmp_path / "out.wav"
    result.save(path)
    frames, got_rate, data = _read_wave(path)
    assert (frames, got_rate, data) == (3001, rate, pcm[:-1])
    assert _sox_samples(path) in (None, 3001)


@pytest.mark.parametrize("fmt", ["ulaw_8000", "mulaw_8000", "alaw_8000"])
def test_save_g711_decodes_to_pcm16_wav(tmp_path: Path, fmt: str) -> None:
    ramp = np.linspace(-30000, 30000, 800).astype(np.int16)
    encoded = alaw_encode(ramp) if fmt.startswith("alaw") else ulaw_encode(ramp)
    result = S2SResult(raw_data=encoded, sample_rate=8000, output_format=fmt, request_id="r",
                       text="", text_with_timestamps=[])
    path = tmp_path / "out.wav"
    result.save(path)
    frames, rate, data = _read_wave(path)
    assert (frames, rate) == (800, 8000)
    decoded = np.frombuffer(data, dtype="<i2")
    assert np.abs(decoded.astype(np.int32) - ramp).max() < 1100  # G.711 quantisation only
    assert _sox_samples(path) in (None, 800)


def test_save_opus_writes_the_ogg_bytes(tmp_path: Path) -> None:
    ogg = b"OggS\x00\x02" + bytes(100)
    result = S2SResult(raw_data=ogg, sample_rate=48000, output_format="opus", request_id="r",
                       text="", text_with_timestamps=[])
    path = tmp_path / "out.opus"
    result.save(path)
    assert path.read_bytes() == ogg


@pytest.mark.parametrize("mode", MODES)
def test_wav_result_readable_on_every_adapter(mode: str, tmp_path: Path) -> None:
    setup = Setup(voice_id="v", input_format="pcm", output_format="wav",
                  json_config={"target_language": "en"})
    with run_server() as url:
        result = harness_for(mode).s2s(url, setup, tone_burst(), pace=None)
    with wave.open(io.BytesIO(result.raw_data)) as reader:
        frames = reader.getnframes()
        assert frames == (len(result.raw_data) - 44) // 2 and frames > 48000  # ~1.6 s at 48 kHz
    path = tmp_path / "out.wav"
    result.save(path)
    assert _sox_samples(path) in (None, frames)


# ==========================================================================
# Item 7: a WAV header with metadata before "data" is read whole; pacing is real time

def _wav_with_chunks(seconds: float, rate: int, before: list[tuple[bytes, int]],
                     after: bytes = b"", *, streaming: bool = False) -> tuple[bytes, int]:
    """A 16-bit mono WAV with chunks (id, size) before data; returns (file, header size)."""
    samples = (np.sin(np.arange(int(seconds * rate)) / 5) * 8000).astype("<i2").tobytes()
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    extra = b"".join(cid + struct.pack("<I", size) + b"m" * size + b"\x00" * (size & 1)
                     for cid, size in before)
    data_size = 0xFFFFFFFF if streaming else len(samples)
    head = b"RIFF" + struct.pack("<I", 0xFFFFFFFF if streaming else 0) + b"WAVE" + fmt + extra
    head += b"data" + struct.pack("<I", data_size)
    return head + samples + after, len(head)


def _seconds(setup_format: str, data: bytes, pieces: list[int] | None = None) -> float:
    setup = Setup(voice_id="v", input_format=setup_format, output_format="pcm")
    if pieces is None:
        return sum(chunk.seconds for chunk in plan_chunks(data, setup))
    chunker = InputChunker(setup)
    total, pos = 0.0, 0
    for size in pieces:
        total += sum(chunk.seconds for chunk in chunker.feed(data[pos:pos + size]))
        pos += size
    total += sum(chunk.seconds for chunk in chunker.feed(data[pos:]))
    return total + sum(chunk.seconds for chunk in chunker.finish())


def test_wav_with_a_6_kib_list_chunk_is_paced_at_its_duration() -> None:
    """The field report: 5 s with a 6 KiB LIST before data went out in 0.01 s."""
    wav, header = _wav_with_chunks(5.0, 24000, [(b"LIST", 6 * 1024)])
    assert header > 4096
    chunks = plan_chunks(wav, Setup(voice_id="v", input_format="wav", output_format="pcm"))
    assert b"".join(bytes(c.data) for c in chunks) == wav  # sent unchanged
    assert sum(c.seconds for c in chunks) == pytest.approx(5.0, abs=1e-9)
    # The header takes no time: the first chunk is header only (4096 < 6 KiB).
    assert chunks[0].seconds == 0.0


@pytest.mark.parametrize("pieces", ["one-byte-header", "odd-pieces"])
def test_wav_header_read_across_any_pieces(pieces: str) -> None:
    wav, header = _wav_with_chunks(2.0, 16000, [(b"JUNK", 28), (b"bext", 603),
                                                (b"LIST", 9000)])
    sizes = [1] * (header + 10) if pieces == "one-byte-header" else [7, 1000, 3, 5000, 11] * 3
    assert _seconds("wav", wav, sizes) == pytest.approx(2.0, abs=1e-9)


def test_wav_chunks_after_sized_data_take_no_time() -> None:
    wav, _ = _wav_with_chunks(1.0, 8000, [(b"LIST", 100)],
                              after=b"LIST" + struct.pack("<I", 5000) + bytes(5000))
    assert _seconds("wav", wav) == pytest.approx(1.0, abs=1e-9)


def test_streaming_wav_counts_everything_after_the_header() -> None:
    wav, _ = _wav_with_chunks(3.0, 24000, [(b"LIST", 7000)], streaming=True)
    assert _seconds("wav", wav, [100] * 100) == pytest.approx(3.0, abs=1e-9)


def test_wav_header_larger_than_the_limit_is_refused() -> None:
    wav, _ = _wav_with_chunks(0.1, 8000, [(b"LIST", 2 * 2**20)])
    with pytest.raises(InvalidAudio, match="1048576 bytes"):
        plan_chunks(wav, Setup(voice_id="v", input_format="wav", output_format="pcm"))


def test_wav_header_limit_applies_across_pieces() -> None:
    head = b"RIFF\xff\xff\xff\xffWAVE" + b"LIST" + struct.pack("<I", 2**21)
    chunker = InputChunker(Setup(voice_id="v", input_format="wav", output_format="pcm"))
    with pytest.raises(InvalidAudio, match="limit"):
        for _ in range(300):
            list(chunker.feed(head if _ == 0 else bytes(8192)))


@pytest.mark.parametrize("data", [b"not a wav file at all", b"RIFF\x00\x00\x00\x00AVI "])
def test_non_wav_bytes_for_a_wav_input_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidAudio, match="not a WAV file"):
        plan_chunks(data, Setup(voice_id="v", input_format="wav", output_format="pcm"))


@pytest.mark.parametrize("mode", MODES)
def test_wav_with_metadata_goes_through_every_adapter(mode: str) -> None:
    wav, _ = _wav_with_chunks(1.0, 24000, [(b"LIST", 6 * 1024)])
    setup = Setup(voice_id="v", input_format="wav", output_format="pcm",
                  json_config={"target_language": "en"})
    with run_server() as url:
        result = harness_for(mode).s2s(url, setup, wav, pace=None)
    assert len(result.raw_data) == 48000 * 2  # 1 s at 48 kHz: every sample arrived

