"""Which proxy a connection goes through, and the errors of a proxy tunnel (no I/O here).

The adapters open the tunnel with python-socks (HTTP CONNECT, SOCKS5, SOCKS4)
and then run TLS to the service inside it, with the service's host name (SNI
and certificate verification are against the service, never the proxy).

Choosing the proxy (``proxy_for``), like curl and requests:

- An explicit ``proxy=`` is used for every URL; the environment is not read
  (NO_PROXY included): what the caller says wins.
- Otherwise, unless ``trust_env=False``: ``https_proxy`` for ``wss://``,
  ``http_proxy`` for ``ws://``, then ``all_proxy``; each in lower case first,
  then upper case (the lower-case form wins when both are set, as in curl
  and requests). Upper-case ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD``
  is set (a CGI environment, where any client can set it: "httpoxy").
  An empty value counts as unset.
- ``no_proxy`` (or ``NO_PROXY``), comma- or space-separated, bypasses the
  proxy for a host: ``*`` (every host); a name (``example.com`` or
  ``.example.com``: that host and its subdomains; ``*.example.com`` too);
  ``name:port`` or ``[v6]:port`` (that port only); an IP address or a CIDR
  network (``10.0.0.0/8``, ``::1``), matched against IP-literal hosts only
  (no DNS lookup). Case does not matter; entries that mean nothing are
  skipped.

Proxy URLs: ``http://[user:pass@]host[:port]`` (CONNECT; port 80 by default),
``socks5://`` (names resolved here), ``socks5h://`` (names resolved by the
proxy), ``socks4://``, ``socks4a://`` (port 1080 by default). A URL without a
scheme means ``http://``. Credentials are percent-decoded, sent only to the
proxy, and never shown: not in any repr, str, log record or error.
"""

from __future__ import annotations

import ipaddress
import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from python_socks import ProxyConnectionError, ProxyTimeoutError, ProxyType
from python_socks import ProxyError as SocksProxyError

from .errors import ConnectError, ConnectTimeout, S2SError

__all__ = ["ProxyConfig", "ProxyError", "InvalidProxy", "proxy_for", "bypasses_proxy",
           "tunnel_args", "tunnel_error", "TUNNEL_ERRORS", "NO_TUNNEL_TIMEOUT"]

NO_TUNNEL_TIMEOUT = 365 * 24 * 3600.0
"""The ``timeout`` the adapters give python-socks (which reads None as 60 s): the
caller's connect deadline is what bounds opening the tunnel."""

_DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080, "socks4": 1080, "socks4a": 1080}
_USERINFO = re.compile(r"(?<=://)[^/@]*@")


class InvalidProxy(S2SError, ValueError):
    """A proxy URL cannot be used (scheme, host or port); credentials are not shown."""


class ProxyError(ConnectError):
    """The proxy could not be reached, or refused the tunnel (HTTP 407, 403, 502...).

    Attributes:
        proxy: The proxy's URL without credentials (``http://host:port``).
        status: The proxy's HTTP status (HTTP proxies) or SOCKS reply code,
            when it answered with one; None when it could not be reached or
            its answer had no code.
        target: ``host:port`` the tunnel was asked for.
    """

    def __init__(self, message: str, *, proxy: str, status: int | None = None,
                 target: str = "") -> None:
        super().__init__(message)
        self.proxy = proxy
        self.status = status
        self.target = target


@dataclass(frozen=True, repr=False)
class ProxyConfig:
    """One proxy: where it is, how to speak to it, and the credentials it wants.

    Build it with ``ProxyConfig.parse(url)``; ``str()`` and ``repr()`` never
    show the credentials.

    Attributes:
        scheme: ``http``, ``socks5``, ``socks5h``, ``socks4`` or ``socks4a``.
        host: The proxy's host name or IP address (no brackets).
        port: The proxy's port.
        username: For Basic (HTTP) or username/password (SOCKS5) auth.
        password: Goes with ``username``.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ProxyConfig:
        """Read a proxy URL (see the module doc for the schemes).

        Raises:
            InvalidProxy: Unknown scheme (``https://`` proxies, TLS to the
                proxy itself, are not supported), no host, or a bad port.
        """
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        shown = _redact(text)
        parts = urllib.parse.urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise InvalidProxy(f"proxy {shown}: scheme {scheme!r} is not supported; use one of "
                               f"{', '.join(s + '://' for s in _DEFAULT_PORTS)}")
        try:
            port = parts.port
        except ValueError:
            raise InvalidProxy(f"proxy {shown}: the port is not a number in 0-65535") from None
        if not parts.hostname:
            raise InvalidProxy(f"proxy {shown}: no host")
        username = urllib.parse.unquote(parts.username) if parts.username is not None else None
        password = urllib.parse.unquote(parts.password) if parts.password is not None else None
        return cls(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], username, password)

    @property
    def url(self) -> str:
        """The URL without credentials (what errors and logs show)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        auth = "***@" if self.username is not None else ""
        return f"ProxyConfig('{self.scheme}://{auth}{self.url.split('://', 1)[1]}')"


