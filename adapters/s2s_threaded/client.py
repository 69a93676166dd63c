"""The official SDK's S2S surface (``s2s_realtime``, ``s2s_stream``, ``s2s``), blocking."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any, Unpack

import numpy as np

from s2s_core.audio_input import InputChunker
from s2s_core.client_base import ClientBase, SetupLike, StreamInfo
from s2s_core.errors import InvalidAudio, S2SError
from s2s_core.events import Audio, ServerEvent
from s2s_core.feeder import InputFeeder, Step
from s2s_core.options import TRAILING_SILENCE_S, ClientOptions, OptionKwargs
from s2s_core.results import S2SResult
from s2s_core.setup import Setup

from .connection import Connection, OpenConnection
from .request import TIMEOUT, Request
from .rest import RestMixin
from .session import OpenSession

__all__ = ["S2SClient", "S2SStream", "OpenStream", "connect", "open_connection",
           "AudioSource"]

AudioPiece = bytes | bytearray | memoryview | np.ndarray
AudioSource = AudioPiece | Iterable[AudioPiece]
"""Input audio: all at once, or an iterable of chunks."""


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
    """Sends a stream's input as the core's feeder decides, from the consuming thread."""

    def __init__(self, request: Request, feeder: InputFeeder, audio: AudioSource) -> None:
        self._request = request
        self._feeder = feeder
        if isinstance(audio, (bytes, bytearray, memoryview, np.ndarray)):
            self._source: Iterator[AudioPiece] = iter((audio,))
        else:
            self._source = iter(audio)
        self.due: float | None = -math.inf
        """When the pump must run next (-inf: now; None: all input sent)."""

    def run(self) -> None:
        """Send what is due now (one write at most), then say when to run next."""
        request, feeder = self._request, self._feeder
        try:
            with request.consumer_writing():
                while True:
                    step = feeder.next_step(time.monotonic())
                    kind = step.kind
                    if kind is Step.SEND:
                        request.send_chunks(step.chunks)
                        self.due = -math.inf  # more may be due: after a look at the events
                        return
                    if kind is Step.NEED_INPUT:
                        piece = next(self._source, None)
                        if piece is None:
                            feeder.finish()
                        else:
                            feeder.feed(piece)
                        continue
                    if kind is Step.WAIT:
                        self.due = step.until
                        return
                    if kind is Step.END_OF_STREAM:
                        request.send_end_of_stream()
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
        conn = self._request._conn
        with conn._lock:
            conn.table.fail_input(self._request.handle, error, now=time.monotonic())
        conn.close(1000, "bad input")


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

    def __init__(self, request: Request, pump: _InputPump) -> None:
        self._request = request
        self._pump = pump

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
        self._request.handle.keep_audio = True
        while self._next() is not None:
            pass
        return self._request.handle.result()

    def _next(self) -> ServerEvent | None:
        """The next event, sending every chunk that falls due meanwhile."""
        pump = self._pump
        while True:
            event = self._request.receive_until(pump.due)
            if event is not TIMEOUT:
                return event
            pump.run()

    def _wait_ready(self) -> None:
        request, pump = self._request, self._pump
        while not request.wait_ready_until(pump.due):
            pump.run()


class OpenStream:
    """``with client.s2s_stream(...) as stream``: connect (unless given), setup, ready."""

    def __init__(self, client: S2SClient, setup: Setup, chunker: InputChunker,
                 audio: AudioSource, *, pace: float | None, keep_audio: bool,
                 connection: Connection | None) -> None:
        if pace is not None and pace <= 0:
            raise ValueError(f"pace must be > 0 or None, got {pace}")
        self._client = client
        self._setup = setup
        self._chunker = chunker
        self._audio = audio
        self._pace = pace
        self._keep_audio = keep_audio
        self._given = connection
        self._open: OpenConnection | None = None

    def __enter__(self) -> S2SStream:
        conn = self._given
        if conn is None:
            self._open = self._client.connection()
            conn = self._open.__enter__()
        try:
            request = conn.start(self._setup, keep_audio=self._keep_audio)
            feeder = InputFeeder(self._chunker, pace=self._pace, now=time.monotonic())
            stream = S2SStream(request, _InputPump(request, feeder, self._audio))
            stream._wait_ready()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return stream

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._open is not None:
            self._open.__exit__(exc_type, *exc_info)


class S2SClient(ClientBase, RestMixin):
    """Client of the S2S API, blocking: the official SDK's three calls and its REST calls.

    ``s2s_realtime``, ``s2s_stream``, ``s2s``; ``voice_list``, ``voice_get``,
    ``credits``, ``mint_token``.

    The arguments are those of ``ClientBase`` (api_key, base_url, region,
    token, ssl_context, options).
    """

    def s2s_realtime(self, **setup: Any) -> OpenSession:
        """A session you drive yourself: ``with client.s2s_realtime(...) as s2s:``."""
        return OpenSession(self.url, Setup.from_mapping(setup), api_key=self._api_key,
                           token=self._token, keep_audio=False, options=self.options)

    def connection(self) -> OpenConnection:
        """A bare connection for several requests (``conn.start(setup)``)."""
        return OpenConnection(self.url, api_key=self._api_key, token=self._token,
                              options=self.options)

    def s2s_stream(self, setup: SetupLike, audio: AudioSource, *,
                   sample_rate: int | None = None, pace: float | None = 1.0,
                   trailing_silence_s: float = TRAILING_SILENCE_S, keep_audio: bool = False,
                   connection: Connection | None = None) -> OpenStream:
        """Start a request fed from ``audio``; the stream is yielded once ready.

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

        Raises:
            InvalidSetup: The setup is invalid (before anything is sent).
            ValueError: ``pace`` is not positive.
        """
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        chunker = InputChunker(setup, sample_rate=sample_rate,
                               trailing_silence_s=trailing_silence_s)
        return OpenStream(self, setup, chunker, audio, pace=pace, keep_audio=keep_audio,
                          connection=connection)

    def s2s(self, setup: SetupLike, audio: AudioSource, sample_rate: int | None = None,
            *, pace: float | None = 1.0,
            trailing_silence_s: float = TRAILING_SILENCE_S) -> S2SResult:
        """Translate a whole input and return the whole result.

        Raises:
            S2SError: On any failure, with ``partial_result`` attached.
        """
        with self.s2s_stream(setup, audio, sample_rate=sample_rate, pace=pace,
                             trailing_silence_s=trailing_silence_s, keep_audio=True) as stream:
            return stream.result()
