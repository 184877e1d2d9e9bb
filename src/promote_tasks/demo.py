"""``promote demo``: the whole dev → test → main journey on an in-process sandbox (no token, no
network), with a failed deploy to test, its rollback and the fix plan's own journey."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_tasks import render
from promote_tasks.machine import needs_person
from promote_tasks.model import State
from promote_tasks.session import Run

SCENARIO = Scenario(merge_bot=True, fail=(FailRule("test", "deploy", times=1),))


def run_demo(*, step_ms: int = 30, limit_seconds: float = 180.0) -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="promote-demo-") as directory:
        sandbox = start(Path(directory), scenario=SCENARIO, step_ms=step_ms)
        try:
            env = sandbox.env()
            say(
                f"sandbox {env['GITHUB_REPOSITORY']} at {env['GITHUB_API_URL']} (clone: {env['PROMOTE_CLONE']})"
            )
            say("scenario: the first deploy to test fails")
            clone = Path(env["PROMOTE_CLONE"])
            with (clone / "promote.toml").open("a", encoding="utf-8") as f:
                f.write(
                    "\n# demo: a short production soak\n[validators.monitor]\nsoak_seconds = 2\n"
                )
            run = Run.load(clone, environ=env)
            reviewer = Run.load(
                clone, environ={**env, "GITHUB_TOKEN": env["PROMOTE_REVIEWER_TOKEN"]}
            )
            deadline = time.monotonic() + limit_seconds
            waited = None
            fixes_opened: set[str] = set()
            while time.monotonic() < deadline:
                taken = run.step()
                snapshot, state, action, did = taken.snapshot, taken.state, taken.action, taken.did
                if action.stop:
                    say(f"STOP: {render.inert(action.stop)}")
                    return 1
                if action.transition or did:
                    say(render.next_text(action, did))
                    waited = None
                    continue
                fix = state.fix_plan
                if fix and fix not in fixes_opened:
                    say(f"code machine: a fix on feature/{fix}, " + open_fix(run, clone, fix))
                    fixes_opened.add(fix)
                    continue
                main = state.environments[-1]
                done = {p.id for p in snapshot.plans if p.done}
                if (
                    fixes_opened
                    and not state.halted
                    and main.state is State.COMPLETE
                    and main.plan in done
                ):
                    say(f"fix plan {main.plan} is complete in main; the halt is lifted")
                    return 0
                person = needs_person(state, action, run.pipeline)
                if person and "manual" in person:
                    say("reviewer rita: " + reviewer.record_decision(None, None, True, ""))
                    continue
                if action.waiting_for != waited:
                    say(f"waiting for {render.inert(action.waiting_for)}")
                    waited = action.waiting_for
                time.sleep(max(step_ms, 10) / 1000)
            say("the demo did not finish in time")
            return 1
        finally:
            sandbox.stop()


def open_fix(run: Run, clone: Path, plan: str) -> str:
    """What a developer would do for the fix plan: a branch with the fix, and a PR into dev."""
    first = run.pipeline.environments[0].branch
    branch = f"feature/{plan}"

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)

    git("fetch", "-q", "origin")
    git("checkout", "-q", "-B", branch, f"origin/{first}")
    (clone / "app.txt").write_text("Hello, world! (fixed)\n", encoding="utf-8")
    git(
        "-c",
        "user.name=Alice",
        "-c",
        "user.email=alice@example.com",
        "commit",
        "-q",
        "-am",
        f"Fix: {plan}",
    )
    git("push", "-q", "origin", branch)
    github = run.github
    number, url, _ = github.run(
        github.open_pull(branch, first, f"Fix {plan}", "Fixes the failure.\n")
    )
    return f"PR #{number}: {url}"
