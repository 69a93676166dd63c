"""A connection with its one request: what ``connect`` and ``s2s_realtime`` give (async)."""

from __future__ import annotations

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

from .backend import Backend
from .chain import RequestChain
from .connection import Connection, Connector, OpenConnection
from .request import EventIterator, Request

__all__ = ["Session", "SplitSession", "OpenSession"]


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


@shared_doc(SPLIT_SESSION)
class SplitSession(SplitSessionBase[RequestChain], Session):
    """A live session whose input may outlast one request (``S2SClient.s2s_realtime``)."""

    def __init__(self, conn: Connection, request: Request, chain: RequestChain) -> None:
        super().__init__(conn, request)
        self.chain = chain

    @shared_doc(SPLIT_SEND_AUDIO)
    async def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (rolling over to a new request when due)."""
        self._feed(audio, downmix=downmix)
        await self._run()

    async def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows (the held audio goes out first)."""
        self._finish()
        await self._run()

    send_eos = send_end_of_stream

    async def _run(self) -> None:
        """Do what the feeder says until it wants more input (or is done)."""
        chain, feeder = self.chain, self.chain.feeder
        while True:
            step = feeder.next_step(chain.backend.current_time())
            if step.kind is Step.NEED_INPUT or step.kind is Step.DONE:
                return
            await chain.run(step)  # a live session is never paced: no WAIT

    async def receive(self) -> StreamEvent | None:  # type: ignore[override]
        """The next event of the joined stream, or None after its end."""
        return await self.chain.receive()

    def __aiter__(self) -> _ChainEvents:  # type: ignore[override]
        return _ChainEvents(self.chain)

    async def result(self) -> S2SResult:
        """Consume the remaining events and return the joined result."""
        return await self.chain.result()

    async def aclose(self) -> None:
        """Close every connection of the session."""
        await self.chain.aclose()
        await self.connection.aclose()

    close = aclose


class _ChainEvents:
    """``async for event in session`` over the joined stream."""

    __slots__ = ("_chain",)

    def __init__(self, chain: RequestChain) -> None:
        self._chain = chain

    def __aiter__(self) -> _ChainEvents:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._chain.receive()
        if event is None:
            raise StopAsyncIteration
        return event


class OpenSession(OpenSessionBase[Connection, Request, Session, SplitSession]):
    """``async with connect(...) as session``: connect and send setup; close on exit.

    With ``retry`` (what ``S2SClient.s2s_realtime`` passes), the entry also
    waits for ``ready``, and a transient failure until then (connect,
    upgrade refusal, refused setup) is retried on a new connection: no audio
    was sent yet, so nothing is replayed. Without it (``connect``), the
    session is yielded right after setup is sent. The exit (or
    ``session.aclose()``) may happen in another task.
    """

    _session_type = Session
    _split_type = SplitSession
    _chain_type = RequestChain

    def __init__(self, backend: Backend, url: str, setup: SetupLike, *, api_key: str | None,
                 token: str | None, keep_audio: bool, options: ClientOptions,
                 retry: RetryPolicy | None = None, client: Connector | None = None) -> None:
        super().__init__(setup, keep_audio=keep_audio, retry=retry, client=client)
        self._backend = backend
        self._open = OpenConnection(backend, url, api_key=api_key, token=token,
                                    options=options)
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
                delay = retrier.retry_delay(exc, now=backend.current_time(),
                                            output_reached_caller=False, replayable=True)
                await backend.sleep_until(backend.current_time() + delay)

    async def _attempt(self, *, wait_ready: bool) -> Session:
        conn = self._conn = await self._open.__aenter__()
        try:
            request = await conn.start(self._setup, keep_audio=self._request_keeps_audio)
            if wait_ready:
                await request.wait_ready()
        except BaseException:
            await conn.aclose()
            raise
        return self._made(conn, request, self._backend.current_time())

    async def __aexit__(self, *exc_info: object) -> None:
        if self._split is not None:
            await self._split.chain.aclose()
        if self._conn is not None:
            await self._conn.aclose()
