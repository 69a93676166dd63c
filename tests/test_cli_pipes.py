"""``s2s translate -`` and ``-o -``: stdin read as it arrives, WAV written to stdout as it comes.

Real pipes between real processes, as in
``ffmpeg -i SRC -f s16le -ar 16000 -ac 1 - | s2s translate - --rate 16000 -o - | ...``
(the raw PCM is made by Python here, so the test needs no ffmpeg).
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from cli_support import (
    SAMPLE,
    TIMEOUT,
    TRAILING_S,
    Run,
    best_correlation,
    child_env,
    expect_one_error,
    speech,
    wav_info,
)

from s2s_core.audio import WavStreamDecoder

RATE = 16_000
STREAMED = 0xFFFFFFFF  # the RIFF and data sizes of a WAV stream of unknown length


def _cli(*args: str, cwd: Path, stdin: int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "s2s_cli", *args], cwd=cwd, env=child_env(),
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _parse_streamed_wav(blob: bytes) -> tuple[int, np.ndarray]:
    """The rate and samples of a streamed WAV; checks nothing else is in it."""
    assert struct.unpack_from("<4sI4s", blob) == (b"RIFF", STREAMED, b"WAVE")
    assert struct.unpack_from("<4sI", blob, 36) == (b"data", STREAMED)
    decoder = WavStreamDecoder()
    samples = decoder.feed(blob)
    assert decoder.pending_bytes == 0  # whole samples only: no text mixed in
    assert decoder.sample_rate is not None
    return decoder.sample_rate, samples


def test_stdin_is_read_as_it_arrives_and_stdout_gets_the_wav_as_it_comes(
        tmp_path: Path) -> None:
    """The second half of the input is written only once output for the first came out."""
    pcm = speech(RATE).astype("<i2").tobytes()
    half = len(pcm) // 2 & ~1
    proc = _cli("translate", "-", "--rate", str(RATE), "-o", "-", cwd=tmp_path,
                stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    received = bytearray()
    some_output = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(65536):
            received.extend(chunk)
            if len(received) > 44 + 48_000:  # the header and half a second of audio
                some_output.set()

    reader = threading.Thread(target=read)
    reader.start()
    err_lines: list[bytes] = []
    err_reader = threading.Thread(target=lambda: err_lines.extend(proc.stderr or []))
    err_reader.start()
    try:
        proc.stdin.write(pcm[:half])
        proc.stdin.flush()
        assert some_output.wait(TIMEOUT), b"".join(err_lines).decode()
        proc.stdin.write(pcm[half:])
        proc.stdin.close()
        assert proc.wait(TIMEOUT) == 0, b"".join(err_lines).decode()
    finally:
        proc.kill()
        reader.join(TIMEOUT)
        err_reader.join(TIMEOUT)
    rate, samples = _parse_streamed_wav(bytes(received))
    assert rate == 48_000
    assert len(samples) / rate == pytest.approx(len(pcm) / 2 / RATE + TRAILING_S, abs=0.01)
    stderr = b"".join(err_lines).decode()
    assert "Traceback" not in stderr
    assert "Wrote stdout" in stderr and "s ->" in stderr  # the transcript went to stderr
    assert best_correlation(samples[::3], speech(RATE), RATE) > 0.9


_PRODUCER = """
import sys, numpy as np
from cli_support import speech
pcm = speech(16000).astype("<i2").tobytes()
for start in range(0, len(pcm), 3200):  # 100 ms writes, as a live source
    sys.stdout.buffer.write(pcm[start:start + 3200])
    sys.stdout.buffer.flush()
"""

_CONSUMER = """
import json, sys
from s2s_core.audio import WavStreamDecoder
decoder = WavStreamDecoder()
count = 0
while chunk := sys.stdin.buffer.read1(65536):
    count += len(decoder.feed(chunk))
print(json.dumps({"rate": decoder.sample_rate, "samples": count,
                  "pending": decoder.pending_bytes}))
