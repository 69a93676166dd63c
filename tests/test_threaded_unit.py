"""What is specific to the threaded adapter: its one reader thread, close(), pacing, Ctrl-C."""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

import s2s_threaded as st
from s2s_anyio import run_server
from s2s_core.errors import ConnectionClosedError
from s2s_core.events import Audio
from s2s_core.loopback import Fault, FaultPlan

SETUP = st.Setup(voice_id="v", input_format="pcm", output_format="pcm",
                 json_config={"target_language": "en"})


def tone(seconds: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(24000 * seconds)) / 24000
    return (np.sin(2 * np.pi * 220 * t) * 12000).astype(np.int16)


def base_url(url: str) -> str:
    return url.replace("ws://", "http://").replace("wss://", "https://").rsplit("/speech", 1)[0]


@pytest.fixture
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


def readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("s2s-reader")]


def test_close_from_another_thread_wakes_a_blocked_iterator(url: str) -> None:
    with st.connect(url, SETUP, idle_timeout=None) as session:
        ready = session.wait_ready()
        timer = threading.Timer(0.3, session.close)
        timer.start()
        started = time.monotonic()
        with pytest.raises(ConnectionClosedError) as info:
            for _ in session:  # nothing more comes: no audio was sent
                pass
        timer.join()
        assert time.monotonic() - started < 10
        assert info.value.partial_result is not None
        assert info.value.partial_result.request_id == ready.request_id
        assert not readers()


def test_no_thread_left_after_any_exit(url: str) -> None:
    before = set(threading.enumerate())
    audio = tone(1.0).tobytes()

    with st.connect(url, SETUP) as session:  # normal end
        session.send_audio(audio)
        session.send_end_of_stream()
        assert session.result().complete
    assert set(threading.enumerate()) <= before

    with pytest.raises(ValueError), st.connect(url, SETUP) as session:  # error in the block
        session.send_audio(audio)
        raise ValueError("boom")
    assert set(threading.enumerate()) <= before

    # The reader blocked on a full queue (nobody reads) must still be released.
    started = time.monotonic()
    with st.connect(url, SETUP, queue_size=1) as session:
        for _ in range(10):
            session.send_audio(audio[:3840])
        time.sleep(0.3)
        assert session.connection.table.saturated
    assert time.monotonic() - started < 10
    assert set(threading.enumerate()) <= before
    assert not readers()


def test_pacing_feeds_input_while_events_are_consumed(url: str) -> None:
    client = st.S2SClient("k", base_url=base_url(url))
    seconds, pace = 3.0, 2.0
    started = time.monotonic()
    with client.s2s_stream(SETUP, tone(seconds), pace=pace, trailing_silence_s=0.0,
                           keep_audio=True) as stream:
        audio_events = audio_while_feeding = 0
        for event in stream.iter_events():
            if type(event) is Audio:
                audio_events += 1
                audio_while_feeding += stream._pump.due is not None
        result = stream.result()
    elapsed = time.monotonic() - started
    assert result.complete
    assert stream.sample_rate == 48000
    assert len(result.raw_data) == seconds * 48000 * 2
    # Output arrived while input was still being sent, and the input was paced.
    assert audio_while_feeding >= audio_events // 2
    assert elapsed >= seconds / pace / 2


def test_unpaced_long_input_with_tiny_queue_does_not_deadlock(url: str) -> None:
    # The consuming thread also sends: while it is blocked writing, the reader
    # must keep reading, or the server stops reading our input (no progress).
    client = st.S2SClient("k", base_url=base_url(url), options=st.ClientOptions(queue_size=1))
    seconds = 240.0  # enough to fill the loopback buffers; the server allows 300 s
    results: list[st.S2SResult] = []
    worker = threading.Thread(target=lambda: results.append(
        client.s2s(SETUP, tone(seconds), pace=None, trailing_silence_s=0.0)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "deadlocked"
    assert len(results[0].raw_data) == seconds * 48000 * 2


def test_dropped_tcp_raises_connection_closed_with_partial_result() -> None:
    with run_server(fault=FaultPlan(Fault.DROP_TCP, after_messages=3)) as url:
        client = st.S2SClient("k", base_url=base_url(url))
        with pytest.raises(ConnectionClosedError) as info:
            client.s2s(SETUP, tone(2.0), pace=None)
    error = info.value
    assert error.code == 1006
    partial = error.partial_result
    assert isinstance(partial, st.S2SResult)
    assert partial.complete is False
    assert partial.request_id is not None
    assert not readers()


def test_ctrl_c_while_blocked_propagates_and_closes(url: str) -> None:
    with pytest.raises(KeyboardInterrupt), st.connect(url, SETUP, idle_timeout=None) as session:
        session.wait_ready()
        threading.Timer(0.3, _thread.interrupt_main).start()
        started = time.monotonic()
        try:
            session.receive()  # Ready
            session.receive()  # blocks: nothing more comes
        finally:
            assert time.monotonic() - started < 5
    assert not readers()
