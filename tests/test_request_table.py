"""RequestTable: the core's requests layer, driven by hand-made server bytes.

The peer is the core's own ``ServerConnection``/``ServerProtocol``; every
byte it writes is fed to the table (whole, or one byte at a time), so the
routing, the unscoped-error rule, the queues and the refusals are checked
without a socket, a thread or a clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from s2s_core._frames import FrameReader, Opcode
from s2s_core.connection import ClientConnection, ConnectionState, ServerConnection, UpgradeRequest
from s2s_core.errors import (
    ConnectionClosedError,
    InternalServerError,
    InvalidAudio,
    LocalProtocolError,
    PolicyViolation,
    ServerError,
)
from s2s_core.events import Audio, EndOfStream, Ready, Text
from s2s_core.request_table import WAIT, RequestHandle, RequestTable
from s2s_core.setup import Setup

URL = "ws://127.0.0.1:8765/api/speech/s2s"
QUIET = {"ping_interval": None, "ready_timeout": None, "idle_timeout": None}
PIECES = [None, 1]  # whole writes, then one byte at a time


def setup_of(rid: str | None = None, *, reuse: bool = False) -> Setup:
    return Setup(voice_id="v", input_format="pcm", output_format="pcm",
                 json_config={"target_language": "en"}, client_req_id=rid,
                 close_ws_on_eos=False if reuse or rid is not None else None)


class Peer:
    """A RequestTable over a ClientConnection, and the core's server facing it."""

    def __init__(self, *, piece: int | None = None, queue_size: int = 256) -> None:
        self.piece = piece
        self.table = RequestTable(ClientConnection(URL, **QUIET), queue_size=queue_size)
        self.core = self.table.connection
        self.server = ServerConnection()
        self.server_events: list[Any] = []
        self.c2s = bytearray()
        self.pump()
        assert self.core.state is ConnectionState.OPEN

    @property
    def sp(self) -> Any:
        return self.server.protocol

    def pump(self) -> None:
        """Move bytes both ways until both sides are quiet."""
        for _ in range(100):
            moved = False
            data = self.core.data_to_send()
            if data:
                moved = True
                self.c2s += data
                self.server.receive_data(data)
            for event in self.server.events_received():
                self.server_events.append(event)
                if isinstance(event, UpgradeRequest):
                    self.server.accept()
            data = self.server.data_to_send()
            if data:
                moved = True
                self.feed(data)
            if not moved:
                return
        raise AssertionError("pump did not settle")

    def feed(self, data: bytes) -> None:
        if self.piece is None:
            self.table.receive_data(data)
            return
        for i in range(0, len(data), self.piece):
            self.table.receive_data(data[i:i + self.piece])

    def serve(self, *messages: bytes) -> None:
        for message in messages:
            self.server.send_message(message)
        self.pump()

    def start(self, setup: Setup) -> RequestHandle:
        handle = self.table.start(setup)
        self.pump()
        return handle

    def close_from_server(self, code: int, reason: str = "") -> None:
        self.server.close(code, reason)
        self.pump()


def drain(handle: RequestHandle) -> list[Any]:
    """Every event queued now (stops at WAIT or the end)."""
    out = []
    while True:
        item = handle.next()
        if item is WAIT or item is None:
            return out
        out.append(item)


def client_frames(data: bytes) -> list[tuple[Opcode, bytes]]:
    reader = FrameReader(expect_masked=True, max_message_size=None)
    head_end = data.find(b"\r\n\r\n") + 4
    frames = reader.feed(bytes(data[head_end:]))
    assert reader.error is None
    return frames


# --- routing ---------------------------------------------------------------


@pytest.mark.parametrize("piece", PIECES)
def test_events_are_routed_by_client_req_id(piece: int | None) -> None:
    peer = Peer(piece=piece)
    a, b = peer.start(setup_of("a")), peer.start(setup_of("b"))
    peer.serve(peer.sp.send_ready("req-b", 48000, client_req_id="b"),
               peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_audio(b"\x01\x00" * 8, client_req_id="a"),
               peer.sp.send_text("hello", 0.0, 0.5, client_req_id="b"),
               peer.sp.send_end_of_stream(client_req_id="a"))
    assert {h.client_req_id for h in peer.table.handles_to_wake()} == {"a", "b"}
    assert peer.table.handles_to_wake() == []  # each wake-up once
    got_a, got_b = drain(a), drain(b)
    assert [type(e) for e in got_a] == [Ready, Audio, EndOfStream]
    assert [type(e) for e in got_b] == [Ready, Text]
    assert got_a[0].request_id == "req-a" and got_b[0].request_id == "req-b"
    assert a.finished and a.result().raw_data == b"\x01\x00" * 8
    assert not b.ended and b.text_with_timestamps[0].text == "hello"
    assert [h.client_req_id for h in peer.table.live()] == ["b"]


