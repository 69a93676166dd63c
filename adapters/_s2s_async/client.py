"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), typed, async."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from s2s_core.audio_input import InputChunker
from s2s_core.client_base import ClientBase, SetupLike, StreamInfo
from s2s_core.errors import InvalidAudio, S2SError
from s2s_core.events import Audio, ServerEvent
from s2s_core.feeder import InputFeeder, Step, replayable
from s2s_core.options import TRAILING_SILENCE_S
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup

from .backend import Backend, Background
from .connection import Connection, OpenConnection
from .request import Request
from .rest import AsyncRestMixin
from .session import OpenSession

__all__ = ["S2SClient", "S2SStream", "OpenStream", "AudioSource"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece] | AsyncIterable[AudioPiece]
"""Input audio: all at once, or an (async) iterable of chunks."""


class S2SStream(StreamInfo):
    """A running request fed from an audio source (``S2SClient.s2s_stream``).

    Iterate ``iter_audio()`` for output bytes or ``iter_events()`` for every
    event; text segments collect in ``text_with_timestamps`` either way.
    """

    _request: Request

    def __init__(self, request: Request) -> None:
        self._request = request

    @property
    def request(self) -> Request:
        """The underlying request."""
        return self._request

    def iter_events(self) -> AsyncIterator[ServerEvent]:
        """Every event after ``ready``, until ``EndOfStream`` (included)."""
        return _Events(self._request)

    def iter_audio(self) -> AsyncIterator[bytes]:
        """Output audio bytes, in the setup's output format."""
        return _AudioBytes(self._request)

    async def result(self) -> S2SResult:
        """Consume the rest and return the result (see ``keep_audio``)."""
        self._request.handle.keep_audio = True
        return await self._request.result()


class _Events:
    """A request's events after ready (a class: no async generator left to finalize)."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> ServerEvent:
        request = self._request
        while True:
            event = await request.receive()
            if event is None:
                raise StopAsyncIteration
            if event is not request.ready:
                return event


class _AudioBytes:
    """A request's output audio bytes."""

    __slots__ = ("_request",)

    def __init__(self, request: Request) -> None:
        self._request = request

    def __aiter__(self) -> _AudioBytes:
        return self

    async def __anext__(self) -> bytes:
        while True:
            event = await self._request.receive()
            if event is None:
                raise StopAsyncIteration
            if type(event) is Audio:
                return event.audio


class OpenStream:
    """``async with client.s2s_stream(...) as stream``: the input flows in the background.

    On entry: connect (unless given a connection), send setup, start sending
    the input (paced), wait for ready; a transient failure until then is
    retried as ``retry`` says (a one-shot source only if nothing was pulled
    from it yet). On exit: stop sending, close.
    """

    def __init__(self, client: S2SClient, setup: Setup, chunker: Callable[[], InputChunker],
                 audio: AudioSource, *, pace: float | None, keep_audio: bool,
                 connection: Connection | None, retry: RetryPolicy | None) -> None:
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be > 0 or None, got {pace}")
        self._client = client
        self._setup = setup
        self._chunker = chunker
        self._audio = audio
        self._pace = pace
        self._keep_audio = keep_audio
        self._given = connection
        self._retry = retry
        self._conn: Connection | None = None
        self._feeding: Background | None = None
        self.source: _Source | None = None
        """The latest attempt's source (it tells whether anything was pulled)."""

    async def __aenter__(self) -> S2SStream:
        backend = self._client.backend
        retrier = Retrier(self._retry, start=backend.current_time())
        while True:
            try:
                return await self._attempt()
            except S2SError as exc:
                await self._stop()
                decision = retrier.on_failure(
                    exc, now=backend.current_time(), output_reached_caller=False,
                    replayable=self._given is None and self.replayable())
                if isinstance(decision, GiveUp):
                    raise
                await backend.sleep_until(backend.current_time() + decision.delay_s)
            except BaseException:
                await self._stop()
                raise

    def replayable(self) -> bool:
        """Whether the input can be sent again from its start.

        A one-shot source can while nothing was pulled from it, including
        when the attempt failed before its source was made (connect, upgrade).
        """
        return replayable(self._audio) or self.source is None or not self.source.pulled

    async def _attempt(self) -> S2SStream:
        conn = self._given
        if conn is None:
            conn = self._conn = await self._client.connection().__aenter__()
        request = await conn.start(self._setup, keep_audio=self._keep_audio)
        backend = conn.backend
        feeder = InputFeeder(self._chunker(), pace=self._pace, now=backend.current_time())
        source = self.source = _Source(self._audio, self.source)
        self._feeding = backend.start_background(lambda: _feed(request, feeder, source),
                                                 "s2s-feeder")
        await request.wait_ready()
        return S2SStream(request)

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        feeding, self._feeding = self._feeding, None
        if feeding is not None:
            feeding.cancel()
            await feeding.done.wait()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()


