"""The README's examples run as written, against the local server."""

from __future__ import annotations

import contextlib
import io
import re
import wave
from pathlib import Path

import pytest

from harness import tone_burst
from s2s_anyio import run_server
from s2s_core.audio import to_pcm16

README = Path(__file__).resolve().parent.parent / "README.md"


def test_sans_io_example_translates() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "def translate(" in b)
    namespace: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), namespace)
    pcm = to_pcm16(tone_burst())
    with run_server() as url:
        out = namespace["translate"](url, pcm)  # type: ignore[operator]
    assert isinstance(out, bytes) and len(out) == 2 * len(pcm)


def test_state_diagram_is_the_table() -> None:
    from s2s_core._state import render_diagram

    assert render_diagram() in README.read_text()


def _quickstarts() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return [b for b in blocks if "run_server()" in b and "def translate(" not in b]


def test_every_adapter_has_a_runnable_quickstart() -> None:
    shown = "\n".join(_quickstarts())
    for module in ("s2s_anyio", "s2s_trio", "s2s_threaded"):
        assert f"from {module} import S2SClient" in shown


@pytest.mark.parametrize("index", range(3))
def test_quickstart_runs_as_written(index: int, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each quickstart, executed as written (it starts the local server itself)."""
    example = _quickstarts()[index]
    monkeypatch.chdir(tmp_path)  # the threaded one writes out.wav
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, "README.md", "exec"), {"__name__": "__main__"})
    assert out.getvalue().strip(), "the example printed nothing"
    if "result.save" in example:
        with wave.open(str(tmp_path / "out.wav")) as saved:
            assert saved.getnframes() == 48000 * 4  # 2 s in + 2 s of trailing silence, at 48 kHz
