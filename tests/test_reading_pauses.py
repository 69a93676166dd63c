"""ClientConnection's timers while the adapter stops reading, and after a failed write.

Issue 12 item 5 at the core, fed bytes directly with explicit times: while
our own backpressure stops reading, pongs (and everything else) cannot
arrive, so the pong, idle and ready timers are suspended; pings still go
out; any bytes received prove the link alive; and a dead link is still
detected once reading resumes.
"""

from __future__ import annotations

import pytest

from s2s_core._frames import FrameReader, FrameWriter, Opcode
from s2s_core.connection import ClientConnection, ConnectionState, ServerConnection, UpgradeRequest
from s2s_core.errors import (
    ConnectionClosedError,
    IdleTimeout,
    KeepaliveTimeout,
    PolicyViolation,
    ReadyTimeout,
)
from s2s_core.events import Closed, Ready
from s2s_core.options import DRAIN_AFTER_WRITE_FAILURE_S
from s2s_core.request_table import RequestTable
from s2s_core.setup import Setup

URL = "ws://127.0.0.1:8765/api/speech/s2s"
SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm")


def opened(**kwargs: float | None) -> tuple[ClientConnection, ServerConnection]:
    options = {"ping_interval": None, "ping_timeout": None, "ready_timeout": None,
               "idle_timeout": None, **kwargs}
    client = ClientConnection(URL, now=0.0, **options)  # type: ignore[arg-type]
    server = ServerConnection()
    server.receive_data(client.data_to_send())
    assert isinstance(server.events_received()[0], UpgradeRequest)
    server.accept()
    client.receive_data(server.data_to_send(), now=0.0)
    assert client.state is ConnectionState.OPEN
    return client, server


def client_frames(data: bytes) -> list[tuple[Opcode, bytes]]:
    reader = FrameReader(expect_masked=True, max_message_size=None)
    return reader.feed(data)


def fired(client: ClientConnection, now: float) -> list[object]:
    client.handle_timer(now)
    return client.events_received()


def test_pong_timer_is_suspended_while_reading_is_paused() -> None:
    client, _ = opened(ping_interval=1.0, ping_timeout=1.0)
    client.handle_timer(1.0)
    [(opcode, _)] = client_frames(client.data_to_send())
    assert opcode is Opcode.PING
    assert client.next_deadline() == 2.0  # the pong's
    client.pause_reading(now=1.5)
    assert client.next_deadline() == 2.0  # the next ping: still due
    client.handle_timer(2.0)
    assert client.events_received() == []
    # Pings still go out while paused (the first is still unanswered: its deadline stands).
    assert [op for op, _ in client_frames(client.data_to_send())] == [Opcode.PING]
    for now in (3.0, 10.0, 60.0):
        assert fired(client, now) == []
    client_frames(client.data_to_send())
    # Resumed: the peer gets a whole ping_timeout from now to be heard from.
    client.resume_reading(now=60.0)
    assert client.next_deadline() == 61.0
    [closed] = fired(client, 61.0)
    assert isinstance(closed, Closed) and isinstance(closed.error, KeepaliveTimeout)


def test_any_bytes_received_extend_the_pong_deadline() -> None:
    client, server = opened(ping_interval=1.0, ping_timeout=1.0)
    client.send_setup(SETUP, now=0.0)
    server.receive_data(client.data_to_send())
    server.events_received()
    client.handle_timer(1.0)  # a ping: its pong is due at 2.0
    client.data_to_send()  # the server never sees it: no pong will come
    server.send_message(server.protocol.send_ready("req-1", 48000))
    client.receive_data(server.data_to_send(), now=1.9)
    assert [type(e) for e in client.events_received()] == [Ready]
    assert fired(client, 2.0) == []  # a message proves the link alive (the next ping goes)
    assert client.next_deadline() == pytest.approx(2.9)  # a ping_timeout after those bytes
    assert fired(client, 2.8) == []
    [closed] = fired(client, 2.9)  # nothing more for a ping_timeout: dead
    assert isinstance(closed.error, KeepaliveTimeout)


