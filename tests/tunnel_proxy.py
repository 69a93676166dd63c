"""A small HTTP CONNECT and SOCKS5 proxy for the tests (threads, 127.0.0.1).

Names resolve only through ``hosts`` (e.g. ``s2s.invalid`` -> the local
server's port): a client that connects direct cannot reach them. Unknown
names get 502 (HTTP) or "host unreachable" (SOCKS5), never a real DNS lookup.
With ``credentials`` set, HTTP clients without the right Basic
``Proxy-Authorization`` get 407 and SOCKS5 clients must authenticate.
"""

from __future__ import annotations

import base64
import socket
import struct
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

__all__ = ["TunnelProxy", "running_proxy"]

_HEAD_LIMIT = 64 * 1024


@dataclass
class TunnelProxy:
    """What the proxy saw; ``url`` is where it listens (no credentials in it)."""

    hosts: Mapping[str, tuple[str, int]]
    credentials: tuple[str, str] | None = None
    refuse_status: int | None = None
    url: str = ""
    port: int = 0
    tunnels: list[str] = field(default_factory=list)
    """``host:port`` of every tunnel opened (HTTP CONNECT and SOCKS5 alike)."""
    refused: list[int] = field(default_factory=list)
    """HTTP statuses (or SOCKS reply codes) of refused tunnels."""
    _sockets: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- plumbing --

    def _spawn(self, fn: object, *args: object) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def serve(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed: the proxy stops
            self._track(client)
            self._spawn(self._handle, client)

    def close(self) -> None:
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in threads:
            thread.join(timeout=5)

    # -- one client --

    def _handle(self, client: socket.socket) -> None:
        try:
            first = client.recv(1, socket.MSG_PEEK)
            if first == b"\x05":
                upstream = self._socks5(client)
            elif first:
                upstream = self._http_connect(client)
            else:
                upstream = None
        except OSError:
            upstream = None
        if upstream is None:
            client.close()
            return
        self._spawn(_pipe, upstream, client)
        _pipe(client, upstream)

    def _http_connect(self, client: socket.socket) -> socket.socket | None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(4096)
            if not data or len(head) > _HEAD_LIMIT:
                return None
            head += data
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, authority, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines[1:])}
        if method != "CONNECT":
            return self._http_refuse(client, 405, "Method Not Allowed")
        if self.credentials is not None and headers.get(
                "proxy-authorization") != _basic(*self.credentials):
            return self._http_refuse(client, 407, "Proxy Authentication Required",
                                     b'Proxy-Authenticate: Basic realm="test"\r\n')
        if self.refuse_status is not None:
            return self._http_refuse(client, self.refuse_status, "Refused")
        host, _, port = authority.rpartition(":")
        upstream = self._open(host.strip("[]"), int(port))
        if upstream is None:
            return self._http_refuse(client, 502, "Bad Gateway")
        # One write for the whole answer: python-socks reads the reply once.
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return upstream

    def _http_refuse(self, client: socket.socket, status: int, reason: str,
                     extra: bytes = b"") -> None:
        self.refused.append(status)
        client.sendall(f"HTTP/1.1 {status} {reason}\r\n".encode() + extra
                       + b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        return None

    def _socks5(self, client: socket.socket) -> socket.socket | None:
        _ver, count = _exactly(client, 2)
        methods = _exactly(client, count)
        wanted = 0x02 if self.credentials is not None else 0x00
        if wanted not in methods:
            client.sendall(b"\x05\xff")
            return None
        client.sendall(bytes((5, wanted)))
        if wanted == 0x02:
            _ver = _exactly(client, 1)
            user = _exactly(client, _exactly(client, 1)[0]).decode()
            password = _exactly(client, _exactly(client, 1)[0]).decode()
            if (user, password) != self.credentials:
                client.sendall(b"\x01\x01")
                self.refused.append(0x02)
                return None
            client.sendall(b"\x01\x00")
        _ver, _cmd, _rsv, kind = _exactly(client, 4)
        if kind == 0x01:
            host = socket.inet_ntoa(_exactly(client, 4))
        elif kind == 0x03:
            host = _exactly(client, _exactly(client, 1)[0]).decode()
        else:
            host = socket.inet_ntop(socket.AF_INET6, _exactly(client, 16))
        (port,) = struct.unpack("!H", _exactly(client, 2))
        upstream = self._open(host, port)
        reply = 0x00 if upstream is not None else 0x04  # 4: host unreachable
        if upstream is None:
            self.refused.append(reply)
        client.sendall(bytes((5, reply, 0, 1)) + b"\x00\x00\x00\x00\x00\x00")
        return upstream

    def _open(self, host: str, port: int) -> socket.socket | None:
        mapped = self.hosts.get(host.lower())
        if mapped is None:
            return None
        try:
            upstream = socket.create_connection(mapped, timeout=5)
        except OSError:
            return None
        upstream.settimeout(None)
        self.tunnels.append(f"{host}:{port}")
        return self._track(upstream)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("the client hung up")
        data += chunk
    return data


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until either side ends, then end both (the other pipe then stops too)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def running_proxy(hosts: Mapping[str, tuple[str, int]], *,
                  credentials: tuple[str, str] | None = None,
                  refuse_status: int | None = None) -> Iterator[TunnelProxy]:
    """Run a ``TunnelProxy`` on 127.0.0.1 (a free port) until the block exits."""
    proxy = TunnelProxy(dict(hosts), credentials, refuse_status)
    listener = socket.create_server(("127.0.0.1", 0))
    proxy.port = listener.getsockname()[1]
    proxy.url = f"127.0.0.1:{proxy.port}"
    proxy._track(listener)
    proxy._spawn(proxy.serve, listener)
    try:
        yield proxy
    finally:
        proxy.close()
