"""Long inputs made in the tests, and how to read them back from an output.

``speech_like`` makes bursts of tone (each of its own pitch, from a short
list) separated by silent pauses: the splitter cuts in the pauses, the local
engine's VAD makes one text per burst, and the bursts can be found again in
the output, in order, by their energy and pitch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PITCHES = (220.0, 290.0, 370.0, 450.0, 530.0, 610.0)
"""Burst pitches (Hz): far enough apart to tell by zero crossings."""
FRAME_S = 0.02


@dataclass(frozen=True)
class Burst:
    """One burst of the input: where it is and its pitch."""

    start_s: float
    stop_s: float
    pitch: float


@dataclass(frozen=True)
class LongInput:
    """int16 samples at ``rate`` and the bursts they hold."""

    samples: npt.NDArray[np.int16]
    rate: int
    bursts: list[Burst]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate

    @property
    def speech_end_s(self) -> float:
        return self.bursts[-1].stop_s


def speech_like(seconds: float, rate: int, *, seed: int = 7, pauses: tuple[float, float] = (
        0.4, 1.2)) -> LongInput:
    """Bursts of 1-4 s at -10 dBFS with 10 ms fades, pauses of ``pauses`` seconds, then silence.

    With pauses of 0.4 s or more, the local engine's VAD (0.3 s hangover) makes
    one text per burst.
    """
    rng = np.random.default_rng(seed)
    total = round(seconds * rate)
    out = np.zeros(total, dtype=np.int16)
    bursts: list[Burst] = []
    at = round(rng.uniform(*pauses) * rate)
    while True:
        length = round(rng.uniform(1.0, 4.0) * rate)
        if at + length > total - round(0.5 * rate):
            break
        pitch = PITCHES[int(rng.integers(len(PITCHES)))]
        t = np.arange(length) / rate
        fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)
        out[at:at + length] = (0.3 * 32767 * fade * np.sin(2 * np.pi * pitch * t)).astype(
            np.int16)
        bursts.append(Burst(at / rate, (at + length) / rate, pitch))
        at += length + round(rng.uniform(*pauses) * rate)
    return LongInput(out, rate, bursts)


def tone(seconds: float, rate: int, pitch: float = 300.0) -> npt.NDArray[np.int16]:
    """A continuous tone: no pause anywhere."""
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * 32767 * np.sin(2 * np.pi * pitch * t)).astype(np.int16)


def frame_levels(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.float64]:
    """RMS of each 20 ms frame, relative to full scale."""
    frame = round(rate * FRAME_S)
    count = len(samples) // frame
    frames = samples[:count * frame].reshape(count, frame).astype(np.float64)
    levels: npt.NDArray[np.float64] = np.sqrt((frames ** 2).mean(axis=1)) / 32768.0
    return levels


def find_bursts(samples: npt.NDArray[np.int16], rate: int) -> list[Burst]:
    """The bursts of an output: runs of loud frames, with their pitch (zero crossings)."""
    loud = frame_levels(samples, rate) > 0.05
    bursts: list[Burst] = []
    index = 0
    while index < len(loud):
        if not loud[index]:
            index += 1
            continue
        end = index
        while end < len(loud) and loud[end]:
            end += 1
        frame = round(rate * FRAME_S)
        part = samples[index * frame:end * frame].astype(np.int32)
        crossings = np.count_nonzero(np.diff(np.signbit(part)))
        pitch = crossings / 2 / (len(part) / rate)
        bursts.append(Burst(index * FRAME_S, end * FRAME_S, pitch))
        index = end
    return bursts


def assert_same_bursts(found: list[Burst], expected: list[Burst], *,
                       tolerance_s: float = 0.03) -> None:
    """Every burst once, in order, in place, at its pitch."""
    assert len(found) == len(expected), (len(found), len(expected))
    for got, want in zip(found, expected, strict=True):
        assert abs(got.start_s - want.start_s) <= tolerance_s, (got, want)
        assert abs(got.stop_s - want.stop_s) <= tolerance_s, (got, want)
        assert abs(got.pitch - want.pitch) < 25, (got, want)
