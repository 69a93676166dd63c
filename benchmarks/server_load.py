"""The local server's CPU per paced session, under a client that costs almost nothing.

``python -m benchmarks.server_load [--sessions N] [--seconds S] [--ramp R]``
starts ``python -m benchmarks._server`` and drives N WebSocket sessions from
one thread on plain non-blocking sockets: the upgrade, a pcm setup, then one
pre-built masked frame of 80 ms of speech-like audio per session every 80 ms
(starts spread over the ramp, so sends are spread over the period, as
independent callers' are), whatever the server sends read and dropped, and
an end_of_stream at the end. The client does two system calls per chunk,
so the server gets a core to itself and its CPU is not capped by the
machine: what it prints, the server's CPU (user and system, from /proc)
over the steady window divided by the chunks sent in it, is its cost per
80 ms chunk, and ``cores`` what N sessions take, while the server keeps
up. Whether it does: the time from the last chunk to the last session's
close (a server behind its clients answers seconds late, and its "cores"
stop at one).
"""

from __future__ import annotations

import argparse
import base64
import heapq
import os
import selectors
import socket
import sys
import time

from ._common import CHUNK_SAMPLES, cpu_seconds, proc_cpu_seconds, speech_like
from ._server import local_server

__all__ = ["main"]

_SETUP = (b'{"type":"setup","model_name":"s2s-translate","input_format":"pcm",'
          b'"output_format":"pcm","voice_id":"bench-voice",'
          b'"json_config":{"target_language":"en"}}')
_END = b'{"type":"end_of_stream"}'


def _frame(payload: bytes) -> bytes:
    """A masked final text frame (the key is zero: masking is then the identity)."""
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0xFE)) + n.to_bytes(2, "big")
    return head + bytes(4) + payload


def _upgrade(host: str, port: int) -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET /api/speech/s2s HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
            + b"\r\nSec-WebSocket-Version: 13\r\nx-api-key: bench\r\n\r\n")


def _connect(host: str, port: int) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(_upgrade(host, port))
    answer = b""
    while b"\r\n\r\n" not in answer:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("the server closed the connection during the upgrade")
        answer += data
    if not answer.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {answer[:60]!r}")
    sock.sendall(_frame(_SETUP))
    sock.setblocking(False)
    return sock


_EOS = b'"type":"end_of_stream"'


def _drain(sock: socket.socket, tail: bytes = b"") -> bytes | None:
    """Read what is there; the last bytes read, or None once the server ended the request.

    The end is the server's end_of_stream message (looked for across reads
    in ``tail`` and what follows), or its closing the connection.
    """
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data or _EOS in tail + data[:64] or _EOS in data:
                return None
            tail = data[-32:]
            if len(data) < 1 << 16:
                return tail
    except BlockingIOError:
        return tail


def run(url: str, pid: int, sessions: int, seconds: float, ramp: float) -> dict[str, float]:
    """Drive the sessions; the server's CPU per chunk over the steady window."""
    host_port = url.split("//")[1].split("/")[0]
    host, port = host_port.rsplit(":", 1)
    audio = speech_like(seconds)
    chunks = [_frame(b'{"type":"audio","audio":"'
                     + base64.b64encode(audio[i:i + CHUNK_SAMPLES].tobytes()) + b'"}')
              for i in range(0, audio.size - CHUNK_SAMPLES + 1, CHUNK_SAMPLES)]
    rss0 = _rss_kib(pid)
    socks = [_connect(host, int(port)) for _ in range(sessions)]
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    start = time.monotonic() + 0.5
    schedule = [(start + ramp * k / sessions, k, 0) for k in range(sessions)]  # a heap
    unsent = [b""] * sessions  # what a full socket buffer left of a frame
    sent = 0
    steady_from, steady_to = start + ramp + 1.0, start + len(chunks) * 0.08 - 0.5
    window: dict[str, float] = {}
    while schedule or any(unsent):
        now = time.monotonic()
        if "cpu0" not in window and now >= steady_from:
            window.update(cpu0=proc_cpu_seconds(pid) or 0.0, t0=now, sent0=sent,
                          own0=cpu_seconds())
        if "cpu1" not in window and now >= steady_to:
            window.update(cpu1=proc_cpu_seconds(pid) or 0.0, t1=now, sent1=sent,
                          own1=cpu_seconds(), rss1=_rss_kib(pid))
        for k, rest in enumerate(unsent):
            if rest:
                unsent[k] = rest[_send(socks[k], rest):]
        while schedule and schedule[0][0] <= now:
            due, k, index = heapq.heappop(schedule)
            if unsent[k]:  # the server is behind this session: try again soon
                heapq.heappush(schedule, (now + 0.001, k, index))
                continue
            frame = chunks[index]
            unsent[k] = frame[_send(socks[k], frame):]
            sent += 1
            if index + 1 < len(chunks):
                heapq.heappush(schedule, (due + 0.08, k, index + 1))
        timeout = max(0.0, schedule[0][0] - time.monotonic()) if schedule else 0.01
        for key, _ in selector.select(timeout):
            _drain(key.fileobj)  # type: ignore[arg-type]
    ended = time.monotonic()
    for sock in socks:
        sock.setblocking(True)
        sock.sendall(_frame(_END))
        sock.setblocking(False)
    deadline = time.monotonic() + 60
    tails = {sock: b"" for sock in socks}
    while tails and time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            tail = _drain(sock, tails[sock])  # type: ignore[arg-type]
            if tail is None:
                selector.unregister(sock)
                del tails[sock]  # type: ignore[arg-type]
            else:
                tails[sock] = tail  # type: ignore[index]
    drain_s = time.monotonic() - ended
    for sock in socks:
        sock.close()
    chunks_in_window = window["sent1"] - window["sent0"]
    cpu = window["cpu1"] - window["cpu0"]
    return {"sessions": sessions, "cores": cpu / (window["t1"] - window["t0"]),
            "client_cores": (window["own1"] - window["own0"]) / (window["t1"] - window["t0"]),
            "us_per_chunk": 1e6 * cpu / chunks_in_window,
            "chunks_per_s": chunks_in_window / (window["t1"] - window["t0"]),
            "drain_s": drain_s, "rss_kib_per_session": (window["rss1"] - rss0) / sessions}


def _rss_kib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return float("nan")


def _send(sock: socket.socket, data: bytes) -> int:
    try:
        return sock.send(data)
    except BlockingIOError:
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_load")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--ramp", type=float, default=2.0)
    ns = parser.parse_args(argv)
    if ns.seconds < ns.ramp + 2.0:
        parser.error("--seconds must exceed --ramp by 2 s or more (the steady window)")
    with local_server() as server:
        result = run(server.url, server.pid, ns.sessions, ns.seconds, ns.ramp)
    print(f"server at {result['sessions']} paced sessions: {result['cores']:.2f} cores, "
          f"{result['us_per_chunk']:.1f} us per 80 ms chunk "
          f"({result['chunks_per_s']:.0f} chunks/s; this client {result['client_cores']:.2f} "
          f"cores); the last answers {result['drain_s']:.2f} s after the last chunk; server "
          f"RSS {result['rss_kib_per_session']:.0f} KiB per session")
    return 0


if __name__ == "__main__":
    sys.exit(main())
