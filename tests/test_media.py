"""The CLI's media layer (adapters/s2s_cli/_media.py) on real files made here with PyAV.

Durations of lossy codecs are checked within ``CODEC_SLACK_S``: encoders pad
their last frame (AAC 1024 samples, MP3 1152, Opus 20 ms, Vorbis up to 2048
at 44.1 kHz: at most 46 ms), and containers without an edit list keep that
padding. Tones are checked by the peak of their spectrum.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import tracemalloc
import wave
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from s2s_cli import _media as media
from s2s_core.audio import alaw_decode, alaw_encode, read_wav, ulaw_decode, ulaw_encode, write_wav
from s2s_core.errors import InvalidAudio, S2SError

CODEC_SLACK_S = 0.05
OUT_RATE = 48_000
Int16 = npt.NDArray[np.int16]


# --------------------------------------------------------------------------
# helpers: signals and files made with PyAV
# --------------------------------------------------------------------------


def tone(seconds: float, rate: int, hz: float = 440.0, amplitude: float = 0.5) -> Int16:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def peak_hz(samples: Int16, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms(samples: Int16) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def _encode_audio(container: Any, stream: Any, samples: Int16, rate: int, channels: int,
                  start: int = 0) -> None:
    layout = "stereo" if channels == 2 else "mono"
    planar = np.repeat(samples, channels) if channels == 2 else samples
    step = 4096
    for first in range(0, len(samples), step):
        chunk = planar[first * channels : (first + step) * channels]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = start + first
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio(path: Path, fmt: str, codec: str, rate: int, samples: Int16, *,
                channels: int = 1, options: dict[str, str] | None = None,
                container_options: dict[str, str] | None = None) -> Path:
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, layout="stereo" if channels == 2
                                      else "mono", options=options or {})
        _encode_audio(container, stream, samples, rate, channels)
    return path


def write_video(path: Path, fmt: str, vcodec: str, acodec: str | None, *, seconds: float = 2.0,
                fps: int = 10, audio: Int16 | None = None, rate: int = 48_000,
                audio_start_s: float = 0.0) -> Path:
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = None if acodec is None else container.add_stream(acodec, rate=rate,
                                                                 layout="mono")
        for index in range(round(seconds * fps)):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, :, 0] = index * 23 % 256
            image[index % 48, :, 1] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            _encode_audio(container, sound, tone(seconds, rate) if audio is None else audio,
                          rate, 1, start=round(audio_start_s * rate))
    return path


def g711_wav(path: Path, tag: int, payload: bytes, rate: int = 8000) -> Path:
    """A WAV file of G.711 samples (tag 7 mu-law, 6 A-law), with the fact chunk they need."""
    fmt = struct.pack("<HHIIHHH", tag, 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(payload))
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"fact" + struct.pack("<I", 4) + fact
            + b"data" + struct.pack("<I", len(payload)) + payload)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def decode_all(path: Path, rate: int | None = None) -> tuple[Any, Int16]:
    with media.open_media(path, rate) as source:
        chunks = list(source)
        assert all(c.dtype == np.int16 and c.ndim == 1 and len(c) for c in chunks)
        return source.info, np.concatenate(chunks)


# ffmpeg's AAC encoder delays its output by 1024 samples plus a little (22 ms in all at 48 kHz).
AAC_DELAY_S = 0.025


def onset_s(path: Path) -> float:
    """Time of the first loud sample of the first audio stream, on the file's timeline."""
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            loud = np.flatnonzero(np.abs(frame.to_ndarray()[0]) > 0.1 * (
                32767 if frame.format.name.startswith("s16") else 1.0))
            if len(loud):
                assert frame.time is not None
                return frame.time + int(loud[0]) / frame.sample_rate
    raise AssertionError(f"{path} is silent")


def video_packets(path: Path) -> list[tuple[bytes, float | None]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(bytes(p), None if p.pts is None else float(p.pts * p.time_base))
                for p in container.demux(stream) if p.size]


# --------------------------------------------------------------------------
# decoding files
# --------------------------------------------------------------------------