@pytest.mark.parametrize("piece", PIECES)
def test_unscoped_events_go_to_the_unscoped_request(piece: int | None) -> None:
    peer = Peer(piece=piece)
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000),
               peer.sp.send_audio(b"\x02\x00" * 4),
               peer.sp.send_end_of_stream())
    assert [type(e) for e in drain(handle)] == [Ready, Audio, EndOfStream]
    assert handle.result().request_id == "req-1"


@pytest.mark.parametrize("piece", PIECES)
def test_unscoped_events_go_to_the_only_live_request(piece: int | None) -> None:
    peer = Peer(piece=piece)
    # A request that ended must not take what belongs to the live one.
    first = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-1", 48000, client_req_id="a"),
               peer.sp.send_end_of_stream(client_req_id="a"))
    assert first.ended
    second = peer.start(setup_of("b"))
    peer.serve(peer.sp.send_ready("req-2", 48000, client_req_id="b"),
               peer.sp.send_text("no id", 0.0, 0.1))  # the server left the id out
    assert [type(e) for e in drain(second)] == [Ready, Text]
    assert second.text_with_timestamps[0].text == "no id"
    assert [type(e) for e in drain(first)] == [Ready, EndOfStream]


# --- the unscoped-error rule -----------------------------------------------


@pytest.mark.parametrize("piece", PIECES)
def test_unscoped_error_fails_every_multiplexed_request(piece: int | None) -> None:
    peer = Peer(piece=piece)
    a, b = peer.start(setup_of("a")), peer.start(setup_of("b"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_ready("req-b", 48000, client_req_id="b"),
               peer.sp.send_audio(b"\x01\x00" * 10, client_req_id="a"),
               peer.sp.send_audio(b"\x02\x00" * 20, client_req_id="b"),
               b'{"type":"error","message":"worker crashed","code":1011}')
    # Both fail at once, by the error itself (not only when the close follows).
    assert a.ended and b.ended
    assert isinstance(a.terminal, InternalServerError)
    assert isinstance(b.terminal, InternalServerError)
    assert peer.table.closed is None
    peer.close_from_server(1011, "worker crashed")
    assert peer.table.closed is not None and peer.table.closed.code == 1011
    errors = []
    for handle, size in ((a, 20), (b, 40)):
        events = []
        with pytest.raises(ServerError) as info:
            while (event := handle.next()) is not WAIT:
                events.append(event)
        assert [type(e) for e in events] == [Ready, Audio]  # then its error is raised
        error = info.value
        assert isinstance(error, InternalServerError)
        assert error.code == 1011 and "worker crashed" in str(error)
        partial = error.partial_result
        assert partial is not None and not partial.complete
        assert len(partial.raw_data) == size
        # Raised again on every later call, and by every send.
        with pytest.raises(InternalServerError):
            handle.next()
        with pytest.raises(InternalServerError):
            handle.check_send("send_audio")
        errors.append(error)
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]) == str(errors[1])
    # The close is explained by the error that came before it.
    assert isinstance(peer.table.close_error(peer.table.closed), InternalServerError)


@pytest.mark.parametrize("piece", PIECES)
def test_unscoped_error_with_one_live_request_fails_only_it(piece: int | None) -> None:
    peer = Peer(piece=piece)
    first = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_end_of_stream(client_req_id="a"))
    second = peer.start(setup_of("b"))
    peer.serve(peer.sp.send_ready("req-b", 48000, client_req_id="b"),
               b'{"type":"error","message":"bad voice","code":1011}')
    assert drain(first)[-1] == EndOfStream(client_req_id="a")
    assert first.result().complete
    with pytest.raises(InternalServerError, match="bad voice"):
        drain(second)
    assert peer.table.socket_error is None  # it was about that request


@pytest.mark.parametrize("piece", PIECES)
def test_unscoped_error_with_no_request_live_explains_the_close(piece: int | None) -> None:
    peer = Peer(piece=piece)
    done = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_end_of_stream(client_req_id="a"))
    peer.serve(b'{"type":"error","message":"Invalid or expired API key","code":1008}')
    assert peer.table.socket_error is not None
    peer.close_from_server(1008, "")
    closed = peer.table.closed
    assert closed is not None
    error = peer.table.close_error(closed)
    assert isinstance(error, PolicyViolation) and "expired API key" in str(error)
    with pytest.raises(PolicyViolation):
        peer.table.start(setup_of("b"))
    assert drain(done)[-1] == EndOfStream(client_req_id="a")
    assert done.result().complete  # an ended request keeps its result


