"""ClientConnection / ServerConnection: the byte level, driven in memory.

Bytes are pumped between a client and a server core; nothing here opens a
socket or reads a clock (times are passed as ``now=``).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s_core._frames import FrameReader, FrameWriter, Opcode
from s2s_core.connection import (
    USER_AGENT,
    ClientConnection,
    ConnectionState,
    ServerConnection,
    UpgradeRequest,
)
from s2s_core.errors import (
    CloseTimeout,
    ConnectionClosedError,
    HandshakeRejected,
    IdleTimeout,
    KeepaliveTimeout,
    LocalProtocolError,
    MessageTooBig,
    ReadyTimeout,
    RemoteProtocolError,
)
from s2s_core.events import (
    Audio,
    AudioReceived,
    Closed,
    EndOfStream,
    EndOfStreamReceived,
    ErrorMessage,
    Ready,
    SetupReceived,
    Text,
)
from s2s_core.protocol import ProtocolState
from s2s_core.setup import Setup

URL = "ws://127.0.0.1:8765/api/speech/s2s"
NONCE = b"dGhlIHNhbXBsZSBub25jZQ=="  # the RFC 6455 sample key
SETUP = Setup(voice_id="v", json_config={"target_language": "en"})
QUIET = {"ping_interval": None, "ready_timeout": None, "idle_timeout": None}


@contextmanager
def fixed_nonce() -> Iterator[None]:
    """Make the upgrade request deterministic, so a recorded server stream replays."""
    with mock.patch("wsproto.handshake.generate_nonce", return_value=NONCE):
        yield


def frames_from_client(data: bytes) -> list[tuple[Opcode, bytes]]:
    """Decode what a client wrote after the handshake (masked frames)."""
    reader = FrameReader(expect_masked=True, max_message_size=None)
    out = reader.feed(data)
    assert reader.error is None
    return out


def frames_from_server(data: bytes) -> list[tuple[Opcode, bytes]]:
    reader = FrameReader(expect_masked=False, max_message_size=None)
    out = reader.feed(data)
    assert reader.error is None
    return out


def close_code_of(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big")


class Link:
    """A client and a server core joined by an in-memory pipe."""

    def __init__(self, client: ClientConnection | None = None,
                 server: ServerConnection | None = None, *, auto_accept: bool = True) -> None:
        self.client = client if client is not None else ClientConnection(URL, **QUIET)
        self.server = server if server is not None else ServerConnection()
        self.auto_accept = auto_accept
        self.c2s = bytearray()  # everything the client wrote
        self.s2c = bytearray()  # everything the server wrote
        self.client_events: list[Any] = []
        self.server_events: list[Any] = []

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything to send."""
        for _ in range(100):
            moved = False
            data = self.client.data_to_send()
            if data:
                moved = True
                self.c2s += data
                self.server.receive_data(data)
            for event in self.server.events_received():
                self.server_events.append(event)
                if isinstance(event, UpgradeRequest) and self.auto_accept:
                    self.server.accept()
            data = self.server.data_to_send()
            if data:
                moved = True
                self.s2c += data
                self.client.receive_data(data)
            self.client_events.extend(self.client.events_received())
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def serve(self, message: bytes) -> None:
        self.server.send_message(message)


def open_link(**client_kwargs: Any) -> Link:
    kwargs = {**QUIET, **client_kwargs}
    link = Link(ClientConnection(URL, **kwargs))
    link.pump()
    assert link.client.state is ConnectionState.OPEN
    assert link.server.state is ConnectionState.OPEN
    link.client_events.clear()
    link.server_events.clear()
    return link


def start_request(link: Link, setup: Setup = SETUP) -> None:
    link.client.send_setup(setup)
    link.pump()
    sp = link.server.protocol
    link.serve(sp.send_ready("req-1", 48000, frame_size=3840))
    link.pump()


# --------------------------------------------------------------------------
# the full exchange, and its bytes replayed in any split

BIG_AUDIO = bytes(range(256)) * 300  # 76800 bytes: a 64-bit frame length on the wire


