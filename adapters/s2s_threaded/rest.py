"""The REST calls (voices, credits, tokens), blocking, with httpx.

The twin of the async adapters' REST module: same ``RestSettings``, same calls, same
errors; ``s2s_core.rest`` builds every request and reads every answer.
"""

from __future__ import annotations

from typing import TypeVar

from s2s_core.client_docs import CREDITS, MINT_TOKEN, VOICE_GET, VOICE_LIST, shared_doc
from s2s_core.rest import Credits, RestCall, RestClientBase, RestSettings, Token, Voice

__all__ = ["RestClient", "RestMixin", "RestSettings"]

T = TypeVar("T")


class RestMixin:
    """``voice_list``, ``voice_get``, ``credits``, ``mint_token``, blocking, for a class with
    ``_rest`` (a ``RestSettings``).

    Each call opens its own ``httpx.Client`` and closes it before returning.
    """

    _rest: RestSettings

    @shared_doc(VOICE_LIST)
    def voice_list(self, include_catalog: bool = True) -> list[Voice]:
        """Every voice of the account, and of the catalog when ``include_catalog``."""
        return self._send(self._rest.api.voice_list(include_catalog))

    @shared_doc(VOICE_GET)
    def voice_get(self, uid: str) -> Voice:
        """One voice by uid."""
        return self._send(self._rest.api.voice_get(uid))

    @shared_doc(CREDITS)
    def credits(self) -> Credits:
        """The account's credit balance (``exhausted`` when none are left)."""
        return self._send(self._rest.api.credits())

    @shared_doc(MINT_TOKEN)
    def mint_token(self) -> Token:
        """A single-use token: pass it as ``token=`` to open one WebSocket."""
        return self._send(self._rest.api.mint_token())

    def _send(self, call: RestCall[T]) -> T:
        import httpx  # on first use: see _s2s_async.rest

        rest = self._rest
        with rest.transport_errors(call), httpx.Client(**rest.client_args()) as http:
            response = http.request(call.method, call.url, headers=call.headers)
        return call.read(response)


class RestClient(RestClientBase, RestMixin):
    """The REST calls on their own, blocking (``RestSettings``'s arguments).

    Example:
        >>> rest = RestClient("https://api.gradium.ai/api/", key)
        >>> french = [v for v in rest.voice_list() if v.language == "fr"]
    """
