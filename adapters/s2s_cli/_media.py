"""Media files of the ``s2s`` command: any audio or video in, audio or a dubbed video out.

Inputs are decoded as a stream of mono int16 chunks at the rate the caller asks
for, in bounded memory: files by PyAV (ffmpeg: mp3, flac, ogg, opus, m4a, the
audio track of mp4/mkv/webm/mov, RF64/W64, G.711 WAV, ...), pipes and raw
files (WAV or headerless PCM16) by the core's WAV decoder as bytes arrive.
Outputs are encoded as the translation arrives, into ``PATH.part`` renamed at
the end; the format follows the extension; a video container gets the input's
video stream copied packet for packet with the translation as its audio track.

PyAV is the ``media`` extra and is imported only when needed: without it WAV
and raw PCM work both ways and everything else raises ``MediaUnavailable``.
Every problem with a path is raised before anything is streamed when it can be
known then (see ``plan_output``).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from s2s_core.audio import Resampler, WavStreamDecoder, WavStreamWriter, pcm16_view, wav_header
from s2s_core.errors import InvalidAudio, S2SError

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.audio.resampler import AudioResampler
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.packet import Packet
    from av.video.stream import VideoStream

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTRA",
    "OUTPUT_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "AudioSource",
    "DubbedVideoWriter",
    "EncodedAudioWriter",
    "MediaDecoder",
    "MediaError",
    "MediaInfo",
    "MediaUnavailable",
    "MediaWriter",
    "NoAudioStream",
    "OutputPathError",
    "OutputPlan",
    "PcmStreamReader",
    "WavFileWriter",
    "WavStdoutWriter",
    "media_available",
    "open_media",
    "open_output",
    "plan_output",
    "probe",
    "sniff_header",
]

Int16Array = npt.NDArray[np.int16]

MEDIA_EXTRA = "pip install 's2s-core[media]'"
"""The command that installs PyAV, named by every error that needs it."""

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
"""Audio-only output extensions (``.wav`` needs no PyAV)."""

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm", ".mov")
"""Output extensions of a dubbed video (the input must have a video stream)."""

OUTPUT_EXTENSIONS: tuple[str, ...] = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS

_READ_SIZE = 1 << 16
_PROBE_BYTES = 12


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


class MediaError(InvalidAudio):
    """A media file or stream cannot be used (unreadable, no audio, PyAV missing).

    Attributes:
        path: The file (or stream name, e.g. ``"stdin"``) it is about.
        reason: What is wrong, without the path.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


class MediaUnavailable(MediaError):
    """The file needs PyAV (the ``media`` extra), which is not installed."""

    def __init__(self, path: str | os.PathLike[str], what: str) -> None:
        super().__init__(path, f"{what} needs PyAV, which is not installed: {MEDIA_EXTRA}")


class NoAudioStream(MediaError):
    """The file is a media file PyAV reads but it has no audio stream."""


class OutputPathError(S2SError, ValueError):
    """An output path cannot be written as asked; raised before anything is streamed.

    Attributes:
        path: The output path as given.
        reason: What is wrong with it.
        allowed: What would be accepted.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, allowed: str) -> None:
        super().__init__(f"output {os.fspath(path)!r}: {reason}; expected {allowed}")
        self.path = os.fspath(path)
        self.reason = reason
        self.allowed = allowed


def media_available() -> bool:
    """True when PyAV can be imported (the ``media`` extra is installed)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _require_av(path: str | os.PathLike[str], what: str) -> None:
    if not media_available():
        raise MediaUnavailable(path, what)


def _pyav_says(exc: BaseException) -> str:
    """PyAV's own words for an error, without the errno number and file name."""
    strerror = getattr(exc, "strerror", None)
    return strerror if isinstance(strerror, str) and strerror else str(exc)


def _check_chunk(pcm: npt.NDArray[np.generic]) -> Int16Array:
    if pcm.ndim != 1 or pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
        raise InvalidAudio(
            f"expected 1-D int16 mono samples, got {pcm.dtype} of shape {pcm.shape}"
        )
    return np.ascontiguousarray(pcm, dtype="<i2")


# --------------------------------------------------------------------------
# what an input holds
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaInfo:
    """What an input holds, known before decoding.

    Attributes:
        path: The file, or the stream's name for pipes.
        container: The demuxer's name (e.g. ``"mp3"``, ``"mov,mp4,m4a,3gp,3g2,mj2"``,
            ``"wav"``, ``"raw"``).
        codec: The audio codec (e.g. ``"aac"``, ``"pcm_mulaw"``, ``"pcm_s16le"``).
        sample_rate: The audio's own rate in Hz.
        channels: The audio's own channel count.
        duration_s: Duration of the audio in seconds, or None when the file
            does not say (pipes, some streams).
        start_s: Time of the first audio sample on the file's timeline, in
            seconds (a dubbed video puts its audio there, so that it stays in
            sync with the video's own timestamps). Usually 0; an MP3 file
            reports its encoder delay (~25 ms) here.
        video_codec: The codec of the first video stream (cover art excluded),
            or None when there is none.
    """

    path: str
    container: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None
    start_s: float = 0.0
    video_codec: str | None = None

    @property
    def has_video(self) -> bool:
        """True when the input has a video stream that a dubbed output can copy."""
        return self.video_codec is not None