def scripted_exchange() -> Link:
    """Setup, audio both ways, end_of_stream both ways, normal close."""
    with fixed_nonce():
        client = ClientConnection(URL, api_key="secret-key", **QUIET)
    link = Link(client)
    client.send_setup(SETUP)  # queued until the upgrade completes
    client.send_audio(b"\x01\x00\x02\x00")
    link.pump()
    sp = link.server.protocol
    link.serve(sp.send_ready("req-1", 48000, frame_size=3840, model_name="s2s-translate"))
    link.serve(sp.send_text("Hello", 0.0, 0.4, stream_id=0))
    link.pump()
    client.send_audio(b"\x03\x00" * 960)
    link.serve(sp.send_audio(b"\xff\x7f\x00\x80", 0.0, 0.08, stream_id=0))
    link.pump()
    client.send_end_of_stream()
    link.pump()
    link.serve(sp.send_text("world", 0.4, 0.9))
    link.serve(sp.send_audio(BIG_AUDIO, 0.08, 0.16))
    link.serve(sp.send_end_of_stream())
    assert sp.state is ProtocolState.FINISHED
    link.server.close(1000)
    link.pump()
    return link


EXPECTED_CLIENT_EVENTS = [
    Ready(request_id="req-1", sample_rate=48000, frame_size=3840, model_name="s2s-translate"),
    Text(text="Hello", start_s=0.0, stop_s=0.4, stream_id=0),
    Audio(audio=b"\xff\x7f\x00\x80", start_s=0.0, stop_s=0.08, stream_id=0),
    Text(text="world", start_s=0.4, stop_s=0.9),
    Audio(audio=BIG_AUDIO, start_s=0.08, stop_s=0.16),
    EndOfStream(),
    Closed(code=1000, reason="", error=None),
]
EXPECTED_SERVER_EVENTS = [
    SetupReceived(setup=SETUP),
    AudioReceived(audio=b"\x01\x00\x02\x00"),
    AudioReceived(audio=b"\x03\x00" * 960),
    EndOfStreamReceived(),
    Closed(code=1000, reason="", error=None),
]


@functools.cache
def recorded() -> tuple[bytes, bytes]:
    """(client -> server bytes, server -> client bytes) of the scripted exchange."""
    link = scripted_exchange()
    assert link.client_events == EXPECTED_CLIENT_EVENTS
    assert isinstance(link.server_events[0], UpgradeRequest)
    assert link.server_events[1:] == EXPECTED_SERVER_EVENTS
    assert link.client.state is ConnectionState.CLOSED
    assert link.server.state is ConnectionState.CLOSED
    return bytes(link.c2s), bytes(link.s2c)


def test_full_exchange() -> None:
    link = scripted_exchange()
    assert link.client_events == EXPECTED_CLIENT_EVENTS
    assert link.server_events[1:] == EXPECTED_SERVER_EVENTS
    assert link.client.next_deadline() is None
    assert link.server.next_deadline() is None
    assert link.client.closed_event == Closed(code=1000)


def replay_client(s2c: bytes, cuts: list[int]) -> list[Any]:
    with fixed_nonce():
        client = ClientConnection(URL, api_key="secret-key", **QUIET)
    client.send_setup(SETUP)
    client.send_audio(b"\x01\x00\x02\x00")
    client.send_end_of_stream()
    events: list[Any] = []
    bounds = [0, *cuts, len(s2c)]
    for a, b in itertools.pairwise(bounds):
        client.receive_data(s2c[a:b])
        client.data_to_send()
        events.extend(client.events_received())
    return events


def replay_server(c2s: bytes, cuts: list[int]) -> list[Any]:
    server = ServerConnection()
    events: list[Any] = []
    bounds = [0, *cuts, len(c2s)]
    for a, b in itertools.pairwise(bounds):
        server.receive_data(c2s[a:b])
        for event in server.events_received():
            if isinstance(event, UpgradeRequest):
                server.accept()  # may process bytes buffered behind the request
                events.extend(server.events_received())
            else:
                events.append(event)
        server.data_to_send()
    return events


def test_replay_whole() -> None:
    c2s, s2c = recorded()
    assert replay_client(s2c, []) == EXPECTED_CLIENT_EVENTS
    assert replay_server(c2s, []) == EXPECTED_SERVER_EVENTS


def test_replay_one_byte_at_a_time() -> None:
    c2s, s2c = recorded()
    assert replay_client(s2c, list(range(1, len(s2c)))) == EXPECTED_CLIENT_EVENTS
    assert replay_server(c2s, list(range(1, len(c2s)))) == EXPECTED_SERVER_EVENTS


FRACTIONS = st.lists(st.integers(0, 2**16), max_size=25)


