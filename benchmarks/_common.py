"""What every benchmark shares: CPU timers, statistics, test audio, machine info."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "INPUT_RATE",
    "CHUNK_SAMPLES",
    "CHUNK_SECONDS",
    "Paired",
    "compare_interleaved",
    "cpu_seconds",
    "machine_info",
    "percentile",
    "rss_kib",
    "speech_like",
    "sdk_setup",
]

INPUT_RATE = 24000
"""Rate of ``pcm`` input audio."""
CHUNK_SAMPLES = 1920
"""Samples in one 80 ms input chunk."""
CHUNK_SECONDS = 0.08


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int | None:
    """Current resident set size of this process in KiB (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of another process (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / ticks


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear interpolation."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def speech_like(seconds: float, rate: int = INPUT_RATE, *, seed: int = 7) -> npt.NDArray[np.int16]:
    """Deterministic int16 audio: 1.2 s 'phrases' (tones + noise) and 0.8 s pauses.

    The local server's energy VAD turns each phrase into one text event, so a
    session carries both audio and text messages, like a real one.
    """
    n = round(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    rng = np.random.default_rng(seed)
    phrase = (t % 2.0) < 1.2
    voice = 0.25 * np.sin(2 * np.pi * 180 * t) + 0.1 * np.sin(2 * np.pi * 720 * t)
    noise = 0.02 * rng.standard_normal(n)
    signal = np.where(phrase, voice, 0.0) + noise
    return np.clip(np.rint(signal * 32767), -32768, 32767).astype(np.int16)


def sdk_setup() -> dict[str, Any]:
    """The setup both clients send (the official SDK's dict form)."""
    return {
        "model_name": "s2s-translate",
        "input_format": "pcm",
        "output_format": "pcm",
        "voice_id": "bench-voice",
        "json_config": {"target_language": "en"},
    }


@dataclass(frozen=True)
class Paired:
    """Two ways of doing one thing, timed in alternating rounds.

    Attributes:
        ours: Per-call CPU seconds of our way, one value per round.
        sdk: Same for the official SDK's way.
    """

    ours: list[float]
    sdk: list[float]

    @property
    def ours_median(self) -> float:
        return statistics.median(self.ours)

    @property
    def sdk_median(self) -> float:
        return statistics.median(self.sdk)

    @property
    def ratio(self) -> float:
        """Median over rounds of sdk/ours (rounds pair runs close in time)."""
        return statistics.median(s / o for s, o in zip(self.sdk, self.ours, strict=True))


def _per_call(fn: Callable[[], object], number: int) -> float:
    """CPU seconds per call of ``fn`` over ``number`` calls (this thread only)."""
    clock = time.thread_time
    start = clock()
    for _ in range(number):
        fn()
    return (clock() - start) / number


def compare_interleaved(ours: Callable[[], object], sdk: Callable[[], object], *,
                        number: int, rounds: int) -> Paired:
    """Time both ways in alternating rounds, on this thread's CPU clock.

    A CPU clock ignores the time the process waits for a core, and rounds
    that alternate (ours first, then the SDK first) see the same machine
    noise, so the ratio of each pair is stable even when absolute times drift.
    """
    for fn in (ours, sdk):  # warm caches, lazy imports, the allocator
        _per_call(fn, max(number // 10, 1))
    ours_t: list[float] = []
    sdk_t: list[float] = []
    for i in range(rounds):
        if i % 2:
            sdk_t.append(_per_call(sdk, number))
            ours_t.append(_per_call(ours, number))
        else:
            ours_t.append(_per_call(ours, number))
            sdk_t.append(_per_call(sdk, number))
    return Paired(ours=ours_t, sdk=sdk_t)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Where and when the benchmarks ran."""
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        import pybase64

        b64 = pybase64.get_version()
    except ImportError:  # pragma: no cover - a dependency
        b64 = None
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load,
        "versions": {name: _version(name) for name in (
            "s2s-core", "gradium", "aiohttp", "msgspec", "pybase64", "numpy", "anyio", "trio",
            "wsproto", "websockets")},
        "pybase64": b64,
        "frame_masking": "C (websockets.speedups)" if _mask_accelerated() else "numpy",
    }


def _mask_accelerated() -> bool:
    from s2s_core import _frames as frames

    return frames.MASK_ACCELERATED