TONE_S = 1.5


def _audio_file(tmp: Path, kind: str) -> Path:
    src44 = tone(TONE_S, 44_100)
    src48 = tone(TONE_S, 48_000)
    makers = {
        "mp3": lambda: write_audio(tmp / "a.mp3", "mp3", "libmp3lame", 44_100, src44),
        "flac": lambda: write_audio(tmp / "a.flac", "flac", "flac", 44_100, src44, channels=2),
        "ogg": lambda: write_audio(tmp / "a.ogg", "ogg", "vorbis", 44_100, src44, channels=2,
                                   options={"strict": "experimental"}),
        "opus": lambda: write_audio(tmp / "a.opus", "ogg", "libopus", 48_000, src48),
        "m4a": lambda: write_audio(tmp / "a.m4a", "ipod", "aac", 44_100, src44),
        "w64": lambda: write_audio(tmp / "a.w64", "w64", "pcm_s16le", 44_100, src44),
        "rf64": lambda: write_audio(tmp / "a.wav", "wav", "pcm_s24le", 44_100, src44,
                                    container_options={"rf64": "always"}),
        "mp4": lambda: write_video(tmp / "v.mp4", "mp4", "libx264", "aac", seconds=TONE_S),
        "mov": lambda: write_video(tmp / "v.mov", "mov", "mpeg4", "aac", seconds=TONE_S),
        "mkv": lambda: write_video(tmp / "v.mkv", "matroska", "libvpx-vp9", "libopus",
                                   seconds=TONE_S),
        "webm": lambda: write_video(tmp / "v.webm", "webm", "libvpx", "libopus",
                                    seconds=TONE_S),
    }
    return makers[kind]()


@pytest.mark.parametrize(
    ("kind", "codec", "rate", "channels", "video"),
    [
        ("mp3", "mp3", 44_100, 1, None),
        ("flac", "flac", 44_100, 2, None),
        ("ogg", "vorbis", 44_100, 2, None),
        ("opus", "opus", 48_000, 1, None),
        ("m4a", "aac", 44_100, 1, None),
        ("w64", "pcm_s16le", 44_100, 1, None),
        ("rf64", "pcm_s24le", 44_100, 1, None),
        ("mp4", "aac", 48_000, 1, "h264"),
        ("mov", "aac", 48_000, 1, "mpeg4"),
        ("mkv", "opus", 48_000, 1, "vp9"),
        ("webm", "opus", 48_000, 1, "vp8"),
    ],
)
def test_decodes_every_container_to_mono_int16_at_the_rate_asked(
    tmp_path: Path, kind: str, codec: str, rate: int, channels: int, video: str | None
) -> None:
    path = _audio_file(tmp_path, kind)
    info = media.probe(path)
    assert (info.codec.removesuffix("float"), info.sample_rate, info.channels) == (
        codec, rate, channels)
    assert info.video_codec == video and info.has_video is (video is not None)
    assert info.duration_s is not None and abs(info.duration_s - TONE_S) <= CODEC_SLACK_S
    assert info.start_s == 0.0 if video else 0.0 <= info.start_s < CODEC_SLACK_S

    got_info, samples = decode_all(path, 16_000)
    assert got_info == info
    assert abs(len(samples) / 16_000 - TONE_S) <= CODEC_SLACK_S
    assert peak_hz(samples, 16_000) == pytest.approx(440, abs=2)
    # Stereo is averaged, not summed or one channel: the level of the tone is kept.
    assert rms(samples[1600:-1600]) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)


def test_the_files_own_rate_is_kept_when_none_is_asked(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "a.flac", "flac", "flac", 22_050, tone(1.0, 22_050))
    with media.open_media(path, None) as source:
        assert source.rate == 22_050
        samples = np.concatenate(list(source))
    assert np.array_equal(samples, tone(1.0, 22_050))  # lossless, no resampling


@pytest.mark.parametrize(("tag", "encode", "decode"), [(7, ulaw_encode, ulaw_decode),
                                                       (6, alaw_encode, alaw_decode)])