def scaled(fractions: list[int], size: int) -> list[int]:
    """Cut points spread over a blob of ``size`` bytes (sorted, unique, inside it)."""
    return sorted({1 + f * (size - 2) // 2**16 for f in fractions})


@settings(max_examples=100, deadline=None)
@given(client_cuts=FRACTIONS, server_cuts=FRACTIONS)
def test_replay_random_splits(client_cuts: list[int], server_cuts: list[int]) -> None:
    c2s, s2c = recorded()
    assert replay_client(s2c, scaled(client_cuts, len(s2c))) == EXPECTED_CLIENT_EVENTS
    assert replay_server(c2s, scaled(server_cuts, len(c2s))) == EXPECTED_SERVER_EVENTS


def test_recorded_client_frames_are_the_messages() -> None:
    c2s, _ = recorded()
    _, _, body = c2s.partition(b"\r\n\r\n")
    frames = frames_from_client(body)
    texts = [json.loads(p) for op, p in frames if op is Opcode.TEXT]
    assert [t["type"] for t in texts] == ["setup", "audio", "audio", "end_of_stream"]
    assert texts[0] == SETUP.to_wire()
    closes = [p for op, p in frames if op is Opcode.CLOSE]
    assert [close_code_of(p) for p in closes] == [1000]  # the echo of the server's close


# --------------------------------------------------------------------------
# the upgrade request


def test_upgrade_request_headers() -> None:
    client = ClientConnection(URL, api_key="secret-key", token="tok en/1",
                              extra_headers={"x-trace": "abc"})
    data = client.data_to_send()
    head = data.decode("latin-1")
    request_line, *lines = head.split("\r\n")
    assert request_line == "GET /api/speech/s2s?token=tok+en%2F1 HTTP/1.1"
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines if line)}
    assert headers["host"] == "127.0.0.1:8765"
    assert headers["x-api-key"] == "secret-key"
    assert headers["x-api-source"] == USER_AGENT
    assert headers["x-trace"] == "abc"
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-version"] == "13"
    assert "sec-websocket-protocol" not in headers
    assert "sec-websocket-extensions" not in headers
    assert data.endswith(b"\r\n\r\n")
    assert "secret-key" not in repr(client)
    assert "tok" not in repr(client)


def test_upgrade_request_without_credentials() -> None:
    data = ClientConnection("wss://api.example/api/speech/s2s").data_to_send()
    assert data.startswith(b"GET /api/speech/s2s HTTP/1.1\r\n")
    assert b"x-api-key" not in data.lower()
    assert b"\r\nHost: api.example\r\n" in data


def test_extra_headers_as_pairs() -> None:
    data = ClientConnection(URL, extra_headers=[("x-a", "1"), ("x-a", "2")]).data_to_send()
    assert b"x-a: 1\r\n" in data
    assert b"x-a: 2\r\n" in data


def test_server_sees_the_upgrade_request() -> None:
    client = ClientConnection(URL, api_key="k1", token="t1", **QUIET)
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    [request] = server.events_received()
    assert isinstance(request, UpgradeRequest)
    assert request.target == "/api/speech/s2s?token=t1"
    assert request.header("X-API-Key") == "k1"
    assert request.header("x-api-source") == USER_AGENT
    assert request.header("missing") is None
    assert "k1" not in repr(request) and "t1" not in repr(request)
    assert server.state is ConnectionState.CONNECTING
    server.accept()
    response = server.data_to_send()
    assert response.startswith(b"HTTP/1.1 101 ")
    client.receive_data(response)
    assert client.state is ConnectionState.OPEN
    assert client.events_received() == []
    with pytest.raises(LocalProtocolError):
        server.accept()


# --------------------------------------------------------------------------
# refused and broken handshakes

REFUSAL = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 3\r\n\r\nbad"


def _refused(chunks: list[bytes]) -> Closed:
    client = ClientConnection(URL, **QUIET)
    client.data_to_send()
    events: list[Any] = []
    for chunk in chunks:
        client.receive_data(chunk)
        events.extend(client.events_received())
    assert len(events) == 1
    closed = events[0]
    assert isinstance(closed, Closed)
    assert client.state is ConnectionState.CLOSED
    return closed


def test_refused_upgrade_whole() -> None:
    closed = _refused([REFUSAL])
    assert closed.code == 1006
    error = closed.error
    assert isinstance(error, HandshakeRejected)
    assert error.status == 401
    assert error.body == b"bad"
    assert (b"content-length", b"3") in error.headers
    assert "401" in str(error)


