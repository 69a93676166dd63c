"""What ``s2s translate`` shows: rich text and a progress bar, or JSON lines.

Results (transcript, summary, JSON) go to stdout; status and the progress
bar (only when stderr is a terminal) go to stderr. Without ``rich`` (the
``cli`` extra) the text is plain and there is no progress bar.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

from s2s_core.events import Audio, Text, UnknownMessage

from ._run import Summary

__all__ = ["HumanReporter", "JsonReporter", "json_line", "status"]

Segments = Sequence[tuple[str, str]]
"""A line as (text, rich style) pieces."""


def status(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"s2s: {message}", file=sys.stderr, flush=True)


def json_line(obj: dict[str, Any], file: TextIO | None = None) -> None:
    """Write one JSON object on one line and flush it."""
    out = file or sys.stdout
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class JsonReporter:
    """One JSON object per line on stdout: ready, text, audio, unknown, end, summary."""

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None:
        """The server accepted the request."""
        json_line({"type": "ready", "request_id": request_id, "sample_rate": sample_rate,
                   "t": _secs(at_s)})

    def sent(self, sent_s: float) -> None:
        """Input progress (not reported in JSON)."""

    def text(self, event: Text, at_s: float) -> None:
        """A transcript segment."""
        json_line({"type": "text", "text": event.text, "start_s": event.start_s,
                   "stop_s": event.stop_s, "t": _secs(at_s)})

    def audio(self, event: Audio, received_s: float, at_s: float) -> None:
        """An audio chunk, summarized (its size and timing, not its bytes)."""
        json_line({"type": "audio", "bytes": len(event.audio), "start_s": event.start_s,
                   "stop_s": event.stop_s, "received_s": _secs(received_s),
                   "t": _secs(at_s)})

    def unknown(self, event: UnknownMessage, at_s: float) -> None:
        """A message type this client does not know."""
        json_line({"type": "unknown", "message_type": event.type, "t": _secs(at_s)})

    def end(self, at_s: float) -> None:
        """The server sent everything."""
        json_line({"type": "end", "t": _secs(at_s)})

    def summary(self, s: Summary) -> None:
        """The final summary."""
        json_line({
            "type": "summary", "request_id": s.request_id, "output": str(s.output),
            "sample_rate": s.sample_rate, "output_s": _secs(s.output_s),
            "wall_s": _secs(s.wall_s), "ready_s": _secs(s.ready_s),
            "first_audio_s": _secs(s.first_audio_s), "first_text_s": _secs(s.first_text_s),
            "real_time_factor": _secs(s.real_time_factor), "speech_s": _secs(s.speech_s),
            "sent_s": _secs(s.sent_s), "bytes_sent": s.bytes_sent,
            "bytes_received": s.bytes_received, "segments": s.segments,
            "input_format": s.input_format, "output_format": s.output_format,
        })

    def __enter__(self) -> JsonReporter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        pass


class HumanReporter:
    """Transcript lines as they arrive, a progress bar, and a summary.

    Args:
        total_s: Audio seconds to send (the bars' length).
        progress: Show the progress bar (stderr must be a terminal).
    """

    def __init__(self, total_s: float, *, progress: bool) -> None:
        self._sink: _PlainSink | _RichSink
        if importlib.util.find_spec("rich") is not None:
            self._sink = _RichSink(total_s, progress=progress)
        else:
            self._sink = _PlainSink()

    def intro(self, message: str) -> None:
        """A status line before the run starts."""
        self._sink.line([(message, "dim")], err=True)

    def ready(self, request_id: str | None, sample_rate: int | None, at_s: float) -> None:
        """The server accepted the request."""
        self._sink.progress(received=0.0)

    def sent(self, sent_s: float) -> None:
        """Input progress."""
        self._sink.progress(sent=sent_s)

    def text(self, event: Text, at_s: float) -> None:
        """Print a transcript segment with its timing in the input."""
        stamp = f"[{event.start_s:6.2f} s -> {event.stop_s:6.2f} s]"
        self._sink.line([(stamp, "cyan"), (" ", ""), (event.text, "bold")], err=False)

    def audio(self, event: Audio, received_s: float, at_s: float) -> None:
        """Output progress."""
        self._sink.progress(received=received_s)

    def unknown(self, event: UnknownMessage, at_s: float) -> None:
        """Ignored: people do not need to see unknown messages."""

    def end(self, at_s: float) -> None:
        """The server sent everything."""

    def summary(self, s: Summary) -> None:
        """Stop the progress bar and print the summary."""
        self._sink.stop()
        rate = f"{s.sample_rate} Hz " if s.sample_rate else ""
        self._sink.line([("Wrote ", "green"), (str(s.output), "bold green"),
                         (f": {s.output_s:.2f} s of {rate}audio, "
                          f"{s.segments} text segment{'s' if s.segments != 1 else ''}", "")],
                        err=False)
        for label, value in _summary_rows(s):
            self._sink.line([(f"  {label:<19}", "dim"), (value, "")], err=False)

    def __enter__(self) -> HumanReporter:
        self._sink.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._sink.stop()


def _after(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:.2f} s"


def _summary_rows(s: Summary) -> list[tuple[str, str]]:
    rtf = s.real_time_factor
    silence = s.sent_s - s.speech_s
    return [
        ("request id", s.request_id or "-"),
        ("ready after", _after(s.ready_s, "-")),
        ("first audio after", _after(s.first_audio_s, "- (no audio)")),
        ("first text after", _after(s.first_text_s, "- (no text)")),
        ("real-time factor", "-" if rtf is None else
         f"{rtf:.2f} ({s.wall_s:.2f} s to stream {s.sent_s:.2f} s of audio)"),
        ("audio sent", f"{s.bytes_sent:,} bytes ({s.input_format}: {s.speech_s:.2f} s "
                       f"+ {silence:.2f} s of trailing silence)"),
        ("audio received", f"{s.bytes_received:,} bytes ({s.output_format}: "
                           f"{s.output_s:.2f} s)"),
    ]


class _PlainSink:
    """Plain ``print`` output (no rich installed)."""

    def line(self, segments: Segments, *, err: bool) -> None:
        print("".join(text for text, _ in segments), file=sys.stderr if err else sys.stdout,
              flush=True)

    def progress(self, *, sent: float | None = None, received: float | None = None) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _RichSink:
    """Rich consoles on stdout and stderr, and a live progress bar on stderr."""

    def __init__(self, total_s: float, *, progress: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._out = Console(file=sys.stdout, soft_wrap=True, highlight=False)
        self._err = Console(file=sys.stderr, soft_wrap=True, highlight=False)
        self._bar: Progress | None = None
        if progress:
            self._bar = Progress(
                TextColumn("{task.description:<9}"), BarColumn(),
                TextColumn("{task.completed:6.2f} / {task.total:.2f} s of audio"),
                TimeElapsedColumn(), console=self._err, transient=True,
                redirect_stdout=False, redirect_stderr=False)
            self._sent = self._bar.add_task("sent", total=total_s)
            self._received = self._bar.add_task("received", total=total_s)
        self._live = False

    def line(self, segments: Segments, *, err: bool) -> None:
        from rich.text import Text as RichText

        text = RichText.assemble(*segments)
        if self._live and self._bar is not None and (err or sys.stdout.isatty()):
            # Print above the live bar (stdout is the same terminal).
            self._bar.console.print(text)
        else:
            (self._err if err else self._out).print(text)

    def progress(self, *, sent: float | None = None, received: float | None = None) -> None:
        if self._bar is None:
            return
        if sent is not None:
            self._bar.update(self._sent, completed=sent)
        if received is not None:
            self._bar.update(self._received, completed=received)

    def start(self) -> None:
        if self._bar is not None and not self._live:
            self._bar.start()
            self._live = True

    def stop(self) -> None:
        if self._bar is not None and self._live:
            self._bar.stop()
            self._live = False
