"""One stream out of a split input's requests, in input time (sans-IO).

An input longer than ``max_request_s`` goes out as several requests
(``s2s_core.splitter``); request ``k`` carries the input from
``segments[k].start_s``, after a lead-in of silence and before a trailing
silence. ``Stitcher`` takes each request's events in order (the adapter
reads only the current request, so nothing of request ``k+1`` comes before
request ``k``'s end) and gives the caller one stream:

- ``Ready`` of the first request as is; the ``Ready`` of a later one as a
  ``RequestStarted``, just before that request's first output (until then
  a failed request may be replaced by a retry, whose ``Ready`` counts); the
  ``EndOfStream`` of every request but the last is swallowed: one
  ``EndOfStream`` ends the stream.
- ``Text`` timings in input time: the request's lead-in subtracted, its
  start added, clamped to the request's start.
- ``Audio`` on the input's timeline (pcm, G.711, wav outputs): the output of
  a request's lead-in is cut, its output past its part of the input (the
  trailing silence, and whatever the service still says about the last
  words) is mixed into the next request's first output, sample by sample.
  The joined audio is exactly as long as the input plus the last request's
  trailing silence; at each seam it holds both requests' output over the
  trailing silence's length, summed (silence over speech in a pause, so
  nothing is lost and nothing is doubled). A wav output keeps one header.
  An opus output cannot be cut or mixed without decoding it: the requests'
  Ogg streams follow each other (a chained Ogg stream, RFC 3533 section 4,
  which players and ffmpeg read), with each request's lead-in and trailing
  silence left in.

The joined result (``result()``) keeps every request's id in ``request_ids``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
import numpy.typing as npt

from ._g711 import decode_raw, encode_raw
from ._riff import locate_wav_data, with_real_wav_sizes
from ._wav import _parse_wav_header
from .errors import S2SError
from .events import Audio, EndOfStream, Ready, RequestStarted, ServerEvent, StreamEvent, Text
from .formats import AudioFormat, Codec, Direction, lookup_format
from .metrics import Metrics
from .results import S2SResult, TextWithTimestamps, text_with_timestamps
from .splitter import SegmentPlan

__all__ = ["Stitcher"]

_EMPTY = np.empty(0, dtype=np.int16)


class Stitcher:
    """Joins the events of an input's requests into one stream (see the module doc).

    Args:
        plan: The input's requests (``InputChunker.plan``), shared with the
            input side; ``plan.finished`` is advanced here.
        output_format: The setup's output format.
        keep_audio: Keep the joined audio for ``result()``.
    """

    def __init__(self, plan: SegmentPlan, output_format: str, *, keep_audio: bool) -> None:
        self.metrics_source: Callable[[], Metrics | None] | None = None
        """Where the result's ``metrics`` come from (the adapter's current request)."""
        self.plan = plan
        self.output_format = output_format
        self._fmt = lookup_format(output_format, Direction.OUTPUT)
        self.keep_audio = keep_audio
        self.readies: list[Ready] = []
        self.texts: list[TextWithTimestamps] = []
        """Text segments handed out so far, in input time."""
        self._audio = bytearray()
        self._wav_header: bytes | None = None
        self._rate: int | None = None
        self._sample_bytes = self._fmt.bytes_per_sample
        self._emitted = 0  # samples of joined audio handed out
        self._ahead = _EMPTY  # later requests' output already placed after _emitted
        self.done = False
        self.error: S2SError | None = None
        self._start_request()

    @property
    def current(self) -> int:
        """The request whose events are read now."""
        return self.plan.finished

    def _start_request(self) -> None:
        self._received = 0  # samples of the current request's output
        self._head = bytearray() if self._fmt.codec is Codec.WAV else None
        self._carry = b""

    # -- events in, events out --

    def take(self, event: ServerEvent) -> list[StreamEvent]:
        """An event of the current request; what the caller gets for it (maybe nothing)."""
        kind = type(event)
        if kind is Ready:
            return self._ready_event(event)  # type: ignore[arg-type]
        out = self._started()
        if kind is Audio:
            out += self._audio_event(event)  # type: ignore[arg-type]
        elif kind is Text:
            out.append(self._text_event(event))  # type: ignore[arg-type]
        elif kind is EndOfStream:
            out += self._end_event(event)  # type: ignore[arg-type]
        else:
            out.append(event)
        return out

    def _ready_event(self, ready: Ready) -> list[StreamEvent]:
        index = self.current
        if index == 0:
            self.readies.append(ready)
            self.plan.delivered.add(index)
            self._rate = self._output_rate(ready)
            return [ready]
        # A later request's ready goes out with its first output: until then the
        # request may still be replaced by a retry (a retry's ready replaces it).
        self._ready = ready
        return []

    _ready: Ready | None = None

    def _started(self) -> list[StreamEvent]:
        """The held ``RequestStarted``, when the current request's first output goes out."""
        ready = self._ready
        if ready is None:
            return []
        self._ready = None
        index = self.current
        self.readies.append(ready)
        self.plan.delivered.add(index)
        return [RequestStarted(index=index, input_start_s=self.plan.segments[index].start_s,
                               ready=ready)]

    def _output_rate(self, ready: Ready) -> int | None:
        fmt = self._fmt
        if fmt.codec is Codec.OPUS or fmt.codec is Codec.WAV:
            return None  # opus: none; wav: its header says
        # A rate in the format's name wins; plain "pcm" has ready's (PROTOCOL.md 4, 9).
        return ready.sample_rate if fmt.name == "pcm" else fmt.sample_rate

    def _text_event(self, text: Text) -> Text:
        segment = self.plan.segments[self.current]
        shift = segment.start_s - segment.lead_in_s
        if segment.start_s or segment.lead_in_s:
            start = _in_input(text.start_s, shift, segment.start_s)
            text = msgspec.structs.replace(
                text, start_s=start, stop_s=max(start, _in_input(text.stop_s, shift, start)))
        self.texts.append(text_with_timestamps(text))
        return text

    def _end_event(self, end: EndOfStream) -> list[StreamEvent]:
        index = self.current
        if self.plan.is_last(index):
            out = self._flush_ahead()
            self.done = True
            return [*out, end]
        if index + 1 >= len(self.plan.segments):
            # The input side ends a request only after cutting the next one, or at
            # the input's end: the server ended this one early. Nothing follows it.
            self.done = True
            return [*self._flush_ahead(), end]
        out = self._fill_to(index + 1)
        self.plan.finished = index + 1
        self._start_request()
        return out

    # -- audio on the joined timeline --

    def _audio_event(self, event: Audio) -> list[StreamEvent]:
        data = event.audio
        if self._head is not None:
            data = self._strip_wav_header(data)
            if not data:
                if not self._pending_header:
                    return []  # a later request's header, or part of one
                self._pending_header = False
                return [msgspec.structs.replace(event, audio=self._wav_header or b"")]
        if self._rate is None or self._sample_bytes is None:
            return [self._opaque(event, data)]
        return self._place(event, data)

    def _opaque(self, event: Audio, data: bytes) -> Audio:
        """Opus (or a wav whose samples are not 16-bit): shift the timings, keep every byte."""
        if self.keep_audio:
            self._audio += data
        if self._pending_header:
            data, self._pending_header = (self._wav_header or b"") + data, False
        segment = self.plan.segments[self.current]
        shift = segment.start_s - segment.lead_in_s
        if not (segment.start_s or segment.lead_in_s) and data is event.audio:
            return event
        return msgspec.structs.replace(
            event, audio=data,
            start_s=None if event.start_s is None else _in_input(event.start_s, shift,
                                                                 segment.start_s),
            stop_s=None if event.stop_s is None else _in_input(event.stop_s, shift,
                                                               segment.start_s))

    def _strip_wav_header(self, data: bytes) -> bytes:
        """The bytes after the current request's wav header (held until it is whole)."""
        head = self._head
        assert head is not None
        head += data
        layout = locate_wav_data(head)
        if layout is None:
            return b""
        self._head = None
        header = _parse_wav_header(head[:layout.data_offset], final=True)
        assert header is not None
        if self._wav_header is None:
            self._wav_header = bytes(head[:layout.data_offset])
            if self.keep_audio:
                self._audio += self._wav_header
            if header.bits == 16:
                self._rate = header.sample_rate
                self._sample_bytes = header.frame_size
            self._pending_header = True
        return bytes(head[layout.data_offset:])

    _pending_header = False
    """The first request's wav header is whole and goes out with the next audio."""

    def _place(self, event: Audio, data: bytes) -> list[StreamEvent]:
        """Cut the lead-in's output, hand out this request's part, keep what is past it."""
        size = self._sample_bytes
        assert size is not None and self._rate is not None
        whole = data is event.audio and not self._carry
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % size
        self._carry = data[usable:]
        count = usable // size
        first = self._received
        self._received += count
        index = self.current
        segment = self.plan.segments[index]
        lead = round(segment.lead_in_s * self._rate)
        end = self._main_end(index, lead)
        keep_from = min(max(lead - first, 0), count)
        keep_to = count if end is None else min(max(end - first, keep_from), count)
        header = b""
        if self._pending_header:
            header, self._pending_header = self._wav_header or b"", False
        out: list[StreamEvent] = []
        if keep_to > keep_from or header:
            untouched = (whole and usable == len(data) and keep_from == 0 and keep_to == count
                         and not header and not len(self._ahead)
                         and not segment.start_s and not lead)
            main = data if untouched else data[keep_from * size:keep_to * size]
            out.append(self._emit(event, main, header, untouched))
        if keep_to < count:
            joined_at = self._joined_start(index) + first + keep_to - lead
            self._put_ahead(data[keep_to * size:count * size], joined_at)
        return out

    def _main_end(self, index: int, lead: int) -> int | None:
        """Samples of request ``index``'s output up to the end of its part (None: all)."""
        if index + 1 >= len(self.plan.segments):
            return None
        return lead + self._joined_start(index + 1) - self._joined_start(index)

    def _joined_start(self, index: int) -> int:
        assert self._rate is not None
        return round(self.plan.segments[index].start_s * self._rate)

    def _emit(self, event: Audio, data: bytes, header: bytes, untouched: bool) -> Audio:
        """Hand out samples at the joined position, mixed with what is placed ahead."""
        size = self._sample_bytes
        assert size is not None and self._rate is not None
        ahead = self._ahead
        count = len(data) // size
        if len(ahead) and count:
            mixed = min(len(ahead), count)
            data = self._mix(data[:mixed * size], ahead[:mixed]) + data[mixed * size:]
            self._ahead = ahead[mixed:]
        start = self._emitted
        self._emitted += count
        if self.keep_audio:
            self._audio += data
        if untouched:
            return event
        return msgspec.structs.replace(event, audio=header + data,
                                       start_s=_seconds(start, self._rate),
                                       stop_s=_seconds(self._emitted, self._rate))

    def _put_ahead(self, data: bytes, joined_at: int) -> None:
        """Output past the current request's part, placed at ``joined_at`` to mix later."""
        samples = self._decode(data)
        ahead = self._ahead
        offset = max(0, joined_at - self._emitted)
        total = max(len(ahead), offset + len(samples))
        joined = np.zeros(total, dtype=np.int32)
        joined[:len(ahead)] += ahead
        joined[offset:offset + len(samples)] += samples
        self._ahead = np.clip(joined, -32768, 32767).astype(np.int16)

    def _fill_to(self, index: int) -> list[StreamEvent]:
        """At a seam: hand out what a short request left before request ``index``'s start."""
        if self._sample_bytes is None or self._rate is None:
            return []
        missing = self._joined_start(index) - self._emitted
        if missing <= 0:
            return []
        ahead = self._ahead
        part = np.zeros(missing, dtype=np.int16)
        used = min(len(ahead), missing)
        part[:used] = ahead[:used]
        self._ahead = ahead[used:]
        return [self._emit_samples(part)]

    def _flush_ahead(self) -> list[StreamEvent]:
        """At the end: what is placed ahead goes out as it is."""
        ahead, self._ahead = self._ahead, _EMPTY
        if not len(ahead):
            return []
        return [self._emit_samples(ahead)]

    def _emit_samples(self, samples: npt.NDArray[np.int16]) -> Audio:
        assert self._rate is not None
        data = self._encode(samples)
        start = self._emitted
        self._emitted += len(samples)
        if self.keep_audio:
            self._audio += data
        client_req_id = self.readies[-1].client_req_id if self.readies else None
        return Audio(audio=data, start_s=_seconds(start, self._rate),
                     stop_s=_seconds(self._emitted, self._rate), client_req_id=client_req_id)

    def _mix(self, data: bytes, ahead: npt.NDArray[np.int16]) -> bytes:
        mixed = self._decode(data).astype(np.int32)
        mixed += ahead
        return self._encode(np.clip(mixed, -32768, 32767).astype(np.int16))

    def _decode(self, data: bytes) -> npt.NDArray[np.int16]:
        return decode_raw(data, self._sample_format())

    def _encode(self, samples: npt.NDArray[np.int16]) -> bytes:
        return encode_raw(samples, self._sample_format())

    def _sample_format(self) -> AudioFormat:
        fmt = self._fmt
        if fmt.codec is Codec.WAV:
            return AudioFormat("pcm", Codec.PCM16, self._rate, 2)
        return fmt

    # -- the result --

    @property
    def request_ids(self) -> list[str]:
        """The ids of the requests read so far, in input order."""
        return [ready.request_id for ready in self.readies]

    def result(self, *, complete: bool = True) -> S2SResult:
        """The joined result (``complete`` False: a partial one, for an error)."""
        raw = bytes(self._audio)
        if self._fmt.codec is Codec.WAV:
            raw = with_real_wav_sizes(raw)
        first = self.readies[0] if self.readies else None
        return S2SResult(
            raw_data=raw,
            sample_rate=first.sample_rate if first is not None else None,
            output_format=self.output_format,
            request_id=first.request_id if first is not None else None,
            text=" ".join(t.text for t in self.texts),
            text_with_timestamps=list(self.texts),
            complete=complete and self.done,
            request_ids=self.request_ids,
            metrics=self.metrics_source() if self.metrics_source is not None else None,
        )

    def fail(self, error: S2SError, *, sent_s: float | None = None) -> S2SError:
        """The current request failed: attach the joined partial result and say which part.

        Args:
            error: What ended the request.
            sent_s: Input seconds sent so far (the end of a request still fed).
        """
        if self.error is not None:
            return self.error
        self.error = error
        if self._ready is not None:  # the failed request's id is worth keeping
            self.readies.append(self._ready)
            self._ready = None
        error.partial_result = self.result(complete=False)
        if len(self.plan.segments) > 1:
            segment = self.plan.segments[self.current]
            error.segment = segment
            error.add_note(f"{segment.describe(sent_s)} of a split input failed; "
                           "partial_result holds the output before it and what came of it")
        return error


def _in_input(seconds: float, shift: float, floor: float) -> float:
    """A request's time in input time (to the microsecond), not before ``floor``."""
    return max(floor, round(seconds + shift, 6))


def _seconds(samples: int, rate: int) -> float:
    return round(samples / rate, 6)
