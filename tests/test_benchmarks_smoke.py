"""The benchmarks run and report (structure only: no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("gradium")
pytest.importorskip("aiohttp")

from benchmarks.__main__ import main


def test_quick_micro_benchmarks_write_every_output(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--only", "decode,encode", "--rounds", "2", "--number", "20",
                   "--out", str(tmp_path)])
    assert status == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert {"date", "python", "cpu", "command"} <= set(data["info"])
    sections = {s["name"]: s for s in data["sections"]}
    assert set(sections) == {"decode", "encode"}
    keys = {t["key"] for s in sections.values() for t in s["targets"]}
    assert {"decode", "decode/realtime", "encode/int16", "encode/float32"} <= keys
    for section in sections.values():
        assert section["error"] is None
        for target in section["targets"]:
            assert target["ours"] > 0 and target["sdk"] > 0
            assert isinstance(target["met"], (bool, type(None)))
    table = (tmp_path / "results.md").read_text()
    assert "| Target |" in table and "Decode" in table
    assert (tmp_path / "results.png").stat().st_size > 1000 or not _has_matplotlib()
    assert "| Target |" in capsys.readouterr().out


def test_unknown_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["--only", "nope", "--out", str(tmp_path)]) == 64


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