_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RF64", "RF64"),
    (0, b"BW64", "BW64"),
    (0, b"riff", "W64"),
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3"),
    (0, b"FORM", "AIFF"),
    (0, b".snd", "AU"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (4, b"ftyp", "MP4/MOV"),
)


def sniff_header(head: bytes) -> str | None:
    """Name the container whose signature starts ``head``, or None for headerless data.

    Only unambiguous signatures are recognized (WAV and other RIFF files,
    RF64/BW64/W64, FLAC, Ogg, ID3-tagged MP3, AIFF, AU, Matroska, MP4/MOV), so
    raw PCM that happens to start like an MP3 frame is not taken for one.

    Args:
        head: The first bytes of a file or stream (12 are enough).
    """
    if head[:4] == b"RIFF":
        return {b"WAVE": "WAV", b"AVI ": "AVI"}.get(head[8:12], "RIFF")
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _first_video(container: InputContainer) -> VideoStream | None:
    """The first video stream that is a moving picture (cover art is not)."""
    import av

    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _open_input(path: str | os.PathLike[str]) -> InputContainer:
    import av

    try:
        return av.open(os.fspath(path), "r")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"cannot be read as audio or video ({_pyav_says(exc)})") from exc


def _first_audio(container: InputContainer, path: str | os.PathLike[str]) -> AudioStream:
    if not container.streams.audio:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
        raise NoAudioStream(path, f"has no audio stream (found: {kinds})")
    return container.streams.audio[0]


