"""Benchmarks of the s2s clients against the official Gradium SDK.

Installed as the package ``s2s_benchmarks`` (this folder, mapped by
pyproject.toml) and run by ``s2s bench``; in a checkout ``python -m benchmarks``
runs the same. ``--quick`` for a smoke run, ``--only decode,encode,e2e,scale``
to choose; see ``command``. Importing the package imports nothing heavy.
"""
