"""Issue 15: the local server really emits the refusals that drive retry policies.

On the sans-IO cores (client <-> ServerSession, bytes moved by hand: the exact
messages, close codes and reasons) and end to end on one adapter (threaded):
what a client raises, how ``classify`` reads it, and the server's counters.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from harness import harness_for, tone_burst
from s2s_anyio import make_config, run_server
from s2s_core.connection import ClientConnection, ServerConnection
from s2s_core.errors import (
    ConnectionClosedError,
    HandshakeRejected,
    InternalServerError,
    PolicyViolation,
    ServerError,
)
from s2s_core.events import Closed, ErrorMessage, Ready
from s2s_core.loopback import Fault, FaultPlan, ServerConfig, ServerSession
from s2s_core.options import ClientOptions
from s2s_core.retry import ErrorClass, classify
from s2s_core.setup import Setup

pytestmark = pytest.mark.timeout(60)

SETUP = Setup(voice_id="v", input_format="pcm", output_format="pcm", model_name="s2s-translate",
              json_config={"target_language": "en"})
AUDIO = tone_burst(0.1, 0.3, 24000)
URL = "ws://127.0.0.1:8765/api/speech/s2s"


def exchange(config: ServerConfig) -> list[Any]:
    """One connection on the cores: upgrade, setup; every client event until it closes."""
    client = ClientConnection(URL, api_key="k", ping_interval=None, ready_timeout=None)
    server = ServerConnection()
    session = ServerSession(server, config, now=0.0)
    client.send_setup(SETUP)
    events: list[Any] = []
    for _ in range(20):  # bounded: each round moves every pending byte both ways
        data = client.data_to_send()
        if data:
            server.receive_data(data, now=0.0)
        session.handle_events(server.events_received(), now=0.0)
        reply = server.data_to_send()
        if reply:
            client.receive_data(reply, now=0.0)
        events.extend(client.events_received())
        if events and isinstance(events[-1], Closed):
            break
    return events


def refusal_plan(fault: Fault, **kwargs: Any) -> ServerConfig:
    return make_config(fault=FaultPlan(fault, **kwargs))


@pytest.mark.parametrize(("fault", "code", "message"), [
    (Fault.REFUSE_1011, 1011, "No worker available, please retry later."),
    (Fault.REFUSE_1008, 1008, "Concurrency limit reached for this account."),
    (Fault.REFUSE_1003, 1003, "Unknown model: s2s-translate"),
])
def test_setup_refusals_on_the_wire(fault: Fault, code: int, message: str) -> None:
    events = exchange(refusal_plan(fault))
    assert [type(e) for e in events] == [ErrorMessage, Closed]
    error, closed = events
    assert (error.code, error.message) == (code, message)
    assert (closed.code, closed.reason) == (code, message)  # the server's own explanation


def test_bare_close_1008_on_the_wire() -> None:
    events = exchange(refusal_plan(Fault.CLOSE_1008))
    assert [type(e) for e in events] == [Closed]  # no error message
    assert (events[0].code, events[0].reason) == (1008, "No authentication provided.")
    assert isinstance(events[0].error, ConnectionClosedError)


@pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_429, 429), (Fault.HTTP_503, 503)])
def test_upgrade_refusals_on_the_wire(fault: Fault, status: int) -> None:
    [closed] = exchange(refusal_plan(fault, retry_after="3"))
    assert isinstance(closed.error, HandshakeRejected)
    assert closed.error.status == status and closed.error.retry_after == 3.0


def test_503_without_retry_after() -> None:
    [closed] = exchange(refusal_plan(Fault.HTTP_503, retry_after=None))
    assert isinstance(closed.error, HandshakeRejected) and closed.error.retry_after is None


def test_refusals_stop_after_times_and_are_counted() -> None:
    config = refusal_plan(Fault.REFUSE_1011, times=2)
    outcomes = [type(exchange(config)[0]) for _ in range(4)]
    assert outcomes == [ErrorMessage, ErrorMessage, Ready, Ready]
    assert (config.connections, config.refusals) == (4, 2)


def test_other_faults_are_untouched_by_refusal_counters() -> None:
    config = make_config(fault=FaultPlan(Fault.PINGS))
    assert type(exchange(config)[0]) is Ready
    assert (config.connections, config.refusals) == (1, 0)


# --- end to end, on the threaded adapter ---


THREADED = harness_for("threaded")


def s2s(url: str) -> Any:
    # One attempt per call: these tests count the server's refusals, not retries.
    return THREADED.s2s(url, SETUP, AUDIO, pace=None, trailing_silence_s=0.0,
                        options=ClientOptions(retry=None))


def test_1011_for_the_first_two_setups_then_normal() -> None:
    config = refusal_plan(Fault.REFUSE_1011, times=2)
    with run_server(config=config) as url:
        for _ in range(2):
            with pytest.raises(InternalServerError) as info:
                s2s(url)
            assert info.value.code == 1011 and "No worker" in info.value.message
            assert classify(info.value) is ErrorClass.TRANSIENT
        assert s2s(url).complete
    assert (config.connections, config.refusals) == (3, 2)


def test_1008_concurrency_cap() -> None:
    with run_server(config=refusal_plan(Fault.REFUSE_1008)) as url, \
            pytest.raises(PolicyViolation) as info:
        s2s(url)
    assert info.value.code == 1008 and "Concurrency" in info.value.message
    assert classify(info.value) is ErrorClass.TRANSIENT_CAPPED


def test_1003_unknown_model() -> None:
    with run_server(config=refusal_plan(Fault.REFUSE_1003)) as url, \
            pytest.raises(ServerError) as info:
        s2s(url)
    assert info.value.code == 1003 and "s2s-translate" in info.value.message
    assert classify(info.value) is ErrorClass.FINAL


def test_bare_close_1008_keeps_the_reason() -> None:
    with run_server(config=refusal_plan(Fault.CLOSE_1008)) as url, \
            pytest.raises(ConnectionClosedError) as info:
        s2s(url)
    assert (info.value.code, info.value.reason) == (1008, "No authentication provided.")
    assert not isinstance(info.value, ServerError)
    assert classify(info.value) is ErrorClass.FINAL and not info.value.retryable


@pytest.mark.parametrize(("fault", "status"), [(Fault.HTTP_429, 429), (Fault.HTTP_503, 503)])
def test_upgrade_refusal_with_retry_after(fault: Fault, status: int) -> None:
    with run_server(config=refusal_plan(fault, times=1)) as url:
        with pytest.raises(HandshakeRejected) as info:
            s2s(url)
        assert s2s(url).complete  # times=1: the next upgrade is accepted
    assert info.value.status == status and info.value.retry_after == 1.0
    assert classify(info.value) is ErrorClass.TRANSIENT


def test_429_response_bytes() -> None:
    with run_server(config=refusal_plan(Fault.HTTP_429, retry_after="7")) as url:
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /api/speech/s2s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         b"Sec-WebSocket-Version: 13\r\n\r\n")
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 429 ")
    assert b"\r\nretry-after: 7" in head