"""


def test_a_three_process_pipeline(tmp_path: Path) -> None:
    tests = str(Path(__file__).parent)
    env = child_env(PYTHONPATH=tests)
    producer = subprocess.Popen([sys.executable, "-c", _PRODUCER], env=env,
                                stdout=subprocess.PIPE)
    assert producer.stdout is not None
    cli = subprocess.Popen([sys.executable, "-m", "s2s_cli", "translate", "-", "--rate",
                            str(RATE), "-o", "-"], cwd=tmp_path, env=child_env(),
                           stdin=producer.stdout, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    producer.stdout.close()  # the CLI holds the read end
    assert cli.stdout is not None
    consumer = subprocess.Popen([sys.executable, "-c", _CONSUMER], env=env, stdin=cli.stdout,
                                stdout=subprocess.PIPE)
    cli.stdout.close()
    out, _ = consumer.communicate(timeout=TIMEOUT)
    _, err = cli.communicate(timeout=TIMEOUT)
    assert producer.wait(TIMEOUT) == 0
    assert cli.returncode == 0, err.decode()
    result = json.loads(out)
    assert result["rate"] == 48_000 and result["pending"] == 0
    seconds = len(speech(RATE)) / RATE + TRAILING_S
    assert result["samples"] / 48_000 == pytest.approx(seconds, abs=0.01)


@pytest.fixture(scope="module")
def stdin_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    return {
        "wav": Run("translate", "-", "-o", "out.flac", cwd=tmp_path_factory.mktemp("wav"),
                   stdin=SAMPLE.read_bytes()),
        "no-rate": Run("translate", "-", "-o", "out.wav", cwd=tmp_path_factory.mktemp("raw"),
                       stdin=speech(RATE).tobytes()),
        "rate-for-wav": Run("translate", "-", "--rate", "16000", "-o", "out.wav",
                            cwd=tmp_path_factory.mktemp("rate"), stdin=SAMPLE.read_bytes()),
    }


def test_a_wav_on_stdin_to_a_file(stdin_runs: dict[str, Run]) -> None:
    run = stdin_runs["wav"]
    proc = run.result()
    assert proc.returncode == 0, proc.stderr
    assert run.files() == ["out.flac"]
    import av

    with av.open(str(run.cwd / "out.flac")) as container:
        stream = container.streams.audio[0]
        assert stream.duration is not None and stream.time_base is not None
        seconds = float(stream.duration * stream.time_base)
    assert seconds == pytest.approx(wav_info(SAMPLE)[1] + TRAILING_S, abs=0.01)


def test_stdin_refusals_name_rate(stdin_runs: dict[str, Run]) -> None:
    expect_one_error(stdin_runs["no-rate"].result(), 2, "stdin", "not a WAV stream",
                     "--rate HZ")
    expect_one_error(stdin_runs["rate-for-wav"].result(), 2, "--rate 16000", "stdin",
                     "header (WAV)")
    assert stdin_runs["no-rate"].files() == []


@pytest.mark.parametrize("backend", ["anyio", "threaded"])
def test_ctrl_c_while_stdin_is_silent(tmp_path: Path, backend: str) -> None:
    """A producer that stalls: the reader is blocked in a read, Ctrl-C still ends the run.

    On anyio the output of what came goes on meanwhile (its part file appears);
    the threaded client reads its input on the thread that takes the events, so
    there the run waits in the read.
    """
    proc = _cli("translate", "-", "--rate", str(RATE), "-o", "out.wav", "--backend", backend,
                cwd=tmp_path, stdin=subprocess.PIPE)
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(speech(RATE)[: RATE // 2].tobytes())  # half a second, then nothing
    proc.stdin.flush()
    while not (line := proc.stderr.readline()).startswith(b"Translating"):
        assert line, "the run ended before translating"
    deadline = time.monotonic() + TIMEOUT
    while backend == "anyio" and not list(tmp_path.glob("*.part")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(TIMEOUT)  # not communicate(): it would close stdin, ending the read
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 130, err.decode()
    assert b"s2s: interrupted" in err
    assert b"Fatal Python error" not in err and b"Traceback" not in err
    assert list(tmp_path.iterdir()) == []
