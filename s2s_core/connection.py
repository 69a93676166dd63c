"""Byte-level connections: WebSocket (wsproto handshake + our frame codec) + S2S.

``ClientConnection`` and ``ServerConnection`` take bytes and calls in, and
give bytes to send, events, and the next deadline out. Nothing here reads a
clock: every input takes an optional ``now`` (the caller's monotonic time),
and timers fire only through ``handle_timer(now)``. The receive path never
raises for a peer fault: the fault ends the connection as a ``Closed`` event
after every event that came before it.
"""

from __future__ import annotations

import abc
import enum
import os
from collections.abc import Mapping, Sequence
from typing import Any

from . import options
from ._frames import FrameReader, FrameWriter, Opcode, parse_close_payload
from ._handshake import (
    USER_AGENT,
    Accepted,
    ClientHandshake,
    HttpRequest,
    ServerHandshake,
    UpgradeRequest,
)
from .errors import (
    CloseTimeout,
    ConnectionClosedError,
    IdleTimeout,
    KeepaliveTimeout,
    LocalProtocolError,
    ReadyTimeout,
    RemoteProtocolError,
    S2SError,
)
from .events import (
    Closed,
    Event,
    Ready,
    ServerSideEvent,
)
from .protocol import AudioInput, ClientProtocol, ProtocolState, ServerProtocol
from .setup import Setup
from .urls import parse_ws_url

__all__ = [
    "ClientConnection",
    "ServerConnection",
    "ConnectionState",
    "UpgradeRequest",
    "HttpRequest",
    "USER_AGENT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_HANDSHAKE_SIZE",
]

DEFAULT_MAX_MESSAGE_SIZE = options.MAX_MESSAGE_SIZE
DEFAULT_MAX_HANDSHAKE_SIZE = options.MAX_HANDSHAKE_SIZE
# Text messages this short are never audio: they skip the audio shortcut.
_SMALL_MESSAGE = 512