@pytest.mark.parametrize("split", [len(REFUSAL) - 3, len(REFUSAL) - 1, 10])
def test_refused_upgrade_in_two_reads(split: int) -> None:
    """The body must survive a read boundary; in particular right after the head.

    BUG (split at len - 3): when the head ends exactly at a read boundary,
    ClientConnection._receive_handshake calls _receive_reject_body(b"") and
    h11 takes the empty bytes as EOF, so the body b"bad" is lost.
    """
    closed = _refused([REFUSAL[:split], REFUSAL[split:]])
    assert isinstance(closed.error, HandshakeRejected)
    assert closed.error.status == 401
    assert closed.error.body == b"bad"


def test_refused_upgrade_one_byte_at_a_time() -> None:
    """BUG: same cause as above (the head always ends at a read boundary here)."""
    closed = _refused([REFUSAL[i:i + 1] for i in range(len(REFUSAL))])
    assert isinstance(closed.error, HandshakeRejected)
    assert closed.error.status == 401
    assert closed.error.body == b"bad"


def test_refused_upgrade_cut_by_eof() -> None:
    client = ClientConnection(URL, **QUIET)
    client.receive_data(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 10\r\n\r\nno")
    assert client.events_received() == []
    client.receive_eof()
    [closed] = client.events_received()
    assert isinstance(closed.error, HandshakeRejected)
    assert closed.error.status == 403
    assert closed.error.body == b"no"


def test_server_reject_reaches_the_client() -> None:
    link = Link(auto_accept=False)
    link.pump()
    assert isinstance(link.server_events[0], UpgradeRequest)
    link.server.reject(403, b"forbidden")
    link.pump()
    [closed] = link.client_events
    assert isinstance(closed.error, HandshakeRejected)
    assert (closed.error.status, closed.error.body) == (403, b"forbidden")
    assert link.server.state is ConnectionState.CLOSED


def test_handshake_response_too_big() -> None:
    client = ClientConnection(URL, max_handshake_size=200, **QUIET)
    client.data_to_send()
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nx-pad: " + b"a" * 300)
    [closed] = client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, MessageTooBig)
    assert closed.error.limit == 200
    assert "200" in str(closed.error)
    assert "handshake" in str(closed.error)
    client.receive_data(b"more")
    assert client.events_received() == []


def test_handshake_response_too_big_even_when_complete() -> None:
    client = ClientConnection(URL, max_handshake_size=100, **QUIET)
    client.data_to_send()
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nx-pad: " + b"a" * 100 + b"\r\n\r\n")
    [closed] = client.events_received()
    assert isinstance(closed.error, MessageTooBig)


def test_handshake_request_too_big() -> None:
    server = ServerConnection(max_handshake_size=100)
    server.receive_data(b"GET / HTTP/1.1\r\nx-pad: " + b"a" * 200)
    [closed] = server.events_received()
    assert isinstance(closed.error, MessageTooBig)


def test_invalid_upgrade_response() -> None:
    client = ClientConnection(URL, **QUIET)
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Accept: wrong\r\n\r\n")
    [closed] = client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, RemoteProtocolError)


def test_eof_during_handshake() -> None:
    client = ClientConnection(URL, **QUIET)
    client.receive_data(b"HTTP/1.1 101 Sw")
    client.receive_eof()
    [closed] = client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, ConnectionClosedError)


def test_messages_before_the_upgrade_are_sent_after_it() -> None:
    client = ClientConnection(URL, **QUIET)
    client.send_setup(SETUP)
    client.send_audio(b"\x00\x00")
    handshake = client.data_to_send()
    assert handshake.startswith(b"GET ")
    assert client.data_to_send() == b""
    link = Link(client)
    server = link.server
    server.receive_data(handshake)
    server.events_received()
    server.accept()
    client.receive_data(server.data_to_send())
    texts = [json.loads(p) for _, p in frames_from_client(client.data_to_send())]
    assert [t["type"] for t in texts] == ["setup", "audio"]


# --------------------------------------------------------------------------
# control frames and closing


def test_pings_are_answered_with_pongs() -> None:
    link = open_link()
    link.server.send_frame(Opcode.PING, b"hello")
    link.client.receive_data(link.server.data_to_send())
    assert link.client.events_received() == []
    assert frames_from_client(link.client.data_to_send()) == [(Opcode.PONG, b"hello")]
    # And the server answers the client's pings.
    link.server.receive_data(FrameWriter(mask=True).frame(Opcode.PING, b"x1"))
    assert frames_from_server(link.server.data_to_send()) == [(Opcode.PONG, b"x1")]


