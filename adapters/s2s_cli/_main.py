"""The ``s2s`` command: translate audio and video files, list voices, run the local server.

    s2s translate talk.mp3 -o talk_en.wav
    s2s translate talk.mp4 --target-language fr -o talk_fr.mp4      (a dubbed video)
    s2s translate a.wav b.mp3 c.mp4 -o out/ --jobs 4                 (a batch)
    ffmpeg -i SRC -f s16le -ar 16000 -ac 1 - | s2s translate - --rate 16000 -o - | ffplay -
    s2s voices --language fr
    s2s serve --port 8765 --api-key secret
    s2s bench ...

``translate`` and ``voices`` talk to the live service when GRADIUM_API_KEY is
set, and to the embedded local server (a loopback engine, no key needed)
otherwise. Every argument is checked before anything is streamed.
Exit codes: 0 success, 1 service error (or a failed file of a batch),
2 usage or input error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import NoReturn

from s2s_core.errors import InvalidURL
from s2s_core.options import ClientOptions
from s2s_core.setup import TARGET_LANGUAGES, Setup
from s2s_core.urls import DEFAULT_BASE_URL, s2s_url
from s2s_core.voices import FLAGSHIP_VOICES

from ._audio import CLI_FORMATS, RATE_RANGE, InputSpec, UsageError
from ._errors import connection_failure, error_name, explain, unwrap
from ._jobs import BACKENDS, LOOPS, check_backend, make_client, run_jobs
from ._media import OUTPUT_EXTENSIONS, MediaInfo
from ._plan import Plan, plan_translate
from ._present import (
    BatchReporter,
    HumanReporter,
    JsonBatchReporter,
    JsonReporter,
    json_line,
    print_voices,
    status,
)
from ._run import Outcome, Target, Translation
from ._serve import cmd_serve
from ._service import find_voice, list_voices, voice_warning

__all__ = ["build_parser", "main"]

LOCAL_API_KEY = "s2s-cli-local"
"""Placeholder key for servers that accept any key (the embedded local server)."""
_LOCAL_NOTE = "a loopback that returns your own audio and placeholder text, not a translation"
_DEFAULT_JOBS = 4


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``s2s: error: ...`` and exit code 2."""

    def error(self, message: str) -> NoReturn:
        status(f"error: {message} (see '{self.prog} --help')")
        raise SystemExit(2)


def _format(value: str) -> str:
    if value not in CLI_FORMATS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: unknown audio format; expected one of {', '.join(CLI_FORMATS)}")
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number >= 1")
    return number


def _rate(value: str) -> int:
    low, high = RATE_RANGE
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not low <= number <= high:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a sample rate in Hz, a whole number from {low} to {high}")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected a port from 0 to 65535 (0 picks a free one)")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds >= 0")
    return number


