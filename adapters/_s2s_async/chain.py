"""The requests of one input read as one stream (async): the waiting of ``s2s_core.chain``.

The links and every decision (which request, what to send again, when to
retry, what the caller gets) are the core's ``ChainView``; here are the
locks, the wake-ups, connecting, writing and reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from s2s_core.chain import ChainLink, ChainView
from s2s_core.errors import S2SError
from s2s_core.events import StreamEvent
from s2s_core.feeder import FeedStep, InputFeeder, Step
from s2s_core.results import S2SResult
from s2s_core.setup import Setup
from s2s_core.stitcher import Stitcher

from .backend import Event
from .connection import Connection, Connector
from .primitives import Mutex
from .request import Request

__all__ = ["RequestChain"]

_Link = ChainLink[Connection, Request, Mutex]


class RequestChain(ChainView[Connection, Request, Mutex]):
    """The requests of one input, in order, for async callers (``ChainView``'s arguments)."""

    def __init__(self, client: Connector, setup: Setup, feeder: InputFeeder, stitcher: Stitcher,
                 conn: Connection, request: Request) -> None:
        self.backend = backend = client.backend
        self._client = client
        self._changed: Event = backend.event()
        super().__init__(client, setup, feeder, stitcher, conn, request)

    def _new_lock(self) -> Mutex:
        return Mutex(self.backend)

    # -- the input side --

    async def run(self, step: FeedStep) -> None:
        """Do one of the feeder's request steps (``START``, ``SEND``, ``WAIT_FOR_OUTPUT``,
        ``END_OF_STREAM``).

        Raises:
            S2SError: The request failed and is not retried (the consumer gets it too).
        """
        kind, segment, chunks = step.kind, step.segment, step.chunks
        if kind is Step.SEND:
            await self._deliver(segment, chunks, end=False)
        elif kind is Step.START:
            link = self._add(segment)
            async with link.lock:
                await self._open(segment, link, None)
        elif kind is Step.WAIT_FOR_OUTPUT:
            await self.wait_finished(segment)
        elif kind is Step.END_OF_STREAM:
            await self._deliver(segment, (), end=True)
        else:  # pragma: no cover - the callers handle the other steps
            raise AssertionError(f"not a request step: {kind}")

    async def _deliver(self, segment: int, chunks: Sequence[bytes | memoryview], *,
                       end: bool) -> None:
        """Send ``chunks`` (then end_of_stream, once, if ``end``), replacing a failed request."""
        link = self._links[segment]
        async with link.lock:
            while True:
                request = link.live()
                try:
                    await self._send(segment, link, request, chunks)
                    if end and not link.eos_sent:
                        link.eos_sent = True
                        await request.send_end_of_stream()
                    return
                except S2SError as exc:
                    await self._recover(segment, link, request, exc)

    async def wait_finished(self, segment: int) -> None:
        """Wait until the caller has read request ``segment`` to its end."""
        while not self.finished(segment):
            await self._changed.wait()

    async def fail_input(self, error: S2SError) -> None:
        """Bad input: fail the request it was going to, so its consumer sees it."""
        link = self._input_link(error)
        if link is None or link.conn is None or link.request is None:
            return
        conn = link.conn
        conn.table.fail_input(link.request.handle, error, now=self.backend.current_time())
        conn._after_input()
        await conn.aclose(1000, "bad input")

    async def _send(self, segment: int, link: _Link, request: Request,
                    chunks: Sequence[bytes | memoryview]) -> None:
        for batch in self._writes(segment, link, chunks):
            await request.send_chunks(batch)

    async def _open(self, segment: int, link: _Link, failed: S2SError | None) -> None:
        """Connect, set up and wait for ready, retrying as the policy says."""
        backend = self.backend
        self._opening(link, backend.current_time())
        while True:
            if failed is not None:
                delay = self._retry_delay(segment, link, failed, backend.current_time())
                await self.wait_finished(segment - 1)  # its concurrency slot is free then
                await backend.sleep_until(backend.current_time() + delay)
            try:
                await self._connect(link)
            except S2SError as exc:
                failed = exc
            else:
                self._notify()
                return

    async def _connect(self, link: _Link) -> None:
        conn = await self._client.connection().__aenter__()
        try:
            request = await conn.start(self._setup, keep_audio=False)
            await request.wait_ready()
        except BaseException:
            await conn.aclose()
            raise
        link.connected(conn, request)

    async def _recover(self, segment: int, link: _Link, request: Request,
                       error: S2SError) -> None:
        """``request`` failed: replace it while its output is unseen (else raise ``error``)."""
        stale = self._drop(segment, link, request, error)
        if stale is None:
            return  # a retry replaced it already
        await stale.aclose()
        await self._open(segment, link, error)
        if link.eos_sent:
            replacement = link.live()
            await self._send(segment, link, replacement, ())
            await replacement.send_end_of_stream()

    # -- the consumer side --

    async def receive(self) -> StreamEvent | None:
        """The next event of the joined stream, or None after its end.

        Raises:
            S2SError: A request failed (``partial_result`` holds the joined
                output before it; ``segment`` says which part of the input).
        """
        pending = self._pending
        while not pending:
            index = self._reading()
            if index is None:
                return None
            while (readable := self._readable(index)) is None:
                await self._changed.wait()
            link, request = readable
            try:
                self._check_unread(index, request)
                event = await request.receive()
            except S2SError as exc:
                if await self._retried(index, link, request, exc):
                    continue
                failure = self.stitcher.fail(exc)
                raise failure from failure.__cause__  # its own cause kept (a source's error)
            finished = self._took(index, event)
            if finished is not None:
                await finished.aclose()
        return pending.popleft()

    async def _retried(self, index: int, link: _Link, request: Request,
                       error: S2SError) -> bool:
        """Whether the failed ``request`` was (or is being) replaced by a retry."""
        done = self._retry_done(index, link, request)
        if done is not None:
            return done
        try:
            async with link.lock:
                await self._recover(index, link, request, error)
        except S2SError:
            return False
        return True

    async def result(self) -> S2SResult:
        """Read to the end and return the joined result.

        Raises:
            S2SError: A request failed (see ``receive``).
        """
        self.stitcher.keep_audio = True
        while await self.receive() is not None:
            pass
        return self.stitcher.result()

    # -- wake-ups and closing --

    def _notify(self) -> None:
        changed, self._changed = self._changed, self.backend.event()
        changed.set()

    async def aclose(self) -> None:
        """Close the connections the chain opened (the first one is the caller's)."""
        for conn in self._owned():
            await conn.aclose()
        self._notify()
