"""Lone UTF-16 surrogate escapes in JSON text, replaced so the message decodes.

``json.dumps`` writes half of an emoji (a string cut inside a surrogate pair)
as a lone ``\\ud83d`` escape. JSON's grammar allows it (RFC 8259 section 8.2
calls such strings "unpredictable"), but it is no Unicode text and msgspec
refuses the whole message. A server that cuts its text between two halves of
an emoji would then fail the request; instead, each lone surrogate becomes
U+FFFD (what a UTF-8 decoder does with a broken sequence). Only called after a
decode failed, so valid messages pay nothing.
"""

from __future__ import annotations

import re

__all__ = ["replace_lone_surrogates"]

# One escape at a time, left to right, so that an escaped backslash ("\\\\")
# is consumed whole and the text after it is not read as an escape: a valid
# high+low pair, else a lone surrogate (high or low), else any other escape.
_ESCAPE = re.compile(
    rb"\\(?:(u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(u[dD][89a-fA-F][0-9a-fA-F]{2})"
    rb"|.)",
    re.DOTALL,
)
_REPLACEMENT = rb"\ufffd"


def _replace(match: re.Match[bytes]) -> bytes:
    return _REPLACEMENT if match.group(2) is not None else match.group()


def replace_lone_surrogates(data: bytes | str) -> bytes | None:
    """``data`` with each lone ``\\uD800``-``\\uDFFF`` escape turned into ``\\ufffd``.

    Returns:
        The rewritten message as bytes, or None when it holds no lone
        surrogate escape (the caller's decode error stands).
    """
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if b"\\u" not in raw:
        return None
    fixed = _ESCAPE.sub(_replace, raw)
    return None if fixed == raw else fixed
