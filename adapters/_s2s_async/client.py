"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), typed, async."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, ClassVar, Unpack

from s2s_core.client_base import ClientBase, SetupLike, StreamInfo
from s2s_core.client_docs import ASYNC, S2S, S2S_REALTIME, S2S_STREAM_CLASS, shared_doc
from s2s_core.errors import S2SError
from s2s_core.events import Audio, StreamEvent
from s2s_core.feeder import Step
from s2s_core.input_plan import AudioPiece, InputAttempts, InputOptions, InputSource, input_failure
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

from .backend import Backend, Background
from .chain import RequestChain
from .connection import Connection, OpenConnection
from .request import Request
from .rest import AsyncRestMixin
from .session import OpenSession

__all__ = ["S2SClient", "S2SStream", "OpenStream", "AudioSource"]

AudioSource = AudioPiece | Iterable[AudioPiece] | AsyncIterable[AudioPiece]
"""Input audio: all at once, or an (async) iterable of chunks."""


@shared_doc(S2S_STREAM_CLASS)
class S2SStream(StreamInfo[Request]):
    """A running input fed from an audio source in the background (``S2SClient.s2s_stream``)."""

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

    def __init__(self, client: S2SClient, attempts: InputAttempts[Connection]) -> None:
        self._client = client
        self.attempts = attempts
        self._conn: Connection | None = None
        self._chain: RequestChain | None = None
        self._feeding: Background | None = None

    async def __aenter__(self) -> S2SStream:
        backend, attempts = self._client.backend, self.attempts
        attempts.begin(backend.current_time())
        while True:
            try:
                return await self._attempt()
            except S2SError as exc:
                await self._stop()
                delay = attempts.retry_delay(exc, backend.current_time())
                await backend.sleep_until(backend.current_time() + delay)
            except BaseException:
                await self._stop()
                raise

    async def _attempt(self) -> S2SStream:
        attempts = self.attempts
        conn = attempts.connection
        if conn is None:
            conn = self._conn = await self._client.connection().__aenter__()
        setup = attempts.plan.setup
        request = await conn.start(setup, keep_audio=False)
        backend = conn.backend
        feeder, stitcher = attempts.plan.start(backend.current_time())
        chain = self._chain = RequestChain(self._client, setup, feeder, stitcher, conn, request)
        source = attempts.new_source()
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


async def _feed(chain: RequestChain, source: InputSource) -> None:
    """Send the source as the feeder decides, request by request; stop if a request fails."""
    backend, feeder = chain.backend, chain.feeder
    try:
        while True:
            step = feeder.next_step(backend.current_time())
            kind = step.kind
            if kind is Step.NEED_INPUT:
                feeder.pulled(await _pull(source, backend))
            elif kind is Step.WAIT:
                assert step.until is not None
                await backend.sleep_until(step.until)
            elif kind is Step.DONE:
                return
            else:
                await chain.run(step)
                if kind is Step.SEND:
                    # A write that found room did not yield: let the reader run (ready,
                    # errors) between batches of an unpaced input.
                    await backend.checkpoint()
    except Exception as exc:
        failure = input_failure(exc)
        if failure is not None:
            await chain.fail_input(failure)


async def _pull(source: InputSource, backend: Backend) -> AudioPiece | None:
    """The next piece of the caller's source (plain or async), or None at its end.

    A plain source that may wait for its next piece (a generator over a
    microphone, a pipe) is pulled in a worker thread, so the loop and the
    output it delivers go on meanwhile.
    """
    if source.async_pieces is None:
        if source.may_block:
            source.pulled = True  # a thread left inside it must not be taken over
            return await backend.run_sync_in_thread(source.next)
        return source.next()
    source.pulled = True
    return await anext(source.async_pieces, None)


class S2SClient(ClientBase[AudioSource, Connection, OpenStream], AsyncRestMixin):
    """Client of the S2S API: the official SDK's three calls and its REST calls.

    ``s2s_realtime``, ``s2s_stream``, ``s2s``; ``voice_list``, ``voice_get``,
    ``credits``, ``mint_token``. Each adapter subclasses it to set
    ``backend``; the arguments are those of ``ClientBase`` (api_key,
    base_url, region, token, ssl_context, options).
    """

    backend: ClassVar[Backend]

    @shared_doc(S2S_REALTIME, **ASYNC)
    def s2s_realtime(self, **setup: Any) -> OpenSession:
        """A session you drive yourself: ``async with client.s2s_realtime(...) as s2s:``."""
        return OpenSession(self.backend, self.url, Setup.from_mapping(setup),
                           api_key=self._api_key, token=self._token, keep_audio=False,
                           options=self.options, retry=self.options.retry, client=self)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``await conn.start(setup)``)."""
        return OpenConnection(self.backend, self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def _open_stream(self, attempts: InputAttempts[Connection]) -> OpenStream:
        return OpenStream(self, attempts)

    @shared_doc(S2S, **ASYNC)
    async def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
                  **options: Unpack[InputOptions]) -> S2SResult:
        """Translate a whole input and return the whole result (awaitable)."""
        backend = self.backend
        whole = self._whole_input(setup, audio, sample_rate, options, backend.current_time())
        while True:
            opened = OpenStream(self, whole.attempt())
            try:
                async with opened as stream:
                    return await stream.result()
            except S2SError as exc:
                delay = whole.retry_delay(opened.attempts, exc, backend.current_time())
                await backend.sleep_until(backend.current_time() + delay)
