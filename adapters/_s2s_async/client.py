"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), typed."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

import numpy as np

from s2s_core.audio_input import Chunk, InputChunker, Pacer
from s2s_core.errors import InvalidAudio, S2SError
from s2s_core.events import Audio, ServerEvent
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

from .backend import Backend
from .common import ClientBase, ClientOptions, MissingCredentials, SetupLike, StreamInfo
from .session import Connection, Request, Session, open_connection, unwrap_group

__all__ = ["S2SClient", "S2SStream", "ClientOptions", "MissingCredentials", "connect",
           "AudioSource", "SetupLike"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece] | AsyncIterable[AudioPiece]
"""Input audio: all at once, or an (async) iterable of chunks."""


@asynccontextmanager
async def connect(backend: Backend, url: str, setup: SetupLike, *, api_key: str | None = None,
                  token: str | None = None, keep_audio: bool = False,
                  options: ClientOptions | None = None) -> AsyncIterator[Session]:
    """Open a connection, send ``setup``, and yield the session."""
    options = options or ClientOptions()
    if not isinstance(setup, Setup):
        setup = Setup.from_mapping(setup)
    async with open_connection(
        backend, url, api_key=api_key, token=token, ssl_context=options.ssl_context,
        extra_headers=options.extra_headers, connect_timeout=options.connect_timeout,
        ready_timeout=options.ready_timeout, idle_timeout=options.idle_timeout,
        close_timeout=options.close_timeout, ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout, max_message_size=options.max_message_size,
        queue_size=options.queue_size, proxy=options.proxy, trust_env=options.trust_env,
    ) as conn:
        request = await conn.start(setup, keep_audio=keep_audio)
        yield Session(conn, request)


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

    async def iter_events(self) -> AsyncIterator[ServerEvent]:
        """Every event after ``ready``, until ``EndOfStream`` (included)."""
        async for event in self._request:
            if event is not self._request.ready:
                yield event

    async def iter_audio(self) -> AsyncIterator[bytes]:
        """Output audio bytes, in the setup's output format."""
        async for event in self._request:
            if type(event) is Audio:
                yield event.audio

    async def result(self) -> S2SResult:
        """Consume the rest and return the result (see ``keep_audio``)."""
        self._request._track.keep_audio = True
        return await self._request.result()


class S2SClient(ClientBase):
    """Client of the S2S API with the official SDK's three calls.

    Each adapter subclasses it to set ``backend``; the arguments are those
    of ``ClientBase`` (api_key, base_url, region, token, ssl_context, options).
    """

    backend: ClassVar[Backend]

    @property
    def _backend(self) -> Backend:
        return self.backend

    def s2s_realtime(self, **setup: Any) -> AbstractAsyncContextManager[Session]:
        """A session you drive yourself: ``async with client.s2s_realtime(...) as s2s:``."""
        return connect(self._backend, self.url, Setup.from_mapping(setup),
                       api_key=self._api_key, token=self._token, options=self.options)

    def connection(self) -> AbstractAsyncContextManager[Connection]:
        """A bare connection for several requests (``await conn.start(setup)``)."""
        o = self.options
        return open_connection(
            self._backend, self.url, api_key=self._api_key, token=self._token,
            ssl_context=o.ssl_context, extra_headers=o.extra_headers,
            connect_timeout=o.connect_timeout, ready_timeout=o.ready_timeout,
            idle_timeout=o.idle_timeout, close_timeout=o.close_timeout,
            ping_interval=o.ping_interval, ping_timeout=o.ping_timeout,
            max_message_size=o.max_message_size, queue_size=o.queue_size, proxy=o.proxy,
            trust_env=o.trust_env)

    @asynccontextmanager
    async def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                         sample_rate: int | None = None, pace: float | None = 1.0,
                         trailing_silence_s: float = 2.0, keep_audio: bool = False,
                         connection: Connection | None = None) -> AsyncIterator[S2SStream]:
        """Stream ``audio`` in the background; yield the stream once ready.

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
        """
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        chunker = InputChunker(setup, sample_rate=sample_rate,
                               trailing_silence_s=trailing_silence_s)
        backend = self._backend
        if connection is not None:
            async with _running_stream(backend, connection, setup, chunker, audio,
                                       pace, keep_audio) as stream:
                yield stream
            return
        async with self.connection() as conn, _running_stream(
                backend, conn, setup, chunker, audio, pace, keep_audio) as stream:
            yield stream

    async def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
                  *, pace: float | None = 1.0, trailing_silence_s: float = 2.0) -> S2SResult:
        """Translate a whole input and return the whole result.

        Raises:
            S2SError: On any failure, with ``partial_result`` attached.
        """
        async with self.s2s_stream(setup, audio, sample_rate=sample_rate, pace=pace,
                                   trailing_silence_s=trailing_silence_s,
                                   keep_audio=True) as stream:
            return await stream.result()


@asynccontextmanager
async def _running_stream(backend: Backend, conn: Connection, setup: Setup,
                          chunker: InputChunker, audio: AudioSource,
                          pace: float | None, keep_audio: bool) -> AsyncIterator[S2SStream]:
    request = await conn.start(setup, keep_audio=keep_audio)
    failure: BaseException | None = None
    try:
        async with backend.task_group() as tasks:
            tasks.start_soon(_feed, backend, request, chunker, audio, pace)
            try:
                await request.wait_ready()
                yield S2SStream(request)
            finally:
                tasks.cancel_scope.cancel()
    except BaseException as exc:
        failure = unwrap_group(exc, backend.cancelled_class())
    if failure is not None:
        raise failure


_WRITE_BATCH = 48 * 1024


async def _feed(backend: Backend, request: Request, chunker: InputChunker, audio: AudioSource,
                pace: float | None) -> None:
    """Send the whole source, paced, then end_of_stream; stop quietly if the request ends."""
    pacer = Pacer(pace, backend.current_time())

    async def send(chunks: Iterable[Chunk]) -> None:
        # The chunks that are due go into the core together and out in one write
        # (up to _WRITE_BATCH): one await per batch, not per chunk.
        batch: list[bytes | memoryview] = []
        size = 0
        for chunk in chunks:
            due = pacer.due()
            if due is not None and due > backend.current_time():
                if batch:
                    await flush(batch)
                    size = 0
                await backend.sleep_until(due)
            batch.append(chunk.data)
            pacer.sent(chunk)
            size += len(chunk.data)
            if size >= _WRITE_BATCH:
                await flush(batch)
                size = 0
        if batch:
            await flush(batch)

    async def flush(batch: list[bytes | memoryview]) -> None:
        request._queue_audio_many(batch)
        batch.clear()
        await request._flush("send_audio")

    try:
        if isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
            await send(chunker.feed(audio))
        elif isinstance(audio, AsyncIterable):
            async for piece in audio:
                await send(chunker.feed(piece))
        else:
            for piece in audio:
                await send(chunker.feed(piece))
        await send(chunker.finish())
        await request.send_end_of_stream()
    except InvalidAudio as exc:
        # Bad input fails the request here, so the consumer sees it instead of a hang.
        request._end(exc)
        await request._conn.aclose(1000, "bad input")
    except S2SError:
        pass  # the request already ended; the reader delivers the reason
