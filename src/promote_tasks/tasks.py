"""The ``promote`` invoke collection: status, next, watch, approve, reject, plugins, demo.

The module is ``tasks`` so that ``from promote_tasks import promote`` always means the
collection (a submodule named ``promote`` would shadow it once imported).

Tasks are thin: settings → plugins → snapshot → derive → decide → render / act. A user's
``tasks.py`` adds the collection in two lines::

    from invoke import Collection
    from promote_tasks import promote

    ns = Collection(promote)
"""

from __future__ import annotations

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
from promote_tasks.console import emit
from promote_tasks.console import milliseconds
from promote_tasks.console import one_line
from promote_tasks.console import reports_errors
from promote_tasks.console import seconds
from promote_tasks.console import summary
from promote_tasks.errors import PromoteError
from promote_tasks.machine import needs_person
from promote_tasks.plugins import collect
from promote_tasks.plugins import describe
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.session import LockBusy
from promote_tasks.session import Run
from promote_tasks.session import write_snapshot_file
from promote_tasks.targets import request_rollback


@task(
    name="status",
    help={
        "json": "print one JSON object instead of the pipeline view",
        "snapshot": "derive from a saved snapshot file instead of GitHub",
        "save-snapshot": "also write the facts read to this file (attach it to bug reports)",
    },
)
@reports_errors
def status(
    c: Context, json_: bool = False, snapshot: str | None = None, save_snapshot: str | None = None
) -> None:
    """Show each environment's state, derived from GitHub."""
    run = Run.load()
    facts = run.snapshot_from(snapshot) if snapshot else run.snapshot()
    if save_snapshot:
        write_snapshot_file(save_snapshot, facts)
    state, action = run.decide(facts)
    emit(render.status_data(state, action), render.status_text(state, action), json_)
    summary(render.status_markdown(state, action))


@task(
    name="next",
    help={
        "json": "print one JSON object describing the step",
        "dry-run": "say what the next step would be, write nothing",
        "snapshot": "decide from a saved snapshot file (implies --dry-run)",
    },
)
@reports_errors
def next_(
    c: Context, json_: bool = False, dry_run: bool = False, snapshot: str | None = None
) -> None:
    """Take exactly one step of the Promote machine and say what it did."""
    try:
        taken = Run.load().step(dry_run=dry_run, snapshot_file=snapshot)
    except LockBusy as busy:
        print(f"promote: {one_line(busy)}", file=sys.stderr)
        return
    action, did = taken.action, taken.did
    emit(render.next_data(action, did), render.next_text(action, did), json_)
    summary(render.next_markdown(action, did))
    if action.stop:
        raise Exit(code=1)


@task(
    name="watch",
    help={
        "interval": "seconds between steps while waiting (default 10)",
        "timeout": "give up after this many seconds (default 1800)",
    },
)
@reports_errors
def watch(c: Context, interval: float | None = None, timeout: float | None = None) -> None:
    """Run `next` until the pipeline rests or needs a person."""
    pause = seconds("--interval", interval, 10.0)
    deadline = time.monotonic() + seconds("--timeout", timeout, 1800.0)
    run = Run.load()
    live = sys.stdout.isatty()
    while True:
        try:
            taken = run.step()
        except LockBusy as busy:  # another run is moving the pipeline: wait and look again
            if time.monotonic() >= deadline:
                raise Exit(f"promote: timed out: {one_line(busy)}", code=1) from None
            print(f"promote: {one_line(busy)}", file=sys.stderr, flush=True)
            time.sleep(pause)
            continue
        action, did = taken.action, taken.did
        if action.transition or did:
            if live:
                print("\r\x1b[K", end="")
            print(render.next_text(action, did), flush=True)
        if action.stop:
            raise Exit(f"promote: stopped: {render.inert(action.stop)}", code=1)
        if action.transition is not None:
            continue  # something moved: look again at once
        # Nothing moved (at most verdicts or gates were recorded): rest, hand over, or wait.
        if action.waiting_for is None:
            print("the pipeline rests", flush=True)
            return
        person = needs_person(taken.state, action, run.pipeline)
        if person:
            print(f"needs a person: {render.inert(person)}", flush=True)
            return
        if time.monotonic() >= deadline:
            raise Exit(f"promote: timed out waiting for {render.inert(action.waiting_for)}", code=1)
        if not did:
            line = f"waiting for {render.inert(action.waiting_for)}"
            print(f"\r\x1b[K{line}" if live else line, end="" if live else "\n", flush=True)
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
    """Record a designated reviewer's approval of the manual test."""
    print(Run.load().record_decision(env, sha, True, ""))


@task(
    name="reject",
    help={"env": "the environment tested", "sha": "the sha you tested", "reason": "why (required)"},
)
@reports_errors
def reject(
    c: Context, env: str | None = None, sha: str | None = None, reason: str | None = None
) -> None:
    """Record a designated reviewer's rejection: the instance fails."""
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
    """Roll an environment back by hand (the same rollback as R9), then halt for a fix plan."""
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
    emit({**request.data(), "did": list(did)}, text, json_)


@task(
    name="gate",
    help={
        "pr": "gate this pull request only (its number)",
        "json": "print one JSON object",
    },
)
@reports_errors
def gate(c: Context, pr: str | None = None, json_: bool = False) -> None:
    """The pre-merge gate: write `promote/gate` on open PRs into environment branches."""
    number = None
    if pr is not None:
        if not pr.lstrip("#").isdigit():
            raise PromoteError(f"--pr expects a pull request number, got {pr!r}")
        number = int(pr.lstrip("#"))
    run = Run.load()
    facts = run.facts()
    if number is not None:
        run.gateable(facts, number)
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


@task(name="plugins", help={"json": "print one JSON object"})
@reports_errors
def plugins_(c: Context, json_: bool = False) -> None:
    """List the loaded plugins and what each contributes."""
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
    """Show the settings in force, the file they came from and the resolved pipeline."""
    run = Run.load()
    data = settings_data(run.settings, run.pipeline)
    emit(data, settings_text(data), json_)


@task(name="demo", help={"step-ms": "simulated CI step length in ms (default 30)"})
@reports_errors
def demo(c: Context, step_ms: int | None = None) -> None:
    """Run the whole journey on a built-in sandbox: no token, no network."""
    from promote_tasks.demo import run_demo

    raise Exit(code=run_demo(step_ms=milliseconds("--step-ms", step_ms, 30)))


promote = Collection(
    "promote", status, next_, watch, approve, reject, rollback, gate, plugins_, config, demo
)
