"""The async adapters' own primitives: Mutex and the asyncio byte stream."""

from __future__ import annotations

import asyncio
import os
import time
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


def test_loop_event_wakes_every_waiter_but_the_cancelled_one() -> None:
    async def main() -> None:
        event = ANYIO.event_type()()
        woken: list[str] = []

        async def waiter(name: str) -> None:
            await event.wait()
            woken.append(name)

        tasks = [asyncio.ensure_future(waiter(name)) for name in ("a", "b", "c")]
        await asyncio.sleep(0)
        tasks[1].cancel()  # anyio cancels a waiter by cancelling what it awaits
        await asyncio.sleep(0)
        assert not event.is_set()
        event.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert woken == ["a", "c"] and tasks[1].cancelled()
        await event.wait()  # set: returns at once
        event.set()  # idempotent

    asyncio.run(main())


def test_pushed_stream_hands_over_buffered_input_then_pushes() -> None:
    async def main() -> None:
        stream = AsyncioByteStream(asyncio.get_running_loop())
        paused: list[bool] = []

        class Transport(asyncio.Transport):
            def pause_reading(self) -> None:
                paused.append(True)

            def resume_reading(self) -> None:
                paused.append(False)

        class Receiver:
            def __init__(self) -> None:
                self.got: list[object] = []

            def data_in(self, data: bytes) -> None:
                self.got.append(data)

            def eof_in(self) -> None:
                self.got.append("eof")

            def lost_in(self, exc: BaseException) -> None:
                self.got.append(type(exc))

        stream.connection_made(Transport())
        stream.data_received(b"before")  # buffered: nobody takes pushes yet
        receiver = Receiver()
        stream.set_receiver(receiver)
        view = stream.get_buffer(-1)  # a read lands in the shared buffer, copied out
        view[:5] = b"after"
        stream.buffer_updated(5)
        stream.pause_reading()
        stream.pause_reading()
        stream.resume_reading()
        stream.eof_received()
        stream.connection_lost(None)  # after the end: nothing more is pushed
        assert receiver.got == [b"before", b"after", "eof"]
        assert paused == [True, False]

    asyncio.run(main())


def test_a_connection_left_open_when_its_loop_ends_loses_its_socket() -> None:
    """On asyncio a connection has no task of its own: the loop's end must still close it."""
    import s2s_anyio

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    setup = {"model_name": "s2s-translate", "input_format": "pcm", "output_format": "pcm",
             "voice_id": "v", "json_config": {"target_language": "en"}}
    with s2s_anyio.run_server() as url:
        fds = open_fds()
        kept: list[Any] = []

        async def leave_open() -> None:
            opened = s2s_anyio.connect(url, setup, api_key="k")
            kept.append(await opened.__aenter__())  # never exited

        anyio.run(leave_open, backend="asyncio")
        session = kept[0]
        assert session.connection.closed.is_set()  # failed, not left open
        deadline = time.monotonic() + 3
        while open_fds() > fds and time.monotonic() < deadline:
            time.sleep(0.02)
        assert open_fds() <= fds
