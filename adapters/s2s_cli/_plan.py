"""What ``s2s translate`` will do, checked before anything is streamed: its jobs.

One job per input: the input (probed), the output (checked by
``_media.plan_output``: extension, folder, writability, a dubbed video's
container). A problem with the command line raises ``UsageError`` (exit 2,
one line naming the argument, the value and what is allowed). In a batch a
problem with one input file is kept in its job (``Job.error``): that file
fails, the others run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._audio import STDIO, InputSpec, UsageError, wire_rate
from ._media import (
    AUDIO_EXTENSIONS,
    OUTPUT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    MediaInfo,
    OutputPathError,
    OutputPlan,
    PcmStreamReader,
    open_media,
    plan_output,
    probe,
    sniff_header,
)

__all__ = ["Job", "Plan", "plan_translate"]

_RAW_HINT = "for raw 16-bit PCM pass --rate HZ"


@dataclass(frozen=True)
class Job:
    """One input and where its translation goes.

    Attributes:
        name: The input as the user typed it.
        input: The checked input (None when ``error`` is set).
        output: The checked output file, or None for stdout.
        error: Why this input of a batch cannot be translated (it is
            reported as failed; the other inputs run).
    """

    name: str
    input: InputSpec | None
    output: OutputPlan | None
    error: str | None = None


@dataclass(frozen=True)
class Plan:
    """Every job of one ``s2s translate``.

    Attributes:
        jobs: In the order of the inputs.
        batch: Several inputs into a folder (one line per file, a summary).
        folder: The output folder of a batch.
    """

    jobs: list[Job]
    batch: bool
    folder: Path | None = None


def plan_translate(inputs: Sequence[str], output: str, *, raw_rate: int | None,
                   input_format: str, ext: str | None, json_out: bool) -> Plan:
    """Check the inputs and the output; build the jobs.

    Args:
        inputs: INPUT arguments (``-`` is stdin).
        output: The ``-o`` argument (``-`` is stdout; a folder for a batch).
        raw_rate: ``--rate``: the inputs are headerless PCM16 at this rate.
        input_format: The wire input format (stdin is decoded at its rate).
        ext: ``--ext``: the extension of a batch's outputs.
        json_out: ``--json`` (stdout is taken by JSON lines).

    Raises:
        UsageError: Any problem with the arguments (and, for a single input,
            with the input file).
    """
    if ext is not None:
        ext = _check_ext(ext)
    if len(inputs) == 1:
        return _plan_single(inputs[0], output, raw_rate, input_format, ext, json_out)
    return _plan_batch(inputs, output, raw_rate, ext)


# -- one input --------------------------------------------------------------------

def _plan_single(name: str, output: str, raw_rate: int | None, input_format: str,
                 ext: str | None, json_out: bool) -> Plan:
    if ext is not None:
        raise UsageError(f"--ext {ext}: it names the outputs of a batch (several inputs); "
                         "with one input, give the extension in -o")
    if output == STDIO and json_out:
        raise UsageError("-o -: the audio goes to stdout, where --json writes too; "
                         "use one of them")
    spec = _stdin(raw_rate, input_format) if name == STDIO else _input_file(name, raw_rate)
    if output == STDIO:
        return Plan([Job(name, spec, None)], batch=False)
    plan = _output_plan(output, spec.info)
    _check_not_the_input(spec, plan)
    return Plan([Job(name, spec, plan)], batch=False)


def _stdin(raw_rate: int | None, input_format: str) -> InputSpec:
    """stdin, its header read now (a refusal comes before connecting).

    Read unbuffered from its file descriptor: a thread blocked reading
    ``sys.stdin.buffer`` holds that object's lock, and the interpreter, which
    flushes it at exit, would abort after Ctrl-C.
    """
    raw: BinaryIO = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
    reader = PcmStreamReader(raw, rate=wire_rate(input_format, None),
                             raw_rate=raw_rate, name="stdin")
    try:
        info = reader.read_header()
    except MediaError as exc:
        if raw_rate is not None:
            raise UsageError(f"--rate {raw_rate}: stdin {exc.reason}") from None
        raise UsageError(f"stdin: {exc.reason} ({_RAW_HINT})") from None
    return InputSpec(STDIO, None, raw_rate, info, stdin=reader)


def _input_file(name: str, raw_rate: int | None) -> InputSpec:
    """A checked input file (probed, or checked to be raw PCM with ``--rate``).

    Raises:
        UsageError: Missing, unreadable, not audio, or a header with ``--rate``.
    """
    path = Path(name)
    head = _read_head(path, name)
    if raw_rate is not None:
        return InputSpec(name, path, raw_rate, _raw_info(path, name, head, raw_rate))
    try:
        info = probe(path)
    except MediaError as exc:
        hint = "" if sniff_header(head) else f" ({_RAW_HINT})"
        raise UsageError(f"{exc}{hint}") from None
    return InputSpec(name, path, None, info)


def _read_head(path: Path, name: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(12)
    except FileNotFoundError:
        raise UsageError(f"input file not found: {name}") from None
    except IsADirectoryError:
        raise UsageError(f"input is a directory, not an audio file: {name}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None


# Names of media files whose first bytes may not tell (an MP3 without ID3 tags, ADTS AAC).
_MEDIA_SUFFIXES = frozenset({*OUTPUT_EXTENSIONS, ".aac", ".ac3", ".aif", ".aiff", ".amr",
                             ".avi", ".m4v", ".mka", ".mpg", ".mpeg", ".oga", ".ts", ".wma",
                             ".wmv", ".3gp", ".caf", ".au", ".w64", ".rf64"})


def _raw_info(path: Path, name: str, head: bytes, raw_rate: int) -> MediaInfo:
    kind = sniff_header(head)
    if kind is not None:
        raise UsageError(f"--rate {raw_rate}: {name} starts with a {kind} header, and --rate "
                         "applies to raw PCM only (drop --rate: the file says its rate)")
    if path.suffix.lower() in _MEDIA_SUFFIXES:
        raise UsageError(f"--rate {raw_rate}: {name} is named as a {path.suffix.lower()} file, "
                         "and --rate applies to raw PCM only (drop --rate; if it really is raw "
                         "PCM, name it .raw or .pcm)")
    if path.stat().st_size % 2:
        raise UsageError(f"{name} is not raw 16-bit PCM: it has an odd number of bytes")
    with open_media(path, None, raw_rate=raw_rate) as source:
        info = source.info
    size = path.stat().st_size
    return MediaInfo(info.path, info.container, info.codec, info.sample_rate, info.channels,
                     duration_s=size / 2 / raw_rate)


def _output_plan(output: str, info: MediaInfo | None, *, option: str = "-o") -> OutputPlan:
    try:
        return plan_output(output, source=info)
    except OutputPathError as exc:
        raise UsageError(f"{option} {output}: {exc.reason}; expected {exc.allowed}") from None
    except MediaError as exc:  # the format needs PyAV
        raise UsageError(f"{option} {output}: {exc.reason}") from None


def _check_not_the_input(spec: InputSpec, plan: OutputPlan) -> None:
    if spec.path is not None and plan.path.exists() and plan.path.samefile(spec.path):
        raise UsageError(f"-o {plan.path}: it is the input itself; expected another file "
                         "(the input must stay readable until the end)")


def _check_ext(ext: str) -> str:
    normal = ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    if normal not in OUTPUT_EXTENSIONS:
        raise UsageError(f"--ext {ext}: unknown extension; expected one of "
                         f"{', '.join(OUTPUT_EXTENSIONS)}")
    return normal


# -- several inputs ----------------------------------------------------------------

def _plan_batch(inputs: Sequence[str], output: str, raw_rate: int | None,
                ext: str | None) -> Plan:
    if STDIO in inputs:
        raise UsageError("INPUT -: stdin can only be read as the single input")
    folder, missing = _batch_folder(output, len(inputs))
    checked: list[tuple[str, InputSpec | UsageError]] = []
    for name in inputs:
        try:
            checked.append((name, _input_file(name, raw_rate)))
        except UsageError as exc:
            checked.append((name, exc))
    targets = {name: folder / (Path(name).stem + (ext or _default_ext(Path(name), spec.info)))
               for name, spec in checked if isinstance(spec, InputSpec)}
    _check_distinct(targets)
    if missing:
        _create(folder, output)
    jobs = [Job(name, None, None, error=str(spec)) if isinstance(spec, UsageError)
            else _batch_job(name, spec, targets[name]) for name, spec in checked]
    return Plan(jobs, batch=True, folder=folder)


_FOLDER = "a folder for the outputs (e.g. -o out/)"


def _batch_folder(output: str, count: int) -> tuple[Path, bool]:
    """The output folder of a batch, and whether to create it (a trailing slash asks)."""
    if output == STDIO:
        raise UsageError(f"-o -: {count} inputs cannot all go to stdout; expected {_FOLDER}")
    folder = Path(output)
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"-o {output}: folder is not writable; expected {_FOLDER}")
        return folder, False
    if folder.exists():
        raise UsageError(f"-o {output}: with {count} inputs it must be a folder, not a file; "
                         f"expected {_FOLDER}")
    if not output.endswith(("/", os.sep)):
        raise UsageError(f"-o {output}: no such folder; expected {_FOLDER} "
                         "(a trailing slash creates it)")
    if not folder.parent.is_dir():
        raise UsageError(f"-o {output}: folder {str(folder.parent)!r} does not exist; "
                         f"expected {_FOLDER}")
    return folder, True


def _create(folder: Path, output: str) -> None:
    try:
        folder.mkdir()
    except OSError as exc:
        raise UsageError(f"-o {output}: cannot create the folder ({exc.strerror}); "
                         f"expected {_FOLDER}") from None


def _batch_job(name: str, spec: InputSpec, target: Path) -> Job:
    """One checked input of a batch; a problem with its output is kept in the job."""
    try:
        plan = _output_plan(str(target), spec.info, option="output")
        _check_not_the_input(spec, plan)
    except UsageError as exc:
        return Job(name, None, None, error=str(exc))
    return Job(name, spec, plan)


def _default_ext(path: Path, info: MediaInfo | None) -> str:
    """The input's own container for a video (a dubbed video), else ``.wav``."""
    suffix = path.suffix.lower()
    if info is not None and info.has_video and suffix in VIDEO_EXTENSIONS:
        return suffix
    return AUDIO_EXTENSIONS[0]


def _check_distinct(targets: dict[str, Path]) -> None:
    seen: dict[Path, str] = {}
    for name, target in targets.items():
        key = target.resolve()
        if key in seen:
            raise UsageError(f"INPUT {name}: its output {target} is also the output of "
                             f"{seen[key]}; expected inputs with distinct names")
        seen[key] = name
