"""Benchmarks of the s2s clients against the official Gradium SDK.

Run them all with ``python -m benchmarks`` (``--quick`` for a smoke run,
``--only decode,encode,e2e,scale`` to choose); see ``benchmarks.__main__``.
"""