def test_g711_wav_files_decode_as_the_g711_tables_say(
    tmp_path: Path, tag: int, encode: Any, decode: Any
) -> None:
    payload = encode(tone(1.0, 8000))
    path = g711_wav(tmp_path / "g711.wav", tag, payload)
    info, samples = decode_all(path, 8000)
    assert (info.codec, info.sample_rate) == ({7: "pcm_mulaw", 6: "pcm_alaw"}[tag], 8000)
    assert np.array_equal(samples, decode(payload))
    _, upsampled = decode_all(path, 24_000)
    assert len(upsampled) == 24_000 and peak_hz(upsampled, 24_000) == pytest.approx(440, abs=2)


def test_mp3_cover_art_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "cover.mp3"
    with av.open(str(path), "w", format="mp3") as container:
        sound = container.add_stream("libmp3lame", rate=44_100, layout="mono")
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 16, 16, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        image = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        image = image.reformat(format="yuvj420p")
        image.pts = 0
        container.mux(cover.encode(image) + cover.encode(None))
        _encode_audio(container, sound, tone(1.0, 44_100), 44_100, 1)
    info = media.probe(path)
    assert info.video_codec is None and not info.has_video
    with pytest.raises(media.OutputPathError, match="no video stream"):
        media.plan_output(tmp_path / "out.mp4", source=info)


def test_a_rate_change_midway_and_an_invalid_packet_are_decoded_through(tmp_path: Path) -> None:
    first = write_audio(tmp_path / "a.mp3", "mp3", "libmp3lame", 44_100, tone(1.0, 44_100))
    second = write_audio(tmp_path / "b.mp3", "mp3", "libmp3lame", 22_050,
                         tone(1.0, 22_050, hz=880))
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    with media.open_media(joined, 16_000) as source:
        samples = np.concatenate(list(source))
        assert isinstance(source, media.MediaDecoder) and source.skipped_packets == 1
    assert abs(len(samples) / 16_000 - 2.0) <= 2 * CODEC_SLACK_S
    assert peak_hz(samples[:14_000], 16_000) == pytest.approx(440, abs=2)
    assert peak_hz(samples[-14_000:], 16_000) == pytest.approx(880, abs=2)


def test_unreadable_files_raise_a_media_error_naming_the_file_and_pyavs_reason(
    tmp_path: Path,
) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00\x01 this is not audio " * 64)
    with pytest.raises(media.MediaError) as caught:
        media.open_media(junk, 16_000)
    assert str(junk) in str(caught.value) and "Invalid data" in str(caught.value)
    assert isinstance(caught.value, InvalidAudio) and isinstance(caught.value, ValueError)

    with pytest.raises(media.MediaError, match="No such file"):
        media.probe(tmp_path / "missing.flac")

    silent_video = write_video(tmp_path / "silent.mp4", "mp4", "libx264", None)
    with pytest.raises(media.NoAudioStream, match=r"silent\.mp4: has no audio stream"):
        media.open_media(silent_video, 16_000)


def test_decoding_stops_with_a_media_error_when_no_packet_decodes(tmp_path: Path) -> None:
    good = write_audio(tmp_path / "a.aac", "adts", "aac", 44_100, tone(1.0, 44_100))
    data = bytearray(good.read_bytes())
    # Keep each ADTS frame's 7-byte header (the demuxer still finds frames), zero the payload.
    pos = 0
    while pos + 7 <= len(data):
        assert data[pos] == 0xFF and data[pos + 1] & 0xF0 == 0xF0
        length = (data[pos + 3] & 3) << 11 | data[pos + 4] << 3 | data[pos + 5] >> 5
        data[pos + 7 : pos + length] = bytes(length - 7)
        pos += length
    broken = tmp_path / "broken.aac"
    broken.write_bytes(bytes(data))
    with media.open_media(broken, 16_000) as source, pytest.raises(
        media.MediaError, match=r"broken\.aac: no audio could be decoded: \d+ invalid packets"
    ):
        list(source)


