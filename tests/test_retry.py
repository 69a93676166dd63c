"""Issue 15: the error classes table and the sans-IO retry policy."""

from __future__ import annotations

import logging
import random
import ssl

import pytest

from s2s_core._refusal import parse_retry_after
from s2s_core.errors import (
    CloseTimeout,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeRejected,
    IdleTimeout,
    InternalServerError,
    InvalidAudio,
    InvalidSetup,
    KeepaliveTimeout,
    LocalProtocolError,
    MessageTooBig,
    PolicyViolation,
    ProtocolViolation,
    ReadyTimeout,
    RemoteProtocolError,
    S2SError,
    S2STimeoutError,
    server_error_for,
)
from s2s_core.proxy import ProxyError
from s2s_core.retry import (
    TABLE,
    Attempt,
    ErrorClass,
    GiveUp,
    InvalidRetryPolicy,
    Retrier,
    Retry,
    RetryPolicy,
    classify,
    classify_detail,
    render_table,
)

F, T, C = ErrorClass.FINAL, ErrorClass.TRANSIENT, ErrorClass.TRANSIENT_CAPPED


def upgrade(status: int, *headers: tuple[bytes, bytes]) -> HandshakeRejected:
    return HandshakeRejected(status, list(headers), b"")


def proxy(status: int | None) -> ProxyError:
    return ProxyError("refused", proxy="http://p:1", status=status, target="h:443")


# (error, class, TABLE key): at least one example of every row.
def _certificate_failure() -> ConnectError:
    error = ConnectError("cannot connect to h:443: certificate verify failed")
    error.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    return error


EXAMPLES: list[tuple[BaseException, ErrorClass, str]] = [
    (ProtocolViolation("Session not found", 1002), F, "1002"),
    (server_error_for("unknown model 'x'", 1003), F, "1003"),
    (PolicyViolation("Concurrency limit reached", 1008), C, "1008"),
    (InternalServerError("no worker available", 1011), T, "1011"),
    (server_error_for("something", None), F, "error"),
    (server_error_for("something", 4000), F, "error"),
    (ConnectionClosedError(1000, "", "before end_of_stream"), T, "shutdown"),
    (ConnectionClosedError(1001, "going away"), T, "shutdown"),
    (ConnectionClosedError(1005), T, "shutdown"),
    (ConnectionClosedError(1006, "", "dropped"), T, "transport"),
    (ConnectionClosedError(1008, "No authentication provided."), F, "close-1008"),
    (ConnectionClosedError(1011, "internal error"), T, "1011"),
    (ConnectionClosedError(1012, "restart"), T, "restart"),
    (ConnectionClosedError(1013, "try again later"), T, "restart"),
    (ConnectionClosedError(1014, "bad gateway"), T, "restart"),
    (ConnectionClosedError(1002, "protocol error"), F, "close"),
    (ConnectionClosedError(1003), F, "close"),
    (ConnectionClosedError(1009, "too big"), F, "close"),
    (ConnectionClosedError(4000, "app"), F, "close"),
    (upgrade(301), F, "http-3xx"),
    (upgrade(308), F, "http-3xx"),
    (upgrade(401), F, "http-auth"),
    (upgrade(403), F, "http-auth"),
    (upgrade(404), F, "http-404"),
    (upgrade(407), F, "http-407"),
    (upgrade(408), T, "http-408"),
    (upgrade(429, (b"retry-after", b"1")), T, "http-429"),
    (upgrade(500), T, "http-5xx"),
    (upgrade(502), T, "http-5xx"),
    (upgrade(503, (b"retry-after", b"2")), T, "http-5xx"),
    (upgrade(504), T, "http-5xx"),
    (upgrade(501), F, "http-5xx-final"),
    (upgrade(505), F, "http-5xx-final"),
    (upgrade(400), F, "http"),
    (upgrade(200), F, "http"),
    (proxy(407), F, "proxy-4xx"),
    (proxy(403), F, "proxy-4xx"),
    (proxy(502), T, "proxy"),
    (proxy(5), T, "proxy"),  # SOCKS5: connection refused
    (proxy(None), T, "proxy"),
    (proxy(2), F, "proxy-final"),  # SOCKS5: not allowed by ruleset
    (ConnectError("cannot connect: refused"), T, "connect"),
    (_certificate_failure(), F, "tls-verify"),
    (CloseTimeout("late"), F, "close-timeout"),
    (ConnectTimeout("slow"), T, "timeout"),
    (ReadyTimeout("no ready"), T, "timeout"),
    (IdleTimeout("silent"), T, "timeout"),
    (KeepaliveTimeout("no pong"), T, "timeout"),
    (S2STimeoutError("a timeout"), T, "timeout"),
    (ConnectionResetError("reset"), T, "transport"),
    (OSError("broken pipe"), T, "transport"),
    (InvalidSetup("voice_id", "", "a voice id"), F, "other"),
    (InvalidAudio("odd length"), F, "other"),
    (LocalProtocolError("audio before setup"), F, "other"),
    (RemoteProtocolError("bad frame"), F, "other"),
    (MessageTooBig("message", 10, 1), F, "other"),
    (S2SError("generic"), F, "other"),
    (ValueError("not ours"), F, "other"),
]