async def _feed(request: Request, feeder: InputFeeder, source: _Source) -> None:
    """Send the source as the feeder decides, then end_of_stream; stop if the request ends."""
    backend = request._conn.backend
    try:
        while True:
            step = feeder.next_step(backend.current_time())
            kind = step.kind
            if kind is Step.SEND:
                await request.send_chunks(step.chunks)
                # A write that found room did not yield: let the reader run (ready,
                # errors) between batches of an unpaced input.
                await backend.checkpoint()
            elif kind is Step.WAIT:
                assert step.until is not None
                await backend.sleep_until(step.until)
            elif kind is Step.NEED_INPUT:
                piece = await source.next()
                if piece is None:
                    feeder.finish()
                else:
                    feeder.feed(piece)
            else:
                await request.send_end_of_stream()
                return
    except InvalidAudio as exc:
        await _fail_input(request, exc)
    except S2SError:
        pass  # the request already ended; the consumer gets the reason
    except Exception as exc:
        error = InvalidAudio(f"the audio source raised {exc!r}")
        error.__cause__ = exc
        await _fail_input(request, error)


async def _fail_input(request: Request, error: S2SError) -> None:
    """Bad input fails the request, so its consumer sees it instead of a hang."""
    conn = request._conn
    conn.table.fail_input(request.handle, error, now=conn.backend.current_time())
    conn._after_input()
    await conn.aclose(1000, "bad input")


class _Source:
    """Pieces from whatever the caller gave: one buffer, an iterable, an async iterable.

    A retry makes a new one; a one-shot iterator nothing was pulled from is
    taken over from the ``previous`` attempt's source as it is.
    """

    def __init__(self, audio: AudioSource, previous: _Source | None = None) -> None:
        self._sync: Iterator[AudioPiece] | None = None
        self._async: AsyncIterator[AudioPiece] | None = None
        self.pulled = False
        if previous is not None and not previous.pulled and not replayable(audio):
            self._sync, self._async = previous._sync, previous._async
        elif isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
            self._sync = iter((audio,))
        elif isinstance(audio, AsyncIterable):
            self._async = aiter(audio)
        else:
            self._sync = iter(audio)

    async def next(self) -> AudioPiece | None:
        self.pulled = True
        if self._sync is not None:
            return next(self._sync, None)
        assert self._async is not None
        return await anext(self._async, None)


