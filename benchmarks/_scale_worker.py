"""Many concurrent sessions paced at real time, in one client process.

``python -m benchmarks._scale_worker MODE URL --sessions N --seconds S``
runs N sessions of S seconds each, every one sending an 80 ms chunk every
80 ms (its own schedule, starting when its connection is up) while another
task (thread) of the session consumes what comes back. Session starts are
spread over ``--ramp`` seconds so their send instants are spread over the 80 ms
period, as those of independent callers would be. Prints one JSON line: the
lateness of every send (when ``send_audio`` returned, minus when the chunk
was due), this process's CPU (user and system) and memory, and (with
``--server-pid``) the server's CPU over the same steady window.

The pacing loop, the consumer, the clock and the sleeps are the same code for
every client on one event loop: only the calls into the client differ. Modes:

- ``anyio-asyncio``: ``s2s_anyio`` on asyncio (plain asyncio tasks drive it,
  as they drive the official SDK);
- ``anyio-uvloop``: the same on uvloop's loop;
- ``trio``: ``s2s_trio`` (trio's tasks, clock and sleeps);
- ``threaded``: ``s2s_threaded``, a sending thread and a consuming thread
  per session (plus the connection's reader thread);
- ``sdk`` / ``sdk-uvloop``: the official SDK's ``s2s_realtime`` on asyncio / uvloop;
- ``floor`` / ``floor-uvloop``: no client at all, the least any client on that
  loop can cost in this harness: the upgrade request and the setup written
  without waiting, then per chunk one write of a frame built before the run
  (the same bytes a client would send), and on the way back only a count of
  the bytes read (no parsing, no per-message wake-up), until the output's
  size has arrived. What a real client costs above it is its own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ._common import (
    CHUNK_SAMPLES,
    CHUNK_SECONDS,
    cpu_seconds,
    percentile,
    proc_cpu_seconds,
    rss_kib,
    sdk_setup,
    speech_like,
)

__all__ = ["MODES", "main"]

API_KEY = "bench-key"
MODES = ("anyio-asyncio", "anyio-uvloop", "trio", "threaded", "sdk", "sdk-uvloop",
         "floor", "floor-uvloop")


@dataclass
class _Run:
    url: str
    sessions: int
    seconds: float
    ramp: float
    chunks: list[npt.NDArray[np.int16]]
    lateness: npt.NDArray[np.float64]
    audio_bytes: npt.NDArray[np.int64]
    done: npt.NDArray[np.bool_]
    errors: list[str] = field(default_factory=list)
    started: int = 0

    @property
    def base_url(self) -> str:
        return self.url.replace("ws://", "http://", 1).removesuffix("speech/s2s")

    def failed(self, i: int, exc: BaseException) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"session {i}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    """An error's type and text; an exception group's first leaf (what actually failed)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


# -- asyncio (ours on asyncio or uvloop, and the SDK): one harness, two clients --

class _AsyncClient(Protocol):
    """What the asyncio harness calls: open a session, send, end, iterate."""

    def open(self, run: _Run) -> Any: ...

    async def send(self, session: Any, chunk: npt.NDArray[np.int16]) -> None: ...

    async def end(self, session: Any) -> None: ...

    async def consume(self, session: Any) -> int: ...


class _Ours:
    def open(self, run: _Run) -> Any:
        import s2s_anyio

        return s2s_anyio.connect(run.url, sdk_setup(), api_key=API_KEY)

    async def send(self, session: Any, chunk: npt.NDArray[np.int16]) -> None:
        await session.send_audio(chunk)

    async def end(self, session: Any) -> None:
        await session.send_end_of_stream()

    async def consume(self, session: Any) -> int:
        from s2s_core.events import Audio

        received = 0
        async for event in session:
            if type(event) is Audio:
                received += len(event.audio)
        return received


class _Sdk:
    def open(self, run: _Run) -> Any:
        from gradium.client import GradiumClient

        return GradiumClient(base_url=run.base_url, api_key=API_KEY).s2s_realtime(**sdk_setup())

    async def send(self, session: Any, chunk: npt.NDArray[np.int16]) -> None:
        await session.send_audio(chunk)

    async def end(self, session: Any) -> None:
        await session.send_eos()

    async def consume(self, session: Any) -> int:
        received = 0
        async for msg in session:
            if msg.get("type") == "audio":
                received += len(msg["audio"])
        return received


