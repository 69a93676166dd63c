"""Issue 7: secrets never shown, misuse gets clear errors, cancellation leaves
nothing behind, and a flooding server cannot grow client memory."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
from collections.abc import Iterator

import anyio
import numpy as np
import pytest

import s2s_anyio
import s2s_threaded
from harness import ASYNC_MODES, MODES, base_url_of, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core.connection import ClientConnection
from s2s_core.errors import InvalidAudio, LocalProtocolError, PolicyViolation, S2SError
from s2s_core.events import Audio
from s2s_core.loopback import Fault, FaultPlan
from s2s_core.options import ClientOptions
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(90)

SETUP = Setup(voice_id="v")
SENTINEL = "sk-SENTINEL-5f3a9c"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --- secrets ---------------------------------------------------------------


def _texts_of(exc: BaseException | None) -> list[str]:
    if exc is None:
        return []
    return ["".join(traceback.format_exception(exc)), repr(exc), str(exc),
            repr(getattr(exc, "partial_result", None))]


@pytest.mark.parametrize("mode", MODES)
def test_keys_and_tokens_never_appear(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    harness = harness_for(mode)
    seen: list[str] = []
    with run_server(api_keys=[SENTINEL], tokens=[SENTINEL + "-tok"]) as url:
        result = harness.s2s(url, SETUP, tone_burst(), api_key=SENTINEL, pace=None)
        seen.append(repr(result))
        result = harness.s2s(url, SETUP, tone_burst(), token=SENTINEL + "-tok", pace=None)
        for key in (SENTINEL + "-wrong", SENTINEL + "-tok"):  # a wrong key; a used token
            kind = "token" if key.endswith("tok") else "api_key"
            with pytest.raises(PolicyViolation) as info:
                harness.s2s(url, SETUP, tone_burst(), pace=None, **{kind: key})
            seen.extend(_texts_of(info.value))
    with run_server(api_keys=[SENTINEL], fault=FaultPlan(Fault.CLOSE_1011)) as url:
        with pytest.raises(S2SError) as failure:
            harness.s2s(url, SETUP, tone_burst(), api_key=SENTINEL, pace=None)
        seen.extend(_texts_of(failure.value))
    module = harness.module  # type: ignore[attr-defined]
    seen.append(repr(module.S2SClient(SENTINEL, base_url="http://h/api/")))
    seen.append(repr(module.S2SClient(token=SENTINEL, base_url="http://h/api/")))
    conn = ClientConnection("ws://h/api/speech/s2s", api_key=SENTINEL, token=SENTINEL)
    seen.append(repr(conn))
    seen.extend(record.getMessage() for record in caplog.records)
    seen.extend(str(record.args) for record in caplog.records)
    assert not [text for text in seen if SENTINEL in text]


# --- misuse ------------------------------------------------------------------


def test_misuse_gets_clear_errors_async() -> None:
    async def go() -> None:
        with run_server() as url:
            async with s2s_anyio.connect(url, SETUP) as session:
                with pytest.raises(InvalidAudio, match="int32"):
                    await session.send_audio(np.zeros(10, dtype=np.int32))
                with pytest.raises(InvalidAudio, match="downmix"):
                    await session.send_audio(np.zeros((10, 2), dtype=np.int16))
                with pytest.raises(InvalidAudio, match="odd"):
                    await session.send_audio(b"\x00\x00\x00")
                await session.send_audio(np.zeros(1920, dtype=np.float32))
                await session.send_end_of_stream()
                with pytest.raises(LocalProtocolError, match="audio"):
                    await session.send_audio(b"\x00\x00")
                iterator = session.__aiter__()
                await iterator.__anext__()
                with pytest.raises(LocalProtocolError, match="another consumer"):
                    await session.__aiter__().__anext__()
                async for _ in iterator:
                    pass
            with pytest.raises(S2SError):
                await session.send_audio(b"\x00\x00")

    anyio.run(go)


def test_misuse_gets_clear_errors_threaded() -> None:
    with run_server() as url:
        with s2s_threaded.connect(url, SETUP) as session:
            with pytest.raises(InvalidAudio, match="int32"):
                session.send_audio(np.zeros(10, dtype=np.int32))
            with pytest.raises(InvalidAudio, match="downmix"):
                session.send_audio(np.zeros((10, 2), dtype=np.int16))
            with pytest.raises(InvalidAudio, match="odd"):
                session.send_audio(b"\x00\x00\x00")
            session.send_audio(np.zeros(1920, dtype=np.float32))
            session.send_end_of_stream()
            with pytest.raises(LocalProtocolError, match="audio"):
                session.send_audio(b"\x00\x00")
            iterator = iter(session)
            next(iterator)
            with pytest.raises(LocalProtocolError, match="another consumer"):
                next(iter(session))
            for _ in iterator:
                pass
        with pytest.raises(S2SError):
            session.send_audio(b"\x00\x00")


def test_bad_input_in_a_stream_fails_it_without_hanging() -> None:
    def bad_chunks() -> Iterator[object]:
        yield np.zeros(1920, dtype=np.int16)
        yield "not audio"

    for mode in MODES:
        with run_server() as url:
            out = harness_for(mode).stream(url, SETUP, bad_chunks(), pace=None)
        assert isinstance(out.error, InvalidAudio), (mode, out.error)


# --- cancellation --------------------------------------------------------------


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_cancellation_at_random_points_leaves_nothing(mode: str) -> None:
    harness = harness_for(mode)
    module = harness.module  # type: ignore[attr-defined]
    rng = random.Random(7)
    harness.run(anyio.lowlevel.checkpoint)  # type: ignore[attr-defined]  # uvloop's lasting pipe
    fds, threads = open_fds(), threading.active_count()
    with run_server(fault=FaultPlan(Fault.SLOW_OUTPUT, slow_delay_s=0.01)) as url:
        client = module.S2SClient("k", base_url=base_url_of(url))
        outcomes = []
        for _ in range(12):
            delay = rng.uniform(0.0, 0.4)

            async def go(delay: float = delay) -> str:
                with anyio.move_on_after(delay) if mode != "trio" else _trio_move_on(delay):
                    await client.s2s(SETUP, tone_burst(), pace=2.0)
                    return "done"
                return "cancelled"

            started = time.monotonic()
            outcomes.append(harness.run(go))  # type: ignore[attr-defined]
            assert time.monotonic() - started < delay + 6  # the close is bounded
        assert "cancelled" in outcomes
        # The server saw every one of those sockets close (or is closing them now).
        time.sleep(0.3)
    deadline = time.monotonic() + 3
    while open_fds() > fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() <= fds
    assert threading.active_count() <= threads


def _trio_move_on(delay: float) -> object:
    import trio

    return trio.move_on_after(delay)


# --- memory under a flood --------------------------------------------------------


SERVER_SCRIPT = """
import anyio, sys
import s2s_anyio
async def main():
    async with anyio.create_task_group() as tg:
        url = await tg.start(s2s_anyio.serve, "127.0.0.1", 0)
        print(url, flush=True)
anyio.run(main)
"""


@pytest.fixture
def server_process() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def test_slow_consumer_keeps_client_memory_bounded(server_process: str) -> None:
    """60 s of input makes ~11.5 MB of output; a slow consumer must not buffer it all."""
    audio = np.zeros(24000 * 60, dtype=np.int16)
    client = s2s_anyio.S2SClient("k", base_url=base_url_of(server_process),
                                 options=ClientOptions(queue_size=4))
    received = 0

    async def go() -> None:
        nonlocal received
        async with client.s2s_stream(SETUP, audio, pace=None, trailing_silence_s=0.0) as stream:
            async for event in stream.iter_events():
                if isinstance(event, Audio):
                    received += len(event.audio)
                    await anyio.sleep(0.001)

    tracemalloc.start()
    try:
        anyio.run(go)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == len(audio) * 4
    assert peak < 6 * 2**20, f"client memory peaked at {peak / 2**20:.1f} MiB"
