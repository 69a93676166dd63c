"""Scale: many concurrent sessions paced at real time in one client process.

Every level (session count) runs every selected client mode and the official
SDK, each against a fresh server process, in one rotation, so each ratio
compares runs made minutes apart on the same machine. The targets (issue 17):

- up to 1000 sessions: client CPU per session <= 1/3 of the SDK's, RSS per
  session <= the SDK's, p99 send lateness <= the SDK's and < 20 ms;
- above 1000 sessions: every session completes, p99 < 40 ms, the client
  under one core.

They are judged on the first mode (``anyio-asyncio`` by default); the other
modes are reported beside it. The ``floor`` modes are no client at all (see
``_scale_worker``): their ratio against the SDK is the most any client on that
loop can reach in this harness, so they show which targets a machine allows. The load average is
recorded with every run.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from ._results import Section, Target
from ._server import local_server, module_command, subprocess_env

__all__ = ["run_scale", "LATENESS_GOAL_MS", "LARGE_LATENESS_GOAL_MS", "DEFAULT_MODES"]

LATENESS_GOAL_MS = 20.0
"""p99 send lateness goal up to 1000 sessions."""
LARGE_LATENESS_GOAL_MS = 40.0
"""p99 send lateness goal above 1000 sessions."""
DEFAULT_MODES = ("anyio-asyncio",)


def _run_level(mode: str, sessions: int, seconds: float, ramp: float) -> dict[str, Any]:
    load = os.getloadavg()[0]
    with local_server() as server:
        cmd = module_command("_scale_worker", mode, server.url,
                             "--sessions", str(sessions), "--seconds", str(seconds),
                             "--ramp", str(ramp), "--server-pid", str(server.pid))
        timeout = ramp + 2 * seconds + 150 + sessions / 20
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=subprocess_env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"mode": mode, "sessions": sessions, "ok": False, "load": load,
                    "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"mode": mode, "sessions": sessions, "ok": False, "load": load,
                "error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}
    record: dict[str, Any] = json.loads(lines[-1])
    record["load"] = load
    record["load_after"] = os.getloadavg()[0]
    return record


def _p99(record: dict[str, Any] | None) -> float | None:
    if not record or not record.get("lateness_ms"):
        return None
    value = record["lateness_ms"].get("p99")
    return None if value is None else float(value)


def _describe(record: dict[str, Any]) -> str:
    if not record.get("ok") and record.get("error"):
        return f"{record['mode']} x {record['sessions']}: {record['error']}"
    p99 = _p99(record)
    parts = [f"{record.get('mode')} x {record.get('sessions')}: "
             f"{record.get('completed')} completed",
             f"p99 {p99:.1f} ms" if p99 is not None else "p99 -"]
    for key, name in (("client_cores_steady", "client"), ("server_cores_steady", "server")):
        if record.get(key) is not None:
            parts.append(f"{name} {record[key]:.2f} cores")
    if record.get("cpu_per_session_s") is not None:
        parts.append(f"{record['cpu_per_session_s']:.4f} s CPU/session")
    if record.get("rss_per_session_kib") is not None:
        parts.append(f"{record['rss_per_session_kib']:.1f} KiB/session")
    parts.append(f"load {record.get('load', float('nan')):.2f}")
    if record.get("errors"):
        parts.append(f"errors: {record['errors'][:2]}")
    return ", ".join(parts)


def _ratio(sdk: float | None, ours: float | None) -> float | None:
    return sdk / ours if sdk and ours else None


def _level_targets(sessions: int, seconds: float, mode: str, ours: dict[str, Any],
                   sdk: dict[str, Any] | None, judged: bool) -> list[Target]:
    sdk_ok = sdk if sdk is not None and sdk.get("ok") else None
    cpu, sdk_cpu = ours.get("cpu_per_session_s"), (sdk_ok or {}).get("cpu_per_session_s")
    rss, sdk_rss = ours.get("rss_per_session_kib"), (sdk_ok or {}).get("rss_per_session_kib")
    p99, sdk_p99 = _p99(ours), _p99(sdk_ok)
    cpu_ratio, rss_ratio = _ratio(sdk_cpu, cpu), _ratio(sdk_rss, rss)
    note = _describe(ours)
    key = f"scale/{sessions}/{mode}"
    targets = []
    if sessions <= 1000:
        targets.append(Target(
            key=f"{key}/cpu", title=f"Scale {sessions}, {mode}: client CPU per {seconds:g} s "
                                    "session", unit="s CPU/session", ours=cpu, sdk=sdk_cpu,
            ratio=cpu_ratio, goal=">= 3x (<= 1/3)" if judged else "report",
            goal_ratio=3.0 if judged else None,
            met=(cpu_ratio >= 3.0 if cpu_ratio is not None else False) if judged else None,
            note=note))
        targets.append(Target(
            key=f"{key}/rss", title=f"Scale {sessions}, {mode}: client RSS per session",
            unit="KiB/session", ours=rss, sdk=sdk_rss, ratio=rss_ratio,
            goal=">= 1x (<= SDK)" if judged else "report", goal_ratio=1.0 if judged else None,
            met=(rss_ratio >= 1.0 if rss_ratio is not None else False) if judged else None))
        late_ok = (bool(ours.get("ok")) and p99 is not None and p99 < LATENESS_GOAL_MS
                   and (sdk_p99 is None or p99 <= sdk_p99))
        targets.append(Target(
            key=f"{key}/lateness", title=f"Scale {sessions}, {mode}: p99 send lateness",
            unit="ms", ours=p99, sdk=sdk_p99, ratio=_ratio(sdk_p99, p99),
            goal=f"<= SDK and < {LATENESS_GOAL_MS:g} ms" if judged else "report",
            met=late_ok if judged else None))
    else:
        client = ours.get("client_cores_steady")
        holds = (bool(ours.get("ok")) and p99 is not None and p99 < LARGE_LATENESS_GOAL_MS
                 and client is not None and client < 1.0)
        targets.append(Target(
            key=f"{key}/holds", title=f"Scale {sessions}, {mode}: all complete, p99 send "
                                      "lateness", unit="ms", ours=p99, sdk=sdk_p99,
            ratio=_ratio(sdk_p99, p99),
            goal=f"all complete, p99 < {LARGE_LATENESS_GOAL_MS:g} ms, client < 1 core"
            if judged else "report", met=holds if judged else None, note=note))
        targets.append(Target(
            key=f"{key}/cpu", title=f"Scale {sessions}, {mode}: client CPU per {seconds:g} s "
                                    "session", unit="s CPU/session", ours=cpu, sdk=sdk_cpu,
            ratio=cpu_ratio, goal="report"))
        targets.append(Target(
            key=f"{key}/rss", title=f"Scale {sessions}, {mode}: client RSS per session",
            unit="KiB/session", ours=rss, sdk=sdk_rss, ratio=rss_ratio, goal="report"))
    return targets


def run_scale(*, levels: list[int], seconds: float, ramp: float, with_sdk: bool = True,
              modes: list[str] | None = None, log: Any = print) -> Section:
    """Every level, every mode and the SDK; targets judged on the first mode."""
    section = Section("scale")
    ours_modes = list(modes or DEFAULT_MODES)
    runs: list[dict[str, Any]] = []
    for sessions in levels:
        by_mode: dict[str, dict[str, Any]] = {}
        for mode in [*ours_modes, *(["sdk"] if with_sdk else [])]:
            log(f"  scale: {sessions} sessions x {seconds:g} s ({mode}) ...")
            record = _run_level(mode, sessions, seconds, ramp)
            log(f"    {_describe(record)}")
            runs.append(record)
            by_mode[mode] = record
        sdk = by_mode.get("sdk")
        for i, mode in enumerate(ours_modes):
            section.targets += _level_targets(sessions, seconds, mode, by_mode[mode], sdk,
                                              judged=i == 0)
    section.details = {"levels": levels, "seconds": seconds, "ramp_s": ramp,
                       "modes": ours_modes, "runs": runs}
    return section
