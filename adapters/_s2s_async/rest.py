"""The REST calls (voices, credits, tokens) on asyncio or trio, with httpx.

Thin: ``s2s_core.rest`` builds every request and reads every answer; this
module only moves them. ``RestSettings`` (no event loop in it) is the
core's, shared with the blocking twin, ``s2s_threaded.rest``. httpx is imported on the
first call, not with the client (it costs ~60 ms, and most programs never
call REST).
"""

from __future__ import annotations

from typing import TypeVar

from s2s_core.client_docs import CREDITS, MINT_TOKEN, VOICE_GET, VOICE_LIST, shared_doc
from s2s_core.rest import Credits, RestCall, RestClientBase, RestSettings, Token, Voice

__all__ = ["AsyncRestClient", "AsyncRestMixin", "RestSettings"]

T = TypeVar("T")


class AsyncRestMixin:
    """``voice_list``, ``voice_get``, ``credits``, ``mint_token``, awaitable, for a class with
    ``_rest`` (a ``RestSettings``).

    Each call opens its own ``httpx.AsyncClient`` and closes it before
    returning (a cancelled call closes it too): REST calls are rare, and
    nothing leaks.
    """

    _rest: RestSettings

    @shared_doc(VOICE_LIST)
    async def voice_list(self, include_catalog: bool = True) -> list[Voice]:
        """Every voice of the account, and of the catalog when ``include_catalog``."""
        return await self._send(self._rest.api.voice_list(include_catalog))

    @shared_doc(VOICE_GET)
    async def voice_get(self, uid: str) -> Voice:
        """One voice by uid."""
        return await self._send(self._rest.api.voice_get(uid))

    @shared_doc(CREDITS)
    async def credits(self) -> Credits:
        """The account's credit balance (``exhausted`` when none are left)."""
        return await self._send(self._rest.api.credits())

    @shared_doc(MINT_TOKEN)
    async def mint_token(self) -> Token:
        """A single-use token: pass it as ``token=`` to open one WebSocket."""
        return await self._send(self._rest.api.mint_token())

    async def _send(self, call: RestCall[T]) -> T:
        import httpx

        rest = self._rest
        with rest.transport_errors(call):
            async with httpx.AsyncClient(**rest.client_args()) as http:
                response = await http.request(call.method, call.url, headers=call.headers)
        return call.read(response)


class AsyncRestClient(RestClientBase, AsyncRestMixin):
    """The REST calls on their own, awaitable (``RestSettings``'s arguments).

    Example:
        >>> rest = AsyncRestClient("https://api.gradium.ai/api/", key)
        >>> french = [v for v in await rest.voice_list() if v.language == "fr"]
    """
