"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), blocking."""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

from _s2s_async.common import ClientBase, ClientOptions, SetupLike, StreamInfo
from s2s_core.audio_input import Chunk, InputChunker, Pacer
from s2s_core.errors import S2SError
from s2s_core.events import Audio, ServerEvent
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

from ._connection import Connection, Session, open_connection
from ._request import Request, _Signal

__all__ = ["S2SClient", "S2SStream", "connect", "AudioSource", "SetupLike"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece]
"""Input audio: all at once, or an iterable of chunks."""


def connect(
    url: str,
    setup: SetupLike,
    *,
    api_key: str | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    connect_timeout: float | None = 10.0,
    ready_timeout: float | None = 15.0,
    idle_timeout: float | None = 60.0,
    close_timeout: float | None = 5.0,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    max_message_size: int | None = 16 * 2**20,
    queue_size: int = 256,
    keep_audio: bool = False,
) -> AbstractContextManager[Session]:
    """Open a session: connect, send ``setup``; close when the block exits.

    Args:
        url: The ``ws://``/``wss://`` S2S endpoint.
        setup: A ``Setup`` or a dict of its fields.
        api_key: Sent as ``x-api-key``.
        token: Single-use token, sent as ``?token=``.
        ssl_context: Trust a custom CA (verification is always on).
        extra_headers: More upgrade headers.
        connect_timeout: TCP + TLS + upgrade (``ConnectTimeout``).
        ready_timeout: Setup to ready (``ReadyTimeout``).
        idle_timeout: Silence while a request is live (``IdleTimeout``).
        close_timeout: Closing handshake (``CloseTimeout``).
        ping_interval: Keepalive pings (None: off).
        ping_timeout: Pong wait (``KeepaliveTimeout``).
        max_message_size: Largest message accepted (``MessageTooBig``).
        queue_size: Events buffered before reading pauses (backpressure).
        keep_audio: Keep output audio for ``result()``.
    """
    options = ClientOptions(ssl_context=ssl_context, extra_headers=extra_headers,
                            connect_timeout=connect_timeout, ready_timeout=ready_timeout,
                            idle_timeout=idle_timeout, close_timeout=close_timeout,
                            ping_interval=ping_interval, ping_timeout=ping_timeout,
                            max_message_size=max_message_size, queue_size=queue_size)
    return _session(url, setup, api_key=api_key, token=token, keep_audio=keep_audio,
                    options=options)


def _open(url: str, api_key: str | None, token: str | None,
          o: ClientOptions) -> AbstractContextManager[Connection]:
    return open_connection(
        url, api_key=api_key, token=token, ssl_context=o.ssl_context,
        extra_headers=o.extra_headers, connect_timeout=o.connect_timeout,
        ready_timeout=o.ready_timeout, idle_timeout=o.idle_timeout,
        close_timeout=o.close_timeout, ping_interval=o.ping_interval,
        ping_timeout=o.ping_timeout, max_message_size=o.max_message_size,
        queue_size=o.queue_size, proxy=o.proxy, trust_env=o.trust_env)


@contextmanager
def _session(url: str, setup: SetupLike, *, api_key: str | None, token: str | None,
             keep_audio: bool, options: ClientOptions) -> Iterator[Session]:
    if not isinstance(setup, Setup):
        setup = Setup.from_mapping(setup)
    with _open(url, api_key, token, options) as conn:
        request = conn.start(setup, keep_audio=keep_audio)
        yield Session(conn, request)


_WRITE_BATCH = 48 * 1024


class _Feeder:
    """Sends a stream's input, paced, from whichever thread consumes the stream."""

    def __init__(self, request: Request, chunker: InputChunker, audio: AudioSource,
                 pacer: Pacer) -> None:
        self._request = request
        self._chunks = _chunks(chunker, audio)
        self._pacer = pacer
        self.done = False

    def due(self) -> float | None:
        """When the next chunk is due (-inf: now; None: everything is sent)."""
        if self.done:
            return None
        due = self._pacer.due()
        return -math.inf if due is None else due

    def send_next(self) -> None:
        """Send every chunk now due (one write, up to _WRITE_BATCH), or end_of_stream."""
        request = self._request
        pacer = self._pacer
        try:
            with request._consumer_writing():
                batch: list[bytes | memoryview] = []
                queued = 0
                while queued < _WRITE_BATCH:
                    due = pacer.due()
                    if queued and due is not None and due > time.monotonic():
                        break
                    chunk = next(self._chunks, None)
                    if chunk is None:
                        if batch:
                            request._queue_audio_many(batch)
                            request._conn.flush()
                        self.done = True
                        request.send_end_of_stream()
                        return
                    batch.append(chunk.data)
                    pacer.sent(chunk)
                    queued += len(chunk.data)
                request._queue_audio_many(batch)
                request._conn.flush()
        except S2SError as exc:
            # A failed request already holds its reason; a bad input fails it
            # here, so the consumer gets it (with the partial result).
            self.done = True
            request._input_failed(exc)
        except BaseException:
            self.done = True
            raise


