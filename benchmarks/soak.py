"""Soak test (documented, not in CI): sessions in a loop against the local server.

Run ``python -m benchmarks.soak --minutes 15``. The server runs in its own
process; every ``--every`` seconds the client's and the server's RSS and
open file descriptors are printed as one JSON line, so a leak shows as a
trend. Sessions rotate over the adapters (anyio on asyncio, trio, threaded)
and include a faulty server every tenth session.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import anyio
import numpy as np
import trio

import s2s_anyio
import s2s_threaded
import s2s_trio
from s2s_core.errors import S2SError
from s2s_core.setup import Setup

SERVER = """
import anyio, sys
import s2s_anyio
async def main():
    async with anyio.create_task_group() as tg:
        url = await tg.start(s2s_anyio.serve, "127.0.0.1", 0)
        print(url, flush=True)
anyio.run(main)
"""
SETUP = Setup(voice_id="v")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def one_session(index: int, base_url: str, audio: np.ndarray) -> str:
    kind = ("anyio", "trio", "threaded")[index % 3]
    try:
        if kind == "anyio":
            client_a = s2s_anyio.S2SClient("k", base_url=base_url)
            anyio.run(lambda: client_a.s2s(SETUP, audio, pace=None))
        elif kind == "trio":
            client_t = s2s_trio.S2SClient("k", base_url=base_url)
            trio.run(lambda: client_t.s2s(SETUP, audio, pace=None))
        else:
            s2s_threaded.S2SClient("k", base_url=base_url).s2s(SETUP, audio, pace=None)
    except S2SError as exc:
        return f"{kind}:{type(exc).__name__}"
    return f"{kind}:ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--seconds-of-audio", type=float, default=5.0)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    url = server.stdout.readline().strip()
    base_url = url.replace("ws://", "http://").replace("speech/s2s", "")
    audio = (0.3 * np.sin(np.arange(int(24000 * args.seconds_of_audio)) / 10)).astype(np.float32)
    end = time.monotonic() + args.minutes * 60
    next_report = time.monotonic()
    sessions = 0
    outcomes: dict[str, int] = {}
    try:
        while time.monotonic() < end:
            outcome = one_session(sessions, base_url, audio)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            sessions += 1
            if time.monotonic() >= next_report:
                next_report += args.every
                print(json.dumps({
                    "t_s": round(args.minutes * 60 - (end - time.monotonic()), 1),
                    "sessions": sessions, "outcomes": outcomes,
                    "client_rss_kib": rss_kib(os.getpid()), "client_fds": fds(os.getpid()),
                    "server_rss_kib": rss_kib(server.pid), "server_fds": fds(server.pid),
                }), flush=True)
    finally:
        server.terminate()
        server.wait(10)
    return 0 if set(outcomes) <= {"anyio:ok", "trio:ok", "threaded:ok"} else 1


if __name__ == "__main__":
    sys.exit(main())
