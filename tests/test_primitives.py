"""The async adapters' own primitives: Mutex and the asyncio byte stream."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
import trio

from _s2s_async.backend import Backend
from _s2s_async.primitives import Mutex
from s2s_anyio._asyncio_stream import _HIGH_WATER, AsyncioByteStream
from s2s_anyio._backend import BACKEND as ANYIO
from s2s_trio._backend import BACKEND as TRIO


def run(backend_name: str, fn: Any) -> None:
    if backend_name == "trio":
        trio.run(fn, TRIO)
    else:
        anyio.run(fn, ANYIO, backend="asyncio")


BACKENDS = ["trio", "anyio-asyncio"]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_mutex_excludes_and_a_cancelled_waiter_does_not_swallow_the_wakeup(
        backend_name: str) -> None:
    async def main(backend: Backend) -> None:
        mutex = Mutex(backend)
        got: list[str] = []

        async def holder() -> None:
            async with mutex:
                got.append("holder in")
                await backend.sleep_until(backend.current_time() + 0.05)
                got.append("holder out")

        async def waiter(name: str) -> None:
            async with mutex:
                got.append(name)

        async with backend.task_group() as tasks:
            tasks.start_soon(holder)
            await backend.sleep_until(backend.current_time() + 0.01)
            assert mutex.locked()
            with backend.move_on_at(backend.current_time() + 0.01):
                await waiter("cancelled")  # gives up while the holder holds it
            tasks.start_soon(waiter, "second")
        assert got == ["holder in", "holder out", "second"]
        assert not mutex.locked()

    run(backend_name, main)


def test_asyncio_stream_splits_reads_to_max_bytes_and_pauses_over_high_water() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        stream = AsyncioByteStream(loop)
        paused: list[bool] = []

        class Transport(asyncio.Transport):
            def pause_reading(self) -> None:
                paused.append(True)

            def resume_reading(self) -> None:
                paused.append(False)

        stream.connection_made(Transport())
        stream.data_received(b"abcdef")
        assert await stream.receive_some(4) == b"abcd"
        assert await stream.receive_some(4) == b"ef"
        big = bytes(_HIGH_WATER + 1)
        stream.data_received(big)
        assert paused == [True]
        assert await stream.receive_some(len(big)) == big
        assert paused == [True, False]
        stream.data_received(b"last")
        stream.connection_lost(ConnectionResetError("reset by peer"))
        assert await stream.receive_some(100) == b"last"  # received data is not lost
        with pytest.raises(anyio.BrokenResourceError, match="reset by peer"):
            await stream.receive_some(100)
        with pytest.raises(anyio.BrokenResourceError):
            await stream.send_all(b"x")

    asyncio.run(main())


def test_asyncio_stream_eof_reads_empty() -> None:
    async def main() -> None:
        stream = AsyncioByteStream(asyncio.get_running_loop())
        reader = asyncio.ensure_future(stream.receive_some(10))
        await asyncio.sleep(0)
        assert not reader.done()
        stream.eof_received()
        assert await reader == b""

    asyncio.run(main())
