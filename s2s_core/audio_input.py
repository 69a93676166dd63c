"""Turning what a user hands us (bytes, arrays, iterables) into paced 80 ms chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ._pcm import channels_last, check_array, float_to_int16, mono_samples
from ._resample import Resampler
from ._riff import MAX_WAV_HEADER, locate_wav_data
from .audio import read_wav, to_pcm16
from .errors import InvalidAudio
from .formats import FRAME_SECONDS, AudioFormat, Codec, Direction, lookup_format
from .setup import Setup

__all__ = ["Chunk", "InputChunker", "plan_chunks", "silence", "Pacer"]

_OPAQUE_CHUNK = 4096
_SILENCE_BYTE = {Codec.PCM16: b"\x00", Codec.ULAW: b"\xff", Codec.ALAW: b"\xd5"}


@dataclass(slots=True)
class Chunk:
    """One piece of input: the bytes to send and the audio time they hold.

    ``data`` may be a view of the caller's buffer (cut without copying); it is
    sent before the next chunk is cut.
    """

    data: bytes | memoryview
    seconds: float


def silence(fmt: AudioFormat, seconds: float) -> bytes:
    """``seconds`` of silence in a raw input format (empty for containers)."""
    if fmt.sample_rate is None or fmt.bytes_per_sample is None:
        return b""
    samples = round(fmt.sample_rate * seconds)
    return _SILENCE_BYTE[fmt.codec] * (samples * fmt.bytes_per_sample)


class InputChunker:
    """Converts one request's input pieces to wire chunks with their duration.

    Arrays are clipped to int16, mixed down to mono with ``downmix`` (2-D
    arrays: see ``s2s_core.audio.channels_last``; a chunk too short to tell
    its layout takes the layout of the chunks before it) and resampled from
    ``sample_rate`` when it differs from the format's rate, by ONE streaming
    resampler for the whole request (no clicks at chunk edges, no drift);
    raw formats are re-cut into 80 ms chunks; wav and opus bytes go through
    unchanged (wav durations come from its header). Call ``finish`` last for
    the tail and the trailing silence.

    Args:
        setup: The request's setup (its ``input_format``).
        sample_rate: Rate of numpy input when not the format's (bytes are
            always in the format's rate).
        trailing_silence_s: Silence appended by ``finish`` (raw formats).
        downmix: Average the channels of 2-D arrays instead of refusing them.

    Raises:
        InvalidAudio: ``sample_rate`` is not positive.
    """

    def __init__(self, setup: Setup, *, sample_rate: int | None = None,
                 trailing_silence_s: float = 0.0, downmix: bool = False) -> None:
        self.format = lookup_format(setup.input_format, Direction.INPUT)
        if sample_rate is not None and sample_rate <= 0:
            raise InvalidAudio(f"sample_rate must be positive, got {sample_rate}")
        self._trailing = trailing_silence_s
        self._downmix = downmix
        self._layout: bool | None = None  # channels last? (from the 2-D chunks so far)
        self._frame = self.format.bytes_per_frame
        self._pending = bytearray()
        self._wav = _WavClock() if self.format.codec is Codec.WAV else None
        rate = self.format.sample_rate
        self._resampler = (Resampler(sample_rate, rate) if sample_rate is not None
                           and rate is not None and sample_rate != rate
                           and self.format.codec is Codec.PCM16 else None)
        self._resampling = False  # the resampler holds samples to flush

    def feed(self, piece: bytes | bytearray | memoryview | np.ndarray) -> Iterator[Chunk]:
        """Chunks ready to send for this piece of input (cut lazily: no whole copy)."""
        if not isinstance(piece, np.ndarray) and self._resampling:
            yield from self._flush_resampler()  # what came before the bytes goes first
        view = self._as_bytes(piece)
        if self._frame is None:
            yield from self._opaque(bytes(view))
            return
        yield from self._cut(view)

    def _cut(self, view: memoryview) -> Iterator[Chunk]:
        frame = self._frame
        assert frame is not None
        pending = self._pending
        start = 0
        if pending:
            start = min(frame - len(pending), len(view))
            pending += view[:start]
            if len(pending) < frame:
                return
            yield Chunk(bytes(pending), FRAME_SECONDS)
            pending.clear()
        end = start + (len(view) - start) // frame * frame
        for offset in range(start, end, frame):
            yield Chunk(view[offset:offset + frame], FRAME_SECONDS)
        pending += view[end:]

    def check(self, piece: object) -> None:
        """Refuse a numpy piece that ``feed`` would refuse, without converting it.

        For a whole input given at once: its mistakes are found before
        anything is sent. Other pieces are checked when fed.

        Raises:
            InvalidAudio: An array for a non-pcm format, or of a dtype or
                shape that is refused (see ``s2s_core.audio.channels_last``).
        """
        if not isinstance(piece, np.ndarray):
            return
        if self.format.codec is not Codec.PCM16:
            raise InvalidAudio(f"numpy audio needs a pcm input_format, not {self.format.name!r}; "
                               "encode it yourself and pass bytes")
        check_array(piece, downmix=self._downmix)

    def _flush_resampler(self) -> Iterator[Chunk]:
        assert self._resampler is not None
        self._resampling = False
        tail = self._resampler.flush()
        yield from self._cut(memoryview(np.asarray(tail, dtype="<i2").tobytes()))

    def _as_bytes(self, piece: bytes | bytearray | memoryview | np.ndarray) -> memoryview:
        fmt = self.format
        if isinstance(piece, np.ndarray):
            if fmt.codec is not Codec.PCM16:
                self.check(piece)
            resampler = self._resampler
            if resampler is None and piece.ndim == 1:
                if piece.dtype == np.dtype("<i2") and piece.flags.c_contiguous:
                    return piece.data.cast("B")  # already wire samples: no copy
                return memoryview(to_pcm16(piece))
            if piece.ndim == 2:
                self._layout = channels_last(piece.shape, self._layout)
            mono = mono_samples(piece, downmix=self._downmix, hint=self._layout)
            if resampler is not None:
                self._resampling = True
                samples = resampler.process(mono)
            else:
                samples = float_to_int16(mono) if mono.dtype.kind == "f" else mono
            return memoryview(np.asarray(samples, dtype="<i2").tobytes())
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise InvalidAudio(f"audio chunks must be bytes or numpy arrays, "
                               f"not {type(piece).__name__}")
        view = memoryview(piece)
        return view.cast("B") if view.c_contiguous else memoryview(view.tobytes())

    def finish(self) -> Iterator[Chunk]:
        """The last partial chunk, then trailing silence (raw formats only)."""
        fmt = self.format
        if self._frame is None:
            return
        if self._resampling:
            yield from self._flush_resampler()
        assert fmt.bytes_per_sample is not None and fmt.sample_rate is not None
        tail = bytes(self._pending)
        self._pending.clear()
        if len(tail) % fmt.bytes_per_sample:
            raise InvalidAudio(f"{fmt.name} input ends with a partial sample "
                               f"({len(tail)} bytes left)")
        if tail:
            yield Chunk(tail, len(tail) / fmt.bytes_per_sample / fmt.sample_rate)
        quiet = silence(fmt, self._trailing)
        for start in range(0, len(quiet), self._frame):
            part = quiet[start:start + self._frame]
            yield Chunk(part, len(part) / fmt.bytes_per_sample / fmt.sample_rate)

    def _opaque(self, data: bytes) -> Iterator[Chunk]:
        wav = self._wav
        if wav is not None:
            wav.read_header(data)
        for start in range(0, len(data), _OPAQUE_CHUNK):
            part = data[start:start + _OPAQUE_CHUNK]
            yield Chunk(part, wav.seconds(len(part)) if wav is not None else 0.0)


class _WavClock:
    """The audio time in each piece of a WAV byte stream, in order.

    Bytes before the samples (the header, with any metadata chunks: LIST,
    bext, JUNK...) and after a sized data chunk take no time; samples take
    their duration at the header's byte rate. The header is read whatever its
    size, up to ``MAX_WAV_HEADER`` (then InvalidAudio).
    """

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()
        self._position = 0
        self._start = 0
        self._end: int | None = None
        self._byte_rate = 0.0

    def read_header(self, data: bytes) -> None:
        """Look at the next piece (before ``seconds`` is asked for its parts).

        Raises:
            InvalidAudio: Not a WAV file, an unsupported fmt chunk, or no data
                chunk within ``MAX_WAV_HEADER`` bytes.
        """
        head = self._head
        if head is None:
            return
        head += data[:MAX_WAV_HEADER + 8 - len(head)]  # no more is ever needed
        layout = locate_wav_data(head)
        if layout is None:
            return  # every byte so far is header: it took no time
        info = read_wav(bytes(head[:layout.data_offset]))  # checks the fmt chunk
        self._byte_rate = info.sample_rate * info.channels * info.bits_per_sample / 8
        self._start = layout.data_offset
        if layout.data_size is not None:
            self._end = layout.data_offset + layout.data_size
        self._head = None

    def seconds(self, size: int) -> float:
        """Seconds of audio in the next ``size`` bytes of the stream."""
        begin, self._position = self._position, self._position + size
        if self._head is not None:
            return 0.0
        end = self._position if self._end is None else min(self._position, self._end)
        audio = end - max(begin, self._start)
        return audio / self._byte_rate if audio > 0 else 0.0


def plan_chunks(audio: bytes | bytearray | memoryview | np.ndarray, setup: Setup, *,
                sample_rate: int | None = None, trailing_silence_s: float = 0.0,
                downmix: bool = False) -> list[Chunk]:
    """All chunks for a whole input given at once (arguments as for ``InputChunker``)."""
    chunker = InputChunker(setup, sample_rate=sample_rate, trailing_silence_s=trailing_silence_s,
                           downmix=downmix)
    return [*chunker.feed(audio), *chunker.finish()]


class Pacer:
    """When to send each chunk so that audio flows at ``pace`` x real time.

    ``pace=None`` sends as fast as possible. Times are the caller's clock.
    """

    def __init__(self, pace: float | None, start: float) -> None:
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be > 0 or None, got {pace}")
        self.pace = pace
        self.start = start
        self.sent_s = 0.0

    def due(self) -> float | None:
        """Time at which the next chunk may be sent (None: now)."""
        if self.pace is None:
            return None
        return self.start + self.sent_s / self.pace

    def sent(self, chunk: Chunk) -> None:
        """Account for a chunk that was sent."""
        self.sent_s += chunk.seconds
