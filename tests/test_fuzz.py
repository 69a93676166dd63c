"""Fuzzing the byte-level cores with mutated valid streams (issue 7).

A recorded, valid client<->server exchange is mutated (bit flips, byte
overwrites, insertions, deletions, truncation) and fed, in random splits, to
a fresh ``ClientConnection`` or ``ServerConnection``. Whatever the bytes,
``receive_data`` must not raise, must not emit anything after ``Closed``,
and every fault must end in exactly one ``Closed`` with an error.

CI runs a fixed budget; set S2S_FUZZ_EXAMPLES (e.g. 20000) for a longer run.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2s_core.connection import ClientConnection, ConnectionState, ServerConnection
from s2s_core.events import Closed
from s2s_core.setup import Setup

URL = "ws://127.0.0.1:8765/api/speech/s2s"
EXAMPLES = int(os.environ.get("S2S_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="CI" in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NONCE = b"dGhlIHNhbXBsZSBub25jZQ=="


def record_exchange() -> tuple[bytes, bytes]:
    """The bytes each side sent in one complete request (fixed nonce: replayable)."""
    import wsproto.handshake as handshake

    original = handshake.generate_nonce
    handshake.generate_nonce = lambda: NONCE  # type: ignore[assignment]
    try:
        client = ClientConnection(URL, api_key="k", ping_interval=None, ready_timeout=None)
    finally:
        handshake.generate_nonce = original
    server = ServerConnection()
    up, down = bytearray(), bytearray()

    def pump() -> None:
        data = client.data_to_send()
        up.extend(data)
        server.receive_data(data)
        data = server.data_to_send()
        down.extend(data)
        client.receive_data(data)

    client.send_setup(Setup(voice_id="v", json_config={"target_language": "en"}))
    client.send_audio(bytes(range(256)) * 10)
    pump()
    server.events_received()
    server.accept()
    pump()
    pump()  # the setup and audio queued before the upgrade go out once it completes
    server.events_received()
    proto = server.protocol
    for message in (proto.send_ready("rid", 48000, frame_size=3840),
                    proto.send_audio(b"\x01\x02" * 500, 0.0, 0.08),
                    proto.send_text("hola", 0.0, 0.5)):
        server.send_message(message)
    client.send_end_of_stream()
    pump()
    server.send_message(proto.send_end_of_stream())
    server.close(1000)
    pump()
    return bytes(up), bytes(down)


UP, DOWN = record_exchange()


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            break
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(out) - 1))
        if op == "flip":
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            out[at] = draw(st.integers(0, 255))
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        else:
            del out[at:]
    return bytes(out)


def feed(conn: Any, data: bytes, cuts: list[int]) -> list[Any]:
    events: list[Any] = []
    points = sorted({c % (len(data) + 1) for c in cuts})
    start = 0
    for point in [*points, len(data)]:
        conn.receive_data(data[start:point])
        if isinstance(conn, ServerConnection) and conn.request is not None \
                and conn.state is ConnectionState.CONNECTING:
            conn.accept()
        events.extend(conn.events_received())
        conn.data_to_send()
        start = point
    conn.receive_eof()
    events.extend(conn.events_received())
    return events


def expect_one_closed_last(events: list[Any]) -> None:
    closes = [i for i, e in enumerate(events) if isinstance(e, Closed)]
    assert len(closes) == 1, events[-3:]
    assert closes[0] == len(events) - 1  # nothing after Closed


@FUZZ
@given(st.data(), st.lists(st.integers(0, 10**6), max_size=8))
def test_client_survives_mutated_server_bytes(data: st.DataObject, cuts: list[int]) -> None:
    stream = data.draw(mutated(DOWN))
    import wsproto.handshake as handshake

    original = handshake.generate_nonce
    handshake.generate_nonce = lambda: NONCE  # type: ignore[assignment]
    try:
        client = ClientConnection(URL, api_key="k", ping_interval=None, ready_timeout=None)
    finally:
        handshake.generate_nonce = original
    client.send_setup(Setup(voice_id="v"))
    client.send_audio(b"\x00\x00" * 100)
    client.data_to_send()
    events = feed(client, stream, cuts)
    expect_one_closed_last(events)
    if stream != DOWN:
        closed = events[-1]
        # A mutated close code can still be a normal one (1001 going away, 1005 empty).
        assert closed.error is not None or closed.code in (1000, 1001, 1005)


@FUZZ
@given(st.data(), st.lists(st.integers(0, 10**6), max_size=8))
def test_server_survives_mutated_client_bytes(data: st.DataObject, cuts: list[int]) -> None:
    stream = data.draw(mutated(UP))
    server = ServerConnection()
    events = feed(server, stream, cuts)
    expect_one_closed_last(events)


def test_the_recorded_exchange_is_valid() -> None:
    """The seed streams themselves end normally (so mutations are what breaks them)."""
    server = ServerConnection()
    events = feed(server, UP, [])
    assert isinstance(events[-1], Closed)
    assert events[0].__class__.__name__ == "UpgradeRequest"
