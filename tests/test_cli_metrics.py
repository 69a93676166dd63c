"""Issue 16 item 4: the command's summary and ``--json`` carry the core's latency metrics."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Run

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "bonjour_fr.wav"


def test_json_summary_has_the_core_metrics(tmp_path: Path) -> None:
    proc = Run("translate", str(SAMPLE), "-o", "out.wav", "--no-pace", "--json",
               cwd=tmp_path).result()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["type"] == "summary"
    metrics = summary["metrics"]
    assert metrics["ended"] is True
    assert 0 <= metrics["ready_s"] <= metrics["first_audio_s"]
    assert metrics["lag_p50_s"] <= metrics["lag_p95_s"] <= metrics["lag_max_s"]
    assert metrics["lag_count"] > 0
    # 4.66 s of speech, 2 s of trailing silence, the 0.32 s lead-in before it
    assert abs(metrics["audio_in_s"] - 6.98) < 0.05


def test_human_summary_shows_the_output_lag(tmp_path: Path) -> None:
    proc = Run("translate", str(SAMPLE), "-o", "out.wav", "--no-pace", cwd=tmp_path).result()
    assert proc.returncode == 0, proc.stderr
    lag = [line for line in proc.stdout.splitlines() if "output lag" in line]
    assert len(lag) == 1 and "p50" in lag[0] and "p95" in lag[0] and "max" in lag[0]
