"""WAV files: read a whole file, decode a stream, write a file or a stream (PCM16 out).

Reads PCM 8/16/24/32-bit, IEEE float 32/64-bit and WAVE_FORMAT_EXTENSIBLE
wrapping either; writes 16-bit PCM. No I/O besides the file objects handed
to the writers.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from ._pcm import _LE_INT16, AudioInput, _downmix, float_to_int16, to_pcm16
from .errors import InvalidAudio

__all__ = ["WavAudio", "WavStreamDecoder", "WavStreamWriter", "read_wav", "wav_header",
           "write_wav"]

_TAG_PCM = 1
_TAG_FLOAT = 3
_TAG_EXTENSIBLE = 0xFFFE
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
_STREAMING_SIZES = (0, 0xFFFFFFFF)
_MAX_WAV_HEADER = 1 << 20
_MAX_WAV_DATA = 0xFFFFFFFF - 36 - 1


@dataclass(frozen=True, eq=False)
class WavAudio:
    """A decoded WAV file.

    Attributes:
        samples: int16 samples, 1-D for mono, shaped (n, channels) otherwise.
        sample_rate: Samples per second per channel.
        channels: Number of channels.
        bits_per_sample: The file's sample size before conversion to int16.
    """

    samples: npt.NDArray[np.int16]
    sample_rate: int
    channels: int
    bits_per_sample: int

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return len(self.samples) / self.sample_rate

    def mono(self) -> npt.NDArray[np.int16]:
        """The samples as mono (channels averaged)."""
        return self.samples if self.samples.ndim == 1 else _downmix(self.samples)


@dataclass(frozen=True)
class _WavHeader:
    tag: int
    channels: int
    sample_rate: int
    bits: int
    data_offset: int
    data_size: int | None  # None: until the end of the stream

    @property
    def frame_size(self) -> int:
        return self.channels * (self.bits // 8)


def _parse_fmt(body: bytes) -> tuple[int, int, int, int]:
    """Return (tag, channels, sample_rate, bits) of a fmt chunk body, validated."""
    if len(body) < 16:
        raise InvalidAudio(f"WAV fmt chunk too short: {len(body)} bytes, need 16")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
    if tag == _TAG_EXTENSIBLE:
        if len(body) < 40:
            raise InvalidAudio(
                f"WAVE_FORMAT_EXTENSIBLE fmt chunk too short: {len(body)} bytes, need 40"
            )
        sub = body[24:40]
        if sub[2:] != _GUID_TAIL:
            raise InvalidAudio(f"unsupported WAVE_FORMAT_EXTENSIBLE sub-format {sub.hex()}")
        tag = struct.unpack_from("<H", sub)[0]
    if tag == _TAG_PCM:
        if bits not in (8, 16, 24, 32):
            raise InvalidAudio(f"unsupported WAV PCM sample size {bits} bits; expected 8/16/24/32")
    elif tag == _TAG_FLOAT:
        if bits not in (32, 64):
            raise InvalidAudio(f"unsupported WAV float sample size {bits} bits; expected 32/64")
    else:
        raise InvalidAudio(
            f"unsupported WAV format tag {tag:#06x}; expected PCM (1), float (3) or extensible"
        )
    if channels < 1:
        raise InvalidAudio("WAV header declares 0 channels")
    if rate < 1:
        raise InvalidAudio("WAV header declares a sample rate of 0")
    return tag, channels, rate, bits


def _parse_wav_header(data: bytes | bytearray | memoryview, *, final: bool) -> _WavHeader | None:
    """Parse a WAV header up to and including the data chunk header.

    Returns None when more bytes are needed and ``final`` is False.

    Raises:
        InvalidAudio: Not RIFF/WAVE, a bad fmt chunk, or (when ``final``) a
            truncated header.
    """
    size = len(data)
    head = bytes(data[:12])
    if head[:4] != b"RIFF"[: len(head[:4])] or (len(head) == 12 and head[8:12] != b"WAVE"):
        raise InvalidAudio(f"not a WAV file: starts with {head!r}, expected b'RIFF....WAVE'")

    def need(what: str) -> None:
        if final:
            raise InvalidAudio(f"truncated WAV header: {what} missing ({size} bytes in total)")
        if size > _MAX_WAV_HEADER:
            raise InvalidAudio(
                f"WAV header larger than {_MAX_WAV_HEADER} bytes before the data chunk"
            )

    if size < 12:
        need("RIFF/WAVE preamble")
        return None
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while True:
        if pos + 8 > size:
            need("chunk header" if fmt is not None else "fmt chunk")
            return None
        chunk_id = bytes(data[pos : pos + 4])
        chunk_size = struct.unpack_from("<I", data, pos + 4)[0]
        if chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio("WAV data chunk comes before the fmt chunk")
            tag, channels, rate, bits = fmt
            return _WavHeader(
                tag, channels, rate, bits, pos + 8,
                None if chunk_size in _STREAMING_SIZES else chunk_size,
            )
        end = pos + 8 + chunk_size
        if chunk_id == b"fmt ":
            if end > size:
                need("end of the fmt chunk")
                return None
            fmt = _parse_fmt(bytes(data[pos + 8 : end]))
        pos = end + (chunk_size & 1)  # chunks are padded to even sizes


def _decode_wav_samples(
    data: bytes | memoryview, tag: int, bits: int
) -> npt.NDArray[np.int16]:
    """Convert interleaved WAV sample bytes (whole samples) to int16, same layout."""
    if tag == _TAG_FLOAT:
        floats = np.frombuffer(data, dtype="<f4" if bits == 32 else "<f8")
        return float_to_int16(floats)
    raw = np.frombuffer(data, dtype=np.uint8)
    if bits == 8:
        return ((raw.astype(np.int16) - 128) << 8).astype(np.int16)
    width = bits // 8
    # Keeping the top two bytes of each little-endian sample is an arithmetic
    # shift right by 8*(width-2): it truncates toward -inf, no rounding.
    top = raw.reshape(-1, width)[:, width - 2 :]
    return np.ascontiguousarray(top).view(_LE_INT16).reshape(-1).astype(np.int16)


def read_wav(data: bytes | bytearray | memoryview) -> WavAudio:
    """Decode a whole WAV file held in memory.

    Supports PCM (tag 1) 8/16/24/32-bit, IEEE float (tag 3) 32/64-bit, and
    WAVE_FORMAT_EXTENSIBLE wrapping either, any channel count. Unknown chunks
    are skipped. 24/32-bit samples are reduced to 16 bits by an arithmetic
    shift (truncation toward -inf); floats go through ``float_to_int16``.
    A data size of 0 or 0xFFFFFFFF (streaming writers) means "to the end";
    a trailing partial frame is dropped.

    Raises:
        InvalidAudio: Not RIFF/WAVE, unsupported encoding, truncated header.
    """
    view = memoryview(data).cast("B")
    header = _parse_wav_header(view, final=True)
    assert header is not None
    end = len(view) if header.data_size is None else header.data_offset + header.data_size
    body = view[header.data_offset : min(end, len(view))]
    frame = header.frame_size
    body = body[: len(body) - len(body) % frame]
    samples = _decode_wav_samples(body, header.tag, header.bits)
    if header.channels > 1:
        samples = samples.reshape(-1, header.channels)
    return WavAudio(samples, header.sample_rate, header.channels, header.bits)


class WavStreamDecoder:
    """Incremental WAV decoder: bytes in, int16 mono samples out.

    The header is buffered until it is complete (up to and including the data
    chunk header); then sample bytes are decoded as they arrive, partial
    frames are carried to the next ``feed``, channels are averaged to mono.
    Bytes after the end of a sized data chunk are ignored.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header: _WavHeader | None = None
        self._remaining: int | None = None

    @property
    def sample_rate(self) -> int | None:
        """The header's sample rate, or None until the header is parsed."""
        return None if self._header is None else self._header.sample_rate

    @property
    def channels(self) -> int | None:
        """The header's channel count, or None until the header is parsed."""
        return None if self._header is None else self._header.channels

    @property
    def header_complete(self) -> bool:
        """True once the header has been parsed."""
        return self._header is not None

    @property
    def pending_bytes(self) -> int:
        """Bytes buffered: an incomplete header or a partial sample frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
        """Add bytes of the stream; return the mono samples they complete.

        Raises:
            InvalidAudio: The header is not a supported WAV header.
        """
        if self._header is None:
            self._buffer += chunk
            header = _parse_wav_header(self._buffer, final=False)
            if header is None:
                return np.empty(0, dtype=np.int16)
            self._header = header
            self._remaining = header.data_size
            data: bytes | bytearray | memoryview = bytes(self._buffer[header.data_offset :])
            self._buffer.clear()
        else:
            data = chunk
        header = self._header
        if self._remaining is not None:
            data = memoryview(data).cast("B")[: self._remaining]
            self._remaining -= len(data)
        self._buffer += data
        usable = len(self._buffer) - len(self._buffer) % header.frame_size
        if usable == 0:
            return np.empty(0, dtype=np.int16)
        samples = _decode_wav_samples(bytes(self._buffer[:usable]), header.tag, header.bits)
        del self._buffer[:usable]
        if header.channels > 1:
            return _downmix(samples.reshape(-1, header.channels))
        return samples


def wav_header(sample_rate: int, *, channels: int = 1, data_size: int | None = None) -> bytes:
    """Build a 44-byte header of a 16-bit PCM WAV file.

    Args:
        sample_rate: Samples per second.
        channels: Channel count.
        data_size: Bytes of sample data; None writes 0xFFFFFFFF in the RIFF
            and data sizes, the convention for streams of unknown length.

    Raises:
        InvalidAudio: ``data_size`` does not fit a WAV file (4 GiB).
    """
    if data_size is None:
        riff_size = data_chunk = 0xFFFFFFFF
    else:
        if not 0 <= data_size <= _MAX_WAV_DATA:
            raise InvalidAudio(f"WAV data size {data_size} does not fit in a WAV file")
        riff_size = 36 + data_size + (data_size & 1)
        data_chunk = data_size
    block = channels * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", riff_size, b"WAVE",
        b"fmt ", 16, _TAG_PCM, channels, sample_rate, sample_rate * block, block, 16,
        b"data", data_chunk,
    )


def _interleaved_pcm16(audio: AudioInput, channels: int, downmix: bool) -> bytes:
    """PCM16 bytes of mono audio, or of an (n, channels) or (channels, n) array interleaved."""
    if isinstance(audio, np.ndarray) and audio.ndim == 2 and channels > 1 and (
            channels in audio.shape):
        # The writer knows the channel count: a square array is read (n, channels).
        if audio.shape[1] != channels:
            audio = audio.T
        if audio.dtype.kind == "f":
            return np.asarray(float_to_int16(audio), dtype=_LE_INT16).tobytes()
        if audio.dtype.kind != "i" or audio.dtype.itemsize != 2:
            raise InvalidAudio(f"unsupported audio dtype {audio.dtype}")
        return np.asarray(audio, dtype=_LE_INT16).tobytes()
    return to_pcm16(audio, downmix=downmix)


def write_wav(
    path_or_file: str | os.PathLike[str] | BinaryIO,
    pcm16: AudioInput,
    sample_rate: int,
    *,
    channels: int = 1,
    downmix: bool = False,
) -> None:
    """Write a 16-bit PCM WAV file with exact sizes.

    Args:
        path_or_file: A path, or a binary file object (left open).
        pcm16: PCM16 bytes (interleaved when ``channels`` > 1) or any array
            ``to_pcm16`` accepts; an (n, channels) or (channels, n) array
            keeps its channels.
        sample_rate: Samples per second.
        channels: Channel count of the data.
        downmix: With ``channels=1``, average a 2-D array's channels instead
            of refusing it.
    """
    data = _interleaved_pcm16(pcm16, channels, downmix)
    blob = wav_header(sample_rate, channels=channels, data_size=len(data)) + data
    if len(data) & 1:
        blob += b"\x00"
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "wb") as file:
            file.write(blob)
    else:
        path_or_file.write(blob)


class WavStreamWriter:
    """Write a 16-bit PCM WAV file incrementally.

    The header goes out first with streaming sizes (0xFFFFFFFF); ``close``
    patches the real sizes when the file is seekable. The file object is not
    closed. Also a context manager.
    """

    def __init__(self, file: BinaryIO, sample_rate: int, *, channels: int = 1) -> None:
        self._file = file
        self._channels = channels
        self._sample_rate = sample_rate
        self._start = file.tell() if file.seekable() else None
        self._data_size = 0
        self._closed = False
        file.write(wav_header(sample_rate, channels=channels))

    @property
    def data_size(self) -> int:
        """Bytes of sample data written so far."""
        return self._data_size

    def write(self, pcm16: AudioInput, *, downmix: bool = False) -> None:
        """Append samples (same forms and ``downmix`` as ``write_wav``)."""
        if self._closed:
            raise ValueError("WavStreamWriter is closed")
        data = _interleaved_pcm16(pcm16, self._channels, downmix)
        self._file.write(data)
        self._data_size += len(data)

    def close(self) -> None:
        """Patch the sizes in the header if the file is seekable (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._start is None or self._data_size > _MAX_WAV_DATA:
            return
        if self._data_size & 1:
            self._file.write(b"\x00")
        end = self._file.tell()
        self._file.seek(self._start)
        self._file.write(wav_header(self._sample_rate, channels=self._channels,
                                    data_size=self._data_size))
        self._file.seek(end)

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
