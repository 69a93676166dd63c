"""Which failures may be retried, and when: one table and a sans-IO retry policy.

``TABLE`` says, for every server error code, close code, upgrade status,
proxy answer and connection failure, whether it is final, transient, or
transient but bounded by time. ``classify`` reads it (by codes, never by
message text) and ``S2SError.retryable`` is ``classify(error) is not FINAL``.
The codes and what they mean come from PROTOCOL.md section 6 and RFC 6455
section 7.4 (close codes 1012-1014 are IANA-registered restarts).

``Retrier`` applies a ``RetryPolicy`` to the failures of one call. It does
no I/O and reads no clock: the caller reports each failure with its own
clock's ``now`` and sleeps the delay it is given::

    retrier = Retrier(policy, start=clock())
    while True:
        try:
            return attempt()
        except S2SError as exc:
            decision = retrier.on_failure(exc, now=clock(),
                                          output_reached_caller=..., replayable=...)
            if isinstance(decision, GiveUp):
                raise decision.error
            sleep(decision.delay_s)

Rules, in order: nothing is replayed once output reached the caller (the
error is raised as is, with its ``partial_result``); a FINAL error is raised
at once; an input that cannot be replayed is not retried; a TRANSIENT error
is retried up to ``max_attempts`` attempts in all; a TRANSIENT_CAPPED error
(1008: the account's concurrency cap, which frees when another session
ends, but also a bad key or no credits, which never clear: the frame does
not tell them apart) is retried as long as the total budget allows, whatever
``max_attempts`` says; ``caps`` bounds the retries per kind (``"1011"``: 2,
since 1011 also means an unknown voice id; ``"1008"``: 3, so a bad key or
spent credits fail within seconds, not after the whole budget; a TLS
certificate that fails verification is final); no retry starts past
``total_budget_s`` after the first attempt. The delay is exponential backoff
with full jitter (uniform in ``[0, min(max_delay_s, base_delay_s * 2**n)]``
for the n-th retry), or the server's ``Retry-After`` when longer. Each
decision is logged at INFO on the ``s2s_core.retry`` logger (error type,
code and text, delay; never a key, token or proxy credential). The error
finally raised carries ``attempts`` (every ``Attempt``) and, when retries
happened, a note listing them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import random
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from .errors import (
    CloseTimeout,
    ConnectError,
    ConnectionClosedError,
    ConnectTimeout,
    HandshakeRejected,
    IdleTimeout,
    KeepaliveTimeout,
    ReadyTimeout,
    S2SError,
    S2STimeoutError,
    ServerError,
    set_retry_rule,
)
from .proxy import ProxyError

__all__ = [
    "ErrorClass",
    "Rule",
    "TABLE",
    "Classification",
    "classify",
    "classify_detail",
    "render_table",
    "RetryPolicy",
    "InvalidRetryPolicy",
    "Attempt",
    "Retry",
    "GiveUp",
    "Retrier",
]

logger = logging.getLogger("s2s_core.retry")


class ErrorClass(enum.Enum):
    """What trying again can do about a failure."""

    FINAL = "final"
    """The same request fails the same way: raise at once."""
    TRANSIENT = "transient"
    """May clear by itself: retry with backoff, up to ``max_attempts``."""
    TRANSIENT_CAPPED = "transient, time-capped"
    """May clear, or never: retry only within the total time budget."""


_F, _T, _C = ErrorClass.FINAL, ErrorClass.TRANSIENT, ErrorClass.TRANSIENT_CAPPED

Source = Literal["server error", "close", "upgrade", "proxy", "tls", "failure"]
Match = tuple[int | range | type[BaseException] | None, ...]


@dataclass(frozen=True)
class Rule:
    """One row of ``TABLE``.

    Attributes:
        source: Where the code comes from: ``"server error"`` (the ``code``
            of an ``error`` message), ``"close"`` (a close without an error
            message), ``"upgrade"`` (the HTTP status refusing the upgrade),
            ``"proxy"`` (a proxy's answer to CONNECT), ``"failure"`` (an
            exception type: connect failures and timeouts).
        match: Codes (ints, ranges; None for an absent code) or exception
            types; empty: every other value of that source.
        error_class: What retrying can do.
        key: The name ``RetryPolicy.caps`` uses for this kind of failure.
        why: The reason, for the README and the logs.
    """

    source: Source
    match: Match
    error_class: ErrorClass
    key: str
    why: str

    def matches(self, value: object) -> bool:
        """Whether a code (or an exception, for ``failure`` rows) falls under this row."""
        if not self.match:
            return True
        if self.source == "failure":
            return isinstance(value, tuple(t for t in self.match if isinstance(t, type)))
        for item in self.match:
            if isinstance(item, range):
                if isinstance(value, int) and value in item:
                    return True
            elif item == value:
                return True
        return False


TABLE: tuple[Rule, ...] = (
    Rule("server error", (1002,), _F, "1002", "protocol error: a client bug, sent again"),
    Rule("server error", (1003,), _F, "1003", "unsupported data (unknown model, bad setup)"),
    Rule("server error", (1008,), _C, "1008",
         "policy: the concurrency cap frees when a session ends; a bad key or no credits "
         "never clears, and the frame does not tell them apart"),
    Rule("server error", (1011,), _T, "1011",
         "internal error, no worker available (also an unknown voice id: capped)"),
    Rule("server error", (None,), _F, "error", "no code: nothing says a retry can help"),
    Rule("server error", (), _F, "error", "an undocumented code"),
    Rule("close", (1000, 1001, 1005), _T, "shutdown",
         "closed before end_of_stream without an error: the server shut down mid-session"),
    Rule("close", (1006,), _T, "transport", "dropped without a close frame"),
    Rule("close", (1008,), _F, "close-1008",
         "bare close 1008 (no error message): no or bad credentials"),
    Rule("close", (1011,), _T, "1011", "internal error"),
    Rule("close", (1012, 1013, 1014), _T, "restart",
         "service restart, try again later, bad gateway (RFC 6455 registry)"),
    Rule("close", (), _F, "close", "protocol, data or policy close codes"),
    Rule("upgrade", (range(300, 400),), _F, "http-3xx", "redirects are not followed: fix the URL"),
    Rule("upgrade", (401, 403), _F, "http-auth", "credentials refused"),
    Rule("upgrade", (404,), _F, "http-404", "no such endpoint: fix the URL"),
    Rule("upgrade", (407,), _F, "http-407", "a proxy wants credentials"),
    Rule("upgrade", (408,), _T, "http-408", "request timeout"),
    Rule("upgrade", (429,), _T, "http-429", "rate limited: Retry-After honoured"),
    Rule("upgrade", (501, 505), _F, "http-5xx-final", "not implemented, version not supported"),
    Rule("upgrade", (range(500, 600),), _T, "http-5xx",
         "server or gateway unavailable: Retry-After honoured"),
    Rule("upgrade", (), _F, "http", "other refusals"),
    Rule("proxy", (range(400, 500),), _F, "proxy-4xx",
         "the proxy refuses (407 credentials, 403 forbidden)"),
    Rule("proxy", (1, 3, 4, 5, 6, range(500, 600)), _T, "proxy",
         "the proxy cannot reach the service now (HTTP 5xx; SOCKS failure, unreachable, "
         "refused, TTL expired)"),
    Rule("proxy", (None,), _T, "proxy", "proxy unreachable, or it hung up"),
    Rule("proxy", (), _F, "proxy-final", "SOCKS: not allowed, unsupported command or address"),
    Rule("tls", (), _F, "tls-verify",
         "the service's certificate could not be verified: a retry cannot fix it"),
    Rule("failure", (ConnectError,), _T, "connect",
         "cannot open the socket or TLS (refused, unreachable, reset)"),
    Rule("failure", (CloseTimeout,), _F, "close-timeout",
         "the closing handshake is late: the request is over"),
    Rule("failure", (ConnectTimeout, ReadyTimeout, IdleTimeout, KeepaliveTimeout,
                     S2STimeoutError), _T, "timeout",
         "connect, ready, idle or keepalive timeout: a busy or dead peer"),
    Rule("failure", (OSError,), _T, "transport", "a transport error outside s2s-core"),
    Rule("failure", (), _F, "other", "everything else (bad input, protocol violations)"),
)
"""Every failure and its class, first matching row wins (per source)."""

_BY_SOURCE: dict[str, tuple[Rule, ...]] = {
    source: tuple(rule for rule in TABLE if rule.source == source)
    for source in ("server error", "close", "upgrade", "proxy", "tls", "failure")}


def _certificate_refused(error: BaseException) -> bool:
    """The TLS peer's certificate failed verification (somewhere down the causes)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


