"""The ``Retry-After`` header of an HTTP refusal (RFC 9110 section 10.2.3), in seconds."""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Iterable

__all__ = ["retry_after_seconds"]

_MAX_DELTA_DIGITS = 12  # delta-seconds beyond this are nonsense; also keeps int() cheap


def retry_after_seconds(headers: Iterable[tuple[bytes, bytes]],
                        now: float | None = None) -> float | None:
    """Seconds the server asks to wait, from a response's headers; None when absent or invalid.

    The value is either ``delta-seconds`` (a non-negative integer) or an
    HTTP-date. A date is measured against the response's own ``Date`` header
    when there is one (both clocks are the server's), else against ``now``
    (seconds since the epoch; the wall clock when None). A date in the past
    gives 0.

    Args:
        headers: Response headers as (name, value) byte pairs, any case.
        now: The wall clock, for a date without a ``Date`` header.
    """
    value = _header(headers, b"retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) if len(value) <= _MAX_DELTA_DIGITS else None
    when = _http_date(value)
    if when is None:
        return None
    date_header = _header(headers, b"date")
    base = _http_date(date_header) if date_header is not None else None
    if base is None:
        base = time.time() if now is None else now
    return max(0.0, when - base)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _http_date(text: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; -0000 parses as naive
        return parsed.replace(tzinfo=datetime.UTC).timestamp()
    return parsed.timestamp()
