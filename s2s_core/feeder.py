"""One input's chunks, paced, request by request: what to send at ``now`` (sans-IO).

The adapters pull pieces from the user's source (bytes, arrays, iterables,
async iterables: pulling is theirs, since it may wait) and ask the feeder
what to do next. The feeder never reads a clock and never sleeps::

    feeder = InputFeeder(InputChunker(setup), pace=1.0, now=now)
    while True:
        step = feeder.next_step(now)
        if step.kind is Step.SEND: send step.chunks to request step.segment, then write
        elif step.kind is Step.NEED_INPUT: feeder.feed(piece) or feeder.finish()
        elif step.kind is Step.WAIT: sleep until step.until
        elif step.kind is Step.START: start request step.segment (connect, setup);
            send its audio once its ready came
        elif step.kind is Step.WAIT_FOR_OUTPUT: wait until the caller has read
            request step.segment to its end (``plan.finished`` > it)
        elif step.kind is Step.END_OF_STREAM: send end_of_stream to request step.segment
        else: stop                                           # Step.DONE

An input that is not split (the chunker's ``max_request_s`` is None, or the
input is short) is request 0 only: no START step ever comes.
"""

from __future__ import annotations

import enum
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .audio_input import Chunk, InputChunker, Pacer
from .errors import LocalProtocolError
from .options import WRITE_BATCH_BYTES
from .splitter import SegmentPlan

__all__ = ["InputFeeder", "Step", "FeedStep", "replayable", "may_block"]


def replayable(audio: object) -> bool:
    """Whether an input source can be sent again from its start (for a retry).

    Buffers and arrays can; so can iterables that give a fresh iterator each
    time (lists, tuples, custom iterables). An iterator or a generator (sync
    or async) is one-shot: it can be retried only before anything was
    pulled from it.
    """
    if isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
        return True
    if hasattr(audio, "__aiter__"):
        return audio.__aiter__() is not audio
    if hasattr(audio, "__iter__"):
        return iter(audio) is not audio
    return False


def may_block(audio: object) -> bool:
    """Whether pulling the next piece of an input source may wait (for a device, a pipe).

    A buffer, an array, a list, a tuple (or an iterator over one) or a
    ``BytesIO`` is in memory, and a
    file object on a regular file reads from disk: taking their next piece
    never waits for anyone to produce it. Any other iterable may (a
    generator over a microphone, ``sys.stdin.buffer`` on a pipe or a
    terminal, a socket): an adapter that pulls on the thread that also
    delivers the output must pull from it elsewhere, or the output of what
    was already said waits for the source's next piece. Exact types only
    (a subclass may iterate differently); the file check asks the OS what
    the file descriptor is (``fstat``), nothing more.
    """
    if type(audio) in _IN_MEMORY or isinstance(audio, (bytes, bytearray, memoryview,
                                                       np.ndarray)):
        return False
    if isinstance(audio, io.IOBase):
        return not _on_disk(audio)
    return True


_IN_MEMORY: tuple[type, ...] = (list, tuple, io.BytesIO, type(iter([])), type(iter(())))


def _on_disk(file: io.IOBase) -> bool:
    """Whether a file object reads a regular file (not a pipe, socket or terminal)."""
    try:
        return stat.S_ISREG(os.fstat(file.fileno()).st_mode)
    except (OSError, ValueError):  # no descriptor (io.UnsupportedOperation), or closed
        return False


class Step(enum.Enum):
    """What the adapter should do next for an input."""

    SEND = "send"
    """Send ``chunks`` to request ``segment`` now (one write)."""
    NEED_INPUT = "need_input"
    """Pull the next piece from the source (``feed``), or ``finish`` at its end."""
    WAIT = "wait"
    """Nothing is due before ``until``."""
    START = "start"
    """Start request ``segment`` now (a split input's next request: connect and
    send its setup); its audio follows once its ready came."""
    WAIT_FOR_OUTPUT = "wait_for_output"
    """The next request may start only once the caller has read request
    ``segment`` to its end (at most two requests of one input are live)."""
    END_OF_STREAM = "end_of_stream"
    """Request ``segment``'s input was all sent: send its end_of_stream (once)."""
    DONE = "done"
    """The last end_of_stream was taken: nothing more."""


@dataclass(slots=True)
class FeedStep:
    """One decision of ``InputFeeder.next_step``."""

    kind: Step
    chunks: list[bytes | memoryview] = field(default_factory=list)
    until: float | None = None
    segment: int = 0