@dataclass(frozen=True)
class Classification:
    """The row of ``TABLE`` a failure falls under, and the value that matched."""

    rule: Rule
    value: object

    @property
    def error_class(self) -> ErrorClass:
        """The row's class."""
        return self.rule.error_class

    @property
    def key(self) -> str:
        """The row's key (``RetryPolicy.caps``)."""
        return self.rule.key


def classify_detail(error: BaseException) -> Classification:
    """The row of ``TABLE`` that ``error`` falls under (see ``classify``)."""
    source: str
    value: object
    if isinstance(error, ServerError):
        source, value = "server error", error.code
    elif isinstance(error, ConnectionClosedError):
        source, value = "close", error.code
    elif isinstance(error, HandshakeRejected):
        source, value = "upgrade", error.status
    elif isinstance(error, ProxyError):
        source, value = "proxy", error.status
    elif _certificate_refused(error):
        source, value = "tls", error
    else:
        source, value = "failure", error
    for rule in _BY_SOURCE[source]:
        if rule.matches(value):
            return Classification(rule, value)
    raise AssertionError(f"TABLE has no catch-all row for {source!r}")  # pragma: no cover


def classify(error: BaseException) -> ErrorClass:
    """Whether ``error`` is FINAL, TRANSIENT or TRANSIENT_CAPPED, from ``TABLE``.

    Args:
        error: Any exception; s2s-core's are read by code and status, others
            by type (an ``OSError`` is a transport failure).
    """
    return classify_detail(error).error_class


