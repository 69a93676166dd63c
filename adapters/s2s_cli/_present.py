"""What ``s2s`` shows: transcript lines, progress bars, summaries (rich), or JSON lines.

Results (transcript, summary, JSON) go to stdout, or to stderr when stdout
carries the audio (``-o -``); status lines and progress bars (only when
stderr is a terminal) go to stderr. Every text from the network is shown
through ``_text.printable``, and JSON through ``_text.json_safe``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

import msgspec
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text as RichText

from s2s_core.events import Audio, Text, UnknownMessage
from s2s_core.rest import Voice

from ._errors import error_name, explain
from ._run import Outcome, Reporter, Summary
from ._text import json_safe, printable

__all__ = ["BatchReporter", "HumanReporter", "JsonBatchReporter", "JsonReporter", "json_line",
           "print_voices", "status"]

Segments = Sequence[tuple[str, str]]
"""A line as (text, rich style) pieces."""

_PRINT_LOCK = threading.Lock()  # threaded batches report from several threads


def status(message: str) -> None:
    """One line on stderr, prefixed with the program name (control characters escaped)."""
    with _PRINT_LOCK:
        print(f"s2s: {printable(message)}", file=sys.stderr, flush=True)


def json_line(obj: dict[str, Any], file: TextIO | None = None) -> None:
    """Write one JSON object on one line and flush it."""
    out = file or sys.stdout
    with _PRINT_LOCK:
        out.write(json_safe(json.dumps(obj, ensure_ascii=False)) + "\n")
        out.flush()


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_fields(s: Summary) -> dict[str, Any]:
    """The summary as JSON fields."""
    return {
        "input": s.input, "output": s.output, "request_id": s.request_id,
        "sample_rate": s.sample_rate, "output_s": _secs(s.output_s), "wall_s": _secs(s.wall_s),
        "ready_s": _secs(s.ready_s), "first_audio_s": _secs(s.first_audio_s),
        "first_text_s": _secs(s.first_text_s), "real_time_factor": _secs(s.real_time_factor),
        "speech_s": _secs(s.speech_s), "sent_s": _secs(s.sent_s), "bytes_sent": s.bytes_sent,
        "bytes_received": s.bytes_received, "segments": s.segments,
        "input_format": s.input_format, "output_format": s.output_format,
        "metrics": None if s.metrics is None else msgspec.to_builtins(s.metrics),
    }


# --------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------

class JsonReporter:
    """One JSON object per line on stdout: ready, text, audio, unknown, end, summary.

    Args:
        input: The input's name, added to every line (batches), or None.
    """

    def __init__(self, input: str | None = None) -> None:
        self._extra = {} if input is None else {"input": input}

    def _line(self, obj: dict[str, Any]) -> None:
        json_line({**obj, **self._extra})

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None:
        """The server accepted the request."""
        self._line({"type": "ready", "request_id": request_id, "sample_rate": sample_rate,
                    "t": _secs(at_s)})

    def sent(self, sent_s: float) -> None:
        """Input progress (not reported in JSON)."""

    def text(self, event: Text, at_s: float) -> None:
        """A transcript segment."""
        self._line({"type": "text", "text": event.text, "start_s": event.start_s,
                    "stop_s": event.stop_s, "t": _secs(at_s)})

    def audio(self, event: Audio, received_s: float, at_s: float) -> None:
        """An audio chunk, summarized (its size and timing, not its bytes)."""
        self._line({"type": "audio", "bytes": len(event.audio), "start_s": event.start_s,
                    "stop_s": event.stop_s, "received_s": _secs(received_s),
                    "t": _secs(at_s)})

    def unknown(self, event: UnknownMessage, at_s: float) -> None:
        """A message type this client does not know."""
        self._line({"type": "unknown", "message_type": event.type, "t": _secs(at_s)})

    def end(self, at_s: float) -> None:
        """The server sent everything."""
        self._line({"type": "end", "t": _secs(at_s)})

    def summary(self, s: Summary) -> None:
        """The final summary."""
        json_line({"type": "summary", **summary_fields(s)})

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass


class JsonBatchReporter:
    """JSON lines of a batch: every job's events (with ``input``), its summary or error, a total."""

    def for_job(self, name: str) -> Reporter:
        """The reporter of one job."""
        return JsonReporter(name)

    def finished(self, outcome: Outcome) -> None:
        """One job ended."""
        if outcome.summary is not None:
            json_line({"type": "summary", **summary_fields(outcome.summary)})
        else:
            assert outcome.error is not None
            code, message = explain(outcome.error)
            json_line({"type": "error", "input": outcome.job.name,
                       "error": error_name(outcome.error), "message": message,
                       "exit_code": code})

    def total(self, outcomes: Sequence[Outcome], wall_s: float) -> None:
        """The batch's summary."""
        failed = [o.job.name for o in outcomes if o.summary is None]
        json_line({"type": "batch", "files": len(outcomes),
                   "translated": len(outcomes) - len(failed), "failed": failed,
                   "wall_s": _secs(wall_s)})

    def __enter__(self) -> JsonBatchReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