class S2SClient(ClientBase, AsyncRestMixin):
    """Client of the S2S API: the official SDK's three calls and its REST calls.

    ``s2s_realtime``, ``s2s_stream``, ``s2s``; ``voice_list``, ``voice_get``,
    ``credits``, ``mint_token``. Each adapter subclasses it to set
    ``backend``; the arguments are those of ``ClientBase`` (api_key,
    base_url, region, token, ssl_context, options).
    """

    backend: ClassVar[Backend]

    def s2s_realtime(self, **setup: Any) -> OpenSession:
        """A session you drive yourself: ``async with client.s2s_realtime(...) as s2s:``.

        The session is yielded once ``ready`` came: connect failures and a
        refused setup before that are retried as ``options.retry`` says (no
        audio was sent yet). Once it is yours, nothing is retried or replayed.
        """
        return OpenSession(self.backend, self.url, Setup.from_mapping(setup),
                           api_key=self._api_key, token=self._token, keep_audio=False,
                           options=self.options, retry=self.options.retry)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``await conn.start(setup)``)."""
        return OpenConnection(self.backend, self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                   sample_rate: int | None = None, pace: float | None = 1.0,
                   trailing_silence_s: float = TRAILING_SILENCE_S, keep_audio: bool = False,
                   connection: Connection | None = None, downmix: bool = False) -> OpenStream:
        """Stream ``audio`` in the background; the stream is yielded once ready.

        Args:
            setup: A ``Setup`` or the official SDK's setup dict.
            audio: Bytes, a numpy array (int16, float32/64 clipped), or an
                (async) iterable of chunks.
            sample_rate: Rate of numpy input when not the format's rate.
            pace: 1.0 sends at real time (recommended by the vendor), 2.0
                twice as fast, None as fast as possible.
            trailing_silence_s: Silence appended to raw (pcm, G.711) input.
            keep_audio: Keep every output chunk for ``result()`` (off by
                default so a long stream does not grow memory; ``result()``
                then holds the audio not iterated before it).
            connection: Run on this connection instead of opening one.
            downmix: Average the channels of 2-D numpy input, (samples,
                channels) or (channels, samples), instead of refusing it.

        Raises:
            InvalidSetup: The setup is invalid (before anything is sent).
            InvalidAudio: ``audio`` is an array that cannot be sent (its
                dtype, or a 2-D shape without ``downmix``), before anything
                is sent; later chunks of an iterable fail the stream instead.
            ValueError: ``pace`` is not positive.
        """
        return self._stream(setup, audio, sample_rate=sample_rate, pace=pace,
                            trailing_silence_s=trailing_silence_s, keep_audio=keep_audio,
                            connection=connection, retry=self.options.retry, downmix=downmix)

    def _stream(self, setup: SetupLike, audio: AudioSource, *, sample_rate: int | None,
                pace: float | None, trailing_silence_s: float, keep_audio: bool,
                connection: Connection | None, retry: RetryPolicy | None,
                downmix: bool) -> OpenStream:
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        checked = setup
        # Bad arguments (and a bad whole array) fail now, before anything is sent.
        InputChunker(checked, sample_rate=sample_rate, downmix=downmix).check(audio)

        def chunker() -> InputChunker:  # one per attempt: a fresh resampler each time
            return InputChunker(checked, sample_rate=sample_rate,
                                trailing_silence_s=trailing_silence_s, downmix=downmix)

        return OpenStream(self, setup, chunker, audio, pace=pace, keep_audio=keep_audio,
                          connection=connection, retry=retry)

    async def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
                  *, pace: float | None = 1.0, trailing_silence_s: float = TRAILING_SILENCE_S,
                  downmix: bool = False) -> S2SResult:
        """Translate a whole input and return the whole result.

        Arguments as for ``s2s_stream``. Nothing reaches the caller before
        the result, so any transient failure is retried as ``options.retry``
        says (the whole request again, on a new connection), if the input
        can be replayed.

        Raises:
            S2SError: On any failure, with ``partial_result`` attached and
                ``attempts`` listing every attempt.
        """
        backend = self.backend
        retrier = Retrier(self.options.retry, start=backend.current_time())
        source: _Source | None = None
        while True:
            opened = self._stream(setup, audio, sample_rate=sample_rate, pace=pace,
                                  trailing_silence_s=trailing_silence_s, keep_audio=True,
                                  connection=None, retry=None, downmix=downmix)
            opened.source = source
            try:
                async with opened as stream:
                    return await stream.result()
            except S2SError as exc:
                decision = retrier.on_failure(exc, now=backend.current_time(),
                                              output_reached_caller=False,
                                              replayable=opened.replayable())
                if isinstance(decision, GiveUp):
                    raise
                source = opened.source
                await backend.sleep_until(backend.current_time() + decision.delay_s)