def test_server_close_is_echoed() -> None:
    link = open_link()
    start_request(link)
    sp = link.server.protocol
    link.client.send_end_of_stream()
    link.pump()
    link.serve(sp.send_end_of_stream())
    link.server.close(1000, "bye")
    link.client.receive_data(link.server.data_to_send())
    assert link.client.events_received() == [EndOfStream(), Closed(code=1000, reason="bye")]
    [(op, payload)] = frames_from_client(link.client.data_to_send())
    assert op is Opcode.CLOSE
    assert close_code_of(payload) == 1000
    assert link.client.state is ConnectionState.CLOSED


def test_server_close_before_end_of_stream_is_a_failure() -> None:
    link = open_link()
    start_request(link)
    link.server.close(1000)
    link.pump()
    closed = link.client_events[-1]
    assert closed.code == 1000
    assert isinstance(closed.error, ConnectionClosedError)
    assert closed.error.code == 1000


def test_server_error_then_close_keeps_the_error_event() -> None:
    link = open_link()
    link.client.send_setup(SETUP)
    link.pump()
    link.serve(link.server.protocol.send_error("bad key", 1008))
    link.server.close(1008, "policy")
    link.pump()
    assert link.client_events[0] == ErrorMessage(message="bad key", code=1008)
    closed = link.client_events[1]
    assert (closed.code, closed.reason) == (1008, "policy")
    assert len(link.client_events) == 2


def test_receive_eof_before_end_of_stream() -> None:
    link = open_link()
    start_request(link)
    link.client.receive_eof()
    [closed] = link.client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, ConnectionClosedError)
    assert closed.error.code == 1006


def test_normal_close_after_end_of_stream() -> None:
    link = open_link()
    start_request(link)
    link.client.send_end_of_stream()
    link.pump()
    link.serve(link.server.protocol.send_end_of_stream())
    link.server.close(1000)
    link.pump()
    assert link.client_events[-2:] == [EndOfStream(), Closed(code=1000, reason="", error=None)]


@pytest.mark.parametrize("code", [1001, 1005])
def test_going_away_or_empty_close_after_end_of_stream_is_normal(code: int) -> None:
    """Every request ended, then the server closes with 1001 or an empty close frame.

    BUG: ClientConnection._closed_error treats only 1000 as normal, so this
    Closed carries ConnectionClosedError although nothing was lost;
    ServerConnection (and the websockets library's ConnectionClosedOK) treat
    1000, 1001 and 1005 (no status code) as a normal end.
    """
    link = open_link()
    start_request(link)
    link.client.send_end_of_stream()
    link.pump()
    link.serve(link.server.protocol.send_end_of_stream())
    link.pump()
    writer = FrameWriter(mask=False)
    frame = writer.close_frame(None) if code == 1005 else writer.close_frame(code)
    link.client.receive_data(frame)
    [closed] = link.client.events_received()
    assert closed.code == code
    assert closed.error is None


def test_client_close_then_peer_echo() -> None:
    link = open_link()
    link.client.close(1000, "done", now=1.0)
    assert link.client.state is ConnectionState.CLOSING
    [(op, payload)] = frames_from_client(link.client.data_to_send())
    assert op is Opcode.CLOSE
    assert payload == b"\x03\xe8done"
    link.server.receive_data(FrameWriter(mask=True).close_frame(1000, "done"))
    assert link.server.events_received() == [Closed(code=1000, reason="done")]
    echo = link.server.data_to_send()
    assert frames_from_server(echo) == [(Opcode.CLOSE, b"\x03\xe8")]
    link.client.receive_data(echo)
    assert link.client.events_received() == [Closed(code=1000, reason="")]
    assert link.client.state is ConnectionState.CLOSED
    assert link.client.next_deadline() is None


def test_client_close_via_pump() -> None:
    link = open_link()
    start_request(link)
    link.client.close()
    link.pump()
    # We asked for the close: no error, even though the request had not ended.
    assert link.client_events[-1] == Closed(code=1000, reason="", error=None)
    assert link.server_events[-1] == Closed(code=1000, reason="", error=None)


def test_close_twice_and_close_after_closed_are_no_ops() -> None:
    link = open_link()
    link.client.close()
    first = link.client.data_to_send()
    assert first
    link.client.close()
    link.client.close(1011)
    assert link.client.data_to_send() == b""
    link.client.transport_failed(OSError("late"))
    [closed] = link.client.events_received()
    link.client.close()
    assert link.client.events_received() == []
    assert closed.code == 1006


