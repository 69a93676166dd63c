"""URL handling: endpoint from a base URL, and the parts a transport needs."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from .errors import InvalidURL

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
    scheme gets ``https`` (``http`` for localhost and 127.x). A URL that
    already ends with the S2S route (``ws://127.0.0.1:8765/api/speech/s2s``,
    what the local server prints) is taken as the endpoint itself.

    Raises:
        InvalidURL: The base URL's scheme is not one of ws, wss, http, https,
            or its host or port is missing or malformed (the error names the
            base URL as given).
        ValueError: Unknown region.
    """
    if region is not None:
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; allowed: {', '.join(REGIONS)}")
        base_url = REGIONS[region]
    given = base_url
    if not isinstance(base_url, str):
        raise InvalidURL(repr(base_url), f"a URL must be a str, not {type(base_url).__name__}")
    base_url = base_url.strip()
    if not base_url:
        raise InvalidURL(given, f"empty URL; expected a {_ALLOWED} URL such as {DEFAULT_BASE_URL}")
    if "://" not in base_url and _SCHEME_PREFIX.match(base_url) is None:
        local = base_url.startswith(("127.", "localhost", "[::1]"))
        base_url = ("http://" if local else "https://") + base_url
    parts = _split(base_url, given)
    if parts.path.rstrip("/").endswith("/" + route):
        # Already the S2S endpoint (what ``run_server`` yields): use it as it is.
        return urllib.parse.urlunsplit(parts._replace(scheme=_SCHEMES[parts.scheme.lower()],
                                                      path=parts.path.rstrip("/")))
    if not parts.path.endswith("/"):
        parts = parts._replace(path=parts.path + "/")
    joined = urllib.parse.urljoin(urllib.parse.urlunsplit(parts), route)
    ws = urllib.parse.urlsplit(joined)
    return urllib.parse.urlunsplit(ws._replace(scheme=_SCHEMES[ws.scheme.lower()]))


@dataclass(frozen=True)
class WebSocketTarget:
    """What a transport needs to open a WebSocket URL."""

    secure: bool
    host: str
    """Where to connect (a name or an IP address, without IPv6 brackets)."""
    port: int
    target: str
    """Path and query for the request line."""
    server_hostname: str | None = None
    """TLS server name (SNI and certificate check) when it is not ``host``."""

    @property
    def host_header(self) -> str:
        """The Host header value (port only when not the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def tls_server_name(self) -> str:
        """The name the TLS handshake sends and the certificate must match."""
        return self.server_hostname or self.host


def parse_ws_url(url: str, *, token: str | None = None,
                 server_hostname: str | None = None) -> WebSocketTarget:
    """Split a ws/wss (or http/https) URL, adding ``?token=`` when given.

    Characters a request line cannot carry (spaces, non-ASCII) are
    percent-encoded in the path and query.

    Args:
        url: The WebSocket URL.
        token: Single-use token, appended as ``?token=``.
        server_hostname: TLS server name when it differs from the URL's host
            (connecting to an address, or through a tunnel, with a ``Host``
            extra header). Adapters must pass ``tls_server_name`` to TLS.

    Raises:
        InvalidURL: Not a ws/wss/http/https URL; no host; a malformed host or
            port; user info or a fragment (RFC 6455 3 forbids fragments; user
            info would not be sent). The error names the URL as given.
    """
    given = url
    if not isinstance(url, str):
        raise InvalidURL(repr(url), f"a URL must be a str, not {type(url).__name__}")
    parts = _split(url.strip(), given)
    scheme = _SCHEMES[parts.scheme.lower()]
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    query = _quote(parts.query, "/?:@!$&'()*+,;=%")
    if token is not None:
        extra = urllib.parse.urlencode({"token": token})
        query = f"{query}&{extra}" if query else extra
    target = (_quote(parts.path, "/:@!$&'()*+,;=%") or "/") + (f"?{query}" if query else "")
    host = parts.hostname
    assert host is not None
    return WebSocketTarget(secure, urllib.parse.unquote(host), port, target,
                           server_hostname=server_hostname)


_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")  # "ftp:x", not "host:8080"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REG_NAME = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]+")  # RFC 3986 3.2.2 reg-name
_ALLOWED = "ws, wss, http, https"


def _split(url: str, given: str) -> urllib.parse.SplitResult:
    """``urlsplit`` plus the checks it leaves out; errors name ``given``."""
    if not url:
        raise InvalidURL(given, f"empty URL; expected a {_ALLOWED} URL such as {DEFAULT_BASE_URL}")
    if _CONTROL.search(url):
        raise InvalidURL(given, "it holds control characters (tab, CR, LF, NUL...)")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range"...
        raise InvalidURL(given, f"{exc} (the port must be a number from 1 to 65535)"
                         if "ort" in str(exc) else str(exc)) from None
    if parts.scheme.lower() not in _SCHEMES:
        shown = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise InvalidURL(given, f"{shown} is not supported; allowed schemes: {_ALLOWED}")
    if not parts.netloc:
        raise InvalidURL(given, f"no host (expected {parts.scheme}://HOST[:PORT]/PATH)")
    if "@" in parts.netloc:
        raise InvalidURL(given, "user info (user:password@) is not sent; authenticate with "
                         "api_key or token")
    if parts.fragment or url.endswith("#"):
        raise InvalidURL(given, "a WebSocket URL has no #fragment (RFC 6455 section 3)")
    if port == 0:
        raise InvalidURL(given, "port 0 (the port must be a number from 1 to 65535)")
    _check_host(parts, given)
    return parts


def _check_host(parts: urllib.parse.SplitResult, given: str) -> None:
    host = parts.hostname
    if not host:
        raise InvalidURL(given, f"no host (expected {parts.scheme}://HOST[:PORT]/PATH)")
    if parts.netloc.startswith("["):
        try:
            ipaddress.IPv6Address(urllib.parse.unquote(host))
        except ValueError:
            raise InvalidURL(given, f"{host!r} in brackets is not an IPv6 address") from None
        return
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidURL(given, f"host {host!r} is not a valid host name ({exc})") from None
    if not _REG_NAME.fullmatch(ascii_host) or ":" in host:
        raise InvalidURL(given, f"host {host!r} is not a valid host name")


def _quote(text: str, safe: str) -> str:
    """Percent-encode what a request target cannot carry (existing escapes kept)."""
    return urllib.parse.quote(text, safe=safe + "-._~")