class InputFeeder:
    """Decides which of an input's chunks are due, for which request, and when the next is.

    Seam padding (``Chunk.paced`` False: a request's trailing silence and the
    next one's lead-in) is sent at once and does not move the schedule, so
    the input keeps flowing at its pace across requests.

    What is sent to a request the caller has not started to read yet is kept
    (``replay``) so a failed request can be sent again to a new one.

    Args:
        chunker: Cuts the pieces the adapter feeds into wire chunks.
        pace: 1.0 sends at real time, 2.0 twice as fast, None at once.
        now: The caller's clock at the start of the request (pacing origin).
        batch_bytes: Most audio bytes in one ``SEND`` step.

    Raises:
        ValueError: ``pace`` is not positive.
    """

    def __init__(self, chunker: InputChunker, *, pace: float | None, now: float,
                 batch_bytes: int = WRITE_BATCH_BYTES) -> None:
        self._chunker = chunker
        self._pacer = Pacer(pace, now)
        self._batch_bytes = batch_bytes
        self._chunks: Iterator[Chunk] = iter(())
        self._next: Chunk | None = None
        self._finished = False
        self._ended = False
        self._segment = 0
        self._started = 0  # the last request started
        self._replay: dict[int, list[bytes]] = {}
        self._closed: set[int] = set()  # requests whose end_of_stream was given

    @property
    def sent_s(self) -> float:
        """Seconds of input audio handed out so far."""
        return self._pacer.sent_s

    @property
    def plan(self) -> SegmentPlan:
        """The requests the input is cut into (shared with the output side)."""
        return self._chunker.plan

    def feed(self, piece: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Take the next piece of input (only when ``NEED_INPUT`` was asked).

        Raises:
            LocalProtocolError: Input is fed before the last piece was used,
                or after ``finish``.
        """
        if self._finished or self._peek() is not None:
            raise LocalProtocolError("feed() only after next_step() asked for input")
        self._chunks = self._chunker.feed(piece)

    def pulled(self, piece: bytes | bytearray | memoryview | np.ndarray | None) -> None:
        """A piece pulled from the source (``Step.NEED_INPUT``): ``feed`` it, or ``finish``
        at the source's end (None)."""
        if piece is None:
            self.finish()
        else:
            self.feed(piece)

    def finish(self) -> None:
        """The source is exhausted: the tail and trailing silence follow."""
        if self._finished:
            return
        if self._peek() is not None:
            raise LocalProtocolError("finish() only after next_step() asked for input")
        self._finished = True
        self._chunks = self._chunker.finish()

    def next_step(self, now: float) -> FeedStep:
        """What to do at ``now``.

        Raises:
            InvalidAudio: The input just cut is not valid for the format (it
                is raised here, where the chunks are cut lazily).
        """
        if self._ended:
            return FeedStep(Step.DONE)
        chunk = self._peek()
        segment = self._segment
        if chunk is not None and chunk.segment != segment:
            if segment not in self._closed:
                return self._end(segment)
            if self._started < chunk.segment:
                return self._start(chunk.segment)
            self._segment = segment = chunk.segment
        if chunk is not None:
            return self._send(now, segment)
        if not self._finished:
            return FeedStep(Step.NEED_INPUT)
        self._ended = True
        return self._end(segment)

    def replay(self, segment: int) -> tuple[list[bytes], bool]:
        """What was sent to request ``segment`` so far, and whether its end_of_stream was.

        For a failed request that the caller has not started to read: send
        these to a new request, then go on with ``next_step``.

        Raises:
            LocalProtocolError: The caller already reads that request's output
                (it is not sent again), or it was never started.
        """
        if segment in self.plan.delivered:
            raise LocalProtocolError(
                f"request {segment} cannot be replayed: its output already reached the caller")
        if segment not in self._replay:
            raise LocalProtocolError(f"request {segment} was not started by a START step")
        return list(self._replay[segment]), segment in self._closed

    @property
    def finished(self) -> bool:
        """``finish`` was called: the source is over."""
        return self._finished

    def replayable(self, segment: int) -> bool:
        """Whether request ``segment`` may be sent again (its output has not reached the caller)."""
        return segment in self._replay and segment not in self.plan.delivered

    def replay_from(self, segment: int, start: int) -> list[bytes]:
        """The chunks sent to request ``segment`` from the ``start``-th on (see ``replay``)."""
        return self._replay[segment][start:]

    @property
    def segment(self) -> int:
        """The request the input goes to now (the last one started)."""
        return max(self._segment, self._started)

    # -- steps --

    def _send(self, now: float, segment: int) -> FeedStep:
        pacer = self._pacer
        self._forget_read()
        keep = segment in self._replay
        chunks: list[bytes | memoryview] = []
        size = 0
        while size < self._batch_bytes:
            chunk = self._peek()
            if chunk is None or chunk.segment != segment:
                break
            if chunk.paced:
                due = pacer.due()
                if due is not None and due > now:
                    if chunks:
                        break
                    return FeedStep(Step.WAIT, until=due, segment=segment)
                pacer.sent(chunk)
            chunks.append(chunk.data)
            if keep:
                self._replay[segment].append(bytes(chunk.data))
            size += len(chunk.data)
            self._next = None
        return FeedStep(Step.SEND, chunks, segment=segment)

    def _start(self, segment: int) -> FeedStep:
        if self.plan.finished < segment - 1:
            return FeedStep(Step.WAIT_FOR_OUTPUT, segment=segment - 2)
        self._started = segment
        self._replay[segment] = []
        self._forget_read()
        return FeedStep(Step.START, segment=segment)

    def _end(self, segment: int) -> FeedStep:
        self._closed.add(segment)
        self._forget_read()
        return FeedStep(Step.END_OF_STREAM, segment=segment)

    def _forget_read(self) -> None:
        """Drop the replay copies of requests whose output reached the caller (never replayed)."""
        delivered = self.plan.delivered
        for segment in [s for s in self._replay if s in delivered]:
            del self._replay[segment]

    def _peek(self) -> Chunk | None:
        if self._next is None:
            self._next = next(self._chunks, None)
        return self._next
