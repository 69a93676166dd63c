"""The audio format table of the S2S protocol (PROTOCOL.md section 4)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "FRAME_SECONDS",
    "FORMAT_NAMES",
    "AudioFormat",
    "Codec",
    "Direction",
    "lookup_format",
]

FRAME_SECONDS = 0.08
"""Duration of one protocol frame: 80 ms."""


class Codec(enum.Enum):
    """How the bytes of a format encode samples."""

    PCM16 = "pcm16"
    ULAW = "ulaw"
    ALAW = "alaw"
    WAV = "wav"
    OPUS = "opus"


class Direction(enum.Enum):
    """Whether a format is used for the audio we send or the audio we receive."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class AudioFormat:
    """One entry of the format table, resolved for a direction.

    Attributes:
        name: The wire value, e.g. ``"pcm_16000"`` (aliases resolved).
        codec: How the bytes encode samples.
        sample_rate: Samples per second, or None when a container says it
            (wav input, opus).
        bytes_per_sample: 2 for PCM, 1 for G.711, None for containers.
    """

    name: str
    codec: Codec
    sample_rate: int | None
    bytes_per_sample: int | None

    @property
    def is_raw(self) -> bool:
        """True for headerless sample streams (PCM and G.711)."""
        return self.bytes_per_sample is not None

    @property
    def bytes_per_frame(self) -> int | None:
        """Bytes in one 80 ms frame, or None for containers."""
        if self.sample_rate is None or self.bytes_per_sample is None:
            return None
        return round(self.sample_rate * FRAME_SECONDS) * self.bytes_per_sample


_PCM_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
_ALIASES = {"mulaw_8000": "ulaw_8000"}

FORMAT_NAMES: tuple[str, ...] = (
    "pcm",
    *(f"pcm_{rate}" for rate in _PCM_RATES),
    "ulaw_8000",
    "mulaw_8000",
    "alaw_8000",
    "wav",
    "opus",
)
"""Every value accepted for ``input_format`` and ``output_format``."""


def lookup_format(name: str, direction: Direction) -> AudioFormat:
    """Resolve a format name for a direction.

    Args:
        name: A value of ``FORMAT_NAMES`` (``mulaw_8000`` is an alias).
        direction: ``pcm`` means 24 kHz for input and 48 kHz for output; a
            wav output is 48 kHz 16-bit, a wav input takes its header's rate.

    Returns:
        The resolved format.

    Raises:
        ValueError: ``name`` is not in the format table.
    """
    canonical = _ALIASES.get(name, name)
    if canonical == "pcm":
        rate = 24000 if direction is Direction.INPUT else 48000
        return AudioFormat("pcm", Codec.PCM16, rate, 2)
    if canonical.startswith("pcm_"):
        suffix = canonical[4:]
        if suffix.isdigit() and int(suffix) in _PCM_RATES:
            return AudioFormat(canonical, Codec.PCM16, int(suffix), 2)
        raise ValueError(f"unknown audio format {name!r}; allowed: {', '.join(FORMAT_NAMES)}")
    elif canonical == "ulaw_8000":
        return AudioFormat(canonical, Codec.ULAW, 8000, 1)
    elif canonical == "alaw_8000":
        return AudioFormat(canonical, Codec.ALAW, 8000, 1)
    elif canonical == "wav":
        wav_rate = None if direction is Direction.INPUT else 48000
        return AudioFormat(canonical, Codec.WAV, wav_rate, None)
    elif canonical == "opus":
        return AudioFormat(canonical, Codec.OPUS, None, None)
    raise ValueError(f"unknown audio format {name!r}; allowed: {', '.join(FORMAT_NAMES)}")
