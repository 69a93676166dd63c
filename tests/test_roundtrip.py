"""Properties of client <-> server round trips through the byte-level cores.

- any audio bytes cross bit-exactly, both ways, at any frame size;
- random splits of the byte stream give identical events;
- garbage after a successful upgrade never raises out of ``receive_data``
  and ends in exactly one ``Closed`` (with an error, except for a clean close
  after the request ended).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2s_core._frames import FrameReader, FrameWriter, Opcode
from s2s_core.connection import ClientConnection, ConnectionState, ServerConnection, UpgradeRequest
from s2s_core.errors import ConnectionClosedError, S2SError
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
    UnknownMessage,
)
from s2s_core.setup import Setup

URL = "ws://127.0.0.1:8765/api/speech/s2s"
QUIET = {"ping_interval": None, "ready_timeout": None}
PROPS = settings(max_examples=100, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def open_pair(**client_kwargs: Any) -> tuple[ClientConnection, ServerConnection]:
    """A client and a server core past the upgrade, with nothing left to send."""
    client = ClientConnection(URL, **{**QUIET, **client_kwargs})
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    [request] = server.events_received()
    assert isinstance(request, UpgradeRequest)
    server.accept()
    client.receive_data(server.data_to_send())
    assert client.state is ConnectionState.OPEN
    assert client.events_received() == []
    return client, server


def to_server(client: ClientConnection, server: ServerConnection) -> list[Any]:
    server.receive_data(client.data_to_send())
    return server.events_received()


def to_client(server: ServerConnection, client: ClientConnection) -> list[Any]:
    client.receive_data(server.data_to_send())
    return client.events_received()


def started(setup: Setup, *, ready: bool = True,
            **client_kwargs: Any) -> tuple[ClientConnection, ServerConnection]:
    """An open pair with one request started (and, by default, readied)."""
    client, server = open_pair(**client_kwargs)
    client.send_setup(setup)
    assert to_server(client, server) == [SetupReceived(setup=setup)]
    if ready:
        server.send_message(server.protocol.send_ready("r", 48000))
        assert to_client(server, client) == [Ready(request_id="r", sample_rate=48000)]
    return client, server


def feed_in_pieces(conn: ClientConnection | ServerConnection, data: bytes,
                   cuts: list[int]) -> None:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    for a, b in itertools.pairwise(bounds):
        conn.receive_data(data[a:b])


def normalized(events: list[Any]) -> list[Any]:
    """Events, with exceptions compared by type and text."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, Closed):
            error = event.error
            out.append(("closed", event.code, event.reason, type(error),
                        None if error is None else str(error)))
        else:
            out.append(event)
    return out


CUTS = st.lists(st.integers(1, 200_000), max_size=20)

# --------------------------------------------------------------------------
# audio crosses bit-exactly

even_bytes = st.binary(max_size=1500).map(lambda b: b[: len(b) & ~1])


@PROPS
@given(chunks=st.lists(even_bytes, min_size=1, max_size=5))
def test_pcm_audio_client_to_server_is_bit_exact(chunks: list[bytes]) -> None:
    client, server = started(Setup(voice_id="v"), ready=False)
    for chunk in chunks:
        client.send_audio(chunk)
    assert to_server(client, server) == [AudioReceived(audio=chunk) for chunk in chunks]


@PROPS
@given(chunks=st.lists(st.binary(max_size=1500), min_size=1, max_size=5),
       fmt=st.sampled_from(["ulaw_8000", "alaw_8000", "opus", "wav"]))
def test_any_audio_client_to_server_is_bit_exact(chunks: list[bytes], fmt: str) -> None:
    client, server = started(Setup(voice_id="v", input_format=fmt), ready=False)
    for chunk in chunks:
        client.send_audio(chunk)
    assert to_server(client, server) == [AudioReceived(audio=chunk) for chunk in chunks]


@PROPS
@given(chunks=st.lists(st.binary(max_size=1500), min_size=1, max_size=5),
       rid=st.none() | st.text(min_size=1, max_size=8))
def test_any_audio_server_to_client_is_bit_exact(chunks: list[bytes], rid: str | None) -> None:
    client, server = started(Setup(voice_id="v", client_req_id=rid), ready=False)
    server.send_message(server.protocol.send_ready("r", 48000, client_req_id=rid))
    for n, chunk in enumerate(chunks):
        server.send_message(server.protocol.send_audio(chunk, n * 0.08, (n + 1) * 0.08,
                                                       client_req_id=rid))
    events = to_client(server, client)
    assert events[0] == Ready(request_id="r", sample_rate=48000, client_req_id=rid)
    assert events[1:] == [
        Audio(audio=chunk, start_s=n * 0.08, stop_s=(n + 1) * 0.08, client_req_id=rid)
        for n, chunk in enumerate(chunks)
    ]
    for event, chunk in zip(events[1:], chunks, strict=True):
        assert event.audio == chunk


