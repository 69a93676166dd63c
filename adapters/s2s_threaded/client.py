"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), blocking."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any, Unpack

from s2s_core.audio_input import InputChunker
from s2s_core.client_base import ClientBase, SetupLike, StreamInfo, plan_input
from s2s_core.errors import InvalidAudio, S2SError
from s2s_core.events import Audio, StreamEvent
from s2s_core.feeder import InputFeeder, Step, replayable
from s2s_core.options import LEAD_IN_SILENCE_S, TRAILING_SILENCE_S, ClientOptions, OptionKwargs
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .chain import RequestChain
from .connection import Connection, OpenConnection
from .request import TIMEOUT, Request
from .rest import RestMixin
from .session import OpenSession
from .source import PENDING, AudioSource, Source

__all__ = ["S2SClient", "S2SStream", "OpenStream", "connect", "open_connection",
           "AudioSource"]


def connect(url: str, setup: SetupLike, *, api_key: str | None = None,
            token: str | None = None, keep_audio: bool = False,
            options: ClientOptions | None = None, **kwargs: Unpack[OptionKwargs]) -> OpenSession:
    """Open a session: connect, send ``setup``; close when the block exits.

    Args:
        url: The ``ws://``/``wss://`` S2S endpoint.
        setup: A ``Setup`` or a dict of its fields.
        api_key: Sent as ``x-api-key``.
        token: Single-use token, sent as ``?token=``.
        keep_audio: Keep output audio for ``result()``.
        options: Every connection setting (``ClientOptions``).
        **kwargs: Any ``ClientOptions`` field, replacing ``options``'
            (``connect_timeout=``, ``idle_timeout=``, ``queue_size=``...).
    """
    return OpenSession(url, setup, api_key=api_key, token=token, keep_audio=keep_audio,
                       options=ClientOptions.from_kwargs(options, **kwargs))


def open_connection(url: str, *, api_key: str | None = None, token: str | None = None,
                    options: ClientOptions | None = None,
                    **kwargs: Unpack[OptionKwargs]) -> OpenConnection:
    """Open a bare connection for several requests (``conn.start(setup)``); close on exit.

    Arguments as for ``connect``.
    """
    return OpenConnection(url, api_key=api_key, token=token,
                          options=ClientOptions.from_kwargs(options, **kwargs))


class _InputPump:
    """Sends an input as the core's feeder decides, request by request, from the consumer."""

    def __init__(self, chain: RequestChain, source: Source) -> None:
        self._chain = chain
        self._source = source
        self.due: float | None = -math.inf
        """When the pump must run next (-inf: now; None: not before something changes)."""
        self._blocked_on: int | None = None
        self._awaiting_input = False

    def woken(self) -> bool:
        """Whether the piece the pump waits for came (the source's thread then wakes the chain)."""
        return self._awaiting_input and self._source.arrived()

    def unblock(self) -> None:
        """Run again once the request the next one waits for has been read to its end."""
        blocked = self._blocked_on
        if blocked is not None and self._chain.finished(blocked):
            self._blocked_on = None
            self.due = -math.inf

    def run(self) -> None:
        """Send what is due now (one write at most), then say when to run next."""
        chain, feeder = self._chain, self._chain.feeder
        try:
            while True:
                step = feeder.next_step(time.monotonic())
                kind = step.kind
                if kind is Step.SEND:
                    chain.send(step.segment, step.chunks, consumer=True)
                    self.due = -math.inf  # more may be due: after a look at the events
                    return
                if kind is Step.NEED_INPUT:
                    piece = self._source.take()
                    self._awaiting_input = piece is PENDING
                    if piece is PENDING:
                        self.due = None  # until the source's thread wakes the chain
                        return
                    if piece is None:
                        feeder.finish()
                    else:
                        feeder.feed(piece)
                    continue
                if kind is Step.WAIT:
                    self.due = step.until
                    return
                if kind is Step.START:
                    chain.start(step.segment, consumer=True)
                    continue
                if kind is Step.WAIT_FOR_OUTPUT:
                    # This thread reads that request: run again once it did (``unblock``).
                    self._blocked_on, self.due = step.segment, None
                    return
                if kind is Step.END_OF_STREAM:
                    chain.end(step.segment, consumer=True)
                    continue
                self.due = None
                return
        except InvalidAudio as exc:
            self._fail(exc)
        except S2SError:
            self.due = None  # the request already ended; the consumer gets the reason
        except Exception as exc:
            error = InvalidAudio(f"the audio source raised {exc!r}")
            error.__cause__ = exc
            self._fail(error)

    def _fail(self, error: S2SError) -> None:
        """Bad input fails the request, so its consumer sees it (with the partial result)."""
        self.due = None
        self._chain.fail_input(error)


