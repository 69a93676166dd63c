"""Base URLs and endpoints: only the scheme changes; the endpoint itself is taken as given."""

from __future__ import annotations

import pytest

from s2s_core import DEFAULT_BASE_URL, s2s_url


@pytest.mark.parametrize(("given", "expected"), [
    (DEFAULT_BASE_URL, "wss://api.gradium.ai/api/speech/s2s"),
    ("http://127.0.0.1:8765/api/", "ws://127.0.0.1:8765/api/speech/s2s"),
    ("ws://127.0.0.1:8765/api/speech/s2s", "ws://127.0.0.1:8765/api/speech/s2s"),
    ("http://127.0.0.1:8765/api/speech/s2s/", "ws://127.0.0.1:8765/api/speech/s2s"),
    ("https://proxy.example/http-gw/api/", "wss://proxy.example/http-gw/api/speech/s2s"),
])
def test_base_url_or_endpoint(given: str, expected: str) -> None:
    assert s2s_url(given) == expected
