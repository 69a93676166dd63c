"""The local S2S server in its own process, for the end-to-end and scale benchmarks.

``python -m benchmarks._server [--port P] [--backend asyncio|trio]`` prints the
server's URL on its first line of output, then serves until terminated.
``local_server()`` runs it from the parent process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

__all__ = ["ServerProcess", "local_server", "module_command", "subprocess_env", "main"]


def module_command(name: str, *args: str) -> list[str]:
    """``python -m <this package>.<name> ARGS``: a child running the same code as we do.

    The package is imported as ``s2s_benchmarks`` once installed and as
    ``benchmarks`` by ``python -m benchmarks`` in a checkout; the child uses
    the name (and the working directory) the parent was started with.
    """
    return [sys.executable, "-m", f"{__package__}.{name}", *args]


def subprocess_env() -> dict[str, str]:
    """Environment for our child processes: ours without a stray API key."""
    env = dict(os.environ)
    env.pop("GRADIUM_API_KEY", None)
    return env


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its URL, the HTTP base URL clients take, its pid."""

    url: str
    base_url: str
    pid: int


@contextlib.contextmanager
def local_server(*, backend: str = "asyncio", timeout: float = 30.0) -> Iterator[ServerProcess]:
    """Start ``python -m benchmarks._server`` and stop it on exit."""
    proc = subprocess.Popen(
        module_command("_server", "--port", "0", "--backend", backend),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline().strip() if ready else ""
        if not line.startswith("ws://"):
            proc.kill()
            _, err = proc.communicate(timeout=5)
            raise RuntimeError(f"the local server did not start: {line!r} {err.strip()}")
        base = line.replace("ws://", "http://", 1).removesuffix("speech/s2s")
        yield ServerProcess(url=line, base_url=base, pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def _serve(port: int) -> None:
    import anyio

    from s2s_anyio import serve
    from s2s_core.loopback.rest import LocalRest

    # Unlimited credits: the local server's default ledger (one hour of audio)
    # runs out within one benchmark run and would refuse the later sessions.
    rest = LocalRest(credits=float("inf"))
    async with anyio.create_task_group() as tasks:
        url = await tasks.start(partial(serve, "127.0.0.1", port, rest=rest))
        print(url, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    ns = parser.parse_args(argv)
    import anyio

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(_serve, ns.port, backend=ns.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