@pytest.mark.parametrize("piece", PIECES)
def test_error_and_close_with_the_upgrade_explain_the_close(piece: int | None) -> None:
    table = RequestTable(ClientConnection(URL, **QUIET))
    server = ServerConnection()
    server.receive_data(table.connection.data_to_send())
    assert isinstance(server.events_received()[0], UpgradeRequest)
    server.accept()
    server.send_message(server.protocol.send_error("Invalid or expired API key", 1008))
    server.close(1008, "")
    data = server.data_to_send()  # the 101, the error and the close in one segment
    for i in range(0, len(data), piece or len(data)):
        table.receive_data(data[i:i + (piece or len(data))])
    assert table.closed is not None
    assert isinstance(table.close_error(table.closed), PolicyViolation)
    # The core queued the close echo (RFC 6455 5.5.1): the adapter must write it.
    frames = client_frames(b"HTTP/1.1 \r\n\r\n" + table.connection.data_to_send())
    assert frames[-1][0] is Opcode.CLOSE and frames[-1][1][:2] == (1008).to_bytes(2, "big")


# --- backpressure ------------------------------------------------------------


def test_a_full_queue_saturates_and_draining_clears_it() -> None:
    peer = Peer(queue_size=3)
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000),
               peer.sp.send_audio(b"\x00\x00"))
    assert not peer.table.saturated and handle.queued == 2
    peer.serve(peer.sp.send_audio(b"\x00\x00"))
    assert peer.table.saturated
    peer.serve(peer.sp.send_audio(b"\x00\x00"))  # still queued: the bound is a signal
    assert handle.queued == 4 and peer.table.saturated
    handle.next()
    assert peer.table.saturated  # 3 left: still at the bound
    handle.next()
    assert not peer.table.saturated
    peer.serve(peer.sp.send_audio(b"\x00\x00"))
    assert peer.table.saturated
    handle.take_batch()  # the threaded consumer's way
    assert not peer.table.saturated


def test_an_ended_request_never_holds_saturation() -> None:
    peer = Peer(queue_size=2)
    a, b = peer.start(setup_of("a")), peer.start(setup_of("b"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_audio(b"\x00\x00", client_req_id="a"))
    assert peer.table.saturated
    peer.serve(peer.sp.send_end_of_stream(client_req_id="a"))
    assert not peer.table.saturated and a.queued == 3  # ended: nothing more will come
    peer.serve(peer.sp.send_ready("req-b", 48000, client_req_id="b"),
               peer.sp.send_error("failed", 1011, client_req_id="b"))
    assert not peer.table.saturated and b.ended and b.queued == 2


def test_lift_and_restore_bound() -> None:
    peer = Peer(queue_size=2)
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000), peer.sp.send_audio(b"\x00\x00"))
    assert peer.table.saturated
    handle.lift_bound()
    assert not peer.table.saturated
    peer.serve(*[peer.sp.send_audio(b"\x00\x00") for _ in range(5)])
    assert not peer.table.saturated and handle.queued == 7
    handle.lift_bound()  # nested
    handle.restore_bound()
    assert not peer.table.saturated
    handle.restore_bound()
    assert peer.table.saturated  # the bound is back, and the queue is over it
    drain(handle)
    assert not peer.table.saturated


def test_closing_discards_backpressure() -> None:
    peer = Peer(queue_size=1)
    peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000))
    assert peer.table.saturated
    peer.table.close()
    assert peer.table.discarding and not peer.table.saturated


def test_queue_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        RequestTable(ClientConnection(URL, **QUIET), queue_size=0)


# --- why a send is refused -----------------------------------------------------


def test_check_send_sees_a_server_error_before_it_is_routed() -> None:
    peer = Peer()
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000), peer.sp.send_audio(b"\x03\x00"))
    peer.server.send_message(peer.sp.send_error("no credits", 1008))
    # The core took the bytes; the table has not routed them yet.
    peer.core.receive_data(peer.server.data_to_send())
    assert not handle.ended
    with pytest.raises(PolicyViolation, match="no credits") as info:
        handle.check_send("send_audio")
    assert info.value.partial_result is not None
    with pytest.raises(PolicyViolation):
        peer.table.send_audio(handle, [b"\x00\x00"])