def test_a_long_flac_decodes_in_bounded_memory(tmp_path: Path) -> None:
    """Ten minutes of 44.1 kHz FLAC (~50 MB of PCM once decoded) through a small window."""
    rate, minutes = 44_100, 10
    path = tmp_path / "long.flac"
    with av.open(str(path), "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        noise = np.random.default_rng(0).integers(-3000, 3000, rate * 10, dtype=np.int16)
        for block in range(minutes * 6):
            frame = av.AudioFrame.from_ndarray(noise.reshape(1, -1), format="s16",
                                               layout="mono")
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = block * len(noise)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():  # Linux: restart the peak RSS count (VmHWM) here
        clear_refs.write_text("5")
    rss_before = _status_mb("VmRSS")
    tracemalloc.start()
    try:
        with media.open_media(path, 24_000) as source:
            total = sum(len(chunk) for chunk in source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == minutes * 60 * 24_000
    print(f"\npeak traced allocation while decoding {minutes} min of FLAC: {peak / 1e6:.2f} MB")
    assert peak < 20e6  # the decoded audio alone is 29 MB at 24 kHz, the file 43 MB
    if clear_refs.exists():
        growth = _status_mb("VmHWM") - rss_before  # ffmpeg's own buffers included
        print(f"peak RSS growth: {growth:.1f} MB")
        assert growth < 30


def _status_mb(key: str) -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{key} not in /proc/self/status")


# --------------------------------------------------------------------------
# without PyAV
# --------------------------------------------------------------------------


@pytest.fixture
def no_pyav(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The module imports PyAV only when it needs it: blocking the import is enough.
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    assert not media.media_available()
    return media


def test_without_pyav_wav_still_decodes_and_other_files_name_the_extra(
    tmp_path: Path, no_pyav: ModuleType
) -> None:
    flac = write_audio(tmp_path / "a.flac", "flac", "flac", 16_000, tone(1.0, 16_000))
    wav = tmp_path / "a.wav"
    write_wav(wav, np.stack([tone(1.0, 16_000)] * 2, axis=1), 16_000, channels=2)
    with pytest.raises(no_pyav.MediaUnavailable) as caught:
        no_pyav.open_media(flac, 16_000)
    assert "pip install 's2s-core[media]'" in str(caught.value) and str(flac) in str(caught.value)

    with no_pyav.open_media(wav, 24_000) as source:
        assert (source.info.sample_rate, source.info.channels, source.rate) == (16_000, 2, 24_000)
        samples = np.concatenate(list(source))
    assert len(samples) == 24_000 and peak_hz(samples, 24_000) == pytest.approx(440, abs=2)

    mulaw = g711_wav(tmp_path / "u.wav", 7, ulaw_encode(tone(0.5, 8000)))
    with pytest.raises(no_pyav.MediaError, match=r"tag 0x0007.*s2s-core\[media\]"):
        no_pyav.open_media(mulaw, 8000)

    assert no_pyav.plan_output(tmp_path / "out.wav").kind == "wav"
    for ext in (".flac", ".mp3", ".ogg", ".opus", ".m4a"):
        with pytest.raises(no_pyav.MediaUnavailable, match=r"s2s-core\[media\]"):
            no_pyav.plan_output(tmp_path / f"out{ext}")


# --------------------------------------------------------------------------
# pipes and raw PCM
# --------------------------------------------------------------------------


def _wav_bytes(samples: Int16, rate: int) -> bytes:
    buffer = io.BytesIO()
    write_wav(buffer, samples, rate)
    return buffer.getvalue()


class _Trickle(io.RawIOBase):
    """A stream that returns at most ``step`` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._pos = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self._data[self._pos : self._pos + min(self._step, len(buffer))]
        buffer[: len(piece)] = piece
        self._pos += len(piece)
        return len(piece)


def test_a_wav_pipe_is_decoded_as_it_arrives() -> None:
    rate = 16_000
    signal = tone(2.0, rate)
    blob = _wav_bytes(signal, rate)
    read_fd, write_fd = os.pipe()
    first_chunk_seen = threading.Event()
    writer_error: list[BaseException] = []

    def feed() -> None:
        try:
            with open(write_fd, "wb", buffering=0) as pipe:
                pipe.write(blob[:44 + 8000])  # header + 0.25 s
                # The rest only once the reader has produced audio: a reader that waits
                # for the end of the stream would never get it.
                if first_chunk_seen.wait(timeout=30):
                    pipe.write(blob[44 + 8000 :])
        except BaseException as exc:  # pragma: no cover - reported below
            writer_error.append(exc)

    thread = threading.Thread(target=feed)
    thread.start()
    chunks = []
    try:
        with open(read_fd, "rb") as pipe:
            reader = media.PcmStreamReader(pipe, rate=24_000)
            assert reader.info.sample_rate == rate and reader.info.container == "wav"
            for chunk in reader:
                chunks.append(chunk)
                first_chunk_seen.set()
    finally:
        first_chunk_seen.set()
        thread.join(timeout=30)
    assert not writer_error and not thread.is_alive()
    assert first_chunk_seen.is_set() and len(chunks) >= 2
    samples = np.concatenate(chunks)
    assert len(samples) == 48_000 and peak_hz(samples, 24_000) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("step", [1, 3, 4099])
def test_raw_pcm_in_any_slicing_gives_the_same_samples(step: int) -> None:
    signal = tone(0.5, 16_000)
    stream = io.BufferedReader(_Trickle(signal.tobytes(), step))
    reader = media.PcmStreamReader(stream, raw_rate=16_000)
    assert (reader.info.container, reader.info.sample_rate, reader.rate) == ("raw", 16_000,
                                                                             16_000)
    assert np.array_equal(np.concatenate(list(reader)), signal)


def test_raw_pcm_is_resampled_and_downmixed() -> None:
    left = tone(1.0, 16_000)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    reader = media.PcmStreamReader(io.BytesIO(stereo.tobytes()), raw_rate=16_000, channels=2,
                                   rate=48_000)
    samples = np.concatenate(list(reader))
    assert len(samples) == 48_000 and peak_hz(samples, 48_000) == pytest.approx(440, abs=2)
    assert rms(samples[4800:-4800]) == pytest.approx(rms(left), rel=0.01)


def test_raw_files_go_through_the_pcm_reader_and_refuse_a_header(tmp_path: Path) -> None:
    raw = tmp_path / "a.raw"
    raw.write_bytes(tone(1.0, 8000).tobytes())
    with media.open_media(raw, 16_000, raw_rate=8000) as source:
        assert len(np.concatenate(list(source))) == 16_000
    flac = write_audio(tmp_path / "a.flac", "flac", "flac", 8000, tone(0.2, 8000))
    with pytest.raises(media.MediaError, match=r"a\.flac: starts with a header \(FLAC\)"):
        media.open_media(flac, 16_000, raw_rate=8000)


@pytest.mark.parametrize(
    ("data", "raw_rate", "message"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", 16_000, r"starts with a header \(WAV\)"),
        (b"\x01\x02" * 100, None, "not a WAV stream .*sample rate"),
        (b"fLaC\x00\x00\x00\x22" * 4, None, "FLAC input; a stream must be WAV"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", None, "AVI input"),
        (b"RIFF\x24\x00\x00\x00WAVEfm", None, "truncated WAV header"),
        (b"", None, "not a WAV stream"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x07\x00", None, "tag 0x0007"),
    ],
)
def test_pipe_refusals_are_media_errors_naming_the_stream(
    data: bytes, raw_rate: int | None, message: str
) -> None:
    fmt = b"\x07\x00\x01\x00\x40\x1f\x00\x00\x40\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00"
    blob = data + fmt[2:] if data.endswith(b"\x07\x00") else data
    reader = media.PcmStreamReader(io.BytesIO(blob), raw_rate=raw_rate, name="stdin")
    with pytest.raises(media.MediaError, match=f"^stdin: .*{message}"):
        list(reader)


def test_sniff_header_names_containers_and_leaves_raw_pcm_alone() -> None:
    assert media.sniff_header(b"fLaC\x00\x00") == "FLAC"
    assert media.sniff_header(b"RIFF\x00\x00\x00\x00WAVEfmt ") == "WAV"
    assert media.sniff_header(b"RIFF\x00\x00\x00\x00CDXA") == "RIFF"
    assert media.sniff_header(b"\x00\x00\x00\x20ftypisom") == "MP4/MOV"
    assert media.sniff_header(b"\xff\xfb\x90\x00" * 3) is None
    assert media.sniff_header(np.zeros(6, np.int16).tobytes()) is None


# --------------------------------------------------------------------------
# output paths
# --------------------------------------------------------------------------


def _refused(path: Any, source: Any = None) -> Any:
    with pytest.raises(media.OutputPathError) as caught:
        media.plan_output(path, source=source)
    error = caught.value
    assert isinstance(error, S2SError) and isinstance(error, ValueError)
    return error


def test_output_paths_are_refused_with_what_is_allowed(tmp_path: Path) -> None:
    error = _refused(tmp_path / "out.xyz")
    assert "unknown extension '.xyz'" in str(error)
    assert all(ext in error.allowed for ext in media.OUTPUT_EXTENSIONS)
    assert "has no extension" in str(_refused(tmp_path / "out"))
    assert _refused(tmp_path).reason == "is a directory"
    assert _refused(f"{tmp_path}/new.wav/").reason == "is a directory"
    assert "does not exist" in _refused(tmp_path / "missing" / "out.wav").reason
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    assert "not a regular file" in _refused(fifo).reason
    audio_only = media.probe(write_audio(tmp_path / "a.flac", "flac", "flac", 16_000,
                                         tone(0.2, 16_000)))
    for ext in media.VIDEO_EXTENSIONS:
        error = _refused(tmp_path / f"out{ext}", audio_only)
        assert "has no video stream" in error.reason and ".wav" in error.allowed
        assert "has no video stream" in _refused(tmp_path / f"out{ext}").reason
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac", "fifo.wav"]
    assert media.plan_output(tmp_path / "OUT.MP3").kind == "audio"


def test_an_unwritable_folder_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root writes anywhere permissions say no: use a read-only mount
        target = Path("/sys/s2s-out.wav")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        target = locked / "out.wav"
    assert "is not writable" in _refused(target).reason


def test_a_video_container_must_accept_the_input_video(tmp_path: Path) -> None:
    h264 = media.probe(write_video(tmp_path / "v.mp4", "mp4", "libx264", "aac"))
    vp8 = media.probe(write_video(tmp_path / "v.webm", "webm", "libvpx", "libopus"))
    error = _refused(tmp_path / "out.webm", h264)
    assert "cannot hold the input's h264 video" in error.reason
    assert error.allowed.startswith(".mp4, .mkv, .mov, .wav")
    assert "vp8" in _refused(tmp_path / "out.mp4", vp8).reason
    plan = media.plan_output(tmp_path / "out.mkv", source=h264)
    assert (plan.kind, plan.container, plan.codec) == ("video", "matroska", "libopus")
    assert plan.video_source == tmp_path / "v.mp4"


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


def _write_in_chunks(writer: Any, samples: Int16, chunk: int = 3840) -> None:
    for start in range(0, len(samples), chunk):
        writer.write(samples[start : start + chunk])


@pytest.mark.parametrize(
    ("ext", "codec", "rate"),
    [(".flac", "flac", OUT_RATE), (".mp3", "mp3", OUT_RATE), (".ogg", "opus", OUT_RATE),
     (".opus", "opus", OUT_RATE), (".m4a", "aac", OUT_RATE), (".wav", "pcm_s16le", OUT_RATE)],
)
def test_audio_outputs_are_streamed_to_disk_and_decode_back(
    tmp_path: Path, ext: str, codec: str, rate: int
) -> None:
    plan = media.plan_output(tmp_path / f"out{ext}")
    signal = tone(6.0, OUT_RATE, hz=660)
    with media.open_output(plan, OUT_RATE) as writer:
        _write_in_chunks(writer, signal[: 5 * OUT_RATE])
        assert writer.part_path.stat().st_size > 20_000  # on disk already, not in memory
        assert not plan.path.exists()
        _write_in_chunks(writer, signal[5 * OUT_RATE :])
    assert plan.path.exists() and not writer.part_path.exists()
    info, samples = decode_all(plan.path, 16_000)
    assert (info.codec.removesuffix("float"), info.sample_rate, info.channels) == (codec, rate, 1)
    assert abs(len(samples) / 16_000 - 6.0) <= CODEC_SLACK_S
    assert peak_hz(samples, 16_000) == pytest.approx(660, abs=2)


def test_the_wav_output_holds_exactly_the_samples_with_exact_sizes(tmp_path: Path) -> None:
    signal = tone(1.01, 24_000)
    with media.open_output(media.plan_output(tmp_path / "out.wav"), 24_000) as writer:
        _write_in_chunks(writer, signal, 1001)
        assert writer.seconds_written == pytest.approx(1.01)
    with wave.open(str(tmp_path / "out.wav")) as check:
        assert (check.getframerate(), check.getnchannels(), check.getsampwidth()) == (24_000, 1,
                                                                                      2)
        assert np.array_equal(np.frombuffer(check.readframes(10**6), "<i2"), signal)


def test_an_encoder_rate_it_does_not_take_is_raised_to_the_next_one(tmp_path: Path) -> None:
    with media.open_output(media.plan_output(tmp_path / "out.mp3"), 7000) as writer:
        _write_in_chunks(writer, tone(1.0, 7000))
    info, samples = decode_all(tmp_path / "out.mp3", 7000)
    assert info.sample_rate == 8000 and abs(len(samples) / 7000 - 1.0) <= CODEC_SLACK_S
    # Ogg Opus always decodes at 48 kHz: only the length and the pitch can be checked.
    with media.open_output(media.plan_output(tmp_path / "out.opus"), 22_050) as writer:
        _write_in_chunks(writer, tone(1.0, 22_050))
    _, samples = decode_all(tmp_path / "out.opus", 22_050)
    assert abs(len(samples) / 22_050 - 1.0) <= CODEC_SLACK_S
    assert peak_hz(samples, 22_050) == pytest.approx(440, abs=2)


def test_a_failed_output_leaves_no_part_file(tmp_path: Path) -> None:
    for ext in (".wav", ".mp3"):
        plan = media.plan_output(tmp_path / f"out{ext}")
        with pytest.raises(RuntimeError, match="service"), media.open_output(
            plan, OUT_RATE
        ) as writer:
                writer.write(tone(1.0, OUT_RATE))
                assert writer.part_path.exists()
                raise RuntimeError("service went away")
        assert list(tmp_path.iterdir()) == []
    writer = media.open_output(media.plan_output(tmp_path / "out.flac"), OUT_RATE)
    with pytest.raises(InvalidAudio, match="1-D int16"):
        writer.write(np.zeros(10, np.float32))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


class _Recorder(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()
        self.flushed_at: list[int] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.data += data
        return len(data)

    def flush(self) -> None:
        self.flushed_at.append(len(self.data))


def test_stdout_gets_a_streamed_wav_flushed_chunk_by_chunk() -> None:
    sink = _Recorder()
    signal = tone(0.5, OUT_RATE)
    writer = media.WavStdoutWriter(sink, OUT_RATE)  # type: ignore[arg-type]
    assert sink.flushed_at == [44]
    assert struct.unpack_from("<I", sink.data, 4)[0] == 0xFFFFFFFF
    assert struct.unpack_from("<I", sink.data, 40)[0] == 0xFFFFFFFF
    _write_in_chunks(writer, signal, 4800)
    assert sink.flushed_at[1:6] == [44 + 9600 * n for n in range(1, 6)]
    writer.close()
    decoded = read_wav(bytes(sink.data))
    assert decoded.sample_rate == OUT_RATE and np.array_equal(decoded.samples, signal)


# --------------------------------------------------------------------------
# dubbed videos
# --------------------------------------------------------------------------


def _dub(tmp_path: Path, source: Path, out_name: str, translation: Int16) -> tuple[Path, Any]:
    plan = media.plan_output(tmp_path / out_name, source=media.probe(source))
    with media.open_output(plan, OUT_RATE) as writer:
        assert isinstance(writer, media.DubbedVideoWriter)
        _write_in_chunks(writer, translation[: OUT_RATE])
        # Video is copied as the audio advances, not all at the start or the end.
        assert 0.5 <= writer.video_written_s - plan.audio_start_s <= 1.3
        _write_in_chunks(writer, translation[OUT_RATE:])
    assert not writer.part_path.exists()
    return plan.path, writer


@pytest.mark.parametrize(
    ("maker", "out_name", "audio_codec"),
    [
        (lambda p: write_video(p / "in.mp4", "mp4", "libx264", "aac"), "out.mp4", "aac"),
        (lambda p: write_video(p / "in.mov", "mov", "mpeg4", "aac"), "out.mov", "aac"),
        (lambda p: write_video(p / "in.mp4", "mp4", "libx264", "aac"), "out.mkv", "opus"),
        (lambda p: write_video(p / "in.webm", "webm", "libvpx", "libopus"), "out.webm", "opus"),
    ],
)
def test_a_dubbed_video_copies_the_video_and_pads_short_audio_to_its_end(
    tmp_path: Path, maker: Any, out_name: str, audio_codec: str
) -> None:
    source = maker(tmp_path)  # 2 s of video at 10 fps, a 440 Hz tone as its audio
    translation = tone(1.5, OUT_RATE, hz=660)
    out, _ = _dub(tmp_path, source, out_name, translation)

    assert video_packets(out) == video_packets(source)  # same bytes, same times
    info, samples = decode_all(out, 16_000)
    assert info.codec == audio_codec and info.video_codec == media.probe(source).video_codec
    assert info.start_s == 0.0
    assert abs(len(samples) / 16_000 - 2.0) <= CODEC_SLACK_S  # padded to the video's end
    assert peak_hz(samples[800:23_000], 16_000) == pytest.approx(660, abs=2)
    assert rms(samples[25_000:]) < 100  # silence after the translation


def test_a_dubbed_video_keeps_audio_longer_than_the_video(tmp_path: Path) -> None:
    source = write_video(tmp_path / "in.mp4", "mp4", "libx264", "aac")
    out, _ = _dub(tmp_path, source, "out.mp4", tone(3.0, OUT_RATE, hz=660))
    assert video_packets(out) == video_packets(source)
    _, samples = decode_all(out, 16_000)
    assert abs(len(samples) / 16_000 - 3.0) <= CODEC_SLACK_S
    assert peak_hz(samples[-16_000:], 16_000) == pytest.approx(660, abs=2)


def test_a_dubbed_video_starts_its_audio_where_the_source_audio_started(
    tmp_path: Path,
) -> None:
    source = write_video(tmp_path / "in.mp4", "mp4", "libx264", "aac", audio=tone(1.0, OUT_RATE),
                         audio_start_s=0.5)
    info = media.probe(source)
    assert info.start_s == pytest.approx(0.5, abs=AAC_DELAY_S)  # the priming counts here
    out, _ = _dub(tmp_path, source, "out.mp4", tone(1.2, OUT_RATE, hz=660))
    assert video_packets(out) == video_packets(source)
    # In sync within the AAC encoder's delay, which shifts what is heard.
    assert onset_s(out) == pytest.approx(onset_s(source), abs=AAC_DELAY_S)
    dubbed = media.probe(out)
    # From its start to the video's end (2 s): 1.2 s of translation, then silence.
    assert dubbed.start_s + dubbed.duration_s == pytest.approx(2.0, abs=CODEC_SLACK_S)


def test_a_failed_dub_leaves_no_part_file(tmp_path: Path) -> None:
    source = write_video(tmp_path / "in.mp4", "mp4", "libx264", "aac")
    plan = media.plan_output(tmp_path / "out.mp4", source=media.probe(source))
    with pytest.raises(KeyboardInterrupt), media.open_output(plan, OUT_RATE) as writer:
            writer.write(tone(1.0, OUT_RATE))
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]

