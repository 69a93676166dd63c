"""Collecting one request's replies into a result, and turning failures into errors."""

from __future__ import annotations

import os
from collections.abc import Callable

import msgspec
import numpy as np
import numpy.typing as npt

from ._riff import with_real_wav_sizes
from .audio import decode_raw, pcm16_view, write_wav
from .errors import ConnectionClosedError, S2SError, server_error_for
from .events import Audio, Closed, EndOfStream, ErrorMessage, Ready, ServerEvent, Text
from .formats import Direction, lookup_format
from .metrics import Metrics

__all__ = ["TextWithTimestamps", "S2SResult", "ResultCollector", "error_from_event"]


class TextWithTimestamps(msgspec.Struct, frozen=True, kw_only=True):
    """A text segment with its timing, as in the official SDK."""

    text: str
    start_s: float
    stop_s: float
    client_req_id: str | None = None
    stream_id: int | None = None


class S2SResult(msgspec.Struct, frozen=True, kw_only=True):
    """The whole output of one request.

    Attributes:
        raw_data: Output audio bytes in ``output_format``. A wav output is a
            whole file: its RIFF and data sizes are the real ones (the stream
            carries 0xFFFFFFFF, a streaming writer's "unknown length").
        sample_rate: Output rate from ``ready``.
        output_format: The setup's output format.
        request_id: The server's request id (the first request's, for a
            split input).
        text: Every text segment joined by spaces.
        text_with_timestamps: The segments with their timing.
        complete: False for a partial result attached to an error.
        metrics: Latency and throughput of the request (``Metrics``): final
            on a complete result, as far as the request got on a partial
            one; None where no request produced it.
        request_ids: Every request's id, in input order (one unless the input
            was split into several requests: see ``ClientOptions.max_request_s``).
    """

    raw_data: bytes
    sample_rate: int | None
    output_format: str | None
    request_id: str | None
    text: str
    text_with_timestamps: list[TextWithTimestamps]
    complete: bool = True
    metrics: Metrics | None = None
    request_ids: list[str] = msgspec.field(default_factory=list)

    def __repr__(self) -> str:
        return (f"S2SResult(raw_data=<{len(self.raw_data)} bytes>, sample_rate={self.sample_rate}, "
                f"output_format={self.output_format!r}, request_id={self.request_id!r}, "
                f"text={self.text!r}, segments={len(self.text_with_timestamps)}, "
                f"complete={self.complete})")

    def pcm16(self) -> npt.NDArray[np.int16]:
        """The output as int16 samples (pcm output formats only).

        Raises:
            ValueError: The output format is not pcm.
        """
        if self.output_format is None or not self.output_format.startswith("pcm"):
            raise ValueError(f"output_format is {self.output_format!r}, not pcm")
        return pcm16_view(self.raw_data)

    def pcm(self) -> npt.NDArray[np.float32]:
        """The output as float32 samples in [-1, 1) (pcm output formats only)."""
        samples: npt.NDArray[np.float32] = self.pcm16().astype(np.float32)
        samples *= np.float32(1 / 32768)
        return samples

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the output audio to a file that players and ``wave`` can open.

        - wav: ``raw_data`` as is (a complete WAV file).
        - pcm, pcm_<rate>: a 16-bit mono WAV file at the rate the format
          names (plain ``pcm``: ``sample_rate``, from ``ready``).
        - ulaw_8000, alaw_8000: decoded to a 16-bit mono 8 kHz WAV file. G.711
          decoding is exact, and a PCM WAV opens everywhere (Python's ``wave``
          reads no G.711 WAV), at twice the size of the G.711 bytes.
        - opus: ``raw_data`` as is (an Ogg Opus file: name it ``.ogg``/``.opus``).

        A trailing odd byte of a partial pcm result (half a sample) is dropped.

        Raises:
            OSError: The file cannot be written.
        """
        fmt = None if self.output_format is None else lookup_format(self.output_format,
                                                                    Direction.OUTPUT)
        if fmt is None or not fmt.is_raw:
            with open(path, "wb") as file:
                file.write(self.raw_data)
            return
        assert fmt.bytes_per_sample is not None
        # A rate in the format's name wins; plain "pcm" has ready's (PROTOCOL.md 4, 9).
        rate = fmt.sample_rate if fmt.name != "pcm" else self.sample_rate or fmt.sample_rate
        assert rate is not None
        data = self.raw_data[:len(self.raw_data) - len(self.raw_data) % fmt.bytes_per_sample]
        write_wav(path, decode_raw(data, fmt), rate)


def error_from_event(event: ErrorMessage | Closed, request_id: str | None = None) -> S2SError:
    """The exception that an ``error`` message or a failed close stands for."""
    if isinstance(event, ErrorMessage):
        return server_error_for(event.message, event.code, request_id=request_id,
                                client_req_id=event.client_req_id)
    if event.error is not None:
        return event.error
    return ConnectionClosedError(event.code, event.reason,
                                 "the connection closed before the request ended")


class ResultCollector:
    """Accumulates one request's events; ``result()`` once it ended."""

    __slots__ = ("_chunks", "_texts", "done", "error", "metrics_source", "output_format", "ready")

    def __init__(self, output_format: str | None) -> None:
        self.output_format = output_format
        self.ready: Ready | None = None
        # One growing buffer, not a list of chunks: chunks decoded on another
        # thread (the threaded adapter's reader) are freed at once, so a long
        # result does not pin that thread's fresh memory (page faults).
        self._chunks = bytearray()
        self._texts: list[TextWithTimestamps] = []
        self.done = False
        self.error: S2SError | None = None
        self.metrics_source: Callable[[], Metrics] | None = None
        """Gives the request's metrics for each result built (the table sets it)."""

    @property
    def texts(self) -> list[TextWithTimestamps]:
        """The text segments so far."""
        return self._texts

    def add(self, event: ServerEvent | Closed) -> None:
        """Take one event of this request (others are ignored)."""
        if self.done:
            return
        kind = type(event)
        if kind is Audio:
            self._chunks += event.audio  # type: ignore[union-attr]
        elif kind is Text:
            self._texts.append(text_with_timestamps(event))  # type: ignore[arg-type]
        elif kind is Ready:
            self.ready = event  # type: ignore[assignment]
        elif kind is EndOfStream:
            self.done = True
        elif kind is ErrorMessage or kind is Closed:
            self.fail(error_from_event(event, self.request_id))  # type: ignore[arg-type]

    def fail(self, error: S2SError) -> S2SError:
        """End the request with ``error``; attaches the partial result to it."""
        if not self.done:
            self.done = True
            self.error = error
            error.partial_result = self._build(complete=False)
        return error

    def snapshot(self) -> S2SResult:
        """What has arrived so far, as a partial result (the request goes on)."""
        return self._build(complete=False)

    @property
    def request_id(self) -> str | None:
        """The server's request id, once ready arrived."""
        return self.ready.request_id if self.ready is not None else None

    def result(self) -> S2SResult:
        """The complete result.

        Raises:
            S2SError: The request failed (the partial result is attached).
        """
        if self.error is not None:
            raise self.error
        return self._build(complete=self.done)

    def _build(self, *, complete: bool) -> S2SResult:
        raw = bytes(self._chunks)
        if self.output_format == "wav":
            raw = with_real_wav_sizes(raw)  # the buffer is the whole file
        return S2SResult(
            raw_data=raw,
            sample_rate=self.ready.sample_rate if self.ready is not None else None,
            output_format=self.output_format,
            request_id=self.request_id,
            text=" ".join(t.text for t in self._texts),
            text_with_timestamps=list(self._texts),
            complete=complete,
            metrics=self.metrics_source() if self.metrics_source is not None else None,
            request_ids=[] if self.ready is None else [self.ready.request_id],
        )


def text_with_timestamps(event: Text) -> TextWithTimestamps:
    """Convert a ``Text`` event."""
    return TextWithTimestamps(text=event.text, start_s=event.start_s, stop_s=event.stop_s,
                              client_req_id=event.client_req_id, stream_id=event.stream_id)
