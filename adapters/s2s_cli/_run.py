"""One translation of ``s2s translate``: its input pieces, its events, its output, its times.

``Translation`` does the bookkeeping of one job and tells a ``Reporter``
about it; ``_jobs`` drives it on a client. Presentation lives in ``_present``.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from s2s_core.audio_input import silence
from s2s_core.events import Audio, EndOfStream, StreamEvent, Text, UnknownMessage
from s2s_core.formats import Codec, Direction, lookup_format
from s2s_core.metrics import Metrics
from s2s_core.setup import Setup
from s2s_core.urls import S2S_ROUTE

from ._audio import InputPieces, OutputDecoder, OutputSink, open_source
from ._plan import Job

__all__ = ["Cancelled", "Outcome", "Reporter", "Summary", "Target", "Translation"]


class Cancelled(BaseException):
    """Raised in a translation's thread once it was cancelled (Ctrl-C on the main thread).

    A BaseException, as KeyboardInterrupt: no ``except Exception`` on the way
    (the client's input pump, a job's failure handling) takes it for a failure.
    """


@dataclass(frozen=True)
class Target:
    """Where to connect: an S2S URL (or base URL) and the key to present."""

    url: str
    api_key: str

    @property
    def base_url(self) -> str:
        """The base URL ``S2SClient`` wants.

        A full ``.../speech/s2s`` URL is cut back to its base; a bare
        ``scheme://host:port`` gets the API's ``/api/`` path.
        """
        url = self.url
        if "://" not in url:
            local = url.startswith(("127.", "localhost", "[::1]"))
            url = ("ws://" if local else "wss://") + url
        parts = urllib.parse.urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith("/" + S2S_ROUTE):
            path = path[: -len(S2S_ROUTE)]
        elif not path:
            path = "/api/"
        else:
            return url
        return urllib.parse.urlunsplit(parts._replace(path=path))


@dataclass(frozen=True)
class Summary:
    """What one translation did, for the final report.

    Times are seconds since the run of this job started (before connecting).
    """

    input: str
    output: str
    request_id: str | None
    sample_rate: int | None
    output_s: float
    wall_s: float
    ready_s: float | None
    first_audio_s: float | None
    first_text_s: float | None
    speech_s: float
    sent_s: float
    bytes_sent: int
    bytes_received: int
    segments: int
    input_format: str
    output_format: str
    metrics: Metrics | None = None
    """The core's latency figures for the request (output lag percentiles...)."""

    @property
    def real_time_factor(self) -> float | None:
        """Wall time over the duration of the audio sent (1.0 = real time)."""
        return self.wall_s / self.sent_s if self.sent_s else None


@dataclass(frozen=True)
class Outcome:
    """How one job ended: a summary, or the failure (a job of a batch never raises)."""

    job: Job
    summary: Summary | None
    error: BaseException | None


class Reporter(Protocol):
    """What the user sees of one job; ``at_s`` are seconds since the job started."""

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None: ...

    def sent(self, sent_s: float) -> None: ...

    def text(self, event: Text, at_s: float) -> None: ...

    def audio(self, event: Audio, received_s: float, at_s: float) -> None: ...

    def unknown(self, event: UnknownMessage, at_s: float) -> None: ...

    def end(self, at_s: float) -> None: ...


