"""The ``promote`` invoke collection, tasks only (``session.py`` reads, ``act.py`` writes,
``console.py`` shows). Named ``tasks``: ``from promote_tasks import promote`` is the collection."""

from __future__ import annotations

import os
import sys
import time

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from promote_tasks import render
from promote_tasks.act import perform_request
from promote_tasks.config import load_settings
from promote_tasks.config import settings_data
from promote_tasks.config import settings_text
from promote_tasks.console import BUDGET
from promote_tasks.console import HALTED
from promote_tasks.console import PERSON
from promote_tasks.console import Waiting
from promote_tasks.console import announce
from promote_tasks.console import emit
from promote_tasks.console import milliseconds
from promote_tasks.console import number
from promote_tasks.console import one_line
from promote_tasks.console import reports_errors
from promote_tasks.console import seconds
from promote_tasks.console import server_url
from promote_tasks.console import show
from promote_tasks.console import summary
from promote_tasks.doctor import examine
from promote_tasks.doctor import healthy
from promote_tasks.doctor import report
from promote_tasks.errors import PromoteError
from promote_tasks.machine import needs_person
from promote_tasks.plugins import collect
from promote_tasks.plugins import describe
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.schemas import schema_text
from promote_tasks.session import LockBusy
from promote_tasks.session import PullClosed
from promote_tasks.session import Run
from promote_tasks.session import event_pull
from promote_tasks.session import write_snapshot_file
from promote_tasks.targets import request_rollback

FAILING = ("R3", "R6", "R9")  #: a step taking one of these ended on a failure it recorded


@task(
    name="status",
    help={
        "json": "print one JSON object instead of the pipeline view",
        "snapshot": "derive from a saved snapshot file instead of GitHub",
        "save-snapshot": "also write the facts read to this file (attach it to bug reports)",
        "exit-status": "exit 3 while halted, 8 while a person must act (0 otherwise)",
    },
)
@reports_errors
def status(
    c: Context,
    json_: bool = False,
    snapshot: str | None = None,
    save_snapshot: str | None = None,
    exit_status: bool = False,
) -> None:
    """Show each environment's state, derived from GitHub.

    Examples:
      promote status
      promote status --json
      promote status --exit-status || echo "halted or waiting for a person"
    """
    run = Run.load()
    facts = run.snapshot_from(snapshot) if snapshot else run.snapshot()
    if save_snapshot:
        write_snapshot_file(save_snapshot, facts)
    state, action = run.decide(facts)
    requests = run.requests()
    data = {**render.status_data(state, action), "requests": requests}
    emit(data, show(render.status_text(state, action) + render.requests_text(requests)), json_)
    summary(
        render.status_markdown(state, action, server_url()) + render.requests_markdown(requests)
    )
    announce(state)
    if exit_status:
        if state.halted:
            raise Exit(code=HALTED)
        if needs_person(state, action, run.pipeline):
            raise Exit(code=PERSON)


@task(
    name="next",
    help={
        "json": "print one JSON object describing the step",
        "dry-run": "say what the next step would be, write nothing",
        "snapshot": "decide from a saved snapshot file (implies --dry-run)",
        "until-rest": "take steps until the pipeline rests, waits or needs a person",
        "budget": "seconds --until-rest may take (default 300; exit 4 when it runs out)",
    },
)
@reports_errors
def next_(
    c: Context,
    json_: bool = False,
    dry_run: bool = False,
    snapshot: str | None = None,
    until_rest: bool = False,
    budget: float | None = None,
) -> None:
    """Take exactly one step of the Promote machine and say what it did.

    Exit status: 0 done or resting, 1 error, 3 when the step recorded a failure (it halts),
    4 when --until-rest ran out of --budget.

    Examples:
      promote next
      promote next --dry-run --json
      promote next --until-rest --budget 600   # as the Actions workflow runs it
    """
    deadline = time.monotonic() + seconds("--budget", budget, 300.0)
    run = Run.load()
    steps = []
    while True:
        try:
            taken = run.step(dry_run=dry_run, snapshot_file=snapshot)
        except LockBusy as busy:
            print(f"promote: {one_line(busy)}", file=sys.stderr)
            return
        steps.append(taken)
        action, did = taken.action, taken.did
        if not json_ or not until_rest:
            emit(render.next_data(action, did), show(render.next_text(action, did)), json_)
        summary(render.next_markdown(action, did))
        moved = action.transition is not None and not action.stop
        if not until_rest or dry_run or snapshot or not moved:
            break
        if time.monotonic() >= deadline:
            raise Exit(f"promote: the --budget ran out after {len(steps)} steps", code=BUDGET)
    if json_ and until_rest:
        emit({"steps": [render.next_data(s.action, s.did) for s in steps]}, "", True)
    announce(steps[-1].state)
    if steps[-1].action.stop:
        raise Exit(code=1)
    if any(s.action.transition in FAILING for s in steps if not dry_run and not snapshot):
        raise Exit(code=HALTED)


