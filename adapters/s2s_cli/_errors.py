"""Failures as people read them: one line and an exit code (2 usage, 1 service).

Exit codes: 0 success, 1 service error (or a failed file of a batch), 2 a
bad argument or input file, 130 Ctrl-C.
"""

from __future__ import annotations

import os
import socket

from s2s_core.errors import (
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeRejected,
    InternalServerError,
    InvalidAudio,
    InvalidSetup,
    InvalidURL,
    MissingCredentials,
    PolicyViolation,
    RemoteProtocolError,
    S2SError,
    S2STimeoutError,
    ServerError,
)
from s2s_core.rest import AuthenticationError
from s2s_core.urls import s2s_url

from ._audio import CliError

__all__ = ["connection_failure", "error_name", "explain", "unwrap"]


def unwrap(exc: BaseException) -> BaseException:
    """The single exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def error_name(exc: BaseException) -> str:
    """The failure's type for JSON output: the library's error a one-line message explains."""
    exc = unwrap(exc)
    cause = exc.__cause__
    if type(exc) is CliError and isinstance(cause, S2SError):
        return type(cause).__name__
    return type(exc).__name__


def explain(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message for a failure."""
    exc = unwrap(exc)
    code, message = _explain(exc)
    return code, " ".join(message.split())


def _explain(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, CliError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (InvalidSetup, InvalidAudio, MissingCredentials, InvalidURL)):
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
    if isinstance(exc, AuthenticationError):
        return 1, f"{exc}; check GRADIUM_API_KEY"
    if isinstance(exc, BrokenPipeError):
        return 1, "the reader of stdout went away before the translation ended"
    if isinstance(exc, (S2SError, OSError)):
        return 1, str(exc) or type(exc).__name__
    return 1, f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def connection_failure(exc: BaseException, url: str, *, connected: bool) -> CliError | None:
    """A one-line error for a transport failure (refused, unreachable, reset), else None."""
    leaf = unwrap(exc)
    if not isinstance(leaf, (ConnectError, ConnectionError, socket.gaierror)):
        return None
    if isinstance(leaf, BrokenPipeError) and not isinstance(leaf, S2SError):
        return None  # stdout, not the server
    reason = _os_reason(leaf) or str(leaf)
    what = "lost the connection to" if connected else "cannot connect to"
    return CliError(f"{what} {s2s_url(url)}: {reason}")


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