def render_table() -> str:
    """``TABLE`` as a Markdown table (the README shows this)."""
    lines = ["| source | codes | class | cap key | why |", "|---|---|---|---|---|"]
    for rule in TABLE:
        lines.append(f"| {rule.source} | {_show(rule)} | {rule.error_class.value} | "
                     f"`{rule.key}` | {rule.why} |")
    return "\n".join(lines)


def _show(rule: Rule) -> str:
    if not rule.match:
        return "any other"
    shown = []
    for item in rule.match:
        if isinstance(item, range):
            shown.append(f"{item.start}-{item.stop - 1}")
        elif isinstance(item, type):
            shown.append(f"`{item.__name__}`")
        else:
            shown.append("absent" if item is None else str(item))
    return ", ".join(shown)


_CAP_KEYS = frozenset(rule.key for rule in TABLE if rule.error_class is not ErrorClass.FINAL)


class InvalidRetryPolicy(S2SError, ValueError):
    """A ``RetryPolicy`` field is out of range (the message says which, and what is allowed)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How a call retries its transient failures (see the module doc for the rules).

    Attributes:
        max_attempts: Attempts in all (the first included) for TRANSIENT
            failures; >= 1.
        base_delay_s: Backoff of the first retry before jitter; >= 0.
        max_delay_s: Largest backoff before jitter; >= ``base_delay_s``.
        total_budget_s: No retry starts later than this after the first
            attempt began (a Retry-After that would end later gives up).
        caps: Most retries per kind of failure, by ``TABLE`` key (e.g.
            ``{"1011": 2}``); keys of FINAL rows mean nothing and are refused.
        jitter: ``"full"`` (uniform in [0, backoff]) or ``"none"``.
    """

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    total_budget_s: float = 30.0
    caps: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"1011": 2, "1008": 3}))
    jitter: Literal["full", "none"] = "full"

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidRetryPolicy(f"max_attempts={self.max_attempts!r}: expected an int >= 1")
        if self.base_delay_s < 0:
            raise InvalidRetryPolicy(f"base_delay_s={self.base_delay_s!r}: expected >= 0")
        if self.max_delay_s < self.base_delay_s:
            raise InvalidRetryPolicy(f"max_delay_s={self.max_delay_s!r}: expected >= "
                                     f"base_delay_s ({self.base_delay_s!r})")
        if self.total_budget_s < 0:
            raise InvalidRetryPolicy(f"total_budget_s={self.total_budget_s!r}: expected >= 0")
        if self.jitter not in ("full", "none"):
            raise InvalidRetryPolicy(f"jitter={self.jitter!r}: expected 'full' or 'none'")
        for key, cap in self.caps.items():
            if key not in _CAP_KEYS:
                raise InvalidRetryPolicy(f"caps key {key!r} is not a retried kind; allowed: "
                                         f"{', '.join(sorted(_CAP_KEYS))}")
            if not isinstance(cap, int) or cap < 0:
                raise InvalidRetryPolicy(f"caps[{key!r}]={cap!r}: expected an int >= 0")
        object.__setattr__(self, "caps", MappingProxyType(dict(self.caps)))

    def backoff(self, retries_done: int, rng: random.Random) -> float:
        """The delay before retry number ``retries_done + 1``, jitter applied."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** min(retries_done, 64))
        return rng.uniform(0.0, ceiling) if self.jitter == "full" else ceiling


@dataclass(frozen=True)
class Attempt:
    """One failed attempt, as the final error lists it.

    Attributes:
        number: 1 for the first attempt.
        error: What ended it.
        error_class: Its class in ``TABLE``.
        key: Its ``TABLE`` key.
        at_s: When it failed, in seconds after the first attempt began.
        delay_s: The wait before the next attempt; None for the last one.
        outcome: ``"retried"`` or why the policy gave up.
    """

    number: int
    error: BaseException
    error_class: ErrorClass
    key: str
    at_s: float
    delay_s: float | None
    outcome: str

    def describe(self) -> str:
        """One line: number, time, error, and what came of it."""
        then = f"retried after {self.delay_s:.2f} s" if self.delay_s is not None else self.outcome
        return (f"attempt {self.number} failed at {self.at_s:.2f} s: "
                f"{type(self.error).__name__}: {self.error} ({self.error_class.value}); {then}")


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay_s`` seconds (on a new connection)."""

    delay_s: float
    reason: str
    attempt: Attempt


