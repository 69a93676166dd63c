"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), blocking."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any, Unpack

from s2s_core.client_base import ClientBase, SetupLike, StreamInfo
from s2s_core.client_docs import (
    BLOCKING,
    CONNECT,
    OPEN_CONNECTION,
    S2S,
    S2S_REALTIME,
    S2S_STREAM_CLASS,
    shared_doc,
)
from s2s_core.errors import S2SError
from s2s_core.events import Audio, StreamEvent
from s2s_core.feeder import Step
from s2s_core.input_plan import AudioPiece, InputAttempts, InputOptions, input_failure
from s2s_core.options import ClientOptions, OptionKwargs
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

from .chain import RequestChain
from .connection import Connection, OpenConnection
from .request import TIMEOUT, Request
from .rest import RestMixin
from .session import OpenSession
from .source import PENDING, Source

__all__ = ["S2SClient", "S2SStream", "OpenStream", "connect", "open_connection",
           "AudioSource"]

AudioSource = AudioPiece | Iterable[AudioPiece]
"""Input audio: all at once, or an iterable of chunks."""


@shared_doc(CONNECT)
def connect(url: str, setup: SetupLike, *, api_key: str | None = None,
            token: str | None = None, keep_audio: bool = False,
            options: ClientOptions | None = None, **kwargs: Unpack[OptionKwargs]) -> OpenSession:
    """Open a session: ``with connect(...) as session``; close when the block exits.

    Connects and sends ``setup`` on entry.
    """
    return OpenSession(url, setup, api_key=api_key, token=token, keep_audio=keep_audio,
                       options=ClientOptions.from_kwargs(options, **kwargs))


@shared_doc(OPEN_CONNECTION)
def open_connection(url: str, *, api_key: str | None = None, token: str | None = None,
                    options: ClientOptions | None = None,
                    **kwargs: Unpack[OptionKwargs]) -> OpenConnection:
    """Open a bare connection for several requests (``conn.start(setup)``); close on exit."""
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
                if kind is Step.NEED_INPUT:
                    piece = self._source.take()
                    self._awaiting_input = piece is PENDING
                    if piece is PENDING:
                        self.due = None  # until the source's thread wakes the chain
                        return
                    feeder.pulled(piece)
                elif kind is Step.WAIT:
                    self.due = step.until
                    return
                elif kind is Step.WAIT_FOR_OUTPUT:
                    # This thread reads that request: run again once it did (``unblock``).
                    self._blocked_on, self.due = step.segment, None
                    return
                elif kind is Step.DONE:
                    self.due = None
                    return
                else:
                    chain.run(step, consumer=True)
                    if kind is Step.SEND:
                        self.due = -math.inf  # more may be due: after a look at the events
                        return
        except Exception as exc:
            self.due = None
            failure = input_failure(exc)
            if failure is not None:  # so its consumer sees it (with the partial result)
                self._chain.fail_input(failure)


@shared_doc(S2S_STREAM_CLASS)
class S2SStream(StreamInfo[Request]):
    """A running input fed from an audio source by the thread that reads it (``s2s_stream``).

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

    def __init__(self, client: S2SClient, attempts: InputAttempts[Connection]) -> None:
        self._client = client
        self.attempts = attempts
        self._open: OpenConnection | None = None
        self._chain: RequestChain | None = None
        self._source: Source | None = None

    def __enter__(self) -> S2SStream:
        attempts = self.attempts
        attempts.begin(time.monotonic())
        while True:
            try:
                return self._attempt()
            except S2SError as exc:
                self._close(type(exc), exc)
                time.sleep(attempts.retry_delay(exc, time.monotonic()))
            except BaseException as exc:
                self._close(type(exc), exc)
                raise

    def _attempt(self) -> S2SStream:
        attempts = self.attempts
        conn = attempts.connection
        if conn is None:
            self._open = self._client.connection()
            conn = self._open.__enter__()
        setup = attempts.plan.setup
        request = conn.start(setup, keep_audio=False)
        feeder, stitcher = attempts.plan.start(time.monotonic())
        chain = self._chain = RequestChain(self._client, setup, feeder, stitcher, conn, request)
        source = self._source = Source(attempts.new_source(pull_async=False), wake=chain.wake)
        stream = S2SStream(chain, _InputPump(chain, source))
        stream._wait_ready()
        return stream

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._close(exc_type, None)

    def _close(self, exc_type: type[BaseException] | None, exc: BaseException | None) -> None:
        chain, self._chain = self._chain, None
        if chain is not None:
            chain.close()
        source, self._source = self._source, None
        if source is not None:
            source.close()
        opened, self._open = self._open, None
        if opened is not None:
            opened.__exit__(exc_type, exc, None)


class S2SClient(ClientBase[AudioSource, Connection, OpenStream], RestMixin):
    """Client of the S2S API, blocking: the official SDK's three calls and its REST calls.

    ``s2s_realtime``, ``s2s_stream``, ``s2s``; ``voice_list``, ``voice_get``,
    ``credits``, ``mint_token``.

    The arguments are those of ``ClientBase`` (api_key, base_url, region,
    token, ssl_context, options).
    """

    @shared_doc(S2S_REALTIME, **BLOCKING)
    def s2s_realtime(self, **setup: Any) -> OpenSession:
        """A session you drive yourself: ``with client.s2s_realtime(...) as s2s:``.

        Send from one thread and iterate in another.
        """
        return OpenSession(self.url, Setup.from_mapping(setup), api_key=self._api_key,
                           token=self._token, keep_audio=False, options=self.options,
                           retry=self.options.retry, client=self)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``conn.start(setup)``)."""
        return OpenConnection(self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def _open_stream(self, attempts: InputAttempts[Connection]) -> OpenStream:
        return OpenStream(self, attempts)

    @shared_doc(S2S, **BLOCKING)
    def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
            **options: Unpack[InputOptions]) -> S2SResult:
        """Translate a whole input and return the whole result (blocking)."""
        whole = self._whole_input(setup, audio, sample_rate, options, time.monotonic())
        while True:
            opened = OpenStream(self, whole.attempt())
            try:
                with opened as stream:
                    return stream.result()
            except S2SError as exc:
                time.sleep(whole.retry_delay(opened.attempts, exc, time.monotonic()))
