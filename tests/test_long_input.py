"""Inputs longer than one request, on every adapter mode, against the local server.

The local server refuses more than 300 s of audio per request (error 1008,
like the service). A 12-minute input is split at pauses into requests under
``max_request_s`` (290 s, lead-in and trailing silence included) and comes
back as one result or one stream.

Tolerances, per seam, with the local engine (an echo resampled 24 -> 48 kHz):
the joined output is exactly as long as the input plus the last request's
trailing silence (each request's start is rounded to the output rate: 0
samples at 24 -> 48 kHz); a burst's edges move by at most one 20 ms analysis
frame.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import numpy as np
import pytest
from long_audio import (
    LongInput,
    assert_same_bursts,
    find_bursts,
    frame_levels,
    speech_like,
    tone,
)

from harness import MODES, AsyncHarness, harness_for
from s2s_anyio import run_server
from s2s_core import InputTooLong, RequestStarted, Segment
from s2s_core.errors import ConnectionClosedError, PolicyViolation, S2SError, ServerError
from s2s_core.events import Audio, EndOfStream, Ready, Text
from s2s_core.loopback import EngineError, LoopbackEngine
from s2s_core.loopback._session import Engine
from s2s_core.loopback.rest import LocalRest
from s2s_core.options import ClientOptions
from s2s_core.results import S2SResult
from s2s_core.retry import RetryPolicy
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(120)

RATE = 24000
OUT_RATE = 48000
SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
TWELVE_MINUTES = speech_like(720.0, RATE)
NO_RETRY = ClientOptions(retry=None)
FAST_RETRY = ClientOptions(retry=RetryPolicy(base_delay_s=0.05, max_delay_s=0.1))


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    # The default limit: 300 s per request; credits for every test of the module.
    with run_server(rest=LocalRest(credits=1e6)) as server_url:
        yield server_url


def check_joined(result: S2SResult, given: LongInput, *, trailing_s: float) -> None:
    """Every burst once, in order; the input's length plus the trailing silence; texts in time."""
    assert result.complete and result.sample_rate == OUT_RATE
    assert len(result.request_ids) == len(set(result.request_ids)) >= 3
    output = result.pcm16()
    assert len(output) == round((given.duration_s + trailing_s) * OUT_RATE)
    assert_same_bursts(find_bursts(output, OUT_RATE), given.bursts)
    check_texts(result.text_with_timestamps, given)


def check_texts(texts: list[Any], given: LongInput) -> None:
    """One text per burst, monotonic in input time, the last ending where the speech ends."""
    assert len(texts) == len(given.bursts)
    starts = [t.start_s for t in texts]
    assert starts == sorted(starts)
    for text, burst in zip(texts, given.bursts, strict=True):
        assert abs(text.start_s - burst.start_s) <= 0.02, (text, burst)
        assert abs(text.stop_s - burst.stop_s) <= 0.02, (text, burst)
    assert abs(texts[-1].stop_s - given.speech_end_s) <= 0.02


# -- the "done when": 12 minutes, every adapter --

@pytest.mark.parametrize("mode", MODES)
def test_twelve_minutes_through_s2s(mode: str, url: str) -> None:
    result = harness_for(mode).s2s(url, SETUP, TWELVE_MINUTES.samples, pace=None)
    check_joined(result, TWELVE_MINUTES, trailing_s=2.0)


@pytest.mark.parametrize("mode", MODES)
def test_twelve_minutes_pushed_live_through_s2s_realtime(mode: str, url: str) -> None:
    pieces = [TWELVE_MINUTES.samples[i:i + 1920].tobytes()
              for i in range(0, len(TWELVE_MINUTES.samples), 1920)]
    events = push_live(mode, url, pieces)
    kinds = [type(e) for e in events if not isinstance(e, (Audio, Text))]
    started = [e for e in events if isinstance(e, RequestStarted)]
    assert kinds == [Ready, *[RequestStarted] * len(started), EndOfStream] and len(started) >= 2
    output = np.frombuffer(b"".join(e.audio for e in events if isinstance(e, Audio)),
                           dtype=np.int16)
    # A live session adds nothing at its own start and end: the output is the input's length.
    assert len(output) == len(TWELVE_MINUTES.samples) * 2
    assert_same_bursts(find_bursts(output, OUT_RATE), TWELVE_MINUTES.bursts)
    check_texts([e for e in events if isinstance(e, Text)], TWELVE_MINUTES)


