"""How long the sandbox takes to start: ``promote sandbox serve`` to READY, and ``start()``.

Run: ``.venv/bin/python bench/sandbox_startup.py``. Prints medians; gates nothing.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time


def serve_to_ready() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        begin = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "promote_tasks.sandbox",
                "serve",
                "--port",
                "0",
                "--dir",
                f"{tmp}/sb",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                break
        elapsed = time.perf_counter() - begin
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        return elapsed


def in_process() -> tuple[float, float]:
    from promote_tasks.sandbox import start

    times = []
    for _ in range(6):
        begin = time.perf_counter()
        sandbox = start(step_ms=0)
        times.append(time.perf_counter() - begin)
        sandbox.stop()
    return times[0], statistics.median(times[1:])


def main() -> None:
    serve = [serve_to_ready() for _ in range(5)]
    first, later = in_process()
    print(
        f"promote sandbox serve --port 0, to READY: median {statistics.median(serve):.2f} s, max {max(serve):.2f} s"
    )
    print(
        f"start() in process: first {first:.3f} s (seeds the template), then median {later:.3f} s"
    )


if __name__ == "__main__":
    main()
