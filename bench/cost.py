"""What one run costs: requests and bytes of a ``status`` read, and CPU before its first request.

Run: ``.venv/bin/python bench/cost.py`` (about half a minute). Prints, in one run:

- per cold read (a fresh client) and per poll (the same read again in that process, the
  ETag cache sending ``If-None-Match``): requests, bytes of answer bodies, and the share of
  the poll answered ``304 Not Modified`` (free of GitHub's rate limit), at 3 and 10
  environments (the sandbox in this process, no injected latency);
- the process CPU (user + system) spent before the first request could go out (imports,
  settings, plugins, the pipeline, the client and the first operation built), each in a fresh
  interpreter, against ``python -c pass`` and ``python -c "import ghapi.all"``, as ratios.
  Set ``PYTHONPATH`` to another checkout's ``src`` to measure it the same way.

Medians of a few processes; nothing is asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from promote_sandbox import Scenario
from promote_sandbox import start
from promote_tasks.session import Run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from snapshot import names  # noqa: E402
from snapshot import settings  # noqa: E402

PROCESSES = 7

#: The CPU of a fresh interpreter once ``code`` has run: user + system of this process.
CPU = "\nimport os; t = os.times(); print(t.user + t.system)"

#: What a ``promote status`` process does before its first request, up to the client and the
#: operation of that request built (``op`` on this client; ghapi attributes on a ``GhApi()``).
FIRST_REQUEST = """
from pathlib import Path
from promote_tasks.session import Run
run = Run.load(Path({clone!r}), environ={environ!r})
api = run.github.api
op = api.op("repos.get") if hasattr(api, "op") else api.repos.get
"""


def cpu(code: str) -> float:
    """Median CPU seconds of a fresh interpreter running ``code``."""
    found = []
    for _ in range(PROCESSES):
        done = subprocess.run(
            [sys.executable, "-c", code + CPU], capture_output=True, text=True, check=True
        )
        found.append(float(done.stdout.split()[-1]))
    return statistics.median(found)


def reads(count: int, directory: Path) -> dict[str, float]:
    envs = names(count)
    sandbox = start(directory, scenario=Scenario(environments=envs), step_ms=0)
    try:
        env = sandbox.env()
        clone = Path(env["PROMOTE_CLONE"])
        (clone / "promote.toml").write_text(settings(envs), encoding="utf-8")
        Run.load(clone, environ=env).facts()  # warm: the sandbox's caches, the imports
        run = Run.load(clone, environ=env)
        stats = run.github.stats
        run.facts()
        cold = (stats.requests, stats.received)
        run.facts()
        return {
            "cold_requests": cold[0],
            "cold_bytes": cold[1],
            "poll_requests": stats.requests - cold[0],
            "poll_bytes": stats.received - cold[1],
            "poll_304": stats.not_modified,
        }
    finally:
        sandbox.stop()


def first_request(directory: Path) -> float:
    """CPU up to the first request, for a ``status`` in the sandbox's clone (none is sent)."""
    sandbox = start(directory, step_ms=0)
    try:
        env = sandbox.env()
        return cpu(FIRST_REQUEST.format(clone=env["PROMOTE_CLONE"], environ=env))
    finally:
        sandbox.stop()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="promote-cost-") as tmp:
        for count in (3, 10):
            r = reads(count, Path(tmp) / f"reads-{count}")
            share = r["poll_304"] / r["poll_requests"] if r["poll_requests"] else 0.0
            print(f"{count} environments")
            print(f"  cold read: {r['cold_requests']} requests, {r['cold_bytes'] / 1024:.1f} KiB")
            print(
                f"  poll:      {r['poll_requests']} requests, {r['poll_bytes'] / 1024:.1f} KiB"
                f", {r['poll_304']} of them 304 ({share:.0%})"
            )
        bare = cpu("pass")
        ghapi = cpu("import ghapi.all")
        ghapi_built = cpu("from ghapi.all import GhApi; GhApi(token='x', gh_host='http://x')")
        first = first_request(Path(tmp) / "startup")
        where = os.environ.get("PYTHONPATH") or "installed"
        print(f"CPU before the first request (median of {PROCESSES} processes; {where})")
        print(f"  python -c pass:           {bare:.3f} s")
        print(f"  import ghapi.all:         {ghapi:.3f} s  ({ghapi / bare:.1f}x pass)")
        print(f"  ... and GhApi():          {ghapi_built:.3f} s  ({ghapi_built / bare:.1f}x pass)")
        print(
            f"  promote, to 1st request:  {first:.3f} s  ({first / bare:.1f}x pass,"
            f" {first / ghapi:.2f}x import ghapi.all)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
