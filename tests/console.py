"""The installed ``promote`` console script, run as a user or a CI job runs it.

Every run starts from this process's environment without any ``GITHUB_*`` / ``GH_*`` variable
(a developer's token must never reach a test), plus what the test passes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

_found = shutil.which("promote", path=str(Path(sys.executable).parent))
assert _found, "the promote console script is installed next to python"
SCRIPT: str = _found

GITHUB_KEYS = ("GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN")


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without GitHub settings, then ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))}
    return {**clean, **(extra or {})}


def promote(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``promote *args`` in ``cwd``, with ``env`` on top of a clean environment."""
    return subprocess.run(
        [SCRIPT, *args],
        cwd=cwd,
        env=clean_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
