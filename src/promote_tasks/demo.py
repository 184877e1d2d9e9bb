"""``promote demo``: the whole dev → test → main journey on an in-process sandbox (no token, no
network), with a failed deploy to test, its rollback and the fix plan's own journey."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_sandbox.store import BOT_LOGIN
from promote_tasks import render
from promote_tasks.errors import PromoteError
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


# -- promote demo --actions: the same journey with nobody running promote --------------------

ACTIONS_SCENARIO = Scenario(
    merge_bot=True, people_merge=True, fail=(FailRule("test", "deploy", times=1),)
)
STEPS_PER_MINUTE = 4  # the sandbox's clock for schedule: a */15 cron fires every 60 CI steps
REHEARSAL_SETTINGS = """
# rehearsal on the sandbox: short waits, so the journey takes a minute rather than hours
deploy_grace_seconds = 2

[validators.monitor]
soak_seconds = 2
"""


def run_actions_demo(*, step_ms: int = 100, limit_seconds: float = 600.0) -> int:
    """``promote demo --actions``: a fresh sandbox whose Actions emulator runs the workflows
    ``promote init`` writes. People only merge their own PRs and approve the manual test; every
    ``promote next`` is a workflow run started by an event (or the schedule)."""

    def say(line: str) -> None:
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="promote-demo-") as directory:
        sandbox = start(
            Path(directory),
            scenario=ACTIONS_SCENARIO,
            step_ms=step_ms,
            actions=True,
            steps_per_minute=STEPS_PER_MINUTE,
        )
        try:
            env = sandbox.env()
            clone = Path(env["PROMOTE_CLONE"])
            say(
                f"sandbox {env['GITHUB_REPOSITORY']} at {env['GITHUB_API_URL']}, running its workflows"
            )
            say("scenario: the first deploy to test fails")
            for line in set_up(sandbox, clone):
                say(line)
            return _rehearse(sandbox, clone, env, say, limit_seconds, step_ms)
        finally:
            sandbox.stop()


def set_up(sandbox: Sandbox, clone: Path) -> list[str]:
    """What a team does once: ``promote init`` in its clone, the files committed, and that
    commit on every environment branch before the pipeline starts (the sandbox adopts it)."""
    from promote_tasks import init as setup

    items = setup.plan(clone)
    setup.write(clone, items)
    wrote = [i.path for i in items if i.outcome in ("write", "overwrite", "append")]
    with (clone / "promote.toml").open("a", encoding="utf-8") as f:
        f.write(REHEARSAL_SETTINGS)
    _git(clone, "checkout", "-q", "-B", "promote-setup")
    _git(clone, "add", "-A")
    _git(clone, *AUTHOR, "commit", "-q", "-m", "Set up promote-tasks (promote init)")
    _git(clone, "push", "-q", "origin", "promote-setup")
    sha = sandbox.adopt("promote-setup")
    _git(clone, "push", "-q", "origin", "--delete", "promote-setup")
    _git(clone, "fetch", "-q", "origin")
    _git(clone, "checkout", "-q", "--detach", f"origin/{sandbox.scenario.default_branch}")
    return [
        f"promote init wrote {len(wrote)} files: {', '.join(wrote)}",
        f"committed them ({sha[:7]}) on every environment branch; from here on, nobody runs promote",
    ]


AUTHOR = ("-c", "user.name=Alice Author", "-c", "user.email=alice@example.com")


def _git(clone: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)


def _rehearse(
    sandbox: Sandbox,
    clone: Path,
    env: dict[str, str],
    say: Callable[[str], None],
    limit_seconds: float,
    step_ms: int,
) -> int:
    run = Run.load(clone, environ=env)
    reviewer = Run.load(clone, environ={**env, "GITHUB_TOKEN": env["PROMOTE_REVIEWER_TOKEN"]})
    github = run.github
    first = run.pipeline.environments[0].branch
    say("developer alice: merges PR #1 (plan add-greeting) into " + first)
    pull = github.run(github.pull(1))
    github.run(github.merge_pull(1, str(pull["head"]["sha"]), ("merge",)))
    deadline = time.monotonic() + limit_seconds
    reported: set[int] = set()
    approved: set[str] = set()
    fixes: dict[str, int] = {}  # fix plan -> its PR
    merged: set[int] = set()
    while time.monotonic() < deadline:
        for line in _finished_runs(sandbox, reported):
            say(line)
        try:
            taken = run.step(dry_run=True)
        except PromoteError as e:
            say(f"(looking: {e})")
            time.sleep(0.5)
            continue
        state, action, snapshot = taken.state, taken.action, taken.snapshot
        if action.stop:
            say(f"STOP: {render.inert(action.stop)}")
            return 1
        fix = state.fix_plan
        if fix and fix not in fixes:
            opened = open_fix(run, clone, fix)
            say(f"developer alice: a fix on feature/{fix}, {opened}")
            fixes[fix] = int(opened.split("#", 1)[1].split(":", 1)[0])
        for plan, number in fixes.items():
            if number not in merged and _gate_passed(github, number):
                head = str(github.run(github.pull(number))["head"]["sha"])
                github.run(github.merge_pull(number, head, ("merge",)))
                merged.add(number)
                say(f"developer alice: the gate is green; merges PR #{number} (fix plan {plan})")
        main = state.environments[-1]
        done = {p.id for p in snapshot.plans if p.done}
        if fixes and not state.halted and main.state is State.COMPLETE and main.plan in done:
            sandbox.wait_for_actions(60)
            for line in _finished_runs(sandbox, reported):
                say(line)
            say(f"fix plan {main.plan} is complete in main; the halt is lifted")
            say(f"{len(reported)} workflow runs did it; nobody ran promote next")
            return 0
        person = needs_person(state, action, run.pipeline)
        test = next((e for e in state.environments if e.state is State.VALIDATING), None)
        if person and "manual" in person and test is not None and test.sha not in approved:
            try:
                say("reviewer rita: " + reviewer.record_decision(None, None, True, ""))
                approved.add(test.sha or "")
            except PromoteError as e:
                say(f"reviewer rita: not yet ({e})")
        time.sleep(max(step_ms, 100) / 1000 * 3)
    say("the rehearsal did not finish in time")
    for line in _finished_runs(sandbox, reported):
        say(line)
    return 1


def _gate_passed(github: Any, number: int) -> bool:
    head = str(github.run(github.pull(number))["head"]["sha"])
    statuses = github.run(github.statuses_of(head))
    gates = [s for s in statuses if s.get("context") == "promote/gate"]
    return bool(gates) and max(gates, key=lambda s: s["id"])["state"] == "success"


def _finished_runs(sandbox: Sandbox, reported: set[int]) -> list[str]:
    """One line per workflow run the emulator finished since the last call, with the
    transitions its ``promote next`` took."""
    if sandbox.actions is None:
        return []
    lines = []
    with sandbox.store.lock:
        overview = sandbox.actions.overview()
        logs = {
            j["id"]: sandbox.actions.log(j["id"]) or "" for r in overview["runs"] for j in r["jobs"]
        }
    for item in overview["runs"]:
        if item["status"] != "completed" or item["id"] in reported:
            continue
        reported.add(item["id"])
        why = {
            "skipped": "skipped (its job's if: is false)",
            "cancelled": "cancelled (a newer run of its concurrency group took its place)",
        }.get(item["conclusion"])
        if why is not None and item["actor"] == BOT_LOGIN:
            continue  # routine: the bot's own events' runs replaced one another
        if why is not None:
            lines.append(
                f"  actions: {item['workflow'].rsplit('/', 1)[-1]} on {item['event']} (by {item['actor']}) {why}"
            )
            continue
        took = [
            line.split(" ", 1)[1]
            for j in item["jobs"]
            for line in logs[j["id"]].splitlines()
            if re.match(r"\S+ \s*(- )?(R\d|rolled back|filed fix plan|completed plan)", line)
        ]
        what = "; ".join(render.inert(t) for t in took) or "nothing to do"
        lines.append(
            f"  actions: {item['workflow'].rsplit('/', 1)[-1]} on {item['event']} "
            f"(by {item['actor']}) {item['conclusion']}: {what}"
        )
    return lines
