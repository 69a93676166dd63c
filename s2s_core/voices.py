"""The service's flagship voice of each target language (PROTOCOL.md section 8)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["FLAGSHIP_VOICES"]

FLAGSHIP_VOICES: Mapping[str, str] = MappingProxyType({
    "en": "YTpq7expH9539ERJ",
    "fr": "b35yykvVppLXyw_l",
    "de": "-uP9MuGtBqAvEyxI",
    "es": "B36pbz5_UoWn4BDl",
    "pt": "pYcGZz9VOo4n2ynh",
})
"""Target language -> uid of the voice the vendor's own code uses for it.

One entry per ``s2s_core.setup.TARGET_LANGUAGES`` value. A voice must be of
the target language; these are catalog voices every account can use, so
they make good defaults (read-only mapping).
"""