class S2SStream(StreamInfo[Request]):
    """A running input fed from an audio source (``S2SClient.s2s_stream``).

    Iterate ``iter_audio()`` for output bytes or ``iter_events()`` for every
    event; text segments collect in ``text_with_timestamps`` either way. An
    input longer than ``options.max_request_s`` runs as several requests,
    read here as one stream: each later request's ``Ready`` comes as a
    ``RequestStarted`` event, timings are in input time, and one
    ``EndOfStream`` ends it.

    There is no sender thread: the input is sent by the thread that iterates.
    While it waits for the next event it waits at most until the next chunk
    is due, sends every chunk that is due, and waits again, so input keeps
    flowing at the pace while you consume events. Input stops while you do
    not iterate (``result()`` iterates to the end). Iterating ``request``
    directly sends nothing.

    A source that may block (any iterable but a list, a tuple, a
    ``BytesIO`` or a file on disk: a microphone, a pipe, a socket) is read
    by a thread of its own, a few pieces ahead at most, so events keep
    coming while it waits: the iterating thread wakes for an event or the
    next piece, whichever comes first. If the stream closes while that
    thread waits inside the source, it is left to end when the source
    returns (a daemon thread nothing waits for); otherwise it ends with the
    source or the stream.
    """

    _request: RequestChain

    def __init__(self, chain: RequestChain, pump: _InputPump) -> None:
        self._request = chain
        self._pump = pump

    def iter_events(self) -> Iterator[StreamEvent]:
        """Every event after the first ``ready``, until ``EndOfStream`` (included)."""
        first = self._request.ready
        while (event := self._next()) is not None:
            if event is not first:
                yield event

    def iter_audio(self) -> Iterator[bytes]:
        """Output audio bytes, in the setup's output format."""
        while (event := self._next()) is not None:
            if type(event) is Audio:
                yield event.audio

    def result(self) -> S2SResult:
        """Consume the rest and return the result (see ``keep_audio``)."""
        self._request.stitcher.keep_audio = True
        while self._next() is not None:
            pass
        return self._request.stitcher.result()

    def _next(self) -> StreamEvent | None:
        """The next event, sending every chunk that falls due meanwhile."""
        pump, chain = self._pump, self._request
        while True:
            pump.unblock()
            event = chain.receive_until(pump.due, pump.woken)
            if event is not TIMEOUT:
                return event
            pump.run()

    def _wait_ready(self) -> None:
        request, pump = self._request.requests[0], self._pump
        while not request.wait_ready_until(pump.due, pump.woken):
            pump.run()


