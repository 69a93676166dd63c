"""A connection with its one request: what ``connect`` and ``s2s_realtime`` give (async)."""

from __future__ import annotations

from s2s_core.client_base import SessionBase, SetupLike
from s2s_core.errors import S2SError
from s2s_core.events import Ready, ServerEvent
from s2s_core.options import ClientOptions
from s2s_core.protocol import AudioInput
from s2s_core.results import S2SResult
from s2s_core.retry import GiveUp, Retrier, RetryPolicy
from s2s_core.setup import Setup

from .backend import Backend
from .connection import Connection, OpenConnection
from .request import EventIterator, Request

__all__ = ["Session", "OpenSession"]


class Session(SessionBase[Connection, Request]):
    """A connection with its one request.

    Send with ``send_audio``/``send_end_of_stream``, iterate with
    ``async for event in session``; ``connection`` and ``request`` give the
    layers below. ``aclose`` works from any task.
    """

    async def wait_ready(self) -> Ready:
        """Wait for ``ready``."""
        return await self.request.wait_ready()

    async def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (``downmix``: average a 2-D array's channels)."""
        await self.request.send_audio(audio, downmix=downmix)

    async def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        await self.request.send_end_of_stream()

    send_eos = send_end_of_stream
    """The official SDK's name."""

    async def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``."""
        return await self.request.receive()

    def __aiter__(self) -> EventIterator:
        return EventIterator(self.request)

    async def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result."""
        return await self.request.result()

    async def aclose(self) -> None:
        """Close the connection (the closing handshake, bounded by its timeout)."""
        await self.connection.aclose()

    close = aclose


class OpenSession:
    """``async with connect(...) as session``: connect and send setup; close on exit.

    With ``retry`` (what ``S2SClient.s2s_realtime`` passes), the entry also
    waits for ``ready``, and a transient failure until then (connect,
    upgrade refusal, refused setup) is retried on a new connection: no audio
    was sent yet, so nothing is replayed. Without it (``connect``), the
    session is yielded right after setup is sent. The exit (or
    ``session.aclose()``) may happen in another task.
    """

    def __init__(self, backend: Backend, url: str, setup: SetupLike, *, api_key: str | None,
                 token: str | None, keep_audio: bool, options: ClientOptions,
                 retry: RetryPolicy | None = None) -> None:
        self._backend = backend
        self._setup = setup if isinstance(setup, Setup) else Setup.from_mapping(setup)
        self._open = OpenConnection(backend, url, api_key=api_key, token=token,
                                    options=options)
        self._keep_audio = keep_audio
        self._retry = retry
        self._conn: Connection | None = None

    async def __aenter__(self) -> Session:
        if self._retry is None:
            return await self._attempt(wait_ready=False)
        backend = self._backend
        retrier = Retrier(self._retry, start=backend.current_time())
        while True:
            try:
                return await self._attempt(wait_ready=True)
            except S2SError as exc:
                decision = retrier.on_failure(exc, now=backend.current_time(),
                                              output_reached_caller=False, replayable=True)
                if isinstance(decision, GiveUp):
                    raise
                await backend.sleep_until(backend.current_time() + decision.delay_s)

    async def _attempt(self, *, wait_ready: bool) -> Session:
        conn = self._conn = await self._open.__aenter__()
        try:
            request = await conn.start(self._setup, keep_audio=self._keep_audio)
            if wait_ready:
                await request.wait_ready()
        except BaseException:
            await conn.aclose()
            raise
        return Session(conn, request)

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.aclose()
