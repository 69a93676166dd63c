"""Issue 15 "Done when": the retry policy on every adapter mode, against the local
server's refusal faults, counted by the server's connections.

Delays: the policy's own backoff is shortened (``FAST``) except where the test is
about a delay (``Retry-After``), which is read from the ``s2s_core.retry`` log
record, never from the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import make_config, run_server
from s2s_core.audio import to_pcm16
from s2s_core.errors import (
    ConnectionClosedError,
    HandshakeRejected,
    InternalServerError,
    PolicyViolation,
    S2SError,
    ServerError,
)
from s2s_core.events import Audio, EndOfStream
from s2s_core.loopback import Fault, FaultPlan, ServerConfig
from s2s_core.options import ClientOptions
from s2s_core.retry import ErrorClass, RetryPolicy
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
AUDIO = tone_burst(0.1, 0.3, 24000)  # 0.5 s, float32
PCM = to_pcm16(AUDIO)
PIECES = [AUDIO[i:i + 1920] for i in range(0, len(AUDIO), 1920)]
FAST = ClientOptions(retry=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05))
"""The default policy (attempts, caps, budget) with short backoffs."""
OUTPUT_BYTES = len(AUDIO) * 2 * 2  # pcm out at 48 kHz: twice the samples


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


def plan(fault: Fault, **kwargs: Any) -> ServerConfig:
    return make_config(fault=FaultPlan(fault, **kwargs))


def s2s(harness: Harness, config: ServerConfig, audio: Any = AUDIO,
        options: ClientOptions = FAST) -> Any:
    """``s2s()`` against a server with ``config``: the result, or the error raised."""
    with run_server(config=config) as url:
        try:
            return harness.s2s(url, SETUP, audio, pace=None, trailing_silence_s=0.0,
                               lead_in_silence_s=0.0,
                               options=options)
        except S2SError as exc:
            return exc


def retry_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delays the retrier announced ("attempt %d failed: %s; retrying in %.2f s")."""
    return [float(r.args[2]) for r in caplog.records  # type: ignore[index]
            if r.name == "s2s_core.retry" and "retrying" in r.msg]


def pieces() -> Iterator[np.ndarray]:
    """A one-shot source (a generator)."""
    yield from PIECES


# --- refusals before any output: s2s() retries as the table says ---


def test_1011_twice_then_success(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1011, times=2)
    result = s2s(harness, config)
    assert not isinstance(result, BaseException), repr(result)
    assert result.complete and len(result.raw_data) == OUTPUT_BYTES
    assert (config.connections, config.refusals) == (3, 2)


def test_1011_is_capped_at_two_retries(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1011)  # every setup refused
    error = s2s(harness, config)
    assert isinstance(error, InternalServerError) and error.code == 1011
    assert config.connections == 3
    assert [a.outcome for a in error.attempts][:2] == ["retried", "retried"]
    assert "at most 2 retries" in error.attempts[-1].outcome
    assert "3 attempts" in "\n".join(error.__notes__)


def test_1008_concurrency_cap_is_retried(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1008, times=1)
    result = s2s(harness, config)
    assert not isinstance(result, BaseException), repr(result)
    assert result.complete and config.connections == 2


def test_1003_raises_at_once(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1003)
    error = s2s(harness, config)
    assert isinstance(error, ServerError) and error.code == 1003
    assert "s2s-translate" in error.message
    assert config.connections == 1
    assert [a.error_class for a in error.attempts] == [ErrorClass.FINAL]


def test_bare_close_1008_raises_at_once_with_its_reason(harness: Harness) -> None:
    config = plan(Fault.CLOSE_1008)
    error = s2s(harness, config)
    assert isinstance(error, ConnectionClosedError) and not isinstance(error, ServerError)
    assert (error.code, error.reason) == (1008, "No authentication provided.")
    assert "No authentication provided." in str(error)
    assert config.connections == 1 and len(error.attempts) == 1


def test_429_retry_after_is_honoured(harness: Harness,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="s2s_core.retry")
    config = plan(Fault.HTTP_429, times=1, retry_after="1")
    result = s2s(harness, config)
    assert not isinstance(result, BaseException), repr(result)
    assert result.complete and config.connections == 2
    [delay] = retry_delays(caplog)  # one retry, after the server's Retry-After
    assert delay >= 1.0


def test_429_attempts_on_the_final_error(harness: Harness) -> None:
    config = plan(Fault.HTTP_429, retry_after="1")  # every upgrade refused
    options = ClientOptions(retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))
    error = s2s(harness, config, options=options)
    assert isinstance(error, HandshakeRejected) and error.status == 429
    assert error.retry_after == 1.0
    first, last = error.attempts
    assert first.delay_s is not None and first.delay_s >= 1.0
    assert "max_attempts (2)" in last.outcome
    assert config.connections == 2


