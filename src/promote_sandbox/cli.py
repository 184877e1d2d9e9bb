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

from promote_sandbox.core import DEFAULT_STEP_MS
from promote_sandbox.core import start
from promote_sandbox.scenario import Scenario
from promote_sandbox.scenario import ScenarioError


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
    serve.add_argument(
        "--actions", action="store_true", help="run the repository's own workflow files too"
    )
    serve.add_argument(
        "--http2-cert",
        type=Path,
        default=None,
        help="PEM with a key and certificate for 127.0.0.1: serve the API over HTTP/2 and TLS "
        "too, as GitHub does (GITHUB_API_URL names that front)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return serve(
        port=args.port, directory=args.dir, scenario=args.scenario, latency_ms=args.latency_ms,
        fault_rate=args.fault_rate, seed=args.seed, step_ms=args.step_ms,
        retry_after=args.retry_after, actions=args.actions, http2_cert=args.http2_cert,
    )  # fmt: skip


def serve(
    *,
    port: int = 0,
    directory: Path | None = None,
    scenario: Path | None = None,
    latency_ms: int = 0,
    fault_rate: float = 0.0,
    seed: int = 0,
    step_ms: int = DEFAULT_STEP_MS,
    retry_after: int = 1,
    actions: bool = False,
    http2_cert: Path | None = None,
) -> int:
    """Serve a seeded sandbox until interrupted: ``KEY=VALUE`` lines, then ``READY``."""
    try:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError("--fault-rate must be between 0 and 1")
        if not 0 <= port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, not {port}")
        loaded = Scenario.load(scenario) if scenario else Scenario()
        sandbox = start(
            directory,
            scenario=loaded,
            port=port,
            latency_ms=max(latency_ms, 0),
            fault_rate=fault_rate,
            seed=seed,
            step_ms=max(step_ms, 0),
            retry_after=max(retry_after, 0),
            actions=actions,
            # The schedule's clock: a minute is a second or so of CI steps, so a */15 cron
            # fires every ~15 s, not on every other step.
            steps_per_minute=max(1, 1000 // max(step_ms, 1)),
        )
    except (ScenarioError, ValueError, OSError) as exc:
        print(f"promote sandbox: {exc}", file=sys.stderr)
        return 1
    env = sandbox.env()
    front = None
    if http2_cert is not None:
        from promote_sandbox.h2front import H2Front

        try:
            port_of = int(sandbox.api_url.rsplit(":", 1)[1])
            front = H2Front(port_of, str(http2_cert), str(http2_cert)).start()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sandbox.stop()
            print(f"promote sandbox: --http2-cert {http2_cert}: {exc}", file=sys.stderr)
            return 1
        env["GITHUB_API_URL"] = front.url
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for key, value in env.items():
            print(f"{key}={value}")
        print("READY", flush=True)
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if front is not None:
            front.stop()
        sandbox.stop()
    return 0
