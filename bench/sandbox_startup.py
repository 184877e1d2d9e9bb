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
                "promote_sandbox",
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
    from promote_sandbox import start

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


def concurrency(latency_ms: int = 100, n: int = 20) -> float:
    """Wall time of ``n`` concurrent GETs with injected latency (serialised would be n x latency)."""
    import concurrent.futures
    import urllib.request

    from promote_sandbox import start

    with start(step_ms=0, latency_ms=latency_ms) as sandbox:
        url = f"{sandbox.api_url}/repos/{sandbox.repository}/pulls"
        headers = {"Authorization": f"token {sandbox.author_token}"}

        def get(_: int) -> int:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as resp:
                return int(resp.status)

        begin = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            assert set(pool.map(get, range(n))) == {200}
        return time.perf_counter() - begin


def faults_until_all_kinds(rate: float = 0.3, seed: int = 0) -> int:
    """How many naive requests (alternating GET and POST) until every fault kind was seen."""
    import http.client
    import json

    from promote_sandbox import start

    with start(step_ms=0, fault_rate=rate, seed=seed) as sandbox:
        port = int(sandbox.api_url.rsplit(":", 1)[1])
        for i in range(1, 2000):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            write = i % 2 == 0
            try:
                conn.request(
                    "POST" if write else "GET",
                    f"/repos/{sandbox.repository}/issues",
                    body=json.dumps({"title": f"t{i}"}) if write else None,
                    headers={"Authorization": f"token {sandbox.author_token}"},
                )
                conn.getresponse().read()
            except (http.client.RemoteDisconnected, ConnectionResetError):
                pass
            finally:
                conn.close()
            if len(sandbox.stats.to_json()["faults"]) == 5:
                return i
    return -1


if __name__ == "__main__":
    main()
    print(f"20 concurrent GETs at 100 ms latency: {concurrency():.2f} s (serial would be 2.0 s)")
    counts = [faults_until_all_kinds(seed=s) for s in range(5)]
    print(f"requests until all five fault kinds at --fault-rate 0.3 (seeds 0-4): {counts}")
