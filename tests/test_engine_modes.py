"""The request engine on every adapter mode, against hand-written servers.

Issue 11 (an unscoped error fails every multiplexed request) and issue 12's
items 3 (the close echo when the error and close come with the 101), 4 (no
socket left open over TLS), 5 (a slow consumer does not kill a healthy
connection; a dead one is still detected) and 12 (sessions closed from
another task, or never closed). The servers are the core's
``ServerConnection`` on a plain socket in a thread, so each sends exactly
the bytes the test names.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any
from unittest import mock

import anyio
import numpy as np
import pytest
import trustme

import s2s_anyio
from harness import ASYNC_MODES, MODES, AsyncHarness, base_url_of, harness_for, tone_burst
from s2s_anyio import run_server, serve
from s2s_core._frames import FrameReader, Opcode
from s2s_core.connection import ClientConnection, ServerConnection, UpgradeRequest
from s2s_core.errors import (
    IdleTimeout,
    InternalServerError,
    KeepaliveTimeout,
    PolicyViolation,
    S2SError,
)
from s2s_core.events import Audio, Closed, SetupReceived
from s2s_core.options import ClientOptions
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(90)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
AUDIO = tone_burst()
WAIT_S = 15.0  # bound on every socket wait of the servers below


# --- a hand-written server ------------------------------------------------------


class Wire:
    """One accepted connection, on the test's side: a socket and the core's server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(WAIT_S)
        self.conn = ServerConnection(ping_interval=None, close_timeout=None)
        self.raw = bytearray()  # every byte the client wrote
        self.events: list[Any] = []
        self.closed_code: int | None = None

    @property
    def sp(self) -> Any:
        return self.conn.protocol

    def recv(self) -> bytes:
        try:
            data = self.sock.recv(65536)
        except OSError:  # reset, timeout, TLS cut short: the client is gone
            return b""
        self.raw += data
        return data

    def accept(self) -> None:
        """Read the upgrade request and accept it (the 101 is queued, not sent)."""
        while not any(isinstance(e, UpgradeRequest) for e in self.events):
            data = self.recv()
            assert data, "the client went away during the upgrade"
            self.conn.receive_data(data)
            self.events += self.conn.events_received()
        self.conn.accept()
        self.events += self.conn.events_received()

    def read_until(self, done: Callable[[list[Any]], bool]) -> list[Any]:
        """Feed the core until ``done(events)``; answers (pongs, echoes) go out."""
        while not done(self.events):
            self.flush()
            data = self.recv()
            if data:
                self.conn.receive_data(data)
            else:
                self.conn.receive_eof()
            self.events += self.conn.events_received()
            if not data:
                break
        self.flush()
        for event in self.events:
            if isinstance(event, Closed):
                self.closed_code = event.code
        return self.events

    def setups(self) -> list[SetupReceived]:
        return [e for e in self.events if isinstance(e, SetupReceived)]

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)  # one send: one TCP segment on loopback

    def read_to_eof(self) -> bytes:
        """Everything the client writes until it closes the socket."""
        start = len(self.raw)
        while self.recv():
            pass
        return bytes(self.raw[start:])

    def client_frames(self) -> list[tuple[Opcode, bytes]]:
        """Every frame the client wrote after its upgrade request."""
        head_end = bytes(self.raw).find(b"\r\n\r\n") + 4
        reader = FrameReader(expect_masked=True, max_message_size=None)
        frames = reader.feed(bytes(self.raw[head_end:]))
        assert reader.error is None
        return frames