def _info(container: InputContainer, stream: AudioStream, path: str) -> MediaInfo:
    duration: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    start = 0.0
    if stream.start_time is not None and stream.time_base is not None:
        start = max(0.0, float(stream.start_time * stream.time_base))
    video = _first_video(container)
    ctx = stream.codec_context
    return MediaInfo(
        path=path,
        container=container.format.name,
        codec=ctx.name,
        sample_rate=ctx.sample_rate,
        channels=ctx.channels,
        duration_s=duration,
        start_s=start,
        video_codec=None if video is None else video.codec_context.name,
    )


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file's first audio stream without decoding it.

    Without PyAV only WAV files are described (their duration is then None).

    Raises:
        MediaError: The file cannot be read (PyAV's reason included).
        NoAudioStream: It has no audio stream.
        MediaUnavailable: PyAV is missing and the file is not WAV.
    """
    with open_media(path, None) as source:
        return source.info


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------


class AudioSource(ABC):
    """Mono int16 chunks at one rate, from a file or a stream, read as they are needed.

    Iterate once; close when done (also a context manager). Chunks have no
    fixed size (they follow the codec's frames or the bytes that arrived).
    """

    @property
    @abstractmethod
    def rate(self) -> int:
        """The rate of the chunks, in Hz."""

    @property
    @abstractmethod
    def info(self) -> MediaInfo:
        """What the input holds (a pipe's is known once its header has arrived)."""

    @abstractmethod
    def __iter__(self) -> Iterator[Int16Array]:
        """Yield the chunks, never an empty one."""

    @abstractmethod
    def close(self) -> None:
        """Release the file (idempotent)."""

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MediaDecoder(AudioSource):
    """Decode a file's first audio stream with PyAV, streamed.

    Packets of the audio stream are demuxed one at a time (other streams are
    skipped undecoded), decoded, then converted by PyAV's ``AudioResampler``
    (libswresample) to mono s16 at ``rate``: memory stays bounded by a few
    codec frames whatever the file's length. A packet the decoder calls
    invalid is skipped and counted, as ffmpeg does (junk between frames,
    concatenated files); a file where no packet decodes is an error.

    Attributes:
        skipped_packets: Packets skipped as invalid so far.

    Args:
        path: Any file PyAV reads.
        rate: The rate of the chunks; None keeps the file's own rate.

    Raises:
        MediaUnavailable: PyAV is not installed.
        MediaError: The file cannot be opened (PyAV's reason included).
        NoAudioStream: It has no audio stream.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int | None = None) -> None:
        _require_av(path, "decoding this file")
        self._path = os.fspath(path)
        self._container = _open_input(path)
        try:
            self._stream = _first_audio(self._container, path)
            self._info = _info(self._container, self._stream, self._path)
        except BaseException:
            self._container.close()
            raise
        self._rate = rate if rate is not None else self._info.sample_rate
        if self._rate <= 0:
            self._container.close()
            raise ValueError(f"rate must be positive, got {rate}")
        self._closed = False
        self.skipped_packets = 0

    @property
    def rate(self) -> int:
        return self._rate

    @property
    def info(self) -> MediaInfo:
        return self._info

    def __iter__(self) -> Iterator[Int16Array]:
        import av

        resampler: AudioResampler | None = None
        source_format: tuple[str, str, int] | None = None
        seconds = 0.0
        invalid: av.error.InvalidDataError | None = None
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError as exc:
                    self.skipped_packets += 1
                    invalid = exc
                    continue
                for frame in frames:
                    shape = (frame.format.name, frame.layout.name, frame.sample_rate)
                    if resampler is None or shape != source_format:
                        # A stream may change rate or layout midway (concatenated MP3s):
                        # the resampler is set up for one input shape.
                        if resampler is not None:
                            yield from _resampled(resampler, None)
                        resampler = av.AudioResampler(format="s16", layout="mono", rate=self._rate)
                        source_format = shape
                    seconds += frame.samples / frame.sample_rate
                    yield from _resampled(resampler, frame)
            if resampler is not None:
                yield from _resampled(resampler, None)
            elif invalid is not None:
                raise MediaError(self._path, f"no audio could be decoded: {self.skipped_packets} "
                                 f"invalid packets ({_pyav_says(invalid)})")
        except av.error.FFmpegError as exc:
            raise MediaError(
                self._path, f"decoding failed after {seconds:.2f} s ({_pyav_says(exc)})"
            ) from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._container.close()


def _resampled(resampler: AudioResampler, frame: AudioFrame | None) -> Iterator[Int16Array]:
    for out in resampler.resample(frame):
        if out.samples:
            yield np.array(out.to_ndarray(), dtype=np.int16).reshape(-1)


class PcmStreamReader(AudioSource):
    """Read WAV or headerless PCM16 from a binary stream (stdin, a pipe, a file) as it arrives.

    Reads take whatever bytes are there (``read1``), so a live pipe is
    decoded as it flows; memory holds one read. WAV goes through the core's
    ``WavStreamDecoder`` (PCM 8/16/24/32-bit, float, extensible; channels
    averaged); raw input is little-endian PCM16, ``channels`` interleaved.
    Both are resampled to ``rate`` by the core's ``Resampler``.

    Args:
        stream: A binary stream; left open unless ``owns_stream``.
        rate: The rate of the chunks; None keeps the input's own rate.
        raw_rate: The rate of headerless PCM16 input; None means the input
            must be WAV.
        channels: Interleaved channels of raw input.
        name: The stream's name in errors and ``info`` (e.g. ``"stdin"``).
        owns_stream: Close the stream in ``close``.

    Raises:
        ValueError: A rate or channel count that is not positive.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        rate: int | None = None,
        raw_rate: int | None = None,
        channels: int = 1,
        name: str = "stdin",
        owns_stream: bool = False,
    ) -> None:
        for label, value in (("rate", rate), ("raw_rate", raw_rate), ("channels", channels)):
            if value is not None and value <= 0:
                raise ValueError(f"{label} must be positive, got {value}")
        self._stream = stream
        self._out_rate = rate
        self._raw_rate = raw_rate
        self._channels = channels
        self._name = name
        self._owns = owns_stream
        self._read = getattr(stream, "read1", stream.read)
        self._info: MediaInfo | None = None
        self._wav: WavStreamDecoder | None = None
        self._first: Int16Array | None = None  # samples decoded while reading the header
        self._carry = b""  # a partial raw sample frame
        self._resampler: Resampler | None = None
        self._eof = False

    @property
    def rate(self) -> int:
        if self._out_rate is not None:
            return self._out_rate
        return self.read_header().sample_rate

    @property
    def info(self) -> MediaInfo:
        return self.read_header()

    def read_header(self) -> MediaInfo:
        """Read until the input's format is known (a WAV header; nothing for raw).

        Raises:
            MediaError: Not a WAV stream (when ``raw_rate`` is None), a WAV
                header in raw mode, or a header the decoder refuses.
        """
        if self._info is not None:
            return self._info
        head = b""
        while len(head) < _PROBE_BYTES and not self._eof:
            head += self._read_some()
        if self._raw_rate is not None:
            self._info = self._raw_info(head)
        else:
            self._info = self._wav_info(head)
        source_rate = self._info.sample_rate
        if self._out_rate is not None and self._out_rate != source_rate:
            self._resampler = Resampler(source_rate, self._out_rate)
        return self._info

    def _raw_info(self, head: bytes) -> MediaInfo:
        kind = sniff_header(head)
        if kind is not None:
            raise MediaError(
                self._name, f"starts with a header ({kind}); a sample rate for raw PCM "
                "does not apply to it (read it without one)"
            )
        assert self._raw_rate is not None
        self._carry = head
        return MediaInfo(self._name, "raw", "pcm_s16le", self._raw_rate, self._channels, None)

    def _wav_info(self, head: bytes) -> MediaInfo:
        kind = sniff_header(head)
        if kind != "WAV":
            what = f"{kind} input" if kind else f"not a WAV stream (starts with {head!r})"
            raise MediaError(self._name, f"{what}; a stream must be WAV, or headerless PCM16 "
                             "with its sample rate given")
        self._wav = WavStreamDecoder()
        pieces: list[Int16Array] = []
        data, total = head, len(head)
        try:
            while True:
                pieces.append(self._wav.feed(data))
                if self._wav.header_complete:
                    break
                if self._eof:
                    raise InvalidAudio(f"truncated WAV header: the stream ended after {total} "
                                       "bytes")
                data = self._read_some()
                total += len(data)
        except InvalidAudio as exc:
            raise MediaError(self._name, str(exc)) from exc
        self._first = np.concatenate(pieces) if pieces else None
        rate, channels = self._wav.sample_rate, self._wav.channels
        assert rate is not None and channels is not None
        return MediaInfo(self._name, "wav", "pcm", rate, channels, None)

    def _read_some(self) -> bytes:
        data = self._read(_READ_SIZE)
        if not data:
            self._eof = True
            return b""
        return bytes(data)

    def _decode(self, data: bytes) -> Int16Array:
        if self._wav is not None:
            try:
                return self._wav.feed(data)
            except InvalidAudio as exc:
                raise MediaError(self._name, str(exc)) from exc
        data = self._carry + data
        frame = 2 * self._channels
        usable = len(data) - len(data) % frame
        self._carry = data[usable:]
        samples = pcm16_view(data[:usable])
        if self._channels > 1:
            mean = samples.reshape(-1, self._channels).mean(axis=1)
            mono: Int16Array = np.rint(mean).astype(np.int16)
            return mono
        return samples

    def _convert(self, samples: Int16Array) -> Int16Array:
        if self._resampler is None:
            return samples
        return self._resampler.process(np.ascontiguousarray(samples, dtype=np.int16))

    def __iter__(self) -> Iterator[Int16Array]:
        self.read_header()
        pending = [self._first] if self._first is not None else []
        self._first = None
        if self._wav is None and self._carry:
            carry, self._carry = self._carry, b""
            pending.append(self._decode(carry))
        for samples in pending:
            out = self._convert(samples)
            if len(out):
                yield out
        while not self._eof:
            data = self._read_some()
            if data:
                out = self._convert(self._decode(data))
                if len(out):
                    yield out
        if self._resampler is not None:
            tail = self._resampler.flush()
            if len(tail):
                yield tail

    def close(self) -> None:
        if self._owns:
            self._stream.close()


def open_media(
    path: str | os.PathLike[str],
    rate: int | None,
    *,
    raw_rate: int | None = None,
    raw_channels: int = 1,
) -> AudioSource:
    """Open an input file for streamed decoding to mono int16 at ``rate``.

    Args:
        path: The file.
        rate: The rate of the chunks; None keeps the file's own rate.
        raw_rate: The file is headerless PCM16 at this rate (a file with a
            known header is then refused).
        raw_channels: Interleaved channels of a raw file.

    Returns:
        A ``MediaDecoder`` (PyAV) for any file when PyAV is installed, else a
        ``PcmStreamReader`` for WAV files. Raw files always use the latter.

    Raises:
        MediaError: Unreadable file (the OS's or PyAV's reason included), or a
            raw rate for a file with a header.
        NoAudioStream: No audio stream in the file.
        MediaUnavailable: PyAV is missing and the file is not WAV.
    """
    if raw_rate is None and media_available():
        return MediaDecoder(path, rate)
    try:
        file = open(path, "rb")  # noqa: SIM115 - owned by the reader
    except OSError as exc:
        raise MediaError(path, f"cannot be opened ({exc.strerror})") from exc
    if raw_rate is None:
        kind = sniff_header(file.read(_PROBE_BYTES))
        file.seek(0)
        if kind != "WAV":
            file.close()
            raise MediaUnavailable(path, f"decoding {kind or 'this'} file")
    try:
        reader = PcmStreamReader(file, rate=rate, raw_rate=raw_rate, channels=raw_channels,
                                 name=os.fspath(path), owns_stream=True)
        reader.read_header()
    except MediaError as exc:
        file.close()
        if raw_rate is not None:
            raise
        raise MediaError(path, f"{exc.reason} (PyAV reads more kinds of "
                         f"WAV and is not installed: {MEDIA_EXTRA})") from exc
    except BaseException:
        file.close()
        raise
    return reader


# --------------------------------------------------------------------------
# output paths
# --------------------------------------------------------------------------

# extension -> (PyAV container format, audio encoder, bit rate)
_AUDIO_OUTPUTS: dict[str, tuple[str, str, int | None]] = {
    ".flac": ("flac", "flac", None),
    ".mp3": ("mp3", "libmp3lame", 128_000),
    ".ogg": ("ogg", "libopus", 64_000),
    ".opus": ("ogg", "libopus", 64_000),
    ".m4a": ("ipod", "aac", 128_000),
}
_VIDEO_OUTPUTS: dict[str, tuple[str, str, int | None]] = {
    ".mp4": ("mp4", "aac", 128_000),
    ".mov": ("mov", "aac", 128_000),
    ".mkv": ("matroska", "libopus", 64_000),
    ".webm": ("webm", "libopus", 64_000),
}


@dataclass(frozen=True)
class OutputPlan:
    """A checked output path and how it will be written (from ``plan_output``).

    Attributes:
        path: The final file.
        kind: ``"wav"`` (no PyAV), ``"audio"`` (encoded by PyAV) or ``"video"``
            (a dubbed video).
        container: PyAV's muxer name (``"wav"`` for WAV).
        codec: The audio encoder (``"pcm_s16le"`` for WAV).
        bit_rate: The encoder's bit rate in bit/s, None for lossless.
        video_source: The input whose video stream is copied (``"video"`` only).
        audio_start_s: Where the audio starts on a dubbed video's timeline, in
            seconds: where the input's audio started.
    """

    path: Path
    kind: Literal["wav", "audio", "video"]
    container: str
    codec: str
    bit_rate: int | None = None
    video_source: Path | None = None
    audio_start_s: float = 0.0


def _allowed_extensions() -> str:
    return (f"one of {', '.join(AUDIO_EXTENSIONS)}, or {', '.join(VIDEO_EXTENSIONS)} "
            "for an input with a video stream")


def _check_not_directory(path: str | os.PathLike[str], target: Path) -> None:
    if os.fspath(path).endswith(("/", os.sep)) or target.is_dir():
        raise OutputPathError(path, "is a directory", "a file path (one input per output)")


def _check_folder(path: str | os.PathLike[str], target: Path) -> None:
    allowed = "a file path in an existing, writable folder"
    if target.exists() and not target.is_file():
        raise OutputPathError(path, "exists and is not a regular file", allowed)
    folder = target.parent
    if not folder.exists():
        raise OutputPathError(path, f"folder {os.fspath(folder)!r} does not exist", allowed)
    if not folder.is_dir():
        raise OutputPathError(path, f"{os.fspath(folder)!r} is not a folder", allowed)
    try:
        # Permissions alone do not tell (root, read-only mounts): create a file there.
        with tempfile.TemporaryFile(dir=folder, prefix=".s2s-write-test-"):
            pass
    except OSError as exc:
        raise OutputPathError(
            path, f"folder {os.fspath(folder)!r} is not writable ({exc.strerror})", allowed
        ) from exc


def plan_output(
    path: str | os.PathLike[str], *, source: MediaInfo | None = None
) -> OutputPlan:
    """Check an output path before anything is streamed, and choose how to write it.

    The extension (any case) picks the format: ``.wav`` PCM16, ``.flac``,
    ``.mp3``, ``.ogg``/``.opus`` (Opus in Ogg), ``.m4a`` (AAC); ``.mp4``/``.mov``
    (AAC) and ``.mkv``/``.webm`` (Opus) are dubbed videos of ``source``, whose
    video container must accept the source's video codec (checked by muxing
    a header in memory).

    Args:
        path: The output file.
        source: The probed input, required for a video output.

    Raises:
        OutputPathError: No or unknown extension, a directory, a missing or
            unwritable folder, an existing non-regular file, a video container
            without a video input or one that cannot hold its video codec.
        MediaUnavailable: The format needs PyAV, which is not installed.
    """
    target = Path(path)
    _check_not_directory(path, target)
    suffix = target.suffix.lower()
    if suffix not in OUTPUT_EXTENSIONS:
        reason = f"unknown extension {suffix!r}" if suffix else "has no extension"
        raise OutputPathError(path, reason, _allowed_extensions())
    _check_folder(path, target)
    if suffix == ".wav":
        return OutputPlan(target, "wav", "wav", "pcm_s16le")
    if suffix in _AUDIO_OUTPUTS:
        _require_av(path, f"writing {suffix} files")
        fmt, codec, bit_rate = _AUDIO_OUTPUTS[suffix]
        return OutputPlan(target, "audio", fmt, codec, bit_rate)
    if source is None or not source.has_video:
        what = "the input" if source is None else repr(source.path)
        raise OutputPathError(
            path, f"a {suffix} output is a dubbed video, and {what} has no video stream",
            f"an audio extension: {', '.join(AUDIO_EXTENSIONS)}",
        )
    _require_av(path, f"writing {suffix} files")
    fmt, codec, bit_rate = _VIDEO_OUTPUTS[suffix]
    accepting = [ext for ext in VIDEO_EXTENSIONS
                 if _muxer_accepts(source.path, *_VIDEO_OUTPUTS[ext][:2])]
    if suffix not in accepting:
        raise OutputPathError(
            path, f"a {suffix} file cannot hold the input's {source.video_codec} video "
            "without re-encoding it",
            ", ".join(accepting + list(AUDIO_EXTENSIONS)),
        )
    return OutputPlan(target, "video", fmt, codec, bit_rate, Path(source.path), source.start_s)


def _muxer_accepts(video_source: str, container: str, audio_codec: str) -> bool:
    """True when ``container`` takes the source's video stream and ``audio_codec``."""
    import av

    with _open_input(video_source) as src:
        video = _first_video(src)
        if video is None:
            return False
        out = av.open(io.BytesIO(), "w", format=container)
        try:
            out.add_stream_from_template(video)
            out.add_stream(audio_codec, rate=48_000, layout="mono")
            out.start_encoding()
        except (av.error.FFmpegError, ValueError):
            return False
        finally:
            with contextlib.suppress(av.error.FFmpegError):
                out.close()
    return True


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


class MediaWriter(ABC):
    """Write mono int16 chunks as they arrive; ``close`` finishes, ``abort`` discards.

    As a context manager: ``close`` on success, ``abort`` when the block raises.

    Attributes:
        rate: The rate of the chunks given to ``write``, in Hz.
        samples_written: Samples received by ``write`` so far.
    """

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.samples_written = 0

    @property
    def seconds_written(self) -> float:
        """Audio received so far, in seconds."""
        return self.samples_written / self.rate

    def write(self, pcm: npt.NDArray[np.generic]) -> None:
        """Append 1-D int16 mono samples at ``rate``.

        Raises:
            InvalidAudio: Not a 1-D int16 array.
            MediaError: The encoder or the disk failed.
        """
        samples = _check_chunk(pcm)
        if len(samples):
            self._write(samples)
            self.samples_written += len(samples)

    @abstractmethod
    def _write(self, samples: Int16Array) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Finish the output (flush encoders, fix sizes, publish the file)."""

    @abstractmethod
    def abort(self) -> None:
        """Stop and discard what was written (idempotent)."""

    def __enter__(self) -> MediaWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _PartFileWriter(MediaWriter):
    """Writes ``PATH.part`` and renames it to ``PATH`` once complete."""

    def __init__(self, path: str | os.PathLike[str], rate: int) -> None:
        super().__init__(rate)
        self.path = Path(path)
        self.part_path = self.path.with_name(self.path.name + ".part")
        self._done = False

    def close(self) -> None:
        if self._done:
            return
        try:
            self._finish()
            os.replace(self.part_path, self.path)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise MediaError(self.path, f"cannot be written ({exc})") from exc
            raise
        self._done = True

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._release()
        finally:
            self.part_path.unlink(missing_ok=True)

    @abstractmethod
    def _finish(self) -> None:
        """Flush and close everything so that the part file is complete."""

    @abstractmethod
    def _release(self) -> None:
        """Close everything without finishing (errors are swallowed)."""


class WavFileWriter(_PartFileWriter):
    """A 16-bit PCM mono WAV file, streamed: header first, sizes fixed at ``close``.

    No PyAV needed.

    Raises:
        MediaError: The part file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int) -> None:
        super().__init__(path, rate)
        try:
            self._file: BinaryIO = open(self.part_path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise MediaError(self.part_path, f"cannot be created ({exc.strerror})") from exc
        self._wav = WavStreamWriter(self._file, rate)

    def _write(self, samples: Int16Array) -> None:
        try:
            self._wav.write(samples)
        except OSError as exc:
            self.abort()
            raise MediaError(self.part_path, f"write failed ({exc.strerror})") from exc

    def _finish(self) -> None:
        with self._file:
            self._wav.close()

    def _release(self) -> None:
        self._file.close()


def _open_output(part_path: Path, container: str) -> OutputContainer:
    import av

    # flush_packets: each packet reaches the file as it is muxed, instead of in
    # blocks of 256 KB, so the part file always holds what was translated.
    return av.open(os.fspath(part_path), "w", format=container,
                   container_options={"flush_packets": "1"})


def _encoder_rate(codec_name: str, rate: int) -> int:
    """``rate`` if the encoder takes it, else the nearest higher rate it takes (or its highest)."""
    import av

    rates = av.codec.Codec(codec_name, "w").audio_rates
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r > rate]
    return min(higher) if higher else max(rates)


class _Encoder:
    """One audio encoder feeding one output stream: int16 chunks in, packets muxed.

    PyAV's ``encode`` converts the s16 mono frames to the encoder's sample
    format, rate and frame size by itself (an internal ``AudioResampler``).
    """

    def __init__(self, container: OutputContainer, codec: str, rate: int,
                 bit_rate: int | None, start_s: float = 0.0) -> None:
        import av

        self._container = container
        self._rate = rate
        stream = container.add_stream(codec, rate=_encoder_rate(codec, rate), layout="mono")
        if not isinstance(stream, av.AudioStream):
            raise ValueError(f"{codec} is not an audio encoder")
        self._stream = stream
        ctx = stream.codec_context
        if bit_rate is not None:
            ctx.bit_rate = bit_rate
        self._time_base = Fraction(1, rate)
        self._pts = round(start_s * rate)

    @property
    def end_s(self) -> float:
        """Time of the end of the audio given so far, on the output timeline."""
        return self._pts / self._rate

    def encode(self, samples: Int16Array) -> None:
        import av

        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.time_base = self._time_base
        frame.pts = self._pts
        self._pts += len(samples)
        self._container.mux(self._stream.encode(frame))

    def flush(self) -> None:
        self._container.mux(self._stream.encode(None))


class EncodedAudioWriter(_PartFileWriter):
    """An audio file encoded by PyAV as chunks arrive (FLAC, MP3, Opus in Ogg, AAC in M4A).

    The encoder runs at ``rate`` when it supports it, else at the nearest
    higher rate it does (Opus: 8/12/16/24/48 kHz).

    Args:
        path: The final file (its ``.part`` is written meanwhile).
        rate: The rate of the chunks.
        container: PyAV's muxer name (``OutputPlan.container``).
        codec: The encoder (``OutputPlan.codec``).
        bit_rate: Bits per second, or None for the encoder's default.

    Raises:
        MediaUnavailable: PyAV is not installed.
        MediaError: The part file or the encoder cannot be set up.
    """

    def __init__(self, path: str | os.PathLike[str], rate: int, *, container: str,
                 codec: str, bit_rate: int | None = None) -> None:
        super().__init__(path, rate)
        _require_av(path, f"writing {container} files")
        import av

        try:
            self._container = _open_output(self.part_path, container)
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(self.part_path, f"cannot be created ({_pyav_says(exc)})") from exc
        try:
            self._encoder = _Encoder(self._container, codec, rate, bit_rate)
        except (av.error.FFmpegError, ValueError) as exc:
            self._release()
            self.part_path.unlink(missing_ok=True)
            raise MediaError(path, f"{codec} encoder: {_pyav_says(exc)}") from exc

    def _write(self, samples: Int16Array) -> None:
        import av

        try:
            self._encoder.encode(samples)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise MediaError(self.path, f"encoding failed ({_pyav_says(exc)})") from exc

    def _finish(self) -> None:
        import av

        try:
            self._encoder.flush()
            self._container.close()
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"encoding failed ({_pyav_says(exc)})") from exc

    def _release(self) -> None:
        _close_quietly(self._container)


