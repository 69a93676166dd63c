"""The command and the service around the socket: voices, the default voice, refusals, texts.

Servers started in the test record what they received (the setups) and can
send texts a terminal must not obey; ``s2s serve`` subprocesses run out of
credits or of audio time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import SAMPLE, TIMEOUT, Run, child_env, error_lines, expect_one_error

from s2s_anyio import run_server
from s2s_core.loopback import AudioOut, TextOut, loopback_engine
from s2s_core.setup import Setup
from s2s_core.voices import FLAGSHIP_VOICES

# A server's text with an ESC sequence (red, then clear the screen), a forged second
# line, a bidi override (reverses what follows), a DEL and a C1 CSI.
EVIL = "hello \x1b[31mred\x1b[2J\nfake line \u202eevil\u202c \x7f\x9b end"


class _EvilEngine:
    """The loopback, with every text replaced by ``EVIL``."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def _swap(self, outputs: list[AudioOut | TextOut]) -> list[AudioOut | TextOut]:
        return [dataclasses.replace(o, text=EVIL) if isinstance(o, TextOut) else o
                for o in outputs]

    def feed(self, data: bytes) -> list[AudioOut | TextOut]:
        return self._swap(self._inner.feed(data))  # type: ignore[attr-defined]

    def finish(self) -> list[AudioOut | TextOut]:
        return self._swap(self._inner.finish())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def setups() -> list[Setup]:
    return []


@pytest.fixture(scope="module")
def recording_server(setups: list[Setup]) -> Iterator[str]:
    """A server that records every setup and sends ``EVIL`` as every text."""
    def engine(setup: Setup, max_audio_s: float) -> _EvilEngine:
        setups.append(setup)
        return _EvilEngine(loopback_engine(setup, max_audio_s))

    with run_server(engine_factory=engine) as url:  # type: ignore[arg-type]
        yield url


def _serve(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "s2s_cli", "serve", "--port", "0", *args],
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    match = re.search(r"ws://\S+", proc.stdout.readline())
    assert match, proc.stderr
    return proc, match.group(0)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    """``s2s serve`` without credits, and with a 3 s audio limit."""
    broke, broke_url = _serve("--credits", "0")
    short, short_url = _serve("--max-audio-s", "3")
    try:
        yield {"broke": broke_url, "short": short_url}
    finally:
        _stop(broke)
        _stop(short)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, recording_server: str,
         servers: dict[str, str]) -> Iterator[dict[str, Run]]:
    def run(name: str, *args: str) -> Run:
        return Run(*args, cwd=tmp_path_factory.mktemp(name))

    sample = str(SAMPLE)
    fast = ("-o", "out.wav", "--no-pace")
    started = {
        "voices-fr": run("voices-fr", "voices", "--language", "fr"),
        "voices-json": run("voices-json", "voices", "--json"),
        "default-fr": run("fr", "translate", sample, *fast, "--target-language", "fr",
                          "--url", recording_server),
        "default-en": run("en", "translate", sample, *fast, "--url", recording_server),
        "evil-json": run("evil-json", "translate", sample, *fast, "--json",
                         "--url", recording_server),
        "mismatch": run("mismatch", "translate", sample, *fast, "--voice-id",
                        FLAGSHIP_VOICES["fr"], "--target-language", "de"),
        "unknown-voice": run("unknown-voice", "translate", sample, *fast, "--voice-id",
                             "no-such-voice"),
        "no-credits-anyio": run("broke-anyio", "translate", sample, *fast,
                                "--url", servers["broke"]),
        "no-credits-threaded": run("broke-threaded", "translate", sample, *fast,
                                   "--url", servers["broke"], "--backend", "threaded"),
        "too-long": run("short", "translate", sample, *fast, "--url", servers["short"]),
    }
    yield started
    for r in started.values():
        r.result()


