"""Issue 12 item 8: 2-D audio. The option the error names (``downmix=True``) exists on
every API that takes audio, and (channels, samples) arrays are recognised.

The rule (``s2s_core.audio.channels_last``): the channels are the dimension of at
most 8 when the other is longer; a dimension of 1 is mono either way; anything else
is refused with the shape named (and, in a stream, a chunk too short to tell takes
the layout of the chunks before it).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from harness import MODES, Harness, harness_for
from s2s_anyio import make_config, run_server
from s2s_core.audio import MAX_CHANNELS, channels_last, read_wav, resample, to_pcm16, write_wav
from s2s_core.audio_input import InputChunker, plan_chunks
from s2s_core.connection import ClientConnection
from s2s_core.errors import InvalidAudio
from s2s_core.events import Audio
from s2s_core.options import ClientOptions
from s2s_core.protocol import ClientProtocol
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

PCM = Setup(voice_id="v", input_format="pcm", output_format="pcm")
N = 4800  # 0.2 s at 24 kHz


def stereo(n: int = N) -> npt.NDArray[np.int16]:
    """(n, 2) int16: a tone on the left, its half on the right (mean: 3/4 of the tone)."""
    t = np.arange(n) / 24000
    left = np.rint(12000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return np.stack((left, left // 2), axis=1)


def mono_of(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return np.rint(frames.mean(axis=1)).astype(np.int16)


# --- the rule ---


@pytest.mark.parametrize(("shape", "last"), [
    ((4800, 2), True), ((2, 4800), False), ((9, 8), True), ((8, 9), False),
    ((4800, 1), True), ((1, 4800), False), ((5, 1), True), ((1, 5), False), ((1, 1), True),
])
def test_the_layout_is_told_by_shape(shape: tuple[int, int], last: bool) -> None:
    assert channels_last(shape) is last


@pytest.mark.parametrize("shape", [(3, 2), (2, 2), (8, 8), (2, 5)])
def test_ambiguous_shapes_are_refused_with_the_shape(shape: tuple[int, int]) -> None:
    with pytest.raises(InvalidAudio, match=re.escape(f"shape {shape} is ambiguous")):
        to_pcm16(np.zeros(shape, dtype=np.int16), downmix=True)
    assert channels_last(shape, hint=False) is False  # a stream's earlier chunks decide
    assert channels_last(shape, hint=True) is True


def test_no_channel_dimension_is_refused() -> None:
    with pytest.raises(InvalidAudio, match=re.escape("shape (16, 4800) has no channel "
                                                     "dimension")) as info:
        to_pcm16(np.zeros((16, 4800), dtype=np.int16), downmix=True)
    assert f"at most {MAX_CHANNELS} channels" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_channels_first_is_recognised_and_named() -> None:
    frames = stereo()
    with pytest.raises(InvalidAudio) as info:
        to_pcm16(frames.T)
    message = str(info.value)
    assert "(2, 4800)" in message and "2 channels" in message
    assert "(channels, samples)" in message and "downmix=True" in message
    assert "24000 channels" not in message and "4800 channels" not in message
    assert to_pcm16(frames.T, downmix=True) == to_pcm16(frames, downmix=True)
    assert to_pcm16(frames, downmix=True) == mono_of(frames).tobytes()
    with pytest.raises(InvalidAudio, match=r"\(samples, channels\).*downmix=True"):
        to_pcm16(frames)


def test_float_channels_first() -> None:
    frames = np.stack((np.full(100, 0.5), np.full(100, -0.25)))  # (2, 100) float64
    assert np.frombuffer(to_pcm16(frames, downmix=True), "<i2").tolist() == [4096] * 100


# --- every core API that takes audio ---


def test_client_protocol_send_audio() -> None:
    proto = ClientProtocol()
    proto.send_setup(PCM)
    with pytest.raises(InvalidAudio, match="downmix=True"):
        proto.send_audio(stereo().T)
    message = proto.send_audio(stereo().T, downmix=True)
    assert message == proto.send_audio(mono_of(stereo()))


def test_client_connection_send_audio() -> None:
    conn = ClientConnection("ws://h/api/speech/s2s", api_key="k")
    conn.send_setup(PCM)
    with pytest.raises(InvalidAudio, match="downmix=True"):
        conn.send_audio(stereo())
    conn.send_audio(stereo(), downmix=True)
    conn.send_audio(stereo().T, downmix=True)


def test_input_chunker_and_plan_chunks() -> None:
    frames = stereo()
    expected = mono_of(frames).tobytes()
    for array in (frames, frames.T):
        with pytest.raises(InvalidAudio, match="downmix=True"):
            plan_chunks(array, PCM)
        with pytest.raises(InvalidAudio, match="downmix=True"):
            InputChunker(PCM).check(array)
        chunks = plan_chunks(array, PCM, downmix=True)
        assert b"".join(bytes(c.data) for c in chunks) == expected
        InputChunker(PCM, downmix=True).check(array)


@pytest.mark.parametrize("first", [True, False])
def test_a_short_last_chunk_takes_the_streams_layout(first: bool) -> None:
    """512-frame blocks, then 3 frames: (3, 2) alone would be ambiguous."""
    frames = stereo(515)
    blocks = [frames[:512], frames[512:]]
    chunker = InputChunker(PCM, downmix=True)
    pieces = [b for block in blocks for b in chunker.feed(block.T if not first else block)]
    data = b"".join(bytes(c.data) for c in [*pieces, *chunker.finish()])
    assert data == mono_of(frames).tobytes()
    with pytest.raises(InvalidAudio, match=re.escape("shape (3, 2) is ambiguous")):
        list(InputChunker(PCM, downmix=True).feed(frames[512:]))


def test_downmix_then_resample() -> None:
    t = np.arange(16000) / 16000
    left = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    frames = np.stack((left, left))  # (2, 16000) float32 at 16 kHz
    chunks = plan_chunks(frames, PCM, sample_rate=16000, downmix=True)
    data = np.frombuffer(b"".join(bytes(c.data) for c in chunks), "<i2")
    assert np.array_equal(data, resample(left, 16000, 24000))


def test_write_wav_takes_both_layouts_and_downmix() -> None:
    frames = stereo()
    for array in (frames, frames.T):
        file = io.BytesIO()
        write_wav(file, array, 24000, channels=2)
        assert np.array_equal(read_wav(file.getvalue()).samples, frames)
        with pytest.raises(InvalidAudio, match="downmix=True"):
            write_wav(io.BytesIO(), array, 24000)
        file = io.BytesIO()
        write_wav(file, array, 24000, downmix=True)
        assert np.array_equal(read_wav(file.getvalue()).samples, mono_of(frames))


# --- every adapter mode: s2s, s2s_stream, sessions and requests ---


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


def expected_output() -> bytes:
    """The loopback server's answer to the downmixed input (24 kHz -> 48 kHz)."""
    return resample(mono_of(stereo()), 24000, 48000).astype("<i2").tobytes()


