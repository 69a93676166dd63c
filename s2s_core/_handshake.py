"""The WebSocket opening handshake (RFC 6455 section 4), both roles, over wsproto.

wsproto's ``H11Handshake`` reads and writes the HTTP/1.1 upgrade. This module
bounds what it is fed (``max_size`` for the head and for a rejection's body),
turns its exceptions and events into three outcomes (``Accepted``, an
``UpgradeRequest``, or ``Failed``), and never shows the API key or the token
in a repr. ``ClientConnection`` and ``ServerConnection`` each own one
handshake until the upgrade is over; the frames that follow are ``_frames``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h11
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError as WsprotoRemoteError

from ._headers import upgrade_headers
from ._version import __version__
from .errors import (
    ConnectionClosedError,
    HandshakeRejected,
    MessageTooBig,
    RemoteProtocolError,
    S2SError,
)
from .urls import WebSocketTarget

__all__ = ["USER_AGENT", "Accepted", "ClientHandshake", "Failed", "HttpRequest",
           "ServerHandshake", "UpgradeRequest"]

USER_AGENT = f"s2s-core/{__version__}"
_HEAD_END = b"\r\n\r\n"
# What wsproto/h11 may raise on a malformed peer handshake: not only their
# protocol errors (a non-ASCII Host header raises UnicodeDecodeError, say).
_HANDSHAKE_ERRORS = (WsprotoRemoteError, h11.RemoteProtocolError, ValueError, LookupError)
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@dataclass(frozen=True)
class Accepted:
    """(Client role) the server accepted the upgrade.

    Attributes:
        rest: The bytes that followed the response head (the first frames).
    """

    rest: bytes


@dataclass(frozen=True)
class Failed:
    """The handshake failed: the connection ends with ``error``.

    Attributes:
        error: Why (``Closed.error`` of the connection).
        answer: Bytes to send before closing (an HTTP error response), maybe empty.
    """

    error: S2SError
    answer: bytes = b""


class UpgradeRequest:
    """(Server role) the client's upgrade request, to accept or reject."""

    __slots__ = ("headers", "target")

    def __init__(self, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.target = target
        self.headers = headers

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        return _header(self.headers, name)

    def __repr__(self) -> str:
        path = self.target.split("?")[0]
        return f"UpgradeRequest(path={path!r})"  # never show the token or the key


class HttpRequest:
    """(Server role) a plain HTTP request (no ``Upgrade``), to answer with ``respond``.

    The service answers its REST routes on the same host and port as the
    WebSocket; so does the local server.
    """

    __slots__ = ("headers", "method", "target")

    def __init__(self, method: str, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method
        self.target = target
        self.headers = headers

    def header(self, name: str) -> str | None:
        """The first value of a header (case-insensitive), or None."""
        return _header(self.headers, name)

    def __repr__(self) -> str:
        path = self.target.split("?")[0]
        return f"HttpRequest({self.method} {path!r})"  # never show the query or the key


def _header(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    key = name.lower().encode()
    for k, v in headers:
        if k.lower() == key:
            return v.decode("latin-1")
    return None


class _HeadBuffer:
    """The bytes of an HTTP head, up to its blank line, within a size limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()

    def take(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Add ``data``; once the head is whole, the head and the bytes after it.

        Raises:
            MessageTooBig: The head is longer than the limit.
        """
        self._data += data
        end = self._data.find(_HEAD_END)
        if end < 0:
            if len(self._data) > self.limit:
                raise MessageTooBig("HTTP handshake", len(self._data), self.limit)
            return None
        end += len(_HEAD_END)
        if end > self.limit:
            raise MessageTooBig("HTTP handshake", end, self.limit)
        head, rest = bytes(self._data[:end]), bytes(self._data[end:])
        self._data = bytearray()
        return head, rest


class ClientHandshake:
    """The client's upgrade: the request to send, then the server's answer read.

    A refusal is reported the moment its last byte arrives, whatever shape
    HTTP/1.1 gives its body (Content-Length 0 or N, chunked, none for 204
    and 304, or until EOF); interim 1xx responses before the final one are
    skipped (RFC 9110 section 15.2).

    Args:
        target: Where to connect (host header, path and query).
        api_key: Sent as the ``x-api-key`` header.
        extra_headers: More request headers; one named like ours replaces it.
        max_size: Largest response head, and largest rejection body kept.

    Attributes:
        request: The bytes of the upgrade request, to send first.

    Raises:
        InvalidHeader: An extra header cannot be sent (see ``upgrade_headers``).
    """

    def __init__(self, target: WebSocketTarget, *, api_key: str | None,
                 extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
                 max_size: int) -> None:
        self._h11 = H11Handshake(ConnectionType.CLIENT)
        self._head = _HeadBuffer(max_size)
        self._rejection: HandshakeRejected | None = None
        self._rejection_body = bytearray()
        ours = [("user-agent", USER_AGENT), ("x-api-source", USER_AGENT)]
        if api_key is not None:
            ours.append(("x-api-key", api_key))
        host, headers = upgrade_headers(ours, extra_headers)
        self.request = self._h11.send(Request(
            host=host or target.host_header, target=target.target, extra_headers=headers))

    def receive_data(self, data: bytes) -> Accepted | Failed | None:
        """Bytes of the server's answer; None while more are needed."""
        if self._rejection is not None:
            return self._receive_rejection_body(data)
        while True:
            try:
                taken = self._head.take(data)
            except MessageTooBig as exc:
                return Failed(exc)
            if taken is None:
                return None
            head, data = taken
            events = self._events(head)
            if isinstance(events, Failed):
                return events
            for event in events:
                if isinstance(event, AcceptConnection):
                    return Accepted(data)
                if isinstance(event, RejectConnection):
                    if event.status_code < 200:
                        continue  # interim (100, 103...): the final response follows
                    self._rejection = HandshakeRejected(event.status_code, event.headers, b"",
                                                        reason=_reason_phrase(head))
                elif isinstance(event, RejectData):
                    done = self._take_rejection_data(event)
                    if done is not None:
                        return done
            if self._rejection is not None:
                # Not ended with the head alone (as an empty body, a 204 or a
                # 304 is): what follows the head is the start of the body.
                return self._receive_rejection_body(data)
            # An interim response: the next head may already be in ``data``.

    def eof(self) -> Failed:
        """The transport ended during the upgrade: what that means."""
        if self._rejection is not None:
            return self._rejected()
        return Failed(ConnectionClosedError(
            1006, "", "the server closed the connection during the WebSocket upgrade"))

    def _events(self, data: bytes) -> list[object] | Failed:
        """wsproto's events for ``data``, or the failure a malformed answer is."""
        try:
            self._h11.receive_data(data)
            return list(self._h11.events())
        except _HANDSHAKE_ERRORS as exc:
            if self._rejection is not None:
                return self._rejected()  # a malformed body still leaves the refusal
            return Failed(RemoteProtocolError(f"invalid upgrade response: {exc!r}"))

    def _receive_rejection_body(self, data: bytes) -> Failed | None:
        if not data:
            return None  # h11 reads b"" as end of file; the body may still come
        events = self._events(data)
        if isinstance(events, Failed):
            return events
        for event in events:
            if isinstance(event, RejectData):
                done = self._take_rejection_data(event)
                if done is not None:
                    return done
        if len(self._rejection_body) >= self._head.limit:
            return self._rejected()
        return None

    def _take_rejection_data(self, event: RejectData) -> Failed | None:
        """Keep a piece of the refusal's body; the failure once it is whole."""
        room = self._head.limit - len(self._rejection_body)
        self._rejection_body += event.data[:max(room, 0)]
        return self._rejected() if event.body_finished else None

    def _rejected(self) -> Failed:
        assert self._rejection is not None
        return Failed(HandshakeRejected(self._rejection.status, self._rejection.headers,
                                        bytes(self._rejection_body),
                                        reason=self._rejection.reason))


def _reason_phrase(head: bytes) -> str:
    """The reason phrase of an HTTP status line (wsproto does not keep it)."""
    line = head.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    return parts[2].decode("latin-1").strip() if len(parts) == 3 else ""


class ServerHandshake:
    """The server's upgrade: the client's request read, then accepted or rejected.

    Args:
        max_size: Largest request head.

    Attributes:
        request: The client's request once read, else None.
    """

    def __init__(self, *, max_size: int) -> None:
        self._h11 = H11Handshake(ConnectionType.SERVER)
        self._head = _HeadBuffer(max_size)
        self._rest = b""
        self._plain: h11.Connection | None = None
        self.request: UpgradeRequest | None = None
        self.http_request: HttpRequest | None = None

    def receive_data(self, data: bytes) -> UpgradeRequest | HttpRequest | Failed | None:
        """Bytes from the client; the request once whole (later bytes wait for ``accept``).

        A request without ``Upgrade`` (a REST call) comes out as an
        ``HttpRequest``, to answer with ``respond``.
        """
        if self.request is not None:
            self._rest += data
            return None
        if self.http_request is not None:
            return None  # a plain request's body: the answer does not depend on it
        try:
            taken = self._head.take(data)
        except MessageTooBig as exc:
            return Failed(exc)
        if taken is None:
            return None
        head, self._rest = taken
        try:
            self._h11.receive_data(head)
            events = list(self._h11.events())
        except _HANDSHAKE_ERRORS as exc:
            plain = self._plain_request(head)
            if plain is not None:
                return plain
            return Failed(RemoteProtocolError(f"invalid upgrade request: {exc}"), _BAD_REQUEST)
        for event in events:
            if isinstance(event, Request):
                self.request = UpgradeRequest(
                    event.target, [(k.encode() if isinstance(k, str) else k,
                                    v.encode() if isinstance(v, str) else v)
                                   for k, v in event.extra_headers])
                return self.request
        return None

    def accept(self) -> tuple[bytes, bytes]:
        """The response that completes the upgrade, and the client bytes that followed."""
        response = self._h11.send(AcceptConnection(
            extra_headers=[(b"server", USER_AGENT.encode())]))
        rest, self._rest = self._rest, b""
        return response, rest

    def reject(self, status: int, body: bytes,
               headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
        """The HTTP response that refuses the upgrade with ``status`` (and ``headers``)."""
        head = self._h11.send(RejectConnection(
            status_code=status,
            headers=[(b"content-length", str(len(body)).encode()), *headers],
            has_body=True))
        return head + self._h11.send(RejectData(data=body, body_finished=True))

    def _plain_request(self, head: bytes) -> HttpRequest | None:
        """``head`` read as a request without ``Upgrade``, or None.

        Only tried once wsproto refused the head, so upgrades pay nothing for it.
        """
        parser = h11.Connection(h11.SERVER)
        try:
            parser.receive_data(head)
            event = parser.next_event()
        except h11.RemoteProtocolError:
            return None
        if not isinstance(event, h11.Request) or any(k == b"upgrade" for k, _ in event.headers):
            return None
        self._plain = parser
        self.http_request = HttpRequest(event.method.decode("ascii"),
                                        event.target.decode("ascii", "replace"),
                                        list(event.headers))
        return self.http_request

    def respond(self, status: int, body: bytes, *, content_type: str) -> bytes | None:
        """The answer to the ``HttpRequest`` (``connection: close``), or None if none waits."""
        if self._plain is None:
            return None
        parser, self._plain = self._plain, None
        head_only = self.http_request is not None and self.http_request.method == "HEAD"
        headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), (b"server", USER_AGENT.encode())]
        out = parser.send(h11.Response(status_code=status, headers=headers)) or b""
        if body and not head_only:
            out += parser.send(h11.Data(data=body)) or b""
        return out + (parser.send(h11.EndOfMessage()) or b"")