def test_invalid_close_code_is_local_misuse() -> None:
    link = open_link()
    with pytest.raises(LocalProtocolError):
        link.client.close(1006)
    assert link.client.state is ConnectionState.OPEN
    assert link.client.data_to_send() == b""


def test_invalid_close_frame_from_server() -> None:
    link = open_link()
    link.client.receive_data(FrameWriter(mask=False).frame(Opcode.CLOSE, b"\x03\xe7"))
    [closed] = link.client.events_received()
    assert closed.code == 1002
    assert isinstance(closed.error, RemoteProtocolError)
    assert "999" in str(closed.error)


@pytest.mark.parametrize("attempt", ["setup", "audio", "end_of_stream"])
def test_sending_after_close_is_local_protocol_error(attempt: str) -> None:
    link = open_link()
    start_request(link)
    link.server.close(1011, "crash")
    link.pump()
    assert link.client.state is ConnectionState.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        if attempt == "setup":
            link.client.send_setup(SETUP)
        elif attempt == "audio":
            link.client.send_audio(b"\x00\x00")
        else:
            link.client.send_end_of_stream()
    assert link.client.data_to_send() == b""


@pytest.mark.parametrize("attempt", ["audio", "end_of_stream"])
def test_sending_while_closing_is_local_protocol_error(attempt: str) -> None:
    link = open_link()
    start_request(link)
    link.client.close()
    link.client.data_to_send()
    with pytest.raises(LocalProtocolError, match="closing"):
        if attempt == "audio":
            link.client.send_audio(b"\x00\x00")
        else:
            link.client.send_end_of_stream()
    assert link.client.data_to_send() == b""


def test_server_sending_after_close_is_local_protocol_error() -> None:
    link = open_link()
    start_request(link)
    link.client.transport_failed(OSError("x"))
    link.server.receive_eof()
    with pytest.raises(LocalProtocolError):
        link.server.send_message(b'{"type":"end_of_stream"}')


def test_transport_failed() -> None:
    link = open_link()
    start_request(link)
    cause = ConnectionResetError("reset by peer")
    link.client.transport_failed(cause)
    [closed] = link.client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, ConnectionClosedError)
    assert closed.error.__cause__ is cause
    assert link.client.data_to_send() == b""
    assert link.client.next_deadline() is None


# --------------------------------------------------------------------------
# peer faults after the upgrade


def test_oversized_message_keeps_earlier_events() -> None:
    link = open_link(max_message_size=1000)
    link.client.send_setup(SETUP)
    link.pump()
    sp = link.server.protocol
    link.serve(sp.send_ready("req-1", 48000))
    link.serve(sp.send_audio(b"\x00" * 2000))
    link.serve(sp.send_text("never seen", 0.0, 1.0))
    link.client.receive_data(link.server.data_to_send())
    events = link.client.events_received()
    assert events[0] == Ready(request_id="req-1", sample_rate=48000)
    closed = events[1]
    assert len(events) == 2
    assert closed.code == 1009
    assert isinstance(closed.error, MessageTooBig)
    assert closed.error.limit == 1000
    assert closed.error.size > 1000
    [(op, payload)] = frames_from_client(link.client.data_to_send())
    assert op is Opcode.CLOSE
    assert close_code_of(payload) == 1009


def test_oversized_message_one_byte_at_a_time() -> None:
    link = open_link(max_message_size=100)
    link.client.send_setup(SETUP)
    link.pump()
    link.serve(link.server.protocol.send_ready("r", 48000))
    link.serve(link.server.protocol.send_text("x" * 200, 0.0, 1.0))
    data = link.server.data_to_send()
    events: list[Any] = []
    for i in range(len(data)):
        link.client.receive_data(data[i:i + 1])
        events.extend(link.client.events_received())
    assert [type(e) for e in events] == [Ready, Closed]
    assert events[1].code == 1009


def test_invalid_utf8_closes_1007() -> None:
    link = open_link()
    link.server.send_frame(Opcode.TEXT, b'{"type":"\xff"}')
    link.client.receive_data(link.server.data_to_send())
    [closed] = link.client.events_received()
    assert closed.code == 1007
    assert isinstance(closed.error, RemoteProtocolError)
    assert close_code_of(frames_from_client(link.client.data_to_send())[0][1]) == 1007


