"""Input chunking and pacing: any split of the input gives the same wire chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s_core.audio_input import InputChunker, Pacer, plan_chunks, silence
from s2s_core.errors import InvalidAudio
from s2s_core.formats import Direction, lookup_format
from s2s_core.setup import Setup

PCM = Setup(voice_id="v")  # pcm input: 24 kHz, 3840 bytes per 80 ms


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=0, max_size=20000).filter(lambda b: len(b) % 2 == 0),
       st.lists(st.integers(0, 20000), max_size=10))
def test_any_split_gives_the_same_chunks(data: bytes, cuts: list[int]) -> None:
    whole = [c.data for c in plan_chunks(data, PCM)]
    chunker = InputChunker(PCM)
    pieces, start = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        pieces.append(data[start:cut] if cut >= start else b"")
        start = max(start, cut)
    pieces.append(data[start:])
    split = [c.data for p in pieces for c in chunker.feed(p)]
    split += [c.data for c in chunker.finish()]
    assert split == whole
    assert b"".join(whole) == data
    assert all(len(c) == 3840 for c in whole[:-1])


def test_int16_array_is_sent_without_conversion_and_durations_add_up() -> None:
    samples = np.arange(24000, dtype=np.int16)
    chunks = plan_chunks(samples, PCM, trailing_silence_s=0.5)
    assert b"".join(c.data for c in chunks) == samples.tobytes() + bytes(24000)
    assert sum(c.seconds for c in chunks) == pytest.approx(1.5)


def test_float_input_is_clipped_and_other_rates_resampled() -> None:
    chunks = plan_chunks(np.full(1920, 2.0, dtype=np.float32), PCM)
    assert set(np.frombuffer(chunks[0].data, dtype="<i2").tolist()) == {32767}
    resampled = plan_chunks(np.zeros(16000, dtype=np.int16), PCM, sample_rate=16000)
    assert sum(len(c.data) for c in resampled) == 48000


def test_silence_is_the_codec_silence() -> None:
    assert silence(lookup_format("ulaw_8000", Direction.INPUT), 0.001) == b"\xff" * 8
    assert silence(lookup_format("alaw_8000", Direction.INPUT), 0.001) == b"\xd5" * 8
    assert silence(lookup_format("wav", Direction.INPUT), 1.0) == b""


def test_bad_input_is_named() -> None:
    chunker = InputChunker(PCM)
    assert list(chunker.feed(b"\x00\x00\x00")) == []
    with pytest.raises(InvalidAudio, match="partial sample"):
        list(chunker.finish())
    with pytest.raises(InvalidAudio, match="str"):
        list(InputChunker(PCM).feed("text"))  # type: ignore[arg-type]
    with pytest.raises(InvalidAudio, match="pcm input_format"):
        list(InputChunker(Setup(voice_id="v", input_format="opus")).feed(np.zeros(4)))


def test_pacer() -> None:
    pacer = Pacer(2.0, start=10.0)
    assert pacer.due() == 10.0
    pacer.sent(plan_chunks(bytes(3840), PCM)[0])
    assert pacer.due() == pytest.approx(10.04)
    assert Pacer(None, start=0.0).due() is None
    with pytest.raises(ValueError):
        Pacer(0, start=0.0)
