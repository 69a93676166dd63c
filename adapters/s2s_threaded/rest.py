"""The REST calls (voices, credits, tokens), blocking, with httpx.

The twin of the async adapters' REST module: same ``RestSettings``, same calls, same
errors; ``s2s_core.rest`` builds every request and reads every answer.
"""

from __future__ import annotations

from typing import TypeVar, Unpack

from s2s_core.rest import Credits, RestCall, RestOptions, RestSettings, Token, Voice

__all__ = ["RestClient", "RestMixin", "RestSettings"]

T = TypeVar("T")


class RestMixin:
    """``voice_list``, ``voice_get``, ``credits``, ``mint_token`` for a class with ``_rest``.

    The class using it sets ``self._rest`` to a ``RestSettings``. Each call
    opens its own ``httpx.Client`` and closes it before returning.
    """

    _rest: RestSettings

    def voice_list(self, include_catalog: bool = True) -> list[Voice]:
        """Every voice of the account, and of the catalog when ``include_catalog``.

        Raises:
            AuthenticationError: Bad key (HTTP 401/403).
            RestError: Any other HTTP error; InvalidResponse for an unreadable answer.
            ConnectError, ConnectTimeout, S2STimeoutError: The transport failed.
            MissingApiKey: The client has a token and no key.
        """
        return self._send(self._rest.api.voice_list(include_catalog))

    def voice_get(self, uid: str) -> Voice:
        """One voice by uid.

        Raises:
            NotFound: No voice with this uid (HTTP 404).
            RestArgumentError: Empty uid.
            AuthenticationError, RestError, ConnectError, S2STimeoutError: As
                for ``voice_list``.
        """
        return self._send(self._rest.api.voice_get(uid))

    def credits(self) -> Credits:
        """The account's credit balance (``exhausted`` when none are left).

        Raises:
            AuthenticationError: Bad key: what a 1008 refusal meant when this raises.
            RestError, ConnectError, S2STimeoutError: As for ``voice_list``.
        """
        return self._send(self._rest.api.credits())

    def mint_token(self) -> Token:
        """A single-use token: pass it as ``token=`` to open one WebSocket.

        Raises:
            AuthenticationError, RestError, ConnectError, S2STimeoutError: As
                for ``voice_list``.
        """
        return self._send(self._rest.api.mint_token())

    def _send(self, call: RestCall[T]) -> T:
        import httpx  # on first use: see _s2s_async.rest

        rest = self._rest
        try:
            with httpx.Client(**rest.client_args()) as http:
                response = http.request(call.method, call.url, headers=call.headers)
        except httpx.TransportError as exc:
            raise rest.transport_error(call, exc) from exc
        return call.parse(response.status_code, response.headers, response.content)


class RestClient(RestMixin):
    """The REST calls on their own (``RestSettings``'s arguments).

    Example:
        >>> rest = RestClient("https://api.gradium.ai/api/", key)
        >>> french = [v for v in rest.voice_list() if v.language == "fr"]
    """

    def __init__(self, base_url: str, api_key: str | None,
                 **options: Unpack[RestOptions]) -> None:
        self._rest = RestSettings(base_url, api_key, **options)

    def __repr__(self) -> str:
        return f"RestClient({self._rest.api!r})"