class ScriptedServer:
    """Accept connections on a thread; run ``script(wire)`` for each, in order."""

    def __init__(self, script: Callable[[Wire], None], *, connections: int = 1,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.connections = connections
        self.ssl_context = ssl_context
        self.wires: list[Wire] = []
        self.errors: list[BaseException] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT_S)
        self.thread = threading.Thread(target=self._run, daemon=True)
        port = self.listener.getsockname()[1]
        self.url = f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{port}/api/speech/s2s"

    def _run(self) -> None:
        try:
            for _ in range(self.connections):
                sock, _ = self.listener.accept()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.ssl_context is not None:
                    sock.settimeout(WAIT_S)
                    sock = self.ssl_context.wrap_socket(sock, server_side=True)
                wire = Wire(sock)
                self.wires.append(wire)
                try:
                    self.script(wire)
                finally:
                    sock.close()
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(WAIT_S + 5)
        self.listener.close()
        assert not self.thread.is_alive(), "the scripted server did not finish"
        if self.errors and exc_info[0] is None:
            raise self.errors[0]


def client_of(mode: str, url: str, **options: Any) -> Any:
    module = harness_for(mode).module  # type: ignore[attr-defined]
    opts = ClientOptions(**options) if options else None
    return module.S2SClient("test-key", base_url=base_url_of(url), options=opts)


def run(mode: str, fn: Callable[[], Any]) -> Any:
    harness = harness_for(mode)
    assert isinstance(harness, AsyncHarness)
    return harness.run(fn)


# --- issue 11: an unscoped error fails every multiplexed request -------------------


def ready_both_then_crash(wire: Wire, *, close: bool) -> None:
    wire.accept()
    wire.read_until(lambda events: len([e for e in events if isinstance(e, SetupReceived)]) == 2)
    for setup in [e.setup for e in wire.setups()]:
        rid = setup.client_req_id
        wire.conn.send_message(wire.sp.send_ready(f"req-{rid}", 48000, client_req_id=rid))
    wire.conn.send_message(b'{"type":"error","message":"worker crashed","code":1011}')
    if close:
        wire.conn.close(1011, "worker crashed")
    wire.flush()
    wire.read_until(lambda events: any(isinstance(e, Closed) for e in events))
    wire.read_to_eof()


MUX = [Setup(voice_id="v", input_format="pcm", output_format="pcm", client_req_id=rid,
             close_ws_on_eos=False) for rid in ("a", "b")]


@pytest.mark.parametrize("then", ["close", "keep_open"])
@pytest.mark.parametrize("mode", MODES)
def test_unscoped_error_fails_both_multiplexed_requests(mode: str, then: str) -> None:
    """Issue 11's "done when": the same ServerError for both, identically in every mode.

    With ``keep_open`` the server leaves the socket open after the error:
    both requests must fail from the error itself, not from a close.
    """
    script = functools.partial(ready_both_then_crash, close=then == "close")
    with ScriptedServer(script) as server:
        client = client_of(mode, server.url, idle_timeout=10.0)
        if mode == "threaded":
            with client.connection() as conn:
                requests = [conn.start(setup) for setup in MUX]
                outcomes = [_iterate_threaded(r) for r in requests]
                send_errors = [_send_threaded(r) for r in requests]
        else:
            async def go() -> tuple[list[Any], list[Any]]:
                async with client.connection() as conn:
                    requests = [await conn.start(setup) for setup in MUX]
                    outcomes = [await _iterate_async(r) for r in requests]
                    return outcomes, [await _send_async(r) for r in requests]

            outcomes, send_errors = run(mode, go)
    errors = [error for _, error in outcomes]
    for (events, error), send_error in zip(outcomes, send_errors, strict=True):
        assert [e.type for e in events] == ["ready"]
        assert isinstance(error, InternalServerError), repr(error)
        assert error.code == 1011 and "worker crashed" in str(error)
        assert error.partial_result is not None and not error.partial_result.complete
        assert isinstance(send_error, InternalServerError), repr(send_error)
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    # The closing handshake completed (RFC 6455 5.5.1), whoever started it.
    assert server.wires[0].client_frames()[-1][0] is Opcode.CLOSE
    assert server.wires[0].closed_code == (1011 if then == "close" else 1000)


def _iterate_threaded(request: Any) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        for event in request:
            events.append(event)
    except S2SError as exc:
        return events, exc
    return events, None


