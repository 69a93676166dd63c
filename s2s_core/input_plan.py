"""One input of ``s2s``/``s2s_stream``/``s2s_realtime``, before any waiting (sans-IO).

Every adapter's client checks the same arguments, builds the same chunker,
feeder and stitcher, and pulls from the caller's source by the same rule
for a retry; they are here, once. Pulling from an async iterable, the
waiting and the sleeping between attempts are the adapters'.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

import numpy as np

from ._pcm import mono_samples
from .audio_input import InputChunker, check_length
from .errors import InvalidAudio, S2SError
from .feeder import InputFeeder, Step, may_block, replayable
from .options import LEAD_IN_SILENCE_S, TRAILING_SILENCE_S, ClientOptions
from .protocol import AudioInput
from .retry import Retrier, RetryPolicy
from .setup import Setup
from .stitcher import Stitcher

__all__ = ["InputPlan", "InputOptions", "InputSource", "InputAttempts", "WholeInput", "plan_input",
           "live_input", "downmixed", "input_failure", "AudioPiece"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
"""One piece of input audio: bytes in the input format, or samples."""

_BUFFERS = (bytes, bytearray, memoryview, np.ndarray)


@dataclass(frozen=True, slots=True)
class InputPlan:
    """One checked input: its setup, how to cut it, how to send it.

    Attributes:
        setup: Every request's setup.
        audio: The caller's source, as given.
        chunker: Makes one chunker per attempt (a fresh resampler and split
            plan each time).
        pace: 1.0 sends at real time, None as fast as possible.
        keep_audio: Keep every output chunk for ``result()``.
    """

    setup: Setup
    audio: object
    chunker: Callable[[], InputChunker]
    pace: float | None
    keep_audio: bool

    def start(self, now: float) -> tuple[InputFeeder, Stitcher]:
        """A new attempt's feeder (pacing from ``now``) and the stitcher that reads it."""
        feeder = InputFeeder(self.chunker(), pace=self.pace, now=now)
        return feeder, Stitcher(feeder.plan, self.setup.output_format,
                                keep_audio=self.keep_audio)

    def replayable(self, source: InputSource | None) -> bool:
        """Whether the input can be sent again from its start after ``source``'s attempt.

        A one-shot source can while nothing was pulled from it, including
        when the attempt failed before its source was made (connect, upgrade).
        """
        return replayable(self.audio) or source is None or not source.pulled

    def replayable_whole(self, source: InputSource | None, error: S2SError) -> bool:
        """Whether the whole input may be sent again after its attempt failed with ``error``.

        Only when its first request failed: a later request of a split input
        is retried alone, by the chain, while output may have reached the
        caller.
        """
        first = error.segment is None or error.segment.index == 0
        return first and self.replayable(source)


class InputOptions(TypedDict, total=False):
    """How an input is sent: ``s2s``'s keyword arguments (defaults: ``plan_input``'s)."""

    pace: float | None
    trailing_silence_s: float
    lead_in_silence_s: float
    downmix: bool


def plan_input(setup: Setup | Mapping[str, Any], audio: object, options: ClientOptions, *,
               sample_rate: int | None = None, pace: float | None = 1.0,
               trailing_silence_s: float = TRAILING_SILENCE_S,
               lead_in_silence_s: float = LEAD_IN_SILENCE_S, keep_audio: bool = False,
               downmix: bool = False) -> InputPlan:
    """Check every argument of ``s2s``/``s2s_stream``, before anything is sent.

    An input given whole is checked too (its dtype, its shape, the length of
    an opus input). The arguments are ``s2s_stream``'s
    (``s2s_core.client_docs.S2S_STREAM``); ``options`` are the client's.

    Raises:
        InvalidSetup: The setup is invalid.
        InvalidAudio: ``sample_rate``, a silence length or a whole array is
            refused.
        InputTooLong: A whole opus input is longer than ``max_request_s``.
        ValueError: ``pace`` is not positive.
    """
    checked = setup if isinstance(setup, Setup) else Setup.from_mapping(setup)

    def chunker() -> InputChunker:
        return InputChunker(checked, sample_rate=sample_rate,
                            trailing_silence_s=trailing_silence_s,
                            lead_in_silence_s=lead_in_silence_s,
                            max_request_s=options.max_request_s,
                            split_search_s=options.split_search_s, downmix=downmix)

    first = chunker()
    first.check(audio)
    check_length(first, audio)
    if pace is not None and pace <= 0:
        raise ValueError(f"pace must be > 0 or None, got {pace}")
    return InputPlan(checked, audio, chunker, pace, keep_audio)


def live_input(setup: Setup, options: ClientOptions, *, keep_audio: bool,
               now: float) -> tuple[InputFeeder, Stitcher]:
    """The feeder and stitcher of a live session (``s2s_realtime``), split past ``max_request_s``.

    The caller's pieces go out as they come (no pacing); the seams between
    requests get the default padding.
    """
    chunker = InputChunker(setup, trailing_silence_s=TRAILING_SILENCE_S,
                           lead_in_silence_s=LEAD_IN_SILENCE_S,
                           max_request_s=options.max_request_s,
                           split_search_s=options.split_search_s, live=True)
    feeder = InputFeeder(chunker, pace=None, now=now)
    step = feeder.next_step(now)
    assert step.kind is Step.NEED_INPUT  # a live input starts with nothing to send
    return feeder, Stitcher(feeder.plan, setup.output_format, keep_audio=keep_audio)


