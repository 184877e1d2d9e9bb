"""How long one ``status`` read takes against a GitHub that answers every request in 100 ms.

Run: ``.venv/bin/python bench/snapshot.py`` (about 15 s). Starts the sandbox in-process with
``latency_ms=100``, once with its 3 environments and once with 10 (a ``Scenario`` with 10
branches and a ``promote.toml`` with 10 ``[[environments]]`` in its clone), and reads the
snapshot the way ``promote status`` does (``Run.snapshot()``: GitHub facts and plans).

For each it prints the requests (the client's count and the sandbox's ``GET /_sandbox/stats``),
the wall time and the wall time as a multiple of the injected latency, and a repeat read in
the same process (the ETag cache: 304s). How many latency rounds the read waits through is
the slope of the wall time against the latency (the same read at 500 ms, minus at 100 ms,
over 400 ms): two waves of concurrent requests give 2, whatever the CPU costs. The client's
CPU (the main thread, where the event loop runs) and the sandbox's (its threads) are printed
apart: the in-process sandbox shares the GIL with the client, so their sum adds to the two
latency rounds. Medians of a few runs; nothing is asserted.

DESIGN §5 asks for the 10-environment read within about 3x the latency (two waves).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promote_tasks.sandbox import Sandbox
from promote_tasks.sandbox import Scenario
from promote_tasks.sandbox import start
from promote_tasks.shell import Run

LATENCY_MS = 100
SLOW_MS = 500  # the second latency, for the slope
RUNS = 3


def names(count: int) -> tuple[str, ...]:
    """``dev``, ``stage1`` … ``stage{count-2}``, ``main``: the branches the sandbox seeds."""
    return ("dev", *(f"stage{i}" for i in range(1, count - 1)), "main")


def settings(envs: tuple[str, ...]) -> str:
    tables = "".join(
        f'\n[[environments]]\nname = "{name}"\nvalidators = ["health", "smoke"]\n' for name in envs
    )
    return f'reviewers = ["rita"]\n{tables}'


def control(sandbox: Sandbox, tail: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{sandbox.api_url}/_sandbox/{tail}", method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@dataclass
class Read:
    wall: float
    client_cpu: float
    sandbox_cpu: float
    requests: int
    served: int
    not_modified: int


def read(sandbox: Sandbox, clone: Path, *, repeat: bool = False) -> Read:
    """One ``status`` read by a fresh client (or a second one by the same, with ``repeat``)."""
    run = Run.load(clone, environ=sandbox.env())
    github = run.github
    github.api  # noqa: B018  (ghapi's import and construction are not the read)
    if repeat:
        run.snapshot()
    before = (github.stats.requests, github.stats.not_modified)
    control(sandbox, "stats/reset", "POST")
    cpu, thread, begin = time.process_time(), time.thread_time(), time.perf_counter()
    run.snapshot()
    wall = time.perf_counter() - begin
    client = time.thread_time() - thread
    return Read(
        wall=wall,
        client_cpu=client,
        sandbox_cpu=time.process_time() - cpu - client,
        requests=github.stats.requests - before[0],
        served=int(control(sandbox, "stats")["total"]),
        not_modified=github.stats.not_modified - before[1],
    )


def median(reads: list[Read], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in reads))


def measure(count: int, directory: Path) -> None:
    envs = names(count)
    rows: dict[Any, list[Read]] = {}
    for latency in (LATENCY_MS, SLOW_MS):
        sandbox = start(
            directory / f"{count}-{latency}",
            scenario=Scenario(environments=envs),
            latency_ms=latency,
            step_ms=0,
        )
        try:
            clone = Path(sandbox.env()["PROMOTE_CLONE"])
            (clone / "promote.toml").write_text(settings(envs), encoding="utf-8")
            rows[latency] = [read(sandbox, clone) for _ in range(RUNS)]
            if latency == LATENCY_MS:
                rows["repeat"] = [read(sandbox, clone, repeat=True) for _ in range(RUNS)]
        finally:
            sandbox.stop()
    base, slow, again = rows[LATENCY_MS], rows[SLOW_MS], rows["repeat"]
    latency = LATENCY_MS / 1000
    wall, repeat = median(base, "wall"), median(again, "wall")
    client, served = median(base, "client_cpu"), median(base, "sandbox_cpu")
    rounds = (median(slow, "wall") - wall) / ((SLOW_MS - LATENCY_MS) / 1000)
    print(f"{count} environments ({', '.join(envs[:3])}{', …' if count > 3 else ''})")
    print(
        f"  requests: client {base[0].requests}, sandbox served {base[0].served}"
        f"; repeat read {again[0].requests}, of which {again[0].not_modified} were 304"
    )
    print(
        f"  wall at {LATENCY_MS} ms: {wall:.3f} s = {wall / latency:.1f}x the latency"
        f"; repeat read {repeat:.3f} s = {repeat / latency:.1f}x"
    )
    print(
        f"  latency rounds (wall at {SLOW_MS} ms minus wall at {LATENCY_MS} ms"
        f", over {SLOW_MS - LATENCY_MS} ms): {rounds:.1f}  (two waves: 2)"
    )
    print(
        f"  CPU in the read: client {client:.3f} s ({1000 * client / base[0].requests:.1f} ms"
        f"/request), sandbox {served:.3f} s ({1000 * served / base[0].served:.1f} ms/request)"
        f"; one GIL, so two waves cost at least {2 * latency + client + served:.3f} s"
        f" = {(2 * latency + client + served) / latency:.1f}x"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="promote-bench-") as tmp:
        for count in (3, 10):
            measure(count, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
