"""The REST calls (voices, credits, tokens) on asyncio or trio, with httpx.

Thin: ``s2s_core.rest`` builds every request and reads every answer; this
module only moves them. ``RestSettings`` (no event loop in it) is the
core's, shared with the blocking twin, ``s2s_threaded.rest``. httpx is imported on the
first call, not with the client (it costs ~60 ms, and most programs never
call REST).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, Unpack

from s2s_core.rest import Credits, RestCall, RestOptions, RestSettings, Token, Voice

if TYPE_CHECKING:
    pass

__all__ = ["AsyncRestClient", "AsyncRestMixin", "RestSettings"]

T = TypeVar("T")


class AsyncRestMixin:
    """``voice_list``, ``voice_get``, ``credits``, ``mint_token`` for a class with ``_rest``.

    The class using it sets ``self._rest`` to a ``RestSettings``. Each call
    opens its own ``httpx.AsyncClient`` and closes it before returning (a
    cancelled call closes it too): REST calls are rare, and nothing leaks.
    """

    _rest: RestSettings

    async def voice_list(self, include_catalog: bool = True) -> list[Voice]:
        """Every voice of the account, and of the catalog when ``include_catalog``.

        Raises:
            AuthenticationError: Bad key (HTTP 401/403).
            RestError: Any other HTTP error; InvalidResponse for an unreadable answer.
            ConnectError, ConnectTimeout, S2STimeoutError: The transport failed.
            MissingApiKey: The client has a token and no key.
        """
        return await self._send(self._rest.api.voice_list(include_catalog))

    async def voice_get(self, uid: str) -> Voice:
        """One voice by uid.

        Raises:
            NotFound: No voice with this uid (HTTP 404).
            RestArgumentError: Empty uid.
            AuthenticationError, RestError, ConnectError, S2STimeoutError: As
                for ``voice_list``.
        """
        return await self._send(self._rest.api.voice_get(uid))

    async def credits(self) -> Credits:
        """The account's credit balance (``exhausted`` when none are left).

        Raises:
            AuthenticationError: Bad key: what a 1008 refusal meant when this raises.
            RestError, ConnectError, S2STimeoutError: As for ``voice_list``.
        """
        return await self._send(self._rest.api.credits())

    async def mint_token(self) -> Token:
        """A single-use token: pass it as ``token=`` to open one WebSocket.

        Raises:
            AuthenticationError, RestError, ConnectError, S2STimeoutError: As
                for ``voice_list``.
        """
        return await self._send(self._rest.api.mint_token())

    async def _send(self, call: RestCall[T]) -> T:
        import httpx

        rest = self._rest
        try:
            async with httpx.AsyncClient(**rest.client_args()) as http:
                response = await http.request(call.method, call.url, headers=call.headers)
        except httpx.TransportError as exc:
            raise rest.transport_error(call, exc) from exc
        return call.parse(response.status_code, response.headers, response.content)


class AsyncRestClient(AsyncRestMixin):
    """The REST calls on their own (``RestSettings``'s arguments).

    Example:
        >>> rest = AsyncRestClient("https://api.gradium.ai/api/", key)
        >>> french = [v for v in await rest.voice_list() if v.language == "fr"]
    """

    def __init__(self, base_url: str, api_key: str | None,
                 **options: Unpack[RestOptions]) -> None:
        self._rest = RestSettings(base_url, api_key, **options)

    def __repr__(self) -> str:
        return f"AsyncRestClient({self._rest.api!r})"