def _send_threaded(request: Any) -> BaseException | None:
    try:
        request.send_audio(b"\x00\x00" * 100)
    except S2SError as exc:
        return exc
    return None


async def _iterate_async(request: Any) -> tuple[list[Any], BaseException | None]:
    events: list[Any] = []
    try:
        async for event in request:
            events.append(event)
    except S2SError as exc:
        return events, exc
    return events, None


async def _send_async(request: Any) -> BaseException | None:
    try:
        await request.send_audio(b"\x00\x00" * 100)
    except S2SError as exc:
        return exc
    return None


# --- issue 12 item 3: the close echo when the error and close come with the 101 -----


def refuse_with_the_101(wire: Wire) -> None:
    wire.accept()
    wire.conn.send_message(wire.sp.send_error("Invalid or expired API key", 1008))
    wire.conn.close(1008, "")
    wire.flush()  # the 101, the error and the close: one segment
    wire.read_to_eof()


@pytest.mark.parametrize("api", ["s2s", "realtime"])
@pytest.mark.parametrize("mode", MODES)
def test_error_and_close_with_the_101_are_answered(mode: str, api: str) -> None:
    harness = harness_for(mode)
    once = ClientOptions(retry=None)  # the scripted server takes one connection
    with ScriptedServer(refuse_with_the_101) as server, \
            pytest.raises(PolicyViolation, match="expired API key"):
        if api == "s2s":
            harness.s2s(server.url, SETUP, AUDIO, pace=None, options=once)
        else:
            harness.realtime(server.url, SETUP, [b"\x00\x00" * 1920], options=once)
    frames = server.wires[0].client_frames()
    assert [opcode for opcode, _ in frames] == [Opcode.CLOSE], frames
    assert int.from_bytes(frames[0][1][:2], "big") == 1008


