"""End to end: client CPU per session against the local server, every mode vs the SDK.

The server runs in its own process for the whole benchmark; each client
session runs in a fresh process (``benchmarks._e2e_worker``) that reports the
CPU time of the session alone. Modes take turns in every repeat (the order
rotates), so slow phases of a noisy machine hit them all alike; the median
over repeats is reported.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from ._common import proc_cpu_seconds
from ._e2e_worker import MODES
from ._results import Section, Target
from ._server import local_server, module_command, subprocess_env

__all__ = ["OUR_MODES", "available_modes", "run_e2e"]

OUR_MODES = tuple(m for m in MODES if m != "sdk")
_NEEDS: dict[str, tuple[str, ...]] = {
    "anyio-asyncio": ("anyio", "s2s_anyio"),
    "anyio-uvloop": ("anyio", "s2s_anyio", "uvloop"),
    "anyio-trio": ("anyio", "trio", "s2s_anyio"),
    "trio": ("trio", "s2s_trio"),
    "threaded": ("s2s_threaded",),
    "sdk": ("aiohttp", "gradium"),
}


def available_modes(wanted: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Modes whose modules import, and why the others are skipped."""
    ok: list[str] = []
    skipped: dict[str, str] = {}
    for mode in wanted or list(MODES):
        if mode not in MODES:
            skipped[mode] = "unknown mode"
            continue
        missing = [name for name in _NEEDS.get(mode, ()) if importlib.util.find_spec(name) is None]
        if missing:
            skipped[mode] = f"not importable: {', '.join(missing)}"
        else:
            ok.append(mode)
    return ok, skipped


def _run_worker(mode: str, base_url: str, seconds: float, profile: Path | None,
                timeout: float) -> dict[str, Any]:
    cmd = module_command("_e2e_worker", mode, base_url, str(seconds))
    if profile is not None:
        cmd += ["--profile", str(profile)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              env=subprocess_env(), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"mode": mode, "ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"mode": mode, "ok": False,
                "error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def run_e2e(*, seconds: float, repeats: int, modes: list[str] | None = None,
            profile_dir: Path | None = None, log: Any = print) -> Section:
    """Targets: every mode <= 1/2 of the SDK's CPU per session, the best <= 1/3."""
    section = Section("e2e")
    selected, skipped = available_modes(modes)
    if "sdk" not in selected:
        section.error = f"the official SDK is needed as the reference: {skipped.get('sdk')}"
        return section
    ours = [m for m in selected if m != "sdk"]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in selected}
    timeout = 120 + 10 * seconds
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    with local_server() as server:
        for rep in range(repeats):
            order = selected[rep % len(selected):] + selected[:rep % len(selected)]
            for mode in order:
                prof = (profile_dir / f"e2e-{mode}.prof"
                        if profile_dir is not None and rep == 0 else None)
                server_cpu0 = proc_cpu_seconds(server.pid)
                record = _run_worker(mode, server.base_url, seconds, prof, timeout)
                server_cpu1 = proc_cpu_seconds(server.pid)
                if server_cpu0 is not None and server_cpu1 is not None:
                    record["server_cpu_s"] = server_cpu1 - server_cpu0
                runs[mode].append(record)
                if record.get("ok"):
                    log(f"  e2e {rep + 1}/{repeats} {mode:14s} cpu {record['cpu_s']:.3f} s "
                        f"wall {record['wall_s']:.2f} s")
                else:
                    log(f"  e2e {rep + 1}/{repeats} {mode:14s} FAILED: {record.get('error')}")

    def median_cpu(mode: str) -> float | None:
        values = [r["cpu_s"] for r in runs[mode] if r.get("ok")]
        return statistics.median(values) if values else None

    sdk_cpu = median_cpu("sdk")
    expected_audio = {r.get("audio_bytes") for r in runs["sdk"] if r.get("ok")}
    summary: dict[str, Any] = {}
    best: tuple[float, str] | None = None
    for mode in ours:
        cpu = median_cpu(mode)
        ratio = sdk_cpu / cpu if cpu and sdk_cpu else None
        audio = {r.get("audio_bytes") for r in runs[mode] if r.get("ok")}
        same_output = audio == expected_audio
        failures = sum(1 for r in runs[mode] if not r.get("ok"))
        note = []
        if failures:
            note.append(f"{failures}/{len(runs[mode])} runs failed")
        if not same_output:
            note.append(f"output differs from the SDK's ({audio} vs {expected_audio} bytes)")
        section.targets.append(Target(
            key=f"e2e/{mode}", title=f"End to end, {mode}: client CPU per {seconds:g} s session",
            unit="s CPU/session", ours=cpu, sdk=sdk_cpu, ratio=ratio, goal=">= 2x (<= 1/2)",
            goal_ratio=2.0, met=None if ratio is None else ratio >= 2.0 and same_output,
            note="; ".join(note)))
        if ratio is not None and cpu is not None and (best is None or cpu < best[0]):
            best = (cpu, mode)
        summary[mode] = {"median_cpu_s": cpu, "ratio": ratio, "same_output": same_output}
    if best is not None and sdk_cpu:
        cpu, mode = best
        section.targets.append(Target(
            key="e2e/best", title=f"End to end, best mode ({mode})", unit="s CPU/session",
            ours=cpu, sdk=sdk_cpu, ratio=sdk_cpu / cpu, goal=">= 3x (<= 1/3)", goal_ratio=3.0,
            met=sdk_cpu / cpu >= 3.0))
    section.details = {"seconds": seconds, "repeats": repeats, "skipped": skipped,
                       "summary": summary, "sdk_median_cpu_s": sdk_cpu, "runs": runs}
    return section
