"""The local server's raw protocol behaviour, seen through wsproto (the reference
WebSocket implementation) over a real socket: validation like the service."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Request,
    TextMessage,
)

from s2s_anyio import run_server

pytestmark = pytest.mark.timeout(30)


class RawClient:
    """A bare wsproto client: sends any JSON, returns every message and the close."""

    def __init__(self, url: str, *, key: str | None = "k") -> None:
        host_port, path = url.split("//")[1].split("/", 1)
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [(b"x-api-key", key.encode())] if key else []
        self.sock.sendall(self.ws.send(Request(host=host_port, target="/" + path,
                                               extra_headers=headers)))
        self.messages: list[dict[str, Any]] = []
        self.close: CloseConnection | None = None
        self._pending = ""
        while not any(isinstance(e, AcceptConnection) for e in self._read()):
            pass

    def send(self, payload: dict[str, Any]) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=json.dumps(payload))))

    def _read(self) -> list[Any]:
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, Message) and isinstance(event, TextMessage):
                self._pending += event.data
                if event.message_finished:
                    self.messages.append(json.loads(self._pending))
                    self._pending = ""
            elif isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.close = event
                self.sock.sendall(self.ws.send(event.response()))
        if not data and self.close is None:
            raise ConnectionError("closed without a close frame")
        return events

    def until_message(self, kind: str, count: int = 1) -> None:
        while sum(m["type"] == kind for m in self.messages) < count:
            self._read()

    def until_closed(self) -> list[dict[str, Any]]:
        while self.close is None:
            self._read()
        self.sock.close()
        return self.messages


SETUP = {"type": "setup", "model_name": "s2s-translate", "input_format": "pcm",
         "output_format": "pcm", "voice_id": "v", "json_config": {"target_language": "en"}}
AUDIO = {"type": "audio", "audio": base64.b64encode(bytes(3840)).decode()}


@pytest.fixture(scope="module")
def url() -> Any:
    with run_server() as server_url:
        yield server_url


def test_single_use_request_ends_with_end_of_stream_then_a_normal_close(url: str) -> None:
    client = RawClient(url)
    client.send(SETUP)
    client.send(AUDIO)
    client.send({"type": "end_of_stream"})
    messages = client.until_closed()
    assert [m["type"] for m in messages] == ["ready", "audio", "end_of_stream"]
    assert messages[0]["sample_rate"] == 48000 and messages[0]["frame_size"] == 3840
    assert len(base64.b64decode(messages[1]["audio"])) == 7680
    assert client.close is not None and client.close.code == 1000


def test_audio_before_setup_is_error_1002(url: str) -> None:
    client = RawClient(url)
    client.send(AUDIO)
    messages = client.until_closed()
    assert messages == [{"type": "error", "message": "Session not found. Send setup first.",
                         "code": 1002}]
    assert client.close is not None and client.close.code == 1002


@pytest.mark.parametrize(("change", "field"), [
    ({"input_format": "mp3"}, "input_format"),
    ({"output_format": "flac"}, "output_format"),
    ({"json_config": {"target_language": "xx"}}, "target_language"),
    ({"voice_id": None}, "voice_id"),
])
def test_bad_setup_is_error_1008(url: str, change: dict[str, Any], field: str) -> None:
    client = RawClient(url)
    setup = {k: v for k, v in {**SETUP, **change}.items() if v is not None}
    client.send(setup)
    [error] = client.until_closed()
    assert error["type"] == "error" and error["code"] == 1008 and field in error["message"]
    assert client.close is not None and client.close.code == 1008


def test_opus_is_refused_with_a_reason(url: str) -> None:
    client = RawClient(url)
    client.send({**SETUP, "input_format": "opus"})
    [error] = client.until_closed()
    assert error["code"] == 1008 and "opus" in error["message"]


def test_multiplexed_requests_and_the_closing_end_of_stream(url: str) -> None:
    client = RawClient(url)
    for rid in ("a", "b"):
        client.send({**SETUP, "close_ws_on_eos": False, "client_req_id": rid})
    client.send({**AUDIO, "client_req_id": "b"})
    client.send({**AUDIO, "client_req_id": "a"})
    client.send({**SETUP, "close_ws_on_eos": False, "client_req_id": "a"})  # still live
    messages = client.until_closed()
    assert messages[-1]["type"] == "error" and messages[-1]["code"] == 1002
    assert {m.get("client_req_id") for m in messages[:-1]} == {"a", "b"}

    client = RawClient(url)
    client.send({**SETUP, "close_ws_on_eos": False, "client_req_id": "a"})
    client.send({"type": "end_of_stream", "client_req_id": "a"})
    client.until_message("end_of_stream")
    client.send({**SETUP, "close_ws_on_eos": False})  # sequential reuse, after the end
    client.send({"type": "end_of_stream"})
    client.until_message("end_of_stream", count=2)
    client.send({"type": "end_of_stream"})  # nothing live: close the socket
    messages = client.until_closed()
    assert [m["type"] for m in messages] == ["ready", "end_of_stream", "ready", "end_of_stream"]
    assert messages[0]["client_req_id"] == "a" and "client_req_id" not in messages[2]
    assert client.close is not None and client.close.code == 1000


def test_keys_tokens_and_limits() -> None:
    with run_server(api_keys=["good"], tokens=["t1"], max_audio_s=0.2,
                    idle_timeout_s=0.5) as url:
        client = RawClient(url, key="bad")
        [error] = client.until_closed()
        assert error["code"] == 1008 and client.close is not None and client.close.code == 1008

        client = RawClient(url.replace("s2s", "s2s?token=t1"), key=None)
        client.send(SETUP)
        for _ in range(4):  # 0.32 s of audio: over the 0.2 s limit
            client.send(AUDIO)
        messages = client.until_closed()
        assert messages[-1]["code"] == 1008 and "limit" in messages[-1]["message"]

        client = RawClient(url.replace("s2s", "s2s?token=t1"), key=None)  # used up
        [error] = client.until_closed()
        assert error["code"] == 1008

        client = RawClient(url, key="good")  # sends nothing: the idle timeout closes it
        assert client.until_closed() == []
        assert client.close is not None and client.close.reason == "idle timeout"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_client_that_does_not_read_stops_the_server_reading_it(backend: str) -> None:
    """The server's output to a client that does not read is bounded: once its buffers
    are full it stops taking that client's input, so the client's sends block."""
    with run_server(backend=backend) as server_url:
        client = RawClient(server_url)
        client.send(SETUP)
        client.until_message("ready")
        frame = client.ws.send(TextMessage(data=json.dumps(AUDIO)))  # 80 ms in, 160 ms out
        client.sock.setblocking(False)
        sent = 0
        limit = 64 * 2**20  # of input: ~128 MiB of output if the server took it all
        blocked_since: float | None = None
        while sent < limit:
            try:
                sent += client.sock.send(frame)
                blocked_since = None
            except BlockingIOError:
                now = time.monotonic()
                blocked_since = blocked_since or now
                if now - blocked_since > 2.0:
                    break  # the server stopped reading us
                time.sleep(0.01)
        client.sock.close()
        assert sent < limit, "the server kept reading a client that never read its output"