@pytest.mark.parametrize(("error", "expected", "key"), EXAMPLES,
                         ids=[f"{type(e).__name__}-{k}-{i}" for i, (e, _, k) in
                              enumerate(EXAMPLES)])
def test_table_row(error: BaseException, expected: ErrorClass, key: str) -> None:
    detail = classify_detail(error)
    assert classify(error) is expected
    assert detail.error_class is expected and detail.key == key
    if isinstance(error, S2SError):
        assert error.retryable is (expected is not ErrorClass.FINAL)


def test_every_row_has_an_example() -> None:
    used = {classify_detail(error).rule for error, _, _ in EXAMPLES}
    assert [rule for rule in TABLE if rule not in used] == []


def test_message_text_never_decides() -> None:
    worded = InternalServerError("Invalid or expired API key", 1011)
    assert classify(worded) is ErrorClass.TRANSIENT
    assert classify(PolicyViolation("no worker available", 1008)) is ErrorClass.TRANSIENT_CAPPED
    assert classify(ConnectionClosedError(1008, "Concurrency limit reached")) is F


def test_errors_keep_code_reason_message_and_retry_after() -> None:
    closed = ConnectionClosedError(1008, "No authentication provided.")
    assert (closed.code, closed.reason) == (1008, "No authentication provided.")
    server = PolicyViolation("Concurrency limit reached", 1008)
    assert (server.code, server.message, server.retry_after) == (
        1008, "Concurrency limit reached", None)
    assert upgrade(429, (b"Retry-After", b"7")).retry_after == 7.0
    assert upgrade(503).retry_after is None


def test_render_table_has_every_row() -> None:
    rendered = render_table().splitlines()
    assert len(rendered) == len(TABLE) + 2
    assert "| server error | 1008 | transient, time-capped |" in render_table()


# --- Retry-After ---


def test_retry_after_forms() -> None:
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", date) == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", date) == 0
    for bad in ("", "-1", "1.5", "soon", "9" * 40, "9" * 5000):
        assert parse_retry_after(bad) is None


# --- the policy ---


def fail(retrier: Retrier, error: BaseException, now: float, *, output: bool = False,
         replayable: bool = True) -> Retry | GiveUp:
    return retrier.on_failure(error, now=now, output_reached_caller=output,
                              replayable=replayable)


def run(retrier: Retrier, errors: list[BaseException], start: float = 0.0) -> list[Retry | GiveUp]:
    """Feed failures back to back, each after the previous delay; stop at GiveUp."""
    now, decisions = start, []
    for error in errors:
        decision = fail(retrier, error, now)
        decisions.append(decision)
        if isinstance(decision, GiveUp):
            break
        now += decision.delay_s
    return decisions