@pytest.mark.parametrize("layout", ["samples-first", "channels-first"])
def test_s2s_with_downmix(harness: Harness, url: str, layout: str) -> None:
    array = stereo() if layout == "samples-first" else stereo().T
    result = harness.s2s(url, PCM, array, pace=None, trailing_silence_s=0.0,
                         lead_in_silence_s=0.0, downmix=True)
    assert result.raw_data == expected_output()


def test_s2s_without_downmix_fails_before_connecting(harness: Harness) -> None:
    config = make_config()
    with run_server(config=config) as server_url:
        for array in (stereo(), stereo().T):
            with pytest.raises(InvalidAudio, match="downmix=True"):
                harness.s2s(server_url, PCM, array, pace=None)
            outcome = harness.stream(server_url, PCM, array, pace=None)
            assert isinstance(outcome.error, InvalidAudio)
            assert "downmix=True" in str(outcome.error)
    assert config.connections == 0  # refused before anything was sent


def test_s2s_stream_of_channels_first_blocks(harness: Harness, url: str) -> None:
    frames = stereo()
    blocks = [frames[i:i + 512].T for i in range(0, N, 512)]  # the last one is (2, 192)
    outcome = harness.stream(url, PCM, iter(blocks), pace=None, trailing_silence_s=0.0,
                             lead_in_silence_s=0.0, downmix=True)
    assert outcome.error is None
    assert outcome.audio == expected_output()


def test_an_iterable_without_downmix_fails_the_stream(harness: Harness, url: str) -> None:
    outcome = harness.stream(url, PCM, iter([stereo()]), pace=None,
                             options=ClientOptions(retry=None))
    assert isinstance(outcome.error, InvalidAudio)
    assert "downmix=True" in str(outcome.error)


def realtime_with_downmix(harness: Harness, url: str, arrays: list[Any]) -> bytes:
    """Send ``arrays`` with ``Session.send_audio(..., downmix=True)``, then a request's."""
    module: Any = harness.module  # type: ignore[attr-defined]
    client = module.S2SClient(api_key="k", base_url=url.replace("ws://", "http://")
                              .replace("speech/s2s", ""))
    out = bytearray()
    first, *rest = arrays
    if harness.mode == "threaded":
        with client.s2s_realtime(**PCM.to_wire_kwargs()) as session:
            with pytest.raises(InvalidAudio, match="downmix=True"):
                session.send_audio(first)
            session.send_audio(first, downmix=True)
            for array in rest:
                session.request.send_audio(array, downmix=True)
            session.send_end_of_stream()
            out += b"".join(e.audio for e in session if isinstance(e, Audio))
        return bytes(out)

    async def go() -> None:
        async with client.s2s_realtime(**PCM.to_wire_kwargs()) as session:
            with pytest.raises(InvalidAudio, match="downmix=True"):
                await session.send_audio(first)
            await session.send_audio(first, downmix=True)
            for array in rest:
                await session.request.send_audio(array, downmix=True)
            await session.send_end_of_stream()
            async for event in session:
                if isinstance(event, Audio):
                    out.extend(event.audio)

    harness.run(go)  # type: ignore[attr-defined]
    return bytes(out)


def test_realtime_send_audio_with_downmix(harness: Harness, url: str) -> None:
    frames = stereo()
    arrays = [frames[:2400].T, frames[2400:]]  # channels first, then samples first
    assert realtime_with_downmix(harness, url, arrays) == expected_output()
