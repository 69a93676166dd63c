"""One request's input, cut into chunks and paced: what to send at ``now`` (sans-IO).

The adapters pull pieces from the user's source (bytes, arrays, iterables,
async iterables: pulling is theirs, since it may wait) and ask the feeder
what to do next. The feeder never reads a clock and never sleeps::

    feeder = InputFeeder(InputChunker(setup), pace=1.0, now=now)
    while True:
        step = feeder.next_step(now)
        if step.kind is Step.SEND: send step.chunks, then write
        elif step.kind is Step.NEED_INPUT: feeder.feed(piece) or feeder.finish()
        elif step.kind is Step.WAIT: sleep until step.until
        else: send end_of_stream; stop            # Step.END_OF_STREAM
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .audio_input import Chunk, InputChunker, Pacer
from .errors import LocalProtocolError
from .options import WRITE_BATCH_BYTES

__all__ = ["InputFeeder", "Step", "FeedStep", "replayable"]


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


class Step(enum.Enum):
    """What the adapter should do next for a request's input."""

    SEND = "send"
    """Send ``chunks`` now (one write)."""
    NEED_INPUT = "need_input"
    """Pull the next piece from the source (``feed``), or ``finish`` at its end."""
    WAIT = "wait"
    """Nothing is due before ``until``."""
    END_OF_STREAM = "end_of_stream"
    """Everything was sent: send end_of_stream (once)."""
    DONE = "done"
    """end_of_stream was taken: nothing more."""


@dataclass(slots=True)
class FeedStep:
    """One decision of ``InputFeeder.next_step``."""

    kind: Step
    chunks: list[bytes | memoryview] = field(default_factory=list)
    until: float | None = None


class InputFeeder:
    """Decides which of a request's input chunks are due, and when the next is.

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

    @property
    def sent_s(self) -> float:
        """Seconds of input audio handed out so far."""
        return self._pacer.sent_s

    def feed(self, piece: bytes | bytearray | memoryview | np.ndarray) -> None:
        """Take the next piece of input (only when ``NEED_INPUT`` was asked).

        Raises:
            LocalProtocolError: Input is fed before the last piece was used,
                or after ``finish``.
        """
        if self._finished or self._peek() is not None:
            raise LocalProtocolError("feed() only after next_step() asked for input")
        self._chunks = self._chunker.feed(piece)

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
        pacer = self._pacer
        chunks: list[bytes | memoryview] = []
        size = 0
        while size < self._batch_bytes:
            chunk = self._peek()
            if chunk is None:
                break
            due = pacer.due()
            if due is not None and due > now:
                if chunks:
                    break
                return FeedStep(Step.WAIT, until=due)
            chunks.append(chunk.data)
            pacer.sent(chunk)
            size += len(chunk.data)
            self._next = None
        if chunks:
            return FeedStep(Step.SEND, chunks)
        if not self._finished:
            return FeedStep(Step.NEED_INPUT)
        self._ended = True
        return FeedStep(Step.END_OF_STREAM)

    def _peek(self) -> Chunk | None:
        if self._next is None:
            self._next = next(self._chunks, None)
        return self._next