def test_voices_of_a_language(runs: dict[str, Run]) -> None:
    proc = runs["voices-fr"].result()
    assert proc.returncode == 0, proc.stderr
    assert FLAGSHIP_VOICES["fr"] in proc.stdout and "Elise" in proc.stdout
    assert "local-own-voice-fr" in proc.stdout  # the account's own voices too
    for language in ("en", "de", "es", "pt"):
        assert FLAGSHIP_VOICES[language] not in proc.stdout


def test_voices_as_json_lines(runs: dict[str, Run]) -> None:
    proc = runs["voices-json"].result()
    assert proc.returncode == 0, proc.stderr
    voices = [json.loads(line) for line in proc.stdout.splitlines()]
    catalog = {v["language"]: v["uid"] for v in voices if v["is_catalog"]}
    assert catalog == dict(FLAGSHIP_VOICES)


def test_the_default_voice_is_the_target_languages(runs: dict[str, Run],
                                                   setups: list[Setup]) -> None:
    for name in ("default-fr", "default-en", "evil-json"):
        assert runs[name].result().returncode == 0, runs[name].result().stderr
    received = {(s.voice_id, s.target_language) for s in setups}
    assert received == {(FLAGSHIP_VOICES["fr"], "fr"), (FLAGSHIP_VOICES["en"], "en")}
    assert "with voice b35yykvVppLXyw_l" in runs["default-fr"].result().stderr


def test_server_text_reaches_the_terminal_escaped(runs: dict[str, Run]) -> None:
    proc = runs["default-en"].result()
    transcript = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert transcript, proc.stdout
    for line in transcript:
        assert line.endswith(r"hello \x1b[31mred\x1b[2J\nfake line \u202eevil\u202c \x7f\x9b end")
    for raw in ("\x1b", "\u202e", "\x7f", "\x9b"):
        assert raw not in proc.stdout and raw not in proc.stderr
    assert not any(line.startswith("fake line") for line in proc.stdout.splitlines())


def test_json_output_keeps_the_text_escaped_as_json(runs: dict[str, Run]) -> None:
    run = runs["evil-json"]
    run.result()
    stdout = run.stdout_bytes.decode()
    for raw in ("\x1b", "\u202e", "\x7f", "\x9b"):
        assert raw not in stdout
    texts = [json.loads(line) for line in stdout.splitlines()]
    assert [e["text"] for e in texts if e["type"] == "text"] == [EVIL] * 2


def test_a_voice_of_another_language_is_warned_about(runs: dict[str, Run]) -> None:
    proc = runs["mismatch"].result()
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if "warning" in line]
    assert FLAGSHIP_VOICES["fr"] in warning and "'fr'" in warning and "'de'" in warning
    assert "s2s voices --language de" in warning


def test_an_unknown_voice_is_not_a_failure_of_the_check(runs: dict[str, Run]) -> None:
    proc = runs["unknown-voice"].result()
    assert proc.returncode == 0, proc.stderr  # the loopback takes any voice
    assert "warning" not in proc.stderr and error_lines(proc) == []


@pytest.mark.parametrize("backend", ["anyio", "threaded"])
def test_no_credits_left_is_said(runs: dict[str, Run], backend: str) -> None:
    run = runs[f"no-credits-{backend}"]
    expect_one_error(run.result(), 1, "refused", "1008", "no credits left")
    assert run.files() == []


def test_serve_max_audio_s_limits_each_request(runs: dict[str, Run]) -> None:
    run = runs["too-long"]
    expect_one_error(run.result(), 1, "1008", "limit of 3 s")
    assert run.files() == []


def test_serve_prints_its_limits(servers: dict[str, str], tmp_path: Path) -> None:
    proc, _ = _serve("--max-audio-s", "4000", "--credits", "9")
    try:
        assert proc.stdout is not None
        assert "up to 4000 s of audio per request; 9 s of credits" in proc.stdout.readline()
    finally:
        _stop(proc)
