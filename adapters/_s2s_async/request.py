"""One request on a connection: send its audio, iterate its events (async).

The bookkeeping (queue, result, why a send is refused) is the core's
``RequestHandle``; here is only the waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from s2s_core.client_base import AsyncRequestIteration, RequestView
from s2s_core.errors import S2SError
from s2s_core.events import Ready, ServerEvent
from s2s_core.protocol import AudioInput
from s2s_core.request_table import WAIT, RequestHandle, RequestTable
from s2s_core.results import S2SResult

from .backend import Backend, Event


class RequestLink(Protocol):
    """What a request needs of its connection (``Connection`` is one)."""

    @property
    def backend(self) -> Backend: ...

    @property
    def table(self) -> RequestTable: ...

    now: Callable[[], float]
    """The backend's clock, bound once per connection."""
    new_event: Callable[[], Event]
    """The backend's event type, bound once per connection."""

    async def flush_for(self, handle: RequestHandle, what: str) -> None: ...

    def consumer_took(self) -> None: ...

    def _after_input(self) -> None: ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None: ...


__all__ = ["Request", "EventIterator"]

_FAIR_TAKES = 32
"""Events taken without waiting before a schedule point (fairness, cancellability)."""


class Request(RequestView):
    """One request on a connection: send its audio, iterate its events.

    Iteration yields ``Ready``, ``Text``, ``Audio``, ``UnknownMessage`` and
    finally ``EndOfStream``, then stops. A server ``error`` raises the
    matching ``ServerError``; a connection that ends first raises
    ``ConnectionClosedError`` (or the timeout or protocol error that ended
    it). Every error carries ``partial_result`` with what arrived before;
    events that arrived before a failure are yielded before it is raised.
    """

    def __init__(self, conn: RequestLink, handle: RequestHandle) -> None:
        self._conn = conn
        self.handle = handle
        self._takes = 0

    # -- sending --

    async def send_audio(self, audio: AudioInput, *, downmix: bool = False) -> None:
        """Send one chunk of input audio (bytes in the input format, or samples).

        ``downmix`` averages the channels of a 2-D array (samples, channels)
        or (channels, samples) instead of refusing it.

        Raises:
            S2SError: The request failed or ended (the reason, with the
                partial result), or the chunk is invalid (``InvalidAudio``).
        """
        await self.send_chunks((audio,), downmix=downmix)

    async def send_chunks(self, chunks: Sequence[AudioInput], *, downmix: bool = False) -> None:
        """Send several chunks in one write."""
        conn = self._conn
        conn.table.send_audio(self.handle, chunks, now=conn.now(), downmix=downmix)
        await conn.flush_for(self.handle, "send_audio")

    async def send_end_of_stream(self) -> None:
        """Tell the server no more audio follows."""
        conn = self._conn
        conn.table.send_end_of_stream(self.handle, now=conn.now())
        await conn.flush_for(self.handle, "send_end_of_stream")

    send_eos = send_end_of_stream
    """The official SDK's name."""

    # -- receiving --

    async def wait_ready(self) -> Ready:
        """Wait for ``ready`` (events before it stay queued for iteration).

        Raises:
            S2SError: The request failed before ready (timeout, error, close).
        """
        handle = self.handle
        while handle.ready is None:
            failure = handle.ready_failure()
            if failure is not None:
                raise failure
            await self._wait_for_events()
        return handle.ready

    async def receive(self) -> ServerEvent | None:
        """The next event, or None after ``EndOfStream``.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        handle, conn = self.handle, self._conn
        self._takes += 1
        if self._takes >= _FAIR_TAKES:
            self._takes = 0
            await conn.backend.checkpoint()
        while True:
            try:
                item = handle.next()
            except S2SError:
                # A cancelled caller gets its cancellation, not the failure it caused.
                await conn.backend.checkpoint()
                raise
            if item is not WAIT:
                conn.consumer_took()
                return item  # type: ignore[return-value]
            self._takes = 0
            await self._wait_for_events()

    async def _wait_for_events(self) -> None:
        handle = self.handle
        waker = handle.waker
        if waker is None:
            waker = handle.waker = self._conn.new_event()
        await waker.wait()

    def __aiter__(self) -> EventIterator:
        return EventIterator(self)

    async def result(self) -> S2SResult:
        """Consume the remaining events and return the whole result.

        Raises:
            S2SError: The request failed (``partial_result`` attached).
        """
        async for _ in EventIterator(self):
            pass
        return self.handle.result()


class EventIterator(AsyncRequestIteration[Request]):
    """``async for event in request``: a plain class, so nothing is left to finalize."""

    async def __anext__(self) -> ServerEvent:
        request = self._request
        request.claim(self)
        try:
            event = await request.receive()
        except BaseException:
            request.release(self)
            raise
        return self._took(event)