def _positive_seconds(value: str) -> float:
    number = _seconds(value)
    if number == 0:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a number of seconds > 0")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole program."""
    parser = _Parser(prog="s2s", description="Speech-to-speech translation with the Gradium "
                     "S2S API (or the embedded local server).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_translate(commands)
    _add_voices(commands)
    _add_serve(commands)
    commands.add_parser("bench", help="run the benchmarks (arguments go to them)",
                        add_help=False)
    return parser


def _add_where(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="server URL, e.g. ws://127.0.0.1:8765/api/speech/s2s "
                                     "(key: GRADIUM_API_KEY, if set)")
    where.add_argument("--local", action="store_true",
                       help="use the embedded local server even when GRADIUM_API_KEY is set")
    p.add_argument("--connect-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="give up connecting after this long (default: 10)")


def _add_translate(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "translate", help="translate audio or video files (or stdin)",
        description="Stream audio or video to the S2S service and write the translated "
                    "speech as it arrives: an audio file, a dubbed video, or WAV on stdout; "
                    "the transcript is printed as it arrives.",
        epilog="Target: --url if given; else the live service when GRADIUM_API_KEY is set; "
               "else (or with --local) the embedded local server, a loopback for trying "
               f"the tool without a key. Output extensions: {', '.join(OUTPUT_EXTENSIONS)} "
               "(a video extension makes a dubbed video of a video input). Wire formats: "
               f"{', '.join(CLI_FORMATS)}.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio or video files (anything ffmpeg reads, with the media extra; "
                        "WAV without it), raw 16-bit PCM with --rate, or - for stdin (WAV, or "
                        "raw with --rate)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                   help="the file to write (its extension picks the format), - for WAV on "
                        "stdout, or a folder for several inputs")
    p.add_argument("--voice-id", default=None,
                   help="voice of the output (default: the flagship voice of the target "
                        "language; see 's2s voices')")
    p.add_argument("--target-language", default="en", choices=TARGET_LANGUAGES,
                   help="language to translate into (default: en)")
    _add_where(p)
    p.add_argument("--backend", default="anyio", choices=BACKENDS,
                   help="client implementation (default: anyio)")
    p.add_argument("--loop", default=None, choices=LOOPS,
                   help="event loop of the anyio backend (default: asyncio)")
    p.add_argument("--jobs", type=_positive_int, default=_DEFAULT_JOBS, metavar="N",
                   help=f"files translated at once (default: {_DEFAULT_JOBS})")
    p.add_argument("--ext", default=None, metavar="EXT",
                   help="extension of the outputs of several inputs (default: .wav, or the "
                        "input's own container for a video: a dubbed video)")
    p.add_argument("--input-format", type=_format, default="pcm", metavar="FORMAT",
                   help="format sent on the wire (default: pcm, 24 kHz)")
    p.add_argument("--output-format", type=_format, default="pcm", metavar="FORMAT",
                   help="format received on the wire (default: pcm, 48 kHz)")
    p.add_argument("--rate", type=_rate, metavar="HZ",
                   help=f"the input is raw 16-bit mono PCM at this rate "
                        f"({RATE_RANGE[0]}..{RATE_RANGE[1]}); not for files with a header")
    p.add_argument("--no-pace", action="store_true",
                   help="send files as fast as possible instead of at real time (stdin is "
                        "never paced)")
    p.add_argument("--trailing-silence", type=_seconds, default=2.0, metavar="SECONDS",
                   help="silence appended to the input (default: 2)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line per event instead of text")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_translate)


def _add_voices(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "voices", help="list the voices (of a language)",
        description="List the service's voices: the catalog and the account's own.")
    p.add_argument("--language", metavar="LANG",
                   help="only voices of this language (e.g. fr)")
    p.add_argument("--json", action="store_true", help="one JSON object per voice and line")
    _add_where(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_voices)


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "serve", help="run the local S2S server (a loopback engine)",
        description="Serve the S2S protocol and its REST routes with a deterministic loopback "
                    "engine (your audio back, with placeholder text) until Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=_port, default=8765, help="port (0 picks a free one)")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accept this key (repeatable; default: accept any key)")
    p.add_argument("--token", action="append", dest="tokens", metavar="TOKEN",
                   help="accept this single-use token (repeatable)")
    p.add_argument("--max-audio-s", type=_positive_seconds, default=300.0, metavar="SECONDS",
                   help="audio per request before error 1008 (default: 300, as the service)")
    p.add_argument("--credits", type=_seconds, default=3600.0, metavar="SECONDS",
                   help="the account's credits, in seconds of input audio (default: 3600)")
    p.add_argument("--loop", default="asyncio", choices=LOOPS,
                   help="event loop to run on (default: asyncio)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_serve)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("s2s-core")
    except PackageNotFoundError:
        return "unknown"


# --------------------------------------------------------------------------
# where to connect
# --------------------------------------------------------------------------

def _check_url(url: str | None) -> None:
    if url is None:
        return
    try:
        s2s_url(Target(url, LOCAL_API_KEY).base_url)
    except InvalidURL as exc:
        raise UsageError(f"--url {url}: {exc}") from None


def _target(ns: argparse.Namespace, stack: ExitStack) -> Target:
    """--url, else the live service with GRADIUM_API_KEY, else the embedded server."""
    key = os.environ.get("GRADIUM_API_KEY") or None
    if ns.url:
        return Target(ns.url, key or LOCAL_API_KEY)
    if key is not None and not ns.local:
        return Target(DEFAULT_BASE_URL, key)
    from s2s_anyio import run_server

    url = stack.enter_context(run_server())
    why = "--local" if ns.local else "GRADIUM_API_KEY is not set"
    status(f"{why}: using the embedded local server at {url} ({_LOCAL_NOTE})")
    return Target(url, LOCAL_API_KEY)


# --------------------------------------------------------------------------
# translate
# --------------------------------------------------------------------------

def cmd_translate(ns: argparse.Namespace) -> int:
    """``s2s translate``: check everything, then stream each input and write its output."""
    check_backend(ns.backend, ns.loop)
    _check_url(ns.url)
    voice = ns.voice_id or FLAGSHIP_VOICES[ns.target_language]
    setup = Setup(voice_id=voice, input_format=ns.input_format,
                  output_format=ns.output_format,
                  json_config={"target_language": ns.target_language})
    plan = plan_translate(ns.inputs, ns.output, raw_rate=ns.rate,
                          input_format=ns.input_format, ext=ns.ext, json_out=ns.json)
    with ExitStack() as stack:
        target = _target(ns, stack)
        if ns.voice_id is not None:
            _warn_about_voice(target, ns.voice_id, ns.target_language)
        if plan.batch:
            return _translate_batch(ns, plan, setup, target, stack)
        return _translate_one(ns, plan, setup, target, stack)


def _warn_about_voice(target: Target, voice_id: str, language: str) -> None:
    voice = find_voice(target.base_url, target.api_key, voice_id)
    warning = None if voice is None else voice_warning(voice, language)
    if warning is not None:
        status(warning)


def _translations(ns: argparse.Namespace, plan: Plan, setup: Setup,
                  reporter_for: Callable[[str], object]) -> list[Translation]:
    return [Translation(job, setup, reporter_for(job.name),  # type: ignore[arg-type]
                        pace=None if ns.no_pace else 1.0, trailing_s=ns.trailing_silence)
            for job in plan.jobs if job.error is None]


def _client_options(ns: argparse.Namespace) -> ClientOptions:
    return ClientOptions(connect_timeout=ns.connect_timeout)


def _plain_failure(outcome: Outcome, translations: dict[str, Translation],
                   target: Target) -> Outcome:
    """A transport failure as one line naming the server."""
    if outcome.error is None:
        return outcome
    t = translations.get(outcome.job.name)
    failure = connection_failure(outcome.error, target.base_url,
                                 connected=t is not None and t.ready_s is not None)
    return outcome if failure is None else replace(outcome, error=failure)


def _translate_one(ns: argparse.Namespace, plan: Plan, setup: Setup, target: Target,
                   stack: ExitStack) -> int:
    (job,) = plan.jobs
    assert job.input is not None
    reporter: HumanReporter | JsonReporter
    if ns.json:
        reporter = JsonReporter()
    else:
        to_stderr = job.output is None
        reporter = HumanReporter(job.input.duration_s, trailing_s=ns.trailing_silence,
                                 progress=sys.stderr.isatty(), results_to_stderr=to_stderr)
        where = "stdout" if job.output is None else str(job.output.path)
        shown = "stdin" if job.input.is_pipe else job.name
        reporter.intro(f"Translating {shown} ({_describe(job.input)}) into "
                       f"{ns.target_language} with voice {setup.voice_id} via "
                       f"{s2s_url(target.base_url)} -> {where}")
    stack.enter_context(reporter)
    (t,) = _translations(ns, plan, setup, lambda _: reporter)
    client = make_client(ns.backend, target, _client_options(ns))
    (outcome,) = run_jobs(ns.backend, ns.loop, client, [t], jobs=1, done=lambda _: None)
    outcome = _plain_failure(outcome, {job.name: t}, target)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.summary is not None
    reporter.summary(outcome.summary)
    return 0


def _translate_batch(ns: argparse.Namespace, plan: Plan, setup: Setup, target: Target,
                     stack: ExitStack) -> int:
    durations = {job.name: job.input.duration_s if job.input else None for job in plan.jobs}
    reporter: BatchReporter | JsonBatchReporter
    if ns.json:
        reporter = JsonBatchReporter()
    else:
        reporter = BatchReporter(list(durations.values()), progress=sys.stderr.isatty())
        status(f"translating {len(plan.jobs)} files into {ns.target_language} with voice "
               f"{setup.voice_id} via {s2s_url(target.base_url)} -> {plan.folder}/ "
               f"(up to {ns.jobs} at once)")
    stack.enter_context(reporter)
    start = time.monotonic()
    translations = {t.job.name: t for t in _translations(ns, plan, setup, reporter.for_job)}

    def done(outcome: Outcome) -> None:
        outcome = _plain_failure(outcome, translations, target)
        if isinstance(reporter, BatchReporter):
            reporter.finished(outcome, durations[outcome.job.name])
        else:
            reporter.finished(outcome)

    failed_early = [Outcome(job, None, UsageError(job.error)) for job in plan.jobs
                    if job.error is not None]
    for outcome in failed_early:
        done(outcome)
    client = make_client(ns.backend, target, _client_options(ns))
    outcomes = run_jobs(ns.backend, ns.loop, client, list(translations.values()),
                        jobs=ns.jobs, done=done)
    everything = failed_early + outcomes
    reporter.total(everything, time.monotonic() - start)
    return 1 if any(o.summary is None for o in everything) else 0


_PCM_CODECS = {"pcm_mulaw": "mu-law", "pcm_alaw": "A-law", "pcm_f32le": "32-bit float PCM",
               "pcm_f64le": "64-bit float PCM", "pcm_u8": "8-bit PCM", "pcm": "PCM"}


def _codec_name(codec: str) -> str:
    """A decoder's name as people say it: pcm_s24le -> 24-bit PCM, mp3float -> mp3."""
    if codec in _PCM_CODECS:
        return _PCM_CODECS[codec]
    bits = "".join(c for c in codec.removeprefix("pcm_s") if c.isdigit())
    if codec.startswith("pcm_s") and bits:
        return f"{bits}-bit PCM"
    return codec.removesuffix("float")


def _describe(spec: InputSpec) -> str:
    """What an input holds, for the intro line (e.g. "4.66 s, WAV: 16-bit PCM, 22050 Hz, mono")."""
    info: MediaInfo | None = spec.info
    if info is None or spec.path is None:
        kind = "WAV" if spec.raw_rate is None else "raw 16-bit PCM"
        return kind if info is None else f"{kind}, {info.sample_rate} Hz"
    if spec.raw_rate is not None:
        source = f"raw 16-bit PCM, {info.sample_rate} Hz, mono"
    else:
        layout = "mono" if info.channels == 1 else f"{info.channels} channels mixed to mono"
        kind = spec.path.suffix.lstrip(".").upper() or info.container
        source = f"{kind}: {_codec_name(info.codec)}, {info.sample_rate} Hz, {layout}"
        if info.video_codec is not None:
            source += f", {info.video_codec} video"
    if info.duration_s is None:
        return source
    return f"{info.duration_s:.2f} s, {source}"


# --------------------------------------------------------------------------
# voices
# --------------------------------------------------------------------------

def cmd_voices(ns: argparse.Namespace) -> int:
    """``s2s voices``: the voices of the catalog and of the account (of one language)."""
    _check_url(ns.url)
    with ExitStack() as stack:
        target = _target(ns, stack)
        try:
            voices = list_voices(target.base_url, target.api_key, timeout=ns.connect_timeout)
        except Exception as exc:
            failure = connection_failure(exc, target.base_url, connected=False)
            if failure is None:
                raise
            raise failure from exc
    if ns.language:
        voices = [v for v in voices if (v.language or "").lower() == ns.language.lower()]
    voices.sort(key=lambda v: (v.language or "~", not v.is_catalog, v.name or "", v.uid))
    print_voices(voices, as_json=ns.json)
    if not voices and not ns.json:
        status(f"no voices{f' in language {ns.language!r}' if ns.language else ''}")
    return 0


# --------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------

def cmd_bench(argv: Sequence[str]) -> int:
    """``s2s bench ARGS``: the benchmarks' own command line (``s2s_benchmarks``)."""
    try:
        from s2s_benchmarks.command import main as bench_main
    except ModuleNotFoundError as exc:
        if exc.name not in ("s2s_benchmarks", "s2s_benchmarks.command"):
            raise
        raise UsageError("the benchmarks are not installed (no module s2s_benchmarks); "
                         "reinstall s2s-core") from None
    code: int = bench_main(list(argv), prog="s2s bench")
    return code


# --------------------------------------------------------------------------
# running a command
# --------------------------------------------------------------------------

def _silence_stdout() -> None:
    """After a broken pipe on stdout: point it at /dev/null, so the exit flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _guarded(command: Callable[[], int], *, debug: bool, json_errors: bool) -> int:
    """Run a command; turn failures into one line on stderr and an exit code."""
    try:
        return command()
    except BaseException as exc:
        leaf = unwrap(exc)
        if isinstance(leaf, KeyboardInterrupt):
            status("interrupted")
            if not debug:
                # Ctrl-C during event-loop creation leaves a half-built loop whose
                # __del__ complains at exit; the user asked to stop, not for that.
                sys.unraisablehook = lambda _: None
            return 130
        if not isinstance(leaf, Exception):
            raise
        if isinstance(leaf, BrokenPipeError):
            _silence_stdout()
        if debug:
            traceback.print_exc()
        code, message = explain(leaf)
        status(f"error: {message}")
        if json_errors:
            json_line({"type": "error", "error": error_name(leaf), "message": message,
                       "exit_code": code})
        return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``s2s`` command; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug_env = bool(os.environ.get("S2S_DEBUG"))
    if args[:1] == ["bench"]:
        return _guarded(partial(cmd_bench, args[1:]), debug=debug_env, json_errors=False)
    ns = build_parser().parse_args(args)
    command: Callable[[argparse.Namespace], int] = ns.func
    return _guarded(partial(command, ns), debug=ns.debug or debug_env,
                    json_errors=getattr(ns, "json", False))

