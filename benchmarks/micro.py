"""Micro benchmarks: one server audio message decoded, one input chunk encoded.

Both ways start and end at the same bytes:

* decode: the bytes of one WebSocket frame holding a 10 KB ``audio`` message
  (80 ms of 48 kHz pcm output) -> the decoded audio. Ours is
  ``ClientConnection.receive_data(frame)`` + ``events_received()`` on an open
  connection with a live request; the SDK's is aiohttp's own WebSocket reader
  fed the same bytes, then ``json.loads`` and ``base64.b64decode`` as in
  gradium's ``client.receive`` and ``S2SStream.iter_audio``.
* encode: 80 ms of input samples (1920, numpy) -> masked frame bytes. Ours is
  ``ClientConnection.send_audio(array)`` + ``data_to_send()``; the SDK's is its
  ``_encode_audio_chunk`` + ``json.dumps`` + aiohttp's ``WebSocketWriter``
  (``send_str``'s path: ``send_frame``, masking on) over a transport that
  only keeps the bytes. Our float32 path clips (the SDK's does not: +1.0
  wraps to -32768), so it does more work for a correct result.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import numpy as np
import numpy.typing as npt

from s2s_core import _frames as frames
from s2s_core._frames import FrameReader, FrameWriter, Opcode
from s2s_core.connection import ClientConnection, ServerConnection, UpgradeRequest
from s2s_core.events import Audio, Ready
from s2s_core.setup import Setup

from ._common import CHUNK_SAMPLES, CHUNK_SECONDS, compare_interleaved, speech_like
from ._results import Section, Target

__all__ = ["open_client", "server_audio_frame", "SdkDecoder", "SdkEncoder", "run_decode",
           "run_encode"]

OUTPUT_RATE = 48000
_URL = "ws://127.0.0.1:9/api/speech/s2s"


def open_client() -> ClientConnection:
    """A client connection, upgraded in memory, with a pcm request past ``ready``."""
    client = ClientConnection(_URL, api_key="bench", ping_interval=None, ready_timeout=None,
                              close_timeout=None)
    server = ServerConnection()
    client.send_setup(Setup(model_name="s2s-translate", input_format="pcm",
                            output_format="pcm", voice_id="bench-voice"))
    for _ in range(10):
        data = client.data_to_send()
        if data:
            server.receive_data(data)
        for event in server.events_received():
            if isinstance(event, UpgradeRequest):
                server.accept()
        data = server.data_to_send()
        if data:
            client.receive_data(data)
        client.events_received()
    server.send_message(server.protocol.send_ready("bench-request", OUTPUT_RATE,
                                                   frame_size=3840))
    client.receive_data(server.data_to_send())
    events = client.events_received()
    if not (len(events) == 1 and isinstance(events[0], Ready)):
        raise RuntimeError(f"could not open the in-memory connection: {events}")
    return client


def server_audio_frame(pcm: bytes) -> bytes:
    """One unmasked text frame holding the local server's ``audio`` message for ``pcm``."""
    from s2s_core._wire import encode_server_audio

    message = encode_server_audio(pcm, 1.04, 1.12, stream_id=0)
    return FrameWriter(mask=False).frame(Opcode.TEXT, message)


class _Protocol:
    """The bits of aiohttp's protocol that its reader and writer look at."""

    _reading_paused = False
    _paused = False

    def pause_reading(self) -> None:  # pragma: no cover - the queue never fills
        self._reading_paused = True

    def resume_reading(self) -> None:  # pragma: no cover
        self._reading_paused = False


class _Transport:
    """Keeps what aiohttp's writer writes; the benchmark drops it after each call."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def _run_ready(coro: Any) -> Any:
    """Run a coroutine that completes without suspending (no event loop needed)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


class SdkDecoder:
    """The official SDK's receive path: aiohttp's reader, ``json.loads``, ``b64decode``."""

    def __init__(self) -> None:
        from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

        self._loop = asyncio.new_event_loop()
        self.queue = WebSocketDataQueue(_Protocol(), 2**16, loop=self._loop)  # type: ignore[arg-type]
        # What ClientSession.ws_connect builds: max_msg_size 4 MiB, text decoded to str.
        self.reader = WebSocketReader(self.queue, 4 * 2**20, compress=False, decode_text=True)
        self.compiled = type(self.reader).__module__.endswith("reader_c")

    def decode(self, frame: bytes) -> bytes:
        self.reader.feed_data(frame)
        msg = _run_ready(self.queue.read())
        # gradium.client.receive
        chunk = json.loads(msg.data)
        if chunk.get("type") == "error":  # pragma: no cover - never an error here
            raise RuntimeError(chunk)
        # gradium.speech.S2SStream.iter_audio
        if chunk.get("type") == "audio":
            audio: bytes = base64.b64decode(chunk["audio"])
            return audio
        raise RuntimeError(f"unexpected message {chunk.get('type')!r}")  # pragma: no cover

    def close(self) -> None:
        self._loop.close()


class SdkEncoder:
    """The official SDK's send path: ``_encode_audio_chunk``, ``json.dumps``, aiohttp's writer."""

    def __init__(self) -> None:
        from aiohttp import WSMsgType
        from aiohttp._websocket.writer import WebSocketWriter
        from gradium.speech import _encode_audio_chunk

        self._encode_chunk = _encode_audio_chunk
        self._text = WSMsgType.TEXT
        self.transport = _Transport()
        self.writer = WebSocketWriter(_Protocol(), self.transport,  # type: ignore[arg-type]
                                      use_mask=True)

    def encode(self, chunk: npt.NDArray[Any]) -> bytes:
        message = self._encode_chunk(chunk)  # gradium.client.send -> send_one
        text = json.dumps(message)
        # ClientWebSocketResponse.send_str -> WebSocketWriter.send_frame
        _run_ready(self.writer.send_frame(text.encode("utf-8"), self._text))
        return self.transport.take()


