"""s2s_cli: the ``s2s`` command (translate a file, run the local server, run the benchmarks).

An application on top of the adapters: it drives ``s2s_anyio``, ``s2s_trio``
and ``s2s_threaded`` through their public names only. Run it as ``s2s`` or
``python -m s2s_cli``.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
