"""One behavioural suite, every adapter mode, real sockets against the local server."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator

import numpy as np
import pytest
import trustme

from harness import MODES, Harness, harness_for, tone_burst
from s2s_anyio import run_server
from s2s_core.audio import to_pcm16
from s2s_core.errors import (
    ConnectError,
    PolicyViolation,
)
from s2s_core.events import Audio, EndOfStream, Ready, Text, UnknownMessage
from s2s_core.loopback import BENIGN_FAULTS, Fault, FaultPlan
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm",
              json_config={"target_language": "en"})
AUDIO = tone_burst()  # 1.6 s at 24 kHz, float32


@pytest.fixture(params=MODES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return harness_for(request.param)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server() as server_url:
        yield server_url


def expected_output_bytes(samples_in: int, trailing_s: float) -> int:
    """pcm in at 24 kHz becomes pcm out at 48 kHz: twice the samples, 2 bytes each."""
    return (samples_in + round(24000 * trailing_s)) * 2 * 2


def test_s2s_returns_the_whole_result(harness: Harness, url: str) -> None:
    result = harness.s2s(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.4)
    assert result.complete
    assert result.sample_rate == 48000
    assert result.output_format == "pcm"
    assert result.request_id
    assert len(result.raw_data) == expected_output_bytes(len(AUDIO), 0.4)
    assert len(result.text_with_timestamps) == 1
    segment = result.text_with_timestamps[0]
    assert 0.3 <= segment.start_s <= 0.5 and 1.1 <= segment.stop_s <= 1.4
    assert result.text == segment.text and "[en]" in segment.text
    # The output is the input, resampled: the loud part is where the tone was.
    pcm = result.pcm16()
    assert np.abs(pcm[: int(48000 * 0.3)]).max() == 0
    assert np.abs(pcm[int(48000 * 0.5): int(48000 * 1.1)]).max() > 8000


def test_stream_yields_events_in_order(harness: Harness, url: str) -> None:
    out = harness.stream(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0)
    assert out.error is None
    assert out.sample_rate == 48000 and out.frame_size == 3840 and out.request_id
    assert isinstance(out.events[-1], EndOfStream)
    assert not any(isinstance(e, Ready) for e in out.events)
    assert len(out.audio) == expected_output_bytes(len(AUDIO), 0.0)
    assert [t.text for t in out.texts] == [e.text for e in out.events if isinstance(e, Text)]
    audio_events = [e for e in out.events if isinstance(e, Audio)]
    assert all(len(e.audio) == 7680 for e in audio_events[:-1])


def test_realtime_session(harness: Harness, url: str) -> None:
    pcm = to_pcm16(AUDIO)
    chunks = [pcm[i:i + 3840] for i in range(0, len(pcm), 3840)]
    events = harness.realtime(url, SETUP, chunks)
    assert isinstance(events[0], Ready) and events[0].sample_rate == 48000
    assert isinstance(events[-1], EndOfStream)
    audio = b"".join(e.audio for e in events if isinstance(e, Audio))
    assert len(audio) == 2 * len(pcm)


def test_pacing_sends_at_real_time(harness: Harness, url: str) -> None:
    short = np.zeros(24000 // 2, dtype=np.int16)  # 0.5 s
    started = time.monotonic()
    result = harness.s2s(url, SETUP, short, pace=1.0, trailing_silence_s=0.0)
    elapsed = time.monotonic() - started
    assert len(result.raw_data) == len(short) * 4
    assert elapsed >= 0.4  # paced: about the audio's duration, not instantly


def test_numpy_at_another_rate_is_resampled(harness: Harness, url: str) -> None:
    audio16k = np.zeros(16000, dtype=np.float64)
    result = harness.s2s(url, SETUP, audio16k, sample_rate=16000, pace=None,
                         trailing_silence_s=0.0)
    assert len(result.raw_data) == 48000 * 2


def test_multiplexed_requests_are_routed_by_id(harness: Harness, url: str) -> None:
    jobs = []
    for i, seconds in enumerate((0.24, 0.48, 0.8)):
        setup = Setup(voice_id="v", client_req_id=f"req-{i}", close_ws_on_eos=False)
        jobs.append((setup, bytes(int(24000 * seconds) * 2)))
    results = harness.multiplex(url, jobs)
    assert [len(r.raw_data) for r in results] == [len(audio) * 2 for _, audio in jobs]
    assert len({r.request_id for r in results}) == 3


def test_bad_setup_is_a_policy_violation(harness: Harness, url: str) -> None:
    opus = Setup(voice_id="v", input_format="opus", output_format="pcm")
    with pytest.raises(PolicyViolation) as info:
        harness.s2s(url, opus, b"\x00" * 100, pace=None)
    assert info.value.code == 1008 and "opus" in info.value.message


def test_api_key_checked(harness: Harness) -> None:
    with run_server(api_keys=["right"]) as url:
        assert harness.s2s(url, SETUP, AUDIO[:2400], api_key="right", pace=None).complete
        with pytest.raises(PolicyViolation) as info:
            harness.s2s(url, SETUP, AUDIO[:2400], api_key="wrong", pace=None)
        assert info.value.code == 1008


def test_token_is_single_use(harness: Harness) -> None:
    with run_server(api_keys=["right"], tokens=["tok-1"]) as url:
        assert harness.s2s(url, SETUP, AUDIO[:2400], token="tok-1", pace=None).complete
        with pytest.raises(PolicyViolation):
            harness.s2s(url, SETUP, AUDIO[:2400], token="tok-1", pace=None)


def test_connection_refused_is_typed(harness: Harness) -> None:
    with run_server() as url:
        pass  # the port is closed again
    with pytest.raises(ConnectError):
        harness.s2s(url, SETUP, AUDIO[:2400], pace=None)


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls_with_custom_ca(harness: Harness, tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    with run_server(ssl_context=server_ctx) as url:
        assert url.startswith("wss://")
        result = harness.s2s(url, SETUP, AUDIO, ssl_context=client_ctx, pace=None,
                             trailing_silence_s=0.0)
        assert len(result.raw_data) == expected_output_bytes(len(AUDIO), 0.0)
        # Verification is on by default: the self-signed CA is refused.
        with pytest.raises(ConnectError) as info:
            harness.s2s(url, SETUP, AUDIO, pace=None)
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


# --- benign faults: a correct client still gets the complete, identical result ---


@pytest.mark.parametrize("fault", sorted(BENIGN_FAULTS, key=lambda f: f.value),
                         ids=lambda f: f.value)
def test_benign_faults_still_complete(harness: Harness, url: str, fault: Fault) -> None:
    clean = harness.s2s(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0)
    with run_server(fault=FaultPlan(fault, slow_delay_s=0.005)) as faulty:
        result = harness.s2s(faulty, SETUP, AUDIO, pace=None, trailing_silence_s=0.0)
    assert result.complete
    assert result.raw_data == clean.raw_data
    assert result.text == clean.text


def test_unknown_messages_reach_the_event_stream(harness: Harness) -> None:
    with run_server(fault=FaultPlan(Fault.UNKNOWN_TYPES)) as url:
        out = harness.stream(url, SETUP, AUDIO[:4800], pace=None, trailing_silence_s=0.0)
    assert out.error is None
    unknown = [e for e in out.events if isinstance(e, UnknownMessage)]
    assert unknown and unknown[0].type == "step"


def _options(**kwargs: object) -> object:
    from s2s_core.options import ClientOptions

    return ClientOptions(**kwargs)  # type: ignore[arg-type]