def _unmask_text(frame: bytes) -> bytes:
    ((opcode, payload),) = FrameReader(expect_masked=True).feed(frame)
    assert opcode is Opcode.TEXT
    return payload


def run_decode(*, number: int, rounds: int) -> Section:
    """Decode target: >= 6x the SDK, and >= 10,000x real time per core."""
    section = Section("decode")
    pcm = speech_like(0.08, OUTPUT_RATE).tobytes()
    frame = server_audio_frame(pcm)
    client = open_client()
    sdk = SdkDecoder()

    client.receive_data(frame)
    (event,) = client.events_received()
    if not (isinstance(event, Audio) and event.audio == pcm and sdk.decode(frame) == pcm):
        raise RuntimeError("the two decoders disagree")

    def ours() -> object:
        client.receive_data(frame)
        return client.events_received()

    paired = compare_interleaved(ours, lambda: sdk.decode(frame), number=number, rounds=rounds)
    sdk.close()
    ratio = paired.ratio
    realtime = CHUNK_SECONDS / paired.ours_median
    section.targets.append(Target(
        key="decode", title="Decode: frame bytes -> Audio (10 KB message, 80 ms @ 48 kHz)",
        unit="us/message", ours=paired.ours_median * 1e6, sdk=paired.sdk_median * 1e6,
        ratio=ratio, goal=">= 6x", goal_ratio=6.0, met=ratio >= 6.0,
        note=f"aiohttp reader {'compiled' if sdk.compiled else 'pure Python'}"))
    section.targets.append(Target(
        key="decode/realtime", title="Decode speed: real time per core (48 kHz pcm output)",
        unit="x real time", ours=realtime, sdk=CHUNK_SECONDS / paired.sdk_median,
        ratio=None, goal=">= 10,000x", met=realtime >= 10_000))
    section.details = {"frame_bytes": len(frame), "pcm_bytes": len(pcm),
                       "ours_us": [t * 1e6 for t in paired.ours],
                       "sdk_us": [t * 1e6 for t in paired.sdk], "number": number}
    return section


def run_encode(*, number: int, rounds: int) -> Section:
    """Encode targets: int16 >= 8x, float32 (clipped) >= 2.5x the SDK's unclipped path."""
    section = Section("encode")
    samples = speech_like(CHUNK_SECONDS)
    assert samples.size == CHUNK_SAMPLES
    floats = (samples / 32768.0).astype(np.float32)
    client = open_client()
    sdk = SdkEncoder()
    details: dict[str, Any] = {"number": number}

    cases: list[tuple[str, str, npt.NDArray[Any], float]] = [
        ("encode/int16", "Encode: int16 80 ms (1920 samples) -> masked frame", samples, 8.0),
        ("encode/float32", "Encode: float32 80 ms -> masked frame (ours clips, SDK wraps)",
         floats, 2.5),
    ]
    for key, title, chunk, goal in cases:
        client.send_audio(chunk)
        mine = json.loads(_unmask_text(client.data_to_send()))
        theirs = json.loads(_unmask_text(sdk.encode(chunk)))
        if base64.b64decode(mine["audio"]) != samples.tobytes():
            raise RuntimeError(f"{key}: our encoder changed the samples")
        if mine != theirs:  # the test chunk holds exact int16 values: no rounding differences
            raise RuntimeError(f"{key}: the two encoders disagree")

        def ours(chunk: npt.NDArray[Any] = chunk) -> object:
            client.send_audio(chunk)
            return client.data_to_send()

        def sdk_way(chunk: npt.NDArray[Any] = chunk) -> object:
            return sdk.encode(chunk)

        paired = compare_interleaved(ours, sdk_way, number=number, rounds=rounds)
        ratio = paired.ratio
        section.targets.append(Target(
            key=key, title=title, unit="us/chunk", ours=paired.ours_median * 1e6,
            sdk=paired.sdk_median * 1e6, ratio=ratio, goal=f">= {goal:g}x", goal_ratio=goal,
            met=ratio >= goal))
        details[key] = {"ours_us": [t * 1e6 for t in paired.ours],
                        "sdk_us": [t * 1e6 for t in paired.sdk]}
    if frames.MASK_ACCELERATED:
        # The same int16 case with numpy masking: what users without websockets get.
        saved = frames._mask_whole
        frames._mask_whole = frames._mask_whole_python
        try:
            def ours_numpy() -> object:
                client.send_audio(samples)
                return client.data_to_send()

            paired = compare_interleaved(ours_numpy, lambda: sdk.encode(samples),
                                         number=number, rounds=rounds)
        finally:
            frames._mask_whole = saved
        section.targets.append(Target(
            key="encode/int16-numpy-mask",
            title="Encode: int16 80 ms, without the optional C masker (numpy masking)",
            unit="us/chunk", ours=paired.ours_median * 1e6, sdk=paired.sdk_median * 1e6,
            ratio=paired.ratio, goal="info", met=None,
            note="pip install websockets enables the C masker"))
    section.details = details
    return section