@dataclass(frozen=True)
class GiveUp:
    """Raise ``error``: the failure of the last attempt, with ``attempts`` set on it."""

    error: BaseException
    reason: str


class Retrier:
    """The retry decisions of one call (sans-IO: the caller's clock, the caller's sleep).

    Args:
        policy: The policy; None never retries (every failure gives up at once).
        start: The caller's clock when the first attempt began.
        rng: Source of jitter (seed one for reproducible delays).
    """

    def __init__(self, policy: RetryPolicy | None, *, start: float,
                 rng: random.Random | None = None) -> None:
        self.policy = policy
        self.start = start
        self.attempts: list[Attempt] = []
        self._rng = rng if rng is not None else random.Random()
        self._retries_by_key: dict[str, int] = {}

    def on_failure(self, error: BaseException, *, now: float, output_reached_caller: bool,
                   replayable: bool) -> Retry | GiveUp:
        """Decide what to do about the failure of the latest attempt.

        Args:
            error: What ended the attempt.
            now: The caller's clock (the one ``start`` came from).
            output_reached_caller: Some output (an event, audio, text) was
                already handed to the caller: never replayed.
            replayable: The input can be sent again from its start.

        Returns:
            ``Retry(delay_s, ...)``: sleep, then make a new attempt.
            ``GiveUp(error, ...)``: raise ``error`` (``attempts`` is set on it,
            and a note lists them when retries happened).
        """
        detail = classify_detail(error)
        elapsed = max(0.0, now - self.start)
        number = len(self.attempts) + 1
        refusal = self._refusal(detail, number, output_reached_caller, replayable)
        delay = 0.0
        if refusal is None:
            assert self.policy is not None
            budget = self.policy.total_budget_s
            delay = self._delay(error, len(self.attempts))
            if elapsed + delay > budget:
                refusal = f"the next attempt would start after the total budget of {budget:g} s"
        if refusal is not None:
            return self._give_up(error, detail, number, elapsed, refusal)
        attempt = Attempt(number, error, detail.error_class, detail.key, elapsed, delay, "retried")
        self.attempts.append(attempt)
        self._retries_by_key[detail.key] = self._retries_by_key.get(detail.key, 0) + 1
        reason = f"{_summary(error)} [{detail.error_class.value}: {detail.rule.why}]"
        logger.info("attempt %d failed: %s; retrying in %.2f s", number, reason, delay)
        return Retry(delay, reason, attempt)

    def retry_delay(self, error: BaseException, *, now: float, output_reached_caller: bool,
                    replayable: bool) -> float:
        """``on_failure`` for a caller that sleeps, then tries again: how long to sleep.

        Raises:
            BaseException: ``error`` itself (``attempts`` set on it), when
                no retry follows.
        """
        decision = self.on_failure(error, now=now, output_reached_caller=output_reached_caller,
                                   replayable=replayable)
        if isinstance(decision, GiveUp):
            raise decision.error
        return decision.delay_s

    def _refusal(self, detail: Classification, number: int, output_reached_caller: bool,
                 replayable: bool) -> str | None:
        """Why no retry is allowed, or None when one may be."""
        policy = self.policy
        if policy is None:
            return "retries are off"
        if output_reached_caller:
            return "output already reached the caller: not replayed"
        if detail.error_class is ErrorClass.FINAL:
            return f"final: {detail.rule.why}"
        if not replayable:
            return "the input cannot be replayed"
        if detail.error_class is ErrorClass.TRANSIENT and number >= policy.max_attempts:
            return f"max_attempts ({policy.max_attempts}) reached"
        cap = policy.caps.get(detail.key)
        if cap is not None and self._retries_by_key.get(detail.key, 0) >= cap:
            return f"at most {cap} retries after {detail.key!r} failures"
        return None

    def _delay(self, error: BaseException, retries_done: int) -> float:
        assert self.policy is not None
        delay = self.policy.backoff(retries_done, self._rng)
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, (int, float)) and retry_after > delay:
            delay = float(retry_after)
        return delay

    def _give_up(self, error: BaseException, detail: Classification, number: int,
                 elapsed: float, reason: str) -> GiveUp:
        self.attempts.append(Attempt(number, error, detail.error_class, detail.key, elapsed,
                                     None, f"gave up: {reason}"))
        attempts = tuple(self.attempts)
        with contextlib.suppress(AttributeError):  # a type with __slots__: nowhere to attach
            error.attempts = attempts  # type: ignore[attr-defined]
        add_note = getattr(error, "add_note", None)  # Python >= 3.11
        if len(attempts) > 1 and add_note is not None:
            add_note(f"{len(attempts)} attempts:\n"
                     + "\n".join("  " + a.describe() for a in attempts))
        logger.info("attempt %d failed: %s; giving up (%s)", number, _summary(error), reason)
        return GiveUp(error, reason)


def _summary(error: BaseException) -> str:
    """Type, code and text of an error, for a log line (the texts hold no secrets)."""
    return f"{type(error).__name__}: {error}"


set_retry_rule(lambda error: classify(error) is not ErrorClass.FINAL)
