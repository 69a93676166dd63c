"""Exceptions of s2s-core: one root, local vs remote faults, server errors by code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._refusal import header_value, parse_retry_after, refusal_message

__all__ = [
    "S2SError",
    "InvalidSetup",
    "InvalidAudio",
    "LocalProtocolError",
    "InvalidHeader",
    "InvalidURL",
    "RemoteProtocolError",
    "MessageTooBig",
    "ServerError",
    "ProtocolViolation",
    "PolicyViolation",
    "InternalServerError",
    "ConnectionClosedError",
    "HandshakeRejected",
    "ConnectError",
    "S2STimeoutError",
    "ConnectTimeout",
    "ReadyTimeout",
    "IdleTimeout",
    "CloseTimeout",
    "KeepaliveTimeout",
    "MissingCredentials",
    "server_error_for",
]


class S2SError(Exception):
    """Root of every error raised by s2s-core and its adapters.

    Attributes:
        partial_result: What a request had received before it failed (an
            ``S2SResult``), when the error ended a request; else None.
        retry_after: Seconds the server asked to wait before trying again
            (an HTTP ``Retry-After``), when it said; else None.
        attempts: When a retry policy ran, every attempt it made (this
            error ended the last one): ``s2s_core.retry.Attempt`` records.
        segment: When an input split into several requests failed, the
            ``s2s_core.splitter.Segment`` whose request failed (its part of
            the input, in seconds); else None.
    """

    partial_result: Any = None
    retry_after: float | None = None
    attempts: tuple[Any, ...] = ()
    segment: Any = None

    @property
    def retryable(self) -> bool:
        """Whether trying again may succeed (``s2s_core.retry.classify`` is not FINAL).

        Read from the one table in ``s2s_core.retry``, by code and status,
        never by message text.
        """
        return _retry_rule(self)


def _no_rule(error: BaseException) -> bool:
    return False  # replaced when s2s_core.retry is imported (s2s_core's __init__ does)


_retry_rule: Callable[[BaseException], bool] = _no_rule


def set_retry_rule(rule: Callable[[BaseException], bool]) -> None:
    """Install the function behind ``S2SError.retryable`` (``s2s_core.retry`` does).

    The table lives in ``s2s_core.retry``, which imports this module: it
    registers itself here instead of this module importing it back.
    """
    global _retry_rule
    _retry_rule = rule


class InvalidSetup(S2SError, ValueError):
    """A setup field has a value the protocol does not allow.

    Attributes:
        field: Name of the offending field.
        value: The rejected value.
        allowed: What would have been accepted.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"setup field {field!r}: {value!r} is not allowed; expected {allowed}")
        self.field = field
        self.value = value
        self.allowed = allowed


class InvalidAudio(S2SError, ValueError):
    """Audio given to us cannot be used as is (dtype, shape, length, header)."""


class LocalProtocolError(S2SError):
    """This side misused the protocol (e.g. audio before setup); state unchanged."""


class InvalidHeader(LocalProtocolError, ValueError):
    """An upgrade header from ``extra_headers`` cannot be sent as given.

    Attributes:
        name: The header name as given.
    """

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"upgrade header {name}: {problem}")
        self.name = name


class InvalidURL(S2SError, ValueError):
    """A URL (or base URL) cannot be used to reach the S2S service.

    Attributes:
        url: The URL as it was given, a password in it masked (``user:***@``).
    """

    def __init__(self, url: str, problem: str) -> None:
        shown = _mask_password(url)
        super().__init__(f"invalid URL {shown!r}: {problem}")
        self.url = shown


def _mask_password(url: str) -> str:
    """``url`` with the password of its user info (``user:PASS@``) shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}{slash}{path}"


class RemoteProtocolError(S2SError):
    """The peer broke the protocol (bad JSON, bad frame, bad order).

    Attributes:
        close_code: The WebSocket close code sent to the peer because of it.
    """

    def __init__(self, message: str, *, close_code: int = 1002) -> None:
        super().__init__(message)
        self.close_code = close_code


class MessageTooBig(RemoteProtocolError):
    """The peer sent a message (or handshake) above the configured limit."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} of {size} bytes exceeds the limit of {limit} bytes",
                         close_code=1009)
        self.size = size
        self.limit = limit