class ConnectionState(enum.Enum):
    """Where the WebSocket is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


# Enum members bound once: on CPython 3.11 each ``Enum.MEMBER`` lookup costs
# about 0.2 us, and the per-message paths below do several.
_OPEN = ConnectionState.OPEN
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_TEXT = Opcode.TEXT
_PING = Opcode.PING
_PONG = Opcode.PONG
_CLOSE = Opcode.CLOSE


class _Base(abc.ABC):
    """What both roles share: outbox, events, frames, close and ping logic."""

    def __init__(self, *, mask: bool, max_message_size: int | None,
                 ping_interval: float | None,
                 ping_timeout: float | None, close_timeout: float | None,
                 now: float) -> None:
        self.state = ConnectionState.CONNECTING
        self._now = now
        self.started_at = now
        """The caller's time at construction (the start of the connect)."""
        self.opened_at: float | None = None
        """The caller's time of the input that completed the upgrade."""
        self._outbox: list[bytes] = []
        self._events: list[Any] = []
        self._writer = FrameWriter(mask=mask)
        self._reader = FrameReader(expect_masked=not mask, max_message_size=max_message_size)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._next_ping: float | None = None
        self._pong_deadline: float | None = None
        self._ping_payload: bytes | None = None
        self._close_deadline: float | None = None
        self._close_sent: tuple[int, str] | None = None
        self._reading_paused = False
        self._drain_deadline: float | None = None
        self._write_error: BaseException | None = None
        self.closed_event: Closed | None = None

    @property
    def now(self) -> float:
        """The latest time the caller passed in (with any input, or at construction)."""
        return self._now

    @property
    def close_timeout(self) -> float | None:
        """Seconds the closing handshake may take (None: no limit)."""
        return self._close_timeout

    # -- outputs --

    @property
    def has_data_to_send(self) -> bool:
        """True when ``data_to_send()`` would return bytes."""
        return bool(self._outbox)

    def data_to_send(self) -> bytes:
        """Bytes to write to the transport now (empty when nothing is due)."""
        if not self._outbox:
            return b""
        data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
        self._outbox.clear()
        return data

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        deadlines = [d for d in self._deadlines() if d is not None]
        return min(deadlines) if deadlines else None

    def _deadlines(self) -> list[float | None]:
        pong = None if self._reading_paused else self._pong_deadline
        return [self._next_ping, pong, self._close_deadline, self._drain_deadline]

    # -- inputs shared by both roles --

    def receive_eof(self, *, now: float | None = None) -> None:
        """The transport has no more data (the peer closed its side)."""
        self._tick(now)
        if self.state is _CLOSED:
            return
        if self.state is ConnectionState.CONNECTING:
            self._eof_during_handshake()
            return
        if self._close_sent is not None and self.state is _CLOSING:
            self._finish(1006, "", CloseTimeout("the peer closed the transport without "
                                                "answering our close frame"))
            return
        self._finish(1006, "", ConnectionClosedError(
            1006, "", "the transport ended without a WebSocket close frame"))

    def transport_failed(self, exc: BaseException, *, now: float | None = None) -> None:
        """The transport broke (reset, TLS error, cancelled write)."""
        self._tick(now)
        if self.state is _CLOSED:
            return
        error = ConnectionClosedError(1006, "", f"transport failed: {exc!r}")
        error.__cause__ = exc
        self._finish(1006, "", error)

    def pause_reading(self, *, now: float | None = None) -> None:
        """The caller stopped reading the transport (its consumer is behind).

        Nothing the peer sends, pongs included, can arrive meanwhile: that is
        our backpressure, not a dead link, so the pong and idle timers are
        suspended until ``resume_reading``. Pings still go out.
        """
        self._tick(now)
        self._reading_paused = True

    def resume_reading(self, *, now: float | None = None) -> None:
        """The caller reads again: suspended timers restart from ``now``."""
        self._tick(now)
        if not self._reading_paused:
            return
        self._reading_paused = False
        self._heard_from_peer()

    def write_failed(self, exc: BaseException, *, now: float | None = None) -> None:
        """A write to the transport failed; the read side may still hold data.

        The peer's last messages (an error that explains the failure) are
        often still unread: the connection stays up for the reader to drain
        them until ``DRAIN_AFTER_WRITE_FAILURE_S``, then fails with ``exc``.
        """
        self._tick(now)
        if self.state is _CLOSED or self._write_error is not None:
            return
        self._write_error = exc
        self._drain_deadline = self._now + options.DRAIN_AFTER_WRITE_FAILURE_S

    def handle_timer(self, now: float) -> None:
        """Run every timer whose deadline is at or before ``now``."""
        self._now = now
        if self.state is _CLOSED:
            return
        if self._drain_deadline is not None and now >= self._drain_deadline:
            assert self._write_error is not None
            self.transport_failed(self._write_error, now=now)
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._finish(1006, "", CloseTimeout("the peer did not answer our close frame in time"))
            return
        if (self._pong_deadline is not None and now >= self._pong_deadline
                and not self._reading_paused):
            self._fail(KeepaliveTimeout("no pong to our keepalive ping in time"), 1011,
                       "keepalive ping timeout")
            return
        ping_due = self._next_ping is not None and now >= self._next_ping
        if ping_due and self.state is _OPEN:
            self._send_ping(now)
        self._role_timers(now)

    def close(self, code: int = 1000, reason: str = "", *, now: float | None = None) -> None:
        """Start the closing handshake (no-op once closing or closed)."""
        self._tick(now)
        if self.state in (_CLOSING, _CLOSED):
            return
        if self.state is ConnectionState.CONNECTING:
            self._finish(code, reason, None)
            return
        self._start_close(code, reason)

    # -- internals --

    def _tick(self, now: float | None) -> None:
        if now is not None:
            self._now = now

    def _heard_from_peer(self) -> None:
        """Bytes arrived: the link is alive, whether or not a pong came yet."""
        if self._pong_deadline is not None and self._ping_timeout is not None:
            self._pong_deadline = self._now + self._ping_timeout

    def _open(self, rest: bytes) -> None:
        self.state = _OPEN
        self.opened_at = self._now
        if self._ping_interval is not None:
            self._next_ping = self._now + self._ping_interval
        self._on_open()
        if rest:
            self._receive_frames(rest)

    def _on_open(self) -> None:  # noqa: B027 - optional hook
        """Hook for the roles."""

    def _send_ping(self, now: float) -> None:
        self._ping_payload = os.urandom(4)
        self._outbox.append(self._writer.frame(_PING, self._ping_payload))
        assert self._ping_interval is not None
        self._next_ping = now + self._ping_interval
        if self._ping_timeout is not None and self._pong_deadline is None:
            self._pong_deadline = now + self._ping_timeout

    def _receive_frames(self, data: bytes) -> None:
        reader = self._reader
        for opcode, payload in reader.feed(data):
            if self.state is _CLOSED:
                return
            if opcode is _TEXT:
                self._on_text(payload)
            elif opcode is _PING:
                if self.state is _OPEN:
                    self._outbox.append(self._writer.frame(_PONG, payload))
            elif opcode is _PONG:
                if payload == self._ping_payload:
                    self._pong_deadline = None
                    self._ping_payload = None
            elif opcode is _CLOSE:
                self._on_close_frame(payload)
            else:
                self._fail(RemoteProtocolError(
                    "peer sent a binary message; the S2S protocol uses text messages only",
                    close_code=1003), 1003, "binary messages are not supported")
        if reader.error is not None and self.state is not _CLOSED:
            error = reader.error
            self._fail(error, error.close_code, _close_reason(error))

    def _on_close_frame(self, payload: bytes) -> None:
        try:
            code, reason = parse_close_payload(payload)
        except RemoteProtocolError as exc:
            self._fail(exc, exc.close_code, "invalid close frame")
            return
        if self._close_sent is None:
            # Echo the peer's code, as RFC 6455 asks (an empty close for 1005).
            echo = None if code == 1005 else code
            self._outbox.append(self._writer.close_frame(echo, ""))
            self._close_sent = (code, "")
            self._finish(code, reason, self._closed_error(code, reason))
        else:
            self._finish(code, reason, self._closed_error(code, reason, initiated=True))

    def _start_close(self, code: int, reason: str) -> None:
        self._outbox.append(self._writer.close_frame(code, reason))
        self._close_sent = (code, reason)
        self.state = _CLOSING
        self._next_ping = self._pong_deadline = None
        if self._close_timeout is not None:
            self._close_deadline = self._now + self._close_timeout

    def _fail(self, error: S2SError, code: int, reason: str) -> None:
        """End the connection because of ``error``: queue a close, emit Closed."""
        open_ = self.state in (_OPEN, _CLOSING)
        if open_ and self._close_sent is None:
            self._outbox.append(self._writer.close_frame(code, reason))
            self._close_sent = (code, reason)
        self._finish(code, reason, error)

    def _finish(self, code: int, reason: str, error: S2SError | None) -> None:
        if self.state is _CLOSED:
            return
        self.state = _CLOSED
        self._next_ping = self._pong_deadline = self._close_deadline = None
        self._drain_deadline = None
        self._role_closed()
        self.closed_event = Closed(code=code, reason=reason, error=error)
        self._events.append(self.closed_event)

    def _role_closed(self) -> None:  # noqa: B027 - optional hook
        """Hook for the roles (clear their timers)."""

    def _role_timers(self, now: float) -> None:  # noqa: B027 - optional hook
        """Hook for the roles."""

    @abc.abstractmethod
    def _closed_error(self, code: int, reason: str, *, initiated: bool = False) -> S2SError | None:
        """Hook: each role decides what a close means."""

    @abc.abstractmethod
    def _on_text(self, payload: bytes) -> None:
        """Hook: each role decodes its peer's messages."""

    @abc.abstractmethod
    def _eof_during_handshake(self) -> None:
        """Hook: each role knows what an early EOF means."""