# --- issue 12 item 4: over TLS, no socket is left open when the call returns --------


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def socket_fds() -> set[str]:
    """This process's open sockets (uvloop keeps a pipe of its own open for good)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                found.add(fd)
        except OSError:
            pass  # closed meanwhile (the listing's own fd)
    return found


@pytest.mark.parametrize("mode", MODES)
def test_tls_socket_closed_when_the_server_goes_silent_after_the_close(
        mode: str, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    release = threading.Event()
    server_fd: list[str] = []

    def echo_close_then_go_silent(wire: Wire) -> None:
        server_fd.append(str(wire.sock.fileno()))
        wire.accept()
        wire.read_until(lambda events: any(isinstance(e, Closed) for e in events))
        # The close is echoed; no TLS close_notify, no FIN, nothing read: silent.
        release.wait(WAIT_S)

    with ScriptedServer(echo_close_then_go_silent, ssl_context=server_ctx) as server:
        client = client_of(mode, server.url, ssl_context=client_ctx)
        before = socket_fds()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if mode == "threaded":
                with client.connection():
                    pass
            else:
                async def go() -> None:
                    async with client.connection():
                        pass

                run(mode, go)
            left = socket_fds() - before
            gc.collect()
        release.set()
    assert server.wires[0].closed_code == 1000
    # Only the server's end of the socket is still open when the call returns.
    assert left <= set(server_fd), f"{mode}: file descriptors left open: {left - set(server_fd)}"
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], \
        [str(w.message) for w in caught]


# --- issue 12 item 5: a slow consumer does not kill a healthy connection -------------

KEEPALIVE = {"ping_interval": 0.5, "ping_timeout": 0.5, "idle_timeout": 1.0, "queue_size": 4}
SLOW_EVENT_S = 0.03
STALL_S = 1.5  # once, on the first audio chunk: three ping intervals


def consumer_delay(event: object, audio_seen: int) -> float:
    """How long the slow consumer spends on ``event``."""
    return STALL_S if isinstance(event, Audio) and audio_seen == 0 else SLOW_EVENT_S


@pytest.mark.parametrize("mode", MODES)
def test_slow_consumer_keeps_a_healthy_connection(mode: str) -> None:
    """The consumer lags the reader by several ping intervals; nothing times out.

    The queue holds 4 events; the consumer is slow on every event and
    stalls on the first audio chunk, so the reader stays paused (backpressure)
    for several ping intervals while pongs and output wait unread in the
    socket: that is our backpressure, not a dead link.
    """
    audio = np.zeros(24000 * 2, dtype=np.int16)
    pauses: list[float] = []
    real_pause, real_resume = ClientConnection.pause_reading, ClientConnection.resume_reading
    paused_at: dict[int, float] = {}

    def pause(self: ClientConnection, *, now: float | None = None) -> None:
        if now is not None:
            paused_at.setdefault(id(self), now)
        real_pause(self, now=now)

    def resume(self: ClientConnection, *, now: float | None = None) -> None:
        start = paused_at.pop(id(self), None)
        if start is not None and now is not None:
            pauses.append(now - start)
        real_resume(self, now=now)

    with run_server() as url, mock.patch.object(ClientConnection, "pause_reading", pause), \
            mock.patch.object(ClientConnection, "resume_reading", resume):
        client = client_of(mode, url, **KEEPALIVE)
        if mode == "threaded":
            received = 0
            with client.s2s_stream(SETUP, audio, pace=None, trailing_silence_s=0.0) as stream:
                for event in stream.iter_events():
                    time.sleep(consumer_delay(event, received))
                    if isinstance(event, Audio):
                        received += len(event.audio)
        else:
            async def go() -> int:
                got = 0
                async with client.s2s_stream(SETUP, audio, pace=None,
                                             trailing_silence_s=0.0) as stream:
                    async for event in stream.iter_events():
                        await anyio.sleep(consumer_delay(event, got))
                        if isinstance(event, Audio):
                            got += len(event.audio)
                return got

            received = run(mode, go)
    assert received == len(audio) * 2 * 2  # 24 kHz in, 48 kHz out: all of it
    # The test means something: reading stayed paused longer than a ping
    # interval plus its timeout (the stall alone makes it about 1.5 s).
    assert pauses and max(pauses) > KEEPALIVE["ping_interval"] + KEEPALIVE["ping_timeout"]


def ready_then_play_dead(wire: Wire) -> None:
    wire.accept()
    wire.read_until(lambda events: bool(wire.setups()))
    wire.conn.send_message(wire.sp.send_ready("req-1", 48000))
    wire.flush()
    # No pong, no message, nothing read: a dead link, as far as the client can tell.
    wire.read_to_eof()  # read, never fed to the core: no pong is ever sent


@pytest.mark.parametrize("mode", MODES)
def test_a_dead_link_is_detected_while_the_consumer_keeps_up(mode: str) -> None:
    with ScriptedServer(ready_then_play_dead) as server:
        out = harness_for(mode).stream(
            server.url, SETUP, AUDIO[:4800], pace=None,
            options=ClientOptions(ping_interval=0.5, ping_timeout=0.5, idle_timeout=30.0))
    assert isinstance(out.error, KeepaliveTimeout), repr(out.error)
    assert not isinstance(out.error, IdleTimeout)


# --- issue 12 item 12: sessions closed from another task, or never closed -----------


def ready_then_wait_for_the_close(wire: Wire) -> None:
    wire.accept()
    wire.read_until(lambda events: bool(wire.setups()))
    wire.conn.send_message(wire.sp.send_ready("req-1", 48000))
    wire.read_until(lambda events: any(isinstance(e, Closed) for e in events))
    wire.read_to_eof()


@pytest.mark.parametrize("how", ["__aexit__", "aclose"])
@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_session_closed_from_another_task(mode: str, how: str) -> None:
    with ScriptedServer(ready_then_wait_for_the_close) as server:
        client = client_of(mode, server.url)

        async def go() -> None:
            opened = client.s2s_realtime(**SETUP.to_wire_kwargs())
            box: dict[str, Any] = {}

            async def enter() -> None:
                box["session"] = await opened.__aenter__()
                await box["session"].wait_ready()

            async def leave() -> None:
                if how == "aclose":
                    await box["session"].aclose()
                else:
                    await opened.__aexit__(None, None, None)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(enter)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(leave)

        run(mode, go)
    assert server.wires[0].closed_code == 1000  # a normal closing handshake


PROGRAM_PREAMBLE = """
import logging
import sys
import anyio
import s2s_anyio
from s2s_anyio import run_server, serve

