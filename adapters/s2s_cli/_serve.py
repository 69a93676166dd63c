"""``s2s serve``: the local server (a loopback engine and the REST routes) until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
from contextlib import ExitStack
from functools import partial

from ._audio import CliError
from ._errors import unwrap
from ._jobs import require_library
from ._present import status

__all__ = ["cmd_serve"]


def cmd_serve(ns: argparse.Namespace) -> int:
    """``s2s serve``: run the local server until Ctrl-C (or SIGTERM); exit 0."""
    import anyio

    if ns.loop in ("trio", "uvloop"):
        require_library(ns.loop, "--loop")
    try:
        if ns.loop == "trio":
            anyio.run(_serve, ns, backend="trio")
        else:
            anyio.run(_serve, ns, backend="asyncio",
                      backend_options={"use_uvloop": ns.loop == "uvloop"})
    except BaseException as exc:
        leaf = unwrap(exc)
        if isinstance(leaf, OSError):
            raise CliError(f"cannot listen on {ns.host}:{ns.port}: "
                           f"{leaf.strerror or leaf}") from exc
        if not isinstance(leaf, KeyboardInterrupt):
            raise
    status("server stopped")
    return 0


async def _serve(ns: argparse.Namespace) -> None:
    import anyio

    from s2s_anyio import make_config, serve
    from s2s_core.loopback.rest import LocalRest

    keys: list[str] | None = ns.api_keys
    tokens: list[str] = ns.tokens or []
    if keys is None and tokens:
        keys = []  # tokens only: do not accept any key
    config = make_config(api_keys=keys, tokens=tokens, max_audio_s=ns.max_audio_s)
    rest = LocalRest(credits=ns.credits)
    with ExitStack() as stack:
        try:
            signals = stack.enter_context(
                anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM))
        except NotImplementedError:  # Windows: Ctrl-C raises KeyboardInterrupt instead
            signals = None
        async with anyio.create_task_group() as tasks:
            url = await tasks.start(partial(serve, ns.host, ns.port, config=config, rest=rest))
            _print_serving(url, keys, tokens, ns)
            if signals is None:
                await anyio.sleep_forever()
            else:
                async for _ in signals:
                    break
            tasks.cancel_scope.cancel()


def _print_serving(url: str, keys: list[str] | None, tokens: list[str],
                   ns: argparse.Namespace) -> None:
    if keys is None:
        auth = "any API key"
    else:
        auth = f"{len(keys)} API key(s) and {len(tokens)} single-use token(s)"
    print(f"Serving the S2S protocol (loopback engine) at {url}", flush=True)
    print(f"Accepting {auth}; up to {ns.max_audio_s:g} s of audio per request; "
          f"{ns.credits:g} s of credits. Try: s2s translate samples/bonjour_fr.wav -o out.wav "
          f"--url {url}", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