def _close_reason(error: S2SError) -> str:
    text = str(error)
    return text if len(text.encode()) <= 120 else text[:60]


class ClientConnection(_Base):
    """The client's side of one S2S WebSocket connection, as a state machine.

    Feed it what the transport reads (``receive_data``, ``receive_eof``,
    ``transport_failed``), call ``handle_timer`` at ``next_deadline()``, and
    after EVERY call write ``data_to_send()`` and process
    ``events_received()``. The upgrade request is ready to send at once.

    Args:
        url: ``ws://`` or ``wss://`` URL of the S2S endpoint.
        api_key: Sent as the ``x-api-key`` header.
        token: Single-use token, sent as ``?token=``.
        extra_headers: More upgrade headers. One named like ours (``Host``,
            ``User-Agent``, ``x-api-source``, ``x-api-key``; case-insensitive)
            replaces ours. ``Host`` changes only the header: the TCP peer is
            the URL's host, and the TLS server name is the transport's
            (``parse_ws_url(url, server_hostname=...).tls_server_name``).
        max_message_size: Largest message accepted (close 1009 above it).
        max_handshake_size: Largest HTTP response head accepted.
        ping_interval: Seconds between keepalive pings (None: off).
        ping_timeout: Seconds to wait for a pong (None: forever).
        ready_timeout: Seconds from a setup to its ``ready`` (None: forever).
        idle_timeout: Seconds without any message while a request is live.
        close_timeout: Seconds to wait for the peer's close frame.
        now: The caller's current time, the origin of every deadline.

    Raises:
        InvalidURL: ``url`` is not a ws/wss/http/https URL with a host.
        InvalidHeader: An extra header cannot be sent (``Upgrade``,
            ``Connection``, ``Sec-WebSocket-*``, ``Content-Length``,
            ``Transfer-Encoding``, a bad name or value).
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
        ping_interval: float | None = options.PING_INTERVAL_S,
        ping_timeout: float | None = options.PING_TIMEOUT_S,
        ready_timeout: float | None = options.READY_TIMEOUT_S,
        idle_timeout: float | None = options.IDLE_TIMEOUT_S,
        close_timeout: float | None = options.CLOSE_TIMEOUT_S,
        now: float = 0.0,
    ) -> None:
        super().__init__(mask=True, max_message_size=max_message_size,
                         ping_interval=ping_interval, ping_timeout=ping_timeout,
                         close_timeout=close_timeout, now=now)
        self.protocol = ClientProtocol()
        self.target = parse_ws_url(url, token=token)
        self._ready_timeout = ready_timeout
        self._idle_timeout = idle_timeout
        self._ready_deadlines: dict[str | None, float] = {}
        self._idle_deadline: float | None = None
        self._paused_at = now
        self._pending: list[bytes] = []
        handshake = ClientHandshake(self.target, api_key=api_key,
                                    extra_headers=extra_headers, max_size=max_handshake_size)
        # Dropped once the upgrade is answered: a few KiB per open connection.
        self._handshake: ClientHandshake | None = handshake
        self._outbox.append(handshake.request)

    def __repr__(self) -> str:
        path = self.target.target.split("?")[0]  # never show a token
        return f"<ClientConnection {self.target.host_header}{path} {self.state.value}>"

    # -- application calls --

    def send_setup(self, setup: Setup | Mapping[str, Any], *, now: float | None = None) -> None:
        """Start a request (may be called before the upgrade completes)."""
        self._tick(now)
        self._check_can_send("setup")
        if not isinstance(setup, Setup):
            setup = Setup.from_mapping(setup)
        message = self.protocol._encode_setup(setup)
        if self._ready_timeout is not None:
            self._ready_deadlines[setup.client_req_id] = self._now + self._ready_timeout
        self._arm_idle()
        self._send_text(message)

    def send_audio(self, audio: AudioInput, client_req_id: str | None = None, *,
                   now: float | None = None, downmix: bool = False) -> None:
        """Send one chunk of input audio (``downmix``: see ``ClientProtocol.send_audio``)."""
        if now is not None:
            self._now = now
        if self.state is _OPEN:
            head, body, tail = self.protocol._encode_audio_parts(audio, client_req_id,
                                                                 downmix=downmix)
            self._outbox.append(self._writer.text_frame(head, body, tail))
            return
        self._check_can_send("audio")
        self._pending.append(self.protocol._encode_audio(audio, client_req_id, downmix=downmix))

    def send_end_of_stream(self, client_req_id: str | None = None, *,
                           now: float | None = None) -> None:
        """End a request's input (unscoped with none live: ask the server to close)."""
        self._tick(now)
        self._check_can_send("end_of_stream")
        self._send_text(self.protocol._encode_end_of_stream(client_req_id))

    def receive_data(self, data: bytes, *, now: float | None = None) -> None:
        """Bytes read from the transport; never raises for a peer fault."""
        if now is not None:
            self._now = now
        if not data or self.state is _CLOSED:
            return
        if self.state is ConnectionState.CONNECTING:
            self._receive_handshake(data)
            return
        self._heard_from_peer()
        if self.state is _OPEN and type(data) is bytes and self._receive_audio_frame(data):
            return
        self._receive_frames(data)

    def _receive_audio_frame(self, data: bytes) -> bool:
        """Take ``data`` in one step if it is one audio message of a streaming request.

        What ``_receive_frames`` does with such a frame, without the per-frame loop
        and the UTF-8 pass over the payload: ``_receive_audio_at`` returns an event
        only for a message it proved valid UTF-8. False, with nothing changed,
        for anything else.
        """
        start = self._reader.text_payload_start(data)
        if start < 0 or len(data) - start <= _SMALL_MESSAGE:
            return False
        event = self.protocol._receive_audio_at(data, start)
        if event is None:
            return False
        self._events.append(event)
        return True

    def events_received(self) -> list[Event]:
        """Events produced since the last call, in order (``Closed`` last)."""
        events, self._events = self._events, []
        return events

    # -- internals --

    def _check_can_send(self, what: str) -> None:
        if self.state in (_CLOSING, _CLOSED):
            error = self.closed_event.error if self.closed_event is not None else None
            raise LocalProtocolError(
                f"cannot send {what}: the connection is {self.state.value}"
                + (f" ({error})" if error is not None else ""))

    def _send_text(self, message: bytes) -> None:
        if self.state is _OPEN:
            self._outbox.append(self._writer.frame(_TEXT, message))
        else:
            self._pending.append(message)

    def _arm_idle(self) -> None:
        if self._idle_timeout is not None:
            self._idle_deadline = self._now + self._idle_timeout

    def _heard_from_peer(self) -> None:
        super()._heard_from_peer()
        self._arm_idle()

    def pause_reading(self, *, now: float | None = None) -> None:
        """As for the base class; ready timeouts are suspended too."""
        if not self._reading_paused:
            self._tick(now)
            self._paused_at = self._now
        super().pause_reading(now=now)

    def resume_reading(self, *, now: float | None = None) -> None:
        """As for the base class; ready deadlines move by the time spent paused."""
        self._tick(now)
        if self._reading_paused:
            shift = self._now - self._paused_at
            for rid in self._ready_deadlines:
                self._ready_deadlines[rid] += shift
        super().resume_reading(now=now)

    def _deadlines(self) -> list[float | None]:
        deadlines = super()._deadlines()
        if self._ready_deadlines and not self._reading_paused:
            deadlines.append(min(self._ready_deadlines.values()))
        if (self._idle_deadline is not None and self.protocol.state is ProtocolState.ACTIVE
                and not self._reading_paused):
            deadlines.append(self._idle_deadline)
        return deadlines

    def _role_timers(self, now: float) -> None:
        if self._reading_paused:
            return  # nothing can arrive while we do not read: not the server's delay
        for rid, deadline in list(self._ready_deadlines.items()):
            if now >= deadline:
                which = f" for client_req_id {rid!r}" if rid is not None else ""
                self._fail(ReadyTimeout(f"no ready from the server{which} within "
                                        f"{self._ready_timeout} s"), 1000, "ready timeout")
                return
        if (self._idle_deadline is not None and now >= self._idle_deadline
                and self.protocol.state is ProtocolState.ACTIVE and not self._reading_paused):
            self._fail(IdleTimeout(f"nothing received from the server for "
                                   f"{self._idle_timeout} s"), 1000, "idle timeout")

    def _role_closed(self) -> None:
        self._ready_deadlines.clear()
        self._idle_deadline = None
        self._pending.clear()

    def _on_open(self) -> None:
        for message in self._pending:
            self._outbox.append(self._writer.frame(_TEXT, message))
        self._pending.clear()

    def _on_text(self, payload: bytes) -> None:
        try:
            events = self.protocol.receive_message(payload)
        except RemoteProtocolError as exc:
            self._fail(exc, exc.close_code, _close_reason(exc))
            return
        for event in events:
            if type(event) is Ready:
                self._ready_deadlines.pop(event.client_req_id, None)
                if event.client_req_id is None and len(self._ready_deadlines) == 1:
                    self._ready_deadlines.clear()
            self._events.append(event)

    def _closed_error(self, code: int, reason: str, *, initiated: bool = False) -> S2SError | None:
        if initiated:
            return None  # we asked for the close; the adapter knows why
        if code in (1000, 1001, 1005) and self.protocol.state is not ProtocolState.ACTIVE:
            return None
        detail = None if code != 1000 else "the server closed before the request ended"
        return ConnectionClosedError(code, reason, detail)

    def _receive_handshake(self, data: bytes) -> None:
        assert self._handshake is not None  # only while CONNECTING
        outcome = self._handshake.receive_data(data)
        if isinstance(outcome, Accepted):
            self._handshake = None
            self._open(outcome.rest)
        elif outcome is not None:
            self._finish(1006, "", outcome.error)

    def _eof_during_handshake(self) -> None:
        assert self._handshake is not None  # only while CONNECTING
        self._finish(1006, "", self._handshake.eof().error)


