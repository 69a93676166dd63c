"""Writing results: JSON (everything), a markdown table, a PNG chart."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ._results import Section, Target

__all__ = ["write_json", "markdown", "write_markdown", "write_chart"]


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit.startswith("x real"):
        return f"{value:,.0f}x"
    magnitude = abs(value)
    if magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return text


def _met(target: Target) -> str:
    if target.met is None:
        return "-"
    return "yes" if target.met else "**NO**"


def write_json(path: Path, info: dict[str, Any], sections: list[Section]) -> None:
    payload = {"info": info, "sections": [s.to_json() for s in sections]}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def markdown(info: dict[str, Any], sections: list[Section]) -> str:
    """The results as a markdown document: context, then one table of every target."""
    lines = ["# s2s benchmarks against the official SDK", ""]
    lines.append(f"- date: {info.get('date')}")
    lines.append(f"- command: `{info.get('command')}`")
    lines.append(f"- machine: {info.get('cpu')} x {info.get('cpu_count')} "
                 f"({info.get('platform')}), load at start {info.get('load_average_at_start')}")
    versions = info.get("versions") or {}
    lines.append("- python " + str(info.get("python")) + ", " + ", ".join(
        f"{k} {v}" for k, v in versions.items() if v))
    lines.append(f"- frame masking: {info.get('frame_masking')}")
    lines.append("- ratio = SDK / ours (how many times less CPU we use); times are CPU "
                 "times, medians of interleaved rounds or repeated processes")
    lines.append("")
    lines.append("| Target | Unit | Ours | Official SDK | Ratio | Goal | Met | Note |")
    lines.append("|---|---|---:|---:|---:|---|---|---|")
    for section in sections:
        if section.error:
            lines.append(f"| {section.name} | | | | | | **NOT RUN** | {section.error} |")
        for t in section.targets:
            ratio = f"{t.ratio:.2f}x" if t.ratio is not None else "-"
            lines.append(f"| {t.title} | {t.unit} | {_fmt(t.ours, t.unit)} | "
                         f"{_fmt(t.sdk, t.unit)} | {ratio} | {t.goal} | {_met(t)} | "
                         f"{t.note} |")
    lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, info: dict[str, Any], sections: list[Section]) -> None:
    path.write_text(markdown(info, sections), encoding="utf-8")


def write_chart(path: Path, info: dict[str, Any], sections: list[Section]) -> bool:
    """Draw each ratio target against its goal, and the scale lateness.

    Returns False when matplotlib is missing.
    """
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for s in sections for t in s.targets]
    ratios = [t for t in targets if t.ratio is not None]
    lateness = [t for t in targets if t.key.startswith("scale/")
                and t.key.endswith(("/lateness", "/holds")) and t.ours is not None]
    panels = (1 if ratios else 0) + (1 if lateness else 0)
    if panels == 0:
        return False
    heights = [max(2.5, 0.45 * len(ratios) + 1.2)] if ratios else []
    if lateness:
        heights.append(2.4)
    fig, axes = plt.subplots(panels, 1, figsize=(10, sum(heights) + 0.8),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    row = 0
    if ratios:
        ax = axes[row][0]
        row += 1
        labels = [t.key for t in ratios][::-1]
        values = [t.ratio or 0.0 for t in ratios][::-1]
        colors = ["#2e7d32" if t.met else ("#c62828" if t.met is False else "#607d8b")
                  for t in ratios][::-1]
        ypos = range(len(ratios))
        ax.barh(list(ypos), values, color=colors)
        for y, t in zip(ypos, ratios[::-1], strict=True):
            if t.goal_ratio is not None:
                ax.plot([t.goal_ratio, t.goal_ratio], [y - 0.4, y + 0.4], color="black",
                        linewidth=2)
            ax.text((t.ratio or 0.0) * 1.03, y, f"{t.ratio:.1f}x", va="center", fontsize=8)
        ax.set_yticks(list(ypos))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_xscale("log")
        ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel("times less CPU than the official SDK (log scale); black tick = goal")
        ax.set_title("s2s vs the official SDK (green: goal met, red: missed, grey: no goal)",
                     fontsize=10)
    if lateness:
        ax = axes[row][0]
        names: list[str] = []
        values = []
        colors = []
        for t in lateness:
            names.append(f"ours: {t.title.split(':', 1)[0]}")
            values.append(t.ours or 0.0)
            colors.append("#2e7d32" if t.met else "#c62828")
            if t.sdk is not None:
                names.append("official SDK, same load")
                values.append(t.sdk)
                colors.append("#607d8b")
        ax.barh(names[::-1], [max(v, 0.1) for v in values[::-1]], color=colors[::-1])
        ax.axvline(20.0, color="black", linewidth=1.5)
        ax.axvline(40.0, color="black", linewidth=1.0, linestyle="--")
        ax.set_xscale("log")
        ax.set_xlabel("p99 lateness of paced sends (ms, log scale); goals: 20 ms up to 1000 "
                      "sessions, 40 ms (dashed) above")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"{info.get('date')}  {info.get('cpu')} x {info.get('cpu_count')}  "
                 f"Python {info.get('python')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
