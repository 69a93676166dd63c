"""The upgrade request's headers: ours, merged with the user's ``extra_headers``.

A user header replaces ours of the same name (names compare case-insensitively,
RFC 9110 5.1), so ``Host``, ``User-Agent``, ``x-api-source`` and ``x-api-key``
are each sent once. Headers that make the request a WebSocket upgrade (RFC 6455
4.1) or would give it a body are refused: wsproto writes them itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import InvalidHeader

__all__ = ["RESERVED_HEADERS", "upgrade_headers"]

RESERVED_HEADERS: dict[str, str] = {
    "upgrade": "it is what makes the request a WebSocket upgrade",
    "connection": "it is what makes the request a WebSocket upgrade",
    "sec-websocket-key": "the handshake's nonce is generated for each connection",
    "sec-websocket-version": "the client speaks WebSocket version 13 (RFC 6455)",
    "sec-websocket-accept": "it is a response header",
    "sec-websocket-protocol": "the S2S protocol uses no subprotocol",
    "sec-websocket-extensions": "the S2S protocol uses no extension (no compression)",
    "content-length": "the upgrade request has no body",
    "transfer-encoding": "the upgrade request has no body",
}
"""Header names that ``extra_headers`` cannot set, with the reason."""

_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")  # RFC 9110 5.1 field-name
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 5.5: no CTL but HTAB

HeaderItems = Mapping[str, str] | Sequence[tuple[str, str]]


def upgrade_headers(ours: Sequence[tuple[str, str]],
                    extra: HeaderItems | None) -> tuple[str | None, list[tuple[bytes, bytes]]]:
    """Merge our headers with the user's.

    Args:
        ours: Our headers (name, value), sent unless the user sets the same name.
        extra: The user's headers, a mapping or (name, value) pairs.

    Returns:
        The user's ``Host`` (None: the URL's), and the other headers as bytes.

    Raises:
        InvalidHeader: A reserved name, a name that is not an HTTP token, a value
            that is not a string or holds control characters, two ``Host``.
    """
    user = _checked(extra)
    host = None
    for name, value in user:
        if name.lower() == "host":
            if host is not None:
                raise InvalidHeader(name, "is given twice; an HTTP request has one Host")
            host = value
    replaced = {name.lower() for name, _ in user}
    merged = [(n, v) for n, v in ours if n.lower() not in replaced]
    merged += [(n, v) for n, v in user if n.lower() != "host"]
    return host, [(n.encode("ascii"), v.encode()) for n, v in merged]


def _checked(extra: HeaderItems | None) -> list[tuple[str, str]]:
    if extra is None:
        return []
    if isinstance(extra, Mapping):
        items = list(extra.items())
    elif isinstance(extra, (str, bytes)) or not isinstance(extra, Sequence):
        raise InvalidHeader(repr(extra)[:40], "extra_headers must be a mapping or a sequence "
                            "of (name, value) pairs")
    else:
        items = list(extra)
    out = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidHeader(repr(item)[:40], "each extra header must be a (name, value) pair")
        out.append(_check(*item))
    return out


def _check(name: object, value: object) -> tuple[str, str]:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidHeader(repr(name), "is not a valid HTTP header name (RFC 9110 token: "
                            "letters, digits and !#$%&'*+-.^_`|~)")
    why = RESERVED_HEADERS.get(name.lower())
    if why is not None:
        raise InvalidHeader(name, f"cannot be set in extra_headers: {why}")
    if not isinstance(value, str):
        raise InvalidHeader(name, f"value must be a str, not {type(value).__name__}")
    value = value.strip(" \t")
    if _CONTROL.search(value):
        raise InvalidHeader(name, f"value {value!r} holds control characters (CR, LF, NUL...)")
    if name.lower() == "host":
        try:
            value.encode("idna")  # how wsproto writes Host
        except UnicodeError as exc:
            raise InvalidHeader(name, f"value {value!r} is not a host name ({exc})") from None
    return name, value
