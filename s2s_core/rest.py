"""The REST calls around the socket, without I/O: what to send, and what the answer means.

Sources (PROTOCOL.md section 7): the official SDK (gradium 0.6.4) lists
voices with ``GET voices/?limit=0&include_catalog=<0|1>``, reads one with
``GET voices/{uid}``, credits with ``GET usages/credits`` (``remaining``,
``allocated``), sends ``x-api-key`` and ``x-api-source``, and reads an
error's text from ``detail`` (else ``error``); the service's docs mint a
single-use WebSocket token with ``GET api-keys/token`` ->
``{"token": ..., "expires_at": "<ISO-8601>"}``. Every route hangs off the
same base URL as the WebSocket (``https://api.gradium.ai/api/``).

A transport sends ``call.method`` to ``call.url`` with ``call.headers`` and
hands the answer to ``call.parse``::

    api = RestApi(base_url, api_key)
    call = api.voice_list()
    response = http.request(call.method, call.url, headers=call.headers)
    voices = call.parse(response.status_code, response.headers, response.content)

Answers are read leniently: unknown fields are ignored, a ``null`` counts as
a missing field, and missing optional fields take their defaults; a body
that is not JSON, or not the documented shape, raises ``InvalidResponse``.
"""

from __future__ import annotations

import contextlib
import http
import ssl
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypedDict, TypeVar, Unpack

import msgspec

from . import __version__
from .errors import ConnectError, ConnectTimeout, S2SError, S2STimeoutError
from .urls import DEFAULT_BASE_URL, S2S_ROUTE, s2s_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "RestSettings",
    "RestOptions",
    "API_SOURCE",
    "AuthenticationError",
    "Credits",
    "InvalidResponse",
    "MissingApiKey",
    "NotFound",
    "RestApi",
    "RestArgumentError",
    "RestCall",
    "RestClientBase",
    "Response",
    "RestError",
    "Token",
    "Voice",
    "VoiceTag",
    "rest_base_url",
    "rest_base_from_s2s_url",
]

API_SOURCE = f"s2s-core/{__version__}"
"""The ``x-api-source`` header value: who is calling."""

T = TypeVar("T")

_HTTP_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_PREVIEW = 200
_SECRET_QUERY_WORDS = ("key", "token", "secret", "password")


# -- typed answers --


class VoiceTag(msgspec.Struct, frozen=True, kw_only=True):
    """One tag of a voice, such as ``category="gender", value="feminine"``."""

    category: str | None = None
    value: str | None = None


class Voice(msgspec.Struct, frozen=True, kw_only=True):
    """A voice of the catalog or of the account.

    Attributes:
        uid: The id to pass as ``voice_id`` in a setup.
        name: Display name.
        language: Language code of the voice (``"fr"``...); a voice must be of
            the target language. None when the service does not say.
        description: Free text.
        is_catalog: True for the service's public catalog, False for the
            account's own voices.
        start_s: Where the voice's reference clip starts, in seconds (own voices).
        tags: Extra labels (gender, region...), as the service sends them.
    """

    uid: str
    name: str | None = None
    language: str | None = None
    description: str | None = None
    is_catalog: bool = False
    start_s: float | None = None
    tags: tuple[VoiceTag, ...] = ()

    def tag(self, category: str) -> str | None:
        """The first value of a tag category (``"gender"``, ``"region"``), or None."""
        return next((t.value for t in self.tags if t.category == category), None)


class Credits(msgspec.Struct, frozen=True, kw_only=True):
    """The account's credit balance.

    Attributes:
        remaining: Credits left. At or below zero, the service refuses new
            sessions with error 1008 (as it does for a bad key, which gets
            HTTP 401 here instead).
        allocated: Credits granted for the period, when the service says.
    """

    remaining: float
    allocated: float | None = None

    @property
    def exhausted(self) -> bool:
        """True when no credits are left."""
        return self.remaining <= 0