def proxy_for(url: str, *, proxy: str | ProxyConfig | None = None, trust_env: bool = True,
              environ: Mapping[str, str] | None = None) -> ProxyConfig | None:
    """The proxy to reach ``url`` through, or None for a direct connection.

    Args:
        url: The ``ws://`` or ``wss://`` URL (``http``/``https`` are read as
            ``ws``/``wss``).
        proxy: An explicit proxy (URL or config): always used.
        trust_env: Read the proxy environment variables (module doc).
        environ: The environment to read (``os.environ`` when None).

    Raises:
        InvalidProxy: The explicit proxy, or the one the environment names,
            cannot be used.
    """
    if isinstance(proxy, ProxyConfig):
        return proxy
    if proxy:
        return ProxyConfig.parse(proxy)
    if not trust_env:
        return None
    env = os.environ if environ is None else environ
    parts = urllib.parse.urlsplit(url)
    secure = parts.scheme.lower() in ("wss", "https")
    chosen = _env(env, "https_proxy" if secure else "http_proxy") or _env(env, "all_proxy")
    if chosen is None:
        return None
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    if bypasses_proxy(host, port, _env(env, "no_proxy") or ""):
        return None
    return ProxyConfig.parse(chosen)


def _env(env: Mapping[str, str], name: str) -> str | None:
    """A variable's value, lower-case name first; None when unset or empty."""
    for key in (name, name.upper()):
        if key == "HTTP_PROXY" and "REQUEST_METHOD" in env:
            continue  # httpoxy: in CGI, HTTP_PROXY comes from a request header
        value = env.get(key)
        if value and value.strip():
            return value.strip()
    return None


def bypasses_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Whether a ``no_proxy`` value sends ``host:port`` direct (rules in the module doc)."""
    host = host.strip("[]").rstrip(".").lower()
    ip = _ip(host)
    for raw in re.split(r"[\s,]+", no_proxy.lower()):
        entry = raw.strip()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_host, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if _matches(host, ip, entry_host):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6] or [v6]:port
        close = entry.find("]")
        rest = entry[close + 1:]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
        return entry[1:close], port
    if entry.count(":") == 1:  # name:port or v4:port (a bare v6 has several colons)
        name, _, port_text = entry.partition(":")
        return name, int(port_text) if port_text.isdigit() else -1
    return entry, None


def _matches(host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
             entry: str) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        network = None
    if network is not None:
        return ip is not None and ip.version == network.version and ip in network
    name = entry.removeprefix("*").lstrip(".").rstrip(".")
    return bool(name) and (host == name or host.endswith("." + name))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _redact(url: str) -> str:
    """A URL with any ``user:pass@`` replaced by ``***@``."""
    return _USERINFO.sub("***@", url, count=1)


def tunnel_args(config: ProxyConfig) -> dict[str, Any]:
    """Keyword arguments of python-socks' ``Proxy(...)`` (every flavour) for ``config``.

    ``rdns`` follows curl: ``socks5``/``socks4`` resolve names here,
    ``socks5h``/``socks4a`` let the proxy resolve them; HTTP CONNECT always
    sends the name.
    """
    proxy_type = {"http": ProxyType.HTTP, "socks5": ProxyType.SOCKS5,
                  "socks5h": ProxyType.SOCKS5, "socks4": ProxyType.SOCKS4,
                  "socks4a": ProxyType.SOCKS4}[config.scheme]
    return {"proxy_type": proxy_type, "host": config.host, "port": config.port,
            "username": config.username, "password": config.password,
            "rdns": config.scheme not in ("socks5", "socks4")}


TUNNEL_ERRORS: tuple[type[BaseException], ...] = (
    SocksProxyError, ProxyConnectionError, ProxyTimeoutError, OSError)
"""What opening a tunnel with python-socks raises (give it to ``tunnel_error``); OSError:
the proxy reset or closed the socket during the CONNECT exchange."""


def tunnel_error(exc: BaseException, config: ProxyConfig, host: str, port: int) -> S2SError:
    """Our typed error for a python-socks failure while opening a tunnel to ``host:port``.

    A timeout becomes ``ConnectTimeout``; anything else ``ProxyError`` with
    the proxy's status when it gave one. The text names the proxy without
    credentials.
    """
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(exc, (ProxyTimeoutError, TimeoutError)) or isinstance(
            exc.__cause__, TimeoutError):
        return ConnectTimeout(f"proxy {config.url} did not open the tunnel to {target} in time")
    if isinstance(exc, SocksProxyError):
        status = exc.error_code if isinstance(exc.error_code, int) else None
        return ProxyError(f"proxy {config.url} refused the tunnel to {target}: {exc}",
                          proxy=config.url, status=status, target=target)
    if isinstance(exc, ProxyConnectionError):
        cause = exc.__cause__
        reason = (cause.strerror if isinstance(cause, OSError) else None) or str(cause or exc)
        return ProxyError(f"cannot connect to proxy {config.url}: {reason}", proxy=config.url,
                          target=target)
    return ProxyError(f"proxy {config.url} failed on the tunnel to {target}: "
                      f"{type(exc).__name__}: {exc}", proxy=config.url, target=target)
