"""The server feeds its engine blocks of input: ``ServerConfig.input_block_s``,
and the audio messages one read brings (joined up to a bound).

Held input changes when output goes out, never what goes out: the same
audio messages and the same texts (timing fields included) as a server that
feeds every message; only a text may come after audio it used to precede.
Held input is fed when a block is full, when its time is up (a deadline the
adapter's timer runs), and before the request ends; an engine error in it
fails the request as it would have.
"""

from __future__ import annotations

import base64
import json
from typing import Any, ClassVar

import numpy as np
import pytest
from test_server import RawClient

from s2s_anyio import run_server
from s2s_core._frames import FrameWriter, Opcode
from s2s_core._wire import decode_server_message, encode_audio, encode_end_of_stream, encode_setup
from s2s_core.connection import ServerConnection
from s2s_core.events import Audio, EndOfStream, ErrorMessage, Text
from s2s_core.loopback import AudioOut, ServerConfig, ServerSession, TextOut, loopback_engine
from s2s_core.loopback._session import _COALESCE_BYTES
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

UPGRADE = (b"GET /api/speech/s2s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


class Server:
    """A ServerSession driven by hand: bytes in, decoded server messages out."""

    def __init__(self, **config: Any) -> None:
        self.conn = ServerConnection(now=0.0)
        self.session = ServerSession(self.conn, ServerConfig(**config), 0.0)
        self.writer = FrameWriter(mask=True)
        self.received = bytearray()
        self.feed(UPGRADE, 0.0, frame=False)
        self.received.clear()  # the 101 response

    def feed(self, data: bytes, now: float, *, frame: bool = True) -> list[Any]:
        if frame:
            data = self.writer.frame(Opcode.TEXT, data)
        self.conn.receive_data(data, now=now)
        self.session.handle_events(self.conn.events_received(), now)
        return self.take()

    def tick(self, now: float) -> list[Any]:
        self.session.handle_timer(now)
        return self.take()

    def take(self) -> list[Any]:
        self.received += self.conn.data_to_send()
        messages = []
        while len(self.received) >= 2:
            n = self.received[1] & 0x7F
            start = 2 if n < 126 else 4
            if n == 126:
                n = int.from_bytes(self.received[2:4], "big")
            if len(self.received) < start + n:
                break
            if self.received[0] == 0x81:
                messages.append(decode_server_message(bytes(self.received[start:start + n])))
            del self.received[:start + n]
        return messages


def setup_message(input_format: str = "pcm", **fields: Any) -> bytes:
    return encode_setup(Setup(model_name="m", voice_id="v", input_format=input_format,
                              output_format="pcm", **fields))


def speech(seconds: float, rate: int = 24000) -> bytes:
    t = np.arange(round(seconds * rate)) / rate
    loud = (t % 1.0) < 0.5
    samples = np.where(loud, 8000 * np.sin(2 * np.pi * 300 * t), 0.0)
    return np.rint(samples).astype("<i2").tobytes()


def paced_run(server: Server, chunks: list[bytes]) -> list[list[Any]]:
    """What the server sends after each input (and after the timers due by then)."""
    steps = [server.feed(setup_message(), 0.0)]
    for k, chunk in enumerate(chunks):
        now = 0.08 * (k + 1)
        steps.append(server.feed(encode_audio(chunk), now) + server.tick(now))
    steps.append(server.feed(encode_end_of_stream(), 0.08 * (len(chunks) + 1)))
    return steps


def flat(steps: list[list[Any]]) -> list[Any]:
    return [m for step in steps for m in step]


@pytest.mark.parametrize("block_s", [0.16, 0.3, 1.0])
def test_held_input_gives_the_same_messages_later(block_s: float) -> None:
    pcm = speech(3.0)
    chunks = [pcm[i:i + 3840] for i in range(0, len(pcm), 3840)]
    every = paced_run(Server(), chunks)
    held = paced_run(Server(input_block_s=block_s), chunks)
    # The same audio messages, and the same texts; a text may now come after
    # audio that went out before it (both streams carry their own times).
    for kind in (Audio, Text, EndOfStream):
        assert [m for m in flat(held) if isinstance(m, kind)] == [
            m for m in flat(every) if isinstance(m, kind)]
    assert sum(isinstance(m, Text) for m in flat(every)) == 3
    assert isinstance(flat(held)[-1], EndOfStream)
    # Audio goes out in fewer, larger steps, never sooner.
    audio_steps = [k for k, step in enumerate(held) if any(isinstance(m, Audio) for m in step)]
    assert len(audio_steps) < sum(any(isinstance(m, Audio) for m in s) for s in every)
    sent_every = np.cumsum([sum(isinstance(m, Audio) for m in step) for step in every])
    sent_held = np.cumsum([sum(isinstance(m, Audio) for m in step) for step in held])
    assert all(sent_held <= sent_every)


def test_a_block_is_fed_when_full() -> None:
    server = Server(input_block_s=0.16)
    server.feed(setup_message(), 0.0)
    chunk = speech(0.08)
    assert server.feed(encode_audio(chunk), 0.1) == []  # held: half a block
    assert server.session.next_deadline() == pytest.approx(0.26)
    out = server.feed(encode_audio(chunk), 0.12)  # full: fed, 3840 samples came out
    assert out and [type(m) for m in out] == [Audio] * len(out)
    assert server.session.next_deadline() == pytest.approx(0.12 + 300.0)  # idle only


def test_held_input_is_fed_when_its_time_is_up() -> None:
    server = Server(input_block_s=0.5)
    server.feed(setup_message(), 0.0)
    assert server.feed(encode_audio(speech(0.3)), 1.0) == []
    assert server.session.next_deadline() == pytest.approx(1.5)
    assert server.tick(1.49) == []
    out = server.tick(1.5)
    assert out and all(isinstance(m, Audio) for m in out)


def test_wav_input_is_never_held() -> None:
    server = Server(input_block_s=1.0)
    server.feed(setup_message("wav"), 0.0)
    header = (b"RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
              + (24000).to_bytes(4, "little") + (48000).to_bytes(4, "little")
              + b"\x02\x00\x10\x00data\xff\xff\xff\xff")
    out = server.feed(encode_audio(header + speech(0.5)), 0.1)
    assert any(isinstance(m, Audio) for m in out)


def test_an_engine_error_in_held_input_fails_the_request() -> None:
    server = Server(input_block_s=0.5, max_audio_s=0.2)
    server.feed(setup_message(), 0.0)
    assert server.feed(encode_audio(speech(0.3)), 0.1) == []  # over the limit, but held
    out = server.tick(0.6)
    assert isinstance(out[-1], ErrorMessage) and out[-1].code == 1008
    assert "limit" in out[-1].message


def test_the_end_of_the_request_feeds_held_input_first() -> None:
    server = Server(input_block_s=10.0)
    server.feed(setup_message(), 0.0)
    assert server.feed(encode_audio(speech(0.25)), 0.1) == []
    out = server.feed(encode_end_of_stream(), 0.2)
    audio = b"".join(m.audio for m in out if isinstance(m, Audio))
    assert len(audio) == 2 * 2 * 6000  # 0.25 s at 48 kHz, the short last frame included
    assert isinstance(out[-1], EndOfStream)


def test_multiplexed_requests_hold_their_own_input() -> None:
    server = Server(input_block_s=0.16)
    server.feed(setup_message(client_req_id="a", close_ws_on_eos=False), 0.0)
    server.feed(setup_message(client_req_id="b", close_ws_on_eos=False), 0.0)
    chunk = speech(0.08)
    assert server.feed(encode_audio(chunk, "a"), 0.1) == []
    assert server.feed(encode_audio(speech(0.12), "b"), 0.15) == []  # under a block
    out = server.feed(encode_audio(chunk, "a"), 0.18)
    assert {m.client_req_id for m in out} == {"a"}
    out = server.tick(0.31)  # b's first chunk waited its 0.16 s
    assert out and {m.client_req_id for m in out} == {"b"}


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_local_server_holds_input_and_still_answers_everything(backend: str) -> None:
    audio = {"type": "audio", "audio": base64.b64encode(speech(0.2)).decode()}
    setup = json.loads(setup_message())
    with run_server(backend=backend, input_block_s=0.3) as url:
        client = RawClient(url)
        client.send(setup)
        client.send(audio)
        client.until_message("audio")  # the timer fed the held chunk
        client.send(audio)
        client.send({"type": "end_of_stream"})
        messages = client.until_closed()
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "ready" and kinds[-1] == "end_of_stream"
    audio_bytes = sum(len(base64.b64decode(m["audio"])) for m in messages
                      if m["type"] == "audio")
    assert audio_bytes == 2 * 48000 * 0.4


class CountingEngine:
    """The loopback engine, counting its ``feed`` calls."""

    calls: ClassVar[list[int]] = []

    def __init__(self, setup: Setup, max_audio_s: float) -> None:
        self.engine = loopback_engine(setup, max_audio_s)
        self.output_sample_rate = self.engine.output_sample_rate
        self.frame_size = self.engine.frame_size

    def feed(self, data: bytes) -> list[AudioOut | TextOut]:
        CountingEngine.calls.append(len(data))
        return self.engine.feed(data)

    def finish(self) -> list[AudioOut | TextOut]:
        return self.engine.finish()


def test_messages_read_together_are_fed_together_up_to_a_bound() -> None:
    pcm = speech(2.0)
    chunks = [pcm[i:i + 3840] for i in range(0, len(pcm), 3840)]
    one_by_one = Server()
    one_by_one.feed(setup_message(), 0.0)
    alone = [m for chunk in chunks for m in one_by_one.feed(encode_audio(chunk), 0.1)]
    CountingEngine.calls = []
    together = Server(engine_factory=CountingEngine)
    together.feed(setup_message(), 0.0)
    burst = b"".join(together.writer.frame(Opcode.TEXT, encode_audio(chunk)) for chunk in chunks)
    joined = together.feed(burst, 0.1, frame=False)  # 25 messages in one read
    for kind in (Audio, Text):
        assert [m for m in joined if isinstance(m, kind)] == [
            m for m in alone if isinstance(m, kind)]
    assert len(CountingEngine.calls) == 13  # two 3840-byte messages a call, then the last
    assert max(CountingEngine.calls) == 2 * 3840 <= _COALESCE_BYTES


def test_messages_of_other_requests_are_not_joined() -> None:
    CountingEngine.calls = []
    server = Server(engine_factory=CountingEngine)
    server.feed(setup_message(client_req_id="a", close_ws_on_eos=False), 0.0)
    server.feed(setup_message(client_req_id="b", close_ws_on_eos=False), 0.0)
    chunk = speech(0.08)
    burst = b"".join(server.writer.frame(Opcode.TEXT, encode_audio(chunk, rid))
                     for rid in ("a", "b", "a", "a"))
    server.feed(burst, 0.1, frame=False)
    assert CountingEngine.calls == [3840, 3840, 7680]
