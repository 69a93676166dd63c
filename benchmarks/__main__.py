"""``python -m benchmarks`` (in a checkout) or ``python -m s2s_benchmarks``: see ``command``."""

import sys

from .command import BENCHMARKS, build_parser, main

__all__ = ["BENCHMARKS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
