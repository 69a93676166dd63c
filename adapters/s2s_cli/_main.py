"""The ``s2s`` command: translate an audio file, run the local server, run the benchmarks.

    s2s translate samples/bonjour_fr.wav -o out.wav
    s2s serve --port 8765 --api-key secret
    s2s bench ...

``translate`` talks to the live service when GRADIUM_API_KEY is set, and to
the embedded local server (a loopback engine, no key needed) otherwise.
Exit codes: 0 success, 1 service error, 2 usage or input error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import NoReturn

from s2s_core.errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeRejected,
    InternalServerError,
    InvalidAudio,
    InvalidSetup,
    MissingCredentials,
    PolicyViolation,
    RemoteProtocolError,
    S2SError,
    S2STimeoutError,
    ServerError,
)
from s2s_core.setup import TARGET_LANGUAGES, Setup
from s2s_core.urls import DEFAULT_BASE_URL, s2s_url

from ._audio import CLI_FORMATS, CliError, InputAudio, OutputWav, UsageError, load_input
from ._present import HumanReporter, JsonReporter, json_line, status
from ._run import BACKENDS, Target, Translation, check_backend, run

__all__ = ["DEFAULT_VOICE_ID", "build_parser", "main"]

DEFAULT_VOICE_ID = "YTpq7expH9539ERJ"
"""The voice of the vendor documentation's examples, so the command works without flags."""
LOCAL_API_KEY = "s2s-cli-local"
"""Placeholder key for servers that accept any key (the embedded local server)."""
_LOCAL_NOTE = "a loopback that returns your own audio and placeholder text, not a translation"


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
            f"unknown audio format {value!r}; use one of {', '.join(CLI_FORMATS)}")
    return value


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return number


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole program."""
    parser = _Parser(prog="s2s", description="Speech-to-speech translation with the Gradium "
                     "S2S API (or the embedded local server).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_translate(commands)
    _add_serve(commands)
    commands.add_parser("bench", help="run the benchmarks (arguments go to them)",
                        add_help=False)
    return parser


def _add_translate(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "translate", help="translate an audio file into a WAV file",
        description="Stream an audio file to the S2S service and write the translated "
                    "speech as a WAV file, printing the transcript as it arrives.",
        epilog="Target: --url if given; else the live service when GRADIUM_API_KEY is set; "
               "else (or with --local) the embedded local server, a loopback for trying "
               f"the tool without a key. Formats: {', '.join(CLI_FORMATS)}.")
    p.add_argument("input", type=Path, metavar="INPUT",
                   help="a WAV file (any rate, mono or stereo, 16/24/32-bit or float), "
                        "or raw 16-bit PCM with --rate")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT.wav",
                   help="the WAV file to write")
    p.add_argument("--voice-id", default=DEFAULT_VOICE_ID,
                   help=f"voice of the output (default: {DEFAULT_VOICE_ID})")
    p.add_argument("--target-language", default="en", choices=TARGET_LANGUAGES,
                   help="language to translate into (default: en)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="server URL, e.g. ws://127.0.0.1:8765/api/speech/s2s "
                                     "(key: GRADIUM_API_KEY, if set)")
    where.add_argument("--local", action="store_true",
                       help="use the embedded local server even when GRADIUM_API_KEY is set")
    p.add_argument("--backend", default="anyio", choices=BACKENDS,
                   help="client implementation (default: anyio)")
    p.add_argument("--input-format", type=_format, default="pcm", metavar="FORMAT",
                   help="format sent on the wire (default: pcm, 24 kHz)")
    p.add_argument("--output-format", type=_format, default="pcm", metavar="FORMAT",
                   help="format received (default: pcm, 48 kHz); always written as WAV")
    p.add_argument("--rate", type=_positive_int, metavar="HZ",
                   help="sample rate of raw PCM16 input (required for raw input)")
    p.add_argument("--no-pace", action="store_true",
                   help="send as fast as possible instead of at real time")
    p.add_argument("--trailing-silence", type=_seconds, default=2.0, metavar="SECONDS",
                   help="silence appended to the input (default: 2)")
    p.add_argument("--connect-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                   help="give up connecting after this long (default: 10)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line per event instead of text")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.set_defaults(func=cmd_translate)


def _add_serve(commands: argparse._SubParsersAction[_Parser]) -> None:
    p = commands.add_parser(
        "serve", help="run the local S2S server (a loopback engine)",
        description="Serve the S2S protocol with a deterministic loopback engine (your audio "
                    "back, with placeholder text) until Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accept this key (repeatable; default: accept any key)")
    p.add_argument("--token", action="append", dest="tokens", metavar="TOKEN",
                   help="accept this single-use token (repeatable)")
    p.add_argument("--loop", default="asyncio", choices=("asyncio", "trio"),
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
# translate
# --------------------------------------------------------------------------

def cmd_translate(ns: argparse.Namespace) -> int:
    """``s2s translate``: stream the file, print the transcript, write the WAV."""
    setup = Setup(voice_id=ns.voice_id, input_format=ns.input_format,
                  output_format=ns.output_format,
                  json_config={"target_language": ns.target_language})
    check_backend(ns.backend)
    audio = load_input(ns.input, ns.input_format, raw_rate=ns.rate,
                       trailing_silence_s=ns.trailing_silence)
    if ns.rate is not None and audio.from_wav:
        status(f"note: --rate is ignored for WAV input ({audio.source})")
    with ExitStack() as stack:
        output = stack.enter_context(OutputWav(ns.output, ns.output_format))
        target = _target(ns, stack)
        reporter: HumanReporter | JsonReporter
        if ns.json:
            reporter = stack.enter_context(JsonReporter())
        else:
            reporter = HumanReporter(audio.total_s, progress=sys.stderr.isatty())
            reporter.intro(_intro(ns, audio, target))
            stack.enter_context(reporter)
        translation = Translation(setup, audio, output, reporter,
                                  pace=None if ns.no_pace else 1.0)
        try:
            summary = run(ns.backend, target, translation, connect_timeout=ns.connect_timeout)
        except Exception as exc:
            failure = _connection_failure(exc, target, connected=translation.ready_s is not None)
            if failure is None:
                raise
            raise failure from exc
        reporter.summary(summary)
    return 0


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


def _connection_failure(exc: BaseException, target: Target, *,
                        connected: bool) -> CliError | None:
    """A one-line error for a transport failure (refused, unreachable, reset), else None."""
    leaf = _unwrap(exc)
    if not isinstance(leaf, (ConnectError, ConnectionError, socket.gaierror)):
        return None
    reason = _os_reason(leaf) or str(leaf)
    what = "lost the connection to" if connected else "cannot connect to"
    return CliError(f"{what} {s2s_url(target.base_url)}: {reason}")


def _os_reason(exc: BaseException) -> str | None:
    """The text of an OSError with an errno among the causes (and group members) of ``exc``."""
    found: str | None = None
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            found = (os.strerror(current.errno) if current.errno > 0
                     else current.strerror or str(current))
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        if current.__cause__ is not None:
            todo.append(current.__cause__)
        elif current.__context__ is not None and not current.__suppress_context__:
            todo.append(current.__context__)
    return found


def _intro(ns: argparse.Namespace, audio: InputAudio, target: Target) -> str:
    return (f"Translating {ns.input} ({audio.speech_s:.2f} s, {audio.source}) into "
            f"{ns.target_language} with voice {ns.voice_id} via {s2s_url(target.base_url)} "
            f"-> {ns.output}")


# --------------------------------------------------------------------------
# serve
# --------------------------------------------------------------------------

def cmd_serve(ns: argparse.Namespace) -> int:
    """``s2s serve``: run the local server until Ctrl-C (or SIGTERM); exit 0."""
    import anyio

    try:
        anyio.run(_serve, ns, backend=ns.loop)
    except BaseException as exc:
        leaf = _unwrap(exc)
        if isinstance(leaf, OSError):
            raise CliError(f"cannot listen on {ns.host}:{ns.port}: "
                           f"{leaf.strerror or leaf}") from exc
        if not isinstance(leaf, KeyboardInterrupt):
            raise
    status("server stopped")
    return 0


async def _serve(ns: argparse.Namespace) -> None:
    import anyio

    from s2s_anyio import make_config, serve

    keys: list[str] | None = ns.api_keys
    tokens: list[str] = ns.tokens or []
    if keys is None and tokens:
        keys = []  # tokens only: do not accept any key
    config = make_config(api_keys=keys, tokens=tokens)
    with ExitStack() as stack:
        try:
            signals = stack.enter_context(
                anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        except NotImplementedError:  # Windows: Ctrl-C raises KeyboardInterrupt instead
            signals = None
        async with anyio.create_task_group() as tasks:
            url = await tasks.start(partial(serve, ns.host, ns.port, config=config))
            _print_serving(url, keys, tokens)
            if signals is None:
                await anyio.sleep_forever()
            else:
                async for _ in signals:
                    break
            tasks.cancel_scope.cancel()


def _print_serving(url: str, keys: list[str] | None, tokens: list[str]) -> None:
    if keys is None:
        auth = "any API key"
    else:
        auth = f"{len(keys)} API key(s) and {len(tokens)} single-use token(s)"
    print(f"Serving the S2S protocol (loopback engine) at {url}", flush=True)
    print(f"Accepting {auth}. Try: s2s translate samples/bonjour_fr.wav -o out.wav "
          f"--url {url}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)


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
# errors
# --------------------------------------------------------------------------

def _unwrap(exc: BaseException) -> BaseException:
    """The single exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for a failure."""
    exc = _unwrap(exc)
    code, message = _explain(exc)
    return code, " ".join(message.split())


def _explain(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, CliError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (InvalidSetup, InvalidAudio, MissingCredentials)):
        return 2, str(exc)
    if isinstance(exc, PolicyViolation):
        return 1, (f"the server refused the request (policy violation {exc.code}: "
                   f"{exc.message}); check GRADIUM_API_KEY and the options")
    if isinstance(exc, ServerError):
        hint = "; try again" if isinstance(exc, InternalServerError) else ""
        code = f" {exc.code}" if exc.code is not None else ""
        return 1, f"the server reported an error{code}: {exc.message}{hint}"
    if isinstance(exc, HandshakeRejected):
        hint = "; check GRADIUM_API_KEY" if exc.status in (401, 403) else ""
        return 1, f"{exc}{hint}"
    if isinstance(exc, ConnectTimeout):
        return 1, f"{exc} (is the server up? see --connect-timeout)"
    if isinstance(exc, S2STimeoutError):
        return 1, f"the server stopped answering: {exc}"
    if isinstance(exc, ConnectionClosedError) and exc.code == 1008:
        return 1, (f"the server refused the request (policy violation 1008: "
                   f"{exc.reason or 'no reason given'}); check GRADIUM_API_KEY and the options")
    if isinstance(exc, ConnectionClosedError):
        return 1, f"the server closed the connection before the translation ended ({exc})"
    if isinstance(exc, RemoteProtocolError):
        return 1, f"the server broke the protocol: {exc}"
    if isinstance(exc, (S2SError, OSError)):
        return 1, str(exc) or type(exc).__name__
    return 1, f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _guarded(command: Callable[[], int], *, debug: bool, json_errors: bool) -> int:
    """Run a command; turn failures into one line on stderr and an exit code."""
    try:
        return command()
    except BaseException as exc:
        leaf = _unwrap(exc)
        if isinstance(leaf, KeyboardInterrupt):
            status("interrupted")
            if not debug:
                # Ctrl-C during event-loop creation leaves a half-built loop whose
                # __del__ complains at exit; the user asked to stop, not for that.
                sys.unraisablehook = lambda _: None
            return 130
        if not isinstance(leaf, Exception):
            raise
        if debug:
            traceback.print_exc()
        code, message = explain(leaf)
        status(f"error: {message}")
        if json_errors:
            json_line({"type": "error", "error": type(leaf).__name__, "message": message,
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

