"""End-to-end tests of the ``s2s`` command, run as a subprocess against local servers."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import (
    REPO,
    SAMPLE,
    TIMEOUT,
    TRAILING_S,
    Run,
    child_env,
    error_lines,
    expect_one_error,
    free_port,
    wav_info,
)


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    """``s2s serve --api-key good`` in a subprocess; yields its URL; stops it with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s_cli", "serve", "--port", "0", "--api-key", "good"],
        cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    match = re.search(r"ws://\S+", first)
    assert match, first
    try:
        yield match.group(0)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
        assert "Traceback" not in err


# -- runs started together (the file's subprocesses overlap to keep it fast) ----------

BACKENDS = ("anyio", "trio", "threaded")


@pytest.fixture(scope="module")
def translations(tmp_path_factory: pytest.TempPathFactory,
                 keyed_server: str) -> Iterator[dict[str, Run]]:
    """Successful translations on each backend and with other options."""
    def run(name: str, *args: str, **env: str) -> Run:
        return Run("translate", *args, "--no-pace", cwd=tmp_path_factory.mktemp(name), **env)

    runs = {f"backend-{b}": run(b, str(SAMPLE), "-o", "out.wav", "--backend", b)
            for b in BACKENDS}
    runs["default"] = run("default", str(SAMPLE), "-o", "out.wav")
    runs["json"] = run("json", str(SAMPLE), "-o", "out.wav", "--json")
    runs["keyed"] = run("keyed", str(SAMPLE), "-o", "out.wav", "--url", keyed_server,
                        GRADIUM_API_KEY="good")
    raw_dir = tmp_path_factory.mktemp("raw")
    with wave.open(str(SAMPLE)) as w:
        (raw_dir / "in.pcm").write_bytes(w.readframes(w.getnframes()))
        rate = w.getframerate()
    runs["raw"] = Run("translate", "in.pcm", "--rate", str(rate), "-o", "out.wav", "--no-pace",
                      "--input-format", "ulaw_8000", "--output-format", "pcm_16000",
                      cwd=raw_dir)
    yield runs
    for r in runs.values():
        r.result()


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory,
             keyed_server: str) -> Iterator[dict[str, Run]]:
    """Runs that must fail with one clear line."""
    def run(name: str, *args: str, files: dict[str, bytes] | None = None, **env: str) -> Run:
        cwd = tmp_path_factory.mktemp(name)
        for file, data in (files or {}).items():
            (cwd / file).write_bytes(data)
        return Run(*args, cwd=cwd, **env)

    sample = str(SAMPLE)
    closed = f"ws://127.0.0.1:{free_port()}/api/speech/s2s"
    with socket.socket() as silent:  # accepts TCP connections, never answers the upgrade
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        runs = {
            "missing": run("missing", "translate", "nope.wav", "-o", "out.wav"),
            "text": run("text", "translate", "notes.txt", "-o", "out.wav",
                        files={"notes.txt": b"not audio\n"}),
            "broken": run("broken", "translate", "broken.wav", "-o", "out.wav",
                          files={"broken.wav": b"RIFF\x10\x00\x00\x00WAVEjunk"}),
            "format": run("format", "translate", sample, "-o", "out.wav",
                          "--output-format", "mp3"),
            "unwritable": run("unwritable", "translate", sample, "-o", "no-dir/out.wav"),
            "closed": run("closed", "translate", sample, "-o", "out.wav", "--url", closed),
            "timeout": run("timeout", "translate", sample, "-o", "out.wav", "--url",
                           f"ws://127.0.0.1:{silent.getsockname()[1]}",
                           "--connect-timeout", "0.3"),
            "wrong-key-json": run("json", "translate", sample, "-o", "out.wav", "--url",
                                  keyed_server, "--json", GRADIUM_API_KEY="wrong"),
            "busy-port": run("busy", "serve", "--port", keyed_server.split(":")[2].split("/")[0]),
            "bench": run("bench", "bench", "--help"),  # outside the repository
            **{f"wrong-key-{b}": run(b, "translate", sample, "-o", "out.wav", "--url",
                                     keyed_server, "--backend", b, GRADIUM_API_KEY="wrong")
               for b in BACKENDS},
        }
        for r in runs.values():
            r.result()
    yield runs


@pytest.fixture(scope="module")
def sample_s() -> float:
    rate, seconds = wav_info(SAMPLE)
    assert 4.0 <= seconds <= 6.0 and rate in (22050, 24000)
    return seconds


# -- the sample ------------------------------------------------------------------

def test_sample_is_small_mono_16_bit() -> None:
    assert SAMPLE.stat().st_size < 300_000
    with wave.open(str(SAMPLE)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)


# -- translate -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["default", *(f"backend-{b}" for b in BACKENDS)])
def test_translate_sample_on_the_embedded_server(translations: dict[str, Run],
                                                 sample_s: float, name: str) -> None:
    run = translations[name]
    proc = run.result()
    assert proc.returncode == 0, proc.stderr
    assert error_lines(proc) == []
    assert "embedded local server" in proc.stderr
    rate, seconds = wav_info(run.cwd / "out.wav")
    assert rate == 48000
    assert seconds == pytest.approx(sample_s + TRAILING_S, abs=0.1)
    # Transcript lines with timestamps, then the summary.
    assert re.search(r"^\[\s*\d+\.\d\d s ->\s*\d+\.\d\d s\] \S", proc.stdout, re.M), proc.stdout
    for label in ("request id", "first audio after", "first text after", "real-time factor",
                  "audio sent", "audio received"):
        assert label in proc.stdout
    assert run.files() == ["out.wav"]  # no partial file left


