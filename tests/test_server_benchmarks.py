"""The server's own benchmarks run and report (structure only: no timing is asserted)."""

from __future__ import annotations

import re

import pytest

from benchmarks import server_load, server_step

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("args", [[], ["--engine-only"], ["--block", "0.16", "--memory"]])
def test_server_step_reports_its_cost(args: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert server_step.main(["--sessions", "3", "--seconds", "0.8", *args]) == 0
    out = capsys.readouterr().out
    assert re.search(r"(server step|engine only): [0-9.]+ us per chunk", out), out


def test_server_load_drives_a_server_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert server_load.main(["--sessions", "4", "--seconds", "2.5", "--ramp", "0.2"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"server at 4 paced sessions: [0-9.]+ cores, [0-9.]+ us per 80 ms chunk "
                      r"\(([0-9]+) chunks/s.*the last answers ([0-9.]+) s after", out)
    assert match, out
    assert 40 <= int(match.group(1)) <= 60  # 4 sessions x 12.5 chunks/s
    assert float(match.group(2)) < 30  # every session got its end_of_stream
