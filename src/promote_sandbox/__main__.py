"""``python -m promote_sandbox serve ...`` (what ``promote sandbox`` delegates to)."""

from __future__ import annotations

import sys

from promote_sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
