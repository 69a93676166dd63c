"""The local server's REST side, without I/O: voices, credits and single-use tokens.

It answers the routes of ``s2s_core.rest`` the way PROTOCOL.md section 7
describes the service: JSON bodies, errors as ``{"detail": ...}``, 401 for
a missing or wrong key when the server has keys. ``LocalRest.answer`` maps
one request (method, target, key) to a status and a body; ``metered`` wraps
the server's engine factory so that the credit ledger pays for the seconds
of input audio each request decodes, and so that a request is refused with
error 1008 (then close 1008, like a bad key) once no credits are left.
Minted tokens join the server's set of single-use tokens, which its
WebSocket accepts once each.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec

from s2s_core.rest import Token, Voice, VoiceTag
from s2s_core.setup import Setup
from s2s_core.voices import FLAGSHIP_VOICES

from ._engine import AudioOut, EngineError, TextOut

__all__ = ["DEFAULT_CREDITS_S", "DEFAULT_TOKEN_TTL_S", "LOCAL_VOICES", "CreditLedger",
           "LocalRest", "RestAnswer", "TokenStore"]

DEFAULT_CREDITS_S = 3600.0
"""Starting credits of a local server, in seconds of input audio (one hour)."""
DEFAULT_TOKEN_TTL_S = 300.0
"""How long a minted token is announced to live (``expires_at``)."""

_API_PREFIX = "/api/"  # the routes hang off the same base as the WebSocket's
_NO_CREDITS = "No credits left on this account."
_BAD_KEY = "Invalid or missing API key."


def _flagship(language: str, name: str, description: str) -> Voice:
    return Voice(uid=FLAGSHIP_VOICES[language], name=name, language=language,
                 description=description, is_catalog=True,
                 tags=(VoiceTag(category="gender", value="feminine"),))


LOCAL_VOICES: tuple[Voice, ...] = (
    _flagship("en", "Emma", "Flagship English voice (local server catalog)."),
    _flagship("fr", "Elise", "Flagship French voice (local server catalog)."),
    _flagship("de", "Mia", "Flagship German voice (local server catalog)."),
    _flagship("es", "Valentina", "Flagship Spanish voice (local server catalog)."),
    _flagship("pt", "Alice", "Flagship Portuguese voice (local server catalog)."),
    Voice(uid="local-own-voice-fr", name="My French narrator", language="fr",
          description="An account's own voice (local server).", is_catalog=False, start_s=0.0),
    Voice(uid="local-own-voice-en", name="My English assistant", language="en",
          description="An account's own voice (local server).", is_catalog=False, start_s=1.5),
)
"""The local catalog: the flagship voice of each target language, and two own voices."""


@dataclass(frozen=True)
class RestAnswer:
    """What to send back: an HTTP status and a JSON body."""

    status: int
    body: bytes


class CreditLedger:
    """The account's credits, in seconds of input audio.

    Args:
        allocated: The starting amount.
    """

    def __init__(self, allocated: float = DEFAULT_CREDITS_S) -> None:
        self.allocated = float(allocated)
        self.remaining = self.allocated

    @property
    def exhausted(self) -> bool:
        """True when no credits are left."""
        return self.remaining <= 0

    def charge(self, seconds: float) -> None:
        """Take ``seconds`` of audio off the balance (never below zero)."""
        self.remaining = max(0.0, self.remaining - seconds)


class TokenStore:
    """Mints single-use tokens into the set the server's WebSocket accepts.

    Args:
        accepted: The server's set of single-use tokens (``ServerConfig.tokens``):
            the WebSocket removes a token from it when it accepts it.
        ttl_s: The lifetime announced in ``expires_at``.
    """

    def __init__(self, accepted: set[str], ttl_s: float = DEFAULT_TOKEN_TTL_S) -> None:
        self.accepted = accepted
        self.ttl_s = ttl_s

    def mint(self, now: float) -> Token:
        """A new token, accepted once from now on.

        Args:
            now: The wall clock, in seconds since the Unix epoch.
        """
        token = secrets.token_urlsafe(24)
        self.accepted.add(token)
        expires = datetime.fromtimestamp(now, tz=UTC) + timedelta(seconds=self.ttl_s)
        return Token(token=token, expires_at=expires)


class _Engine(Protocol):
    @property
    def output_sample_rate(self) -> int: ...

    @property
    def frame_size(self) -> int: ...

    def feed(self, data: bytes) -> list[AudioOut | TextOut]: ...

    def finish(self) -> list[AudioOut | TextOut]: ...


_Factory = Callable[[Setup, float], _Engine]


class _MeteredEngine:
    """An engine whose decoded input seconds are charged to a ledger as they come."""

    __slots__ = ("_charged", "_engine", "_ledger")

    def __init__(self, engine: _Engine, ledger: CreditLedger) -> None:
        self._engine = engine
        self._ledger = ledger
        self._charged = 0.0

    @property
    def output_sample_rate(self) -> int:
        return self._engine.output_sample_rate

    @property
    def frame_size(self) -> int:
        return self._engine.frame_size

    def feed(self, data: bytes) -> list[AudioOut | TextOut]:
        try:
            return self._engine.feed(data)
        finally:
            self._charge()

    def finish(self) -> list[AudioOut | TextOut]:
        try:
            return self._engine.finish()
        finally:
            self._charge()

    def _charge(self) -> None:
        seconds: float = getattr(self._engine, "input_seconds", 0.0)
        self._ledger.charge(seconds - self._charged)
        self._charged = seconds


class LocalRest:
    """The REST service of one local server: catalog, credit ledger, token store.

    Args:
        credits: Starting credits, in seconds of input audio.
        voices: The voices served (catalog and own voices).
        token_ttl_s: Lifetime announced for minted tokens.
    """

    def __init__(self, *, credits: float = DEFAULT_CREDITS_S,
                 voices: Iterable[Voice] = LOCAL_VOICES,
                 token_ttl_s: float = DEFAULT_TOKEN_TTL_S) -> None:
        self.ledger = CreditLedger(credits)
        self.voices = tuple(voices)
        self.token_ttl_s = token_ttl_s

    def metered(self, factory: _Factory) -> _Factory:
        """``factory``'s engines, charged to the ledger; refused (1008) once it is empty.

        Engines without an ``input_seconds`` property are not charged.
        """
        ledger = self.ledger

        def build(setup: Setup, max_audio_s: float) -> _Engine:
            if ledger.exhausted:
                raise EngineError(1008, _NO_CREDITS)
            return _MeteredEngine(factory(setup, max_audio_s), ledger)

        return build

    def answer(self, method: str, target: str, api_key: str | None, *,
               api_keys: frozenset[str] | None, tokens: set[str], now: float) -> RestAnswer:
        """The answer to one plain HTTP request.

        Args:
            method: The request method.
            target: Path and query of the request line.
            api_key: The ``x-api-key`` header, if sent.
            api_keys: The server's accepted keys (None accepts anyone).
            tokens: The server's single-use tokens (minted ones are added).
            now: Wall clock, seconds since the Unix epoch (for ``expires_at``).
        """
        parts = urllib.parse.urlsplit(target)
        route = parts.path[len(_API_PREFIX):] if parts.path.startswith(_API_PREFIX) else None
        handler = _route(route)
        if handler is None:
            return _error(404, "Not Found")
        if method not in ("GET", "HEAD"):
            return _error(405, "Method Not Allowed")
        if api_keys is not None and api_key not in api_keys:
            return _error(401, _BAD_KEY)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        assert route is not None  # _route found a handler
        return handler(self, route, query, _Context(tokens, now))

    # -- the routes --

    def _voice_list(self, route: str, query: dict[str, list[str]],
                    context: _Context) -> RestAnswer:
        include = _flag(query, "include_catalog", default=False)
        limit = _count(query, "limit")
        if include is None or limit is None:
            return _error(422, "include_catalog must be 0 or 1, and limit a count >= 0")
        voices = [v for v in self.voices if include or not v.is_catalog]
        return _json(200, voices[:limit] if limit else voices)

    def _voice_get(self, route: str, query: dict[str, list[str]],
                   context: _Context) -> RestAnswer:
        uid = urllib.parse.unquote(route[len("voices/"):])
        for voice in self.voices:
            if voice.uid == uid:
                return _json(200, voice)
        return _error(404, f"Voice not found: {uid}")

    def _credits(self, route: str, query: dict[str, list[str]],
                 context: _Context) -> RestAnswer:
        ledger = self.ledger
        return _json(200, {"remaining": round(ledger.remaining, 3),
                           "allocated": ledger.allocated})

    def _mint_token(self, route: str, query: dict[str, list[str]],
                    context: _Context) -> RestAnswer:
        token = TokenStore(context.tokens, self.token_ttl_s).mint(context.now)
        return _json(200, {"token": token.token, "expires_at": token.expires_at.isoformat()})


@dataclass(frozen=True)
class _Context:
    tokens: set[str]
    now: float


_Handler = Callable[[LocalRest, str, dict[str, list[str]], _Context], RestAnswer]
_ROUTES: dict[str, _Handler] = {
    "voices": LocalRest._voice_list,
    "voices/": LocalRest._voice_list,
    "usages/credits": LocalRest._credits,
    "api-keys/token": LocalRest._mint_token,
}


def _route(route: str | None) -> _Handler | None:
    if route is None:
        return None
    handler = _ROUTES.get(route)
    if handler is not None:
        return handler
    uid = route[len("voices/"):] if route.startswith("voices/") else ""
    return LocalRest._voice_get if uid and "/" not in uid else None


def _flag(query: dict[str, list[str]], name: str, *, default: bool) -> bool | None:
    values = query.get(name)
    if not values:
        return default
    return {"1": True, "true": True, "0": False, "false": False}.get(values[0].lower())


def _count(query: dict[str, list[str]], name: str) -> int | None:
    value = (query.get(name) or ["0"])[0]
    return int(value) if value.isdigit() else None


def _json(status: int, data: object) -> RestAnswer:
    return RestAnswer(status, msgspec.json.encode(data))


def _error(status: int, detail: str) -> RestAnswer:
    return _json(status, {"detail": detail})
