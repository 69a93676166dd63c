"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), typed, async."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from s2s_core.audio_input import InputChunker
from s2s_core.client_base import ClientBase, SetupLike, StreamInfo, plan_input
from s2s_core.errors import InvalidAudio, S2SError
from s2s_core.events import Audio, StreamEvent
from s2s_core.feeder import InputFeeder, Step, replayable
from s2s_core.options import LEAD_IN_SILENCE_S, TRAILING_SILENCE_S
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .backend import Backend, Background
from .chain import RequestChain
from .connection import Connection, OpenConnection
from .request import Request
from .rest import AsyncRestMixin
from .session import OpenSession

__all__ = ["S2SClient", "S2SStream", "OpenStream", "AudioSource"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece] | AsyncIterable[AudioPiece]
"""Input audio: all at once, or an (async) iterable of chunks."""


class S2SStream(StreamInfo[Request]):
    """A running input fed from an audio source (``S2SClient.s2s_stream``).

    Iterate ``iter_audio()`` for output bytes or ``iter_events()`` for every
    event; text segments collect in ``text_with_timestamps`` either way. An
    input longer than ``options.max_request_s`` runs as several requests,
    read here as one stream: each later request's ``Ready`` comes as a
    ``RequestStarted`` event, timings are in input time, and one
    ``EndOfStream`` ends it.
    """

    _request: RequestChain

    def __init__(self, chain: RequestChain) -> None:
        self._request = chain

    def iter_events(self) -> AsyncIterator[StreamEvent]:
        """Every event after the first ``ready``, until ``EndOfStream`` (included)."""
        return _Events(self._request)

    def iter_audio(self) -> AsyncIterator[bytes]:
        """Output audio bytes, in the setup's output format."""
        return _AudioBytes(self._request)

    async def result(self) -> S2SResult:
        """Consume the rest and return the result (see ``keep_audio``)."""
        return await self._request.result()


class _Events:
    """An input's events after ready (a class: no async generator left to finalize)."""

    __slots__ = ("_chain",)

    def __init__(self, chain: RequestChain) -> None:
        self._chain = chain

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> StreamEvent:
        chain = self._chain
        while True:
            event = await chain.receive()
            if event is None:
                raise StopAsyncIteration
            if event is not chain.ready:
                return event


class _AudioBytes:
    """An input's output audio bytes."""

    __slots__ = ("_chain",)

    def __init__(self, chain: RequestChain) -> None:
        self._chain = chain

    def __aiter__(self) -> _AudioBytes:
        return self

    async def __anext__(self) -> bytes:
        while True:
            event = await self._chain.receive()
            if event is None:
                raise StopAsyncIteration
            if type(event) is Audio:
                return event.audio


