"""Faults the local server can inject, for tests of how clients survive them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["BENIGN_FAULTS", "Fault", "FaultPlan"]


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


BENIGN_FAULTS = frozenset((Fault.SLOW_OUTPUT, Fault.FRAGMENTED, Fault.PINGS, Fault.UNKNOWN_TYPES))
"""Faults after which a correct client still gets a complete result."""


@dataclass(frozen=True)
class FaultPlan:
    """Which fault, and when: after ``after_messages`` output messages."""

    fault: Fault
    after_messages: int = 3
    slow_delay_s: float = 0.02
    oversized_bytes: int = 2 * 2**20
