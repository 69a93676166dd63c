"""ClientProtocol / ServerProtocol: the message-level S2S lifecycle.

Our misuse raises LocalProtocolError with the state unchanged; the peer's
raises RemoteProtocolError (on the server role, with the error code to
answer with as ``close_code``).
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from s2s_core.errors import InvalidAudio, InvalidSetup, LocalProtocolError, RemoteProtocolError
from s2s_core.events import (
    Audio,
    AudioReceived,
    EndOfStream,
    EndOfStreamReceived,
    ErrorMessage,
    Ready,
    SetupReceived,
    Text,
    UnknownMessage,
)
from s2s_core.protocol import ClientProtocol, ProtocolState, ServerProtocol
from s2s_core.setup import Setup

READY = '{"type":"ready","request_id":"q","sample_rate":48000,"frame_size":3840}'
EOS = '{"type":"end_of_stream"}'


def ready(rid: str | None = None) -> str:
    return json.dumps({"type": "ready", "request_id": f"q-{rid}", "sample_rate": 48000,
                       "client_req_id": rid})


def eos(rid: str | None = None) -> str:
    return json.dumps({"type": "end_of_stream", "client_req_id": rid})


class Pair:
    """A client and a server protocol wired to each other."""

    def __init__(self) -> None:
        self.client = ClientProtocol()
        self.server = ServerProtocol()

    def setup(self, setup: Setup) -> list[object]:
        return list(self.server.receive_message(self.client.send_setup(setup)))

    def audio(self, data: bytes, rid: str | None = None) -> list[object]:
        return list(self.server.receive_message(self.client.send_audio(data, rid)))

    def client_eos(self, rid: str | None = None) -> list[object]:
        return list(self.server.receive_message(self.client.send_end_of_stream(rid)))

    def ready(self, rid: str | None = None) -> list[object]:
        return list(self.client.receive_message(
            self.server.send_ready(f"q-{rid}", 48000, frame_size=3840, client_req_id=rid)))

    def text(self, text: str, rid: str | None = None) -> list[object]:
        return list(self.client.receive_message(
            self.server.send_text(text, 0.0, 0.5, client_req_id=rid)))

    def server_audio(self, data: bytes, rid: str | None = None) -> list[object]:
        return list(self.client.receive_message(
            self.server.send_audio(data, 0.0, 0.08, client_req_id=rid)))

    def server_eos(self, rid: str | None = None) -> list[object]:
        return list(self.client.receive_message(self.server.send_end_of_stream(rid)))

    def error(self, code: int, rid: str | None = None) -> list[object]:
        return list(self.client.receive_message(self.server.send_error("boom", code, rid)))

    def states(self) -> tuple[ProtocolState, ProtocolState]:
        return self.client.state, self.server.state


def snapshot(proto: ClientProtocol | ServerProtocol) -> object:
    life = proto._life
    return (proto.state, life.finished, life.reusable,
            {rid: (r.client, r.server) for rid, r in life.requests.items()})


# --------------------------------------------------------------------------
# outputs


def test_every_send_returns_the_text_to_send() -> None:
    proto = ClientProtocol()
    text = proto.send_setup(Setup(voice_id="v"))
    assert isinstance(text, str)
    assert json.loads(text)["type"] == "setup"
    audio = proto.send_audio(b"\x00\x01")
    assert isinstance(audio, str)
    assert json.loads(audio) == {"type": "audio", "audio": "AAE="}
    assert proto.send_end_of_stream() == EOS


def test_send_setup_accepts_a_mapping() -> None:
    proto = ClientProtocol()
    wire = json.loads(proto.send_setup({"voice_id": "v", "output_format": "wav"}))
    assert wire["output_format"] == "wav"
    assert wire["input_format"] == "pcm"


def test_bad_mapping_leaves_state_unchanged() -> None:
    proto = ClientProtocol()
    with pytest.raises(InvalidSetup):
        proto.send_setup({"voice_id": "v", "voice": "typo"})
    assert proto.state is ProtocolState.IDLE
    assert proto.request() is None


def test_full_single_use_exchange() -> None:
    pair = Pair()
    assert pair.setup(Setup(voice_id="v")) == [SetupReceived(setup=Setup(voice_id="v"))]
    assert pair.states() == (ProtocolState.ACTIVE, ProtocolState.ACTIVE)
    assert pair.audio(b"\x01\x02\x03\x04") == [AudioReceived(audio=b"\x01\x02\x03\x04")]
    [event] = pair.ready()
    assert event == Ready(request_id="q-None", sample_rate=48000, frame_size=3840)
    request = pair.client.request()
    assert request is not None
    assert request.ready == event
    assert pair.text("hola") == [Text(text="hola", start_s=0.0, stop_s=0.5)]
    assert pair.server_audio(b"\xff\x7f") == [Audio(audio=b"\xff\x7f", start_s=0.0, stop_s=0.08)]
    assert pair.client_eos() == [EndOfStreamReceived()]
    assert pair.text("more") == [Text(text="more", start_s=0.0, stop_s=0.5)]
    assert pair.server_eos() == [EndOfStream()]
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)


def test_audio_may_follow_setup_before_ready() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v"))
    assert pair.audio(b"\x00\x00") == [AudioReceived(audio=b"\x00\x00")]
    assert pair.client_eos() == [EndOfStreamReceived()]
    pair.ready()
    assert pair.server_eos() == [EndOfStream()]


def test_numpy_audio_is_converted_and_clipped() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    wire = json.loads(proto.send_audio(np.array([1.0, -1.0, 2.0], dtype=np.float32)))
    assert base64.b64decode(wire["audio"]) == bytes.fromhex("ff7f0080ff7f")  # clipped
    wire = json.loads(proto.send_audio(np.array([[1], [-2]], dtype=np.int16)))
    assert base64.b64decode(wire["audio"]) == bytes.fromhex("0100feff")


def test_odd_pcm_chunk_is_refused_without_state_change() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    before = snapshot(proto)
    with pytest.raises(InvalidAudio, match="3 bytes"):
        proto.send_audio(b"\x00\x01\x02")
    assert snapshot(proto) == before


def test_numpy_needs_pcm_input_format() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v", input_format="ulaw_8000"))
    with pytest.raises(InvalidAudio, match="ulaw_8000"):
        proto.send_audio(np.zeros(4, dtype=np.int16))
    # G.711 is one byte a sample: any length goes.
    assert json.loads(proto.send_audio(b"\x01\x02\x03"))["audio"] == "AQID"


def test_audio_of_wrong_type_is_refused() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    with pytest.raises(InvalidAudio):
        proto.send_audio([0, 1])  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# misuse and peer faults


def test_audio_before_setup() -> None:
    proto = ClientProtocol()
    with pytest.raises(LocalProtocolError, match="send setup first"):
        proto.send_audio(b"\x00\x00")
    assert proto.state is ProtocolState.IDLE
    server = ServerProtocol()
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_message('{"type":"audio","audio":"AAA="}')
    assert str(info.value) == "Session not found. Send setup first."
    assert info.value.close_code == 1002
    assert server.state is ProtocolState.IDLE


def test_unscoped_end_of_stream_on_a_fresh_socket_is_local_misuse() -> None:
    """An end_of_stream before any setup is "input before setup" (1002 on the server).

    BUG: ClientProtocol accepts it (and moves to FINISHED) while ServerProtocol
    answers it with "Session not found. Send setup first." (1002).
    """
    server = ServerProtocol()
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_message(EOS)
    assert info.value.close_code == 1002

    proto = ClientProtocol()
    with pytest.raises(LocalProtocolError):
        proto.send_end_of_stream()
    assert proto.state is ProtocolState.IDLE


def test_server_message_before_setup() -> None:
    proto = ClientProtocol()
    with pytest.raises(RemoteProtocolError, match="no request open"):
        proto.receive_message(READY)
    assert proto.state is ProtocolState.IDLE


def test_error_before_setup_ends_the_socket() -> None:
    """Auth failures arrive as an error before any request: an event, not a fault."""
    proto = ClientProtocol()
    events = proto.receive_message('{"type":"error","message":"bad key","code":1008}')
    assert events == [ErrorMessage(message="bad key", code=1008)]
    assert proto.state is ProtocolState.FINISHED
    with pytest.raises(LocalProtocolError):
        proto.send_setup(Setup(voice_id="v"))


def test_error_fails_the_request_on_both_sides() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v"))
    pair.ready()
    assert pair.error(1011) == [ErrorMessage(message="boom", code=1011)]
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)
    with pytest.raises(LocalProtocolError):
        pair.client.send_audio(b"\x00\x00")
    with pytest.raises(LocalProtocolError):
        pair.client.send_end_of_stream()


def test_server_audio_before_ready_is_a_remote_error() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    before = snapshot(proto)
    with pytest.raises(RemoteProtocolError) as info:
        proto.receive_message('{"type":"audio","audio":"AAA="}')
    assert "audio" in str(info.value)
    assert "awaiting_ready" in str(info.value)
    assert snapshot(proto) == before


def test_second_ready_is_a_remote_error() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    proto.receive_message(READY)
    before = snapshot(proto)
    with pytest.raises(RemoteProtocolError, match="ready"):
        proto.receive_message(READY)
    assert snapshot(proto) == before


def test_unknown_message_types_never_move_the_lifecycle() -> None:
    proto = ClientProtocol()
    proto.send_setup(Setup(voice_id="v"))
    before = snapshot(proto)
    [event] = proto.receive_message(b'{"type":"step","step_idx":1}')
    assert event == UnknownMessage(type="step", raw=b'{"type":"step","step_idx":1}')
    assert snapshot(proto) == before


def test_server_refuses_unknown_client_message() -> None:
    server = ServerProtocol()
    server.receive_message(json.dumps({"type": "setup", "voice_id": "v"}))
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_message('{"type":"flush"}')
    assert "'flush'" in str(info.value)
    assert info.value.close_code == 1002


def test_server_refuses_bad_setup_with_1008() -> None:
    server = ServerProtocol()
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_message(json.dumps({"type": "setup", "voice_id": "v",
                                           "input_format": "mp3"}))
    assert info.value.close_code == 1008
    assert "input_format" in str(info.value)
    assert "'mp3'" in str(info.value)
    assert server.state is ProtocolState.IDLE


@pytest.mark.parametrize("text", ["nope", "[]", '{"type":"audio"}', '{"type":"audio","audio":1}'])
def test_server_refuses_malformed_with_1002(text: str) -> None:
    server = ServerProtocol()
    server.receive_message(json.dumps({"type": "setup", "voice_id": "v"}))
    before = snapshot(server)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_message(text)
    assert info.value.close_code == 1002
    assert snapshot(server) == before


def test_server_ignores_unknown_setup_fields() -> None:
    server = ServerProtocol()
    [event] = server.receive_message(json.dumps(
        {"type": "setup", "voice_id": "v", "input_format": "pcm", "future": 1}))
    assert isinstance(event, SetupReceived)
    assert event.setup.input_format == "pcm"
    assert event.setup.output_format == "wav"


def test_server_local_misuse() -> None:
    server = ServerProtocol()
    with pytest.raises(LocalProtocolError):
        server.send_ready("q", 48000)
    server.receive_message(json.dumps({"type": "setup", "voice_id": "v"}))
    with pytest.raises(LocalProtocolError, match="awaiting_ready"):
        server.send_text("x", 0.0, 0.1)
    before = snapshot(server)
    with pytest.raises(LocalProtocolError):
        server.send_end_of_stream()
    assert snapshot(server) == before


# --------------------------------------------------------------------------
# single-use sockets


def test_single_use_socket_refuses_a_second_setup_while_live() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v"))
    before = snapshot(pair.client)
    with pytest.raises(LocalProtocolError, match="single-use"):
        pair.client.send_setup(Setup(voice_id="v", client_req_id="other"))
    assert snapshot(pair.client) == before
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive_message(json.dumps(
            {"type": "setup", "voice_id": "v", "client_req_id": "other"}))
    assert info.value.close_code == 1002


def test_single_use_socket_refuses_a_setup_after_the_end() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v"))
    pair.ready()
    pair.client_eos()
    pair.server_eos()
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)
    with pytest.raises(LocalProtocolError, match="no more requests"):
        pair.client.send_setup(Setup(voice_id="v"))
    with pytest.raises(LocalProtocolError):
        pair.client.send_end_of_stream()
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive_message(json.dumps({"type": "setup", "voice_id": "v"}))
    assert info.value.close_code == 1002
    # Input the client sent before it saw our end_of_stream: a race, ignored.
    assert pair.server.receive_message('{"type":"audio","audio":"AAA="}') == []


# --------------------------------------------------------------------------
# sequential reuse (close_ws_on_eos=False)


def test_sequential_reuse() -> None:
    pair = Pair()
    for n in range(3):
        setup = Setup(voice_id="v", close_ws_on_eos=False, json_config={"target_language": "fr"})
        assert pair.setup(setup) == [SetupReceived(setup=setup)]
        pair.audio(bytes([n, n]))
        pair.ready()
        assert pair.text(f"t{n}") == [Text(text=f"t{n}", start_s=0.0, stop_s=0.5)]
        pair.client_eos()
        assert pair.server_eos() == [EndOfStream()]
        assert pair.states() == (ProtocolState.IDLE, ProtocolState.IDLE)
    # An unscoped end_of_stream after the last request closes the socket.
    assert pair.client_eos() == [EndOfStreamReceived(final=True)]
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)
    with pytest.raises(LocalProtocolError):
        pair.client.send_setup(Setup(voice_id="v", close_ws_on_eos=False))


def test_reuse_refuses_a_setup_while_the_previous_request_is_live() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v", close_ws_on_eos=False))
    pair.ready()
    pair.client_eos()  # our side is done; the server's is not
    before = snapshot(pair.client)
    with pytest.raises(LocalProtocolError, match="still live"):
        pair.client.send_setup(Setup(voice_id="v", close_ws_on_eos=False))
    assert snapshot(pair.client) == before
    with pytest.raises(LocalProtocolError):
        pair.client.send_end_of_stream()  # neither scoped to a live request nor final


def test_reuse_after_an_error_scoped_to_the_request() -> None:
    pair = Pair()
    pair.setup(Setup(voice_id="v", close_ws_on_eos=False, client_req_id="a"))
    pair.ready("a")
    assert pair.error(1011, "a") == [ErrorMessage(message="boom", code=1011, client_req_id="a")]
    assert pair.states() == (ProtocolState.IDLE, ProtocolState.IDLE)
    # The id of an ended request may be used again.
    pair.setup(Setup(voice_id="v", close_ws_on_eos=False, client_req_id="a"))
    assert pair.states() == (ProtocolState.ACTIVE, ProtocolState.ACTIVE)


def test_unscoped_error_between_requests_is_an_event() -> None:
    """A server error between requests of a reused socket ends the socket.

    BUG: ClientProtocol raises RemoteProtocolError ("error is not allowed in
    request whose server side is done") because the unscoped error is routed
    to the previous, ended request, so the server's code and message are
    lost; ServerProtocol.send_error documents exactly this socket-level use.
    """
    pair = Pair()
    pair.setup(Setup(voice_id="v", close_ws_on_eos=False))
    pair.ready()
    pair.client_eos()
    pair.server_eos()
    assert pair.states() == (ProtocolState.IDLE, ProtocolState.IDLE)
    data = pair.server.send_error("session limit reached", 1011)
    assert pair.server.state is ProtocolState.FINISHED
    events = pair.client.receive_message(data)
    assert events == [ErrorMessage(message="session limit reached", code=1011)]
    assert pair.client.state is ProtocolState.FINISHED


# --------------------------------------------------------------------------
# multiplexing (concurrent requests with client_req_id)


def mux(rid: str) -> Setup:
    return Setup(voice_id="v", close_ws_on_eos=False, client_req_id=rid)


def test_multiplexing_routes_by_client_req_id() -> None:
    pair = Pair()
    pair.setup(mux("a"))
    pair.setup(mux("b"))
    assert pair.audio(b"\x01\x00", "b") == [AudioReceived(audio=b"\x01\x00", client_req_id="b")]
    assert pair.audio(b"\x02\x00", "a") == [AudioReceived(audio=b"\x02\x00", client_req_id="a")]
    pair.ready("b")
    pair.ready("a")
    ra, rb = pair.client.request("a"), pair.client.request("b")
    assert ra is not None and rb is not None
    assert ra.ready is not None and ra.ready.request_id == "q-a"
    assert rb.ready is not None and rb.ready.request_id == "q-b"
    assert pair.text("for b", "b") == [Text(text="for b", start_s=0.0, stop_s=0.5,
                                            client_req_id="b")]
    assert pair.server_audio(b"\x00\x01", "a") == [
        Audio(audio=b"\x00\x01", start_s=0.0, stop_s=0.08, client_req_id="a")]
    pair.client_eos("a")
    assert pair.server_eos("a") == [EndOfStream(client_req_id="a")]
    assert ra.ended and not rb.ended
    assert pair.states() == (ProtocolState.ACTIVE, ProtocolState.ACTIVE)
    pair.client_eos("b")
    pair.server_eos("b")
    assert pair.states() == (ProtocolState.IDLE, ProtocolState.IDLE)
    assert pair.client_eos() == [EndOfStreamReceived(final=True)]
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)


def test_multiplexing_live_id_reused() -> None:
    pair = Pair()
    pair.setup(mux("a"))
    before = snapshot(pair.client)
    with pytest.raises(LocalProtocolError, match="'a' is still live"):
        pair.client.send_setup(mux("a"))
    assert snapshot(pair.client) == before
    with pytest.raises(RemoteProtocolError) as info:
        pair.server.receive_message(json.dumps(mux("a").to_wire()))
    assert info.value.close_code == 1002


def test_multiplexing_needs_an_id_on_every_concurrent_setup() -> None:
    pair = Pair()
    pair.setup(mux("a"))
    with pytest.raises(LocalProtocolError, match="distinct client_req_id"):
        pair.client.send_setup(Setup(voice_id="v", close_ws_on_eos=False))
    pair2 = Pair()
    pair2.setup(Setup(voice_id="v", close_ws_on_eos=False))
    with pytest.raises(LocalProtocolError, match="distinct client_req_id"):
        pair2.client.send_setup(mux("b"))


def test_multiplexing_error_ends_only_its_request() -> None:
    pair = Pair()
    pair.setup(mux("a"))
    pair.setup(mux("b"))
    pair.ready("a")
    pair.ready("b")
    assert pair.error(1002, "a") == [ErrorMessage(message="boom", code=1002, client_req_id="a")]
    ra, rb = pair.client.request("a"), pair.client.request("b")
    assert ra is not None and rb is not None
    assert ra.ended and not rb.ended
    assert pair.states() == (ProtocolState.ACTIVE, ProtocolState.ACTIVE)
    with pytest.raises(LocalProtocolError):
        pair.client.send_audio(b"\x00\x00", "a")
    assert pair.audio(b"\x00\x00", "b") == [AudioReceived(audio=b"\x00\x00", client_req_id="b")]
    pair.client_eos("b")
    pair.server_eos("b")
    assert pair.client_eos() == [EndOfStreamReceived(final=True)]
    assert pair.states() == (ProtocolState.FINISHED, ProtocolState.FINISHED)


def test_multiplexing_final_end_of_stream_needs_every_request_ended() -> None:
    pair = Pair()
    pair.setup(mux("a"))
    pair.setup(mux("b"))
    pair.ready("a")
    pair.client_eos("a")
    pair.server_eos("a")
    before = snapshot(pair.client)
    with pytest.raises(LocalProtocolError):
        pair.client.send_end_of_stream()
    assert snapshot(pair.client) == before


def test_multiplexing_remote_faults() -> None:
    proto = ClientProtocol()
    proto.send_setup(mux("a"))
    proto.send_setup(mux("b"))
    before = snapshot(proto)
    with pytest.raises(RemoteProtocolError, match="'zzz'"):
        proto.receive_message(ready("zzz"))
    # An unscoped message cannot be routed while two requests are live.
    with pytest.raises(RemoteProtocolError):
        proto.receive_message(READY)
    assert snapshot(proto) == before
    proto.receive_message(ready("a"))
    proto.receive_message(eos("a"))
    with pytest.raises(RemoteProtocolError):
        proto.receive_message(eos("a"))


def test_unscoped_messages_route_to_the_only_live_request() -> None:
    proto = ClientProtocol()
    proto.send_setup(mux("a"))
    [event] = proto.receive_message(READY)
    assert isinstance(event, Ready)
    request = proto.request("a")
    assert request is not None
    assert request.ready == event