def _close_quietly(container: InputContainer | OutputContainer) -> None:
    import av

    with contextlib.suppress(av.error.FFmpegError, OSError):
        container.close()


class DubbedVideoWriter(_PartFileWriter):
    """A copy of a video whose audio track is the translation, written as it arrives.

    The first video stream of ``video_source`` is remuxed packet for packet
    (never re-encoded: the payloads are byte-identical), interleaved with the
    encoded audio as the audio advances: every video packet whose decoding
    time is reached by the audio is written. At ``close`` the audio is padded
    with silence to the end of the video when shorter (the video is never cut
    short); longer audio is kept whole. Other streams of the source (its own
    audio, subtitles) are left out.

    Args:
        path: The final file (its ``.part`` is written meanwhile).
        rate: The rate of the chunks.
        video_source: The input with the video stream.
        container: PyAV's muxer name (``OutputPlan.container``).
        codec: The audio encoder (``OutputPlan.codec``).
        bit_rate: Audio bits per second, or None for the encoder's default.
        audio_start_s: Where the first audio sample goes on the video's
            timeline (where the source's audio started).

    Raises:
        MediaUnavailable: PyAV is not installed.
        MediaError: The source has no video stream or the output cannot be set up.
    """

    _PAD_STEP_S = 1.0

    def __init__(self, path: str | os.PathLike[str], rate: int, *,
                 video_source: str | os.PathLike[str], container: str, codec: str,
                 bit_rate: int | None = None, audio_start_s: float = 0.0) -> None:
        super().__init__(path, rate)
        _require_av(path, f"writing {container} files")
        import av

        self._source = _open_input(video_source)
        video = _first_video(self._source)
        if video is None:
            self._source.close()
            raise MediaError(video_source, "has no video stream to copy")
        try:
            self._container = _open_output(self.part_path, container)
        except (av.error.FFmpegError, OSError) as exc:
            self._source.close()
            raise MediaError(self.part_path, f"cannot be created ({_pyav_says(exc)})") from exc
        try:
            self._video_out = self._container.add_stream_from_template(video)
            self._encoder = _Encoder(self._container, codec, rate, bit_rate, audio_start_s)
        except (av.error.FFmpegError, ValueError) as exc:
            self._release()
            self.part_path.unlink(missing_ok=True)
            raise MediaError(path, f"cannot be set up ({_pyav_says(exc)})") from exc
        self._packets: Iterator[Packet[VideoStream]] = self._source.demux(video)
        self._next: Packet[VideoStream] | None = None
        self._video_end_s = 0.0
        self._exhausted = False

    @property
    def video_written_s(self) -> float:
        """End of the video copied so far, in seconds of the video's timeline."""
        return self._video_end_s

    def _write(self, samples: Int16Array) -> None:
        import av

        try:
            self._encoder.encode(samples)
            self._copy_video(until_s=self._encoder.end_s)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise MediaError(self.path, f"muxing failed ({_pyav_says(exc)})") from exc

    def _peek(self) -> Packet[VideoStream] | None:
        """The next video packet to copy, or None once the source is exhausted."""
        while self._next is None and not self._exhausted:
            packet = next(self._packets, None)
            if packet is None:
                self._exhausted = True
            elif packet.dts is not None and packet.size:  # skip the demuxer's flush packet
                self._next = packet
        return self._next

    def _copy_video(self, until_s: float) -> None:
        """Write the video packets whose decoding time is at most ``until_s``."""
        while (packet := self._peek()) is not None:
            assert packet.dts is not None and packet.time_base is not None
            if float(packet.dts * packet.time_base) > until_s:
                return
            if packet.pts is not None:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                self._video_end_s = max(self._video_end_s, end)
            packet.stream = self._video_out
            self._container.mux(packet)
            self._next = None

    def _pad_to_video_end(self) -> None:
        """Silence after the translation until the last video packet is written and shown."""
        step = round(self._PAD_STEP_S * self.rate)
        while (packet := self._peek()) is not None:
            assert packet.dts is not None and packet.time_base is not None
            gap = float(packet.dts * packet.time_base) - self._encoder.end_s
            if gap > 0:
                self._encoder.encode(np.zeros(min(step, max(1, round(gap * self.rate))),
                                              dtype=np.int16))
            self._copy_video(until_s=self._encoder.end_s)
        missing = round((self._video_end_s - self._encoder.end_s) * self.rate)
        while missing > 0:
            count = min(step, missing)
            self._encoder.encode(np.zeros(count, dtype=np.int16))
            missing -= count

    def _finish(self) -> None:
        import av

        try:
            self._pad_to_video_end()
            self._encoder.flush()
            self._container.close()
        except av.error.FFmpegError as exc:
            raise MediaError(self.path, f"muxing failed ({_pyav_says(exc)})") from exc
        finally:
            self._source.close()

    def _release(self) -> None:
        _close_quietly(self._container)
        _close_quietly(self._source)