@task(
    name="watch",
    help={
        "interval": "seconds between steps while waiting (default 10)",
        "timeout": "give up after this many seconds (default 1800; exit 4)",
    },
)
@reports_errors
def watch(c: Context, interval: float | None = None, timeout: float | None = None) -> None:
    """Run `next` until the pipeline rests or needs a person.

    Exit status: 0 rests, 1 error or a failed rollback, 3 halted (a failure is unresolved),
    4 --timeout ran out, 8 a person must act (a manual test, a violation).

    Examples:
      promote watch
      promote watch --interval 30 --timeout 3600
    """
    pause = seconds("--interval", interval, 10.0)
    deadline = time.monotonic() + seconds("--timeout", timeout, 1800.0)
    run = Run.load()
    waiting = Waiting(sys.stdout)
    while True:
        try:
            taken = run.step()
        except LockBusy as busy:  # another run is moving the pipeline: wait and look again
            if time.monotonic() >= deadline:
                raise Exit(f"promote: timed out: {one_line(busy)}", code=BUDGET) from None
            waiting.line(one_line(busy))
            time.sleep(pause)
            continue
        action, did = taken.action, taken.did
        if action.transition or did:
            waiting.clear()
            print(show(render.next_text(action, did)), flush=True)
        if action.stop:
            raise Exit(f"promote: stopped: {render.inert(action.stop)}", code=1)
        if action.transition is not None:
            continue  # something moved: look again at once
        # Nothing moved (at most verdicts or gates were recorded): rest, hand over, or wait.
        person = needs_person(taken.state, action, run.pipeline)
        if action.waiting_for is None or person:
            waiting.clear()
            announce(taken.state)
            if person:
                print(f"needs a person: {render.inert(person)}", flush=True)
                raise Exit(code=PERSON)
            if taken.state.halted:
                print(f"halted: fix plan {taken.state.fix_plan or '(not filed yet)'}", flush=True)
                raise Exit(code=HALTED)
            print("the pipeline rests", flush=True)
            return
        if time.monotonic() >= deadline:
            raise Exit(
                f"promote: timed out waiting for {render.inert(action.waiting_for)}", code=BUDGET
            )
        if not did:
            waiting.line(f"waiting for {render.inert(action.waiting_for)}")
        time.sleep(pause)


@task(
    name="approve",
    help={
        "env": "the environment tested (default: the one with a manual test)",
        "sha": "the sha you tested (default: the head)",
    },
)
@reports_errors
def approve(c: Context, env: str | None = None, sha: str | None = None) -> None:
    """Record a designated reviewer's approval of the manual test.

    Examples:
      promote approve
      promote approve --env test --sha 1a2b3c4
    """
    print(Run.load().record_decision(env, sha, True, ""))


@task(
    name="reject",
    help={"env": "the environment tested", "sha": "the sha you tested", "reason": "why (required)"},
)
@reports_errors
def reject(
    c: Context, env: str | None = None, sha: str | None = None, reason: str | None = None
) -> None:
    """Record a designated reviewer's rejection: the instance fails.

    Examples:
      promote reject --reason "checkout shows the wrong price"
      promote reject --env test --sha 1a2b3c4 --reason "login loops"
    """
    if not reason:
        raise PromoteError("say why: --reason TEXT")
    print(Run.load().record_decision(env, sha, False, reason))


@task(
    name="rollback",
    help={
        "env": "the environment to roll back (required)",
        "to": "the commit to go back to (default: the newest known-good before the head)",
        "strategy": "redeploy, revert, reset or a plugin's (default: the environment's)",
        "dry-run": "say what would happen, write nothing",
        "json": "print one JSON object",
    },
)
@reports_errors
def rollback(
    c: Context,
    env: str | None = None,
    to: str | None = None,
    strategy: str | None = None,
    dry_run: bool = False,
    json_: bool = False,
) -> None:
    """Roll an environment back by hand (the same rollback as R9), then halt for a fix plan.

    Commits that skipped the way in (a violation) are reverted out of the branch instead:
    no failure, no fix plan, no halt.

    Examples:
      promote rollback --env test --dry-run
      promote rollback --env test
      promote rollback --env main --to 1a2b3c4 --strategy revert
    """
    run = Run.load()
    request, snapshot = request_rollback(run, env, to, strategy)
    if dry_run:
        emit(request.data(), request.text(), json_)
        return
    with run.locked(snapshot, "rollback"):
        did = perform_request(run, request, snapshot)
    text = f"rolled back {request.environment} ({render.inert(request.reason)})\n" + "\n".join(
        f"  - {render.inert(d)}" for d in did
    )
    emit({**request.data(), "did": render.did_data(did)}, text, json_)


