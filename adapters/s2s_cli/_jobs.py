"""Running the translations of ``s2s translate`` on the anyio, trio or threaded client.

``run_jobs`` runs every job, up to ``jobs`` at once: as tasks of one event
loop (anyio on asyncio, uvloop or trio; s2s_trio on trio), or as threads
(threaded). Decoding blocks, so it runs off the event loop: in a worker
thread per piece for files, in a reader thread for stdin. A job that fails
does not stop the others; a 1008 refusal is explained by the credits call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from s2s_core.options import ClientOptions

from ._audio import CliError, UsageError
from ._run import Cancelled, Outcome, Summary, Target, Translation
from ._service import refusal_code, refusal_message

if TYPE_CHECKING:
    import s2s_anyio
    import s2s_threaded
    import s2s_trio

    AsyncClient: TypeAlias = s2s_anyio.S2SClient | s2s_trio.S2SClient
    AnyClient: TypeAlias = AsyncClient | s2s_threaded.S2SClient

__all__ = ["BACKENDS", "LOOPS", "check_backend", "make_client", "require_library", "run_jobs",
           "run_on_loop"]

BACKENDS = ("anyio", "trio", "threaded")
LOOPS = ("asyncio", "uvloop", "trio")
_EXTRAS = {"trio": "trio", "uvloop": "uvloop"}


# --------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------

def check_backend(backend: str, loop: str | None) -> None:
    """Fail early when ``backend`` (on ``loop``) cannot run here.

    Raises:
        UsageError: Unknown backend or loop, a loop the backend does not run
            on, or a library that is not installed (naming its extra).
    """
    if backend not in BACKENDS:
        raise UsageError(f"--backend {backend}: unknown; expected one of {', '.join(BACKENDS)}")
    if loop is not None:
        allowed = {"anyio": LOOPS, "trio": ("trio",), "threaded": ()}[backend]
        if loop not in allowed:
            what = (f"one of {', '.join(allowed)}" if allowed
                    else "no --loop (it runs on threads)")
            raise UsageError(f"--loop {loop}: the {backend} backend does not run on it; "
                             f"expected {what}")
    needed = "trio" if backend == "trio" else loop
    if needed in _EXTRAS:
        require_library(needed, "--backend" if backend == "trio" else "--loop")


def require_library(name: str, option: str) -> None:
    """Raise ``UsageError`` naming the extra when library ``name`` cannot be imported."""
    try:
        __import__(name)
    except ImportError:
        raise UsageError(f"{option} {name}: the {name} library is not installed; "
                         f"pip install 's2s-core[{_EXTRAS[name]}]'") from None


def make_client(backend: str, target: Target, options: ClientOptions) -> AnyClient:
    """The ``S2SClient`` of ``backend``."""
    if backend == "trio":
        import s2s_trio

        return s2s_trio.S2SClient(target.api_key, base_url=target.base_url, options=options)
    if backend == "threaded":
        import s2s_threaded

        return s2s_threaded.S2SClient(target.api_key, base_url=target.base_url, options=options)
    import s2s_anyio

    return s2s_anyio.S2SClient(target.api_key, base_url=target.base_url, options=options)


def run_on_loop(backend: str, loop: str | None, main: Callable[[], Awaitable[None]]) -> None:
    """Run the async function ``main`` on the event loop of ``backend``/``loop``."""
    import anyio

    if backend == "trio" or loop == "trio":
        anyio.run(main, backend="trio")
    else:
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": loop == "uvloop"})


def run_jobs(backend: str, loop: str | None, client: AnyClient,
             translations: list[Translation], *, jobs: int,
             done: Callable[[Outcome], None]) -> list[Outcome]:
    """Run every translation, up to ``jobs`` at once; ``done`` hears of each as it ends.

    A failed job does not stop the others; Ctrl-C (KeyboardInterrupt) stops all.
    """
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)
            done(outcome)

    if backend == "threaded":
        from s2s_threaded import S2SClient as ThreadedClient

        assert isinstance(client, ThreadedClient)
        _run_threaded(client, translations, jobs, record)
    else:
        async def main() -> None:
            await _run_all_async(client, translations, jobs, record)  # type: ignore[arg-type]

        run_on_loop(backend, loop, main)
    return outcomes


# --------------------------------------------------------------------------
# async (anyio on asyncio, s2s_anyio or s2s_trio on trio)
# --------------------------------------------------------------------------

async def _run_all_async(client: AsyncClient, translations: list[Translation], jobs: int,
                         record: Callable[[Outcome], None]) -> None:
    import anyio

    limiter = anyio.Semaphore(jobs)

    async def one(t: Translation) -> None:
        async with limiter:
            try:
                summary = await _translate_async(client, t)
            except Exception as exc:
                record(Outcome(t.job, None, _unwrap(exc)))
            else:
                record(Outcome(t.job, summary, None))

    async with anyio.create_task_group() as tasks:
        for t in translations:
            tasks.start_soon(one, t)


async def _translate_async(client: AsyncClient, t: Translation) -> Summary:
    import anyio

    try:
        await anyio.to_thread.run_sync(t.open)
        assert t.job.input is not None
        pieces: AsyncIterator[bytes] = (_PipePieces(t) if t.job.input.is_pipe
                                        else _FilePieces(t))
        t.begin()
        try:
            # lead_in_silence_s=0.3 (issue 13 item 7) goes here once the client takes it.
            async with client.s2s_stream(t.setup, pieces, pace=t.pace,
                                         trailing_silence_s=t.trailing_s) as stream:
                t.on_ready(stream.request_id, stream.sample_rate)
                async for event in stream.iter_events():
                    t.on_event(event)
                metrics = stream.metrics
        except Exception as exc:
            if refusal_code(exc) != 1008:
                raise
            message = await _refusal_message_async(client)
            if message is None:
                raise
            raise CliError(message) from exc
        return await anyio.to_thread.run_sync(t.finish, metrics)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(t.close)


async def _refusal_message_async(client: AsyncClient) -> str | None:
    """What a 1008 refusal meant, from the credits endpoint (None: it cannot tell)."""
    import anyio

    with anyio.move_on_after(5):
        try:
            credits = await client.credits()
        except Exception as exc:
            return refusal_message(None, exc)
        return refusal_message(credits, None)
    return None


class _FilePieces:
    """A file's pieces, each decoded in a worker thread."""

    def __init__(self, t: Translation) -> None:
        self._t = t

    def __aiter__(self) -> _FilePieces:
        return self

    async def __anext__(self) -> bytes:
        import anyio

        piece = await anyio.to_thread.run_sync(self._t.next_piece)
        if piece is None:
            raise StopAsyncIteration
        self._t.took(piece)
        return piece


