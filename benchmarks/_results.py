"""Benchmark results: one ``Target`` per goal of the issue, plus raw details."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Target", "Section"]


@dataclass
class Target:
    """One measured goal.

    Attributes:
        key: Stable identifier (``decode``, ``e2e/trio``, ``scale`` ...).
        title: What was measured, for the table.
        unit: Unit of ``ours`` and ``sdk``.
        ours: Our value (lower is better).
        sdk: The official SDK's value on the same input in the same run.
        ratio: ``sdk / ours`` (how many times better we are), when comparable.
        goal: What "met" means, in words (``>= 6x``, ``p99 < 40 ms``).
        goal_ratio: The ratio to reach, for ratio goals (drawn on the chart).
        met: Whether the goal is reached (None: not measured).
        note: Anything the reader must know to trust the number.
    """

    key: str
    title: str
    unit: str
    ours: float | None
    sdk: float | None
    ratio: float | None
    goal: str
    goal_ratio: float | None = None
    met: bool | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Section:
    """What one benchmark produced: its targets and its raw measurements."""

    name: str
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "targets": [t.to_json() for t in self.targets],
                "details": self.details, "error": self.error}
