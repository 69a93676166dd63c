"""A connection with its one request: what ``connect`` and ``s2s_realtime`` give (blocking)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from s2s_core.client_base import SetupLike
from s2s_core.client_docs import SPLIT_SEND_AUDIO, SPLIT_SESSION, shared_doc
from s2s_core.errors import S2SError
from s2s_core.events import Ready, ServerEvent, StreamEvent
from s2s_core.feeder import Step
from s2s_core.options import ClientOptions
from s2s_core.protocol import AudioInput
from s2s_core.results import S2SResult
from s2s_core.retry import Retrier, RetryPolicy
from s2s_core.session_base import OpenSessionBase, SessionBase, SplitSessionBase

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


@shared_doc(SPLIT_SESSION)
class SplitSession(SplitSessionBase[RequestChain], Session):
    """A live session whose input may outlast one request (``S2SClient.s2s_realtime``).

    Send from one thread and iterate in another: a rollover waits for the
    request before last to be read.
    """

    def __init__(self, conn: Connection, request: Request, chain: RequestChain) -> None:
        super().__init__(conn, request)
        self.chain = chain
        self._sending = threading.Lock()

    @shared_doc(SPLIT_SEND_AUDIO)
    def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (rolling over to a new request when due)."""
        with self._sending:
            self._feed(audio, downmix=downmix)
            self._run()

    def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows (the held audio goes out first)."""
        with self._sending:
            self._finish()
            self._run()

    send_eos = send_end_of_stream

    def _run(self) -> None:
        """Do what the feeder says until it wants more input (or is done)."""
        feeder = self.chain.feeder
        while True:
            step = feeder.next_step(time.monotonic())
            if step.kind is Step.NEED_INPUT or step.kind is Step.DONE:
                return
            self.chain.run(step)  # a live session is never paced: no WAIT

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


class OpenSession(OpenSessionBase[Connection, Request, Session, SplitSession]):
    """``with connect(...) as session``: connect and send setup; close on exit.

    With ``retry`` (what ``S2SClient.s2s_realtime`` passes), the entry also
    waits for ``ready``, and a transient failure until then (connect,
    upgrade refusal, refused setup) is retried on a new connection: no audio
    was sent yet, so nothing is replayed.
    """

    _session_type = Session
    _split_type = SplitSession
    _chain_type = RequestChain

    def __init__(self, url: str, setup: SetupLike, *, api_key: str | None, token: str | None,
                 keep_audio: bool, options: ClientOptions,
                 retry: RetryPolicy | None = None, client: Connector | None = None) -> None:
        super().__init__(setup, keep_audio=keep_audio, retry=retry, client=client)
        self._open = OpenConnection(url, api_key=api_key, token=token, options=options)

    def __enter__(self) -> Session:
        if self._retry is None:
            return self._attempt(wait_ready=False)
        retrier = Retrier(self._retry, start=time.monotonic())
        while True:
            try:
                return self._attempt(wait_ready=True)
            except S2SError as exc:
                time.sleep(retrier.retry_delay(exc, now=time.monotonic(),
                                               output_reached_caller=False, replayable=True))

    def _attempt(self, *, wait_ready: bool) -> Session:
        conn = self._open.__enter__()
        try:
            request = conn.start(self._setup, keep_audio=self._request_keeps_audio)
            if wait_ready:
                request.wait_ready()
        except BaseException as exc:
            self._open.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self._made(conn, request, time.monotonic())

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._split is not None:
            self._split.chain.close()
        self._open.__exit__(exc_type, *exc_info)
