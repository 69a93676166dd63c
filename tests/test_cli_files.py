"""``s2s translate`` on real media files (made here with PyAV), as a user types it.

The embedded local server is a loopback: the translation is the input audio
(resampled to the wire rates), which lets each output be compared with the
input. Durations are checked within ``SLACK_S``: lossy encoders pad their
last frame (AAC 1024 samples, MP3 1152, Opus 20 ms).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from cli_support import (
    TRAILING_S,
    Int16,
    Run,
    best_correlation,
    blocking_env,
    decode_audio,
    expect_one_error,
    speech,
    video_packets,
    wav_info,
    write_audio,
    write_video,
)

SLACK_S = 0.1
RATE = 16_000  # comparisons are made at this rate


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample as mp3, flac, ogg/vorbis (stereo), m4a/aac, and an mp4 with an h264 video."""
    folder = tmp_path_factory.mktemp("inputs")
    voice44, voice48 = speech(44_100), speech(48_000)
    return {
        "mp3": write_audio(folder / "talk.mp3", "mp3", "libmp3lame", voice44, 44_100),
        "flac": write_audio(folder / "talk.flac", "flac", "flac", voice44, 44_100),
        "ogg": write_audio(folder / "talk.ogg", "ogg", "vorbis", voice44, 44_100, channels=2,
                           options={"strict": "experimental"}),  # ffmpeg's vorbis: stereo
        "m4a": write_audio(folder / "talk.m4a", "ipod", "aac", voice44, 44_100),
        "mp4": write_video(folder / "clip.mp4", "mp4", "libx264", "aac", voice48, 48_000),
    }


# (input, output name, extra arguments): every output format, every backend and loop.
CASES = {
    "mp3-to-wav": ("mp3", "out.wav", ()),
    "flac-to-flac": ("flac", "out.flac", ("--loop", "uvloop")),
    "ogg-to-ogg": ("ogg", "out.ogg", ("--backend", "trio")),
    "m4a-to-m4a": ("m4a", "out.m4a", ("--backend", "threaded")),
    "mp4-to-mp3": ("mp4", "out.mp3", ("--loop", "trio")),
    # pcm_8000 on the wire: the dub holds no sound above 4 kHz, unlike the original track.
    "mp4-dubbed": ("mp4", "out.mp4", ("--target-language", "fr", "--output-format",
                                      "pcm_8000")),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory,
         inputs: dict[str, Path]) -> Iterator[dict[str, Run]]:
    started = {name: Run("translate", str(inputs[kind]), "-o", out, "--no-pace", *extra,
                         cwd=tmp_path_factory.mktemp(name))
               for name, (kind, out, extra) in CASES.items()}
    folder = tmp_path_factory.mktemp("no-pyav")
    started["wav-without-pyav"] = Run(
        "translate", str(folder.parent / "sample.wav"), "-o", "out.wav", "--no-pace",
        cwd=folder, **blocking_env(folder / "blocked", "av"))
    started["mp3-without-pyav"] = Run(
        "translate", str(inputs["mp3"]), "-o", "out.wav", cwd=folder,
        **blocking_env(folder / "blocked", "av"))
    yield started
    for run in started.values():
        run.result()


@pytest.fixture(scope="module", autouse=True)
def sample_wav(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The sample as a 16-bit WAV beside the runs' folders (for the run without PyAV)."""
    from s2s_core.audio import write_wav

    folder = tmp_path_factory.getbasetemp()
    write_wav(folder / "sample.wav", speech(22_050), 22_050)


def _expected_s(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


@pytest.mark.parametrize("name", [n for n in CASES if n != "mp4-dubbed"])
def test_each_format_in_and_out(runs: dict[str, Run], inputs: dict[str, Path],
                                name: str) -> None:
    kind, out, _ = CASES[name]
    run = runs[name]
    proc = run.result()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert run.files() == [out]  # no .part file left
    samples, _ = decode_audio(run.cwd / out, RATE)
    expected = _expected_s(inputs[kind]) + TRAILING_S
    assert len(samples) / RATE == pytest.approx(expected, abs=SLACK_S)
    with av.open(str(run.cwd / out)) as container:
        assert container.streams.audio[0].sample_rate == 48_000
        assert not container.streams.video
    # The loopback's translation is the input: the output sounds like it.
    original, _ = decode_audio(inputs[kind], RATE)
    assert best_correlation(samples, original, RATE) > 0.9


def test_a_video_is_dubbed_with_its_video_copied_packet_for_packet(
        runs: dict[str, Run], inputs: dict[str, Path]) -> None:
    run = runs["mp4-dubbed"]
    proc = run.result()
    assert proc.returncode == 0, proc.stderr
    assert run.files() == ["out.mp4"]
    dubbed = run.cwd / "out.mp4"
    assert video_packets(dubbed) == video_packets(inputs["mp4"])
    with av.open(str(dubbed)) as container:
        (video,) = container.streams.video
        (audio,) = container.streams.audio
        assert audio.codec_context.name == "aac"
        assert video.duration is not None and video.time_base is not None
        video_s = float(video.duration * video.time_base)
    samples, start = decode_audio(dubbed, RATE)
    assert start == pytest.approx(0.0, abs=0.05)  # in sync: starts with the video
    assert len(samples) / RATE >= video_s - SLACK_S  # the video is not cut short
    # AAC twice (the input's track, then the dub's): each pads up to two 1024-sample frames.
    assert len(samples) / RATE == pytest.approx(_expected_s(inputs["mp4"]) + TRAILING_S,
                                                abs=2 * SLACK_S)
    original, _ = decode_audio(inputs["mp4"], RATE)
    assert best_correlation(samples, original, RATE) > 0.8
    # The audio is the translation (8 kHz on the wire), not the original track.
    assert _high_band_share(samples) < 0.1 * _high_band_share(original)


def _high_band_share(samples: Int16) -> float:
    """Share of the energy above 4.5 kHz."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / RATE)
    return float(spectrum[freqs > 4500].sum() / spectrum.sum())


def test_wav_needs_no_pyav_and_other_files_name_the_extra(runs: dict[str, Run]) -> None:
    proc = runs["wav-without-pyav"].result()
    assert proc.returncode == 0, proc.stderr
    rate, seconds = wav_info(runs["wav-without-pyav"].cwd / "out.wav")
    assert rate == 48_000
    assert seconds == pytest.approx(len(speech(22_050)) / 22_050 + TRAILING_S, abs=0.02)
    expect_one_error(runs["mp3-without-pyav"].result(), 2, "talk.mp3", "PyAV",
                     "pip install 's2s-core[media]'")
