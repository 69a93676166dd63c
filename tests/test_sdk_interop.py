"""The official SDK (gradium 0.6.4) as a second client of the local server.

If the vendor's own client gets the same audio bytes and text from our server
as the engine computes, and as our client gets, the server speaks the
protocol the way that client expects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

gradium = pytest.importorskip("gradium")  # a test dependency: installed by the dev extra

import s2s_anyio  # noqa: E402
from harness import base_url_of, tone_burst  # noqa: E402
from s2s_core.audio import to_pcm16  # noqa: E402
from s2s_core.loopback import AudioOut, LoopbackEngine, TextOut  # noqa: E402

pytestmark = pytest.mark.timeout(60)

SETUP = {
    "model_name": "s2s-translate",
    "input_format": "pcm",
    "output_format": "pcm",
    "voice_id": "YTpq7expH9539ERJ",
    "json_config": {"target_language": "en"},
}
PCM = to_pcm16(tone_burst())


def engine_output(pcm: bytes) -> tuple[bytes, list[str]]:
    """What the loopback engine makes of ``pcm`` (it is deterministic)."""
    engine = LoopbackEngine("pcm", "pcm", "en")
    outputs = engine.feed(pcm) + engine.finish()
    audio = b"".join(o.data for o in outputs if isinstance(o, AudioOut))
    texts = [o.text for o in outputs if isinstance(o, TextOut)]
    return audio, texts


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with s2s_anyio.run_server() as server_url:
        yield server_url


def sdk_client(url: str) -> object:
    return gradium.client.GradiumClient(base_url=base_url_of(url), api_key="test-key")


def test_sdk_realtime(url: str) -> None:
    expected_audio, expected_texts = engine_output(PCM)

    async def go() -> tuple[bytes, list[str], dict[str, object]]:
        client = sdk_client(url)
        audio, texts = b"", []
        async with client.s2s_realtime(**SETUP) as s2s:
            samples = np.frombuffer(PCM, dtype=np.int16)
            for i in range(0, len(samples), 1920):
                await s2s.send_audio(samples[i:i + 1920])
            await s2s.send_eos()
            # The SDK's iterator spins forever on a closed socket (its bug: it
            # skips CLOSED messages in a loop); stop at end_of_stream instead.
            async for msg in s2s:
                if msg["type"] == "audio":
                    audio += msg["audio"]
                elif msg["type"] == "text":
                    texts.append(msg["text"])
                elif msg["type"] == "end_of_stream":
                    break
            return audio, texts, s2s.ready

    audio, texts, ready = asyncio.run(asyncio.wait_for(go(), 20))
    assert ready["type"] == "ready" and ready["sample_rate"] == 48000
    assert ready["frame_size"] == 3840 and ready["request_id"]
    assert audio == expected_audio
    assert texts == expected_texts and len(texts) == 1


def test_sdk_stream_and_buffered_match_ours(url: str) -> None:
    expected_audio, expected_texts = engine_output(PCM)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(PCM), 3840):
            yield PCM[i:i + 3840]

    async def go() -> tuple[bytes, list[str], object]:
        client = sdk_client(url)
        stream = await client.s2s_stream(dict(SETUP), chunks())
        audio = b"".join([chunk async for chunk in stream.iter_audio()])
        texts = [t.text for t in stream._text_with_timestamps]
        samples = np.frombuffer(PCM, dtype=np.int16)
        buffered = await client.s2s(dict(SETUP), samples, sample_rate=24000)
        return audio, texts, buffered

    audio, texts, buffered = asyncio.run(asyncio.wait_for(go(), 20))
    assert audio == expected_audio and texts == expected_texts
    assert buffered.raw_data == expected_audio
    assert buffered.sample_rate == 48000 and buffered.request_id
    assert buffered.text == " ".join(expected_texts)

    ours = s2s_anyio.S2SClient("test-key", base_url=base_url_of(url))
    result = asyncio.run(ours.s2s(dict(SETUP), PCM, pace=None, trailing_silence_s=0.0))
    assert result.raw_data == expected_audio
    assert [t.text for t in result.text_with_timestamps] == expected_texts


def test_sdk_sees_a_bad_key(url: str) -> None:
    with s2s_anyio.run_server(api_keys=["right"]) as keyed:
        client = gradium.client.GradiumClient(base_url=base_url_of(keyed), api_key="wrong")

        async def go() -> None:
            async def chunks() -> AsyncIterator[bytes]:
                yield PCM[:3840]

            stream = await client.s2s_stream(dict(SETUP), chunks())
            async for _ in stream.iter_audio():
                pass

        with pytest.raises(Exception, match="1008"):
            asyncio.run(asyncio.wait_for(go(), 20))
