"""The local server's cost per paced input chunk, without sockets.

``python -m benchmarks.server_step [--sessions N] [--seconds S] [--engine-only] [--memory]``

N in-memory sessions (a ``ServerConnection`` and a ``ServerSession`` each,
with the metered loopback engine, as ``s2s_anyio.serve`` builds them) each
get the masked WebSocket frame of one 80 ms pcm chunk per round, as a paced
client sends it; every round goes over all sessions, like the server's loop
at N paced clients, so the working set of N sessions is what the caches see.
Printed: CPU microseconds per input chunk for the whole server step (frame
parsing, message decoding, engine, message encoding, frame writing) or, with
``--engine-only``, for ``LoopbackEngine.feed`` alone (the median round: a
shared machine's bursts skew a mean), and the memory the sessions hold (RSS,
libsoxr's state included; ``--memory`` adds tracemalloc's Python share).

It is a tool for iterating on the server's hot path: the figure that
counts is the scale benchmark's "server X cores".
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

from s2s_core._frames import FrameWriter, Opcode
from s2s_core._wire import encode_audio, encode_setup
from s2s_core.connection import ServerConnection, UpgradeRequest
from s2s_core.loopback import LoopbackEngine, ServerConfig, ServerSession, loopback_engine
from s2s_core.loopback.rest import LocalRest
from s2s_core.setup import Setup

from ._common import CHUNK_SAMPLES, CHUNK_SECONDS, rss_kib, speech_like

__all__ = ["client_frames", "open_sessions", "main"]

_UPGRADE = (b"GET /api/speech/s2s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n")
_SETUP = Setup(model_name="s2s-translate", input_format="pcm", output_format="pcm",
               voice_id="bench-voice", json_config={"target_language": "en"})


def client_frames(seconds: float) -> tuple[list[bytes], list[bytes]]:
    """The pcm chunks of ``seconds`` of speech-like audio, and each one's masked audio frame."""
    audio = speech_like(seconds)
    writer = FrameWriter(mask=True)
    chunks = [audio[i:i + CHUNK_SAMPLES].tobytes() for i in range(0, audio.size, CHUNK_SAMPLES)]
    return chunks, [writer.frame(Opcode.TEXT, encode_audio(chunk)) for chunk in chunks]


def open_sessions(count: int, *, input_block_s: float = 0.0) -> list[
        tuple[ServerConnection, ServerSession]]:
    """``count`` server sessions past the upgrade and the setup, as the local server builds them."""
    config = ServerConfig(input_block_s=input_block_s)
    rest = LocalRest(credits=float("inf"))
    factory = rest.metered(loopback_engine)
    setup_frame = FrameWriter(mask=True).frame(Opcode.TEXT, encode_setup(_SETUP))
    sessions = []
    for _ in range(count):
        conn = ServerConnection(now=0.0)
        session = ServerSession(conn, config, 0.0, engine_factory=factory)
        conn.receive_data(_UPGRADE, now=0.0)
        events = conn.events_received()
        assert isinstance(events[0], UpgradeRequest), events
        session.handle_events(events, 0.0)
        conn.receive_data(setup_frame, now=0.0)
        session.handle_events(conn.events_received(), 0.0)
        if not conn.data_to_send():
            raise RuntimeError("the session did not answer the setup")
        sessions.append((conn, session))
    return sessions


def _server_round(sessions: list[tuple[ServerConnection, ServerSession]],
                  frame: bytes, now: float) -> int:
    sent = 0
    for conn, session in sessions:
        conn.receive_data(frame, now=now)
        session.handle_events(conn.events_received(), now)
        deadline = session.next_deadline()
        if deadline is not None and deadline <= now:
            session.handle_timer(now)
        sent += len(conn.data_to_send())
    return sent


def _timed(rounds: int, step: Callable[[int], object]) -> float:
    """CPU seconds of the median run of four rounds, times ``rounds / 4``.

    A median, as a shared machine's bursts skew a mean; of four rounds, so
    that a server holding input for a few rounds is timed over whole blocks.
    """
    gc.collect()
    times = []
    for k in range(rounds):
        start = time.process_time()
        step(k)
        times.append(time.process_time() - start)
    runs = [sum(times[k:k + 4]) / 4 for k in range(0, rounds - 3, 4)] or times
    return statistics.median(runs) * rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_step")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="audio per session (rounds = seconds / 0.08)")
    parser.add_argument("--engine-only", action="store_true",
                        help="time LoopbackEngine.feed only (no connection, no session)")
    parser.add_argument("--block", type=float, default=0.0, metavar="S",
                        help="the server's input_block_s (default 0: every message at once)")
    parser.add_argument("--memory", action="store_true",
                        help="also report memory per session (tracemalloc; slower)")
    ns = parser.parse_args(argv)
    chunks, frames = client_frames(ns.seconds)
    rounds = len(frames)
    chunk_count = rounds * ns.sessions
    if ns.engine_only:
        engines = [LoopbackEngine("pcm", "pcm", "en") for _ in range(ns.sessions)]

        def engine_round(k: int) -> None:
            chunk = chunks[k]
            for engine in engines:
                engine.feed(chunk)

        seconds = _timed(rounds, engine_round)
        print(f"engine only: {1e6 * seconds / chunk_count:.1f} us per chunk "
              f"({ns.sessions} engines x {rounds} chunks)")
        return 0
    if ns.memory:
        tracemalloc.start()
    gc.collect()
    rss_before = rss_kib()
    sessions = open_sessions(ns.sessions, input_block_s=ns.block)
    seconds = _timed(rounds, lambda k: _server_round(sessions, frames[k], k * CHUNK_SECONDS))
    per_chunk = seconds / chunk_count
    print(f"server step: {1e6 * per_chunk:.1f} us per chunk ({ns.sessions} sessions x "
          f"{rounds} chunks); at 12,500 chunks/s (1000 paced sessions): "
          f"{per_chunk * 12500:.2f} cores")
    gc.collect()
    rss_after = rss_kib()
    if rss_before is not None and rss_after is not None:
        print(f"memory after {rounds} chunks: RSS {(rss_after - rss_before) / ns.sessions:.1f} "
              "KiB per session (libsoxr's state included)"
              + (" (with tracemalloc's own)" if ns.memory else ""))
    if ns.memory:
        current, _ = tracemalloc.get_traced_memory()
        print(f"  of which Python objects and arrays: {current / 1024 / ns.sessions:.1f} KiB "
              "per session (tracemalloc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
