"""Latency metrics: the core on a fake clock (exact values), every adapter on the local server."""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core import Metrics, S2SResult
from s2s_core.audio import to_pcm16
from s2s_core.connection import ClientConnection, ServerConnection, UpgradeRequest
from s2s_core.errors import InternalServerError, S2SError
from s2s_core.events import Audio
from s2s_core.loopback import Fault, FaultPlan
from s2s_core.metrics import LAG_BIN_RATIO, SLOT_WINDOW, RequestMeter
from s2s_core.options import ClientOptions
from s2s_core.protocol import AudioInput
from s2s_core.request_table import RequestHandle, RequestTable
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

URL = "ws://127.0.0.1:9/api/speech/s2s"
PCM = Setup(voice_id="v", input_format="pcm", output_format="pcm")
CHUNK = bytes(3840)  # 80 ms of 24 kHz pcm input
FRAME = bytes(7680)  # 80 ms of 48 kHz pcm output
HALF_BIN = math.sqrt(LAG_BIN_RATIO) - 1  # a percentile's largest relative error


# --- the core, on a fake clock ---


class Wire:
    """A request table and a server connection joined in memory; every input has its time."""

    def __init__(self, start: float = 10.0) -> None:
        self.client = ClientConnection(URL, api_key="k", ping_interval=None, ready_timeout=None,
                                       idle_timeout=None, close_timeout=None, now=start)
        self.table = RequestTable(self.client, queue_size=10_000)
        self.server = ServerConnection()

    def _to_server(self) -> None:
        data = self.client.data_to_send()
        if data:
            self.server.receive_data(data)
        for event in self.server.events_received():
            if isinstance(event, UpgradeRequest):
                self.server.accept()

    def open(self, now: float) -> None:
        self._to_server()
        self.table.receive_data(self.server.data_to_send(), now=now)

    def start(self, setup: Setup, now: float) -> RequestHandle:
        handle = self.table.start(setup, now=now)
        self._to_server()
        return handle

    def send(self, handle: RequestHandle, chunks: Sequence[AudioInput], now: float) -> None:
        self.table.send_audio(handle, chunks, now=now)
        self._to_server()

    def end_input(self, handle: RequestHandle, now: float) -> None:
        self.table.send_end_of_stream(handle, now=now)
        self._to_server()

    def deliver(self, message: bytes, now: float) -> None:
        self.server.send_message(message)
        self.table.receive_data(self.server.data_to_send(), now=now)

    def ready(self, now: float, rid: str | None = None, rate: int = 48000) -> None:
        self.deliver(self.server.protocol.send_ready("req-1", rate, client_req_id=rid), now)

    def audio(self, start_s: float | None, stop_s: float | None, now: float,
              data: bytes = FRAME, rid: str | None = None) -> None:
        self.deliver(self.server.protocol.send_audio(data, start_s, stop_s, client_req_id=rid),
                     now)

    def text(self, now: float, rid: str | None = None) -> None:
        self.deliver(self.server.protocol.send_text("hi", 0.0, 0.5, client_req_id=rid), now)

    def end(self, now: float, rid: str | None = None) -> None:
        self.deliver(self.server.protocol.send_end_of_stream(rid), now)


def drain(handle: RequestHandle) -> None:
    while handle.next() is not None:
        pass


def test_times_count_from_the_start_of_the_connection() -> None:
    wire = Wire(start=10.0)
    wire.open(now=10.25)
    handle = wire.start(PCM, now=10.5)
    wire.ready(now=11.0)
    wire.send(handle, [CHUNK], now=11.0)
    wire.audio(0.0, 0.08, now=11.5)
    wire.text(now=12.0)
    wire.end_input(handle, now=12.0)
    wire.end(now=12.5)
    drain(handle)
    metrics = handle.result().metrics
    assert metrics == handle.metrics()
    assert metrics == Metrics(connect_s=0.25, ready_s=1.0, first_text_s=2.0, first_audio_s=1.5,
                              lag_p50_s=metrics.lag_p50_s, lag_p95_s=metrics.lag_p95_s,
                              lag_max_s=0.5, lag_count=1, audio_in_s=0.08, audio_out_s=0.08,
                              real_time_factor=0.08 / 1.5, elapsed_s=2.5, ended=True)


