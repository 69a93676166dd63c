"""``s2s translate a b c -o OUTDIR/``: files at once; a failed file does not stop the others."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from cli_support import (
    TIMEOUT,
    Run,
    child_env,
    error_lines,
    speech,
    video_packets,
    write_audio,
    write_video,
)

from s2s_anyio import run_server
from s2s_core.audio import write_wav

LIMIT_S = 8.0  # the test server's audio limit per request: long.wav (10 s) goes over it


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    voice = speech(24_000)
    write_wav(folder / "talk.wav", voice, 24_000)
    write_video(folder / "clip.mp4", "mp4", "libx264", "aac", speech(48_000), 48_000)
    write_audio(folder / "talk.mp3", "mp3", "libmp3lame", voice, 24_000)
    (folder / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 8)
    write_wav(folder / "long.wav", np.concatenate((voice, voice, voice[: len(voice) // 6])),
              24_000)
    return folder


@pytest.fixture(scope="module")
def limited_server() -> Iterator[str]:
    with run_server(max_audio_s=LIMIT_S) as url:
        yield url


@pytest.fixture(scope="module")
def runs(inputs: Path, limited_server: str) -> Iterator[dict[str, Run]]:
    started = {
        # one bad file found while checking, one refused by the server mid-stream
        "human": Run("translate", "talk.wav", "clip.mp4", "broken.mp3", "long.wav",
                     "-o", "out/", "--jobs", "4", "--no-pace", "--url", limited_server,
                     cwd=inputs),
        "json": Run("translate", "talk.wav", "clip.mp4", "broken.mp3", "-o", "json-out/",
                    "--ext", "flac", "--jobs", "2", "--backend", "threaded", "--json",
                    "--no-pace", cwd=inputs),
        "clash": Run("translate", "talk.wav", "clip.mp4", "talk.mp3", "-o", "clash/",
                     cwd=inputs),
    }
    yield started
    for run in started.values():
        run.result()


def test_a_batch_with_bad_files_translates_the_others(runs: dict[str, Run],
                                                      inputs: Path) -> None:
    proc = runs["human"].result()
    assert proc.returncode == 1, proc.stderr
    out = inputs / "out"
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "talk.wav"]  # no .part
    # The video keeps its container: a dub, its video copied.
    assert video_packets(out / "clip.mp4") == video_packets(inputs / "clip.mp4")
    with av.open(str(out / "talk.wav")) as container:
        assert container.streams.audio[0].sample_rate == 48_000
    done = [line for line in proc.stdout.splitlines() if line.startswith("done ")]
    assert sorted(line.split(":")[0] for line in done) == [
        f"done {name} -> {Path('out') / name}" for name in ("clip.mp4", "talk.wav")]
    errors = sorted(error_lines(proc))
    assert len(errors) == 2, proc.stderr
    assert errors[0].startswith("s2s: error: broken.mp3: cannot be read as audio")
    assert errors[1].startswith("s2s: error: long.wav: ")
    assert f"limit of {LIMIT_S:g} s" in errors[1]
    assert proc.stdout.splitlines()[-1].startswith(
        "Translated 2 of 4 files in "), proc.stdout
    assert proc.stdout.splitlines()[-1].endswith("failed: broken.mp3, long.wav")


def test_a_batch_in_json_lines(runs: dict[str, Run], inputs: Path) -> None:
    proc = runs["json"].result()
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    summaries = {e["input"]: e for e in lines if e["type"] == "summary"}
    assert sorted(summaries) == ["clip.mp4", "talk.wav"]
    assert summaries["clip.mp4"]["output"] == str(Path("json-out") / "clip.flac")  # --ext
    (error,) = [e for e in lines if e["type"] == "error"]
    assert error["input"] == "broken.mp3" and error["exit_code"] == 2
    assert lines[-1] == {**lines[-1], "type": "batch", "files": 3, "translated": 2,
                         "failed": ["broken.mp3"]}
    events = {e["input"] for e in lines if e["type"] in ("ready", "text", "audio", "end")}
    assert events == {"clip.mp4", "talk.wav"}
    assert sorted(p.name for p in (inputs / "json-out").iterdir()) == ["clip.flac", "talk.flac"]


def test_outputs_that_would_clash_are_refused_before_anything(runs: dict[str, Run],
                                                              inputs: Path) -> None:
    proc = runs["clash"].result()
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc)
    assert "talk.mp3" in line and "talk.wav" in line and "distinct names" in line, line
    assert not (inputs / "clash").exists()


@pytest.mark.parametrize("backend", ["anyio", "threaded"])
def test_ctrl_c_stops_a_batch_and_leaves_no_partial_files(inputs: Path, tmp_path: Path,
                                                          backend: str) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s_cli", "translate", "talk.wav", "clip.mp4", "-o",
         f"{out}/", "--backend", backend], cwd=inputs, env=child_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not (out.is_dir() and len(list(out.glob("*.part"))) == 2):  # both streaming
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "s2s: interrupted" in err
    assert list(out.iterdir()) == []


def test_one_overall_progress_bar_on_a_terminal(inputs: Path, tmp_path: Path) -> None:
    """stderr on a terminal: one bar for the whole batch, counting files and seconds."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s_cli", "translate", "talk.wav", "clip.mp4", "-o",
         f"{tmp_path}/", "--no-pace"], cwd=inputs, env=child_env(COLUMNS="120"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    screen = bytearray()
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            screen += data
    finally:
        os.close(master)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, screen.decode(errors="replace")
    shown = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", bytes(screen)).decode(errors="replace")
    assert "2/2 files" in shown and "Traceback" not in shown
    assert len(re.findall(r"^done ", out.decode(), re.M)) == 2