def test_check_send_after_the_connection_closed() -> None:
    peer = Peer()
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000), peer.sp.send_audio(b"\x03\x00" * 3))
    drain(handle)
    peer.close_from_server(1011, "gone")
    with pytest.raises(ConnectionClosedError) as info:
        handle.check_send("send_audio")
    assert info.value.code == 1011
    assert info.value.partial_result is not None
    assert info.value.partial_result.raw_data == b"\x03\x00" * 3
    with pytest.raises(ConnectionClosedError):
        peer.table.send_end_of_stream(handle)
    with pytest.raises(ConnectionClosedError):
        peer.table.start(setup_of())


def test_check_send_after_the_request_ended() -> None:
    peer = Peer()
    handle = peer.start(setup_of(reuse=True))
    peer.table.send_end_of_stream(handle)
    peer.serve(peer.sp.send_ready("req-1", 48000), peer.sp.send_end_of_stream())
    # Ended, not yet consumed, and once consumed: a local misuse, not a failure.
    with pytest.raises(LocalProtocolError, match="cannot send_audio: the request has ended"):
        handle.check_send("send_audio")
    drain(handle)
    with pytest.raises(LocalProtocolError):
        peer.table.send_audio(handle, [b"\x00\x00"])
    with pytest.raises(LocalProtocolError):
        peer.table.send_end_of_stream(handle)


def test_check_send_after_the_request_failed() -> None:
    peer = Peer()
    handle = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_audio(b"\x05\x00", client_req_id="a"),
               peer.sp.send_error("bad audio", 1008, client_req_id="a"))
    with pytest.raises(PolicyViolation, match="bad audio") as info:
        handle.check_send("send_audio")
    assert info.value.partial_result is not None
    assert handle.ready_failure() is None  # ready came before the failure


def test_ready_failure_when_the_connection_ends_before_ready() -> None:
    peer = Peer()
    handle = peer.start(setup_of())
    assert handle.ready_failure() is None
    peer.close_from_server(1011, "no worker")
    failure = handle.ready_failure()
    assert isinstance(failure, ConnectionClosedError) and failure.code == 1011


# --- pruning -------------------------------------------------------------------


def test_ended_requests_are_pruned_on_the_next_start() -> None:
    peer = Peer()
    a = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-a", 48000, client_req_id="a"),
               peer.sp.send_audio(b"\x07\x00" * 2, client_req_id="a"),
               peer.sp.send_end_of_stream(client_req_id="a"))
    assert a.ended and not a.finished  # nobody consumed it yet
    assert "1 request(s)" in repr(peer.table)
    b = peer.start(setup_of("b"))
    assert [h.client_req_id for h in peer.table.live()] == ["b"]
    assert "1 request(s)" in repr(peer.table)  # a is gone from the table
    # Its consumer keeps a working handle: events, then the result.
    assert [type(e) for e in drain(a)] == [Ready, Audio, EndOfStream]
    assert a.result().raw_data == b"\x07\x00" * 2
    with pytest.raises(LocalProtocolError):
        a.check_send("send_audio")
    # The same id again is a new request; the old handle gets nothing of it.
    a2 = peer.start(setup_of("a"))
    peer.serve(peer.sp.send_ready("req-a2", 48000, client_req_id="a"))
    assert a.next() is None
    assert [e.request_id for e in drain(a2)] == ["req-a2"]
    assert not b.ended


# --- bad input -------------------------------------------------------------------


def test_fail_input_fails_the_request_and_closes() -> None:
    peer = Peer()
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000), peer.sp.send_audio(b"\x09\x00"))
    error = InvalidAudio("not audio")
    peer.table.fail_input(handle, error)
    assert handle in peer.table.handles_to_wake()
    assert peer.table.discarding
    frames = client_frames(bytes(peer.c2s) + peer.core.data_to_send())
    assert frames[-1][0] is Opcode.CLOSE and frames[-1][1][:2] == (1000).to_bytes(2, "big")
    # What came before the failure is still yielded, then the failure.
    assert [type(e) for e in drain_until_error(handle, InvalidAudio)] == [Ready, Audio]
    with pytest.raises(InvalidAudio) as info:
        handle.check_send("send_audio")
    assert info.value is error and error.partial_result is not None
    assert len(error.partial_result.raw_data) == 2


def test_fail_input_keeps_the_reason_of_an_ended_request() -> None:
    peer = Peer()
    handle = peer.start(setup_of())
    peer.serve(peer.sp.send_ready("req-1", 48000),
               peer.sp.send_error("worker crashed", 1011))
    peer.table.fail_input(handle, InvalidAudio("late"))
    with pytest.raises(InternalServerError):
        drain(handle)


def drain_until_error(handle: RequestHandle, error: type[BaseException]) -> list[Any]:
    events: list[Any] = []
    with pytest.raises(error):
        while (event := handle.next()) is not WAIT and event is not None:
            events.append(event)
    return events