class Token(msgspec.Struct, frozen=True, kw_only=True):
    """A single-use WebSocket credential (pass it as ``token=``; good for one connection).

    Attributes:
        token: The token itself (a secret: hidden in ``repr``).
        expires_at: When it stops being accepted (timezone-aware; UTC when
            the service sends no offset).
    """

    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Token(token='***', expires_at={self.expires_at.isoformat()!r})"


# -- errors --


class RestArgumentError(S2SError, ValueError):
    """An argument of a REST call is not allowed (raised before anything is sent)."""


class MissingApiKey(S2SError, ValueError):
    """A REST call needs an API key: a token only opens one WebSocket."""


class RestError(S2SError):
    """A REST call failed: an HTTP error status, or an answer we cannot read.

    Attributes:
        endpoint: The call (``"voice_list"``, ``"voice_get"``, ``"credits"``,
            ``"mint_token"``).
        url: The URL called, without credentials.
        status: The HTTP status.
        detail: The server's own text (its ``detail`` or ``error`` field,
            else the start of the body, else the status phrase).
        retryable: True for 429 and 5xx (the calls are idempotent GETs).
    """

    def __init__(self, endpoint: str, url: str, status: int, detail: str) -> None:
        super().__init__(self._describe(endpoint, url, status, detail))
        self.endpoint = endpoint
        self.url = url
        self.status = status
        self.detail = detail

    @property
    def retryable(self) -> bool:
        """429 and 5xx may clear (the calls are idempotent GETs)."""
        return self.status == 429 or self.status >= 500

    @staticmethod
    def _describe(endpoint: str, url: str, status: int, detail: str) -> str:
        return f"{endpoint} (GET {url}) failed with HTTP {status}: {detail}"


class AuthenticationError(RestError, PermissionError):
    """HTTP 401/403: the API key is missing, wrong or revoked."""


class NotFound(RestError, LookupError):
    """HTTP 404: no such resource (``voice_get`` of an unknown uid)."""


class InvalidResponse(RestError, ValueError):
    """A success status whose body is not JSON, or not the documented shape."""

    @staticmethod
    def _describe(endpoint: str, url: str, status: int, detail: str) -> str:
        return f"{endpoint} (GET {url}): cannot read the HTTP {status} answer: {detail}"


