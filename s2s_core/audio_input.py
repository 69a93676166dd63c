"""Turning what a user hands us (bytes, arrays, iterables) into paced 80 ms chunks, per request.

An input longer than ``max_request_s`` is cut into several requests at
pauses (``s2s_core.splitter``): every chunk says which request it belongs
to, and each request gets its own padding (lead-in and trailing silence)
and, for wav input, its own header. The cuts are recorded in a
``SegmentPlan`` that the output side (``s2s_core.stitcher``) reads.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._g711 import alaw_decode, ulaw_decode
from ._pcm import _downmix, channels_last, check_array, float_to_int16, mono_samples, pcm16_view
from ._resample import Resampler
from ._riff import MAX_WAV_HEADER, locate_wav_data
from ._wav import _decode_wav_samples, _parse_wav_header, _WavHeader
from .audio import read_wav, to_pcm16
from .errors import InvalidAudio
from .formats import FRAME_SECONDS, AudioFormat, Codec, Direction, lookup_format
from .setup import Setup
from .splitter import (
    InputTooLong,
    InvalidSplit,
    PauseSplitter,
    Segment,
    SegmentPlan,
    check_split,
)

__all__ = ["Chunk", "InputChunker", "check_length", "plan_chunks", "silence", "Pacer"]

_OPAQUE_CHUNK = 4096
_SILENCE_BYTE = {Codec.PCM16: b"\x00", Codec.ULAW: b"\xff", Codec.ALAW: b"\xd5"}
_ANALYSIS_BLOCK_S = 4.0
"""Input analysed for pauses per step (bounds the analysis' temporary memory)."""
_OPUS_RATE = 48000
"""Ogg Opus granule positions count 48 kHz samples whatever the input rate (RFC 7845)."""


@dataclass(slots=True)
class Chunk:
    """One piece of input: the bytes to send and the audio time they hold.

    ``data`` may be a view of the caller's buffer (cut without copying); it is
    sent before the next chunk is cut.

    Attributes:
        data: The bytes to send.
        seconds: Audio time they hold.
        segment: The request they belong to (0 unless the input is split).
        paced: False for the padding at a seam between requests: it is sent
            at once and does not move the input's schedule.
    """

    data: bytes | memoryview
    seconds: float
    segment: int = 0
    paced: bool = True


def silence(fmt: AudioFormat, seconds: float) -> bytes:
    """``seconds`` of silence in a raw input format (empty for containers)."""
    if fmt.sample_rate is None or fmt.bytes_per_sample is None:
        return b""
    samples = round(fmt.sample_rate * seconds)
    return _SILENCE_BYTE[fmt.codec] * (samples * fmt.bytes_per_sample)


def _check_seconds(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise InvalidAudio(f"{name}={value!r}: expected seconds >= 0")


class InputChunker:
    """Converts one input's pieces to wire chunks with their duration and request.

    Arrays are clipped to int16, mixed down to mono with ``downmix`` (2-D
    arrays: see ``s2s_core.audio.channels_last``; a chunk too short to tell
    its layout takes the layout of the chunks before it) and resampled from
    ``sample_rate`` when it differs from the format's rate, by ONE streaming
    resampler for the whole input (libsoxr: no clicks at chunk edges, no
    drift); raw formats are re-cut into 80 ms chunks; opus bytes go through
    unchanged (their durations come from the Ogg pages); wav bytes go
    through unchanged unless the input is split (durations from its
    header). Call ``finish`` last for the tail and the trailing silence.

    Padding: raw formats (pcm, G.711) get ``lead_in_silence_s`` before the
    audio and ``trailing_silence_s`` after it. A wav input starts with its
    header and declares its own length, so its first request has no lead-in
    and its last no trailing silence; opus gets none.

    Splitting (``max_request_s`` not None): pcm, G.711 and wav inputs are cut
    at pauses into requests of at most ``max_request_s`` of audio, their
    lead-in and trailing silence included (see ``s2s_core.splitter``); each
    request gets the padding (a wav request after the first gets the input's
    header, with "unknown length" sizes).
    An opus input longer than ``max_request_s`` raises ``InputTooLong``.

    ``live`` (a session the caller feeds, ``s2s_realtime``): each piece goes
    out as it came (not re-cut into 80 ms chunks) and must hold whole
    samples, and the input's own start and end get no padding (the caller's
    audio is what it is); the seams between requests still do.

    Raises:
        InvalidAudio: ``sample_rate`` or a silence length is out of range.
        InvalidSplit: The splitting options are out of range, or
            ``max_request_s`` leaves less than 1 s of input per request.
    """

    def __init__(self, setup: Setup, *, sample_rate: int | None = None,
                 trailing_silence_s: float = 0.0, lead_in_silence_s: float = 0.0,
                 max_request_s: float | None = None, split_search_s: float = 60.0,
                 live: bool = False, downmix: bool = False) -> None:
        self.format = fmt = lookup_format(setup.input_format, Direction.INPUT)
        if sample_rate is not None and sample_rate <= 0:
            raise InvalidAudio(f"sample_rate must be positive, got {sample_rate}")
        _check_seconds("trailing_silence_s", trailing_silence_s)
        _check_seconds("lead_in_silence_s", lead_in_silence_s)
        check_split(max_request_s, split_search_s)
        self._downmix = downmix
        self._layout: bool | None = None  # channels last? (from the 2-D chunks so far)
        rate = fmt.sample_rate
        self._resampler = (Resampler(sample_rate, rate) if sample_rate is not None
                           and rate is not None and sample_rate != rate
                           and fmt.codec is Codec.PCM16 else None)
        self._resampling = False  # the resampler holds samples to flush
        self._live = live
        self._padding_s = lead_in_silence_s + trailing_silence_s
        self.plan = SegmentPlan()
        """The requests the input is cut into (grows as it is fed)."""
        self._max_request_s = max_request_s
        self._carry = bytearray()  # bytes of a sample not complete yet
        self._framer: _Framer | None = None
        self._wav_head: bytearray | None = None
        self._wav: _WavClock | None = None
        self._ogg: _OggClock | None = None
        if fmt.is_raw:
            assert fmt.sample_rate is not None and fmt.bytes_per_sample is not None
            codec = fmt.codec
            self._framer = _Framer(
                self.plan, rate=fmt.sample_rate, sample_bytes=fmt.bytes_per_sample,
                decode=lambda data: _decode_raw(data, codec),
                silence_byte=_SILENCE_BYTE[codec], split=self._split(split_search_s),
                lead_in_s=lead_in_silence_s, trailing_s=trailing_silence_s,
                padded_ends=not live, frame=not live)
            self._sample_bytes = fmt.bytes_per_sample
        elif fmt.codec is Codec.WAV and max_request_s is not None:
            self._wav_head = bytearray()
            self._wav_options = (split_search_s, lead_in_silence_s, trailing_silence_s)
            self._sample_bytes = 1
        elif fmt.codec is Codec.WAV:
            self._wav = _WavClock()
        else:
            self._ogg = _OggClock()

    def _split(self, split_search_s: float) -> tuple[float, float] | None:
        """The splitter's limits: a request's share of the input leaves room for its padding."""
        limit = self._max_request_s
        if limit is None:
            return None
        share = limit - self._padding_s
        if share < 1.0:
            raise InvalidSplit(f"max_request_s={limit:g} leaves {share:g} s of input per request "
                               f"after {self._padding_s:g} s of lead-in and trailing silence; "
                               "expected at least 1 s")
        return (share, min(split_search_s, share))

    def feed(self, piece: bytes | bytearray | memoryview | np.ndarray) -> Iterator[Chunk]:
        """Chunks ready to send for this piece of input (cut lazily: no whole copy)."""
        if not isinstance(piece, np.ndarray) and self._resampling:
            yield from self._feed_view(self._resampler_tail())  # what came before goes first
        yield from self._feed_view(self._as_bytes(piece))

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

    def _resampler_tail(self) -> memoryview:
        """The samples the streaming resampler still holds, as wire bytes."""
        assert self._resampler is not None
        self._resampling = False
        tail = self._resampler.flush()
        return memoryview(np.asarray(tail, dtype="<i2").tobytes())

    def _feed_view(self, view: memoryview) -> Iterator[Chunk]:
        views = [view]
        if self._wav_head is not None:
            views = yield from self._wav_header(views[0])
        framer = self._framer
        if framer is None:
            if self._wav_head is None:
                yield from self._opaque(bytes(views[0]))
            return
        for view in views:
            for part in self._whole_samples(view):
                yield from framer.feed(part)
        framer.keep_held()

    def finish(self) -> Iterator[Chunk]:
        """The last partial chunk, then trailing silence (see the class doc)."""
        if self._resampling:
            yield from self._feed_view(self._resampler_tail())
        framer = self._framer
        if self._wav_head is not None:
            if self._wav_head:
                # Still no data chunk: what came is not a complete header.
                raise InvalidAudio(f"wav input ended before its header was complete "
                                   f"({len(self._wav_head)} bytes)")
            self.plan.segments[0].duration_s = 0.0
            self.plan.input_done = True
            return
        if framer is None:
            self.plan.segments[0].duration_s = self._opaque_seconds()
            self.plan.input_done = True
            return
        if self._carry:
            if self._wav_tail is None:
                raise InvalidAudio(f"{self.format.name} input ends with a partial sample "
                                   f"({len(self._carry)} bytes left)")
            self._carry.clear()  # a wav file's last partial frame is not audio
        yield from framer.finish()
        if self._wav_tail is not None and framer.segment == 0 and self._wav_tail:
            yield Chunk(bytes(self._wav_tail), 0.0)  # metadata after the samples, as sent

    # -- conversions --

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

    def _whole_samples(self, view: memoryview) -> Iterator[memoryview]:
        """``view`` as whole samples: a sample split across pieces is joined (copied)."""
        size = self._sample_bytes
        if self._live and self._framer is not None and len(view) % size and self._wav_tail is None:
            raise InvalidAudio(f"{self.format.name} audio must hold whole {8 * size}-bit samples; "
                               f"got {len(view)} bytes (odd)")
        if self._wav_remaining is not None:
            assert self._wav_tail is not None
            keep = min(len(view), self._wav_remaining)
            self._wav_tail += view[keep:]
            view = view[:keep]
            self._wav_remaining -= keep
        carry = self._carry
        if carry:
            need = min(size - len(carry), len(view))
            carry += view[:need]
            view = view[need:]
            if len(carry) < size:
                return
            yield memoryview(bytes(carry))
            carry.clear()
        end = len(view) - len(view) % size
        if end:
            yield view[:end]
        carry += view[end:]

    # -- wav, when split --

    _wav_tail: bytearray | None = None
    _wav_remaining: int | None = None

    def _wav_header(self, view: memoryview) -> Generator[Chunk, None, list[memoryview]]:
        """Collect the header; once whole, start the framer and return the samples' bytes.

        Returns (as the generator's value) the views that follow the header.
        """
        head = self._wav_head
        assert head is not None
        taken = min(len(view), max(0, MAX_WAV_HEADER + 8 - len(head)))  # no more is needed
        head += view[:taken]
        layout = locate_wav_data(head)
        if layout is None:
            return []  # every byte so far is header
        offset = layout.data_offset
        header = _parse_wav_header(head[:offset], final=True)
        assert header is not None
        read_wav(bytes(head[:offset]))  # refuses what the reader cannot decode
        self._wav_head = None
        split_search_s, lead_in_s, trailing_s = self._wav_options
        self._sample_bytes = header.frame_size
        self._wav_tail = bytearray()
        self._wav_remaining = layout.data_size
        self._framer = _Framer(
            self.plan, rate=header.sample_rate, sample_bytes=header.frame_size,
            decode=lambda data: _decode_wav(data, header),
            silence_byte=b"\x80" if header.bits == 8 else b"\x00",
            split=self._split(split_search_s), lead_in_s=lead_in_s, trailing_s=trailing_s,
            header=_streaming_header(head[:offset]), padded_ends=False, frame=not self._live)
        yield Chunk(bytes(head[:offset]), 0.0)  # the input's own header, as sent
        return [memoryview(bytes(head[offset:])), view[taken:]]

    # -- opaque: wav (not split) and opus --

    def _opaque(self, data: bytes) -> Iterator[Chunk]:
        wav, ogg = self._wav, self._ogg
        if wav is not None:
            wav.read_header(data)
        for start in range(0, len(data), _OPAQUE_CHUNK):
            part = data[start:start + _OPAQUE_CHUNK]
            seconds = 0.0
            if wav is not None:
                seconds = wav.seconds(len(part))
            elif ogg is not None:
                seconds = ogg.seconds(part)
                limit = self._max_request_s
                if limit is not None and ogg.total_s > limit:
                    raise InputTooLong(
                        f"opus input longer than max_request_s ({limit:g} s) cannot be split "
                        "(the client does not decode opus): decode it to pcm or wav first, or "
                        "pass max_request_s=None to send it as one request (the service "
                        "refuses more than 300 s)")
            yield Chunk(part, seconds)

    def _opaque_seconds(self) -> float:
        if self._ogg is not None:
            return self._ogg.total_s
        return self._wav.total_s if self._wav is not None else 0.0


def check_length(chunker: InputChunker, audio: object) -> None:
    """Refuse, before anything is sent, a whole input that ``chunker`` would refuse for its length.

    Only an opus input can be too long (it is not split); an input given as
    an iterable is checked as it comes.

    Raises:
        InputTooLong: ``audio`` is a whole opus input longer than ``max_request_s``.
    """
    if chunker._ogg is None or chunker._max_request_s is None:
        return
    if isinstance(audio, (bytes, bytearray, memoryview)):
        for _ in chunker._opaque(bytes(audio)):
            pass


def _decode_raw(data: memoryview, codec: Codec) -> npt.NDArray[np.int16]:
    if codec is Codec.ULAW:
        return ulaw_decode(data)
    if codec is Codec.ALAW:
        return alaw_decode(data)
    return pcm16_view(data)


def _decode_wav(data: memoryview, header: _WavHeader) -> npt.NDArray[np.int16]:
    samples = _decode_wav_samples(data, header.tag, header.bits)
    if header.channels > 1:
        return _downmix(samples.reshape(-1, header.channels))
    return samples


def _streaming_header(head: bytes | bytearray) -> bytes:
    """A WAV header (up to its samples) with the RIFF and data sizes "unknown" (0xFFFFFFFF).

    A later request of a split wav input gets this: its length is not known
    when it starts, and streaming writers (the service's own wav output too)
    mark that so.
    """
    header = bytearray(head)
    struct.pack_into("<I", header, 4, 0xFFFFFFFF)
    struct.pack_into("<I", header, len(header) - 4, 0xFFFFFFFF)
    return bytes(header)


class _Framer:
    """Cuts a stream of whole samples into 80 ms chunks, request by request.

    With ``split``, a ``PauseSplitter`` decides where requests end: samples
    it has not assigned yet are held (views, copied by ``keep_held`` when
    they point into a buffer the caller may reuse). At each cut: the
    request's last short chunk, its trailing silence, then the next
    request's header (wav) and lead-in, all unpaced. ``padded_ends`` False
    (wav, live) leaves out the first lead-in and the last trailing silence;
    ``frame`` False sends the samples as they came instead of 80 ms chunks.
    """

    def __init__(self, plan: SegmentPlan, *, rate: int, sample_bytes: int,
                 decode: Callable[[memoryview], npt.NDArray[np.int16]], silence_byte: bytes,
                 split: tuple[float, float] | None, lead_in_s: float, trailing_s: float,
                 header: bytes | None = None, padded_ends: bool = True,
                 frame: bool = True) -> None:
        self._plan = plan
        self._rate = rate
        self._sample_bytes = sample_bytes
        self._chunk = round(rate * FRAME_SECONDS) * sample_bytes
        self._decode = decode
        self._silence_byte = silence_byte
        self._splitter = None if split is None else PauseSplitter(
            rate, max_request_s=split[0], split_search_s=split[1])
        self._block = max(1, round(rate * _ANALYSIS_BLOCK_S)) * sample_bytes
        self._lead_in_s = lead_in_s
        self._trailing_s = trailing_s
        self._header = header
        self._padded_ends = padded_ends
        self._framing = frame
        self._held: deque[memoryview] = deque()
        self._held_at = 0  # sample position of the first held byte (all before it is chunked)
        self._fed = 0
        self._pending = bytearray()  # the current request's partial 80 ms chunk
        self.segment = 0
        self._segment_start = 0
        self._begun = False
        plan.segments[0].lead_in_s = lead_in_s if padded_ends else 0.0

    def feed(self, view: memoryview) -> Iterator[Chunk]:
        """Chunks for these whole samples (and any cut they decide)."""
        yield from self._begin()
        splitter = self._splitter
        size = self._sample_bytes
        if splitter is None:
            self._held.append(view)
            self._fed += len(view) // size
            yield from self._emit(self._fed)
            return
        for start in range(0, len(view), self._block):
            block = view[start:start + self._block]
            self._held.append(block)
            self._fed += len(block) // size
            for cut in splitter.feed(self._decode(block)):
                yield from self._emit(cut)
                yield from self._seam(cut)
            yield from self._emit(splitter.committed)

    def keep_held(self) -> None:
        """Copy held views of buffers the caller may change before they are sent."""
        held = self._held
        for index, view in enumerate(held):
            if not view.readonly:
                held[index] = memoryview(view.tobytes())

    def finish(self) -> Iterator[Chunk]:
        """The rest of the input (the last request), then its trailing silence."""
        yield from self._begin()
        if self._splitter is not None:
            self._splitter.finish()
        yield from self._emit(self._fed)
        yield from self._close(paced=True, trailing=self._padded_ends)
        self._plan.input_done = True

    def _begin(self) -> Iterator[Chunk]:
        if not self._begun:
            self._begun = True
            if self._padded_ends:
                yield from self._silence(self._lead_in_s, paced=True)

    def _emit(self, upto: int) -> Iterator[Chunk]:
        """Chunks of the held samples before position ``upto``."""
        held, size = self._held, self._sample_bytes
        while self._held_at < upto:
            view = held[0]
            count = len(view) // size
            take = min(count, upto - self._held_at)
            if take == count:
                held.popleft()
                part = view
            else:
                part = view[:take * size]
                held[0] = view[take * size:]
            self._held_at += take
            yield from self._frames(part)

    def _frames(self, view: memoryview) -> Iterator[Chunk]:
        if not self._framing:
            yield Chunk(view, len(view) / self._sample_bytes / self._rate, self.segment)
            return
        frame, pending, segment = self._chunk, self._pending, self.segment
        start = 0
        if pending:
            start = min(frame - len(pending), len(view))
            pending += view[:start]
            if len(pending) < frame:
                return
            yield Chunk(bytes(pending), FRAME_SECONDS, segment)
            pending.clear()
        end = start + (len(view) - start) // frame * frame
        seconds = frame / self._sample_bytes / self._rate
        for offset in range(start, end, frame):
            yield Chunk(view[offset:offset + frame], seconds, segment)
        pending += view[end:]

    def _seam(self, cut: int) -> Iterator[Chunk]:
        """End the current request at sample ``cut``; start the next one."""
        yield from self._close(paced=False, trailing=True, next_start=cut)
        self.segment += 1
        self._segment_start = cut
        if self._header is not None:
            yield Chunk(self._header, 0.0, self.segment, paced=False)
        yield from self._silence(self._lead_in_s, paced=False)

    def _close(self, *, paced: bool, trailing: bool,
               next_start: int | None = None) -> Iterator[Chunk]:
        """The current request's last chunk and trailing silence.

        The plan learns where the request ends (and where the next one
        starts) before its trailing silence is handed out: the output side
        must know what of the request's output is past its part as soon as
        the server can say it.
        """
        pending = self._pending
        if pending:
            yield Chunk(bytes(pending), len(pending) / self._sample_bytes / self._rate,
                        self.segment)
            pending.clear()
        plan = self._plan
        plan.segments[self.segment].duration_s = (
            (self._held_at - self._segment_start) / self._rate)
        if next_start is not None:
            plan.segments.append(Segment(self.segment + 1, next_start / self._rate,
                                         self._lead_in_s))
        if trailing:
            yield from self._silence(self._trailing_s, paced=paced)

    def _silence(self, seconds: float, *, paced: bool) -> Iterator[Chunk]:
        samples = round(self._rate * seconds)
        quiet = self._silence_byte * (samples * self._sample_bytes)
        for start in range(0, len(quiet), self._chunk):
            part = quiet[start:start + self._chunk]
            yield Chunk(part, len(part) / self._sample_bytes / self._rate, self.segment,
                        paced=paced)


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
        self.total_s = 0.0

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
        seconds = audio / self._byte_rate if audio > 0 else 0.0
        self.total_s += seconds
        return seconds


class _OggClock:
    """The audio time in each piece of an Ogg Opus stream, from its pages' granule positions.

    An Ogg page is ``OggS``, version, flags, a 64-bit granule position, serial,
    sequence, CRC, a segment count and table, then the body (RFC 3533); for
    Opus the granule position counts 48 kHz samples (RFC 7845). Bytes that are
    not Ogg pages are passed over without a word: the server judges them.
    """

    def __init__(self) -> None:
        self._header = bytearray()
        self._skip = 0  # body bytes of the current page still to come
        self._page_granule = -1
        self._granule = 0
        self._lost = False
        self.total_s = 0.0

    def seconds(self, data: bytes) -> float:
        """Seconds of audio completed by the next bytes of the stream."""
        before = self._granule
        pos, size = 0, len(data)
        while pos < size and not self._lost:
            if self._skip:
                step = min(self._skip, size - pos)
                pos += step
                self._skip -= step
                if not self._skip:
                    self._end_page()
                continue
            header = self._header
            need = 27 if len(header) < 27 else 27 + header[26]
            take = min(need - len(header), size - pos)
            header += data[pos:pos + take]
            pos += take
            if len(header) >= 4 and header[:4] != b"OggS":
                self._lost = True
            elif len(header) >= 27 and len(header) == 27 + header[26]:
                self._page_granule = int.from_bytes(header[6:14], "little", signed=True)
                self._skip = sum(header[27:])
                header.clear()
                if not self._skip:
                    self._end_page()
        seconds = (self._granule - before) / _OPUS_RATE
        self.total_s += seconds
        return seconds

    def _end_page(self) -> None:
        if self._page_granule > self._granule:  # -1: no packet ends on this page
            self._granule = self._page_granule


def plan_chunks(audio: bytes | bytearray | memoryview | np.ndarray, setup: Setup, *,
                sample_rate: int | None = None, trailing_silence_s: float = 0.0,
                lead_in_silence_s: float = 0.0, max_request_s: float | None = None,
                split_search_s: float = 60.0, downmix: bool = False) -> list[Chunk]:
    """All chunks for a whole input given at once (arguments as for ``InputChunker``)."""
    chunker = InputChunker(setup, sample_rate=sample_rate, trailing_silence_s=trailing_silence_s,
                           lead_in_silence_s=lead_in_silence_s, max_request_s=max_request_s,
                           split_search_s=split_search_s, downmix=downmix)
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