def test_retry_none_never_retries(harness: Harness) -> None:
    for api in ("s2s", "stream", "realtime"):
        config = plan(Fault.REFUSE_1011, times=1)
        options = ClientOptions(retry=None)
        with run_server(config=config) as url:
            if api == "s2s":
                with pytest.raises(InternalServerError):
                    harness.s2s(url, SETUP, AUDIO, pace=None, options=options)
            elif api == "stream":
                outcome = harness.stream(url, SETUP, AUDIO, pace=None, options=options)
                assert isinstance(outcome.error, InternalServerError), repr(outcome.error)
            else:
                with pytest.raises(InternalServerError):
                    harness.realtime(url, SETUP, [PCM], options=options)
        assert config.connections == 1, api


# --- s2s_stream and s2s_realtime: retried until ready, never after ---


def test_s2s_stream_retries_until_ready(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1011, times=2)
    with run_server(config=config) as url:
        outcome = harness.stream(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0,
                                 options=FAST)
    assert outcome.error is None, repr(outcome.error)
    assert len(outcome.audio) == OUTPUT_BYTES and isinstance(outcome.events[-1], EndOfStream)
    assert config.connections == 3


def test_a_failure_after_output_reached_the_caller_is_not_replayed(harness: Harness) -> None:
    config = plan(Fault.DROP_TCP, after_messages=3)
    with run_server(config=config) as url:
        # No lead-in: its output is cut, and the fault counts the server's messages.
        outcome = harness.stream(url, SETUP, AUDIO, pace=None, lead_in_silence_s=0.0,
                                 options=FAST)
    error = outcome.error
    assert isinstance(error, ConnectionClosedError) and error.code == 1006, repr(error)
    seen = [e for e in outcome.events if isinstance(e, Audio)]
    assert len(seen) >= 2  # the caller iterated output before the failure
    partial = error.partial_result
    assert partial is not None and not partial.complete and partial.request_id
    assert config.connections == 1  # no replay


def test_s2s_replays_a_failure_no_output_reached(harness: Harness) -> None:
    """The same drop under s2s(): nothing reached the caller, so it is retried."""
    config = plan(Fault.DROP_TCP, after_messages=3)  # every connection drops
    error = s2s(harness, config)
    assert isinstance(error, ConnectionClosedError) and error.code == 1006, repr(error)
    assert config.connections == 4 == len(error.attempts)  # max_attempts
    assert error.partial_result is not None and len(error.partial_result.raw_data) > 0


def test_s2s_realtime_retries_a_refused_setup(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1011, times=1)
    chunks = [PCM[i:i + 3840] for i in range(0, len(PCM), 3840)]
    with run_server(config=config) as url:
        events = harness.realtime(url, SETUP, chunks, options=FAST)
    assert isinstance(events[-1], EndOfStream)
    assert sum(len(e.audio) for e in events if isinstance(e, Audio)) == OUTPUT_BYTES
    assert config.connections == 2


# --- one-shot sources: retried while nothing was pulled, never replayed after ---


def test_a_one_shot_source_nothing_was_pulled_from_is_retried(harness: Harness) -> None:
    """An upgrade refusal comes before any input is pulled: the generator is used as is."""
    config = plan(Fault.HTTP_503, times=1, retry_after=None)
    result = s2s(harness, config, audio=pieces())
    assert not isinstance(result, BaseException), repr(result)
    assert result.complete and len(result.raw_data) == OUTPUT_BYTES  # every piece, once
    assert config.connections == 2


def test_a_pulled_one_shot_source_is_not_replayed(harness: Harness) -> None:
    """Error 1011 after output came: the input was pulled, so it cannot be sent again."""
    config = plan(Fault.ERROR_1011, after_messages=2)  # on every connection
    error = s2s(harness, config, audio=pieces())
    assert isinstance(error, InternalServerError) and error.code == 1011, repr(error)
    assert config.connections == 1
    assert "cannot be replayed" in error.attempts[-1].outcome
    # The same failure with a re-iterable source is retried (up to the 1011 cap).
    config = plan(Fault.ERROR_1011, after_messages=2)
    error = s2s(harness, config, audio=list(PIECES))
    assert isinstance(error, InternalServerError) and config.connections == 3


def test_a_refused_setup_with_a_one_shot_source(harness: Harness) -> None:
    """Refused at setup: retried only if the feeder had not pulled from it yet.

    Whether the feeder pulled before the refusal came is a race; each outcome
    must be the right one for it: a complete result from the untouched
    generator, or the refusal raised after one connection.
    """
    config = plan(Fault.REFUSE_1011, times=1)
    pulled: list[int] = []

    def counted() -> Iterator[np.ndarray]:
        for i, piece in enumerate(PIECES):
            pulled.append(i)
            yield piece

    outcome = s2s(harness, config, audio=counted())
    assert pulled == sorted(set(pulled))  # no piece was pulled twice
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, InternalServerError) and config.connections == 1
        assert "cannot be replayed" in outcome.attempts[-1].outcome
    else:
        assert outcome.complete and len(outcome.raw_data) == OUTPUT_BYTES
        assert config.connections == 2


def test_final_errors_name_every_attempt(harness: Harness) -> None:
    config = plan(Fault.REFUSE_1008)  # every setup: the 1008 cap is 3 retries
    error = s2s(harness, config)
    assert isinstance(error, PolicyViolation) and error.code == 1008
    assert config.connections == 4 == len(error.attempts)
    assert "at most 3 retries" in error.attempts[-1].outcome
