"""A connection with its one request: what ``connect`` and ``s2s_realtime`` give (blocking)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from s2s_core.client_base import SessionBase, SetupLike
from s2s_core.errors import S2SError
from s2s_core.events import Ready, ServerEvent
from s2s_core.options import ClientOptions
from s2s_core.protocol import AudioInput
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup

from .connection import Connection, OpenConnection
from .request import Request

__all__ = ["Session", "OpenSession"]


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


class OpenSession:
    """``with connect(...) as session``: connect and send setup; close on exit.

    With ``retry`` (what ``S2SClient.s2s_realtime`` passes), the entry also
    waits for ``ready``, and a transient failure until then (connect,
    upgrade refusal, refused setup) is retried on a new connection: no audio
    was sent yet, so nothing is replayed.
    """

    def __init__(self, url: str, setup: SetupLike, *, api_key: str | None, token: str | None,
                 keep_audio: bool, options: ClientOptions,
                 retry: RetryPolicy | None = None) -> None:
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
        try:
            request = conn.start(self._setup, keep_audio=self._keep_audio)
            if wait_ready:
                request.wait_ready()
        except BaseException as exc:
            self._open.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return Session(conn, request)

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self._open.__exit__(exc_type, *exc_info)
