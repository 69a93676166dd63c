"""The benchmarks' command line: every benchmark against the official SDK, one command.

``s2s bench ARGS`` runs it (the package is installed as ``s2s_benchmarks``);
in a checkout, ``python -m benchmarks ARGS`` runs the same.

Writes ``results.json`` (everything, raw numbers included), ``results.md``
(the table) and ``results.png`` (the chart) into ``--out`` (default
``bench-results/``), and prints the table.

Examples:
    python -m benchmarks                       # the full run (about 10 minutes)
    python -m benchmarks --quick               # a smoke run (about a minute)
    python -m benchmarks --only decode,encode  # the micro benchmarks only
    python -m benchmarks --only e2e --profile prof/   # cProfile every client mode
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ._common import machine_info
from ._results import Section

__all__ = ["BENCHMARKS", "build_parser", "main"]

BENCHMARKS = ("decode", "encode", "e2e", "scale")
_SDK = ("gradium", "aiohttp")
"""The official SDK (and its transport): the reference every benchmark compares against.

Only ``scale --no-sdk-scale`` runs without it. Modes that need trio are
skipped without it, and the chart needs matplotlib. All come with the
``bench`` extra.
"""
_NEEDS: dict[str, tuple[str, ...]] = {"decode": _SDK, "encode": _SDK, "e2e": _SDK, "scale": _SDK}


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in _csv(text)]
    if not levels or any(n <= 0 for n in levels):
        raise argparse.ArgumentTypeError("expected positive session counts, e.g. 1000,500,250")
    return levels


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark s2s against the official Gradium SDK (same inputs, same run).")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: a smoke run that proves everything works")
    p.add_argument("--only", type=_csv, metavar="LIST",
                   help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    p.add_argument("--skip", type=_csv, metavar="LIST", default=[],
                   help="comma-separated benchmarks to leave out")
    p.add_argument("--out", type=Path, default=Path("bench-results"),
                   help="output directory (default: bench-results/)")
    p.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    p.add_argument("--check", action="store_true",
                   help="exit with status 2 when a target is missed")
    micro = p.add_argument_group("micro benchmarks (decode, encode)")
    micro.add_argument("--rounds", type=int, help="alternating rounds (default 15; quick 5)")
    micro.add_argument("--number", type=int,
                       help="calls per round (default 2000; quick 200)")
    e2e = p.add_argument_group("end to end")
    e2e.add_argument("--seconds", type=float, help="audio per session (default 60; quick 10)")
    e2e.add_argument("--repeats", type=int,
                     help="processes per mode, median taken (default 5; quick 1)")
    e2e.add_argument("--modes", type=_csv, metavar="LIST",
                     help="client modes (default: all importable, plus sdk)")
    e2e.add_argument("--profile", type=Path, metavar="DIR",
                     help="write a cProfile file per mode (first repeat) into DIR")
    scale = p.add_argument_group("scale")
    scale.add_argument("--sessions", type=_levels, metavar="N[,N...]",
                       help="concurrent sessions, one level after the other, each with every "
                            "mode and the SDK (default 1000,2000; quick 50)")
    scale.add_argument("--scale-modes", type=_csv, metavar="LIST",
                       help="client modes of the scale benchmark; the first is judged, the "
                            "others reported (default anyio-asyncio; also anyio-uvloop, trio, "
                            "threaded, sdk-uvloop, and floor, floor-uvloop: no client, only "
                            "prebuilt bytes written and bytes read counted, the least any "
                            "client can cost here)")
    scale.add_argument("--scale-seconds", type=float,
                       help="seconds per session (default 20; quick 5)")
    scale.add_argument("--ramp", type=float,
                       help="seconds over which session starts are spread (default 4; quick 1)")
    scale.add_argument("--no-sdk-scale", action="store_true",
                       help="do not run the official SDK under the same load")
    return p


def _pick(value: float | int | list[int] | None, full: object, quick: object,
          is_quick: bool) -> object:
    if value is not None:
        return value
    return quick if is_quick else full


def _missing_modules(selected: list[str], *, sdk_scale: bool) -> str | None:
    """A one-line message when a selected benchmark needs a module that is not installed."""
    needs = {bench: _NEEDS.get(bench, ()) for bench in selected
             if bench != "scale" or sdk_scale}
    missing = sorted({name for names in needs.values() for name in names
                      if importlib.util.find_spec(name) is None})
    if not missing:
        return None
    which = [bench for bench, names in needs.items() if set(names) & set(missing)]
    return (f"the {', '.join(which)} benchmark(s) need {', '.join(missing)} (not installed): "
            "pip install 's2s-core[bench]', or leave them out with --skip")


def main(argv: list[str] | None = None, *, prog: str = "python -m benchmarks") -> int:
    """Run the selected benchmarks and write the results.

    Returns:
        0 on success, 1 when a benchmark failed, 2 when ``--check`` saw a
        target missed, 64 on a usage error (unknown benchmark, missing module).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    ns = build_parser(prog).parse_args(args)
    selected = ns.only or list(BENCHMARKS)
    unknown = [name for name in [*selected, *ns.skip] if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from "
              f"{', '.join(BENCHMARKS)}", file=sys.stderr)
        return 64
    selected = [name for name in BENCHMARKS if name in selected and name not in ns.skip]
    missing = _missing_modules(selected, sdk_scale=not ns.no_sdk_scale)
    if missing is not None:
        print(f"{prog}: {missing}", file=sys.stderr)
        return 64
    q = ns.quick
    rounds = int(_pick(ns.rounds, 15, 5, q))  # type: ignore[call-overload]
    number = int(_pick(ns.number, 2000, 200, q))  # type: ignore[call-overload]
    seconds = float(_pick(ns.seconds, 60.0, 10.0, q))  # type: ignore[arg-type]
    repeats = int(_pick(ns.repeats, 5, 1, q))  # type: ignore[call-overload]
    levels: list[int] = _pick(ns.sessions, [1000, 2000], [50], q)  # type: ignore[assignment]
    scale_seconds = float(_pick(ns.scale_seconds, 20.0, 5.0, q))  # type: ignore[arg-type]
    ramp = float(_pick(ns.ramp, 4.0, 1.0, q))  # type: ignore[arg-type]

    info = machine_info()
    info["command"] = shlex.join([*prog.split(), *args])
    info["settings"] = {"quick": q, "benchmarks": selected, "rounds": rounds,
                        "number": number, "e2e_seconds": seconds, "e2e_repeats": repeats,
                        "scale_levels": levels, "scale_modes": ns.scale_modes,
                        "scale_seconds": scale_seconds,
                        "scale_ramp_s": ramp}

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    jobs: dict[str, Callable[[], Section]] = {}
    if "decode" in selected or "encode" in selected:
        from . import micro

        jobs["decode"] = lambda: micro.run_decode(number=number, rounds=rounds)
        jobs["encode"] = lambda: micro.run_encode(number=number, rounds=rounds)
    if "e2e" in selected:
        from . import e2e

        jobs["e2e"] = lambda: e2e.run_e2e(seconds=seconds, repeats=repeats, modes=ns.modes,
                                          profile_dir=ns.profile, log=log)
    if "scale" in selected:
        from . import scale

        jobs["scale"] = lambda: scale.run_scale(levels=levels, seconds=scale_seconds,
                                                ramp=ramp, with_sdk=not ns.no_sdk_scale,
                                                modes=ns.scale_modes, log=log)

    sections: list[Section] = []
    for name in selected:
        log(f"[{name}] running ...")
        started = time.perf_counter()
        try:
            section = jobs[name]()
        except Exception as exc:
            section = Section(name, error=f"{type(exc).__name__}: {exc}")
            section.details["traceback"] = traceback.format_exc()
        log(f"[{name}] done in {time.perf_counter() - started:.1f} s")
        sections.append(section)

    from .report import markdown, write_chart, write_json, write_markdown

    out: Path = ns.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", info, sections)
    write_markdown(out / "results.md", info, sections)
    drawn = False if ns.no_chart else write_chart(out / "results.png", info, sections)
    print(markdown(info, sections))
    log(f"wrote {out / 'results.json'}, {out / 'results.md'}"
        + (f", {out / 'results.png'}" if drawn else " (no chart)"))
    if any(s.error for s in sections):
        return 1
    if ns.check and any(t.met is False for s in sections for t in s.targets):
        return 2
    return 0