def test_lag_of_each_output_chunk_is_measured_from_the_send_of_its_input() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(PCM, now=0.0)
    wire.ready(now=0.0)
    lags = [0.1 + 0.01 * k for k in range(20)]
    for k, lag in enumerate(lags):
        sent = 1.0 + 0.08 * k
        wire.send(handle, [CHUNK], now=sent)
        # The chunk covers input [0.08 k, 0.08 (k + 1)]: its input went out at ``sent``.
        wire.audio(0.08 * k, 0.08 * (k + 1), now=sent + lag)
    metrics = handle.metrics()
    assert metrics.lag_count == 20
    assert metrics.lag_max_s == pytest.approx(lags[-1], abs=1e-12)
    # Nearest rank: the 10th and the 19th of the 20 sorted lags.
    assert metrics.lag_p50_s == pytest.approx(lags[9], rel=HALF_BIN)
    assert metrics.lag_p95_s == pytest.approx(lags[18], rel=HALF_BIN)
    assert metrics.ended is False


def test_output_counted_by_start_s_when_stop_s_is_absent_and_untimed_chunks_skipped() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(PCM, now=0.0)
    wire.ready(now=0.0)
    wire.send(handle, [CHUNK, CHUNK], now=1.0)
    wire.send(handle, [CHUNK], now=2.0)
    wire.audio(0.2, None, now=2.75)  # input at 0.2 s went out at 2.0
    wire.audio(None, None, now=3.0)  # which input it covers is unknown
    metrics = handle.metrics()
    assert metrics.lag_count == 1 and metrics.lag_max_s == pytest.approx(0.75)
    assert metrics.audio_out_s == pytest.approx(0.16)  # both chunks' audio counts


def test_a_chunk_boundary_belongs_to_the_slot_before_it() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(PCM, now=0.0)
    wire.ready(now=0.0)
    wire.send(handle, [CHUNK], now=1.0)
    wire.send(handle, [CHUNK], now=2.0)
    wire.audio(0.0, 0.08, now=3.0)  # ends exactly where the first chunk ends
    assert handle.metrics().lag_max_s == pytest.approx(2.0)


def test_output_beyond_the_last_whole_slot_uses_the_latest_send() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(PCM, now=0.0)
    wire.ready(now=0.0)
    wire.send(handle, [CHUNK], now=1.0)
    wire.send(handle, [CHUNK[:960]], now=1.5)  # a 20 ms tail
    wire.audio(0.08, 0.1, now=1.625)
    metrics = handle.metrics()
    assert metrics.lag_max_s == pytest.approx(0.125)
    assert metrics.audio_in_s == pytest.approx(0.1)


def test_real_time_factor_is_input_seconds_over_wall_seconds_from_first_send_to_end() -> None:
    for pace, expected in ((1.0, 1.0), (None, 8.0)):
        wire = Wire(start=0.0)
        wire.open(now=0.0)
        handle = wire.start(PCM, now=0.0)
        wire.ready(now=0.1)
        if pace is None:
            wire.send(handle, [CHUNK] * 10, now=1.0)  # 0.8 s at once
        else:
            for k in range(10):
                wire.send(handle, [CHUNK], now=1.0 + 0.08 * k)
        wire.end_input(handle, now=1.72 if pace else 1.0)
        wire.end(now=1.8 if pace else 1.1)
        drain(handle)
        metrics = handle.result().metrics
        assert metrics is not None
        assert metrics.audio_in_s == pytest.approx(0.8)
        assert metrics.real_time_factor == pytest.approx(expected)


def test_live_view_follows_the_clock_and_freezes_at_the_end() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.5)
    handle = wire.start(PCM, now=0.5)
    live = handle.metrics()
    assert (live.connect_s, live.ready_s, live.first_audio_s, live.lag_p50_s) == (
        0.5, None, None, None)
    assert (live.audio_in_s, live.audio_out_s, live.real_time_factor) == (0.0, 0.0, None)
    assert live.elapsed_s == 0.5 and not live.ended
    wire.ready(now=1.0)
    wire.send(handle, [CHUNK], now=1.0)
    assert handle.metrics(now=3.0).elapsed_s == 3.0  # an adapter may pass its own now
    assert handle.metrics().real_time_factor is None  # no time has passed since the send
    wire.end_input(handle, now=1.04)
    assert handle.metrics().real_time_factor == pytest.approx(2.0)
    wire.end(now=1.2)
    final = handle.metrics()
    assert final.ended and final.elapsed_s == pytest.approx(1.2)
    wire.table.receive_eof(now=9.0)
    assert handle.metrics() == final
    assert handle.metrics(now=99.0) == final


