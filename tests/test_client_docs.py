"""Every flavour's public calls document every argument, their return and their errors.

The texts the async and the blocking clients share live once, in
``s2s_core.client_docs``; ``help()`` must still show the whole on each.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, get_type_hints

import pytest

import s2s_anyio
import s2s_threaded
import s2s_trio
from _s2s_async.rest import AsyncRestClient
from _s2s_async.session import SplitSession as AsyncSplitSession
from s2s_core import client_docs
from s2s_core.input_plan import InputOptions
from s2s_threaded.rest import RestClient
from s2s_threaded.session import SplitSession

FLAVOURS = [s2s_anyio, s2s_trio, s2s_threaded]

# The calls whose docs say what they return, and what they raise.
RETURNS = ("s2s", "s2s_stream", "s2s_realtime")
RAISES = ("s2s", "s2s_stream", "s2s_realtime", "voice_list", "voice_get", "credits",
          "mint_token", "send_audio")


def _calls(flavour: ModuleType) -> dict[str, Callable[..., Any]]:
    client = flavour.S2SClient
    rest = RestClient if flavour is s2s_threaded else AsyncRestClient
    split = SplitSession if flavour is s2s_threaded else AsyncSplitSession
    return {"s2s": client.s2s, "s2s_stream": client.s2s_stream,
            "s2s_realtime": client.s2s_realtime, "connect": flavour.connect,
            "open_connection": flavour.open_connection, "voice_list": rest.voice_list,
            "voice_get": rest.voice_get, "credits": rest.credits, "mint_token": rest.mint_token,
            "send_audio": split.send_audio}


def _documented_names(call: Callable[..., Any]) -> list[str]:
    """The names a user passes: each parameter, and each key of an unpacked ``**options``."""
    names = []
    for name, parameter in inspect.signature(call).parameters.items():
        if name == "self":
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            if "InputOptions" in str(parameter.annotation):
                names.extend(get_type_hints(InputOptions))
            else:
                names.append(f"**{name}")
        else:
            names.append(name)
    return names


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
def test_every_argument_is_documented(flavour: ModuleType) -> None:
    for what, call in _calls(flavour).items():
        doc = inspect.getdoc(call) or ""
        args = doc.partition("Args:\n")[2].partition("\n\n")[0]
        for name in _documented_names(call):
            assert f"\n    {name}: " in f"\n{args}", f"{flavour.__name__}.{what}: {name}"


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda m: m.__name__)
def test_returns_and_errors_are_documented(flavour: ModuleType) -> None:
    for what, call in _calls(flavour).items():
        doc = inspect.getdoc(call) or ""
        if what in RETURNS:
            assert "\nReturns:\n" in doc, f"{flavour.__name__}.{what}"
        if what in RAISES:
            assert "\nRaises:\n" in doc, f"{flavour.__name__}.{what}"


def test_the_flavours_share_one_text() -> None:
    """The async and the blocking docs differ only by the flavour's words."""
    for what in ("s2s", "s2s_realtime", "connect", "voice_get"):
        async_doc = inspect.getdoc(_calls(s2s_anyio)[what]) or ""
        blocking_doc = inspect.getdoc(_calls(s2s_threaded)[what]) or ""
        shared_async = async_doc.partition("\n\n")[2]
        shared_blocking = blocking_doc.partition("\n\n")[2]
        for async_word, blocking_word in zip(client_docs.ASYNC.values(),
                                             client_docs.BLOCKING.values(), strict=True):
            shared_async = shared_async.replace(async_word, blocking_word)
        assert len(shared_async) > 200, what
        assert shared_blocking.endswith(shared_async), what


def test_shared_doc_appends_to_the_own_text() -> None:
    @client_docs.shared_doc("Args:\n    x: The {thing}.", thing="value")
    def f(x: int) -> None:
        """Do it."""

    assert f.__doc__ == "Do it.\n\nArgs:\n    x: The value."
