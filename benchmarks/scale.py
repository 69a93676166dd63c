"""Scale: many concurrent sessions paced at real time in one client process.

Each level runs against a fresh server process. When our client misses the
goal at a level, smaller levels follow (``levels``), to find where it holds;
the official SDK then runs the same workload at the largest level measured
for us, for comparison.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from ._results import Section, Target
from ._server import local_server, module_command, subprocess_env

__all__ = ["run_scale", "LATENESS_GOAL_MS"]

LATENESS_GOAL_MS = 40.0


def _run_level(mode: str, sessions: int, seconds: float, ramp: float) -> dict[str, Any]:
    with local_server() as server:
        cmd = module_command("_scale_worker", mode, server.url,
                             "--sessions", str(sessions), "--seconds", str(seconds),
                             "--ramp", str(ramp), "--server-pid", str(server.pid))
        timeout = ramp + 2 * seconds + 150
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=subprocess_env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"mode": mode, "sessions": sessions, "ok": False,
                    "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"mode": mode, "sessions": sessions, "ok": False,
                "error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    record: dict[str, Any] = json.loads(lines[-1])
    return record


def _passes(record: dict[str, Any]) -> bool:
    lateness = record.get("lateness_ms") or {}
    return bool(record.get("ok")) and lateness.get("p99", float("inf")) < LATENESS_GOAL_MS


def _bottleneck(record: dict[str, Any]) -> str:
    server = record.get("server_cores_steady")
    client = record.get("client_cores_steady")
    parts = []
    if client is not None:
        parts.append(f"client {client:.2f} cores")
    if server is not None:
        parts.append(f"server {server:.2f} cores")
    busy = [name for name, value in (("client", client), ("server", server))
            if value is not None and value >= 0.9]
    if busy:
        parts.append(f"saturated: {', '.join(busy)}")
    return "; ".join(parts)


def _describe(record: dict[str, Any]) -> str:
    if not record.get("ok") and record.get("error"):
        return f"{record['sessions']} sessions: {record['error']}"
    late = record.get("lateness_ms", {})
    return (f"{record.get('sessions')} sessions: p99 {late.get('p99', float('nan')):.1f} ms, "
            f"{record.get('completed')} completed, {_bottleneck(record)}")


def run_scale(*, levels: list[int], seconds: float, ramp: float, with_sdk: bool = True,
              log: Any = print) -> Section:
    """Target: p99 send lateness < 40 ms at the first level (1000 sessions by default)."""
    section = Section("scale")
    runs: list[dict[str, Any]] = []
    chosen: dict[str, Any] | None = None
    for sessions in levels:
        log(f"  scale: {sessions} sessions x {seconds:g} s (anyio on asyncio) ...")
        record = _run_level("anyio-asyncio", sessions, seconds, ramp)
        runs.append(record)
        log(f"    {_describe(record)}")
        if chosen is None or _passes(record):
            chosen = record
        if _passes(record):
            break
    assert chosen is not None
    sdk_record: dict[str, Any] | None = None
    if with_sdk:
        sessions = int(chosen.get("sessions", levels[0]))
        log(f"  scale: {sessions} sessions x {seconds:g} s (official SDK) ...")
        sdk_record = _run_level("sdk", sessions, seconds, ramp)
        log(f"    {_describe(sdk_record)}")

    first = runs[0]
    first_ok = _passes(first)
    late = first.get("lateness_ms", {})
    sdk_late = (sdk_record or {}).get("lateness_ms", {})
    same_level = sdk_record is not None and sdk_record.get("sessions") == first.get("sessions")
    note = _describe(first)
    if not first_ok and chosen is not first:
        note += f"; holds at {_describe(chosen)}" if _passes(chosen) else "; no level passed"
    section.targets.append(Target(
        key="scale/lateness",
        title=f"Scale: {first.get('sessions')} sessions paced at real time, p99 send lateness",
        unit="ms", ours=late.get("p99"), sdk=sdk_late.get("p99") if same_level else None,
        ratio=None, goal=f"p99 < {LATENESS_GOAL_MS:g} ms", met=first_ok, note=note))
    if _passes(chosen) and chosen is not first:
        section.targets.append(Target(
            key="scale/lateness-holds",
            title=f"Scale: {chosen.get('sessions')} sessions (largest level that passed)",
            unit="ms", ours=chosen["lateness_ms"]["p99"],
            sdk=sdk_late.get("p99") if sdk_record is not None
            and sdk_record.get("sessions") == chosen.get("sessions") else None, ratio=None,
            goal=f"p99 < {LATENESS_GOAL_MS:g} ms", met=True, note=_describe(chosen)))
    sdk_cmp = sdk_record if sdk_record is not None and sdk_record.get("ok") else None
    cpu = chosen.get("cpu_per_session_s")
    sdk_cpu = sdk_cmp.get("cpu_per_session_s") if sdk_cmp else None
    section.targets.append(Target(
        key="scale/cpu", title=f"Scale: client CPU per {seconds:g} s session "
                               f"({chosen.get('sessions')} concurrent)",
        unit="s CPU/session", ours=cpu, sdk=sdk_cpu,
        ratio=sdk_cpu / cpu if cpu and sdk_cpu else None, goal="report", met=None))
    rss = chosen.get("rss_per_session_kib")
    sdk_rss = sdk_cmp.get("rss_per_session_kib") if sdk_cmp else None
    section.targets.append(Target(
        key="scale/rss", title=f"Scale: client memory (RSS) per session "
                               f"({chosen.get('sessions')} concurrent)",
        unit="KiB/session", ours=rss, sdk=sdk_rss,
        ratio=sdk_rss / rss if rss and sdk_rss else None, goal="report", met=None))
    section.details = {"levels": levels, "seconds": seconds, "ramp_s": ramp, "runs": runs,
                       "sdk": sdk_record}
    return section
