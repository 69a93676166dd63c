"""Opening the socket: TCP, TLS and the WebSocket upgrade, within one deadline."""

from __future__ import annotations

import socket
import ssl
import time

from s2s_core.connection import ClientConnection, ConnectionState
from s2s_core.errors import ConnectError, ConnectionClosedError, ConnectTimeout
from s2s_core.events import ErrorMessage
from s2s_core.proxy import NO_TUNNEL_TIMEOUT, TUNNEL_ERRORS, ProxyConfig, tunnel_args, tunnel_error
from s2s_core.results import error_from_event
from s2s_core.urls import WebSocketTarget

__all__ = ["READ_SIZE", "connect_websocket"]

READ_SIZE = 256 * 1024


def connect_websocket(core: ClientConnection, target: WebSocketTarget,
                      ssl_context: ssl.SSLContext | None,
                      connect_timeout: float | None,
                      proxy: ProxyConfig | None = None) -> socket.socket:
    """Open ``target`` and run ``core``'s upgrade; return the socket in blocking mode.

    A transport failure during the upgrade becomes the core's close error.
    With ``proxy``, TCP goes through its tunnel and TLS to the service runs
    inside it (SNI and verification name the service).

    Raises:
        ConnectError: The socket or TLS could not be opened (refused,
            unreachable, certificate not verified).
        ProxyError: The proxy was unreachable or refused the tunnel.
        ConnectTimeout: TCP + TLS + upgrade took more than ``connect_timeout``.
        HandshakeRejected: The server refused the upgrade.
        ServerError: The server sent an error (e.g. 1008, bad key) and closed.
        ConnectionClosedError: The connection ended during the upgrade.
    """
    deadline = None if connect_timeout is None else time.monotonic() + connect_timeout
    try:
        sock = _open_tcp(target, proxy, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock.settimeout(_left(deadline))
                sock = ssl_context.wrap_socket(sock, server_hostname=target.host)
            _upgrade(core, sock, deadline)
        except BaseException:
            sock.close()
            raise
    except TimeoutError as exc:
        raise ConnectTimeout(f"connecting to {target.host_header} took more than "
                             f"{connect_timeout} s") from exc
    except ConnectError:
        raise  # a proxy's refusal, already typed
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise ConnectError(f"cannot connect to {target.host_header}: {exc}") from exc
    closed = core.closed_event
    if closed is not None:
        sock.close()
        # An auth failure (error 1008, then a close) can come with the upgrade.
        refusals = [e for e in core.events_received() if isinstance(e, ErrorMessage)]
        if refusals:
            raise error_from_event(refusals[0])
        raise closed.error or ConnectionClosedError(closed.code, closed.reason)
    # Timeouts are per-socket state; once other threads share it, it must block.
    sock.settimeout(None)
    return sock


def _open_tcp(target: WebSocketTarget, proxy: ProxyConfig | None,
              deadline: float | None) -> socket.socket:
    """TCP to ``target``, direct or through ``proxy`` (python-socks' sync flavour)."""
    if proxy is None:
        return socket.create_connection((target.host, target.port), timeout=_left(deadline))
    from python_socks.sync import Proxy

    try:
        left = _left(deadline)
        return Proxy(**tunnel_args(proxy)).connect(
            target.host, target.port, timeout=NO_TUNNEL_TIMEOUT if left is None else left)
    except TUNNEL_ERRORS as exc:
        raise tunnel_error(exc, proxy, target.host, target.port) from exc


def _upgrade(core: ClientConnection, sock: socket.socket, deadline: float | None) -> None:
    try:
        sock.settimeout(_left(deadline))
        sock.sendall(core.data_to_send())
        while core.state is ConnectionState.CONNECTING:
            sock.settimeout(_left(deadline))
            data = sock.recv(READ_SIZE)
            if data:
                core.receive_data(data, now=time.monotonic())
            else:
                core.receive_eof(now=time.monotonic())
    except TimeoutError:
        raise
    except OSError as exc:
        core.transport_failed(exc, now=time.monotonic())


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` for ``settimeout`` (None: no deadline)."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("connect deadline passed")
    return left