# --------------------------------------------------------------------------
# people: one file
# --------------------------------------------------------------------------

class _Bars:
    """Live progress bars on stderr (none unless it is a terminal)."""

    def __init__(self, err: Console, *, show: bool) -> None:
        self.progress: Progress | None = None
        if show:
            self.progress = Progress(
                TextColumn("{task.description:<9}"), BarColumn(),
                TextColumn("{task.fields[shown]}"), TimeElapsedColumn(),
                console=err, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._live = False

    def add(self, name: str, total_s: float | None) -> TaskID | None:
        if self.progress is None:
            return None
        return self.progress.add_task(name, total=total_s, shown="")

    def update(self, task: TaskID | None, done_s: float, shown: str) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, completed=done_s, shown=shown)

    def print(self, text: RichText, console: Console) -> None:
        """Print a line above the bars when they share the terminal."""
        if self._live and self.progress is not None and console.is_terminal:
            self.progress.console.print(text)
        else:
            console.print(text)

    def start(self) -> None:
        if self.progress is not None and not self._live:
            self.progress.start()
            self._live = True

    def stop(self) -> None:
        if self.progress is not None and self._live:
            self.progress.stop()
            self._live = False


def _seconds_of(done: float, total: float | None) -> str:
    # A header's duration can be a frame short of what decodes: never show more than all.
    return f"{done:6.2f} s" if total is None else f"{min(done, total):6.2f} / {total:.2f} s"


