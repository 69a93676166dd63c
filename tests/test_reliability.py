"""Issue 7: every injected fault x every adapter mode x every API ends well.

"Well" means: within a bound, with the right typed exception, with what was
received before the fault kept, without a busy loop, and with no socket or
thread left behind.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from harness import MODES, Harness, StreamOutcome, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core.audio import to_pcm16
from s2s_core.errors import (
    ConnectionClosedError,
    IdleTimeout,
    InternalServerError,
    MessageTooBig,
    RemoteProtocolError,
    S2SError,
)
from s2s_core.events import Audio, Ready
from s2s_core.loopback import Fault, FaultPlan
from s2s_core.options import ClientOptions
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
AUDIO = tone_burst()
PCM = to_pcm16(AUDIO)
CHUNKS = [PCM[i:i + 3840] for i in range(0, len(PCM), 3840)]
IDLE_TIMEOUT = 1.5
BOUND_S = IDLE_TIMEOUT + 2 + 2  # fault + configured timeout + 2 s, and slack for a loaded CI

FAILING = {
    Fault.DROP_TCP: (ConnectionClosedError, 1006),
    Fault.CLOSE_1011: (ConnectionClosedError, 1011),
    Fault.ERROR_1011: (InternalServerError, 1011),
    Fault.ERROR_KEEP_OPEN: (InternalServerError, 1011),
    Fault.STALL: (IdleTimeout, None),
    Fault.MALFORMED_JSON: (RemoteProtocolError, 1002),
    Fault.INVALID_UTF8: (RemoteProtocolError, 1007),
    Fault.OVERSIZED: (MessageTooBig, 1009),
}
APIS = ("s2s", "stream", "realtime")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_api(harness: Harness, api: str, url: str) -> tuple[BaseException | None, StreamOutcome]:
    # One attempt: how each fault ends a request (retries have their own tests).
    # No lead-in: the first output frames (the fault comes after 4 messages) are the input's.
    options = ClientOptions(idle_timeout=IDLE_TIMEOUT, max_message_size=2**20, retry=None)
    if api == "s2s":
        try:
            harness.s2s(url, SETUP, AUDIO, pace=None, options=options, lead_in_silence_s=0.0)
        except S2SError as exc:
            return exc, StreamOutcome()
        return None, StreamOutcome()
    if api == "stream":
        out = harness.stream(url, SETUP, AUDIO, pace=None, options=options,
                             lead_in_silence_s=0.0)
    else:
        out = harness.realtime_outcome(url, SETUP, CHUNKS, options=options)
    return out.error, out


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", list(FAILING), ids=lambda f: f.value)
@pytest.mark.parametrize("mode", MODES)
def test_fault_matrix(mode: str, fault: Fault, api: str) -> None:
    harness = harness_for(mode)
    error_type, code = FAILING[fault]
    fds, threads = open_fds(), threading.active_count()
    with run_server(fault=FaultPlan(fault, after_messages=4)) as url:
        wall, cpu = time.monotonic(), time.process_time()
        error, out = run_api(harness, api, url)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
    assert isinstance(error, error_type), repr(error)
    assert wall < BOUND_S
    if fault in (Fault.STALL, Fault.ERROR_KEEP_OPEN):
        assert cpu < 0.5 * wall + 0.2, f"busy waiting: {cpu:.2f} s CPU in {wall:.2f} s"
    if code is not None:
        assert code in (getattr(error, "code", None), getattr(error, "close_code", None))
    # What arrived before the fault is kept: on the error, and in what was iterated.
    partial = error.partial_result
    assert partial is not None and not partial.complete and partial.request_id
    if api == "s2s":
        assert len(partial.raw_data) >= 3 * 7680
    else:
        assert len([e for e in out.events if isinstance(e, Audio)]) >= 3
    # No socket and no thread outlive the call (the server's are gone too).
    deadline = time.monotonic() + 2
    while (open_fds() > fds or threading.active_count() > threads) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert open_fds() <= fds
    assert threading.active_count() <= threads


@pytest.mark.parametrize("mode", MODES)
def test_realtime_keeps_events_before_the_fault(mode: str) -> None:
    harness = harness_for(mode)
    with run_server(fault=FaultPlan(Fault.CLOSE_1011, after_messages=4)) as url:
        out = harness.realtime_outcome(url, SETUP, CHUNKS)
    assert isinstance(out.error, ConnectionClosedError) and out.error.code == 1011
    assert isinstance(out.events[0], Ready)
    assert len([e for e in out.events if isinstance(e, Audio)]) == 3
