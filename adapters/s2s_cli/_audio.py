"""Audio files of the ``s2s`` command: the input to send, the WAV file to write.

No network and no printing here: problems a person must fix are raised as
``UsageError`` (exit code 2) with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from s2s_core.audio import (
    WavStreamDecoder,
    WavStreamWriter,
    decode_raw,
    encode_raw,
    read_wav,
    resample,
    wav_header,
)
from s2s_core.audio_input import Chunk
from s2s_core.errors import InvalidAudio
from s2s_core.formats import (
    FORMAT_NAMES,
    FRAME_SECONDS,
    AudioFormat,
    Codec,
    Direction,
    lookup_format,
)

__all__ = ["CLI_FORMATS", "CliError", "InputAudio", "OutputWav", "UsageError", "load_input"]

CLI_FORMATS: tuple[str, ...] = tuple(name for name in FORMAT_NAMES if name != "opus")
"""Formats the command can encode and decode (it has no Opus codec)."""


class CliError(Exception):
    """A failure explained to the user in one line, with its exit code."""

    exit_code = 1


class UsageError(CliError):
    """A problem with the command line or the input files (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class InputAudio:
    """The whole input, already in the wire input format.

    Attributes:
        format: The input format it is encoded in.
        data: The bytes to send (speech then trailing silence; a complete
            file for the wav format).
        speech_s: Duration of the file's audio.
        total_s: Duration of everything sent (speech + trailing silence).
        source: What was read, for people (e.g. "WAV, 22050 Hz, mono, 16-bit").
        from_wav: True when the input file was a WAV file.
    """

    format: AudioFormat
    data: bytes
    speech_s: float
    total_s: float
    source: str
    from_wav: bool

    def chunks(self) -> Iterator[Chunk]:
        """The data in 80 ms pieces, each with the audio time it holds."""
        per_second = len(self.data) / self.total_s if self.total_s else 0.0
        size = max(1, round(per_second * FRAME_SECONDS))
        if self.format.bytes_per_sample is not None:
            size -= size % self.format.bytes_per_sample
        for start in range(0, len(self.data), size):
            piece = self.data[start:start + size]
            yield Chunk(piece, len(piece) / per_second)


def load_input(path: Path, input_format: str, *, raw_rate: int | None,
               trailing_silence_s: float) -> InputAudio:
    """Read a WAV file (any rate, channels, 16/24/32-bit or float) or raw PCM16.

    The audio is mixed to mono, resampled to the format's rate (a wav input
    keeps the file's rate), followed by ``trailing_silence_s`` of silence,
    and encoded.

    Raises:
        UsageError: Missing or unreadable file, not a WAV file without
            ``raw_rate``, no audio in it.
    """
    blob = _read_file(path)
    samples, rate, source = _decode_input(path, blob, raw_rate)
    if len(samples) == 0:
        raise UsageError(f"{path} holds no audio")
    fmt = lookup_format(input_format, Direction.INPUT)
    if fmt.sample_rate is not None and fmt.sample_rate != rate:
        samples = resample(samples, rate, fmt.sample_rate)
        rate = fmt.sample_rate
    speech_s = len(samples) / rate
    silence = np.zeros(round(trailing_silence_s * rate), dtype=np.int16)
    samples = np.concatenate((samples, silence))
    return InputAudio(format=fmt, data=_encode(samples, rate, fmt), speech_s=speech_s,
                      total_s=len(samples) / rate, source=source,
                      from_wav=blob[:4] == b"RIFF")


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"input is a directory, not an audio file: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


def _decode_input(path: Path, blob: bytes,
                  raw_rate: int | None) -> tuple[npt.NDArray[np.int16], int, str]:
    """Mono int16 samples, their rate, and a description of the source."""
    if blob[:4] == b"RIFF":
        try:
            wav = read_wav(blob)
        except InvalidAudio as exc:
            raise UsageError(f"{path} is not a usable WAV file: {exc}") from None
        layout = "mono" if wav.channels == 1 else f"{wav.channels} channels mixed to mono"
        source = f"WAV, {wav.sample_rate} Hz, {layout}, {wav.bits_per_sample}-bit"
        return wav.mono(), wav.sample_rate, source
    if raw_rate is None:
        raise UsageError(f"{path} is not a WAV file (no RIFF header); "
                         "for raw 16-bit PCM input pass --rate HZ")
    if len(blob) % 2:
        raise UsageError(f"{path} is not raw 16-bit PCM: it has an odd number of bytes")
    samples = np.frombuffer(blob, dtype="<i2").astype(np.int16)
    return samples, raw_rate, f"raw PCM16, {raw_rate} Hz, mono"


def _encode(samples: npt.NDArray[np.int16], rate: int, fmt: AudioFormat) -> bytes:
    if fmt.is_raw:
        return encode_raw(samples, fmt)
    if fmt.codec is Codec.WAV:
        data = samples.astype("<i2").tobytes()
        return wav_header(rate, data_size=len(data)) + data
    raise UsageError(f"the s2s command cannot encode {fmt.name} audio; "
                     f"use one of {', '.join(CLI_FORMATS)}")


class OutputWav:
    """The output audio, decoded to PCM16 and written as a mono WAV file.

    Writes to a hidden temporary file beside the target and renames it on
    ``commit``; a failed run leaves no partial file (the context manager
    discards it unless committed).
    """

    def __init__(self, path: Path, output_format: str) -> None:
        self.path = path
        self.format = lookup_format(output_format, Direction.OUTPUT)
        if not (self.format.is_raw or self.format.codec is Codec.WAV):
            raise UsageError(f"the s2s command cannot decode {self.format.name} audio; "
                             f"use one of {', '.join(CLI_FORMATS)}")
        self._partial = path.with_name(f".{path.name}.part")
        try:
            self._file: BinaryIO = open(self._partial, "wb")  # noqa: SIM115 (closed in commit)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._writer: WavStreamWriter | None = None
        self._wav = WavStreamDecoder() if self.format.codec is Codec.WAV else None
        self._odd = b""
        self._rate: int | None = None
        self.samples = 0
        self.committed = False

    @property
    def sample_rate(self) -> int | None:
        """Rate of the file being written, once known."""
        return self._rate

    @property
    def seconds(self) -> float:
        """Duration written so far."""
        return self.samples / self._rate if self._rate else 0.0

    def start(self, ready_sample_rate: int | None) -> None:
        """Fix the rate: ``ready.sample_rate`` for PCM output, else the format's."""
        if self.format.codec is Codec.PCM16 and ready_sample_rate:
            self._open(ready_sample_rate)
        elif self.format.is_raw and self.format.sample_rate is not None:
            self._open(self.format.sample_rate)

    def write(self, data: bytes) -> None:
        """Append one chunk of output audio in the output format."""
        if self._wav is not None:
            try:
                samples = self._wav.feed(data)
            except InvalidAudio as exc:
                raise CliError(f"the server sent bad WAV audio: {exc}") from None
            if self._writer is None and self._wav.sample_rate is not None:
                self._open(self._wav.sample_rate)
        else:
            if self.format.bytes_per_sample == 2:
                data = self._odd + data
                self._odd = data[len(data) & ~1:]
                data = data[:len(data) & ~1]
            samples = decode_raw(data, self.format)
        if len(samples):
            if self._writer is None:
                self._open(self.format.sample_rate or 48000)
            assert self._writer is not None
            self._writer.write(samples)
            self.samples += len(samples)

    def commit(self) -> None:
        """Finish the file and move it into place."""
        if self._writer is None:
            self._open(self._rate or self.format.sample_rate or 48000)
        assert self._writer is not None
        self._writer.close()
        self._file.close()
        os.replace(self._partial, self.path)
        self.committed = True

    def discard(self) -> None:
        """Close and delete the partial file."""
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def _open(self, rate: int) -> None:
        if self._writer is None:
            self._rate = rate
            self._writer = WavStreamWriter(self._file, rate)

    def __enter__(self) -> OutputWav:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.committed:
            self.discard()