class OpenStream:
    """``async with client.s2s_stream(...) as stream``: the input flows in the background.

    On entry: connect (unless given a connection), send setup, start sending
    the input (paced), wait for ready; a transient failure until then is
    retried as ``retry`` says (a one-shot source only if nothing was pulled
    from it yet). Later requests of a split input open their own connections
    (see ``RequestChain``). On exit: stop sending, close.
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
        self._chain: RequestChain | None = None
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
        request = await conn.start(self._setup, keep_audio=False)
        backend = conn.backend
        feeder = InputFeeder(self._chunker(), pace=self._pace, now=backend.current_time())
        stitcher = Stitcher(feeder.plan, self._setup.output_format, keep_audio=self._keep_audio)
        chain = self._chain = RequestChain(self._client, self._setup, feeder, stitcher, conn,
                                           request)
        source = self.source = _Source(self._audio, self.source)
        self._feeding = backend.start_background(lambda: _feed(chain, source), "s2s-feeder")
        await request.wait_ready()
        return S2SStream(chain)

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        # Shielded: a cancelled caller must still close what it opened.
        with self._client.backend.cancel_shielded():
            feeding, self._feeding = self._feeding, None
            if feeding is not None:
                feeding.cancel()
                await feeding.done.wait()
            chain, self._chain = self._chain, None
            if chain is not None:
                await chain.aclose()
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.aclose()


async def _feed(chain: RequestChain, source: _Source) -> None:
    """Send the source as the feeder decides, request by request; stop if a request fails."""
    backend, feeder = chain.backend, chain.feeder
    try:
        while True:
            step = feeder.next_step(backend.current_time())
            kind = step.kind
            if kind is Step.SEND:
                await chain.send(step.segment, step.chunks)
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
            elif kind is Step.START:
                await chain.start(step.segment)
            elif kind is Step.WAIT_FOR_OUTPUT:
                await chain.wait_finished(step.segment)
            elif kind is Step.END_OF_STREAM:
                await chain.end(step.segment)
            else:
                return
    except InvalidAudio as exc:
        await chain.fail_input(exc)
    except S2SError:
        pass  # the request already ended; the consumer gets the reason
    except Exception as exc:
        error = InvalidAudio(f"the audio source raised {exc!r}")
        error.__cause__ = exc
        await chain.fail_input(error)


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
        audio was sent yet). Once it is yours, its first request is not
        retried. Past ``options.max_request_s`` of audio it rolls over to a
        new request at a pause while you keep sending (``SplitSession``); a
        later request is retried until its output reaches you.
        """
        return OpenSession(self.backend, self.url, Setup.from_mapping(setup),
                           api_key=self._api_key, token=self._token, keep_audio=False,
                           options=self.options, retry=self.options.retry, client=self)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``await conn.start(setup)``)."""
        return OpenConnection(self.backend, self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                   sample_rate: int | None = None, pace: float | None = 1.0,
                   trailing_silence_s: float = TRAILING_SILENCE_S,
                   lead_in_silence_s: float = LEAD_IN_SILENCE_S, keep_audio: bool = False,
                   connection: Connection | None = None, downmix: bool = False) -> OpenStream:
        """Stream ``audio`` in the background; the stream is yielded once ready.

        An input longer than ``options.max_request_s`` (290 s) is split at
        pauses into several requests, each on its own connection opened while
        the previous one's output still streams back; the stream reads them
        as one (see ``S2SStream``).

        Args:
            setup: A ``Setup`` or the official SDK's setup dict.
            audio: Bytes, a numpy array (int16, float32/64 clipped), or an
                (async) iterable of chunks.
            sample_rate: Rate of numpy input when not the format's rate.
            pace: 1.0 sends at real time (recommended by the vendor), 2.0
                twice as fast, None as fast as possible.
            trailing_silence_s: Silence appended to raw (pcm, G.711) input,
                and to every request but the last of a split input.
            lead_in_silence_s: Silence sent before raw input, and before
                every request but the first of a split input (the recognizer
                may drop a word in a stream's first ~200 ms). Output timings
                stay in input time.
            keep_audio: Keep every output chunk for ``result()`` (off by
                default so a long stream does not grow memory; ``result()``
                then holds the audio not iterated before it).
            connection: Run the first request on this connection instead of
                opening one (later requests of a split input open their own).
            downmix: Average the channels of 2-D numpy input, (samples,
                channels) or (channels, samples), instead of refusing it.

        Raises:
            InvalidSetup: The setup is invalid (before anything is sent).
            InvalidAudio: ``sample_rate`` or a silence length is out of range,
                or ``audio`` is an array that cannot be sent (its dtype, or a
                2-D shape without ``downmix``), before anything is sent;
                later chunks of an iterable fail the stream instead.
            InputTooLong: A whole opus input is longer than ``max_request_s``.
            ValueError: ``pace`` is not positive.
        """
        return self._stream(setup, audio, sample_rate=sample_rate, pace=pace,
                            trailing_silence_s=trailing_silence_s,
                            lead_in_silence_s=lead_in_silence_s, keep_audio=keep_audio,
                            connection=connection, retry=self.options.retry, downmix=downmix)

    def _stream(self, setup: SetupLike, audio: AudioSource, *, sample_rate: int | None,
                pace: float | None, trailing_silence_s: float, lead_in_silence_s: float,
                keep_audio: bool, connection: Connection | None,
                retry: RetryPolicy | None, downmix: bool) -> OpenStream:
        checked, chunker = plan_input(setup, audio, self.options, sample_rate=sample_rate,
                                      trailing_silence_s=trailing_silence_s,
                                      lead_in_silence_s=lead_in_silence_s, downmix=downmix)
        return OpenStream(self, checked, chunker, audio, pace=pace, keep_audio=keep_audio,
                          connection=connection, retry=retry)

    async def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
                  *, pace: float | None = 1.0,
                  trailing_silence_s: float = TRAILING_SILENCE_S,
                  lead_in_silence_s: float = LEAD_IN_SILENCE_S,
                  downmix: bool = False) -> S2SResult:
        """Translate a whole input and return the whole result.

        Nothing reaches the caller before the result, so any transient
        failure is retried as ``options.retry`` says, if the input can be
        replayed: the whole input again, on a new connection, when its first
        request failed; a later request of a split input alone. An input
        longer than ``options.max_request_s`` is split (see ``s2s_stream``);
        the result joins every request (``request_ids``).

        Raises:
            S2SError: On any failure, with ``partial_result`` attached and
                ``attempts`` listing every attempt (and ``segment``, the part
                of a split input whose request failed).
        """
        backend = self.backend
        retrier = Retrier(self.options.retry, start=backend.current_time())
        source: _Source | None = None
        while True:
            opened = self._stream(setup, audio, sample_rate=sample_rate, pace=pace,
                                  trailing_silence_s=trailing_silence_s,
                                  lead_in_silence_s=lead_in_silence_s, keep_audio=True,
                                  connection=None, retry=None, downmix=downmix)
            opened.source = source
            try:
                async with opened as stream:
                    return await stream.result()
            except S2SError as exc:
                first = exc.segment is None or exc.segment.index == 0
                decision = retrier.on_failure(exc, now=backend.current_time(),
                                              output_reached_caller=False,
                                              replayable=first and opened.replayable())
                if isinstance(decision, GiveUp):
                    raise
                source = opened.source
                await backend.sleep_until(backend.current_time() + decision.delay_s)