class ServerError(S2SError):
    """The server sent an ``error`` message.

    Attributes:
        code: The protocol error code (1002, 1008, 1011) or None.
        message: The server's text.
        request_id: The request id from ``ready``, when one was received.
        client_req_id: The multiplexing id the error was scoped to, if any.
    """

    def __init__(
        self,
        message: str,
        code: int | None = None,
        *,
        request_id: str | None = None,
        client_req_id: str | None = None,
    ) -> None:
        super().__init__(f"server error {code}: {message}" if code is not None
                         else f"server error: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id
        self.client_req_id = client_req_id


class ProtocolViolation(ServerError):
    """Error 1002: the server saw a protocol error (a client bug; do not retry)."""


class PolicyViolation(ServerError):
    """Error 1008: bad credentials or a bad request (fix it; do not retry)."""


class InternalServerError(ServerError):
    """Error 1011: the server failed; retry on a new connection with backoff."""


_SERVER_ERRORS: dict[int, type[ServerError]] = {
    1002: ProtocolViolation,
    1008: PolicyViolation,
    1011: InternalServerError,
}


def server_error_for(
    message: str,
    code: int | None,
    *,
    request_id: str | None = None,
    client_req_id: str | None = None,
) -> ServerError:
    """Build the ``ServerError`` subclass that matches ``code``."""
    cls = _SERVER_ERRORS.get(code, ServerError) if code is not None else ServerError
    return cls(message, code, request_id=request_id, client_req_id=client_req_id)


class ConnectionClosedError(S2SError):
    """The connection closed before the request ended (never a normal end).

    Attributes:
        code: The close code received (1006 when no close frame arrived).
        reason: The close reason received.
    """

    def __init__(self, code: int, reason: str = "", detail: str | None = None) -> None:
        text = f"connection closed with code {code}"
        if reason:
            text += f" ({reason})"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.code = code
        self.reason = reason


class ConnectError(S2SError, ConnectionError):
    """The transport could not be opened (refused, unreachable, TLS verification)."""


class HandshakeRejected(S2SError):
    """The server (or a proxy) refused the WebSocket upgrade with an HTTP response.

    Redirects are not followed (the official SDK does not either); the message
    names the status, the ``Location`` of a redirect, the scheme a 401/403 asks
    for, the ``Retry-After`` of a 429/503, and an excerpt of the body.

    Attributes:
        status: The HTTP status code.
        headers: The response headers (names lowercased, as h11 gives them).
        body: The response body (possibly truncated at the handshake limit).
        reason: The status line's reason phrase ("" when the server sent none).
        location: The ``Location`` header (where a redirect points), or None.
        retry_after: Seconds to wait from ``Retry-After`` (delta-seconds, or an
            HTTP-date measured from the response's ``Date``), or None.
    """

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes,
                 *, reason: str = "") -> None:
        self.status = status
        self.headers = list(headers)
        self.body = body
        self.reason = reason
        self.location = header_value(self.headers, "location")
        retry = header_value(self.headers, "retry-after")
        self.retry_after = (None if retry is None else
                            parse_retry_after(retry, header_value(self.headers, "date")))
        super().__init__(refusal_message(status, reason, self.headers, body, self.retry_after))


class S2STimeoutError(S2SError, TimeoutError):
    """Root of the timeouts; also a builtin ``TimeoutError``."""


class ConnectTimeout(S2STimeoutError):
    """Opening the socket, TLS or the WebSocket upgrade took too long."""


class ReadyTimeout(S2STimeoutError):
    """The server did not send ``ready`` in time."""


class IdleTimeout(S2STimeoutError):
    """Nothing arrived from the server for too long."""


class CloseTimeout(S2STimeoutError):
    """The peer did not complete the closing handshake in time."""


class KeepaliveTimeout(S2STimeoutError):
    """A keepalive ping got no pong in time."""


class MissingCredentials(S2SError, ValueError):
    """Neither an API key nor a token was given (nor GRADIUM_API_KEY set)."""
