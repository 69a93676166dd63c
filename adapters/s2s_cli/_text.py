"""Text from the network made safe for a terminal: control characters shown, not obeyed.

A server's text (a transcript, an error message, a voice name) reaches the
user's terminal. Raw, an ESC sequence in it could recolour, retitle or clear
the terminal, a newline could forge a line of output, and a bidi control
could reverse what the user reads. ``printable`` shows each such character
as a Python-style escape (``\\x1b``, ``\\n``, ``\\u202e``); ``json_safe``
does the same inside JSON text (``\\u001b``), which stays valid JSON with
the same meaning.
"""

from __future__ import annotations

import unicodedata

__all__ = ["json_safe", "printable", "unsafe"]

# Cc: C0/C1 controls and DEL; Cf: format characters, among them the bidi
# controls and zero-width marks; Zl/Zp: line and paragraph separators; Cs:
# lone surrogates (the core keeps them from bad UTF-8, no terminal can show them).
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# The zero-width joiners are format characters that scripts (Persian, Hindi) and
# emoji sequences need, and they cannot move or hide text.
_JOINERS = frozenset({"\u200c", "\u200d"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def unsafe(char: str) -> bool:
    """True when ``char`` must not reach a terminal as it is."""
    return unicodedata.category(char) in _UNSAFE_CATEGORIES and char not in _JOINERS


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every unsafe character replaced by its escape."""
    if text.isprintable():  # the common case: nothing to look at
        return text
    return "".join(_escape(c) if unsafe(c) else c for c in text)


def json_safe(encoded: str) -> str:
    """A JSON text (``json.dumps(..., ensure_ascii=False)``) with unsafe characters escaped.

    ``json.dumps`` escapes C0 controls but writes DEL, C1 controls, bidi
    controls and lone surrogates as they are; each becomes ``\\uXXXX`` (a
    pair of them above U+FFFF), so the value decodes back to the same string.
    """
    if encoded.isprintable():
        return encoded
    return "".join(_json_escape(c) if unsafe(c) else c for c in encoded)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
