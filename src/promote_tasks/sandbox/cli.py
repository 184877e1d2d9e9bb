"""``promote sandbox serve``: run the sandbox until interrupted, announcing how to reach it.

It prints ``KEY=VALUE`` lines and then ``READY`` so a script can ``eval`` them or a test can
read them from a pipe before it starts talking to the server.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from promote_tasks.sandbox.core import DEFAULT_STEP_MS
from promote_tasks.sandbox.core import start
from promote_tasks.sandbox.scenario import Scenario
from promote_tasks.sandbox.scenario import ScenarioError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promote sandbox", description="A local GitHub for promote-tasks."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="seed a repository and serve it until interrupted")
    serve.add_argument(
        "--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free port)"
    )
    serve.add_argument("--dir", type=Path, default=None, help="where to keep the repositories")
    serve.add_argument("--scenario", type=Path, default=None, help="scenario JSON file")
    serve.add_argument("--latency-ms", type=int, default=0, help="delay every API response")
    serve.add_argument(
        "--fault-rate", type=float, default=0.0, help="fraction of API requests to fault"
    )
    serve.add_argument("--seed", type=int, default=0, help="seed for fault injection")
    serve.add_argument(
        "--step-ms", type=int, default=DEFAULT_STEP_MS, help="CI step period (0: manual)"
    )
    serve.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds on rate limits"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else Scenario()
        if not 0.0 <= args.fault_rate <= 1.0:
            raise ValueError("--fault-rate must be between 0 and 1")
        sandbox = start(
            args.dir,
            scenario=scenario,
            port=args.port,
            latency_ms=max(args.latency_ms, 0),
            fault_rate=args.fault_rate,
            seed=args.seed,
            step_ms=max(args.step_ms, 0),
            retry_after=max(args.retry_after, 0),
        )
    except (ScenarioError, ValueError, OSError) as exc:
        print(f"promote sandbox: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for key, value in sandbox.env().items():
            print(f"{key}={value}")
        print("READY", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
    return 0
