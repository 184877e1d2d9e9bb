"""The README's first command: `promote demo` runs the whole journey from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_promote_demo_carries_the_plan_to_done_from_any_directory(tmp_path):
    script = shutil.which("promote", path=str(Path(sys.executable).parent))
    assert script
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))}
    result = subprocess.run(
        [script, "demo"], cwd=tmp_path, capture_output=True, text=True, env=clean, timeout=300
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    order = [
        out.index(line)
        for line in (
            "R4 dev:",
            "R5 dev:",
            "R7 dev:",
            "reviewer rita: approved test",
            "R5 test:",
            "R7 test:",
            "R5 main:",
            "R8 main:",
        )
    ]
    assert order == sorted(order)
    assert "completed plan add-greeting" in out
    assert "sbx_" not in out + result.stderr, "tokens never reach the output"
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"