def input_failure(exc: Exception) -> S2SError | None:
    """What fails an input whose feeding raised ``exc``, or None when nothing must.

    Bad audio (``InvalidAudio``) fails it as it is; a request that failed
    already (any other ``S2SError``) needs nothing more: its consumer gets
    the reason; anything else came from the caller's source and fails it as
    ``InvalidAudio`` (``exc`` as its cause).
    """
    if isinstance(exc, InvalidAudio):
        return exc
    if isinstance(exc, S2SError):
        return None
    error = InvalidAudio(f"the audio source raised {exc!r}")
    error.__cause__ = exc
    return error


def downmixed(audio: AudioInput) -> AudioInput:
    """A 2-D array mixed down to mono (other audio as it is)."""
    return mono_samples(audio, downmix=True) if isinstance(audio, np.ndarray) else audio


class InputSource:
    """Pieces from whatever the caller gave: one buffer, an iterable, an async iterable.

    A retry makes a new one; a one-shot iterator nothing was pulled from is
    taken over from the ``previous`` attempt's source as it is. ``next``
    pulls from a plain iterable; an async adapter pulls ``async_pieces``
    itself (and sets ``pulled``). Without ``pull_async`` (a blocking
    client), an async iterable is refused as any other non-iterable.

    Raises:
        TypeError: ``audio`` is not a buffer nor an iterable it can pull.
    """

    __slots__ = ("async_pieces", "may_block", "pieces", "pulled")

    def __init__(self, audio: object, previous: InputSource | None = None, *,
                 pull_async: bool = True) -> None:
        self.pieces: Iterator[AudioPiece] | None = None
        self.async_pieces: AsyncIterator[AudioPiece] | None = None
        self.pulled = False
        """Something was pulled: a one-shot source cannot be sent again."""
        self.may_block = may_block(audio)
        """Pulling a plain source may wait (``may_block``): pull it off the loop or the
        thread that delivers the output."""
        if previous is not None and not previous.pulled and not replayable(audio):
            self.pieces, self.async_pieces = previous.pieces, previous.async_pieces
        elif isinstance(audio, _BUFFERS):
            self.pieces = iter((audio,))
        elif pull_async and isinstance(audio, AsyncIterable):
            self.async_pieces = aiter(audio)
        else:
            self.pieces = iter(audio)  # type: ignore[call-overload]

    def next(self) -> AudioPiece | None:
        """The next piece of a plain source, or None at its end."""
        self.pulled = True
        assert self.pieces is not None
        return next(self.pieces, None)


ConnT = TypeVar("ConnT")


class InputAttempts(Generic[ConnT]):
    """The attempts at starting one input's stream (an ``OpenStream`` entering).

    It keeps the source each attempt pulls from (a one-shot source nothing
    was pulled from passes on to the next attempt as it is) and decides
    whether a failed attempt is followed by another: as ``retry`` says, for
    an input that can be sent again from its start, on a connection of its
    own. The adapter connects, waits for ready and sleeps.

    Args:
        plan: The input.
        retry: How a failure before ready is retried (None: never).
        connection: The caller's connection for the first request (None:
            each attempt opens one).
        source: A previous attempt's source (``s2s`` trying a whole input
            again).
    """

    def __init__(self, plan: InputPlan, *, retry: RetryPolicy | None,
                 connection: ConnT | None = None, source: InputSource | None = None) -> None:
        self.plan = plan
        self.connection = connection
        self.source = source
        """The latest attempt's source (it tells whether anything was pulled)."""
        self._retry = retry
        self._retrier: Retrier | None = None

    def begin(self, now: float) -> None:
        """The first attempt starts (the retry budget counts from ``now``)."""
        self._retrier = Retrier(self._retry, start=now)

    def new_source(self, *, pull_async: bool = True) -> InputSource:
        """The source of a new attempt (see ``InputSource``)."""
        self.source = InputSource(self.plan.audio, self.source, pull_async=pull_async)
        return self.source

    def retry_delay(self, error: S2SError, now: float) -> float:
        """How long to wait before the next attempt, after one failed with ``error``.

        Raises:
            S2SError: ``error`` (with ``attempts``), when no attempt follows.
        """
        assert self._retrier is not None, "begin() first"
        replayable = self.connection is None and self.plan.replayable(self.source)
        return self._retrier.retry_delay(error, now=now, output_reached_caller=False,
                                         replayable=replayable)


class WholeInput:
    """``s2s``: one input translated whole, tried again as a whole (sans-IO).

    Nothing reaches the caller before the result, so a failure of the first
    request is retried with the whole input, on a new connection, if it can
    be sent again (a later request of a split input is retried alone, by the
    chain). Each attempt is an ``OpenStream`` entered once (``attempt``).

    Args:
        plan: The input (``keep_audio`` on: the result holds the audio).
        retry: How a failure is retried (None: never).
        now: The caller's clock when the first attempt starts.
    """

    def __init__(self, plan: InputPlan, retry: RetryPolicy | None, now: float) -> None:
        self.plan = plan
        self._retrier = Retrier(retry, start=now)
        self._source: InputSource | None = None

    def attempt(self) -> InputAttempts[Any]:
        """The next attempt (not retried itself: ``retry_delay`` decides)."""
        return InputAttempts(self.plan, retry=None, source=self._source)

    def retry_delay(self, attempt: InputAttempts[Any], error: S2SError, now: float) -> float:
        """How long to wait before the next attempt, after ``attempt`` failed with ``error``.

        Raises:
            S2SError: ``error`` (with ``attempts``), when no attempt follows.
        """
        self._source = attempt.source
        return self._retrier.retry_delay(
            error, now=now, output_reached_caller=False,
            replayable=self.plan.replayable_whole(self._source, error))