class _FloorProtocol(asyncio.BufferedProtocol):
    """Counts the bytes read into one reused buffer; says when ``want`` have come."""

    def __init__(self) -> None:
        self.buffer = bytearray(16 * 1024)
        self.received = 0
        self.want: int | None = None
        self.arrived = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.want is not None and self.received >= self.want:
            self._arrive()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arrive()

    def _arrive(self) -> None:
        if not self.arrived.done():
            self.arrived.set_result(None)


@dataclass
class _FloorSession:
    transport: asyncio.Transport
    protocol: _FloorProtocol
    sent: int = 0


class _FloorFrames:
    """Every frame a session writes, built once for all sessions."""

    def __init__(self, run: _Run) -> None:
        from s2s_core import Setup
        from s2s_core._frames import FrameWriter, Opcode
        from s2s_core._wire import encode_audio, encode_end_of_stream, encode_setup

        writer = FrameWriter(mask=True)
        host_port = run.url.split("//", 1)[1].split("/", 1)[0]
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        upgrade = (f"GET /api/speech/s2s HTTP/1.1\r\nHost: {host_port}\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: c2NhbGUtZmxvb3ItMDAwMA==\r\n"
                   f"Sec-WebSocket-Version: 13\r\nx-api-key: {API_KEY}\r\n\r\n").encode()
        setup = Setup.from_mapping(sdk_setup())
        self.opening = upgrade + writer.frame(Opcode.TEXT, encode_setup(setup))
        self.audio = [writer.frame(Opcode.TEXT, encode_audio(chunk.tobytes()))
                      for chunk in run.chunks]
        self.end = writer.frame(Opcode.TEXT, encode_end_of_stream())
        self.close = writer.close_frame(1000)
        # The server's output: 48 kHz int16 in base64; the JSON around it is extra.
        self.output_bytes = round(run.seconds * 48000) * 2 * 4 // 3


class _Floor:
    frames: _FloorFrames | None = None

    @contextlib.asynccontextmanager
    async def open(self, run: _Run) -> AsyncIterator[_FloorSession]:
        frames = self.frames = self.frames or _FloorFrames(run)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_FloorProtocol, frames.host,
                                                           frames.port)
        transport.write(frames.opening)
        try:
            yield _FloorSession(transport, protocol)
        finally:
            transport.close()

    async def send(self, session: _FloorSession, chunk: npt.NDArray[np.int16]) -> None:
        assert self.frames is not None
        session.transport.write(self.frames.audio[session.sent])
        session.sent += 1

    async def end(self, session: _FloorSession) -> None:
        assert self.frames is not None
        session.transport.write(self.frames.end)
        session.protocol.want = self.frames.output_bytes
        if session.protocol.received >= self.frames.output_bytes:
            session.protocol._arrive()

    async def consume(self, session: _FloorSession) -> int:
        assert self.frames is not None
        await session.protocol.arrived
        if session.protocol.received < self.frames.output_bytes:
            raise ConnectionError(f"closed after {session.protocol.received} bytes")
        session.transport.write(self.frames.close)
        return self.frames.output_bytes * 3 // 4


async def _asyncio_session(client: _AsyncClient, run: _Run, i: int, start_at: float) -> None:
    loop = asyncio.get_running_loop()
    clock = loop.time
    await asyncio.sleep(max(start_at - clock(), 0.0))
    try:
        async with client.open(run) as session:
            run.started += 1
            consumer = asyncio.ensure_future(client.consume(session))
            try:
                row = run.lateness[i]
                start = clock()
                for k, chunk in enumerate(run.chunks):
                    due = start + k * CHUNK_SECONDS
                    now = clock()
                    if now < due:
                        await asyncio.sleep(due - now)
                    await client.send(session, chunk)
                    row[k] = clock() - due
                await client.end(session)
                run.audio_bytes[i] = await consumer
            finally:
                consumer.cancel()
        run.done[i] = True
    except Exception as exc:
        run.failed(i, exc)