MODE = sys.argv[1]
# Dev mode also reports callbacks slower than 0.1 s: the machine's load, not a
# leak. Every other message (unclosed, never retrieved, destroyed) still fails.
logging.getLogger("asyncio").addFilter(
    lambda record: not str(record.msg).startswith("Executing "))
SETUP = dict(voice_id="v", input_format="pcm", output_format="pcm",
             json_config={"target_language": "en"})


def run(fn):
    if MODE == "trio":
        import trio
        return trio.run(fn)
    if MODE == "anyio-asyncio-uvloop":
        return anyio.run(fn, backend="asyncio", backend_options={"use_uvloop": True})
    return anyio.run(fn, backend=MODE.split("-")[1])


def client(url):
    module = __import__("s2s_trio" if MODE == "trio" else "s2s_anyio")
    base = url.replace("ws://", "http://").replace("speech/s2s", "")
    return module.S2SClient("k", base_url=base)
"""

NEVER_CLOSED = """
async def main():
    session = await client(URL).s2s_realtime(**SETUP).__aenter__()
    await session.wait_ready()
    await session.send_audio(b"\\0\\0" * 1920)
    # Never closed: the program ends with the session open.

with run_server() as URL:
    run(main)
print("ok")
"""

BREAK_OUT = """
async def main():
    c = client(URL)
    async with c.s2s_realtime(**SETUP) as session:
        await session.send_audio(b"\\0\\0" * 19200)
        await session.send_end_of_stream()
        async for event in session:
            break
    async with c.s2s_stream(SETUP, b"\\0\\0" * 19200, pace=None) as stream:
        async for chunk in stream.iter_audio():
            break
    async with c.s2s_stream(SETUP, b"\\0\\0" * 19200, pace=None) as stream:
        async for event in stream.iter_events():
            break

with run_server() as URL:
    run(main)
print("ok")
"""


def run_program(body: str, mode: str) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(PROGRAM_PREAMBLE) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-c", code, mode],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_a_session_never_closed_prints_nothing(mode: str) -> None:
    done = run_program(NEVER_CLOSED, mode)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_breaking_out_of_iteration_prints_nothing(mode: str) -> None:
    done = run_program(BREAK_OUT, mode)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ok\n"
    assert done.stderr == ""


# --- issue 12 item 10: uvloop -----------------------------------------------------


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_client_and_local_server_on_uvloop(
        secure: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """Both ends in one uvloop loop (the harness's uvloop mode runs the server on asyncio)."""
    server_ctx, client_ctx = tls if secure else (None, None)

    async def main() -> tuple[str, int]:
        loop_module = type(asyncio.get_running_loop()).__module__
        async with anyio.create_task_group() as tasks:
            url = await tasks.start(functools.partial(serve, "127.0.0.1", 0,
                                                      ssl_context=server_ctx))
            client = s2s_anyio.S2SClient("k", base_url=base_url_of(url), ssl_context=client_ctx)
            result = await client.s2s(SETUP, AUDIO, pace=None, trailing_silence_s=0.0)
            tasks.cancel_scope.cancel()
        return loop_module, len(result.raw_data)

    loop_module, size = anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
    assert loop_module.startswith("uvloop")
    assert size == len(AUDIO) * 2 * 2