@pytest.mark.parametrize("mode", MODES)
def test_a_continuous_tone_is_hard_cut_and_complete(mode: str, url: str) -> None:
    samples = tone(720.0, RATE)
    result = harness_for(mode).s2s(url, SETUP, samples, pace=None)
    assert result.complete and len(result.request_ids) == 3
    output = result.pcm16()
    assert len(output) == (720 + 2) * OUT_RATE
    # No gap and no bump at the hard cuts (287.68 s of input per request): every
    # 20 ms frame of the tone has the tone's level.
    levels = frame_levels(output[:720 * OUT_RATE], OUT_RATE)
    expected = 0.3 / np.sqrt(2)
    assert np.all(np.abs(levels - expected) < 0.01 * expected), levels.min()
    assert not output[720 * OUT_RATE + 480:].any()  # the resampler's ring: under 10 ms


# -- one stream, as a loop written for one request reads it --

SHORTER = speech_like(70.0, RATE, seed=11)
SPLIT_25 = ClientOptions(max_request_s=25.0)


@pytest.mark.parametrize("mode", MODES)
def test_s2s_stream_reads_the_requests_as_one_stream(mode: str, url: str) -> None:
    out = harness_for(mode).stream(url, SETUP, SHORTER.samples, pace=None, options=SPLIT_25)
    assert out.error is None, repr(out.error)
    assert not any(isinstance(e, Ready) for e in out.events)  # iter_events starts after ready
    ends = [i for i, e in enumerate(out.events) if isinstance(e, EndOfStream)]
    assert ends == [len(out.events) - 1]
    started = [e for e in out.events if isinstance(e, RequestStarted)]
    assert len(started) >= 2 and [e.index for e in started] == list(range(1, len(started) + 1))
    output = np.frombuffer(out.audio, dtype=np.int16)
    assert len(output) == round((SHORTER.duration_s + 2.0) * OUT_RATE)
    assert_same_bursts(find_bursts(output, OUT_RATE), SHORTER.bursts)
    check_texts(out.texts, SHORTER)
    # Audio timings are the output's place on the input's timeline.
    audio = [e for e in out.events if isinstance(e, Audio)]
    for a, b in itertools.pairwise(audio):
        assert a.stop_s == pytest.approx(b.start_s, abs=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_g711_and_wav_inputs_are_split_too(mode: str, url: str) -> None:
    from s2s_core.audio import read_wav, ulaw_encode, wav_header

    harness = harness_for(mode)
    narrow = speech_like(60.0, 8000, seed=13)
    ulaw = Setup(voice_id="v", input_format="ulaw_8000", output_format="ulaw_8000")
    result = harness.s2s(url, ulaw, ulaw_encode(narrow.samples), pace=None, options=SPLIT_25)
    assert result.complete and len(result.request_ids) >= 3
    assert len(result.raw_data) == round((narrow.duration_s + 2.0) * 8000)
    data = narrow.samples.tobytes()
    wav = Setup(voice_id="v", input_format="wav", output_format="wav")
    result = harness.s2s(url, wav, wav_header(8000, data_size=len(data)) + data, pace=None,
                         options=SPLIT_25)
    assert result.complete and len(result.request_ids) >= 3
    audio = read_wav(result.raw_data)  # one header, real sizes
    assert result.raw_data.count(b"RIFF") == 1
    # No padding at a wav input's ends: the output ends with the input, or with the
    # previous request's trailing silence when the last request is shorter than it.
    length = round(narrow.duration_s * OUT_RATE)
    assert length <= len(audio.samples) <= length + 2 * OUT_RATE
    assert not audio.samples[length:].any()
    assert_same_bursts(find_bursts(audio.samples, OUT_RATE), narrow.bursts)


# -- the server's limit --

@pytest.mark.parametrize("mode", MODES)
def test_without_splitting_the_server_limit_is_named(mode: str, url: str) -> None:
    samples = np.zeros(301 * RATE, dtype=np.int16)
    with pytest.raises(PolicyViolation, match="limit of 300 s") as info:
        harness_for(mode).s2s(url, SETUP, samples, pace=None,
                              options=ClientOptions(max_request_s=None, retry=None))
    assert info.value.code == 1008


# -- failures and retries of a later request --

class _FailingEngine:
    """A loopback engine that fails (like a crashed worker) after ``after_s`` of input."""

    def __init__(self, setup: Setup, limit: float, after_s: float) -> None:
        self._engine = LoopbackEngine(setup.input_format, setup.output_format,
                                      setup.target_language, max_audio_s=limit)
        self._after_s = after_s
        self.output_sample_rate = self._engine.output_sample_rate
        self.frame_size = self._engine.frame_size

    def feed(self, data: bytes) -> list[Any]:
        out = self._engine.feed(data)
        if self._engine.input_seconds > self._after_s:
            raise EngineError(1011, "worker crashed")
        return out

    def finish(self) -> list[Any]:
        return self._engine.finish()


def engines(plan: dict[int, str]) -> Any:
    """An engine factory: the n-th request's engine fails as ``plan`` says (else loopback).

    ``"crash"``: error 1011 after 2 s of its input; ``"dead"``: error 1011 on its
    first audio (before any output); ``"busy"``: setup refused with 1008 (a
    concurrency cap).
    """
    count = [0]
    lock = threading.Lock()

    def factory(setup: Setup, limit: float) -> Engine:
        with lock:
            number = count[0]
            count[0] += 1
        what = plan.get(number)
        if what == "busy":
            raise EngineError(1008, "too many concurrent sessions")
        if what in ("crash", "dead"):
            return _FailingEngine(setup, limit, 2.0 if what == "crash" else 0.0)
        return LoopbackEngine(setup.input_format, setup.output_format, setup.target_language,
                              max_audio_s=limit)

    factory.count = count  # type: ignore[attr-defined]
    return factory


@pytest.mark.parametrize("api", ["s2s", "stream"])
@pytest.mark.parametrize("mode", MODES)
def test_a_later_request_failing_midway_keeps_what_came_before(mode: str, api: str) -> None:
    """Retries off: the second request's failure is raised with the first request's output."""
    options = ClientOptions(max_request_s=25.0, retry=None)
    harness = harness_for(mode)
    with run_server(engine_factory=engines({1: "crash"})) as server:
        if api == "s2s":
            with pytest.raises(S2SError) as info:
                harness.s2s(server, SETUP, SHORTER.samples, pace=None, options=options)
            error = info.value
        else:
            out = harness.stream(server, SETUP, SHORTER.samples, pace=None, options=options)
            assert out.error is not None
            error = out.error  # type: ignore[assignment]
    assert isinstance(error, (ServerError, ConnectionClosedError)), repr(error)
    segment = error.segment
    assert isinstance(segment, Segment) and segment.index == 1
    assert any("request 2 (input" in note for note in error.__notes__)
    partial = error.partial_result
    assert partial is not None and not partial.complete
    before = round(segment.start_s * OUT_RATE)
    output = np.frombuffer(partial.raw_data, dtype=np.int16) if api == "s2s" else np.frombuffer(
        out.audio, dtype=np.int16)
    assert len(output) >= before
    expected = [b for b in SHORTER.bursts if b.stop_s <= segment.start_s]
    assert_same_bursts(find_bursts(output[:before], OUT_RATE), expected)


@pytest.mark.parametrize(("fault", "mode"), [(f, m) for f in ("dead", "busy") for m in MODES])
def test_a_later_request_is_retried_alone(fault: str, mode: str) -> None:
    """The second request fails before its output reached the caller: it is sent again.

    ``dead``: its worker fails on its first audio; ``busy``: its setup is refused
    (1008, a concurrency cap: retried once the first request has ended).
    """
    factory = engines({1: fault})
    options = ClientOptions(max_request_s=25.0, retry=FAST_RETRY.retry)
    with run_server(engine_factory=factory) as server:
        result = harness_for(mode).s2s(server, SETUP, SHORTER.samples, pace=None,
                                       options=options)
    assert result.complete
    output = result.pcm16()
    assert len(output) == round((SHORTER.duration_s + 2.0) * OUT_RATE)
    assert_same_bursts(find_bursts(output, OUT_RATE), SHORTER.bursts)
    check_texts(result.text_with_timestamps, SHORTER)
    # One more request than the result holds: the failed one, not the first one again.
    assert factory.count[0] == len(result.request_ids) + 1


# -- pushing live --

def push_live(mode: str, url: str, pieces: list[bytes],
              options: ClientOptions | None = None) -> list[Any]:
    """Send ``pieces`` through ``s2s_realtime`` from one task (thread) while another reads."""
    harness = harness_for(mode)
    base = url.replace("ws://", "http://").replace("speech/s2s", "")
    client = harness.module.S2SClient("k", base_url=base,  # type: ignore[attr-defined]
                                      options=options or ClientOptions())
    events: list[Any] = []
    if isinstance(harness, AsyncHarness):
        async def go() -> None:
            async with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
                async def send() -> None:
                    for piece in pieces:
                        await session.send_audio(piece)
                    await session.send_end_of_stream()

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(send)
                    async for event in session:
                        events.append(event)

        harness.run(go)
        return events
    errors: list[BaseException] = []
    with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
        def send() -> None:
            try:
                for piece in pieces:
                    session.send_audio(piece)
                session.send_end_of_stream()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        events.extend(session)
        sender.join(timeout=60)
    assert not errors, errors
    return events


@pytest.mark.parametrize(("fault", "mode"), [(f, m) for f in ("dead", "busy") for m in MODES])
def test_a_live_session_retries_a_later_request_alone(fault: str, mode: str) -> None:
    factory = engines({1: fault})
    pieces = [SHORTER.samples[i:i + 1920].tobytes() for i in range(0, len(SHORTER.samples), 1920)]
    with run_server(engine_factory=factory) as server:
        events = push_live(mode, server, pieces,
                           ClientOptions(max_request_s=25.0, retry=FAST_RETRY.retry))
    started = [e for e in events if isinstance(e, RequestStarted)]
    assert isinstance(events[-1], EndOfStream) and len(started) >= 2
    output = np.frombuffer(b"".join(e.audio for e in events if isinstance(e, Audio)),
                           dtype=np.int16)
    assert len(output) == len(SHORTER.samples) * 2
    assert_same_bursts(find_bursts(output, OUT_RATE), SHORTER.bursts)
    assert factory.count[0] == len(started) + 2  # the first, the later ones, one retry


def _ogg_page(granule: int, body: bytes) -> bytes:
    import struct

    segments = [255] * (len(body) // 255) + [len(body) % 255]
    return (b"OggS\x00\x00" + struct.pack("<q", granule) + bytes(12)
            + bytes([len(segments)]) + bytes(segments) + body)


@pytest.mark.parametrize("mode", MODES)
def test_a_long_opus_input_is_refused_before_anything_is_sent(mode: str) -> None:
    """Opus cannot be split: a whole opus input over the limit never reaches the server."""
    from s2s_anyio import make_config

    opus = Setup(voice_id="v", input_format="opus", output_format="pcm")
    pages = [_ogg_page(0, b"OpusHead" + bytes(11))] + [
        _ogg_page(48000 * 10 * (i + 1), bytes(200)) for i in range(4)]
    config = make_config()
    with (run_server(config=config) as server,
          pytest.raises(InputTooLong, match="opus input longer than max_request_s")):
        harness_for(mode).s2s(server, opus, b"".join(pages), pace=None,
                              options=ClientOptions(max_request_s=30.0))
    assert config.connections == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_paced_input_rolls_over_too(mode: str, url: str) -> None:
    """Paced (10x real time here): the seams' padding goes at once, the input keeps its pace."""
    talk = speech_like(20.0, RATE, seed=19)
    result = harness_for(mode).s2s(url, SETUP, talk.samples, pace=10.0,
                                   options=ClientOptions(max_request_s=10.0))
    assert result.complete and len(result.request_ids) >= 3
    output = result.pcm16()
    assert len(output) == round((talk.duration_s + 2.0) * OUT_RATE)
    assert_same_bursts(find_bursts(output, OUT_RATE), talk.bursts)
    check_texts(result.text_with_timestamps, talk)


@pytest.mark.parametrize("mode", MODES)
def test_a_live_session_refuses_audio_after_its_end(mode: str, url: str) -> None:
    from s2s_core.errors import InvalidAudio, LocalProtocolError

    harness = harness_for(mode)
    base = url.replace("ws://", "http://").replace("speech/s2s", "")
    client = harness.module.S2SClient("k", base_url=base)  # type: ignore[attr-defined]
    piece = np.zeros(1920, dtype=np.int16).tobytes()
    if isinstance(harness, AsyncHarness):
        async def go() -> None:
            async with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
                with pytest.raises(InvalidAudio, match="odd"):
                    await session.send_audio(b"\x00" * 3)
                await session.send_audio(piece)
                await session.send_end_of_stream()
                with pytest.raises(LocalProtocolError, match="send_end_of_stream"):
                    await session.send_audio(piece)
                assert (await session.result()).complete

        harness.run(go)
        return
    with client.s2s_realtime(**SETUP.to_wire_kwargs()) as session:
        with pytest.raises(InvalidAudio, match="odd"):
            session.send_audio(b"\x00" * 3)
        session.send_audio(piece)
        session.send_end_of_stream()
        with pytest.raises(LocalProtocolError, match="send_end_of_stream"):
            session.send_audio(piece)
        assert session.result().complete