def _chunks(chunker: InputChunker, audio: AudioSource) -> Iterator[Chunk]:
    if isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
        yield from chunker.feed(audio)
    else:
        for piece in audio:
            yield from chunker.feed(piece)
    yield from chunker.finish()


class S2SStream(StreamInfo):
    """A running request fed from an audio source (``S2SClient.s2s_stream``).

    Iterate ``iter_audio()`` for output bytes or ``iter_events()`` for every
    event; text segments collect in ``text_with_timestamps`` either way.

    There is no sender thread: the input is sent by the thread that iterates.
    While it waits for the next event it waits at most until the next chunk
    is due, sends every chunk that is due, and waits again, so input keeps
    flowing at the pace while you consume events. Input stops while you do
    not iterate (``result()`` iterates to the end). Iterating ``request``
    directly sends nothing.
    """

    _request: Request

    def __init__(self, request: Request, feeder: _Feeder) -> None:
        self._request = request
        self._feeder = feeder

    @property
    def request(self) -> Request:
        """The underlying request."""
        return self._request

    def iter_events(self) -> Iterator[ServerEvent]:
        """Every event after ``ready``, until ``EndOfStream`` (included)."""
        while (event := self._next()) is not None:
            if event is not self._request.ready:
                yield event

    def iter_audio(self) -> Iterator[bytes]:
        """Output audio bytes, in the setup's output format."""
        while (event := self._next()) is not None:
            if type(event) is Audio:
                yield event.audio

    def result(self) -> S2SResult:
        """Consume the rest and return the result (see ``keep_audio``)."""
        self._request._track.keep_audio = True
        while self._next() is not None:
            pass
        return self._request.collector.result()

    def _next(self) -> ServerEvent | None:
        """The next event, sending every chunk that falls due meanwhile."""
        while True:
            event = self._request._receive_until(self._feeder.due())
            if event is not _Signal.TIMEOUT:
                return event
            self._feeder.send_next()

    def _wait_ready(self) -> None:
        request = self._request
        while not request._wait_ready_until(self._feeder.due()):
            self._feeder.send_next()
        request.wait_ready()


class S2SClient(ClientBase):
    """Client of the S2S API with the official SDK's three calls, blocking.

    The arguments are those of ``ClientBase`` (api_key, base_url, region,
    token, ssl_context, options).
    """

    def s2s_realtime(self, **setup: Any) -> AbstractContextManager[Session]:
        """A session you drive yourself: ``with client.s2s_realtime(...) as s2s:``."""
        return _session(self.url, Setup.from_mapping(setup), api_key=self._api_key,
                        token=self._token, keep_audio=False, options=self.options)

    def connection(self) -> AbstractContextManager[Connection]:
        """A bare connection for several requests (``conn.start(setup)``)."""
        return _open(self.url, self._api_key, self._token, self.options)

    @contextmanager
    def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                   sample_rate: int | None = None, pace: float | None = 1.0,
                   trailing_silence_s: float = 2.0, keep_audio: bool = False,
                   connection: Connection | None = None) -> Iterator[S2SStream]:
        """Start a request fed from ``audio``; yield the stream once ready.

        The input is sent while you iterate the stream (see ``S2SStream``).

        Args:
            setup: A ``Setup`` or the official SDK's setup dict.
            audio: Bytes, a numpy array (int16, float32/64 clipped), or an
                iterable of chunks.
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
        pacer = Pacer(pace, 0.0)  # validates pace before we connect
        if connection is not None:
            yield _start_stream(connection, setup, chunker, audio, pacer, keep_audio)
            return
        with self.connection() as conn:
            yield _start_stream(conn, setup, chunker, audio, pacer, keep_audio)

    def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
            *, pace: float | None = 1.0, trailing_silence_s: float = 2.0) -> S2SResult:
        """Translate a whole input and return the whole result.

        Raises:
            S2SError: On any failure, with ``partial_result`` attached.
        """
        with self.s2s_stream(setup, audio, sample_rate=sample_rate, pace=pace,
                             trailing_silence_s=trailing_silence_s, keep_audio=True) as stream:
            return stream.result()


def _start_stream(conn: Connection, setup: Setup, chunker: InputChunker, audio: AudioSource,
                  pacer: Pacer, keep_audio: bool) -> S2SStream:
    request = conn.start(setup, keep_audio=keep_audio)
    pacer.start = time.monotonic()
    stream = S2SStream(request, _Feeder(request, chunker, audio, pacer))
    stream._wait_ready()
    return stream