def test_translate_json_lines(translations: dict[str, Run], sample_s: float) -> None:
    proc = translations["json"].result()
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ready" and kinds[-2:] == ["end", "summary"]
    assert {"text", "audio"} <= set(kinds)
    ready, summary = events[0], events[-1]
    assert ready["request_id"] and ready["sample_rate"] == 48000
    assert summary["request_id"] == ready["request_id"]
    assert summary["output_s"] == pytest.approx(sample_s + TRAILING_S, abs=0.1)
    assert summary["bytes_received"] == sum(e["bytes"] for e in events if e["type"] == "audio")
    text = next(e for e in events if e["type"] == "text")
    assert text["text"] and text["stop_s"] >= text["start_s"] >= 0


def test_translate_raw_pcm_and_other_formats(translations: dict[str, Run],
                                             sample_s: float) -> None:
    run = translations["raw"]
    assert run.result().returncode == 0, run.result().stderr
    rate, seconds = wav_info(run.cwd / "out.wav")
    assert rate == 16000
    assert seconds == pytest.approx(sample_s + TRAILING_S, abs=0.1)


def test_translate_against_a_keyed_server(translations: dict[str, Run]) -> None:
    run = translations["keyed"]
    proc = run.result()
    assert proc.returncode == 0, proc.stderr
    assert "embedded" not in proc.stderr
    assert wav_info(run.cwd / "out.wav")[0] == 48000


def test_ctrl_c_stops_cleanly_without_a_partial_file(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2s_cli", "translate", str(SAMPLE), "-o", "out.wav"],
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert proc.stderr is not None
    assert proc.stdout is not None
    while "segment 1" not in proc.stdout.readline():  # mid-stream: the loop is running
        assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130
    assert "Traceback" not in err and "s2s: interrupted" in err
    assert list(tmp_path.iterdir()) == []


# -- errors a person can make ------------------------------------------------------

def test_missing_input_file(failures: dict[str, Run]) -> None:
    expect_one_error(failures["missing"].result(), 2, "not found", "nope.wav")


def test_input_that_is_not_a_wav_file(failures: dict[str, Run]) -> None:
    expect_one_error(failures["text"].result(), 2, "notes.txt", "cannot be read as audio",
                     "--rate")
    expect_one_error(failures["broken"].result(), 2, "broken.wav")
    assert failures["broken"].files() == ["broken.wav"]


def test_unknown_output_format(failures: dict[str, Run]) -> None:
    proc = failures["format"].result()
    expect_one_error(proc, 2, "--output-format", "mp3", "pcm")
    assert "usage:" not in proc.stderr


def test_unwritable_output(failures: dict[str, Run]) -> None:
    expect_one_error(failures["unwritable"].result(), 2, "-o no-dir/out.wav",
                     "'no-dir' does not exist", "existing, writable folder")


def test_closed_port(failures: dict[str, Run]) -> None:
    expect_one_error(failures["closed"].result(), 1, "cannot connect", "ws://127.0.0.1:",
                     "refused")
    assert failures["closed"].files() == []


def test_connect_timeout(failures: dict[str, Run]) -> None:
    expect_one_error(failures["timeout"].result(), 1, "took more than 0.3 s",
                     "--connect-timeout")


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrong_api_key(failures: dict[str, Run], backend: str) -> None:
    run = failures[f"wrong-key-{backend}"]
    expect_one_error(run.result(), 1, "refused", "1008", "invalid API key", "GRADIUM_API_KEY")
    assert run.files() == []


def test_wrong_api_key_json(failures: dict[str, Run]) -> None:
    proc = failures["wrong-key-json"].result()
    expect_one_error(proc, 1, "1008")
    (line,) = proc.stdout.splitlines()
    error = json.loads(line)
    assert error["type"] == "error" and error["exit_code"] == 1
    assert error["error"] == "PolicyViolation"


# -- serve and bench ----------------------------------------------------------------

def test_serve_on_a_busy_port(failures: dict[str, Run], keyed_server: str) -> None:
    port = keyed_server.split(":")[2].split("/")[0]
    expect_one_error(failures["busy-port"].result(), 1, "cannot listen", port)


def test_bench_help_outside_the_repository(failures: dict[str, Run]) -> None:
    proc = failures["bench"].result()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: s2s bench"), proc.stdout
    assert "--only" in proc.stdout
    assert failures["bench"].files() == []


def test_bench_names_the_extra_when_a_module_is_missing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from s2s_benchmarks import command
    from s2s_cli import main

    monkeypatch.setitem(command._NEEDS, "decode", ("s2s_no_such_module",))
    assert main(["bench", "--only", "decode", "--no-chart"]) == 64
    (line,) = capsys.readouterr().err.splitlines()
    assert "s2s_no_such_module" in line and "s2s-core[bench]" in line
