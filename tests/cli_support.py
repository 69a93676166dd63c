"""Helpers of the ``s2s`` command's tests: runs as a user types them, files made with PyAV."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "bonjour_fr.wav"
TRAILING_S = 2.0
TIMEOUT = 60
"""Bounded wait for one run (they overlap, on a machine that may be busy)."""

Int16 = npt.NDArray[np.int16]


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child: no API key (the embedded server), no debug."""
    env = {k: v for k, v in os.environ.items() if k not in ("GRADIUM_API_KEY", "S2S_DEBUG")}
    env.update(extra)
    return env


def blocking_env(folder: Path, *modules: str, **extra: str) -> dict[str, str]:
    """An environment where importing ``modules`` fails, as when they are not installed.

    Each gets a module of that name, first on PYTHONPATH, that raises ImportError.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in modules:
        (folder / f"{name}.py").write_text(
            f'raise ImportError("No module named {name!r} (blocked by the test)")\n')
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, **extra}


class Run:
    """A CLI subprocess started now; ``result()`` waits for it (so runs overlap).

    Args:
        args: The arguments after ``s2s``.
        cwd: Where it runs.
        stdin: Bytes for its stdin (a pipe), or None for no stdin.
        env: Extra environment variables.
    """

    def __init__(self, *args: str, cwd: Path, stdin: bytes | None = None,
                 timeout: float = TIMEOUT, **env: str) -> None:
        self.cwd = cwd
        self.args = args
        self._stdin = stdin
        self._timeout = timeout
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "s2s_cli", *args], cwd=cwd, env=child_env(**env),
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._done: subprocess.CompletedProcess[str] | None = None
        self.stdout_bytes = b""

    def result(self) -> subprocess.CompletedProcess[str]:
        """Wait for the run (``TIMEOUT`` at most); stdout and stderr as text."""
        if self._done is None:
            try:
                out, err = self._proc.communicate(self._stdin, timeout=self._timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
                raise
            self.stdout_bytes = out
            self._done = subprocess.CompletedProcess(
                self._proc.args, self._proc.returncode,
                out.decode(errors="replace"), err.decode(errors="replace"))
        return self._done

    def files(self) -> list[str]:
        """The names in its folder."""
        return sorted(p.name for p in self.cwd.iterdir())


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    """The ``s2s: error:`` lines; checks that no traceback was printed."""
    assert "Traceback" not in proc.stderr, proc.stderr
    return [line for line in proc.stderr.splitlines() if line.startswith("s2s: error:")]


def expect_one_error(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Exit code ``code`` and exactly one error line, containing ``words``."""
    lines = error_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def free_port() -> int:
    """A port nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wav_info(path: Path) -> tuple[int, float]:
    """Sample rate and duration of a WAV file (read with the standard library)."""
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


# --------------------------------------------------------------------------
# media files made with PyAV
# --------------------------------------------------------------------------

def speech(rate: int = 48_000) -> Int16:
    """The sample (French speech), mono int16 at ``rate``."""
    with av.open(str(SAMPLE)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        pieces = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.int16)


def _encode(container: Any, stream: Any, samples: Int16, rate: int, channels: int = 1) -> None:
    layout = "stereo" if channels == 2 else "mono"
    interleaved = np.repeat(samples, channels)
    step = 4096
    for first in range(0, len(samples), step):
        chunk = interleaved[first * channels:(first + step) * channels]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = rate
        frame.time_base = Fraction(1, rate)
        frame.pts = first
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio(path: Path, fmt: str, codec: str, samples: Int16, rate: int, *,
                channels: int = 1, options: dict[str, str] | None = None) -> Path:
    """An audio file of ``samples`` (on each of ``channels``, 1 or 2)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate,
                                      layout="stereo" if channels == 2 else "mono",
                                      options=options or {})
        _encode(container, stream, samples, rate, channels)
    return path


def write_video(path: Path, fmt: str, vcodec: str, acodec: str, samples: Int16, rate: int, *,
                fps: int = 10) -> Path:
    """A small video (moving pictures) with ``samples`` as its audio track, as long as they are."""
    seconds = len(samples) / rate
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream(acodec, rate=rate, layout="mono")
        for index in range(round(seconds * fps)):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, :, 0] = index * 23 % 256
            image[index % 48, :, 1] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        _encode(container, sound, samples, rate)
    return path


def decode_audio(path: Path, rate: int = 16_000) -> tuple[Int16, float]:
    """The first audio stream as mono int16 at ``rate``, and its start time in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        pieces = [out.to_ndarray().reshape(-1) for frame in container.decode(stream)
                  for out in resampler.resample(frame)]
        pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(pieces).astype(np.int16), start


def video_packets(path: Path) -> list[bytes]:
    """The payloads of the first video stream's packets, in order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def best_correlation(a: Int16, b: Int16, rate: int, max_lag_s: float = 0.1) -> float:
    """The highest normalized correlation of ``a`` and ``b`` over lags up to ``max_lag_s``.

    1.0 when one is the other shifted (and scaled); near 0 for unrelated signals.
    """
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    size = 1 << (len(x) + len(y)).bit_length()
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(y, size)), size)
    lags = round(max_lag_s * rate)
    window = np.concatenate((corr[: lags + 1], corr[size - lags:]))
    return float(window.max() / np.sqrt(np.dot(x, x) * np.dot(y, y)))
