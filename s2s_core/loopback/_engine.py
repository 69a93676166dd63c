"""The deterministic loopback engine the local test server runs instead of a model.

It decodes the input audio, resamples it to the output rate, re-encodes it in
exact 80 ms output frames, and emits one text per speech segment found by an
energy VAD. Pure and I/O free: the same input bytes give the same outputs,
however they are split into ``feed`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from .._pcm import pcm16_view
from .._resample import Resampler, round_to_int16
from .._wav import WavStreamDecoder, wav_header
from ..errors import InvalidAudio
from ..formats import FRAME_SECONDS, AudioFormat, Codec, Direction, lookup_format

__all__ = [
    "VAD_HANGOVER_S",
    "VAD_MIN_SEGMENT_S",
    "VAD_THRESHOLD_DBFS",
    "VAD_WINDOW_S",
    "AudioOut",
    "EngineError",
    "LoopbackEngine",
    "TextOut",
]

VAD_WINDOW_S = 0.02
"""Length of one VAD analysis window."""
VAD_THRESHOLD_DBFS = -40.0
"""A window is speech when its RMS level reaches this (dB relative to full scale)."""
VAD_HANGOVER_S = 0.3
"""Silence that must follow the last speech window before a segment closes."""
VAD_MIN_SEGMENT_S = 0.1
"""Segments shorter than this (first to last speech window) are dropped."""

_MIN_WAV_RATE = 1000
_MAX_WAV_RATE = 384000
_SUPPORTED = "pcm, pcm_<rate>, ulaw_8000 (mulaw_8000), alaw_8000 or wav"


class EngineError(Exception):
    """A request the engine refuses, with the protocol error code to send.

    Attributes:
        code: The protocol error code (1008 policy violation, 1002 misuse).
        message: Human-readable text for the ``error`` message.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class AudioOut:
    """One frame of output audio, encoded in the output format.

    Attributes:
        data: The encoded bytes (the first wav frame starts with the header).
        start_s: Output time of the first sample.
        stop_s: Output time just after the last sample.
    """

    data: bytes
    start_s: float
    stop_s: float


@dataclass(frozen=True, slots=True)
class TextOut:
    """The "translation" of one speech segment, timed in input seconds."""

    text: str
    start_s: float
    stop_s: float


def _resolve(name: str, direction: Direction) -> AudioFormat:
    side = direction.value
    try:
        fmt = lookup_format(name, direction)
    except ValueError:
        raise EngineError(
            1008, f"unknown {side}_format {name!r}; expected {_SUPPORTED}"
        ) from None
    if fmt.codec is Codec.OPUS:
        raise EngineError(
            1008,
            f"opus is not supported as {side}_format: the local server does not decode opus "
            f"(nor encode it); use {_SUPPORTED}",
        )
    return fmt


_LE_INT16 = np.dtype("<i2")
_NO_SAMPLES = np.empty(0, dtype=_LE_INT16)
_vecdot = getattr(np, "vecdot", None)  # numpy >= 2.0