# Payload sizes whose JSON messages straddle the 7/16/64-bit frame length forms.
@pytest.mark.parametrize("size", [0, 1, 2, 60, 62, 64, 66, 48_990, 49_000, 49_150, 49_152,
                                  70_000, 300_001])
def test_audio_sizes_both_ways(size: int) -> None:
    data = os.urandom(size)
    client, server = started(Setup(voice_id="v", input_format="ulaw_8000"))
    client.send_audio(data)
    assert to_server(client, server) == [AudioReceived(audio=data)]
    server.send_message(server.protocol.send_audio(data))
    [event] = to_client(server, client)
    assert isinstance(event, Audio)
    assert event.audio == data


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2000), cuts=CUTS)
def test_audio_in_random_splits(data: bytes, cuts: list[int]) -> None:
    client, server = started(Setup(voice_id="v", input_format="opus"))
    client.send_audio(data)
    wire = client.data_to_send()
    feed_in_pieces(server, wire, [c % (len(wire) + 1) for c in cuts])
    assert server.events_received() == [AudioReceived(audio=data)]
    server.send_message(server.protocol.send_audio(data))
    wire = server.data_to_send()
    feed_in_pieces(client, wire, [c % (len(wire) + 1) for c in cuts])
    assert client.events_received() == [Audio(audio=data)]


# --------------------------------------------------------------------------
# whole exchanges in random splits

server_op = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=40)),
    st.tuples(st.just("audio"), st.binary(max_size=600)),
    st.tuples(st.just("ping"), st.binary(max_size=20)),
)


@PROPS
@given(ops=st.lists(server_op, max_size=12), cuts=CUTS, close_code=st.sampled_from([1000, 1011]))
def test_exchange_in_random_splits(ops: list[tuple[str, Any]], cuts: list[int],
                                   close_code: int) -> None:
    client, server = started(Setup(voice_id="v"))
    client.send_end_of_stream()
    assert to_server(client, server) == [EndOfStreamReceived()]
    sp = server.protocol
    expected: list[Any] = []
    for n, (kind, value) in enumerate(ops):
        if kind == "text":
            server.send_message(sp.send_text(value, n * 0.1, n * 0.1 + 0.05))
            expected.append(Text(text=value, start_s=n * 0.1, stop_s=n * 0.1 + 0.05))
        elif kind == "audio":
            server.send_message(sp.send_audio(value))
            expected.append(Audio(audio=value))
        else:
            server.send_frame(Opcode.PING, value)
    server.send_message(sp.send_end_of_stream())
    expected.append(EndOfStream())
    server.close(close_code)
    wire = server.data_to_send()
    feed_in_pieces(client, wire, [c % (len(wire) + 1) for c in cuts])
    events = client.events_received()
    assert events[:-1] == expected
    end = events[-1]
    assert isinstance(end, Closed)
    assert end.code == close_code
    if close_code == 1000:
        assert end.error is None
    else:
        # Even after end_of_stream, an error close code is reported.
        assert isinstance(end.error, ConnectionClosedError)
        assert end.error.code == close_code
    # Every ping is answered, in order, then the close is echoed.
    out = client.data_to_send()
    reader = FrameReader(expect_masked=True, max_message_size=None)
    assert reader.feed(out) == [
        *[(Opcode.PONG, value) for kind, value in ops if kind == "ping"],
        (Opcode.CLOSE, close_code.to_bytes(2, "big")),
    ]
    server.receive_data(out)
    assert server.events_received() == [Closed(code=close_code)]


# --------------------------------------------------------------------------
# garbage never raises

SERVER_PAYLOADS = [
    b'{"type":"ready","request_id":"r","sample_rate":48000}',
    b'{"type":"text","text":"x","start_s":0}',
    b'{"type":"audio","audio":"AAA="}',
    b'{"type":"end_of_stream"}',
    b'{"type":"error","message":"no","code":1008}',
    b'{"type":"step"}',
    b'{"type":"audio","audio":"%%"}',
    b"\x03\xe8",  # a close payload with code 1000
    b"\x03\xf3bye",  # 1011
    b"\xff\xfe",
    b"[1]",
]
CLIENT_PAYLOADS = [
    b'{"type":"setup","voice_id":"v"}',
    b'{"type":"setup","voice_id":"v","input_format":"mp3"}',
    b'{"type":"audio","audio":"AAA="}',
    b'{"type":"end_of_stream"}',
    b'{"type":"flush"}',
    b"\x03\xe8",
    b"\x03\xe9",
    b"\xc3",
]


