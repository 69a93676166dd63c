"""``python -m s2s_cli``: the ``s2s`` command."""

import sys

from ._main import main

if __name__ == "__main__":
    sys.exit(main())