def test_idle_timer_is_suspended_while_reading_is_paused() -> None:
    client, _ = opened(idle_timeout=2.0)
    client.send_setup(SETUP, now=0.0)
    client.pause_reading(now=1.0)
    assert client.next_deadline() is None
    assert fired(client, 30.0) == []
    client.resume_reading(now=30.0)
    assert client.next_deadline() == 32.0
    [closed] = fired(client, 32.0)
    assert isinstance(closed.error, IdleTimeout)


def test_ready_deadline_moves_by_the_time_spent_paused() -> None:
    client, _ = opened(ready_timeout=5.0)
    client.send_setup(SETUP, now=0.0)
    assert client.next_deadline() == 5.0
    client.pause_reading(now=1.0)
    assert fired(client, 9.0) == []
    client.resume_reading(now=9.0)  # 8 s paused
    assert client.next_deadline() == 13.0
    assert fired(client, 12.9) == []
    [closed] = fired(client, 13.0)
    assert isinstance(closed.error, ReadyTimeout)


def test_pause_and_resume_are_idempotent() -> None:
    client, _ = opened(ping_interval=1.0, ping_timeout=1.0)
    client.handle_timer(1.0)
    client.pause_reading(now=1.2)
    client.pause_reading(now=1.8)  # the pause began at 1.2
    client.resume_reading(now=5.0)
    client.resume_reading(now=9.0)  # not paused: nothing moves
    assert client.next_deadline() == 2.0  # the next ping (the pong's is 6.0)
    client.handle_timer(2.0)
    assert fired(client, 5.9) == []
    [closed] = fired(client, 6.0)
    assert isinstance(closed.error, KeepaliveTimeout)


def test_a_failed_write_lets_the_reader_drain_the_peers_last_words() -> None:
    client, server = opened()
    table = RequestTable(client)
    handle = table.start(SETUP, now=0.0)
    server.receive_data(client.data_to_send())
    client.write_failed(BrokenPipeError("EPIPE"), now=1.0)
    assert client.next_deadline() == 1.0 + DRAIN_AFTER_WRITE_FAILURE_S
    assert client.state is ConnectionState.OPEN  # the reader may still drain
    # What the server said before it went away explains the failure.
    server.send_message(server.protocol.send_error("no credits", 1008))
    server.close(1008, "")
    table.receive_data(server.data_to_send(), now=1.5)
    with pytest.raises(PolicyViolation, match="no credits"):
        handle.check_send("send_audio")
    assert table.closed is not None


def test_a_failed_write_fails_the_connection_after_the_drain_window() -> None:
    client, _ = opened()
    table = RequestTable(client)
    handle = table.start(SETUP, now=0.0)
    client.data_to_send()
    client.write_failed(BrokenPipeError("EPIPE"), now=1.0)
    client.write_failed(ConnectionResetError("later"), now=1.2)  # the first one counts
    table.handle_timer(1.0 + DRAIN_AFTER_WRITE_FAILURE_S)
    assert table.closed is not None and table.closed.code == 1006
    with pytest.raises(ConnectionClosedError, match="EPIPE") as info:
        handle.check_send("send_audio")
    assert isinstance(info.value.__cause__, BrokenPipeError)


def test_pings_from_the_server_are_answered_even_with_a_pong_pending() -> None:
    client, _ = opened(ping_interval=1.0, ping_timeout=1.0)
    client.handle_timer(1.0)
    client.data_to_send()
    client.receive_data(FrameWriter(mask=False).frame(Opcode.PING, b"hi"), now=1.5)
    assert client_frames(client.data_to_send()) == [(Opcode.PONG, b"hi")]
    assert client.next_deadline() == 2.0  # the ping itself proves the link alive until 2.5
    client.handle_timer(2.0)
    client.data_to_send()
    assert fired(client, 2.4) == []
    assert isinstance(fired(client, 2.5)[0].error, KeepaliveTimeout)  # type: ignore[attr-defined]
