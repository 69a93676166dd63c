"""A connection with its one request: what ``connect`` and ``s2s_realtime`` give (blocking)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np

from s2s_core._pcm import mono_samples
from s2s_core.audio_input import InputChunker
from s2s_core.client_base import SessionBase, SetupLike
from s2s_core.errors import LocalProtocolError, S2SError
from s2s_core.events import Ready, ServerEvent, StreamEvent
from s2s_core.feeder import InputFeeder, Step
from s2s_core.options import LEAD_IN_SILENCE_S, TRAILING_SILENCE_S, ClientOptions
from s2s_core.protocol import AudioInput
from s2s_core.results import S2SResult, TextWithTimestamps
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .chain import RequestChain
from .connection import Connection, Connector, OpenConnection
from .request import Request

__all__ = ["Session", "SplitSession", "OpenSession"]


class Session(SessionBase[Connection, Request]):
    """A connection with its one request.

    Send with ``send_audio``/``send_end_of_stream``, iterate with
    ``for event in session``; ``connection`` and ``request`` give the layers
    below. Sending everything before reading can stall on a large input
    (the server stops reading while its replies wait): send from one thread
    and iterate in another, or use ``S2SClient.s2s_stream``.
    """

    def wait_ready(self) -> Ready:
        """Wait for ``ready``."""
        return self.request.wait_ready()

    def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (``downmix``: average a 2-D array's channels)."""
        self.request.send_audio(audio, downmix=downmix)

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        self.request.send_end_of_stream()

    send_eos = send_end_of_stream
    """The official SDK's name."""

    def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``."""
        return self.request.receive()

    def __iter__(self) -> Iterator[ServerEvent]:
        return iter(self.request)

    def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        return self.request.result()

    def close(self) -> None:
        """Close the connection (the closing handshake, bounded by its timeout)."""
        self.connection.close()


class SplitSession(Session):
    """A live session whose input may outlast one request (``S2SClient.s2s_realtime``).

    Past ``options.max_request_s`` of audio, the session rolls over to a new
    request at a pause while you keep calling ``send_audio``: the next
    request is set up on its own connection while the previous one's output
    still streams back, and iteration reads them as one stream (each later
    request's ``Ready`` comes as a ``RequestStarted``; one ``EndOfStream``).
    Audio near a request's end may be held back until a pause decides where
    it goes (at most ``options.split_search_s``). Send from one thread and
    iterate in another: a rollover waits for the request before last to be
    read. ``connection`` and ``request`` are the first request's; ``chain``
    holds them all.
    """

    def __init__(self, conn: Connection, request: Request, chain: RequestChain) -> None:
        super().__init__(conn, request)
        self.chain = chain
        self._sending = threading.Lock()

    @property
    def text_with_timestamps(self) -> list[TextWithTimestamps]:
        """Text segments read so far, in input time."""
        return self.chain.text_with_timestamps

    @property
    def request_ids(self) -> list[str]:
        """The server's ids of the requests read so far, in input order."""
        return self.chain.stitcher.request_ids

    def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (rolling over to a new request when due).

        ``downmix`` averages a 2-D array's channels.

        Raises:
            InvalidAudio: The chunk is not valid for the input format.
            S2SError: The request it goes to failed (and is not retried).
        """
        with self._sending:
            self._check_open("send_audio")
            self.chain.feeder.feed(_mono(audio) if downmix else audio)
            self._run()

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows (the held audio goes out first)."""
        with self._sending:
            self._check_open("send_end_of_stream")
            self.chain.feeder.finish()
            self._run()

    send_eos = send_end_of_stream

    def _check_open(self, what: str) -> None:
        if self.chain.feeder.finished:
            raise LocalProtocolError(f"cannot {what}: the session's audio already ended "
                                     "(send_end_of_stream was called)")

    def _run(self) -> None:
        """Do what the feeder says until it wants more input (or is done)."""
        chain, feeder = self.chain, self.chain.feeder
        while True:
            step = feeder.next_step(time.monotonic())
            kind = step.kind
            if kind is Step.SEND:
                chain.send(step.segment, step.chunks)
            elif kind is Step.START:
                chain.start(step.segment)
            elif kind is Step.WAIT_FOR_OUTPUT:
                chain.wait_finished(step.segment)
            elif kind is Step.END_OF_STREAM:
                chain.end(step.segment)
            elif kind is Step.NEED_INPUT or kind is Step.DONE:
                return
            else:  # pragma: no cover - a live session is never paced
                raise AssertionError(f"unexpected step {step}")

    def receive(self) -> StreamEvent | None:  # type: ignore[override]
        """The next event of the joined stream, or None after its end."""
        return self.chain.receive()

    def __iter__(self) -> Iterator[StreamEvent]:  # type: ignore[override]
        while (event := self.chain.receive()) is not None:
            yield event

    def result(self) -> S2SResult:
        """Consume the remaining events and return the joined result."""
        return self.chain.result()

    def close(self) -> None:
        """Close every connection of the session."""
        self.chain.close()
        self.connection.close()


class OpenSession:
    """``with connect(...) as session``: connect and send setup; close on exit.

    With ``retry`` (what ``S2SClient.s2s_realtime`` passes), the entry also
    waits for ``ready``, and a transient failure until then (connect,
    upgrade refusal, refused setup) is retried on a new connection: no audio
    was sent yet, so nothing is replayed.
    """

    def __init__(self, url: str, setup: SetupLike, *, api_key: str | None, token: str | None,
                 keep_audio: bool, options: ClientOptions,
                 retry: RetryPolicy | None = None, client: Connector | None = None) -> None:
        self._client = client
        self._session: SplitSession | None = None
        self._setup = setup if isinstance(setup, Setup) else Setup.from_mapping(setup)
        self._open = OpenConnection(url, api_key=api_key, token=token, options=options)
        self._keep_audio = keep_audio
        self._retry = retry

    def __enter__(self) -> Session:
        if self._retry is None:
            return self._attempt(wait_ready=False)
        retrier = Retrier(self._retry, start=time.monotonic())
        while True:
            try:
                return self._attempt(wait_ready=True)
            except S2SError as exc:
                decision = retrier.on_failure(exc, now=time.monotonic(),
                                              output_reached_caller=False, replayable=True)
                if isinstance(decision, GiveUp):
                    raise
                time.sleep(decision.delay_s)

    def _attempt(self, *, wait_ready: bool) -> Session:
        conn = self._open.__enter__()
        split = self._client is not None and self._client.options.max_request_s is not None
        try:
            request = conn.start(self._setup, keep_audio=self._keep_audio and not split)
            if wait_ready:
                request.wait_ready()
        except BaseException as exc:
            self._open.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if not split:
            return Session(conn, request)
        assert self._client is not None
        session = self._session = self._split_session(self._client, conn, request)
        return session

    def _split_session(self, client: Connector, conn: Connection,
                       request: Request) -> SplitSession:
        options = client.options
        chunker = InputChunker(self._setup, trailing_silence_s=TRAILING_SILENCE_S,
                               lead_in_silence_s=LEAD_IN_SILENCE_S,
                               max_request_s=options.max_request_s,
                               split_search_s=options.split_search_s, live=True)
        feeder = InputFeeder(chunker, pace=None, now=time.monotonic())
        step = feeder.next_step(time.monotonic())
        assert step.kind is Step.NEED_INPUT  # a live input starts with nothing to send
        stitcher = Stitcher(feeder.plan, self._setup.output_format, keep_audio=self._keep_audio)
        return SplitSession(conn, request, RequestChain(client, self._setup, feeder, stitcher,
                                                        conn, request))

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._session is not None:
            self._session.chain.close()
        self._open.__exit__(exc_type, *exc_info)


def _mono(audio: AudioInput) -> AudioInput:
    """A 2-D array mixed down to mono (other audio as it is)."""
    return mono_samples(audio, downmix=True) if isinstance(audio, np.ndarray) else audio