def test_backoff_bounds_with_full_jitter() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    rng = random.Random(1234)
    for retries_done in range(12):
        ceiling = min(8.0, 0.5 * 2 ** retries_done)
        samples = [policy.backoff(retries_done, rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > 0.8 * ceiling  # full jitter: the whole range, not a point
        assert min(samples) < 0.2 * ceiling


def test_jitter_is_reproducible_with_a_seed() -> None:
    errors: list[BaseException] = [ConnectError("refused")] * 4
    first = run(Retrier(RetryPolicy(), start=0.0, rng=random.Random(7)), errors)
    again = run(Retrier(RetryPolicy(), start=0.0, rng=random.Random(7)), errors)
    other = run(Retrier(RetryPolicy(), start=0.0, rng=random.Random(8)), errors)
    delays = [d.delay_s for d in first if isinstance(d, Retry)]
    assert delays == [d.delay_s for d in again if isinstance(d, Retry)]
    assert delays != [d.delay_s for d in other if isinstance(d, Retry)]


def test_no_jitter_doubles_up_to_the_ceiling() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=3.0,
                         total_budget_s=100, jitter="none")
    decisions = run(Retrier(policy, start=0.0), [ConnectError("x")] * 10)
    assert [d.delay_s for d in decisions if isinstance(d, Retry)] == [
        0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert isinstance(decisions[-1], GiveUp)


def test_transient_stops_at_max_attempts() -> None:
    retrier = Retrier(RetryPolicy(max_attempts=3), start=0.0, rng=random.Random(0))
    decisions = run(retrier, [ConnectionClosedError(1006)] * 5)
    assert [type(d) for d in decisions] == [Retry, Retry, GiveUp]
    give_up = decisions[-1]
    assert isinstance(give_up, GiveUp) and "max_attempts (3)" in give_up.reason


def test_1011_is_capped_at_two_retries() -> None:
    retrier = Retrier(RetryPolicy(max_attempts=10), start=0.0, rng=random.Random(0))
    decisions = run(retrier, [InternalServerError("no worker available", 1011)] * 5)
    assert [type(d) for d in decisions] == [Retry, Retry, GiveUp]
    # The cap counts 1011 failures only: other transient kinds still retry.
    retrier = Retrier(RetryPolicy(max_attempts=10), start=0.0, rng=random.Random(0))
    mixed: list[BaseException] = [InternalServerError("w", 1011), ConnectError("x"),
                                  InternalServerError("w", 1011), ConnectError("x"),
                                  InternalServerError("w", 1011)]
    assert [type(d) for d in run(retrier, mixed)] == [Retry, Retry, Retry, Retry, GiveUp]


def test_custom_caps() -> None:
    policy = RetryPolicy(max_attempts=10, caps={"transport": 1, "1011": 5})
    decisions = run(Retrier(policy, start=0.0), [ConnectionClosedError(1006)] * 3)
    assert [type(d) for d in decisions] == [Retry, GiveUp]
    decisions = run(Retrier(policy, start=0.0), [InternalServerError("w", 1011)] * 7)
    assert [type(d) for d in decisions] == [Retry] * 5 + [GiveUp]
    no_caps = RetryPolicy(max_attempts=5, caps={})
    decisions = run(Retrier(no_caps, start=0.0), [InternalServerError("w", 1011)] * 7)
    assert [type(d) for d in decisions] == [Retry] * 4 + [GiveUp]


def test_capped_1008_is_bounded_by_time_not_attempts() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay_s=1.0, max_delay_s=1.0,
                         total_budget_s=5.5, jitter="none", caps={"1011": 2})
    decisions = run(Retrier(policy, start=100.0),
                    [PolicyViolation("Concurrency limit reached", 1008)] * 20, start=100.0)
    # Retries at 1, 2, 3, 4, 5 s; the one that would start at 6 s is past 5.5 s.
    assert [type(d) for d in decisions] == [Retry] * 5 + [GiveUp]
    assert "total budget of 5.5 s" in decisions[-1].reason  # type: ignore[union-attr]


def test_default_policy_gives_up_on_1008_after_three_retries() -> None:
    # A bad key and spent credits are 1008 too: they must fail within seconds.
    decisions = run(Retrier(RetryPolicy(jitter="none"), start=0.0),
                    [PolicyViolation("Invalid or expired API key", 1008)] * 10)
    assert [type(d) for d in decisions] == [Retry] * 3 + [GiveUp]
    assert sum(d.delay_s for d in decisions if isinstance(d, Retry)) <= 3.5


def test_budget_is_never_exceeded() -> None:
    policy = RetryPolicy(max_attempts=100, total_budget_s=10.0)
    for seed in range(20):
        retrier = Retrier(policy, start=50.0, rng=random.Random(seed))
        now = 50.0
        while True:
            decision = fail(retrier, ConnectError("refused"), now)
            if isinstance(decision, GiveUp):
                break
            now += decision.delay_s + 0.1  # the attempt itself takes time too
            assert now - 0.1 - 50.0 <= 10.0  # every retry starts within the budget


def test_retry_after_is_honoured() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    decision = fail(Retrier(policy, start=0.0, rng=random.Random(3)),
                    upgrade(429, (b"Retry-After", b"1")), 0.0)
    assert isinstance(decision, Retry) and decision.delay_s >= 1.0
    decision = fail(Retrier(policy, start=0.0, rng=random.Random(3)),
                    upgrade(503, (b"Retry-After", b"6")), 0.0)
    assert isinstance(decision, Retry) and decision.delay_s == 6.0
    # A longer backoff wins over a short Retry-After.
    slow = RetryPolicy(base_delay_s=4.0, max_delay_s=4.0, jitter="none")
    decision = fail(Retrier(slow, start=0.0), upgrade(429, (b"Retry-After", b"1")), 0.0)
    assert isinstance(decision, Retry) and decision.delay_s == 4.0


def test_retry_after_past_the_budget_gives_up() -> None:
    policy = RetryPolicy(total_budget_s=30.0)
    decision = fail(Retrier(policy, start=0.0), upgrade(429, (b"Retry-After", b"3600")), 0.0)
    assert isinstance(decision, GiveUp) and "total budget" in decision.reason
    decision = fail(Retrier(policy, start=0.0), upgrade(429, (b"Retry-After", b"20")), 15.0)
    assert isinstance(decision, GiveUp)


def test_no_replay_once_output_reached_the_caller() -> None:
    error = ConnectionClosedError(1006, "", "dropped")
    decision = fail(Retrier(RetryPolicy(), start=0.0), error, 1.0, output=True)
    assert isinstance(decision, GiveUp) and decision.error is error
    assert "output already reached the caller" in decision.reason
    assert [a.number for a in error.attempts] == [1]


def test_a_one_shot_input_is_not_retried() -> None:
    decision = fail(Retrier(RetryPolicy(), start=0.0), ConnectError("x"), 0.0, replayable=False)
    assert isinstance(decision, GiveUp) and "cannot be replayed" in decision.reason


def test_final_errors_raise_at_once() -> None:
    for error in (server_error_for("unknown model", 1003),
                  ConnectionClosedError(1008, "No authentication provided.")):
        decision = fail(Retrier(RetryPolicy(), start=0.0), error, 0.0)
        assert isinstance(decision, GiveUp) and decision.reason.startswith("final")
        assert len(error.attempts) == 1  # type: ignore[attr-defined]


def test_no_policy_never_retries() -> None:
    decision = fail(Retrier(None, start=0.0), ConnectError("x"), 0.0)
    assert isinstance(decision, GiveUp) and decision.reason == "retries are off"


def test_the_final_error_lists_the_attempts() -> None:
    retrier = Retrier(RetryPolicy(), start=10.0, rng=random.Random(5))
    errors: list[BaseException] = [ConnectError("refused"), InternalServerError("busy", 1011),
                                   server_error_for("unknown model", 1003)]
    decisions = run(retrier, errors, start=10.0)
    give_up = decisions[-1]
    assert isinstance(give_up, GiveUp) and give_up.error is errors[-1]
    attempts = give_up.error.attempts  # type: ignore[attr-defined]
    assert [a.number for a in attempts] == [1, 2, 3]
    assert [a.error for a in attempts] == errors
    assert all(isinstance(a, Attempt) for a in attempts)
    assert attempts[0].at_s == 0.0 and attempts[-1].delay_s is None
    assert attempts[0].delay_s == decisions[0].delay_s  # type: ignore[union-attr]
    note = "\n".join(give_up.error.__notes__)
    assert "3 attempts" in note and "attempt 1 failed" in note and "ConnectError" in note


def test_each_attempt_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="s2s_core.retry")
    run(Retrier(RetryPolicy(), start=0.0, rng=random.Random(1)),
        [InternalServerError("no worker available", 1011)] * 3)
    records = [r for r in caplog.records if r.name == "s2s_core.retry"]
    assert [r.levelno for r in records] == [logging.INFO] * 3
    assert "retrying in" in records[0].getMessage() and "1011" in records[0].getMessage()
    assert "giving up" in records[-1].getMessage()


@pytest.mark.parametrize("kwargs", [
    {"max_attempts": 0},
    {"base_delay_s": -1.0},
    {"base_delay_s": 2.0, "max_delay_s": 1.0},
    {"total_budget_s": -1.0},
    {"jitter": "equal"},
    {"caps": {"1003": 1}},
    {"caps": {"nonsense": 1}},
    {"caps": {"1011": -1}},
])
def test_bad_policies_are_typed(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRetryPolicy) as info:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and isinstance(info.value, S2SError)


def test_policy_caps_are_read_only() -> None:
    caps = {"1011": 2}
    policy = RetryPolicy(caps=caps)
    caps["1011"] = 99
    assert policy.caps["1011"] == 2
    with pytest.raises(TypeError):
        policy.caps["1011"] = 3  # type: ignore[index]


def test_readme_shows_the_table() -> None:
    from pathlib import Path

    readme = Path(__file__).resolve().parent.parent / "README.md"
    assert render_table() in readme.read_text()
