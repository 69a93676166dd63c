"""Issue 12 item 6: numpy input at another rate is resampled by ONE streaming resampler
per request (libsoxr), so chunk edges do not click and the sample count never drifts.

On the core's ``InputChunker`` directly, then end to end on every adapter mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from harness import MODES, Harness, harness_for
from s2s_anyio import run_server
from s2s_core.audio import resample
from s2s_core.audio_input import InputChunker, plan_chunks
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

PCM = Setup(voice_id="v", input_format="pcm", output_format="pcm")  # 24 kHz in, 48 kHz out


def sine(rate: int, seconds: float, hz: float = 440.0) -> npt.NDArray[np.float32]:
    t = np.arange(round(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def blocks(signal: npt.NDArray[np.float32], size: int) -> Iterator[npt.NDArray[np.float32]]:
    return (signal[i:i + size] for i in range(0, len(signal), size))


def chunked(signal: npt.NDArray[np.float32], size: int, rate: int) -> npt.NDArray[np.int16]:
    """What the chunker sends for ``signal`` fed in blocks of ``size`` samples."""
    chunker = InputChunker(PCM, sample_rate=rate)
    pieces = [bytes(c.data) for block in blocks(signal, size) for c in chunker.feed(block)]
    pieces += [bytes(c.data) for c in chunker.finish()]
    return np.frombuffer(b"".join(pieces), dtype="<i2")


def expected_count(n: int, src: int, dst: int) -> int:
    return (2 * n * dst + src) // (2 * src)  # floor(n * dst / src + 1/2)


def test_20ms_chunks_have_no_dips_at_their_edges() -> None:
    """The issue's example: 20 ms float32 chunks of 440 Hz at 16 kHz, to pcm (24 kHz)."""
    signal = sine(16000, 2.0)
    out = chunked(signal, 320, 16000)
    whole = resample(signal, 16000, 24000)  # one-shot over the whole signal
    assert len(out) == len(whole) == expected_count(len(signal), 16000, 24000) == 48000
    assert np.abs(out.astype(np.int32) - whole).max() <= 1
    # Resampling each chunk on its own would dip at every edge (5185/16384 in the
    # field): the same check sees that, so it can fail.
    apart = np.concatenate([resample(block, 16000, 24000) for block in blocks(signal, 320)])
    assert np.abs(apart.astype(np.int32) - whole).max() > 1000


def test_a_minute_of_44k1_in_512_sample_blocks_does_not_drift() -> None:
    signal = sine(44100, 60.0, hz=1000.0)
    out = chunked(signal, 512, 44100)
    assert len(out) == expected_count(len(signal), 44100, 24000) == 60 * 24000
    whole = resample(signal, 44100, 24000)
    assert np.abs(out.astype(np.int32) - whole).max() <= 1


@pytest.mark.parametrize("size", [1, 7, 320, 441, 4096])
def test_the_count_is_exact_over_any_chunking(size: int) -> None:
    signal = sine(44100, 0.5)[:22049]  # not a whole number of output samples
    out = chunked(signal, size, 44100)
    assert len(out) == expected_count(len(signal), 44100, 24000)
    assert np.array_equal(out, resample(signal, 44100, 24000))


def test_each_chunker_has_its_own_resampler() -> None:
    """Two requests (or a retry) never share filter state."""
    signal = sine(16000, 0.3)
    first, second = chunked(signal, 320, 16000), chunked(signal, 320, 16000)
    assert np.array_equal(first, second)


def test_bytes_after_arrays_keep_their_order() -> None:
    """Bytes are at the format's rate: what the resampler holds goes out before them."""
    signal = sine(16000, 0.1)
    chunker = InputChunker(PCM, sample_rate=16000)
    sent = [bytes(c.data) for c in chunker.feed(signal)]
    marker = np.full(1920, 1234, dtype="<i2").tobytes()
    sent += [bytes(c.data) for c in chunker.feed(marker)]
    sent += [bytes(c.data) for c in chunker.finish()]
    samples = np.frombuffer(b"".join(sent), dtype="<i2")
    resampled = resample(signal, 16000, 24000)
    assert len(samples) == len(resampled) + 1920
    assert np.array_equal(samples[:len(resampled)], resampled)
    assert set(samples[len(resampled):].tolist()) == {1234}


def test_plan_chunks_resamples_whole_inputs_the_same_way() -> None:
    signal = sine(22050, 0.7)
    data = b"".join(bytes(c.data) for c in plan_chunks(signal, PCM, sample_rate=22050))
    assert np.array_equal(np.frombuffer(data, dtype="<i2"), resample(signal, 22050, 24000))


# --- end to end: every adapter mode, the local server resamples 24 kHz -> 48 kHz ---


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


def expected_output(signal: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.int16]:
    """What the loopback server returns: our one-shot 24 kHz, resampled again to 48 kHz."""
    return resample(resample(signal, rate, 24000), 24000, 48000)


def test_s2s_of_20ms_chunks_at_16k(harness: Harness, url: str) -> None:
    signal = sine(16000, 1.0)
    result = harness.s2s(url, PCM, blocks(signal, 320), sample_rate=16000, pace=None,
                         trailing_silence_s=0.0, lead_in_silence_s=0.0)
    out = np.frombuffer(result.raw_data, dtype="<i2")
    expected = expected_output(signal, 16000)
    assert len(out) == len(expected) == 48000
    assert np.abs(out.astype(np.int32) - expected).max() <= 2


def test_s2s_stream_of_512_sample_blocks_at_44k1(harness: Harness, url: str) -> None:
    signal = sine(44100, 3.0, hz=1000.0)
    outcome = harness.stream(url, PCM, blocks(signal, 512), sample_rate=44100, pace=None,
                             trailing_silence_s=0.0, lead_in_silence_s=0.0)
    assert outcome.error is None
    out = np.frombuffer(outcome.audio, dtype="<i2")
    expected = expected_output(signal, 44100)
    assert len(out) == len(expected) == 3 * 48000
    assert np.abs(out.astype(np.int32) - expected).max() <= 2