class WavStdoutWriter(MediaWriter):
    """WAV in its streamed form (both sizes 0xFFFFFFFF) written to a binary stream.

    The header goes out at once and every chunk is flushed as it comes, so a
    reader downstream (``| ffplay -``) gets the audio as it is translated.
    The stream is flushed, not closed, at the end.

    Args:
        stream: A binary stream, e.g. ``sys.stdout.buffer``.
        rate: The rate of the chunks.
    """

    def __init__(self, stream: BinaryIO, rate: int) -> None:
        super().__init__(rate)
        self._stream = stream
        self._done = False
        stream.write(wav_header(rate))
        stream.flush()

    def _write(self, samples: Int16Array) -> None:
        self._stream.write(samples.tobytes())
        self._stream.flush()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self._stream.flush()

    def abort(self) -> None:
        self._done = True


def open_output(plan: OutputPlan, rate: int) -> MediaWriter:
    """Start writing the output chosen by ``plan_output`` (creates ``PATH.part``).

    Args:
        plan: The checked output.
        rate: The rate of the chunks that will be written (the service's
            output rate).

    Raises:
        MediaUnavailable: The format needs PyAV, which is not installed.
        MediaError: The file or the encoder cannot be set up.
    """
    if plan.kind == "wav":
        return WavFileWriter(plan.path, rate)
    if plan.kind == "audio":
        return EncodedAudioWriter(plan.path, rate, container=plan.container, codec=plan.codec,
                                  bit_rate=plan.bit_rate)
    assert plan.video_source is not None
    return DubbedVideoWriter(plan.path, rate, video_source=plan.video_source,
                             container=plan.container, codec=plan.codec,
                             bit_rate=plan.bit_rate, audio_start_s=plan.audio_start_s)
