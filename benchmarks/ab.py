"""Before/after in one run: two checkouts' client workers, alternating, against one server.

``python -m benchmarks.ab --before DIR [--after DIR] [--only e2e,scale]``

Each checkout runs its own ``benchmarks._e2e_worker`` / ``_scale_worker``
with its own interpreter (``DIR/.venv/bin/python`` unless ``--before-python``
/ ``--after-python`` say otherwise) and its own working directory, so each
side imports its own code. The order of the runs rotates every repeat, so
slow phases of a shared machine hit every side alike; the official SDK (from
the ``after`` side's environment) runs in the same rotation as the reference.
The load average is recorded beside every run.

e2e: one server (the ``after`` side's) for every run; the median CPU per
session over ``--repeats`` is reported. scale: a fresh server per run (as the
scale benchmark does), from the ``after`` side.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

_PKG = "benchmarks"


@dataclass(frozen=True)
class Side:
    """One checkout: its name in the table, its folder, its interpreter.

    ``workdir`` is where its workers start (the checkout itself, or a folder
    holding only a copy of one ``benchmarks`` package, so both sides run one
    harness while each imports its own library).
    """

    name: str
    root: Path
    python: Path
    workdir: Path | None = None

    @property
    def cwd(self) -> Path:
        return self.workdir or self.root

    def command(self, worker: str, *args: str) -> list[str]:
        return [str(self.python), "-m", f"{_PKG}.{worker}", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GRADIUM_API_KEY", None)
    return env


def _load() -> float:
    return round(os.getloadavg()[0], 2)


@contextmanager
def _server(side: Side) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(side.command("_server", "--port", "0"), cwd=side.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("ws://"):
            raise RuntimeError(f"server did not start: {line!r}")
        yield line, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _run(side: Side, cmd: list[str], timeout: float) -> dict[str, Any]:
    load = _load()
    try:
        proc = subprocess.run(cmd, cwd=side.cwd, capture_output=True, text=True, env=_env(),
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "load": load}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"ok": False, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}",
                "load": load}
    record: dict[str, Any] = json.loads(lines[-1])
    record["load"] = load
    return record


def _rotate(items: list[Any], k: int) -> list[Any]:
    k %= len(items)
    return items[k:] + items[:k]


def _e2e(sides: list[Side], modes: list[str], seconds: float, repeats: int,
         log: Any) -> dict[str, Any]:
    jobs = [(side, mode) for mode in modes if mode != "sdk" for side in sides]
    jobs.append((sides[-1], "sdk"))
    runs: dict[str, list[dict[str, Any]]] = {f"{s.name}/{m}": [] for s, m in jobs}
    with _server(sides[-1]) as (url, _pid):
        base = url.replace("ws://", "http://", 1).removesuffix("speech/s2s")
        for rep in range(repeats):
            for side, mode in _rotate(jobs, rep):
                rec = _run(side, side.command("_e2e_worker", mode, base, str(seconds)),
                           120 + 10 * seconds)
                runs[f"{side.name}/{mode}"].append(rec)
                log(f"  e2e {rep + 1}/{repeats} {side.name:7s} {mode:14s} "
                    f"cpu {rec.get('cpu_s', float('nan')):.4f} s load {rec['load']}"
                    + ("" if rec.get("ok") else f" FAILED {rec.get('error')}"))
    return runs


def _scale(sides: list[Side], modes: list[str], sessions: int, seconds: float, ramp: float,
           repeats: int, log: Any, sdk_mode: str = "sdk") -> dict[str, Any]:
    jobs = [(side, mode) for mode in modes if not mode.startswith("sdk") for side in sides]
    jobs.append((sides[-1], sdk_mode))
    runs: dict[str, list[dict[str, Any]]] = {f"{s.name}/{m}": [] for s, m in jobs}
    for rep in range(repeats):
        for side, mode in _rotate(jobs, rep):
            with _server(sides[-1]) as (url, pid):
                cmd = side.command("_scale_worker", mode, url, "--sessions", str(sessions),
                                   "--seconds", str(seconds), "--ramp", str(ramp),
                                   "--server-pid", str(pid))
                rec = _run(side, cmd, ramp + 2 * seconds + 150)
            runs[f"{side.name}/{mode}"].append(rec)
            late = rec.get("lateness_ms") or {}
            log(f"  scale {rep + 1}/{repeats} {side.name:7s} {mode:14s} {sessions} sessions: "
                f"cpu/session {rec.get('cpu_per_session_s', float('nan')):.4f} s, "
                f"rss/session {rec.get('rss_per_session_kib', float('nan')):.1f} KiB, "
                f"p99 {late.get('p99', float('nan')):.1f} ms, "
                f"client {rec.get('client_cores_steady', float('nan')):.2f} cores, "
                f"server {rec.get('server_cores_steady', float('nan')):.2f} cores, "
                f"completed {rec.get('completed')}, load {rec['load']}"
                + ("" if rec.get("ok") else f" FAILED {rec.get('error') or rec.get('errors')}"))
    return runs


def _median(records: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in records if r.get("ok") and r.get(key) is not None]
    return statistics.median(values) if values else None


def _table_e2e(runs: dict[str, list[dict[str, Any]]], sides: list[Side],
               modes: list[str]) -> list[str]:
    sdk = _median(runs[f"{sides[-1].name}/sdk"], "cpu_s")
    head = " | ".join(f"{s.name} CPU (s) | {s.name} ratio" for s in sides)
    out = [f"| mode | {head} |", "|---" * (1 + 2 * len(sides)) + "|"]
    for mode in modes:
        if mode == "sdk":
            continue
        cells = []
        for side in sides:
            cpu = _median(runs[f"{side.name}/{mode}"], "cpu_s")
            ratio = f"{sdk / cpu:.2f}x" if cpu and sdk else "-"
            cells.append(f"{cpu:.4f} | {ratio}" if cpu else "- | -")
        out.append(f"| {mode} | {' | '.join(cells)} |")
    out.append(f"| sdk | {sdk:.4f} | 1.00x |" + " - | - |" * (len(sides) - 1)
               if sdk else "| sdk | - |")
    return out


def _table_scale(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = ["| run | CPU/session (s) | RSS/session (KiB) | p99 late (ms) | client cores "
           "| server cores | completed |", "|---|---|---|---|---|---|---|"]
    for key, records in runs.items():
        def fmt(name: str, spec: str, records: list[dict[str, Any]] = records) -> str:
            value = _median(records, name)
            return "-" if value is None else format(value, spec)

        p99 = [r["lateness_ms"]["p99"] for r in records if r.get("lateness_ms")]
        late = f"{statistics.median(p99):.1f}" if p99 else "-"
        done = ",".join(str(r.get("completed")) for r in records)
        out.append(f"| {key} | {fmt('cpu_per_session_s', '.4f')} | "
                   f"{fmt('rss_per_session_kib', '.1f')} | {late} | "
                   f"{fmt('client_cores_steady', '.2f')} | {fmt('server_cores_steady', '.2f')}"
                   f" | {done} |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n")[0])
    p.add_argument("--before", type=Path, required=True, help="the other checkout")
    p.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    p.add_argument("--before-python", type=Path)
    p.add_argument("--after-python", type=Path)
    p.add_argument("--only", default="e2e,scale")
    p.add_argument("--modes", default="anyio-asyncio,anyio-trio,trio,threaded")
    p.add_argument("--scale-modes", default="anyio-asyncio")
    p.add_argument("--scale-sdk", default="sdk", help="the SDK's scale mode (sdk, sdk-uvloop)")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--scale-seconds", type=float, default=20.0)
    p.add_argument("--ramp", type=float, default=4.0)
    p.add_argument("--scale-repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-results/ab.json"))
    p.add_argument("--one-harness", action="store_true",
                   help="both sides run the after side's workers (each with its own library)")
    ns = p.parse_args(argv)
    workdir = None
    if ns.one_harness:
        workdir = Path(tempfile.mkdtemp(prefix="s2s-ab-"))
        shutil.copytree(ns.after.resolve() / _PKG, workdir / _PKG,
                        ignore=shutil.ignore_patterns("__pycache__"))
    sides = [Side("before", ns.before.resolve(),
                  ns.before_python or ns.before.resolve() / ".venv/bin/python", workdir),
             Side("after", ns.after.resolve(),
                  ns.after_python or ns.after.resolve() / ".venv/bin/python", workdir)]

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    only = ns.only.split(",")
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "load_at_start": os.getloadavg(),
                              "sides": {s.name: str(s.root) for s in sides}}
    lines: list[str] = [f"{result['date']}, load at start {_load()}"]
    modes = ns.modes.split(",")
    if "e2e" in only:
        runs = _e2e(sides, modes, ns.seconds, ns.repeats, log)
        result["e2e"] = runs
        lines += ["", f"e2e: median client CPU per {ns.seconds:g} s session over "
                  f"{ns.repeats} repeats; ratio = SDK / ours", *_table_e2e(runs, sides, modes)]
    if "scale" in only:
        runs = _scale(sides, ns.scale_modes.split(","), ns.sessions, ns.scale_seconds, ns.ramp,
                      ns.scale_repeats, log, sdk_mode=ns.scale_sdk)
        result["scale"] = runs
        lines += ["", f"scale: {ns.sessions} paced sessions x {ns.scale_seconds:g} s, median of "
                  f"{ns.scale_repeats}", *_table_scale(runs)]
    lines.append(f"load at end {_load()}")
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
