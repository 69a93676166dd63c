"""What an HTTP refusal of the WebSocket upgrade tells the user (``HandshakeRejected``).

The status line, the headers that say what to do next (``Location``,
``WWW-Authenticate``, ``Retry-After``) and an excerpt of the body, made safe
to print. Sources: RFC 9110 (sections 10.2.2 Location, 10.2.3 Retry-After,
11.6.1 WWW-Authenticate, 11.7.1 Proxy-Authenticate, 5.6.7 HTTP-date).
"""

from __future__ import annotations

import datetime
import email.utils
import http
import time
from collections.abc import Sequence

__all__ = ["header_value", "parse_retry_after", "printable_excerpt", "refusal_message"]

EXCERPT_CHARS = 200
"""Characters of the body shown in the message (after escaping)."""


def header_value(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), decoded as latin-1, or None."""
    key = name.lower().encode("ascii")
    for k, v in headers:
        if k.lower() == key:
            return v.decode("latin-1").strip()
    return None


_MAX_DELTA_DIGITS = 12


def parse_retry_after(value: str, date: str | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date).

    An HTTP-date is measured from the response's ``Date`` header when it has
    one (so a skewed local clock does not matter), else from the local wall
    clock. A date in the past gives 0.0.

    Returns:
        The delay in seconds, or None when the value is neither form.
    """
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Beyond a dozen digits (31,000 years) it is nonsense, and int() of a
        # very long string raises: refuse it like any other bad value.
        return float(int(value)) if len(value) <= _MAX_DELTA_DIGITS else None
    when = _http_date(value)
    if when is None:
        return None
    base = _http_date(date) if date is not None else None
    return max(0.0, when - (base if base is not None else time.time()))


def _http_date(value: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP-dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def printable_excerpt(data: bytes, limit: int = EXCERPT_CHARS) -> str:
    """The start of ``data`` as text, control characters escaped, at most ``limit`` chars.

    Bytes are decoded as UTF-8 (invalid bytes become U+FFFD); characters that
    are not printable (newlines, escape sequences, bidi controls...) are shown
    as Python escapes, so a hostile body cannot rewrite the terminal. A cut
    excerpt ends with "...".
    """
    text = data[:limit * 4].decode("utf-8", "replace")
    out: list[str] = []
    size = 0
    for char in text:
        shown = char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        if size + len(shown) > limit:
            out.append("...")
            break
        out.append(shown)
        size += len(shown)
    else:
        if len(data) > limit * 4:
            out.append("...")
    return "".join(out)


def refusal_message(status: int, reason: str, headers: Sequence[tuple[bytes, bytes]],
                    body: bytes, retry_after: float | None) -> str:
    """The text of a ``HandshakeRejected``: status, what to do next, body excerpt."""
    if not reason:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    parts = [f"WebSocket upgrade refused with HTTP {status} {reason}".rstrip()]
    hint = _hint(status, headers, retry_after)
    if hint:
        parts.append(hint)
    if body:
        parts.append(f"body: \"{printable_excerpt(body)}\"")
    return "; ".join(parts)


def _hint(status: int, headers: Sequence[tuple[bytes, bytes]],
          retry_after: float | None) -> str:
    if 300 <= status < 400:
        location = header_value(headers, "location")
        if location is None:
            return "a redirect without a Location header (redirects are not followed)"
        return (f"redirected to Location: {printable_excerpt(location.encode('latin-1'))} "
                "(redirects are not followed: use that URL as the base URL if you trust it)")
    if status in (401, 403):
        asked = header_value(headers, "www-authenticate")
        scheme = (f"the server asks for WWW-Authenticate: "
                  f"{printable_excerpt(asked.encode('latin-1'))}; " if asked else "")
        return (f"{scheme}this client authenticates with the x-api-key header "
                "(api_key=...) or a ?token= single-use token: check the key or token")
    if status == 407:
        asked = header_value(headers, "proxy-authenticate")
        return ("a proxy asks for authentication"
                + (f" (Proxy-Authenticate: {printable_excerpt(asked.encode('latin-1'))})"
                   if asked else ""))
    if status in (429, 503):
        if retry_after is not None:
            return f"Retry-After: retry in {retry_after:g} s"
        return "no usable Retry-After header"
    return ""