def test_binary_frame_closes_1003() -> None:
    link = open_link()
    start_request(link)
    link.server.send_frame(Opcode.BINARY, b"\x00\x01")
    link.client.receive_data(link.server.data_to_send())
    [closed] = link.client.events_received()
    assert closed.code == 1003
    assert isinstance(closed.error, RemoteProtocolError)
    assert "binary" in str(closed.error)


def test_malformed_json_closes_1002_after_earlier_events() -> None:
    link = open_link()
    link.client.send_setup(SETUP)
    link.pump()
    link.serve(link.server.protocol.send_ready("r", 48000))
    link.server.send_frame(Opcode.TEXT, b'{"type":"text","text":12,"start_s":0}')
    link.server.send_frame(Opcode.TEXT, b'{"type":"end_of_stream"}')
    link.client.receive_data(link.server.data_to_send())
    events = link.client.events_received()
    assert events[0] == Ready(request_id="r", sample_rate=48000)
    assert len(events) == 2
    assert events[1].code == 1002
    assert isinstance(events[1].error, RemoteProtocolError)
    assert "text message" in str(events[1].error)


def test_out_of_order_server_message_closes_1002() -> None:
    link = open_link()
    link.client.send_setup(SETUP)
    link.pump()
    link.server.send_frame(Opcode.TEXT, b'{"type":"text","text":"x","start_s":0}')
    link.client.receive_data(link.server.data_to_send())
    [closed] = link.client.events_received()
    assert closed.code == 1002
    assert isinstance(closed.error, RemoteProtocolError)


def test_masked_server_frame_is_a_fault() -> None:
    link = open_link()
    link.client.receive_data(FrameWriter(mask=True).frame(Opcode.TEXT, b"{}"))
    [closed] = link.client.events_received()
    assert closed.code == 1002
    assert isinstance(closed.error, RemoteProtocolError)


def test_unknown_message_is_an_event_on_the_connection() -> None:
    link = open_link()
    start_request(link)
    link.server.send_frame(Opcode.TEXT, b'{"type":"step","step_idx":3}')
    link.client.receive_data(link.server.data_to_send())
    [event] = link.client.events_received()
    assert event.type == "step"


def test_server_answers_a_client_fault_with_error_and_close() -> None:
    link = open_link()
    link.server.receive_data(FrameWriter(mask=True).frame(
        Opcode.TEXT, b'{"type":"audio","audio":"AAA="}'))
    # Replies to messages before a fault go first: the answer is queued when
    # the application drains data_to_send(), and Closed follows it.
    assert link.server.events_received() == []
    data = link.server.data_to_send()
    [closed] = link.server.events_received()
    assert closed.code == 1002
    assert isinstance(closed.error, RemoteProtocolError)
    frames = frames_from_server(data)
    assert [op for op, _ in frames] == [Opcode.TEXT, Opcode.CLOSE]
    assert json.loads(frames[0][1]) == {
        "type": "error", "message": "Session not found. Send setup first.", "code": 1002}
    assert close_code_of(frames[1][1]) == 1002
    # The client sees the error message, then the close.
    link.client.receive_data(data)
    events = link.client.events_received()
    assert events[0] == ErrorMessage(message="Session not found. Send setup first.", code=1002)
    assert events[1].code == 1002


def test_server_answers_a_bad_setup_with_1008() -> None:
    link = open_link()
    link.server.receive_data(FrameWriter(mask=True).frame(
        Opcode.TEXT, b'{"type":"setup","voice_id":"v","input_format":"mp3"}'))
    frames = frames_from_server(link.server.data_to_send())
    [closed] = link.server.events_received()
    assert closed.code == 1008
    error = json.loads(frames[0][1])
    assert error["code"] == 1008
    assert "input_format" in error["message"]
    assert close_code_of(frames[1][1]) == 1008


# --------------------------------------------------------------------------
# timers


def test_no_deadline_when_nothing_is_armed() -> None:
    link = open_link()
    assert link.client.next_deadline() is None
    link.client.handle_timer(1e9)
    assert link.client.events_received() == []
    assert link.client.data_to_send() == b""


def test_close_timeout() -> None:
    link = open_link(close_timeout=4.0)
    link.client.close(now=10.0)
    assert link.client.next_deadline() == 14.0
    link.client.handle_timer(13.999)
    assert link.client.events_received() == []
    link.client.handle_timer(link.client.next_deadline())  # type: ignore[arg-type]
    [closed] = link.client.events_received()
    assert closed.code == 1006
    assert isinstance(closed.error, CloseTimeout)
    assert isinstance(closed.error, TimeoutError)
    assert link.client.next_deadline() is None