@task(
    name="gate",
    help={
        "pr": "gate this pull request only (its number)",
        "json": "print one JSON object",
    },
)
@reports_errors
def gate(c: Context, pr: str | None = None, json_: bool = False) -> None:
    """The pre-merge gate: write `promote/gate` on open PRs into environment branches.

    Examples:
      promote gate
      promote gate --pr 42 --json   # as the gate workflow runs it
    """
    number = None
    if pr is not None:
        if not pr.lstrip("#").isdigit():
            raise PromoteError(f"--pr expects a pull request number, got {pr!r}")
        number = int(pr.lstrip("#"))
    run = Run.load()
    facts = run.facts()
    if number is not None:
        try:
            run.gateable(facts, number)
        except PullClosed as closed:
            if number != event_pull(os.environ):
                raise
            # The gate job of this PR's own event, run after a person merged or closed it.
            print(f"promote: {one_line(closed)}; nothing to gate", file=sys.stderr)
            return
    try:
        written = run.gate(facts, number)
    except LockBusy as busy:  # the holder refreshes every gate itself
        print(f"promote: {one_line(busy)}", file=sys.stderr)
        return
    data = {
        "repository": facts.repository,
        "gates": [
            {
                "pull": g.pull,
                "sha": g.sha,
                "state": g.state,
                "description": g.description,
                "written": changed,
            }
            for g, changed in written
        ],
    }
    lines = [
        f"#{g.pull} at {g.sha[:7]}: {g.state} ({render.inert(g.description)})"
        + ("" if changed else ", already")
        for g, changed in written
    ]
    emit(data, "\n".join(lines) or "no open pull requests into environment branches", json_)


@task(
    name="adopt",
    help={
        "env": "only this environment (default: every one)",
        "dry_run": "say what would be adopted, write nothing",
    },
)
@reports_errors
def adopt(c: Context, env: str | None = None, dry_run: bool = False) -> None:
    """Start from today: record each environment's head as its known-good baseline.

    Only where promote never validated anything, so nothing it judged is overruled. Run it
    once, after committing what `promote init` wrote on every environment branch.

    Examples:
      promote adopt --dry-run
      promote adopt
      promote adopt --env main
    """
    print("\n".join(Run.load().adopt(env, dry_run=dry_run)))


@task(name="plugins", help={"json": "print one JSON object"})
@reports_errors
def plugins_(c: Context, json_: bool = False) -> None:
    """List the loaded plugins and what each contributes.

    Examples:
      promote plugins
      promote plugins --json
    """
    settings = load_settings()
    pm = make_plugin_manager(plugins_dir=settings.plugins_path())
    registry = collect(pm, settings)
    contributed: dict[str, list[str]] = {}
    for key, owner in registry.owners.items():
        contributed.setdefault(owner, []).append(key)
    data = {
        "plugins": [
            {"name": name, "hooks": list(hooks), "contributes": sorted(contributed.get(name, []))}
            for name, hooks in describe(pm)
        ]
    }
    text = "\n".join(
        f"{p['name']}: {', '.join(p['contributes']) or ', '.join(p['hooks'])}"
        for p in data["plugins"]
    )
    emit(data, text, json_)


@task(name="config", help={"json": "print one JSON object"})
@reports_errors
def config(c: Context, json_: bool = False) -> None:
    """Show the settings in force, the file they came from and the resolved pipeline.

    Examples:
      promote config
      promote config --json
    """
    run = Run.load()
    data = settings_data(run.settings, run.pipeline)
    emit(data, settings_text(data), json_)


@task(name="schema", positional=["name"], help={"name": "status, next, gate, doctor or rollback"})
@reports_errors
def schema(c: Context, name: str | None = None) -> None:
    """Print the JSON Schema of a command's --json output.

    Examples:
      promote schema status
      promote schema next > next.schema.json
    """
    print(schema_text(name))


