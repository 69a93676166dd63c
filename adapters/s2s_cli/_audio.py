"""Audio of the ``s2s`` command between media files and the wire.

Input: an ``AudioSource`` of ``_media`` (mono int16 at the wire rate) becomes
pieces of the wire input format, pulled a batch at a time (``InputPieces``:
blocking, for a worker thread). Output: the wire output format becomes mono
int16 (``OutputDecoder``) handed to a ``MediaWriter`` opened once the rate is
known (``OutputSink``). No network and no printing here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from s2s_core.audio import WavStreamDecoder, decode_raw, encode_raw, wav_header
from s2s_core.errors import InvalidAudio
from s2s_core.formats import FORMAT_NAMES, AudioFormat, Codec, Direction, lookup_format

from ._media import (
    AudioSource,
    MediaInfo,
    MediaWriter,
    OutputPlan,
    PcmStreamReader,
    WavStdoutWriter,
    open_media,
    open_output,
)

__all__ = [
    "CLI_FORMATS",
    "RATE_RANGE",
    "STDIO",
    "CliError",
    "InputPieces",
    "InputSpec",
    "OutputDecoder",
    "OutputSink",
    "UsageError",
    "open_source",
    "wire_rate",
]

Int16Array = npt.NDArray[np.int16]

CLI_FORMATS: tuple[str, ...] = tuple(name for name in FORMAT_NAMES if name != "opus")
"""Wire formats the command can encode and decode (it has no Opus codec)."""

RATE_RANGE = (8000, 192000)
"""Sample rates accepted for raw PCM input, in Hz (inclusive)."""

STDIO = "-"
"""The name that means stdin (as INPUT) or stdout (as ``-o``)."""

_BATCH_S = 0.5  # audio decoded per pull from a file: few thread hops, little memory


class CliError(Exception):
    """A failure explained to the user in one line, with its exit code."""

    exit_code = 1


class UsageError(CliError):
    """A problem with the command line or the input files (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class InputSpec:
    """One checked input: a media file, a raw PCM file, or stdin.

    Attributes:
        name: As the user typed it (``"-"`` for stdin).
        path: The file, or None for stdin.
        raw_rate: The rate of headerless PCM16 (``--rate``), else None.
        info: What the input holds; for stdin, known once its header was read.
        stdin: The reader of stdin, opened (and its header read) while checking.
    """

    name: str
    path: Path | None
    raw_rate: int | None
    info: MediaInfo | None
    stdin: PcmStreamReader | None = None

    @property
    def is_pipe(self) -> bool:
        """True for stdin: read as it arrives, never paced."""
        return self.path is None

    @property
    def duration_s(self) -> float | None:
        """The input's duration when its header says it."""
        return None if self.info is None else self.info.duration_s


def wire_rate(input_format: str, source_rate: int | None) -> int | None:
    """The rate to decode to: the format's own, or the source's for ``wav`` (None: its own)."""
    fmt = lookup_format(input_format, Direction.INPUT)
    return fmt.sample_rate if fmt.sample_rate is not None else source_rate


def open_source(spec: InputSpec, input_format: str) -> AudioSource:
    """Open ``spec`` for decoding at the wire rate of ``input_format``.

    Raises:
        MediaError: The file cannot be read any more (moved, changed since checked).
    """
    rate = wire_rate(input_format, None)
    if spec.stdin is not None:
        return spec.stdin
    assert spec.path is not None
    return open_media(spec.path, rate, raw_rate=spec.raw_rate)


class _WireEncoder:
    """Mono int16 samples -> bytes of the input format (a streamed WAV header first)."""

    def __init__(self, fmt: AudioFormat, rate: int) -> None:
        if not (fmt.is_raw or fmt.codec is Codec.WAV):
            raise UsageError(f"--input-format {fmt.name}: the s2s command cannot encode it; "
                             f"use one of {', '.join(CLI_FORMATS)}")
        self._fmt = fmt
        self._header = wav_header(rate) if fmt.codec is Codec.WAV else b""

    def encode(self, samples: Int16Array) -> bytes:
        if self._fmt.is_raw:
            data = encode_raw(samples, self._fmt)
        else:
            data = samples.astype("<i2", copy=False).tobytes()
        if self._header:
            data, self._header = self._header + data, b""
        return data


class InputPieces:
    """The input in pieces of the wire format, decoded on demand (blocking calls).

    Each ``next_piece`` decodes about half a second of a file (one read of a
    pipe, so that live input is not held back), so memory holds one piece
    whatever the input's length. The ``wav`` format cannot get trailing
    silence from the client (it appends it to raw formats only): it is added
    here, as samples before the stream ends.

    Args:
        source: The decoder, at the wire rate.
        input_format: The wire input format.
        live: Hand out each read as it comes (pipes).
        wav_trailing_s: Silence appended for the ``wav`` format.
    """

    def __init__(self, source: AudioSource, input_format: str, *, live: bool,
                 wav_trailing_s: float) -> None:
        fmt = lookup_format(input_format, Direction.INPUT)
        self.rate = source.rate
        self._encoder = _WireEncoder(fmt, self.rate)
        self._source = source
        self._chunks = iter(source)
        self._batch = 1 if live else max(1, round(_BATCH_S * self.rate))
        self._tail = round(wav_trailing_s * self.rate) if fmt.codec is Codec.WAV else 0
        self.samples_read = 0
        self._done = False

    @property
    def seconds_read(self) -> float:
        """Seconds of the input decoded so far (without appended silence)."""
        return self.samples_read / self.rate

    def next_piece(self) -> bytes | None:
        """The next piece of wire bytes, or None at the end of the input.

        Raises:
            MediaError: The input cannot be decoded further.
        """
        if self._done:
            return None
        pieces: list[Int16Array] = []
        count = 0
        while count < self._batch:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                if self._tail:
                    pieces.append(np.zeros(self._tail, dtype=np.int16))
                break
            pieces.append(chunk)
            count += len(chunk)
        self.samples_read += count
        if not pieces:
            return None
        samples = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return self._encoder.encode(samples)

    def close(self) -> None:
        """Release the input (idempotent)."""
        self._done = True
        self._source.close()


class OutputDecoder:
    """Bytes of the wire output format -> mono int16 samples, and their rate.

    Args:
        output_format: The setup's output format.

    Raises:
        UsageError: A format the command cannot decode (opus).
    """

    def __init__(self, output_format: str) -> None:
        self.format = lookup_format(output_format, Direction.OUTPUT)
        if not (self.format.is_raw or self.format.codec is Codec.WAV):
            raise UsageError(f"--output-format {self.format.name}: the s2s command cannot "
                             f"decode it; use one of {', '.join(CLI_FORMATS)}")
        self._wav = WavStreamDecoder() if self.format.codec is Codec.WAV else None
        self._odd = b""
        self.rate: int | None = self.format.sample_rate

    def start(self, ready_sample_rate: int | None) -> None:
        """Take ``ready.sample_rate``: the authority for plain ``pcm`` output."""
        if self.format.name == "pcm" and ready_sample_rate:
            self.rate = ready_sample_rate

    def decode(self, data: bytes) -> Int16Array:
        """The samples in one chunk of output (a partial sample is kept for the next).

        Raises:
            CliError: The server sent a WAV stream that cannot be decoded.
        """
        if self._wav is not None:
            try:
                samples = self._wav.feed(data)
            except InvalidAudio as exc:
                raise CliError(f"the server sent bad WAV audio: {exc}") from None
            if self._wav.sample_rate is not None:
                self.rate = self._wav.sample_rate
            return samples
        if self.format.bytes_per_sample == 2:
            data = self._odd + data
            usable = len(data) & ~1
            self._odd = data[usable:]
            data = data[:usable]
        return decode_raw(data, self.format)


class OutputSink:
    """Where the translation goes: a checked file (``.part`` until closed) or stdout.

    The writer is opened with the first samples (their rate is the output's),
    so a run that fails before any audio leaves nothing behind. As a context
    manager: ``abort`` unless ``close`` was called.

    Args:
        plan: The checked output file, or None for stdout (streamed WAV).
    """

    def __init__(self, plan: OutputPlan | None) -> None:
        self.plan = plan
        self._writer: MediaWriter | None = None
        self._closed = False

    @property
    def name(self) -> str:
        """The output as people know it."""
        return STDIO if self.plan is None else str(self.plan.path)

    @property
    def rate(self) -> int | None:
        """The rate of the output, once it is open."""
        return None if self._writer is None else self._writer.rate

    @property
    def seconds(self) -> float:
        """Audio written so far."""
        return 0.0 if self._writer is None else self._writer.seconds_written

    def write(self, samples: Int16Array, rate: int) -> None:
        """Append samples at ``rate`` (the same rate every time)."""
        if not len(samples):
            return
        self._open(rate).write(samples)

    def close(self, rate: int | None) -> None:
        """Finish the output; an output without audio is written empty at ``rate``."""
        if self._writer is None:
            self._open(rate or 48000)
        assert self._writer is not None
        self._writer.close()
        self._closed = True

    def abort(self) -> None:
        """Discard the output (removes the ``.part`` file)."""
        if self._writer is not None and not self._closed:
            self._closed = True
            self._writer.abort()

    def _open(self, rate: int) -> MediaWriter:
        if self._writer is None:
            if self.plan is None:
                stdout: BinaryIO = sys.stdout.buffer
                self._writer = WavStdoutWriter(stdout, rate)
            else:
                self._writer = open_output(self.plan, rate)
        return self._writer

    def __enter__(self) -> OutputSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._closed:
            self.abort()
