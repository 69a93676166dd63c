"""The README's sans-IO example runs as written, against the local server."""

from __future__ import annotations

import re
from pathlib import Path

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