class ServerConnection(_Base):
    """The server's side of one S2S WebSocket connection, as a state machine.

    The first event is an ``UpgradeRequest``: answer it with ``accept()`` or
    ``reject(status, body)``. A request without ``Upgrade`` (a REST call) is
    no event: it sets ``http_request``, to answer with ``respond()``. Client
    messages then arrive as events; a client that breaks the protocol gets an
    ``error`` message with the code (1002, or 1008 for a bad setup) and a
    close with the same code.
    """

    def __init__(self, *, max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
                 max_handshake_size: int = DEFAULT_MAX_HANDSHAKE_SIZE,
                 ping_interval: float | None = None, ping_timeout: float | None = 20.0,
                 close_timeout: float | None = 5.0, now: float = 0.0) -> None:
        super().__init__(mask=False, max_message_size=max_message_size,
                         ping_interval=ping_interval, ping_timeout=ping_timeout,
                         close_timeout=close_timeout, now=now)
        self.protocol = ServerProtocol()
        self._handshake = ServerHandshake(max_size=max_handshake_size)
        self._fault: RemoteProtocolError | None = None

    @property
    def request(self) -> UpgradeRequest | None:
        """The client's upgrade request, once received."""
        return self._handshake.request

    def receive_data(self, data: bytes, *, now: float | None = None) -> None:
        """Bytes read from the transport; never raises for a peer fault."""
        self._tick(now)
        if not data or self.state is _CLOSED:
            return
        if self.state is ConnectionState.CONNECTING:
            outcome = self._handshake.receive_data(data)
            if isinstance(outcome, UpgradeRequest):
                self._events.append(outcome)
            elif isinstance(outcome, HttpRequest):
                pass  # no event: the owner answers ``http_request`` with ``respond``
            elif outcome is not None:
                if outcome.answer:
                    self._outbox.append(outcome.answer)
                self._finish(1006, "", outcome.error)
            return
        self._receive_frames(data)

    def accept(self, *, now: float | None = None) -> None:
        """Complete the upgrade."""
        self._tick(now)
        if self.request is None or self.state is not ConnectionState.CONNECTING:
            raise LocalProtocolError("no upgrade request to accept")
        response, rest = self._handshake.accept()
        self._outbox.append(response)
        self._open(rest)

    @property
    def http_request(self) -> HttpRequest | None:
        """A plain HTTP request (no ``Upgrade``: a REST call), to answer with ``respond``."""
        return self._handshake.http_request

    def respond(self, status: int, body: bytes = b"", *,
                content_type: str = "application/json") -> None:
        """Answer an ``HttpRequest``; the connection is then over (``connection: close``).

        Raises:
            LocalProtocolError: No plain HTTP request is waiting for an answer.
        """
        answer = (self._handshake.respond(status, body, content_type=content_type)
                  if self.state is ConnectionState.CONNECTING else None)
        if answer is None:
            raise LocalProtocolError("no plain HTTP request to respond to")
        self._outbox.append(answer)
        self._finish(1006, "", None)

    def reject(self, status: int, body: bytes = b"",
               headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        """Refuse the upgrade with an HTTP status (and extra headers, e.g. Retry-After)."""
        if self.request is None or self.state is not ConnectionState.CONNECTING:
            raise LocalProtocolError("no upgrade request to reject")
        self._outbox.append(self._handshake.reject(status, body, headers))
        self._finish(1006, "", None)

    def events_received(self) -> list[ServerSideEvent | UpgradeRequest]:
        """Events produced since the last call, in order (``Closed`` last)."""
        events, self._events = self._events, []
        return events

    def send_message(self, message: bytes) -> None:
        """Send an encoded message from ``self.protocol``'s ``send_*`` methods."""
        if self.state is not _OPEN:
            raise LocalProtocolError(f"cannot send: the connection is {self.state.value}")
        self._outbox.append(self._writer.frame(_TEXT, message))

    def send_frame(self, opcode: Opcode, payload: bytes, *, fin: bool = True) -> None:
        """Send one raw frame, unchecked (fault injection in tests)."""
        self._outbox.append(self._writer.frame(opcode, payload, fin=fin))

    @property
    def has_data_to_send(self) -> bool:
        """True when ``data_to_send()`` would return bytes."""
        return bool(self._outbox) or self._fault is not None

    def data_to_send(self) -> bytes:
        """Bytes to write now; a client fault is answered here (see ``_on_text``)."""
        if self._fault is not None:
            self._answer_fault()
        return super().data_to_send()

    def next_deadline(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        if (self._next_ping is None and self._pong_deadline is None
                and self._close_deadline is None and self._drain_deadline is None):
            return None  # the usual case on a server, asked after every input
        return super().next_deadline()

    def receive_eof(self, *, now: float | None = None) -> None:
        """The transport has no more data (a pending client fault is answered first)."""
        self._answer_fault()
        super().receive_eof(now=now)

    def _answer_fault(self) -> None:
        if self._fault is not None and self.state is _OPEN:
            exc, self._fault = self._fault, None
            code = exc.close_code if exc.close_code in (1002, 1008) else 1002
            answer = self.protocol.send_error(str(exc), code)
            self._outbox.append(self._writer.frame(_TEXT, answer))
            self._fail(exc, code, _close_reason(exc))

    def _on_text(self, payload: bytes) -> None:
        if self._fault is not None:
            return  # nothing after a client fault counts
        try:
            events = self.protocol.receive_message(payload)
        except RemoteProtocolError as exc:
            # Answered (error message, then close) when the application next
            # drains data_to_send(): its replies to the messages before the
            # fault go out first, as the service's would.
            self._fault = exc
            return
        self._events.extend(events)

    def _closed_error(self, code: int, reason: str, *, initiated: bool = False) -> S2SError | None:
        if initiated or code in (1000, 1001, 1005):
            return None
        return ConnectionClosedError(code, reason)

    def _eof_during_handshake(self) -> None:
        self._finish(1006, "", None)
