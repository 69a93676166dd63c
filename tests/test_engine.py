"""Tests of the deterministic loopback engine (s2s_core.loopback)."""

from __future__ import annotations

import io
import itertools

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s_core.audio import (
    alaw_encode,
    pcm16_view,
    read_wav,
    resample,
    to_pcm16,
    ulaw_decode,
    ulaw_encode,
    wav_header,
    write_wav,
)
from s2s_core.loopback import AudioOut, EngineError, LoopbackEngine, TextOut

Output = AudioOut | TextOut


def tone(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 10000) -> (
    npt.NDArray[np.int16]
):
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def silence(rate: int, seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(round(rate * seconds), dtype=np.int16)


def burst(rate: int) -> npt.NDArray[np.int16]:
    """0.5 s silence, 0.6 s tone, 0.7 s silence."""
    return np.concatenate((silence(rate, 0.5), tone(rate, 0.6), silence(rate, 0.7)))


def run(engine: LoopbackEngine, pieces: list[bytes]) -> list[Output]:
    outputs: list[Output] = []
    for piece in pieces:
        outputs += engine.feed(piece)
    return outputs + engine.finish()


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def audio_of(outputs: list[Output]) -> bytes:
    return b"".join(o.data for o in outputs if isinstance(o, AudioOut))


def texts_of(outputs: list[Output]) -> list[TextOut]:
    return [o for o in outputs if isinstance(o, TextOut)]


def test_silence_gives_no_text_and_timed_frames() -> None:
    engine = LoopbackEngine("pcm", "pcm")
    assert (engine.output_sample_rate, engine.frame_size) == (48000, 3840)
    outputs = run(engine, [to_pcm16(silence(24000, 1.0))])
    assert texts_of(outputs) == []
    frames = [o for o in outputs if isinstance(o, AudioOut)]
    assert [len(f.data) for f in frames] == [7680] * 12 + [96000 - 12 * 7680]
    assert frames[0].start_s == 0.0
    for before, after in itertools.pairwise(frames):
        assert before.stop_s == after.start_s
    assert frames[-1].stop_s == pytest.approx(1.0)
    assert engine.input_seconds == pytest.approx(1.0)


def test_tone_burst_gives_one_text_before_finish() -> None:
    engine = LoopbackEngine("pcm", "pcm", "fr")
    pcm = to_pcm16(burst(24000))
    outputs: list[Output] = []
    for piece in split(pcm, list(range(0, len(pcm), 3840))):
        outputs += engine.feed(piece)
    texts = texts_of(outputs)  # the hangover closes the segment before finish()
    assert len(texts) == 1
    assert texts[0].start_s == pytest.approx(0.5, abs=0.025)
    assert texts[0].stop_s == pytest.approx(1.1, abs=0.025)
    assert texts[0].text == "[fr] segment 1 (0.60 s)"
    assert texts_of(engine.finish()) == []


def test_text_still_open_at_finish_and_default_language() -> None:
    engine = LoopbackEngine("pcm_16000", "pcm_16000")
    outputs = run(engine, [to_pcm16(np.concatenate((silence(16000, 0.2), tone(16000, 0.3))))])
    texts = texts_of(outputs)
    assert len(texts) == 1
    assert texts[0].text.startswith("[same] segment 1 ")
    assert texts[0].stop_s == pytest.approx(0.5)


def test_short_click_and_two_segments() -> None:
    rate = 16000
    signal = np.concatenate((
        silence(rate, 0.5), tone(rate, 0.04), silence(rate, 0.6),  # click: too short
        tone(rate, 0.3), silence(rate, 0.5), tone(rate, 0.3), silence(rate, 0.5),
    ))
    texts = texts_of(run(LoopbackEngine("pcm_16000", "pcm"), [to_pcm16(signal)]))
    assert [t.text for t in texts] == ["[same] segment 1 (0.30 s)", "[same] segment 2 (0.30 s)"]
    assert texts[0].start_s == pytest.approx(1.14, abs=0.021)
    assert texts[1].start_s == pytest.approx(1.94, abs=0.021)


def test_pcm24k_to_pcm48k_doubles_samples() -> None:
    pcm = tone(24000, 0.5, 1000)
    out = pcm16_view(audio_of(run(LoopbackEngine("pcm", "pcm"), [to_pcm16(pcm)])))
    assert len(out) == 2 * len(pcm)
    assert np.array_equal(out, resample(pcm, 24000, 48000))


def test_ulaw_in_pcm16000_out() -> None:
    pcm = tone(8000, 0.5, 1000)
    engine = LoopbackEngine("mulaw_8000", "pcm_16000")
    assert (engine.output_sample_rate, engine.frame_size) == (16000, 1280)
    out = pcm16_view(audio_of(run(engine, [ulaw_encode(pcm)])))
    assert len(out) == 2 * len(pcm)
    assert np.array_equal(out, resample(ulaw_decode(ulaw_encode(pcm)), 8000, 16000))


def test_alaw_and_ulaw_output() -> None:
    pcm = tone(8000, 0.2)
    outputs = run(LoopbackEngine("pcm_8000", "alaw_8000"), [to_pcm16(pcm)])
    assert audio_of(outputs) == alaw_encode(pcm)
    frames = [o for o in outputs if isinstance(o, AudioOut)]
    assert [len(f.data) for f in frames] == [640, 640, 320]
    assert audio_of(run(LoopbackEngine("pcm_8000", "ulaw_8000"), [to_pcm16(pcm)])) == (
        ulaw_encode(pcm)
    )


def wav_file(pcm: npt.NDArray[np.int16], rate: int) -> bytes:
    file = io.BytesIO()
    write_wav(file, pcm, rate, channels=1 if pcm.ndim == 1 else pcm.shape[1])
    return file.getvalue()


def test_wav_in_with_header_split_across_feeds() -> None:
    pcm = burst(44100)
    data = wav_file(pcm, 44100)
    engine = LoopbackEngine("wav", "pcm", "en")
    assert engine.input_seconds == 0.0
    outputs: list[Output] = []
    for i in range(30):  # the header one byte at a time
        outputs += engine.feed(data[i : i + 1])
    assert outputs == []
    outputs += run(engine, split(data[30:], [5000, 5001, 70000]))
    out = pcm16_view(audio_of(outputs))
    assert np.array_equal(out, resample(pcm, 44100, 48000))
    assert engine.input_seconds == pytest.approx(len(pcm) / 44100)
    assert [t.text for t in texts_of(outputs)] == ["[en] segment 1 (0.60 s)"]


def test_stereo_wav_in_is_downmixed() -> None:
    left = tone(16000, 0.2)
    stereo = np.stack((left, np.zeros_like(left)), axis=1)
    out = pcm16_view(audio_of(run(LoopbackEngine("wav", "pcm_16000"), [wav_file(stereo, 16000)])))
    expected = np.rint(left / 2).astype(np.int16)
    assert np.array_equal(out, expected)


def test_wav_out_starts_with_streaming_header() -> None:
    pcm = tone(24000, 0.3)
    outputs = run(LoopbackEngine("pcm", "wav"), [to_pcm16(pcm)])
    first = outputs[0]
    assert isinstance(first, AudioOut)
    assert first.data.startswith(wav_header(48000))
    assert len(first.data) == 44 + 7680
    wav = read_wav(audio_of(outputs))
    assert wav.sample_rate == 48000
    assert np.array_equal(wav.samples, resample(pcm, 24000, 48000))


def test_wav_out_without_input_is_a_valid_empty_file() -> None:
    outputs = LoopbackEngine("pcm", "wav").finish()
    assert outputs == [AudioOut(wav_header(48000), 0.0, 0.0)]
    assert read_wav(audio_of(outputs)).samples.size == 0


def test_odd_pcm_bytes_are_carried() -> None:
    pcm = to_pcm16(tone(24000, 0.1))
    whole = audio_of(run(LoopbackEngine("pcm", "pcm"), [pcm]))
    odd = audio_of(run(LoopbackEngine("pcm", "pcm"), [pcm[:1], pcm[1:2001], pcm[2001:]]))
    assert whole == odd


@pytest.mark.parametrize(("in_fmt", "out_fmt"), [("opus", "pcm"), ("pcm", "opus")])
def test_opus_is_refused(in_fmt: str, out_fmt: str) -> None:
    with pytest.raises(EngineError, match="does not decode opus") as info:
        LoopbackEngine(in_fmt, out_fmt)
    assert info.value.code == 1008


def test_unknown_format_is_refused() -> None:
    with pytest.raises(EngineError, match="pcm_12345") as info:
        LoopbackEngine("pcm_12345", "pcm")
    assert info.value.code == 1008
    with pytest.raises(EngineError) as info:
        LoopbackEngine("pcm", "mp3")
    assert info.value.code == 1008


def test_session_audio_limit() -> None:
    engine = LoopbackEngine("pcm_8000", "pcm_8000", max_audio_s=1.0)
    engine.feed(to_pcm16(silence(8000, 1.0)))  # exactly at the limit is fine
    with pytest.raises(EngineError, match="limit of 1 s exceeded") as info:
        engine.feed(b"\x00\x00")
    assert info.value.code == 1008
    with pytest.raises(EngineError, match="limit"):
        engine.finish()


def test_default_limit_names_300_s() -> None:
    engine = LoopbackEngine("pcm_8000", "pcm_8000")
    with pytest.raises(EngineError, match="session audio limit of 300 s exceeded"):
        engine.feed(bytes(2 * 8000 * 301))


def test_errors_for_bad_input_and_misuse() -> None:
    engine = LoopbackEngine("wav", "pcm")
    with pytest.raises(EngineError, match="not a WAV") as info:
        engine.feed(b"OggS\x00\x00")
    assert info.value.code == 1008

    engine = LoopbackEngine("wav", "pcm")
    hostile = bytearray(wav_header(16000))
    hostile[24:28] = (4_000_000_000).to_bytes(4, "little")  # the sample rate field
    with pytest.raises(EngineError, match="4000000000 Hz") as info:
        engine.feed(bytes(hostile))
    assert info.value.code == 1008

    engine = LoopbackEngine("wav", "pcm")
    engine.feed(wav_header(16000)[:20])
    with pytest.raises(EngineError, match="header"):
        engine.finish()

    engine = LoopbackEngine("pcm", "pcm")
    engine.feed(b"\x00\x00\x01")
    with pytest.raises(EngineError, match="inside a 2-byte sample") as info:
        engine.finish()
    assert info.value.code == 1008

    engine = LoopbackEngine("pcm", "pcm")
    engine.finish()
    with pytest.raises(EngineError) as info:
        engine.feed(b"\x00\x00")
    assert info.value.code == 1002


def make_signal(layout: list[tuple[bool, int]], rate: int) -> npt.NDArray[np.int16]:
    parts = [tone(rate, ms / 1000) if loud else silence(rate, ms / 1000) for loud, ms in layout]
    return np.concatenate([np.zeros(0, dtype=np.int16), *parts])


@given(
    st.lists(st.tuples(st.booleans(), st.integers(10, 500)), max_size=6),
    st.sampled_from([("pcm", "pcm"), ("ulaw_8000", "pcm_16000"), ("pcm_22050", "wav"),
                     ("wav", "alaw_8000"), ("wav", "pcm_44100")]),
    st.lists(st.integers(0, 80000), max_size=8),
)
@settings(deadline=None, max_examples=40)
def test_any_chunking_gives_identical_outputs(
    layout: list[tuple[bool, int]], formats: tuple[str, str], cuts: list[int]
) -> None:
    in_fmt, out_fmt = formats
    if in_fmt == "pcm":
        data = to_pcm16(make_signal(layout, 24000))
    elif in_fmt == "pcm_22050":
        data = to_pcm16(make_signal(layout, 22050))
    elif in_fmt == "ulaw_8000":
        data = ulaw_encode(make_signal(layout, 8000))
    else:
        data = wav_file(make_signal(layout, 32000), 32000)
    whole = run(LoopbackEngine(in_fmt, out_fmt, "de"), [data])
    pieces = run(LoopbackEngine(in_fmt, out_fmt, "de"), split(data, cuts))
    assert audio_of(pieces) == audio_of(whole)
    assert texts_of(pieces) == texts_of(whole)
    frames = [o for o in pieces if isinstance(o, AudioOut)]
    assert all(f.stop_s > f.start_s for f in frames if len(f.data) > 44)