class HumanReporter:
    """Transcript lines as they arrive, progress bars, and a summary.

    Args:
        total_s: Audio seconds of the input, when known (the bars' length).
        trailing_s: Silence after the input (the output is that much longer).
        progress: Show the progress bars (stderr must be a terminal).
        results_to_stderr: stdout carries the audio: results go to stderr.
    """

    def __init__(self, total_s: float | None, *, trailing_s: float, progress: bool,
                 results_to_stderr: bool = False) -> None:
        self._err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
        self._out = (self._err if results_to_stderr
                     else Console(file=sys.stdout, soft_wrap=True, highlight=False))
        self._total = total_s
        self._total_out = None if total_s is None else total_s + trailing_s
        self._bars = _Bars(self._err, show=progress)
        self._sent = self._bars.add("sent", total_s)
        self._received = self._bars.add("received", self._total_out)

    def _line(self, segments: Segments, *, err: bool = False) -> None:
        self._bars.print(RichText.assemble(*segments), self._err if err else self._out)

    def intro(self, message: str) -> None:
        """A status line before the run starts."""
        self._line([(printable(message), "dim")], err=True)

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None:
        """The server accepted the request."""

    def sent(self, sent_s: float) -> None:
        """Input progress."""
        self._bars.update(self._sent, sent_s, _seconds_of(sent_s, self._total))

    def text(self, event: Text, at_s: float) -> None:
        """Print a transcript segment with its timing in the input."""
        stamp = f"[{event.start_s:6.2f} s -> {event.stop_s:6.2f} s]"
        self._line([(stamp, "cyan"), (" ", ""), (printable(event.text), "bold")])

    def audio(self, event: Audio, received_s: float, at_s: float) -> None:
        """Output progress."""
        self._bars.update(self._received, received_s, _seconds_of(received_s, self._total_out))

    def unknown(self, event: UnknownMessage, at_s: float) -> None:
        """Ignored: people do not need to see unknown messages."""

    def end(self, at_s: float) -> None:
        """The server sent everything."""

    def summary(self, s: Summary) -> None:
        """Stop the progress bars and print the summary."""
        self._bars.stop()
        rate = f"{s.sample_rate} Hz " if s.sample_rate else ""
        where = "stdout" if s.output == "-" else printable(s.output)
        self._line([("Wrote ", "green"), (where, "bold green"),
                    (f": {s.output_s:.2f} s of {rate}audio, "
                     f"{_plural(s.segments, 'text segment')}", "")])
        for label, value in _summary_rows(s):
            self._line([(f"  {label:<19}", "dim"), (value, "")])

    def __enter__(self) -> HumanReporter:
        self._bars.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bars.stop()


def _after(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.2f} s"


def _factor(value: float) -> str:
    """Two decimals, or four for a run much faster than real time (0.0043, not 0.00)."""
    return f"{value:.2f}" if value >= 0.1 else f"{value:.4f}"


def _summary_rows(s: Summary) -> list[tuple[str, str]]:
    rtf = s.real_time_factor
    silence = s.sent_s - s.speech_s
    return [
        ("request id", printable(s.request_id or "-")),
        ("ready after", _after(s.ready_s, "-")),
        ("first audio after", _after(s.first_audio_s, "- (no audio)")),
        ("first text after", _after(s.first_text_s, "- (no text)")),
        ("real-time factor", "-" if rtf is None else
         f"{_factor(rtf)} ({s.wall_s:.2f} s to stream {s.sent_s:.2f} s of audio)"),
        ("audio sent", f"{s.bytes_sent:,} bytes ({s.input_format}: {s.speech_s:.2f} s "
                       f"+ {silence:.2f} s of trailing silence)"),
        ("audio received", f"{s.bytes_received:,} bytes ({s.output_format}: "
                           f"{s.output_s:.2f} s)"),
        *_lag_rows(s),
    ]


def _lag_rows(s: Summary) -> list[tuple[str, str]]:
    """The output's lag behind the input, from the core's metrics."""
    m = s.metrics
    if m is None or m.lag_p50_s is None or m.lag_p95_s is None or m.lag_max_s is None:
        return []
    return [("output lag", f"p50 {m.lag_p50_s:.2f} s, p95 {m.lag_p95_s:.2f} s, "
                           f"max {m.lag_max_s:.2f} s ({m.lag_count} chunks)")]


# --------------------------------------------------------------------------
# people: a batch
# --------------------------------------------------------------------------

class _BatchJob:
    """One job of a batch: moves the overall bar, prints nothing itself."""

    def __init__(self, batch: BatchReporter, name: str) -> None:
        self._batch = batch
        self._name = name
        self.sent_s = 0.0

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None:
        pass

    def sent(self, sent_s: float) -> None:
        self._batch.moved(sent_s - self.sent_s)
        self.sent_s = sent_s

    def text(self, event: Text, at_s: float) -> None:
        pass

    def audio(self, event: Audio, received_s: float, at_s: float) -> None:
        pass

    def unknown(self, event: UnknownMessage, at_s: float) -> None:
        pass

    def end(self, at_s: float) -> None:
        pass