def frame(b0: int, masked: bool, payload: bytes) -> bytes:
    """One frame with arbitrary first byte and a correct length (maybe masked)."""
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if masked else 0) | n])
    elif n < 65536:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, (0x80 if masked else 0) | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = b"\x11\x22\x33\x44"
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def garbage(payloads: list[bytes], masked: st.SearchStrategy[bool]) -> st.SearchStrategy[bytes]:
    b0 = st.one_of(st.integers(0, 255), st.sampled_from([0x81, 0x01, 0x80, 0x88, 0x89, 0x8A, 0x82]))
    payload = st.one_of(st.binary(max_size=140), st.sampled_from(payloads))
    frames = st.builds(frame, b0, masked, payload)
    return st.lists(st.one_of(frames, st.binary(max_size=12)), max_size=8).map(b"".join)


KNOWN_CLIENT_EVENTS = (Ready, Text, Audio, EndOfStream, ErrorMessage, UnknownMessage, Closed)
KNOWN_SERVER_EVENTS = (SetupReceived, AudioReceived, EndOfStreamReceived, Closed)


def check_client_end(events: list[Any]) -> Closed:
    assert all(isinstance(e, KNOWN_CLIENT_EVENTS) for e in events), events
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1, events
    assert events[-1] is closed[0]
    end = closed[0]
    if end.error is None:
        # Only a clean close after the request ended is not a failure.
        assert end.code == 1000
        assert any(isinstance(e, (EndOfStream, ErrorMessage)) for e in events), events
    else:
        assert isinstance(end.error, S2SError)
    return end


@PROPS
@given(data=garbage(SERVER_PAYLOADS, st.just(False)) |
       garbage(SERVER_PAYLOADS, st.booleans()) | st.binary(max_size=300),
       cuts=CUTS, ready=st.booleans())
def test_client_garbage_never_raises(data: bytes, cuts: list[int], ready: bool) -> None:
    client, _ = started(Setup(voice_id="v"), ready=ready)
    feed_in_pieces(client, data, cuts)
    client.data_to_send()
    events = client.events_received()
    client.receive_eof()
    client.receive_data(b"\x81\x02{}")  # anything after the end is ignored
    events += client.events_received()
    end = check_client_end(events)
    assert client.state is ConnectionState.CLOSED
    assert client.closed_event == end
    assert client.next_deadline() is None
    # The same bytes in one piece give the same events.
    client2, _ = started(Setup(voice_id="v"), ready=ready)
    client2.receive_data(data)
    client2.receive_eof()
    assert normalized(client2.events_received()) == normalized(events)


@PROPS
@given(data=garbage(CLIENT_PAYLOADS, st.just(True)) | garbage(CLIENT_PAYLOADS, st.booleans()) |
       st.binary(max_size=300),
       cuts=CUTS, setup_first=st.booleans())
def test_server_garbage_never_raises(data: bytes, cuts: list[int], setup_first: bool) -> None:
    if setup_first:
        _, server = started(Setup(voice_id="v"), ready=False)
    else:
        _, server = open_pair()
    feed_in_pieces(server, data, cuts)
    server.data_to_send()
    events = server.events_received()
    server.receive_eof()
    events += server.events_received()
    assert all(isinstance(e, KNOWN_SERVER_EVENTS) for e in events), events
    closed = [e for e in events if isinstance(e, Closed)]
    assert len(closed) == 1
    assert events[-1] is closed[0]
    end = closed[0]
    if end.error is None:
        # The client closed cleanly (1000, 1001 or an empty close frame).
        assert end.code in (1000, 1001, 1005)
    else:
        assert isinstance(end.error, S2SError)
    assert server.state is ConnectionState.CLOSED
    # The same bytes in one piece give the same events.
    if setup_first:
        _, server2 = started(Setup(voice_id="v"), ready=False)
    else:
        _, server2 = open_pair()
    server2.receive_data(data)
    server2.receive_eof()
    assert normalized(server2.events_received()) == normalized(events)


def test_garbage_frame_helper_matches_our_writer() -> None:
    payload = b'{"type":"end_of_stream"}'
    assert frame(0x81, False, payload) == FrameWriter(mask=False).frame(Opcode.TEXT, payload)