def _error_class(status: int) -> type[RestError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFound
    return RestError


# -- the calls --


class Response(Protocol):
    """What ``RestCall.read`` reads of an answer (an ``httpx.Response`` is one)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...


@dataclass(frozen=True, repr=False)
class RestCall(Generic[T]):
    """One REST request to send, and the parser of its answer.

    Attributes:
        endpoint: The call's name, for errors.
        method: HTTP method.
        url: Absolute URL with its query.
        headers: Request headers (they hold the API key: never log them).
    """

    endpoint: str
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    _read: Callable[[Any], T] = field(compare=False)

    @property
    def public_url(self) -> str:
        """``url`` without credentials (for messages and logs)."""
        return _public_url(self.url)

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> T:
        """The typed result of an answer.

        Args:
            status: The HTTP status code.
            headers: The response headers (names in any case).
            body: The whole response body.

        Raises:
            AuthenticationError: 401 or 403.
            NotFound: 404.
            RestError: Any other status outside 2xx.
            InvalidResponse: A 2xx body that is not JSON or not the expected shape.
        """
        if not 200 <= status < 300:
            raise _error_class(status)(self.endpoint, self.public_url, status,
                                       _error_detail(status, body))
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError:
            kind = _header(headers, "content-type") or "no content-type"
            raise self._invalid(status, f"the body is not JSON ({kind}): "
                                        f"{_preview(body)!r}") from None
        try:
            return self._read(data)
        except (msgspec.ValidationError, _ShapeError) as exc:
            raise self._invalid(status, str(exc)) from None

    def read(self, response: Response) -> T:
        """The typed result of an httpx response (``parse`` of its status, headers, body)."""
        return self.parse(response.status_code, response.headers, response.content)

    def _invalid(self, status: int, detail: str) -> InvalidResponse:
        return InvalidResponse(self.endpoint, self.public_url, status, detail)

    def __repr__(self) -> str:
        return f"RestCall({self.endpoint}: {self.method} {self.public_url})"


class RestApi:
    """Builds the REST calls of one account (sans-IO: send them with any HTTP client).

    Args:
        base_url: The same API base as the WebSocket's (``https://.../api/``);
            ``ws(s)`` schemes are turned into ``http(s)``.
        api_key: The account's key, sent as ``x-api-key``.
        region: Legacy ``"eu"``/``"us"`` hosts, only when asked for.
        extra_headers: More headers for every call (a gateway's, say); they
            cannot replace ``x-api-key`` or ``x-api-source``.

    Raises:
        ValueError: Unknown region or URL scheme.
    """

    def __init__(self, base_url: str = DEFAULT_BASE_URL, api_key: str | None = None, *,
                 region: str | None = None,
                 extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
                 ) -> None:
        self.base_url = rest_base_url(base_url, region=region)
        self._api_key = api_key
        extra = list(extra_headers.items() if isinstance(extra_headers, Mapping)
                     else extra_headers or ())
        ours = {"x-api-key", "x-api-source"}
        self._extra = tuple((k, v) for k, v in extra if k.lower() not in ours)

    @classmethod
    def for_s2s_url(cls, url: str, api_key: str | None, *,
                    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
                    ) -> RestApi:
        """The calls for the service an S2S WebSocket URL points at.

        See ``rest_base_from_s2s_url``.
        """
        return cls(rest_base_from_s2s_url(url), api_key, extra_headers=extra_headers)

    def __repr__(self) -> str:
        key = "***" if self._api_key is not None else None
        return f"RestApi(base_url={_public_url(self.base_url)!r}, api_key={key})"

    def voice_list(self, include_catalog: bool = True) -> RestCall[list[Voice]]:
        """``GET voices/?limit=0&include_catalog=<0|1>``: every voice, unpaginated.

        Args:
            include_catalog: Also list the service's catalog, not only the
                account's own voices.

        Raises:
            RestArgumentError: ``include_catalog`` is not a bool.
            MissingApiKey: No API key.
        """
        if not isinstance(include_catalog, bool):
            raise RestArgumentError(
                f"include_catalog must be True or False, not {include_catalog!r}")
        query = urllib.parse.urlencode({"limit": 0, "include_catalog": int(include_catalog)})
        return self._get("voice_list", f"voices/?{query}", _read_voice_list)

    def voice_get(self, uid: str) -> RestCall[Voice]:
        """``GET voices/{uid}``: one voice (``NotFound`` when unknown).

        Raises:
            RestArgumentError: ``uid`` is empty, ``.`` or ``..``, or not a string.
            MissingApiKey: No API key.
        """
        if not isinstance(uid, str) or uid.strip() in ("", ".", ".."):
            # "" would list every voice; dot segments would leave voices/.
            raise RestArgumentError(f"voice uid must be a non-empty string id, not {uid!r}")
        return self._get("voice_get", "voices/" + urllib.parse.quote(uid, safe=""),
                         _read_voice)

    def credits(self) -> RestCall[Credits]:
        """``GET usages/credits``: the balance (401 tells a bad key from no credits).

        Raises:
            MissingApiKey: No API key.
        """
        return self._get("credits", "usages/credits", _reader(Credits))

    def mint_token(self) -> RestCall[Token]:
        """``GET api-keys/token``: a single-use token for one WebSocket connection.

        Raises:
            MissingApiKey: No API key.
        """
        return self._get("mint_token", "api-keys/token", _read_token)

    def _get(self, endpoint: str, route: str, read: Callable[[Any], T]) -> RestCall[T]:
        if self._api_key is None:
            raise MissingApiKey(f"{endpoint} needs an API key (api_key=... or GRADIUM_API_KEY); "
                                "a token only opens one WebSocket")
        headers = (*self._extra, ("accept", "application/json"),
                   ("x-api-key", self._api_key), ("x-api-source", API_SOURCE))
        return RestCall(endpoint, "GET", self.base_url + route, headers, read)


# -- base URLs --


def rest_base_url(base_url: str = DEFAULT_BASE_URL, *, region: str | None = None) -> str:
    """The HTTP API base for a base URL, as ``s2s_url`` reads it (scheme only changes).

    ``ws``/``wss`` become ``http``/``https``; a URL without a scheme gets
    ``https`` (``http`` for localhost); the result ends with ``/``.

    Raises:
        ValueError: Unknown region or scheme.
    """
    ws = s2s_url(base_url, region=region, route="")
    parts = urllib.parse.urlsplit(ws)
    return urllib.parse.urlunsplit(parts._replace(scheme=_HTTP_SCHEMES[parts.scheme]))


def rest_base_from_s2s_url(url: str) -> str:
    """The HTTP API base of an S2S WebSocket URL (``wss://h/api/speech/s2s`` -> ``https://h/api/``).

    The scheme changes and the S2S route is dropped, with any query (a
    ``?token=`` never reaches REST).

    Raises:
        ValueError: Not a ws/wss/http/https URL, or its path does not end
            with the S2S route.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
    route = "/" + S2S_ROUTE
    if scheme is None or not parts.hostname or not parts.path.rstrip("/").endswith(route):
        raise ValueError(f"not an S2S WebSocket URL (ws[s]://host/.../{S2S_ROUTE}): "
                         f"{_public_url(url)!r}; pass the API base URL instead")
    path = parts.path.rstrip("/")[: -len(S2S_ROUTE)]
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, "", ""))


# -- readers --


class _ShapeError(Exception):
    """The JSON is valid but not what the endpoint answers."""


def _fields(item: Any, what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _ShapeError(f"expected {what} as a JSON object, got {_json_type(item)}")
    return {k: v for k, v in item.items() if v is not None}  # null = missing


def _reader(kind: type[T]) -> Callable[[Any], T]:
    def read(data: Any) -> T:
        return msgspec.convert(_fields(data, kind.__name__.lower()), kind, strict=False)
    return read


def _read_voice(data: Any) -> Voice:
    return msgspec.convert(_fields(data, "a voice"), Voice, strict=False)


def _read_voice_list(data: Any) -> list[Voice]:
    # The SDK's docstring hints at a wrapping object; accept {"voices": [...]} too.
    items = data.get("voices") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise _ShapeError(f"expected a JSON array of voices, got {_json_type(data)}")
    voices = []
    for index, item in enumerate(items):
        try:
            voices.append(_read_voice(item))
        except (msgspec.ValidationError, _ShapeError) as exc:
            raise _ShapeError(f"voice {index}: {exc}") from None
    return voices


def _read_token(data: Any) -> Token:
    token = msgspec.convert(_fields(data, "a token"), Token, strict=False)
    if not token.token:
        raise _ShapeError("the token is empty")
    if token.expires_at.tzinfo is None:  # ISO-8601 without offset: the service's clock is UTC
        token = msgspec.structs.replace(token,
                                        expires_at=token.expires_at.replace(tzinfo=UTC))
    return token


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- helpers --


def _error_detail(status: int, body: bytes) -> str:
    """The server's explanation: ``detail``, else ``error``, else the body, else the phrase."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        data = None
    if isinstance(data, dict):
        for name in ("detail", "error"):
            value = data.get(name)
            if isinstance(value, str) and value:
                return value
            if value:  # a validation error's list of problems, say
                return msgspec.json.encode(value).decode()[:_PREVIEW * 2]
    text = _preview(body)
    if text:
        return text
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "no explanation given"


def _preview(body: bytes) -> str:
    return body[:_PREVIEW].decode("utf-8", "replace").strip()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _public_url(url: str) -> str:
    """``url`` without user info and with secret-looking query values masked."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = [(k, "***" if any(w in k.lower() for w in _SECRET_QUERY_WORDS) else v)
             for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(
        netloc=netloc, query=urllib.parse.urlencode(query, safe="*")))


class RestOptions(TypedDict, total=False):
    """``RestSettings``' keyword arguments (``RestClient(url, key, **options)``)."""

    ssl_context: ssl.SSLContext | None
    timeout: float | None
    proxy: str | None
    trust_env: bool
    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None


class RestSettings:
    """Where and how REST calls go: the account's calls plus httpx's settings.

    Args:
        base_url: The API base the WebSocket uses (``https://host/api/``).
        api_key: The account's key (``x-api-key``); never shown.
        ssl_context: Trust a custom CA (verification is always on; None uses
            the system's trust store, as the WebSocket does).
        timeout: Seconds for each phase of a call (connect, write, read);
            None waits forever.
        proxy: A proxy URL for httpx (``http://``, ``https://``,
            ``socks5://``), or None.
        trust_env: Let httpx read ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY``
            when no ``proxy`` is given.
        extra_headers: More headers for every call.

    Raises:
        ValueError: Unknown URL scheme.
    """

    def __init__(self, base_url: str, api_key: str | None, *,
                 ssl_context: ssl.SSLContext | None = None, timeout: float | None = 10.0,
                 proxy: str | None = None, trust_env: bool = True,
                 extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
                 ) -> None:
        self.api = RestApi(base_url, api_key, extra_headers=extra_headers)
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._proxy = proxy
        self._trust_env = trust_env

    @classmethod
    def for_s2s_url(cls, url: str, api_key: str | None, *,
                    ssl_context: ssl.SSLContext | None = None, timeout: float | None = 10.0,
                    proxy: str | None = None, trust_env: bool = True,
                    extra_headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None
                    ) -> RestSettings:
        """Settings for the service an S2S WebSocket URL (``wss://h/api/speech/s2s``) points at.

        Raises:
            ValueError: The URL's path does not end with the S2S route.
        """
        return cls(rest_base_from_s2s_url(url), api_key, ssl_context=ssl_context,
                   timeout=timeout, proxy=proxy, trust_env=trust_env,
                   extra_headers=extra_headers)

    def __repr__(self) -> str:
        return f"RestSettings({self.api!r}, timeout={self.timeout!r})"

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client``/``httpx.AsyncClient``."""
        import httpx

        if self._ssl_context is None:
            # The system store, like the WebSocket (httpx would load certifi's).
            self._ssl_context = ssl.create_default_context()
        return {"verify": self._ssl_context, "timeout": httpx.Timeout(self.timeout),
                "proxy": self._proxy, "trust_env": self._trust_env,
                "follow_redirects": False}

    @contextlib.contextmanager
    def transport_errors(self, call: RestCall[Any]) -> Iterator[None]:
        """Around the exchange of ``call``: an httpx transport failure raises our typed error.

        Raises:
            ConnectTimeout, S2STimeoutError, ConnectError: See ``transport_error``.
        """
        import httpx

        try:
            yield
        except httpx.TransportError as exc:
            raise self.transport_error(call, exc) from exc

    def transport_error(self, call: RestCall[Any], exc: httpx.TransportError) -> S2SError:
        """Our typed error for an httpx transport failure (no answer was read)."""
        import httpx

        what = f"{call.endpoint} (GET {call.public_url})"
        if isinstance(exc, httpx.ConnectTimeout):
            return ConnectTimeout(f"{what}: connecting took more than {self.timeout} s")
        if isinstance(exc, httpx.TimeoutException):
            return S2STimeoutError(f"{what}: no answer within {self.timeout} s")
        return ConnectError(f"{what}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The most specific message down the exception's causes (on trio, httpx's own is empty)."""
    reason = f"{type(exc).__name__}"
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if str(cause):
            reason = f"{type(cause).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return reason


class RestClientBase:
    """The REST calls on their own: ``RestSettings``' arguments (each adapter adds the calls).

    Args:
        base_url: The API base (``https://api.gradium.ai/api/``).
        api_key: The account's key.
        **options: ``RestSettings``' keyword arguments.
    """

    def __init__(self, base_url: str, api_key: str | None,
                 **options: Unpack[RestOptions]) -> None:
        self._rest = RestSettings(base_url, api_key, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._rest.api!r})"