class BatchReporter:
    """One overall progress bar, one line per finished file, a summary.

    Args:
        durations: The audio seconds of each input (None when unknown: unreadable).
        progress: Show the progress bar (stderr must be a terminal).
    """

    def __init__(self, durations: Sequence[float | None], *, progress: bool) -> None:
        self._err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
        self._out = Console(file=sys.stdout, soft_wrap=True, highlight=False)
        self._count = len(durations)
        # Inputs that cannot be read have no duration: they take no room on the bar.
        self._total: float | None = sum(d for d in durations if d is not None) or None
        self._bars = _Bars(self._err, show=progress)
        self._task = self._bars.add("files", self._total)
        self._jobs: dict[str, _BatchJob] = {}
        self._done_s = 0.0
        self._finished = 0
        self._lock = threading.Lock()

    def for_job(self, name: str) -> Reporter:
        """The reporter of one job."""
        job = self._jobs[name] = _BatchJob(self, name)
        return job

    def moved(self, seconds: float) -> None:
        """Input seconds sent by some job."""
        with self._lock:
            self._done_s += seconds
            self._show()

    def _show(self) -> None:
        shown = f"{self._finished}/{self._count} files, {_seconds_of(self._done_s, self._total)}"
        self._bars.update(self._task, self._done_s, shown)

    def finished(self, outcome: Outcome, duration_s: float | None) -> None:
        """One job ended: its line (stdout when translated, stderr when failed)."""
        with self._lock:
            self._finished += 1
            job = self._jobs.get(outcome.job.name)
            if duration_s is not None:  # a failed file counts as done on the bar
                self._done_s += max(0.0, duration_s - (job.sent_s if job else 0.0))
            self._show()
            name = printable(outcome.job.name)
            s = outcome.summary
            if s is None:
                assert outcome.error is not None
                _, message = explain(outcome.error)
                message = printable(message)
                if not message.startswith(f"{name}:"):
                    message = f"{name}: {message}"
                self._bars.print(RichText.assemble(("s2s: error: ", "red"), (message, "")),
                                 self._err)
                return
            self._bars.print(RichText.assemble(
                ("done ", "green"), (name, "bold"), (" -> ", ""),
                (printable(s.output), "bold green"),
                (f": {s.output_s:.2f} s of audio, {_plural(s.segments, 'text segment')}, "
                 f"{s.wall_s:.2f} s", "")), self._out)

    def total(self, outcomes: Sequence[Outcome], wall_s: float) -> None:
        """Stop the bar; print the summary."""
        self._bars.stop()
        failed = [o.job.name for o in outcomes if o.summary is None]
        done = len(outcomes) - len(failed)
        line = f"Translated {done} of {_plural(len(outcomes), 'file')} in {wall_s:.2f} s"
        if failed:
            line += f"; failed: {', '.join(printable(name) for name in failed)}"
        self._out.print(RichText(line, style="bold red" if failed else "bold green"))

    def __enter__(self) -> BatchReporter:
        self._bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bars.stop()


# --------------------------------------------------------------------------
# s2s voices
# --------------------------------------------------------------------------

def print_voices(voices: Sequence[Voice], *, as_json: bool) -> None:
    """The voices as a table (rich), or one JSON object per line."""
    if as_json:
        for v in voices:
            json_line({"uid": v.uid, "name": v.name, "language": v.language,
                       "description": v.description, "is_catalog": v.is_catalog,
                       "tags": {t.category: t.value for t in v.tags if t.category}})
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("uid", "name", "language", "kind"):
        table.add_column(column, no_wrap=True)  # a uid is copied: never folded
    table.add_column("description", overflow="fold")
    for v in voices:
        table.add_row(*(printable(cell) for cell in (
            v.uid, v.name or "", v.language or "?", "catalog" if v.is_catalog else "own",
            v.description or "")))
    Console(file=sys.stdout, highlight=False).print(table)
