"""``Setup``: the validated first message of every S2S request."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import msgspec

from .errors import InvalidSetup
from .formats import FORMAT_NAMES

__all__ = ["Setup", "TARGET_LANGUAGES", "DEFAULT_MODEL", "JSON_CONFIG_KEYS"]

TARGET_LANGUAGES: tuple[str, ...] = ("en", "fr", "de", "es", "pt")
"""Values accepted for ``json_config["target_language"]``."""

DEFAULT_MODEL = "s2s-translate"

JSON_CONFIG_KEYS: frozenset[str] = frozenset({"target_language"})
"""Keys a ``json_config`` object may hold (PROTOCOL.md section 2: the docs name no other).

Other settings go through as a pre-encoded JSON string, which is sent untouched.
"""

_WIRE_FIELDS = (
    "model_name",
    "stt_model_name",
    "tts_model_name",
    "input_format",
    "output_format",
    "voice_id",
    "json_config",
    "client_req_id",
    "close_ws_on_eos",
    "retry_for_s",
)
_FORMATS = frozenset(FORMAT_NAMES)


class Setup(msgspec.Struct, frozen=True, kw_only=True):
    """Configuration of one S2S request, validated on construction.

    Attributes:
        voice_id: Voice of the output. Required unless ``require_voice_id``
            is False (for servers with a default voice).
        input_format: Format of the audio we send (always sent on the wire).
        output_format: Format of the audio we receive (always sent).
        json_config: Object such as ``{"target_language": "en"}`` or a
            pre-encoded JSON string (passed through untouched). Omit
            ``target_language`` to keep the input language. An object may
            only hold the keys of ``JSON_CONFIG_KEYS`` (a typo would be sent
            and silently ignored); a string is not checked for keys, so
            settings this library does not know go through as a string.
        model_name: The S2S model (sent explicitly).
        stt_model_name: Inner speech-to-text model, optional.
        tts_model_name: Inner text-to-speech model, optional.
        client_req_id: Multiplexing id, echoed on every response.
        close_ws_on_eos: False keeps the socket open after the request.
        retry_for_s: Server-side window to retry worker allocation.
        require_voice_id: Client-side check only; never sent.

    Raises:
        InvalidSetup: A field has a bad value (the error names the field,
            the value and what is allowed).
    """

    voice_id: str | None = None
    input_format: str = "pcm"
    output_format: str = "pcm"
    json_config: dict[str, Any] | str | None = None
    model_name: str = DEFAULT_MODEL
    stt_model_name: str | None = None
    tts_model_name: str | None = None
    client_req_id: str | None = None
    close_ws_on_eos: bool | None = None
    retry_for_s: float | None = None
    require_voice_id: bool = True

    def __post_init__(self) -> None:
        _check_str("model_name", self.model_name, optional=False)
        _check_str("stt_model_name", self.stt_model_name)
        _check_str("tts_model_name", self.tts_model_name)
        _check_str("client_req_id", self.client_req_id)
        for field in ("input_format", "output_format"):
            value = getattr(self, field)
            if not isinstance(value, str) or value not in _FORMATS:
                raise InvalidSetup(field, value, "one of " + ", ".join(FORMAT_NAMES))
        if self.voice_id is None:
            if self.require_voice_id:
                raise InvalidSetup(
                    "voice_id", None,
                    "a voice id string (pass require_voice_id=False to let the server choose)",
                )
        else:
            _check_str("voice_id", self.voice_id)
            if not self.voice_id:
                raise InvalidSetup("voice_id", self.voice_id, "a non-empty voice id")
        if self.close_ws_on_eos is not None and not isinstance(self.close_ws_on_eos, bool):
            raise InvalidSetup("close_ws_on_eos", self.close_ws_on_eos, "a bool")
        if self.retry_for_s is not None and (
            isinstance(self.retry_for_s, bool)
            or not isinstance(self.retry_for_s, (int, float))
            or not math.isfinite(self.retry_for_s)
            or self.retry_for_s < 0
        ):
            raise InvalidSetup("retry_for_s", self.retry_for_s, "a finite number >= 0")
        if not isinstance(self.require_voice_id, bool):
            raise InvalidSetup("require_voice_id", self.require_voice_id, "a bool")
        _check_json_config(self.json_config)

    @property
    def target_language(self) -> str | None:
        """The ``target_language`` of ``json_config``, or None (keep the language)."""
        config = self.json_config
        if isinstance(config, str):
            config = msgspec.json.decode(config)
        if isinstance(config, dict):
            value = config.get("target_language")
            return value if isinstance(value, str) else None
        return None

    @property
    def reuses_socket(self) -> bool:
        """True when the socket stays open after this request (close_ws_on_eos=False)."""
        return self.close_ws_on_eos is False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> Setup:
        """Build a Setup from a dict such as the official SDK's ``S2SSetup``.

        A ``"type": "setup"`` key is accepted and dropped; any other unknown
        key raises InvalidSetup (a typo must not be silently ignored).
        """
        merged = {**values, **overrides}
        kind = merged.pop("type", "setup")
        if kind != "setup":
            raise InvalidSetup("type", kind, '"setup"')
        unknown = sorted(set(merged) - set(cls.__struct_fields__))
        if unknown:
            raise InvalidSetup(unknown[0], merged[unknown[0]],
                               "one of the setup fields " + ", ".join(cls.__struct_fields__))
        return cls(**merged)

    def to_wire(self) -> dict[str, Any]:
        """The setup message as a JSON-ready dict (formats always included)."""
        wire: dict[str, Any] = {"type": "setup"}
        for name in _WIRE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                wire[name] = value
        return wire

    def to_wire_kwargs(self) -> dict[str, Any]:
        """The non-default fields as keyword arguments (``s2s_realtime(**...)``)."""
        wire = self.to_wire()
        del wire["type"]
        if not self.require_voice_id:
            wire["require_voice_id"] = False
        return wire

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_wire().items() if k != "type")
        return f"Setup({shown})"


def _check_str(field: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidSetup(field, value, "a string" + (" or None" if optional else ""))


def _check_json_config(config: object) -> None:
    if config is None:
        return
    if isinstance(config, str):
        try:
            decoded = msgspec.json.decode(config)
        except msgspec.DecodeError as exc:
            raise InvalidSetup("json_config", config, f"a JSON object string ({exc})") from None
        if not isinstance(decoded, dict):
            raise InvalidSetup("json_config", config, "a JSON object string")
        config = decoded
    else:
        if not isinstance(config, dict):
            raise InvalidSetup("json_config", config, "a dict or a JSON object string")
        _check_json_config_keys(config)
    language = config.get("target_language")
    if language is not None and language not in TARGET_LANGUAGES:
        raise InvalidSetup("json_config.target_language", language,
                           "one of " + ", ".join(TARGET_LANGUAGES) + " (or absent)")


def _check_json_config_keys(config: dict[Any, Any]) -> None:
    for key in config:
        if key in JSON_CONFIG_KEYS:
            continue
        known = sorted(JSON_CONFIG_KEYS)
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidSetup(
            "json_config", key,
            f"a json_config key among {', '.join(known)}{hint}; to send settings this "
            "library does not know, pass json_config as a pre-encoded JSON string "
            "(json.dumps(...)): a string is sent untouched")