@task(
    name="init",
    help={
        "dry-run": "list what would be written, write nothing",
        "force": "overwrite files that differ from the templates (settings are never rewritten)",
    },
)
@reports_errors
def init(c: Context, dry_run: bool = False, force: bool = False) -> None:
    """Write the workflows, checklist, settings and plan folders promote needs on GitHub.

    Files that exist are kept unless --force; running it again changes nothing.

    Examples:
      promote init --dry-run
      promote init
      promote init --force   # back to the shipped workflow templates
    """
    from pathlib import Path

    from promote_tasks import init as setup

    root = setup.repository_root(Path.cwd())
    items = setup.plan(root, force=force)
    if not dry_run:
        setup.write(root, items)
    print(setup.report(items, dry_run=dry_run))


@task(
    name="demo",
    help={
        "step-ms": "simulated CI step length in ms (default 30; 100 with --actions)",
        "actions": "run the workflows promote init writes in the sandbox: nobody runs next",
    },
)
@reports_errors
def demo(c: Context, step_ms: int | None = None, actions: bool = False) -> None:
    """Run the whole journey on a built-in sandbox: no token, no network.

    With --actions, the sandbox runs the workflows `promote init` writes on its own events
    (a rehearsal of the setup on GitHub): people only merge their PRs and approve.

    Examples:
      promote demo
      promote demo --step-ms 100
      promote demo --actions
    """
    from promote_tasks.demo import run_actions_demo
    from promote_tasks.demo import run_demo

    if actions:
        raise Exit(code=run_actions_demo(step_ms=milliseconds("--step-ms", step_ms, 100)))
    raise Exit(code=run_demo(step_ms=milliseconds("--step-ms", step_ms, 30)))


@task(
    name="sandbox",
    positional=["command"],
    help={
        "command": "serve: seed a repository and serve it until interrupted",
        "port": "TCP port on 127.0.0.1 (default 0: any free port)",
        "dir": "where to keep the repositories (default: a temporary directory)",
        "scenario": "a scenario JSON file (what CI and the merge bot do)",
        "latency-ms": "delay every API answer by this many ms",
        "fault-rate": "the share of API requests to fault, 0 to 1",
        "seed": "the seed for fault injection",
        "step-ms": "the CI step period in ms (0: CI moves only when told)",
        "retry-after": "the Retry-After seconds of rate-limit faults",
        "actions": "also run the repository's own workflow files (the Actions emulator)",
    },
)
@reports_errors
def sandbox(
    c: Context,
    command: str | None = None,
    port: int | None = None,
    dir: str | None = None,
    scenario: str | None = None,
    latency_ms: int | None = None,
    fault_rate: float | None = None,
    seed: int | None = None,
    step_ms: int | None = None,
    retry_after: int | None = None,
    actions: bool = False,
) -> None:
    """A local GitHub to rehearse on: serve prints KEY=VALUE lines, then READY.

    Examples:
      promote sandbox serve
      promote sandbox serve --port 8765 --scenario failing-test.json
      promote sandbox serve --actions   # runs .github/workflows/*.yml on its events
    """
    from pathlib import Path

    from promote_sandbox.cli import serve
    from promote_sandbox.core import DEFAULT_STEP_MS

    if command != "serve":
        raise PromoteError(f"sandbox: say what to do: serve (not {command!r})" if command
                           else "sandbox: say what to do: promote sandbox serve")  # fmt: skip
    code = serve(
        port=int(number("--port", port, 0)),
        directory=Path(dir) if dir else None,
        scenario=Path(scenario) if scenario else None,
        latency_ms=int(number("--latency-ms", latency_ms, 0)),
        fault_rate=number("--fault-rate", fault_rate, 0.0, whole=False),
        seed=int(number("--seed", seed, 0)),
        step_ms=int(number("--step-ms", step_ms, DEFAULT_STEP_MS)),
        retry_after=int(number("--retry-after", retry_after, 1)),
        actions=actions,
    )
    if code:
        raise Exit(code=1)


@task(name="doctor", help={"json": "print one JSON object"})
@reports_errors
def doctor(c: Context, json_: bool = False) -> None:
    """Check the repository is ready: token, branches and their order, workflows, reviewers.

    Read-only. Each check is ✓ or ✗ with the fix in one line; a warning (!) does not fail.
    Exits 1 when any check fails.

    Examples:
      promote doctor
      promote doctor --json
    """
    run = Run.load()
    checks = examine(run)
    ok = healthy(checks)
    data = {"repository": run.github.connection.repository, "ok": ok}
    emit({**data, "checks": [check.data() for check in checks]}, show(report(checks)), json_)
    if not ok:
        raise Exit(code=1)


promote = Collection(
    "promote",
    status,
    next_,
    watch,
    approve,
    reject,
    rollback,
    gate,
    adopt,
    plugins_,
    config,
    schema,
    doctor,
    init,
    demo,
    sandbox,
)
