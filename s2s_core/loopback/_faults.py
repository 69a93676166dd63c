"""Faults the local server can inject, for tests of how clients survive them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BENIGN_FAULTS", "SETUP_REFUSALS", "UPGRADE_REFUSALS", "Fault", "FaultPlan"]


class Fault(enum.Enum):
    """Faults the testing server can inject (never on by default)."""

    DROP_TCP = "drop_tcp"
    """Drop the TCP connection mid-stream, without a close frame."""
    CLOSE_1011 = "close_1011"
    """Close with 1011 and no error message."""
    ERROR_1011 = "error_1011"
    """Send error 1011, then close with 1011."""
    ERROR_KEEP_OPEN = "error_keep_open"
    """Send error 1011 and keep the socket open."""
    STALL = "stall"
    """Stop sending anything; keep the socket open."""
    SLOW_OUTPUT = "slow_output"
    """Delay every output message."""
    OVERSIZED = "oversized"
    """Send one huge (valid) audio message."""
    INVALID_UTF8 = "invalid_utf8"
    """Send a text frame that is not UTF-8."""
    MALFORMED_JSON = "malformed_json"
    """Send a text message that is not JSON."""
    FRAGMENTED = "fragmented"
    """Send every message in three fragments (valid)."""
    PINGS = "pings"
    """Send a ping before every message (valid)."""
    UNKNOWN_TYPES = "unknown_types"
    """Send unknown message types between messages (valid)."""
    # Refusals, as the service refuses (for retry policies); each hits the first
    # ``FaultPlan.times`` setups or upgrades of the server (all when None), then
    # the server serves normally.
    REFUSE_1011 = "refuse_1011"
    """Answer setup with error 1011 "No worker available", then close 1011."""
    REFUSE_1008 = "refuse_1008"
    """Answer setup with error 1008 (the account's concurrency cap), then close 1008."""
    REFUSE_1003 = "refuse_1003"
    """Answer setup with error 1003 (unknown model), then close 1003."""
    CLOSE_1008 = "close_1008"
    """After the upgrade, a bare close 1008 "No authentication provided." (no error)."""
    HTTP_429 = "http_429"
    """Refuse the upgrade with HTTP 429 and ``Retry-After: FaultPlan.retry_after``."""
    HTTP_503 = "http_503"
    """Refuse the upgrade with HTTP 503 (``Retry-After`` too unless it is None)."""


BENIGN_FAULTS = frozenset((Fault.SLOW_OUTPUT, Fault.FRAGMENTED, Fault.PINGS, Fault.UNKNOWN_TYPES))
"""Faults after which a correct client still gets a complete result."""

SETUP_REFUSALS: dict[Fault, tuple[int, str]] = {
    Fault.REFUSE_1011: (1011, "No worker available, please retry later."),
    Fault.REFUSE_1008: (1008, "Concurrency limit reached for this account."),
    Fault.REFUSE_1003: (1003, "Unknown model: {model}"),
}
"""Error code and message of each setup refusal (``{model}``: the setup's model_name)."""

UPGRADE_REFUSALS = frozenset((Fault.CLOSE_1008, Fault.HTTP_429, Fault.HTTP_503))
"""Refusals that happen at the WebSocket upgrade."""


@dataclass(frozen=True)
class FaultPlan:
    """Which fault, and when: after ``after_messages`` output messages."""

    fault: Fault
    after_messages: int = 3
    slow_delay_s: float = 0.02
    oversized_bytes: int = 2 * 2**20
    times: int | None = None
    """Refusals only: how many setups (or upgrades) are refused; None: all."""
    retry_after: str | None = "1"
    """HTTP_429 / HTTP_503 only: the ``Retry-After`` value (None: no header)."""