def _window_energies(windows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The sum of squares of each row: one dot product per VAD window."""
    if _vecdot is not None:
        energies: npt.NDArray[np.float64] = _vecdot(windows, windows)
        return energies
    stacked: npt.NDArray[np.float64] = np.matmul(windows[:, None, :], windows[:, :, None])
    return stacked.reshape(-1)


class _EnergyVad:
    """Energy VAD over fixed windows at absolute input positions (chunking-proof)."""

    __slots__ = ("_hangover", "_index", "_language", "_last", "_level", "_level2",
                 "_min_windows", "_rate", "_rest", "_samples", "_segments", "_start", "_window")

    def __init__(self, sample_rate: int, language: str) -> None:
        self._rate = sample_rate
        self._window = max(1, round(sample_rate * VAD_WINDOW_S))
        # Squared RMS threshold in int16 units. Sums of int16 squares over a window
        # stay below 2**53: exact in float64 whatever the order of the additions,
        # so every comparison is exact and the same however the input is cut.
        self._level2 = (32768.0 * 10.0 ** (VAD_THRESHOLD_DBFS / 20.0)) ** 2
        self._level = self._window * self._level2  # the same, summed over a window
        self._hangover = round(VAD_HANGOVER_S / VAD_WINDOW_S)
        self._min_windows = round(VAD_MIN_SEGMENT_S / VAD_WINDOW_S)
        self._language = language
        self._rest = _NO_SAMPLES
        self._index = 0  # absolute index of the next window
        self._start: int | None = None  # first speech window of the open segment
        self._last = 0  # last speech window of the open segment
        self._segments = 0
        self._samples = 0

    def process(self, samples: npt.NDArray[np.int16]) -> list[TextOut]:
        self._samples += len(samples)
        rest = self._rest
        pending = np.concatenate((rest, samples)) if len(rest) else samples
        window = self._window
        count = len(pending) // window
        cut = count * window
        self._rest = pending[cut:].copy() if cut < len(pending) else _NO_SAMPLES
        if count == 0:
            return []
        # The server runs this on every input chunk: one conversion, one dot
        # product per window, and the few window energies compared in Python.
        energies: list[float] = _window_energies(
            pending[:cut].astype(np.float64).reshape(count, window)).tolist()
        level = self._level
        if self._start is None and max(energies) < level:
            self._index += count  # silence, no open segment: nothing to close
            return []
        return self._update([energy >= level for energy in energies])

    def finish(self) -> list[TextOut]:
        texts: list[TextOut] = []
        if len(self._rest):
            tail = self._rest.astype(np.int64)
            voiced = int(np.dot(tail, tail)) >= len(tail) * self._level2
            texts = self._update([voiced])
            self._rest = _NO_SAMPLES
        if self._start is not None:
            texts += self._close()
        return texts

    def _update(self, voiced: list[bool]) -> list[TextOut]:
        texts: list[TextOut] = []
        for flag in voiced:
            if flag:
                if self._start is None:
                    self._start = self._index
                self._last = self._index
            elif self._start is not None and self._index - self._last >= self._hangover:
                texts += self._close()
            self._index += 1
        return texts

    def _close(self) -> list[TextOut]:
        assert self._start is not None
        start, last = self._start, self._last
        self._start = None
        if last + 1 - start < self._min_windows:
            return []
        self._segments += 1
        start_s = start * self._window / self._rate
        stop_s = min((last + 1) * self._window, self._samples) / self._rate
        text = f"[{self._language}] segment {self._segments} ({stop_s - start_s:.2f} s)"
        return [TextOut(text, start_s, stop_s)]


class LoopbackEngine:
    """Echo the input audio back, resampled and re-encoded, with VAD texts.

    Audio: the input (pcm = 24 kHz, pcm_<rate>, ulaw/alaw 8 kHz, or wav whose
    header arrives in the first chunks) is decoded, resampled with the
    streaming ``Resampler`` to the output rate (48 kHz for pcm and wav) and
    cut into exact 80 ms frames; ``finish`` emits the short last frame. A wav
    output starts with a streaming 16-bit 48 kHz header in the first frame.
    Frame times come from the output sample count.

    Text: an energy VAD over 20 ms input windows (``VAD_*`` constants) emits
    one ``TextOut`` per speech segment when it closes, timed in input seconds,
    reading ``"[<target_language or 'same'>] segment <n> (<duration> s)"``.

    Any error is an ``EngineError``; after one, or after ``finish``, every
    call raises.
    """

    # The server holds one per request and runs it on every input chunk.
    __slots__ = ("_carry", "_done", "_frame", "_header_sent", "_in", "_in_rate",
                 "_in_samples", "_language", "_max_audio_s", "_out", "_out_rate",
                 "_out_samples", "_pending", "_resampler", "_same_rate", "_vad", "_wav_in")

    def __init__(
        self,
        input_format: str,
        output_format: str,
        target_language: str | None = None,
        *,
        max_audio_s: float = 300.0,
    ) -> None:
        self._in = _resolve(input_format, Direction.INPUT)
        self._out = _resolve(output_format, Direction.OUTPUT)
        out_rate = self._out.sample_rate
        assert out_rate is not None  # only opus lacks a rate, and it is refused
        self._out_rate = out_rate
        self._frame = round(out_rate * FRAME_SECONDS)
        self._language = target_language or "same"
        self._max_audio_s = max_audio_s
        self._wav_in = WavStreamDecoder() if self._in.codec is Codec.WAV else None
        self._carry = b""
        self._in_rate: int | None = None
        self._resampler: Resampler | None = None
        self._same_rate = False
        self._vad: _EnergyVad | None = None
        if self._in.sample_rate is not None:
            self._start_input(self._in.sample_rate)
        self._pending = _NO_SAMPLES  # output samples not yet in a frame
        self._in_samples = 0
        self._out_samples = 0
        self._header_sent = False
        self._done: EngineError | None = None

    @property
    def output_sample_rate(self) -> int:
        """Output samples per second: 48000 for pcm and wav, else the format's rate."""
        return self._out_rate

    @property
    def frame_size(self) -> int:
        """Output samples per 80 ms frame (3840 at 48 kHz)."""
        return self._frame

    @property
    def input_seconds(self) -> float:
        """Seconds of input audio decoded so far (0 before a wav header)."""
        return 0.0 if self._in_rate is None else self._in_samples / self._in_rate

    def feed(self, data: bytes) -> list[AudioOut | TextOut]:
        """Take a chunk of input audio; return the frames and texts it completes.

        Raises:
            EngineError: 1008 for undecodable audio or the session limit, 1002
                after ``finish`` or an earlier error.
        """
        self._check_open()
        try:
            samples = self._decode(data)
        except InvalidAudio as exc:
            raise self._fail(1008, f"invalid {self._in.name} audio: {exc}") from None
        return self._push(samples)

    def finish(self) -> list[AudioOut | TextOut]:
        """End of input: flush the last (short) frame and any open text segment.

        Raises:
            EngineError: 1008 when the input ended inside a PCM sample or a
                wav header, 1002 when already finished.
        """
        self._check_open()
        if self._carry:
            raise self._fail(1008, f"{self._in.name} input ended inside a 2-byte sample")
        if self._wav_in is not None and not self._wav_in.header_complete and (
            self._wav_in.pending_bytes
        ):
            raise self._fail(1008, "wav input ended before its header was complete")
        outputs: list[AudioOut | TextOut] = []
        if self._resampler is not None and self._vad is not None:
            self._collect(self._resampler.flush_float())
            outputs += self._frames(final=True)
            outputs += self._vad.finish()
        if self._out.codec is Codec.WAV and not self._header_sent:
            self._header_sent = True
            outputs.append(AudioOut(wav_header(self._out_rate), 0.0, 0.0))
        self._done = EngineError(1002, "the input already ended (end_of_stream received)")
        return outputs

    def _check_open(self) -> None:
        if self._done is not None:
            raise EngineError(self._done.code, self._done.message)

    def _fail(self, code: int, message: str) -> EngineError:
        self._done = EngineError(code, message)
        return EngineError(code, message)

    def _start_input(self, rate: int) -> None:
        self._in_rate = rate
        self._resampler = Resampler(rate, self._out_rate)
        self._same_rate = rate == self._out_rate
        self._vad = _EnergyVad(rate, self._language)

    def _decode(self, data: bytes) -> npt.NDArray[np.int16]:
        codec = self._in.codec
        if codec is Codec.PCM16:
            if not self._carry and type(data) is bytes and not len(data) % 2:
                return np.frombuffer(data, dtype=_LE_INT16)  # read-only: bytes are immutable
            if self._carry:
                data = self._carry + data
            cut = len(data) - len(data) % 2
            self._carry = data[cut:]
            return pcm16_view(memoryview(data)[:cut])
        if codec is Codec.ULAW:
            return ulaw_decode(data)
        if codec is Codec.ALAW:
            return alaw_decode(data)
        assert self._wav_in is not None
        samples = self._wav_in.feed(data)
        rate = self._wav_in.sample_rate
        if self._in_rate is None and rate is not None:
            # A hostile header must not make the resampler's filter huge.
            if not _MIN_WAV_RATE <= rate <= _MAX_WAV_RATE:
                raise InvalidAudio(
                    f"wav sample rate {rate} Hz is outside {_MIN_WAV_RATE}..{_MAX_WAV_RATE} Hz"
                )
            self._start_input(rate)
        return samples

    def _push(self, samples: npt.NDArray[np.int16]) -> list[AudioOut | TextOut]:
        if self._resampler is None or self._vad is None or len(samples) == 0:
            return []
        assert self._in_rate is not None
        total = self._in_samples + len(samples)
        if total > self._max_audio_s * self._in_rate:
            raise self._fail(1008, f"session audio limit of {self._max_audio_s:g} s exceeded")
        self._in_samples = total
        texts = self._vad.process(samples)
        if self._same_rate:
            self._collect_int16(samples)
        else:
            # int16 values as float32, one column: libsoxr's layout and, its float
            # path being linear, output in int16 units (``Resampler.process_float``).
            column = samples.astype(np.float32).reshape(-1, 1)
            self._collect(self._resampler.process_float(column))
        if len(self._pending) < self._frame:
            return [*texts] if texts else []
        return [*self._frames(final=False), *texts]

    def _collect(self, resampled: npt.NDArray[np.float32]) -> None:
        """Round resampled output (int16 units) straight after the samples not yet in a frame."""
        count = len(resampled)
        if count == 0:
            return
        held = self._pending
        kept = len(held)
        pending = np.empty(kept + count, dtype=_LE_INT16)
        if kept:
            pending[:kept] = held
            round_to_int16(resampled, pending[kept:])
        else:
            round_to_int16(resampled, pending)
        self._pending = pending

    def _collect_int16(self, samples: npt.NDArray[np.int16]) -> None:
        if len(samples):
            self._pending = np.concatenate((self._pending, samples), dtype=_LE_INT16)

    def _frames(self, *, final: bool) -> list[AudioOut | TextOut]:
        pending = self._pending
        total = len(pending)
        size = self._frame
        count = total if final else total - total % size
        frames: list[AudioOut | TextOut] = []
        rate = self._out_rate
        begin = self._out_samples
        for start in range(0, count, size):
            stop = min(start + size, count)
            end = begin + stop - start
            frames.append(AudioOut(self._encode(pending[start:stop]), begin / rate, end / rate))
            begin = end
        self._out_samples = begin
        # A copy of the rest: a view would keep the whole block alive between chunks.
        self._pending = pending[count:].copy() if 0 < count < total else (
            _NO_SAMPLES if count else pending)
        return frames

    def _encode(self, samples: npt.NDArray[np.int16]) -> bytes:
        codec = self._out.codec
        if codec is Codec.ULAW:
            return ulaw_encode(samples)
        if codec is Codec.ALAW:
            return alaw_encode(samples)
        data = samples.tobytes()  # little-endian int16 already (``_LE_INT16``)
        if codec is Codec.WAV and not self._header_sent:
            self._header_sent = True
            return wav_header(self._out_rate) + data
        return data