def test_ready_timeout() -> None:
    link = open_link(ready_timeout=2.5)
    link.client.send_setup(SETUP, now=100.0)
    assert link.client.next_deadline() == 102.5
    link.client.handle_timer(102.0)
    assert link.client.events_received() == []
    link.client.handle_timer(102.5)
    [closed] = link.client.events_received()
    assert isinstance(closed.error, ReadyTimeout)
    assert isinstance(closed.error, TimeoutError)
    frames = frames_from_client(link.client.data_to_send())
    assert [op for op, _ in frames] == [Opcode.TEXT, Opcode.CLOSE]  # the setup, then the close
    assert json.loads(frames[0][1])["type"] == "setup"


def test_ready_disarms_the_ready_timeout() -> None:
    link = open_link(ready_timeout=2.0)
    link.client.send_setup(SETUP, now=0.0)
    link.pump()
    link.serve(link.server.protocol.send_ready("r", 48000))
    link.client.receive_data(link.server.data_to_send(), now=1.0)
    assert link.client.next_deadline() is None
    link.client.handle_timer(10.0)
    assert link.client.events_received() == [Ready(request_id="r", sample_rate=48000)]


def test_keepalive_ping_and_pong() -> None:
    link = open_link(ping_interval=5.0, ping_timeout=3.0)
    # Pings are scheduled from the moment the connection opened (now=0).
    assert link.client.next_deadline() == 5.0
    link.client.handle_timer(5.0)
    [(op, payload)] = frames_from_client(link.client.data_to_send())
    assert op is Opcode.PING
    assert link.client.next_deadline() == 8.0  # the pong deadline
    link.server.receive_data(FrameWriter(mask=True).frame(Opcode.PING, payload))
    pong = link.server.data_to_send()
    assert frames_from_server(pong) == [(Opcode.PONG, payload)]
    link.client.receive_data(pong, now=6.0)
    assert link.client.next_deadline() == 10.0  # the next ping
    link.client.handle_timer(8.0)
    assert link.client.events_received() == []


def test_keepalive_timeout() -> None:
    link = open_link(ping_interval=5.0, ping_timeout=3.0)
    link.client.handle_timer(5.0)
    link.client.data_to_send()
    link.client.handle_timer(7.9)
    assert link.client.events_received() == []
    link.client.handle_timer(link.client.next_deadline())  # type: ignore[arg-type]
    [closed] = link.client.events_received()
    assert isinstance(closed.error, KeepaliveTimeout)
    assert isinstance(closed.error, TimeoutError)
    assert closed.code == 1011
    [(op, payload)] = frames_from_client(link.client.data_to_send())
    assert op is Opcode.CLOSE
    assert close_code_of(payload) == 1011


def test_wrong_pong_does_not_disarm_keepalive() -> None:
    link = open_link(ping_interval=5.0, ping_timeout=3.0)
    link.client.handle_timer(5.0)
    link.client.data_to_send()
    link.client.receive_data(FrameWriter(mask=False).frame(Opcode.PONG, b"nope"))
    assert link.client.next_deadline() == 8.0


def test_idle_timeout() -> None:
    link = open_link(idle_timeout=4.0)
    link.client.send_setup(SETUP, now=0.0)
    assert link.client.next_deadline() == 4.0
    link.client.handle_timer(4.0)
    [closed] = link.client.events_received()
    assert isinstance(closed.error, IdleTimeout)


def test_deadline_cleared_after_close() -> None:
    link = open_link(ping_interval=5.0, ready_timeout=3.0)
    link.client.send_setup(SETUP, now=0.0)
    assert link.client.next_deadline() == 3.0
    link.client.transport_failed(OSError())
    assert link.client.next_deadline() is None


# --------------------------------------------------------------------------
# receive path never raises (fixed examples; random ones in test_roundtrip)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=300))
def test_garbage_before_the_upgrade_never_raises(data: bytes) -> None:
    client = ClientConnection(URL, **QUIET)
    client.data_to_send()
    client.receive_data(data)
    client.receive_eof()
    events = client.events_received()
    assert len(events) == 1
    assert isinstance(events[0], Closed)
    assert events[0].error is not None
    server = ServerConnection()
    server.receive_data(data)
    server.receive_eof()
    events = [e for e in server.events_received() if not isinstance(e, UpgradeRequest)]
    assert len(events) == 1
    assert isinstance(events[0], Closed)