class Translation:
    """One job's run: the input pieces, the events, the output file.

    Args:
        job: What to translate and where to write it.
        setup: The request's setup.
        reporter: Told about every step.
        pace: 1.0 = real time, None = as fast as possible (always None for stdin).
        trailing_s: Silence after the input (the client appends it to raw
            formats; the pieces carry it for ``wav``).
    """

    def __init__(self, job: Job, setup: Setup, reporter: Reporter, *, pace: float | None,
                 trailing_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        assert job.input is not None
        self.job = job
        self.setup = setup
        self.reporter = reporter
        self.pace = None if job.input.is_pipe else pace
        self.trailing_s = trailing_s
        self._clock = clock
        self._t0 = clock()
        self.pieces: InputPieces | None = None
        self.decoder = OutputDecoder(setup.output_format)
        self.sink = OutputSink(job.output)
        self.request_id: str | None = None
        self.ready_s: float | None = None
        self.first_audio_s: float | None = None
        self.first_text_s: float | None = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self.segments = 0
        self._cancelled = False
        # The threaded client reads a source off the consuming thread: close()
        # must not release a file under a decode still running there.
        self._reading = threading.Lock()

    # -- the input --

    def open(self) -> None:
        """Open the input (blocking: a worker thread's job on an event loop)."""
        assert self.job.input is not None
        source = open_source(self.job.input, self.setup.input_format)
        self.pieces = InputPieces(source, self.setup.input_format, live=self.job.input.is_pipe,
                                  wav_trailing_s=self.trailing_s)

    def cancel(self) -> None:
        """Stop at the next piece or event (from another thread): ``Cancelled`` is raised."""
        self._cancelled = True

    def _check(self) -> None:
        if self._cancelled:
            raise Cancelled

    def next_piece(self) -> bytes | None:
        """The next wire piece, or None at the end (blocking)."""
        assert self.pieces is not None
        self._check()
        with self._reading:
            return self.pieces.next_piece()

    def took(self, piece: bytes) -> None:
        """The client took ``piece``."""
        assert self.pieces is not None
        self.bytes_sent += len(piece)
        self.reporter.sent(self.pieces.seconds_read)

    def source(self) -> Iterator[bytes]:
        """The input as a blocking iterator (the threaded client's)."""
        while (piece := self.next_piece()) is not None:
            self.took(piece)
            yield piece

    # -- the run --

    def begin(self) -> None:
        """Start the clock (just before connecting)."""
        self._t0 = self._clock()

    def elapsed(self) -> float:
        """Seconds since ``begin``."""
        return self._clock() - self._t0

    def on_ready(self, request_id: str | None, sample_rate: int | None) -> None:
        """The stream is ready: fix the output rate."""
        self.request_id = request_id
        self.ready_s = self.elapsed()
        self.decoder.start(sample_rate)
        self.reporter.ready(request_id, sample_rate, self.ready_s)

    def on_event(self, event: StreamEvent) -> None:
        """One event after ready (errors are raised by the client, not seen here)."""
        self._check()
        at = self.elapsed()
        if isinstance(event, Audio):
            if self.first_audio_s is None:
                self.first_audio_s = at
            self.bytes_received += len(event.audio)
            samples = self.decoder.decode(event.audio)
            if len(samples):
                assert self.decoder.rate is not None
                self.sink.write(samples, self.decoder.rate)
            self.reporter.audio(event, self.sink.seconds, at)
        elif isinstance(event, Text):
            if self.first_text_s is None:
                self.first_text_s = at
            self.segments += 1
            self.reporter.text(event, at)
        elif isinstance(event, EndOfStream):
            self.reporter.end(at)
        elif isinstance(event, UnknownMessage):
            self.reporter.unknown(event, at)

    def finish(self, metrics: Metrics | None = None) -> Summary:
        """Write the output into place (blocking) and sum up (``metrics``: the stream's)."""
        wall = self.elapsed()
        self.sink.close(self.decoder.rate)
        speech = 0.0 if self.pieces is None else self.pieces.seconds_read
        fmt = lookup_format(self.setup.input_format, Direction.INPUT)
        tail = b"" if fmt.codec is Codec.WAV else silence(fmt, self.trailing_s)
        assert self.job.input is not None
        return Summary(
            input=self.job.name, output=self.sink.name, request_id=self.request_id,
            sample_rate=self.sink.rate, output_s=self.sink.seconds, wall_s=wall,
            ready_s=self.ready_s, first_audio_s=self.first_audio_s,
            first_text_s=self.first_text_s, speech_s=speech,
            sent_s=speech + self.trailing_s, bytes_sent=self.bytes_sent + len(tail),
            bytes_received=self.bytes_received, segments=self.segments,
            input_format=self.setup.input_format, output_format=self.setup.output_format,
            metrics=metrics)

    def close(self) -> None:
        """Release the input; discard the output unless finished."""
        try:
            if self.pieces is not None:
                assert self.job.input is not None
                if self.job.input.is_pipe:  # a read of a pipe may never end: not waited for
                    self.pieces.close()
                else:
                    with self._reading:  # a file's decode ends: wait for it
                        self.pieces.close()
        finally:
            self.sink.abort()
