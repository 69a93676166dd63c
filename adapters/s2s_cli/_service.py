"""The REST side of the command: what a 1008 refusal meant, the voice check, the voice list.

PROTOCOL.md section 7: a 1008 refusal does not say whether the key is bad or
the credits are gone; the credits endpoint tells them apart (401 for a bad
key, ``remaining <= 0`` when none are left). A voice must be of the target
language (section 8): ``voice_get`` says the voice's language. These checks
only add information: when the service cannot be asked, nothing changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2s_core.errors import ConnectionClosedError, S2SError, ServerError
from s2s_core.options import ClientOptions
from s2s_core.rest import AuthenticationError, Credits, Voice

if TYPE_CHECKING:
    import s2s_threaded

__all__ = ["find_voice", "list_voices", "refusal_code", "refusal_message", "voice_warning"]

_CHECK_TIMEOUT_S = 5.0  # a check never holds the translation up for longer


def refusal_code(exc: BaseException) -> int | None:
    """The close or error code of a refusal by the server, else None."""
    if isinstance(exc, ServerError):
        return exc.code
    if isinstance(exc, ConnectionClosedError):
        return exc.code
    return None


def refusal_message(credits: Credits | None, error: BaseException | None) -> str | None:
    """What a 1008 refusal meant, from the credits call's answer (or its failure).

    Args:
        credits: The balance, when the call succeeded.
        error: The call's failure, when it failed.

    Returns:
        "invalid API key" (the credits call was refused with 401/403), "no
        credits left" (``remaining <= 0``), or None when the answer does not
        explain the refusal (the server's own words then stand).
    """
    if isinstance(error, AuthenticationError):
        return "the server refused the request (1008): invalid API key (check GRADIUM_API_KEY)"
    if credits is not None and credits.exhausted:
        return ("the server refused the request (1008): no credits left on this account "
                f"(remaining: {credits.remaining:g})")
    return None


def voice_warning(voice: Voice, target_language: str) -> str | None:
    """A warning when ``voice`` is not of ``target_language`` (None when it is, or unknown)."""
    if voice.language is None or voice.language == target_language:
        return None
    return (f"warning: voice {voice.uid} ({voice.name or 'unnamed'}) speaks "
            f"{voice.language!r}, not the target language {target_language!r}; "
            f"'s2s voices --language {target_language}' lists voices that do")


def _rest_client(base_url: str, api_key: str, timeout: float) -> s2s_threaded.S2SClient:
    import s2s_threaded

    options = ClientOptions(connect_timeout=timeout, retry=None)
    return s2s_threaded.S2SClient(api_key, base_url=base_url, options=options)


def find_voice(base_url: str, api_key: str, uid: str) -> Voice | None:
    """The voice ``uid`` from the service, or None when it cannot be read (never raises
    for a service problem: the check is advice)."""
    client = _rest_client(base_url, api_key, _CHECK_TIMEOUT_S)
    try:
        return client.voice_get(uid)
    except (S2SError, OSError):
        return None


def list_voices(base_url: str, api_key: str, *, timeout: float) -> list[Voice]:
    """Every voice of the account and of the catalog.

    Raises:
        S2SError: The REST call failed (typed: AuthenticationError, RestError,
            ConnectError...).
    """
    return _rest_client(base_url, api_key, timeout).voice_list(include_catalog=True)
