"""``promote demo``: the whole journey on an in-process sandbox, no token and no network.

A plan's PR merges into dev (the sandbox's merge bot plays the Merge machine), and ``next``
carries it through dev, test (where the designated reviewer approves the manual test) and
main until the plan file moves to ``plans/done/``. Every transition is printed as it happens.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from promote_tasks import render
from promote_tasks.model import State
from promote_tasks.sandbox import Scenario
from promote_tasks.sandbox import start
from promote_tasks.shell import Run
from promote_tasks.tasks import decide_manually
from promote_tasks.tasks import needs_person
from promote_tasks.tasks import step


def run_demo(*, step_ms: int = 30, limit_seconds: float = 120.0) -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="promote-demo-") as directory:
        sandbox = start(Path(directory), scenario=Scenario(merge_bot=True), step_ms=step_ms)
        try:
            env = sandbox.env()
            say(
                f"sandbox {env['GITHUB_REPOSITORY']} at {env['GITHUB_API_URL']} (clone: {env['PROMOTE_CLONE']})"
            )
            clone = Path(env["PROMOTE_CLONE"])
            with (clone / "promote.toml").open("a", encoding="utf-8") as f:
                f.write(
                    "\n# demo: a short production soak\n[validators.monitor]\nsoak_seconds = 2\n"
                )
            run = Run.load(clone, environ=env)
            reviewer = Run.load(
                clone,
                environ={**env, "GITHUB_TOKEN": env["PROMOTE_REVIEWER_TOKEN"]},
            )
            deadline = time.monotonic() + limit_seconds
            waited = None
            while time.monotonic() < deadline:
                snapshot, action, did = step(run)
                if action.stop:
                    say(f"STOP: {render.inert(action.stop)}")
                    return 1
                if action.transition or did:
                    say(render.next_text(action, did))
                    waited = None
                    continue
                state, _ = run.decide(snapshot)
                main = state.environments[-1]
                done = any(p.id == "add-greeting" and p.done for p in snapshot.plans)
                if main.state is State.COMPLETE and main.plan == "add-greeting" and done:
                    say("plan add-greeting is complete in main; its file is in plans/done/")
                    return 0
                person = needs_person(run, snapshot, action)
                if person and "manual" in person:
                    say("reviewer rita: " + decide_manually(reviewer, None, None, True, ""))
                    continue
                if action.waiting_for != waited:
                    say(f"waiting for {render.inert(action.waiting_for)}")
                    waited = action.waiting_for
                time.sleep(max(step_ms, 10) / 1000)
            say("the demo did not finish in time")
            return 1
        finally:
            sandbox.stop()
