"""URL handling: endpoint from a base URL, and the parts a transport needs."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

__all__ = ["DEFAULT_BASE_URL", "S2S_ROUTE", "REGIONS", "s2s_url", "WebSocketTarget", "parse_ws_url"]

DEFAULT_BASE_URL = "https://api.gradium.ai/api/"
S2S_ROUTE = "speech/s2s"
REGIONS = {"eu": "https://eu.api.gradium.ai/api/", "us": "https://us.api.gradium.ai/api/"}
"""Legacy regional hosts, only used when a region is asked for."""

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def s2s_url(base_url: str = DEFAULT_BASE_URL, *, region: str | None = None,
            route: str = S2S_ROUTE) -> str:
    """The S2S WebSocket URL for a base URL.

    Only the scheme changes (``http`` -> ``ws``, ``https`` -> ``wss``); a
    host or path that contains "http" is left alone. A base URL without a
    scheme gets ``https`` (``http`` for localhost and 127.x).

    Raises:
        ValueError: Unknown region or scheme.
    """
    if region is not None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; allowed: {', '.join(REGIONS)}")
        base_url = REGIONS[region]
    if "://" not in base_url:
        local = base_url.startswith(("127.", "localhost", "[::1]"))
        base_url = ("http://" if local else "https://") + base_url
    if not base_url.endswith("/"):
        base_url += "/"
    parts = urllib.parse.urlsplit(urllib.parse.urljoin(base_url, route))
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {base_url!r}")
    return urllib.parse.urlunsplit(parts._replace(scheme=scheme))


@dataclass(frozen=True)
class WebSocketTarget:
    """What a transport needs to open a WebSocket URL."""

    secure: bool
    host: str
    port: int
    target: str
    """Path and query for the request line."""

    @property
    def host_header(self) -> str:
        """The Host header value (port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_ws_url(url: str, *, token: str | None = None) -> WebSocketTarget:
    """Split a ws/wss (or http/https) URL, adding ``?token=`` when given.

    Raises:
        ValueError: Not a ws/wss/http/https URL, or no host.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r}")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    query = parts.query
    if token is not None:
        extra = urllib.parse.urlencode({"token": token})
        query = f"{query}&{extra}" if query else extra
    target = (parts.path or "/") + (f"?{query}" if query else "")
    return WebSocketTarget(secure, parts.hostname, port, target)