def test_a_later_request_on_a_reused_connection_counts_from_its_setup() -> None:
    wire = Wire(start=0.0)
    wire.open(now=2.0)
    reused = Setup(voice_id="v", input_format="pcm", output_format="pcm",
                   close_ws_on_eos=False)
    first = wire.start(reused, now=2.0)
    wire.ready(now=2.5)
    wire.end_input(first, now=3.0)
    wire.end(now=3.0)
    drain(first)
    second = wire.start(reused, now=5.0)
    wire.ready(now=5.25)
    assert first.metrics().connect_s == 2.0 and first.metrics().ready_s == 2.5
    assert second.metrics().connect_s == 0.0 and second.metrics().ready_s == 0.25


def test_requests_multiplexed_on_one_socket_are_metered_apart() -> None:
    wire = Wire(start=0.0)
    wire.open(now=1.0)
    a = wire.start(Setup(voice_id="v", input_format="pcm", output_format="pcm",
                         client_req_id="a", close_ws_on_eos=False), now=1.0)
    b = wire.start(Setup(voice_id="v", input_format="pcm", output_format="pcm",
                         client_req_id="b", close_ws_on_eos=False), now=1.5)
    wire.ready(now=2.0, rid="b")
    wire.ready(now=3.0, rid="a")
    wire.send(a, [CHUNK], now=3.0)
    wire.send(b, [CHUNK, CHUNK], now=3.0)
    wire.audio(0.0, 0.08, now=3.25, rid="b")
    assert (a.metrics().ready_s, b.metrics().ready_s) == (3.0, 0.5)
    assert (a.metrics().audio_in_s, b.metrics().audio_in_s) == (0.08, 0.16)
    assert (a.metrics().lag_count, b.metrics().lag_count) == (0, 1)


def test_a_setup_sent_before_the_upgrade_learns_its_connect_time_later() -> None:
    wire = Wire(start=0.0)
    handle = wire.table.start(PCM, now=0.1)
    assert handle.metrics().connect_s is None
    wire.open(now=0.75)
    assert handle.metrics().connect_s == 0.75


def test_a_server_error_carries_the_metrics_in_its_partial_result() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.5)
    handle = wire.start(PCM, now=0.5)
    wire.ready(now=1.0)
    wire.send(handle, [CHUNK], now=1.0)
    wire.audio(0.0, 0.08, now=1.5)
    wire.deliver(wire.server.protocol.send_error("worker died", 1011), now=2.0)
    with pytest.raises(InternalServerError) as info:
        drain(handle)
    partial = info.value.partial_result
    assert partial is not None and not partial.complete and partial.metrics is not None
    assert partial.metrics.ended and partial.metrics.elapsed_s == 2.0
    assert (partial.metrics.ready_s, partial.metrics.first_audio_s) == (1.0, 1.5)
    assert partial.metrics.lag_max_s == pytest.approx(0.5)


def test_a_close_ends_the_metrics_at_its_time() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.5)
    handle = wire.start(PCM, now=0.5)
    wire.table.receive_eof(now=4.0)
    with pytest.raises(S2SError) as info:
        drain(handle)
    assert info.value.partial_result is not None
    assert info.value.partial_result.metrics == Metrics(
        connect_s=0.5, audio_in_s=0.0, audio_out_s=0.0, elapsed_s=4.0, ended=True)


