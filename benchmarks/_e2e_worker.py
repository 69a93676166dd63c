"""One client session in its own process, for clean CPU accounting.

``python -m benchmarks._e2e_worker MODE BASE_URL SECONDS [--profile FILE]``
translates SECONDS of audio with the client of MODE as fast as it can send
(``pace=None``, no trailing silence: the same input the official SDK sends)
and prints one JSON line: the session's CPU time (all threads; imports, a
short warm-up session and audio generation excluded), wall time, and what
came back.

Adding an adapter is one entry in ``MODES``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._common import INPUT_RATE, cpu_seconds, rss_kib, sdk_setup, speech_like

__all__ = ["MODES", "Outcome", "main"]

API_KEY = "bench-key"


@dataclass
class Outcome:
    """What a session returned."""

    audio_bytes: int
    texts: int


Runner = Callable[[str, npt.NDArray[np.int16]], Outcome]


def _anyio(backend: str, options: dict[str, Any] | None = None) -> Runner:
    def run(base_url: str, audio: npt.NDArray[np.int16]) -> Outcome:
        import anyio

        import s2s_anyio

        async def session() -> Outcome:
            client = s2s_anyio.S2SClient(API_KEY, base_url=base_url)
            result = await client.s2s(sdk_setup(), audio, pace=None, trailing_silence_s=0.0)
            return Outcome(len(result.raw_data), len(result.text_with_timestamps))

        outcome: Outcome = anyio.run(session, backend=backend, backend_options=options)
        return outcome

    return run


def _trio(base_url: str, audio: npt.NDArray[np.int16]) -> Outcome:
    import trio

    import s2s_trio

    async def session() -> Outcome:
        client = s2s_trio.S2SClient(API_KEY, base_url=base_url)
        result = await client.s2s(sdk_setup(), audio, pace=None, trailing_silence_s=0.0)
        return Outcome(len(result.raw_data), len(result.text_with_timestamps))

    return trio.run(session)


def _threaded(base_url: str, audio: npt.NDArray[np.int16]) -> Outcome:
    import s2s_threaded

    client = s2s_threaded.S2SClient(API_KEY, base_url=base_url)
    result = client.s2s(sdk_setup(), audio, pace=None, trailing_silence_s=0.0)
    return Outcome(len(result.raw_data), len(result.text_with_timestamps))


def _sdk(base_url: str, audio: npt.NDArray[np.int16]) -> Outcome:
    import asyncio

    from gradium.client import GradiumClient

    async def session() -> Outcome:
        client = GradiumClient(base_url=base_url, api_key=API_KEY)
        result = await client.s2s(sdk_setup(), audio, sample_rate=INPUT_RATE)
        return Outcome(len(result.raw_data), len(result.text_with_timestamps))

    return asyncio.run(session())


MODES: dict[str, Runner] = {
    "anyio-asyncio": _anyio("asyncio"),
    "anyio-uvloop": _anyio("asyncio", {"use_uvloop": True}),
    "anyio-trio": _anyio("trio"),
    "trio": _trio,
    "threaded": _threaded,
    "sdk": _sdk,
}
"""Client modes by name; ``sdk`` is the official SDK, the reference of every ratio."""

_IMPORTS: dict[str, tuple[str, ...]] = {
    "anyio-asyncio": ("anyio", "s2s_anyio"),
    "anyio-uvloop": ("anyio", "s2s_anyio", "uvloop"),
    "anyio-trio": ("anyio", "trio", "s2s_anyio"),
    "trio": ("trio", "s2s_trio"),
    "threaded": ("s2s_threaded",),
    "sdk": ("asyncio", "aiohttp", "gradium.client"),
}


def _preload(mode: str) -> None:
    """Import what the mode needs before the clock starts (imports are not per session)."""
    import importlib

    for name in _IMPORTS.get(mode, ()):
        importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._e2e_worker")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("base_url")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats here")
    parser.add_argument("--no-warmup", action="store_true",
                        help="measure the first session of the process (lazy imports included)")
    ns = parser.parse_args(argv)
    record: dict[str, Any] = {"mode": ns.mode, "seconds": ns.seconds, "ok": False}
    try:
        _preload(ns.mode)
        if not ns.no_warmup:
            # One short session first: event-loop backends and other lazy imports load
            # on first use, a one-time cost that is not the cost of a session.
            warm0 = cpu_seconds()
            MODES[ns.mode](ns.base_url, speech_like(0.5))
            record["warmup_cpu_s"] = cpu_seconds() - warm0
        audio = speech_like(ns.seconds)
        # CPU time, not wall time: waiting for the peer or for a core is not cost.
        profiler = cProfile.Profile(time.thread_time) if ns.profile else None
        record["cpu_before_session_s"] = cpu_seconds()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        wall0, cpu0 = time.perf_counter(), cpu_seconds()
        if profiler is not None:
            profiler.enable()
        outcome = MODES[ns.mode](ns.base_url, audio)
        if profiler is not None:
            profiler.disable()
        cpu1, wall1 = cpu_seconds(), time.perf_counter()
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        record["user_s"] = usage1.ru_utime - usage0.ru_utime
        record["sys_s"] = usage1.ru_stime - usage0.ru_stime
        record["minor_faults"] = usage1.ru_minflt - usage0.ru_minflt
        if profiler is not None:
            profiler.dump_stats(ns.profile)
        record.update(ok=True, cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0,
                      audio_bytes=outcome.audio_bytes, texts=outcome.texts,
                      rss_kib=rss_kib(), input_chunks=int(np.ceil(audio.size / 1920)))
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=8)
    print(json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