class _PipePieces:
    """stdin's pieces, read by a daemon thread one read ahead.

    A blocked read of a pipe cannot be interrupted: a worker thread stuck in
    it would keep a cancelled run (an error, Ctrl-C) from ending, and the
    interpreter from exiting. The reader is a daemon thread instead; the
    loop polls its queue in short waits that a cancellation can end.
    """

    _POLL_S = 0.2

    def __init__(self, t: Translation) -> None:
        self._t = t
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(target=self._read, name="s2s-stdin", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while (piece := self._t.next_piece()) is not None:
                self._queue.put(piece)
            self._queue.put(None)
        except BaseException as exc:
            self._queue.put(exc)

    def __aiter__(self) -> _PipePieces:
        return self

    async def __anext__(self) -> bytes:
        import anyio

        while True:
            try:
                item = await anyio.to_thread.run_sync(self._queue.get, True, self._POLL_S)
            except queue.Empty:
                continue
            if item is None:
                raise StopAsyncIteration
            if isinstance(item, BaseException):
                raise item
            self._t.took(item)
            return item


# --------------------------------------------------------------------------
# threaded
# --------------------------------------------------------------------------

_STOP_WAIT_S = 5.0  # after Ctrl-C, how long workers get to discard their outputs


def _run_threaded(client: s2s_threaded.S2SClient, translations: list[Translation], jobs: int,
                  record: Callable[[Outcome], None]) -> None:
    """Run on the main thread (one at a time), or on ``jobs`` worker threads.

    Ctrl-C reaches the main thread only: it cancels every translation (each
    stops at its next event or piece and discards its output) and waits a
    little for the workers to do so.
    """
    if jobs == 1 or len(translations) == 1:
        for t in translations:
            record(_outcome_threaded(client, t))
        return
    todo: queue.SimpleQueue[Translation] = queue.SimpleQueue()
    for t in translations:
        todo.put(t)

    def worker(done: threading.Event) -> None:
        try:
            while True:
                try:
                    t = todo.get_nowait()
                except queue.Empty:
                    return
                record(_outcome_threaded(client, t))
        except Cancelled:
            pass
        finally:
            done.set()

    # Events, not Thread.join: a join that Ctrl-C interrupts can take a running
    # thread for finished (CPython), and the outputs would not be discarded.
    finished = [threading.Event() for _ in range(min(jobs, len(translations)))]
    for index, done in enumerate(finished):
        threading.Thread(target=worker, args=(done,), name=f"s2s-job-{index}",
                         daemon=True).start()
    try:
        for done in finished:
            while not done.wait(0.2):  # short waits: Ctrl-C reaches the main thread
                pass
    except KeyboardInterrupt:
        for t in translations:
            t.cancel()
        for done in finished:
            done.wait(_STOP_WAIT_S / len(finished))
        raise


def _outcome_threaded(client: s2s_threaded.S2SClient, t: Translation) -> Outcome:
    try:
        summary = _translate_threaded(client, t)
    except Exception as exc:
        return Outcome(t.job, None, _unwrap(exc))
    return Outcome(t.job, summary, None)


def _translate_threaded(client: s2s_threaded.S2SClient, t: Translation) -> Summary:
    try:
        t.open()
        t.begin()
        try:
            with client.s2s_stream(t.setup, t.source(), pace=t.pace,
                                   trailing_silence_s=t.trailing_s) as stream:
                t.on_ready(stream.request_id, stream.sample_rate)
                for event in stream.iter_events():
                    t.on_event(event)
                metrics = stream.metrics
        except Exception as exc:
            if refusal_code(exc) != 1008:
                raise
            message = _refusal_message_threaded(client)
            if message is None:
                raise
            raise CliError(message) from exc
        return t.finish(metrics)
    finally:
        t.close()


def _refusal_message_threaded(client: s2s_threaded.S2SClient) -> str | None:
    try:
        credits = client.credits()
    except Exception as exc:
        return refusal_message(None, exc)
    return refusal_message(credits, None)


def _unwrap(exc: BaseException) -> BaseException:
    """The single exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
