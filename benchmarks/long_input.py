"""The client's CPU time and peak memory for a long input, unpaced (documented, not in CI).

Run ``python -m benchmarks.long_input --minutes 60``. The local server runs
in its own process, so what is measured is the client alone: its CPU time
(user + system, ``getrusage``), its peak RSS, the wall time, how many
requests the input took (split at pauses under ``max_request_s``) and how
much output came back. The input is speech-like (tone bursts and pauses,
made as it is sent: the source is a generator of one-second pieces, so the
input itself takes no memory); the output is counted and dropped (as a
player or a file writer would), unless ``--api s2s`` keeps the whole result.

Examples:
    python -m benchmarks.long_input --minutes 60
    python -m benchmarks.long_input --minutes 60 --mode threaded
    python -m benchmarks.long_input --minutes 60 --api s2s --output-format pcm_16000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from s2s_core.events import Audio, RequestStarted, Text
from s2s_core.options import ClientOptions
from s2s_core.setup import Setup

SERVER = """
import anyio
import s2s_anyio
from s2s_core.loopback.rest import LocalRest

async def main():
    async with anyio.create_task_group() as tg:
        url = await tg.start(lambda task_status: s2s_anyio.serve(
            "127.0.0.1", 0, rest=LocalRest(credits=1e9), task_status=task_status))
        print(url, flush=True)

anyio.run(main)
"""
RATE = 24000
MODES = ("anyio-asyncio", "trio", "threaded")


def speech_like(minutes: float, seed: int = 1) -> Iterator[bytes]:
    """One-second pieces of tone bursts (1-4 s) and pauses (0.3-1.2 s), made on the fly."""
    rng = np.random.default_rng(seed)
    total = round(minutes * 60 * RATE)
    made = 0
    pending = np.empty(0, dtype=np.int16)
    while made < total:
        burst = round(rng.uniform(1.0, 4.0) * RATE)
        pause = round(rng.uniform(0.3, 1.2) * RATE)
        t = np.arange(burst) / RATE
        tone = (0.3 * 32767 * np.sin(2 * np.pi * rng.uniform(200, 600) * t)).astype(np.int16)
        pending = np.concatenate((pending, tone, np.zeros(pause, dtype=np.int16)))
        while len(pending) >= RATE and made < total:
            piece, pending = pending[:RATE], pending[RATE:]
            made += len(piece)
            yield piece.tobytes()


class Tally:
    """What came back."""

    def __init__(self) -> None:
        self.audio_bytes = 0
        self.texts = 0
        self.requests = 1

    def take(self, event: object) -> None:
        if isinstance(event, Audio):
            self.audio_bytes += len(event.audio)
        elif isinstance(event, Text):
            self.texts += 1
        elif isinstance(event, RequestStarted):
            self.requests += 1


def run_async(mode: str, url: str, setup: Setup, minutes: float, api: str) -> Tally:
    if mode == "trio":
        import trio

        import s2s_trio as module
        runner: Any = trio.run
    else:
        import anyio

        import s2s_anyio as module
        runner = anyio.run
    client = module.S2SClient("k", base_url=_base(url), options=ClientOptions())
    tally = Tally()

    async def go() -> None:
        if api == "s2s":
            result = await client.s2s(setup, speech_like(minutes), pace=None)
            tally.audio_bytes, tally.texts = len(result.raw_data), len(result.text_with_timestamps)
            tally.requests = len(result.request_ids)
            return
        async with client.s2s_stream(setup, speech_like(minutes), pace=None) as stream:
            async for event in stream.iter_events():
                tally.take(event)

    runner(go)
    return tally


def run_threaded(url: str, setup: Setup, minutes: float, api: str) -> Tally:
    import s2s_threaded

    client = s2s_threaded.S2SClient("k", base_url=_base(url), options=ClientOptions())
    tally = Tally()
    if api == "s2s":
        result = client.s2s(setup, speech_like(minutes), pace=None)
        tally.audio_bytes, tally.texts = len(result.raw_data), len(result.text_with_timestamps)
        tally.requests = len(result.request_ids)
        return tally
    with client.s2s_stream(setup, speech_like(minutes), pace=None) as stream:
        for event in stream.iter_events():
            tally.take(event)
    return tally


def _base(url: str) -> str:
    return url.replace("ws://", "http://").replace("speech/s2s", "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.long_input", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="input length (default 60)")
    p.add_argument("--mode", choices=MODES, default="anyio-asyncio")
    p.add_argument("--api", choices=("stream", "s2s"), default="stream",
                   help="stream: iterate and drop the output; s2s: keep the whole result")
    p.add_argument("--output-format", default="pcm", help="setup output_format (default pcm)")
    args = p.parse_args(argv)
    setup = Setup(voice_id="v", input_format="pcm", output_format=args.output_format)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        if args.mode == "threaded":
            tally = run_threaded(url, setup, args.minutes, args.api)
        else:
            tally = run_async(args.mode, url, setup, args.minutes, args.api)
        wall = time.perf_counter() - wall
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        server.terminate()
        server.wait(timeout=10)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = {
        "minutes": args.minutes, "mode": args.mode, "api": args.api,
        "output_format": args.output_format, "requests": tally.requests,
        "texts": tally.texts, "output_mb": round(tally.audio_bytes / 2**20, 1),
        "wall_s": round(wall, 1), "client_cpu_s": round(cpu, 1),
        "client_peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
