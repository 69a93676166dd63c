"""Many concurrent sessions paced at real time, in one client process.

``python -m benchmarks._scale_worker MODE URL --sessions N --seconds S``
runs N sessions of S seconds each, every one sending an 80 ms chunk every
80 ms (its own schedule, starting when its connection is up). Session starts
are spread over ``--ramp`` seconds so their send instants are spread over the
80 ms period, as those of independent callers would be. Prints one JSON line:
the lateness of every send (when ``send_audio`` returned, minus when the chunk
was due), this process's CPU and memory, and (with ``--server-pid``) the
server's CPU over the same steady window.

Modes: ``anyio-asyncio`` (ours) and ``sdk`` (the official SDK's
``s2s_realtime``, paced by the same loop).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

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

__all__ = ["main"]

API_KEY = "bench-key"


@dataclass
class _Run:
    sessions: int
    seconds: float
    ramp: float
    chunks: list[npt.NDArray[np.int16]]
    lateness: npt.NDArray[np.float64]
    audio_bytes: npt.NDArray[np.int64]
    done: npt.NDArray[np.bool_]
    errors: list[str] = field(default_factory=list)
    started: int = 0


SessionFn = Callable[[_Run, int, Callable[[], float], Callable[[float], Awaitable[None]]],
                     Awaitable[None]]


async def _ours(run: _Run, i: int, clock: Callable[[], float],
                sleep_until: Callable[[float], Awaitable[None]]) -> None:
    import anyio

    import s2s_anyio
    from s2s_core.events import Audio

    async with s2s_anyio.connect(_URL[0], sdk_setup(), api_key=API_KEY) as session:
        run.started += 1
        received = 0

        async def consume() -> None:
            nonlocal received
            async for event in session:
                if isinstance(event, Audio):
                    received += len(event.audio)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            row = run.lateness[i]
            start = clock()
            for k, chunk in enumerate(run.chunks):
                due = start + k * CHUNK_SECONDS
                if clock() < due:
                    await sleep_until(due)
                await session.send_audio(chunk)
                row[k] = clock() - due
            await session.send_end_of_stream()
        run.audio_bytes[i] = received
        run.done[i] = True


async def _sdk(run: _Run, i: int, clock: Callable[[], float],
               sleep_until: Callable[[float], Awaitable[None]]) -> None:
    from gradium.client import GradiumClient

    client = GradiumClient(base_url=_BASE[0], api_key=API_KEY)
    async with client.s2s_realtime(**sdk_setup()) as s2s:
        run.started += 1
        received = 0

        async def consume() -> None:
            nonlocal received
            async for msg in s2s:
                if msg.get("type") == "audio":
                    received += len(msg["audio"])

        consumer = asyncio.ensure_future(consume())
        try:
            row = run.lateness[i]
            start = clock()
            for k, chunk in enumerate(run.chunks):
                due = start + k * CHUNK_SECONDS
                if clock() < due:
                    await sleep_until(due)
                await s2s.send_audio(chunk)
                row[k] = clock() - due
            await s2s.send_eos()
            await consumer
        finally:
            consumer.cancel()
        run.audio_bytes[i] = received
        run.done[i] = True


_URL: list[str] = [""]
_BASE: list[str] = [""]


async def _guarded(fn: SessionFn, run: _Run, i: int, clock: Callable[[], float],
                   sleep_until: Callable[[float], Awaitable[None]], start_at: float) -> None:
    await sleep_until(start_at)
    try:
        await fn(run, i, clock, sleep_until)
    except Exception as exc:
        if len(run.errors) < 20:
            run.errors.append(f"session {i}: {type(exc).__name__}: {exc}")


async def _drive(fn: SessionFn, run: _Run, server_pid: int | None,
                 spawn: Callable[[Callable[[], Awaitable[None]]], Any],
                 clock: Callable[[], float],
                 sleep_until: Callable[[float], Awaitable[None]]) -> dict[str, Any]:
    """Start every session on its ramp slot; sample CPU/RSS in the steady window."""
    t0 = clock() + 0.5
    def starter(i: int, start_at: float) -> Callable[[], Awaitable[None]]:
        return lambda: _guarded(fn, run, i, clock, sleep_until, start_at)

    for i in range(run.sessions):
        spawn(starter(i, t0 + run.ramp * i / run.sessions))
    # The steady window: every session started (plus a margin) until the first ends.
    steady_from = t0 + run.ramp + 1.0
    steady_to = t0 + run.seconds - 0.5
    out: dict[str, Any] = {}
    if steady_to - steady_from >= 1.0:
        await sleep_until(steady_from)
        c0, s0, w0 = cpu_seconds(), _server_cpu(server_pid), clock()
        out["sessions_live_at_steady_start"] = run.started - int(run.done.sum())
        await sleep_until(steady_to)
        c1, s1, w1 = cpu_seconds(), _server_cpu(server_pid), clock()
        out["rss_steady_kib"] = rss_kib()
        out["steady_window_s"] = w1 - w0
        out["client_cores_steady"] = (c1 - c0) / (w1 - w0)
        if s0 is not None and s1 is not None:
            out["server_cores_steady"] = (s1 - s0) / (w1 - w0)
    return out


def _server_cpu(pid: int | None) -> float | None:
    return None if pid is None else proc_cpu_seconds(pid)


async def _main_anyio(fn: SessionFn, run: _Run, server_pid: int | None,
                      deadline_s: float) -> dict[str, Any]:
    import anyio

    result: dict[str, Any] = {}
    with anyio.move_on_after(deadline_s) as scope:
        async with anyio.create_task_group() as tasks:
            def spawn(make: Callable[[], Awaitable[None]]) -> None:
                async def task() -> None:
                    await make()
                tasks.start_soon(task)

            result = await _drive(fn, run, server_pid, spawn, anyio.current_time,
                                  anyio.sleep_until)
    result["timed_out"] = scope.cancelled_caught
    return result


async def _main_asyncio(fn: SessionFn, run: _Run, server_pid: int | None,
                        deadline_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    async def sleep_until(when: float) -> None:
        await asyncio.sleep(max(when - loop.time(), 0.0))

    def spawn(make: Callable[[], Awaitable[None]]) -> None:
        async def task() -> None:
            await make()
        tasks.append(asyncio.ensure_future(task()))

    result = await _drive(fn, run, server_pid, spawn, loop.time, sleep_until)
    _, pending = await asyncio.wait(tasks, timeout=deadline_s)
    for task in pending:
        task.cancel()
    result["timed_out"] = bool(pending)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._scale_worker")
    parser.add_argument("mode", choices=("anyio-asyncio", "sdk"))
    parser.add_argument("url")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=4.0)
    parser.add_argument("--server-pid", type=int)
    ns = parser.parse_args(argv)
    _URL[0] = ns.url
    _BASE[0] = ns.url.replace("ws://", "http://", 1).removesuffix("speech/s2s")
    record: dict[str, Any] = {"mode": ns.mode, "sessions": ns.sessions, "seconds": ns.seconds,
                              "ramp_s": ns.ramp}
    try:
        if ns.mode == "sdk":
            import aiohttp  # noqa: F401
            import gradium.client  # noqa: F401
        else:
            import anyio

            import s2s_anyio  # noqa: F401
        audio = speech_like(ns.seconds)
        chunks = [audio[i:i + CHUNK_SAMPLES] for i in range(0, audio.size, CHUNK_SAMPLES)]
        run = _Run(sessions=ns.sessions, seconds=ns.seconds, ramp=ns.ramp, chunks=chunks,
                   lateness=np.full((ns.sessions, len(chunks)), np.nan),
                   audio_bytes=np.zeros(ns.sessions, dtype=np.int64),
                   done=np.zeros(ns.sessions, dtype=bool))
        gc.collect()
        rss0 = rss_kib()
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        deadline = ns.ramp + 2 * ns.seconds + 30
        if ns.mode == "sdk":
            steady = asyncio.run(_main_asyncio(_sdk, run, ns.server_pid, deadline))
        else:
            import anyio

            steady = anyio.run(_main_anyio, _ours, run, ns.server_pid, deadline,
                               backend="asyncio")
        cpu1, wall1 = cpu_seconds(), time.perf_counter()
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
            cpu_per_session_s=(cpu1 - cpu0) / ns.sessions,
            rss_baseline_kib=rss0, rss_peak_kib=_peak_rss_kib(),
            audio_bytes_per_session=float(np.median(run.audio_bytes)),
            audio_bytes_expected=expected_out, **steady)
        if rss0 is not None and steady.get("rss_steady_kib") is not None:
            record["rss_per_session_kib"] = (steady["rss_steady_kib"] - rss0) / ns.sessions
    except Exception as exc:
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=8))
    print(json.dumps(record), flush=True)
    return 0


def _peak_rss_kib() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


if __name__ == "__main__":
    sys.exit(main())