def wav_bytes(samples: int, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(bytes(2 * samples))
    return buffer.getvalue()


def test_wav_input_seconds_come_from_its_header_and_wav_output_skips_its_header() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(Setup(voice_id="v", input_format="wav", output_format="wav"), now=0.0)
    wire.ready(now=0.0)
    data = wav_bytes(16000, 16000)  # 1 s at 16 kHz
    wire.send(handle, [data[:30]], now=1.0)  # part of the header: no audio yet
    wire.send(handle, [data[30:16044]], now=2.0)  # up to 0.5 s
    wire.send(handle, [memoryview(data)[16044:]], now=3.0)
    out = wav_bytes(48000 // 4, 48000)  # 0.25 s at 48 kHz, header included
    wire.audio(0.0, 0.4, now=2.5, data=out)
    metrics = handle.metrics()
    assert metrics.audio_in_s == pytest.approx(1.0)
    assert metrics.audio_out_s == pytest.approx(0.25)
    assert metrics.lag_max_s == pytest.approx(0.5)


@pytest.mark.parametrize(("fmt", "chunk", "seconds"), [
    ("ulaw_8000", bytes(640), 0.08),
    ("pcm_16000", np.zeros(1280, dtype=np.float32), 0.08),
    ("pcm", memoryview(bytearray(1920)).cast("h"), 0.04),  # len() counts samples here
])
def test_raw_input_seconds_whatever_the_chunk_type(fmt: str, chunk: Any,
                                                   seconds: float) -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(Setup(voice_id="v", input_format=fmt, output_format="pcm_16000"),
                        now=0.0)
    wire.ready(now=0.0, rate=48000)  # a rate in the output's name wins over ready's
    wire.send(handle, [chunk, chunk], now=1.0)
    wire.audio(0.0, 0.01, now=1.0, data=bytes(3200))
    metrics = handle.metrics()
    assert metrics.audio_in_s == pytest.approx(2 * seconds)
    assert metrics.audio_out_s == pytest.approx(0.1)


def test_plain_pcm_output_takes_the_rate_of_ready() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(PCM, now=0.0)
    wire.ready(now=0.0, rate=24000)
    wire.audio(None, None, now=1.0, data=bytes(4800))
    assert handle.metrics().audio_out_s == pytest.approx(0.1)


def test_opus_durations_are_unknown_and_give_no_lag() -> None:
    wire = Wire(start=0.0)
    wire.open(now=0.0)
    handle = wire.start(Setup(voice_id="v", input_format="opus", output_format="opus"),
                        now=0.0)
    wire.ready(now=0.0)
    wire.send(handle, [b"OggS" + bytes(100)], now=1.0)
    wire.audio(0.0, 0.08, now=1.5, data=b"OggS" + bytes(60))
    metrics = handle.metrics()
    assert (metrics.audio_in_s, metrics.audio_out_s, metrics.real_time_factor) == (
        None, None, None)
    assert (metrics.lag_count, metrics.lag_p50_s, metrics.first_audio_s) == (0, None, 1.5)


def test_percentiles_of_many_lags_are_within_half_a_bin_of_the_exact_ones() -> None:
    meter = RequestMeter(PCM, origin=0.0, opened_at=0.0)
    rng = np.random.default_rng(7)
    lags = np.concatenate([rng.exponential(0.2, 5000), rng.uniform(0.0, 3e-5, 50),
                           [12.5]])
    meter.sent([bytes(3840 * len(lags))], now=0.0)  # one slot per lag, all sent at 0
    for k, lag in enumerate(lags):
        meter.audio(Audio(audio=b"", start_s=0.08 * k, stop_s=0.08 * (k + 1)), float(lag))
    metrics = meter.metrics(now=20.0)
    ordered = np.sort(lags)
    for q, value in ((0.50, metrics.lag_p50_s), (0.95, metrics.lag_p95_s)):
        exact = ordered[math.ceil(q * len(lags)) - 1]
        assert value == pytest.approx(exact, rel=HALF_BIN)
    assert metrics.lag_max_s == 12.5 and metrics.lag_count == len(lags)


def test_tiny_and_huge_lags_stay_ordered() -> None:
    meter = RequestMeter(PCM, origin=0.0, opened_at=0.0)
    meter.sent([CHUNK], now=0.0)
    meter.audio(Audio(audio=b"", start_s=0.0, stop_s=0.08), 0.0)  # no lag at all
    metrics = meter.metrics(now=0.0)
    assert metrics.lag_p50_s == metrics.lag_p95_s == metrics.lag_max_s == 0.0
    meter.audio(Audio(audio=b"", start_s=0.0, stop_s=0.08), 5000.0)  # past the last bin
    metrics = meter.metrics(now=5000.0)
    assert metrics.lag_p50_s is not None and metrics.lag_p95_s is not None
    assert metrics.lag_max_s == 5000.0
    assert 0.0 <= metrics.lag_p50_s <= metrics.lag_p95_s <= metrics.lag_max_s


def test_an_hour_of_input_keeps_the_memory_bounded() -> None:
    meter = RequestMeter(PCM, origin=0.0, opened_at=0.0)
    slots = 45_000  # an hour of 80 ms chunks
    for k in range(slots):
        meter.sent((CHUNK,), now=0.08 * k)
        meter.audio(Audio(audio=FRAME, start_s=0.08 * k, stop_s=0.08 * (k + 1)),
                    0.08 * k + 0.25)
        assert len(meter._sent_at) <= 2 * SLOT_WINDOW
    assert len(meter._hist) < 2000
    # A chunk whose input slot was dropped long ago is not guessed at.
    meter.audio(Audio(audio=FRAME, start_s=0.0, stop_s=0.08), 3600.0)
    metrics = meter.metrics(now=3600.0)
    assert metrics.lag_count == slots
    assert metrics.lag_max_s == pytest.approx(0.25)
    assert metrics.audio_in_s == pytest.approx(3600.0)
    assert metrics.audio_out_s == pytest.approx(3600.0 + 0.08)


# --- every adapter mode, against the local server ---


SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
SPEECH = np.concatenate([tone_burst(), tone_burst(0.1, 0.3)])  # 2.6 s
TRAILING_S = 0.4
INPUT_S = len(SPEECH) / 24000 + TRAILING_S  # 3.0 s


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


def check_consistent(metrics: Metrics | None, *, audio_in_s: float) -> Metrics:
    """What must hold of a complete request's metrics against the loopback server."""
    assert metrics is not None and metrics.ended
    assert metrics.connect_s is not None and metrics.ready_s is not None
    assert metrics.first_audio_s is not None and metrics.first_text_s is not None
    assert 0.0 < metrics.connect_s <= metrics.ready_s <= metrics.first_audio_s
    assert metrics.ready_s <= metrics.first_text_s <= metrics.elapsed_s
    assert metrics.first_audio_s <= metrics.elapsed_s
    assert metrics.lag_p50_s is not None and metrics.lag_p95_s is not None
    assert 0.0 <= metrics.lag_p50_s <= metrics.lag_p95_s <= metrics.lag_max_s  # type: ignore[operator]
    # The loopback echoes the input in 80 ms frames, each timed: every one is measured.
    assert metrics.lag_count == math.ceil(round(audio_in_s / 0.08, 6))
    assert metrics.audio_in_s == pytest.approx(audio_in_s)
    assert metrics.audio_out_s == pytest.approx(audio_in_s)  # an echo
    return metrics


def test_s2s_paced_at_real_time_has_a_real_time_factor_about_one(harness: Harness,
                                                                  url: str) -> None:
    result = harness.s2s(url, SETUP, SPEECH, pace=1.0, trailing_silence_s=TRAILING_S,
                         lead_in_silence_s=0.0)
    metrics = check_consistent(result.metrics, audio_in_s=INPUT_S)
    assert metrics.real_time_factor is not None
    # A consistency check, not a timing benchmark: the pacer sends at real time.
    assert 0.7 <= metrics.real_time_factor <= 1.3
    assert metrics.elapsed_s >= metrics.audio_in_s * 0.7  # type: ignore[operator]


def test_s2s_unpaced_runs_well_above_real_time(harness: Harness, url: str) -> None:
    result = harness.s2s(url, SETUP, SPEECH, pace=None, trailing_silence_s=TRAILING_S,
                         lead_in_silence_s=0.0)
    metrics = check_consistent(result.metrics, audio_in_s=INPUT_S)
    assert metrics.real_time_factor is not None and metrics.real_time_factor > 3


class GatedSource:
    """Input that sends 80 ms of silence until ``opened``, then the speech.

    The request cannot end before the test has looked at its live metrics.
    """

    def __init__(self) -> None:
        self.opened = False
        self.silent = 0
        self.speech = to_pcm16(SPEECH)

    def __iter__(self) -> Iterator[bytes]:
        yield self.speech[:3840]
        while not self.opened:
            self.silent += 1
            yield bytes(3840)
        yield self.speech[3840:]

    @property
    def seconds(self) -> float:
        return len(self.speech) / 48000 + 0.08 * self.silent + TRAILING_S


def stream_run(harness: Harness, url: str,
               source: GatedSource) -> tuple[list[Metrics], Metrics, S2SResult]:
    """s2s_stream: the stream's metrics when yielded, after each event, at the end; the result."""
    client = harness.module.S2SClient(  # type: ignore[attr-defined]
        api_key="k", base_url=url.replace("ws://", "http://").replace("speech/s2s", ""))
    seen: list[Metrics] = []
    if harness.mode == "threaded":
        with client.s2s_stream(SETUP, source, pace=4.0, trailing_silence_s=TRAILING_S,
                               lead_in_silence_s=0.0, keep_audio=True) as stream:
            seen.append(stream.metrics)
            source.opened = True
            for _ in stream.iter_events():
                seen.append(stream.metrics)
            return seen, stream.metrics, stream.result()

    async def go() -> tuple[list[Metrics], Metrics, S2SResult]:
        async with client.s2s_stream(SETUP, source, pace=4.0, trailing_silence_s=TRAILING_S,
                                     lead_in_silence_s=0.0, keep_audio=True) as stream:
            seen.append(stream.metrics)
            source.opened = True
            async for _ in stream.iter_events():
                seen.append(stream.metrics)
            return seen, stream.metrics, await stream.result()

    return harness.run(go)  # type: ignore[attr-defined, no-any-return]


def test_stream_metrics_are_live_then_final(harness: Harness, url: str) -> None:
    source = GatedSource()
    seen, final, result = stream_run(harness, url, source)
    live = seen[0]
    assert live.ready_s is not None and not live.ended  # yielded once ready, input still open
    assert live.audio_in_s is not None and live.audio_in_s < source.seconds
    counts = [m.lag_count for m in seen]
    assert counts == sorted(counts)  # the live view only grows
    check_consistent(final, audio_in_s=source.seconds)
    assert result.metrics == final


def session_run(harness: Harness, url: str) -> tuple[Metrics, Metrics, Metrics]:
    """s2s_realtime: the session's metrics once ready, after the input, and at the end."""
    client = harness.module.S2SClient(  # type: ignore[attr-defined]
        api_key="k", base_url=url.replace("ws://", "http://").replace("speech/s2s", ""))
    pcm = to_pcm16(SPEECH) + bytes(int(24000 * TRAILING_S) * 2)
    chunks = [pcm[i:i + 3840] for i in range(0, len(pcm), 3840)]
    if harness.mode == "threaded":
        with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
            at_ready = session.metrics
            for chunk in chunks:
                session.send_audio(chunk)
            session.send_end_of_stream()
            sent = session.metrics
            for _ in session:
                pass
            return at_ready, sent, session.metrics

    async def go() -> tuple[Metrics, Metrics, Metrics]:
        async with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
            at_ready = session.metrics
            for chunk in chunks:
                await session.send_audio(chunk)
            await session.send_end_of_stream()
            sent = session.metrics
            async for _ in session:
                pass
            return at_ready, sent, session.metrics

    return harness.run(go)  # type: ignore[attr-defined, no-any-return]


def test_session_metrics_are_live_then_final(harness: Harness, url: str) -> None:
    at_ready, sent, final = session_run(harness, url)
    assert at_ready.ready_s is not None and at_ready.audio_in_s == 0.0
    assert not at_ready.ended and at_ready.first_audio_s is None
    assert sent.audio_in_s == pytest.approx(INPUT_S)
    check_consistent(final, audio_in_s=INPUT_S)


def test_a_failed_request_reports_its_metrics_with_the_partial_result(harness: Harness) -> None:
    with (run_server(fault=FaultPlan(Fault.ERROR_1011, after_messages=6)) as faulty,
          pytest.raises(InternalServerError) as info):
        harness.s2s(faulty, SETUP, SPEECH, pace=None, trailing_silence_s=TRAILING_S,
                    lead_in_silence_s=0.0, options=ClientOptions(retry=None))
    partial = info.value.partial_result
    assert partial is not None and partial.metrics is not None
    metrics = partial.metrics
    assert metrics.ended and metrics.ready_s is not None and metrics.first_audio_s is not None
    assert metrics.connect_s is not None and metrics.connect_s <= metrics.ready_s
    assert 0 < metrics.lag_count < INPUT_S / 0.08
    assert metrics.audio_out_s == pytest.approx(len(partial.raw_data) / 96000)
