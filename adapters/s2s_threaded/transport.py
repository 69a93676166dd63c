"""Opening the socket: TCP, TLS and the WebSocket upgrade, within one deadline."""

from __future__ import annotations

import socket
import ssl
import time

from s2s_core.connection import ConnectionState
from s2s_core.errors import ConnectError, ConnectTimeout
from s2s_core.options import LAST_WORDS_S, READ_SIZE
from s2s_core.proxy import NO_TUNNEL_TIMEOUT, TUNNEL_ERRORS, ProxyConfig, tunnel_args, tunnel_error
from s2s_core.request_table import RequestTable
from s2s_core.urls import WebSocketTarget

__all__ = ["connect_websocket"]


def connect_websocket(table: RequestTable, target: WebSocketTarget,
                      ssl_context: ssl.SSLContext | None,
                      connect_timeout: float | None,
                      proxy: ProxyConfig | None = None) -> socket.socket:
    """Open ``target`` and run ``core``'s upgrade; return the socket in blocking mode.

    The core is ``table.connection``; a transport failure during the upgrade
    becomes its close error. With ``proxy``, TCP goes through its tunnel and
    TLS to the service runs inside it (SNI and verification name the service).

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
                sock = ssl_context.wrap_socket(sock, server_hostname=target.tls_server_name)
            _upgrade(table, sock, deadline)
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
    closed = table.closed
    if closed is not None:
        _last_words(table, sock)
        sock.close()
        # An auth failure (error 1008, then a close) can come with the upgrade.
        raise table.close_error(closed)
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


def _upgrade(table: RequestTable, sock: socket.socket, deadline: float | None) -> None:
    core = table.connection
    try:
        sock.settimeout(_left(deadline))
        sock.sendall(core.data_to_send())
        while core.state is ConnectionState.CONNECTING:
            sock.settimeout(_left(deadline))
            data = sock.recv(READ_SIZE)
            if data:
                table.receive_data(data, now=time.monotonic())
            else:
                table.receive_eof(now=time.monotonic())
    except TimeoutError:
        raise
    except OSError as exc:
        table.transport_failed(exc, now=time.monotonic())


def _last_words(table: RequestTable, sock: socket.socket) -> None:
    """The close echo of a close that came with the upgrade (RFC 6455 5.5.1)."""
    data = table.connection.data_to_send()
    if not data:
        return
    try:
        sock.settimeout(LAST_WORDS_S)
        sock.sendall(data)
    except OSError:
        pass  # the peer is gone: nothing more to say


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` for ``settimeout`` (None: no deadline)."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("connect deadline passed")
    return left