class OpenStream:
    """``with client.s2s_stream(...) as stream``: connect (unless given), setup, ready.

    A transient failure until ready is retried as ``retry`` says (a one-shot
    source only if nothing was pulled from it yet). Later requests of a split
    input open their own connections (see ``RequestChain``).
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
        self._open: OpenConnection | None = None
        self._chain: RequestChain | None = None
        self.source: Source | None = None
        """The latest attempt's source (it tells whether anything was pulled)."""

    def __enter__(self) -> S2SStream:
        retrier = Retrier(self._retry, start=time.monotonic())
        while True:
            try:
                return self._attempt()
            except S2SError as exc:
                self._close(type(exc), exc)
                decision = retrier.on_failure(
                    exc, now=time.monotonic(), output_reached_caller=False,
                    replayable=self._given is None and self.replayable())
                if isinstance(decision, GiveUp):
                    raise
                time.sleep(decision.delay_s)
            except BaseException as exc:
                self._close(type(exc), exc)
                raise

    def replayable(self) -> bool:
        """Whether the input can be sent again from its start.

        A one-shot source can while nothing was pulled from it, including
        when the attempt failed before its source was made (connect, upgrade).
        """
        return replayable(self._audio) or self.source is None or not self.source.pulled

    def _attempt(self) -> S2SStream:
        conn = self._given
        if conn is None:
            self._open = self._client.connection()
            conn = self._open.__enter__()
        request = conn.start(self._setup, keep_audio=False)
        feeder = InputFeeder(self._chunker(), pace=self._pace, now=time.monotonic())
        stitcher = Stitcher(feeder.plan, self._setup.output_format, keep_audio=self._keep_audio)
        chain = self._chain = RequestChain(self._client, self._setup, feeder, stitcher, conn,
                                           request)
        source = self.source = Source(self._audio, self.source, wake=chain.wake)
        stream = S2SStream(chain, _InputPump(chain, source))
        stream._wait_ready()
        return stream

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._close(exc_type, None)

    def _close(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        chain, self._chain = self._chain, None
        if chain is not None:
            chain.close()
        if self.source is not None:
            self.source.close()  # kept: a retry may take its untouched iterator over
        opened, self._open = self._open, None
        if opened is not None:
            opened.__exit__(exc_type, exc, None)


class S2SClient(ClientBase, RestMixin):
    """Client of the S2S API, blocking: the official SDK's three calls and its REST calls.

    ``s2s_realtime``, ``s2s_stream``, ``s2s``; ``voice_list``, ``voice_get``,
    ``credits``, ``mint_token``.

    The arguments are those of ``ClientBase`` (api_key, base_url, region,
    token, ssl_context, options).
    """

    def s2s_realtime(self, **setup: Any) -> OpenSession:
        """A session you drive yourself: ``with client.s2s_realtime(...) as s2s:``.

        The session is yielded once ``ready`` came: connect failures and a
        refused setup before that are retried as ``options.retry`` says (no
        audio was sent yet). Once it is yours, its first request is not
        retried. Past ``options.max_request_s`` of audio it rolls over to a
        new request at a pause while you keep sending (``SplitSession``); a
        later request is retried until its output reaches you. Send from one
        thread and iterate in another.
        """
        return OpenSession(self.url, Setup.from_mapping(setup), api_key=self._api_key,
                           token=self._token, keep_audio=False, options=self.options,
                           retry=self.options.retry, client=self)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``conn.start(setup)``)."""
        return OpenConnection(self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                   sample_rate: int | None = None, pace: float | None = 1.0,
                   trailing_silence_s: float = TRAILING_SILENCE_S,
                   lead_in_silence_s: float = LEAD_IN_SILENCE_S, keep_audio: bool = False,
                   connection: Connection | None = None, downmix: bool = False) -> OpenStream:
        """Start an input fed from ``audio``; the stream is yielded once ready.

        The input is sent while you iterate the stream (see ``S2SStream``).
        An input longer than ``options.max_request_s`` (290 s) is split at
        pauses into several requests, each on its own connection opened while
        the previous one's output still streams back; the stream reads them
        as one.

        Args:
            setup: A ``Setup`` or the official SDK's setup dict.
            audio: Bytes, a numpy array (int16, float32/64 clipped), or an
                iterable of chunks.
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
            downmix: Average the channels of 2-D numpy input instead of
                refusing it.

        Raises:
            InvalidSetup: The setup is invalid (before anything is sent).
            InvalidAudio: A silence length, ``sample_rate`` or a whole array
                is refused (before anything is sent).
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

    def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
            *, pace: float | None = 1.0,
            trailing_silence_s: float = TRAILING_SILENCE_S,
            lead_in_silence_s: float = LEAD_IN_SILENCE_S, downmix: bool = False) -> S2SResult:
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
        retrier = Retrier(self.options.retry, start=time.monotonic())
        source: Source | None = None
        while True:
            opened = self._stream(setup, audio, sample_rate=sample_rate, pace=pace,
                                  trailing_silence_s=trailing_silence_s,
                                  lead_in_silence_s=lead_in_silence_s, keep_audio=True,
                                  connection=None, retry=None, downmix=downmix)
            opened.source = source
            try:
                with opened as stream:
                    return stream.result()
            except S2SError as exc:
                first = exc.segment is None or exc.segment.index == 0
                decision = retrier.on_failure(exc, now=time.monotonic(),
                                              output_reached_caller=False,
                                              replayable=first and opened.replayable())
                if isinstance(decision, GiveUp):
                    raise
                source = opened.source
                time.sleep(decision.delay_s)