async def _asyncio_main(client: _AsyncClient, run: _Run, server_pid: int | None,
                        deadline_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    tasks = [asyncio.ensure_future(_asyncio_session(client, run, i,
                                                    t0 + run.ramp * i / run.sessions))
             for i in range(run.sessions)]

    async def sleep_until(when: float) -> None:
        await asyncio.sleep(max(when - loop.time(), 0.0))

    result = await _steady(run, server_pid, t0, sleep_until)
    _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    result["timed_out"] = bool(pending)
    return result


# -- trio --

async def _trio_session(run: _Run, i: int, start_at: float) -> None:
    import trio

    import s2s_trio
    from s2s_core.events import Audio

    await trio.sleep_until(start_at)
    clock = trio.current_time
    try:
        async with s2s_trio.connect(run.url, sdk_setup(), api_key=API_KEY) as session:
            run.started += 1

            async def consume() -> None:
                received = 0
                async for event in session:
                    if type(event) is Audio:
                        received += len(event.audio)
                run.audio_bytes[i] = received

            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                row = run.lateness[i]
                start = clock()
                for k, chunk in enumerate(run.chunks):
                    due = start + k * CHUNK_SECONDS
                    if clock() < due:
                        await trio.sleep_until(due)
                    await session.send_audio(chunk)
                    row[k] = clock() - due
                await session.send_end_of_stream()
        run.done[i] = True
    except Exception as exc:
        run.failed(i, exc)


async def _trio_main(run: _Run, server_pid: int | None, deadline_s: float) -> dict[str, Any]:
    import trio

    result: dict[str, Any] = {}
    with trio.move_on_after(deadline_s) as scope:
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time() + 0.5
            for i in range(run.sessions):
                nursery.start_soon(_trio_session, run, i, t0 + run.ramp * i / run.sessions)
            result = await _steady(run, server_pid, t0, trio.sleep_until)
    result["timed_out"] = scope.cancelled_caught
    return result


# -- threads --

def _threaded_session(run: _Run, i: int, start_at: float) -> None:
    import s2s_threaded
    from s2s_core.events import Audio

    clock = time.monotonic
    time.sleep(max(start_at - clock(), 0.0))
    try:
        with s2s_threaded.connect(run.url, sdk_setup(), api_key=API_KEY) as session:
            run.started += 1

            def consume() -> None:
                received = 0
                try:
                    for event in session:
                        if type(event) is Audio:
                            received += len(event.audio)
                except Exception as exc:
                    run.failed(i, exc)
                run.audio_bytes[i] = received

            consumer = threading.Thread(target=consume, name=f"consume-{i}", daemon=True)
            consumer.start()
            row = run.lateness[i]
            start = clock()
            for k, chunk in enumerate(run.chunks):
                due = start + k * CHUNK_SECONDS
                now = clock()
                if now < due:
                    time.sleep(due - now)
                session.send_audio(chunk)
                row[k] = clock() - due
            session.send_end_of_stream()
            consumer.join()
        run.done[i] = True
    except Exception as exc:
        run.failed(i, exc)


def _threaded_main(run: _Run, server_pid: int | None, deadline_s: float) -> dict[str, Any]:
    # Small stacks: thousands of threads; Python's frames live on the heap.
    threading.stack_size(256 * 1024)
    t0 = time.monotonic() + 0.5
    threads = [threading.Thread(target=_threaded_session,
                                args=(run, i, t0 + run.ramp * i / run.sessions),
                                name=f"session-{i}", daemon=True)
               for i in range(run.sessions)]
    for thread in threads:
        thread.start()

    async def sleep_until(when: float) -> None:
        time.sleep(max(when - time.monotonic(), 0.0))

    result = _run_sync(_steady(run, server_pid, t0, sleep_until))
    end = time.monotonic() + deadline_s
    for thread in threads:
        thread.join(max(end - time.monotonic(), 0.0))
    result["timed_out"] = any(thread.is_alive() for thread in threads)
    return result


def _run_sync(coro: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """Run a coroutine that never really suspends (its sleeps block)."""
    it = coro.__await__()
    try:
        while True:
            next(it)
    except StopIteration as stop:
        value: dict[str, Any] = stop.value
        return value


# -- shared --

async def _steady(run: _Run, server_pid: int | None, t0: float,
                  sleep_until: Callable[[float], Awaitable[None]]) -> dict[str, Any]:
    """CPU and RSS of the steady window: every session started (plus a margin) until
    the first ends."""
    steady_from = t0 + run.ramp + 1.0
    steady_to = t0 + run.seconds - 0.5
    out: dict[str, Any] = {}
    if steady_to - steady_from >= 1.0:
        await sleep_until(steady_from)
        c0, s0, w0 = cpu_seconds(), _server_cpu(server_pid), time.perf_counter()
        out["sessions_live_at_steady_start"] = run.started - int(run.done.sum())
        await sleep_until(steady_to)
        c1, s1, w1 = cpu_seconds(), _server_cpu(server_pid), time.perf_counter()
        out["rss_steady_kib"] = rss_kib()
        out["steady_window_s"] = w1 - w0
        out["client_cores_steady"] = (c1 - c0) / (w1 - w0)
        if s0 is not None and s1 is not None:
            out["server_cores_steady"] = (s1 - s0) / (w1 - w0)
    return out


def _server_cpu(pid: int | None) -> float | None:
    return None if pid is None else proc_cpu_seconds(pid)


def _run_mode(mode: str, run: _Run, server_pid: int | None, deadline: float) -> dict[str, Any]:
    if mode == "trio":
        import trio

        result: dict[str, Any] = trio.run(_trio_main, run, server_pid, deadline)
        return result
    if mode == "threaded":
        return _threaded_main(run, server_pid, deadline)
    client: _AsyncClient = (_Sdk() if mode.startswith("sdk")
                            else _Floor() if mode.startswith("floor") else _Ours())
    if mode.endswith("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_asyncio_main(client, run, server_pid, deadline))
    return asyncio.run(_asyncio_main(client, run, server_pid, deadline))


_IMPORTS = {
    "anyio-asyncio": ("anyio", "s2s_anyio"),
    "anyio-uvloop": ("anyio", "s2s_anyio", "uvloop"),
    "trio": ("trio", "s2s_trio"),
    "threaded": ("s2s_threaded",),
    "sdk": ("aiohttp", "gradium.client"),
    "sdk-uvloop": ("aiohttp", "gradium.client", "uvloop"),
    "floor": (),
    "floor-uvloop": ("uvloop",),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._scale_worker")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("url")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=4.0)
    parser.add_argument("--server-pid", type=int)
    ns = parser.parse_args(argv)
    record: dict[str, Any] = {"mode": ns.mode, "sessions": ns.sessions, "seconds": ns.seconds,
                              "ramp_s": ns.ramp}
    try:
        import importlib

        for name in _IMPORTS[ns.mode]:
            importlib.import_module(name)
        audio = speech_like(ns.seconds)
        chunks = [audio[i:i + CHUNK_SAMPLES] for i in range(0, audio.size, CHUNK_SAMPLES)]
        run = _Run(url=ns.url, sessions=ns.sessions, seconds=ns.seconds, ramp=ns.ramp,
                   chunks=chunks, lateness=np.full((ns.sessions, len(chunks)), np.nan),
                   audio_bytes=np.zeros(ns.sessions, dtype=np.int64),
                   done=np.zeros(ns.sessions, dtype=bool))
        gc.collect()
        rss0 = rss_kib()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        steady = _run_mode(ns.mode, run, ns.server_pid, ns.ramp + 2 * ns.seconds + 30)
        cpu1, wall1 = cpu_seconds(), time.perf_counter()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        sent = run.lateness[~np.isnan(run.lateness)]
        late_ms = (np.maximum(sent, 0.0) * 1e3).tolist()
        completed = int(run.done.sum())
        expected_out = round(ns.seconds * 48000) * 2  # 48 kHz int16 output per session
        record.update(
            ok=completed == ns.sessions, completed=completed, errors=run.errors,
            sends=len(late_ms), sends_expected=ns.sessions * len(chunks),
            lateness_ms={"p50": percentile(late_ms, 50), "p90": percentile(late_ms, 90),
                         "p99": percentile(late_ms, 99), "max": max(late_ms, default=0.0)},
            cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0,
            user_s=usage1.ru_utime - usage0.ru_utime, sys_s=usage1.ru_stime - usage0.ru_stime,
            context_switches=(usage1.ru_nvcsw - usage0.ru_nvcsw
                              + usage1.ru_nivcsw - usage0.ru_nivcsw),
            cpu_per_session_s=(cpu1 - cpu0) / ns.sessions,
            rss_baseline_kib=rss0, rss_peak_kib=int(usage1.ru_maxrss),
            audio_bytes_per_session=float(np.median(run.audio_bytes)),
            audio_bytes_expected=expected_out, **steady)
        if rss0 is not None and steady.get("rss_steady_kib") is not None:
            record["rss_per_session_kib"] = (steady["rss_steady_kib"] - rss0) / ns.sessions
    except Exception as exc:
        record.update(ok=False, error=_describe(exc), traceback=traceback.format_exc(limit=8))
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
