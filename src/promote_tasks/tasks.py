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

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from promote_tasks import failures
from promote_tasks import ledger
from promote_tasks import render
from promote_tasks.config import load_settings
from promote_tasks.config import settings_data
from promote_tasks.config import settings_text
from promote_tasks.default_plugins.validators import DEFAULT_CHECKLIST
from promote_tasks.default_plugins.validators import change_authors
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.errors import SnapshotError
from promote_tasks.model import Action
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.model import dump_snapshot
from promote_tasks.model import load_snapshot
from promote_tasks.plugins import collect
from promote_tasks.plugins import describe
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.shell import LockBusy
from promote_tasks.shell import Run

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(body: F) -> F:
    """Every failure is one line on stderr and exit status 1, never a bare traceback: a
    PromoteError as it is, anything unforeseen named as a bug (``PROMOTE_DEBUG=1`` shows the
    traceback). A reader that closes our output early (``| head``) ends the run quietly."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exit:
            raise
        except PromoteError as e:
            raise Exit(f"promote: error: {one_line(e)}", code=1) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise Exit(code=0) from None
        except KeyboardInterrupt:
            raise Exit("promote: interrupted", code=130) from None
        except Exception as e:
            if os.environ.get("PROMOTE_DEBUG", "") not in ("", "0", "api"):
                raise
            raise Exit(
                f"promote: error: unexpected {type(e).__name__}: {one_line(e)} "
                "(a bug in promote: run with PROMOTE_DEBUG=1 for the traceback)",
                code=1,
            ) from None

    return wrapper  # type: ignore[return-value]


def seconds(option: str, value: object, default: float) -> float:
    """A positive number of seconds from a command-line option (default when not given)."""
    if value is None:
        return default
    try:
        number = float(str(value))
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise PromoteError(f"{option} expects a positive number of seconds, got {value!r}")
    return number


def milliseconds(option: str, value: object, default: int) -> int:
    """A positive whole number of milliseconds from a command-line option (default when not
    given): the sandbox's CI clock would never tick (0) or spin (negative) otherwise."""
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise PromoteError(
            f"{option} expects a positive whole number of milliseconds, got {value!r}"
        )
    return int(text)


def one_line(error: object) -> str:
    """An error as one printable line, with any token from the environment masked."""
    text = " ".join(str(error).split())
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        token = os.environ.get(name, "").strip()
        if len(token) >= 8:
            text = text.replace(token, "***")
    return render.inert(text)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's last flush must not fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def read_snapshot_file(path: str) -> Snapshot:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot {path}: {e.strerror}") from None
    return load_snapshot(text, path)


def write_snapshot_file(path: str, snapshot: Snapshot) -> None:
    try:
        Path(path).write_text(dump_snapshot(snapshot), encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot write snapshot {path}: {e.strerror}") from None


def _snapshot(run: Run, path: str | None) -> Snapshot:
    if not path:
        return run.snapshot()
    snapshot = read_snapshot_file(path)
    missing = [n for n in run.pipeline.names if n not in {e.name for e in snapshot.environments}]
    if missing:
        raise SnapshotError(f"{path}: no facts for environment {missing[0]!r} of this pipeline")
    return snapshot


def _emit(data: dict[str, Any] | None, text: str, as_json: bool) -> None:
    print(json.dumps(data, indent=2) if as_json else text, flush=True)


def _summary(markdown: str) -> None:
    """Inside GitHub Actions, append to the job's Markdown summary."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(markdown + "\n")
        except OSError as e:  # the summary is a courtesy: the work is done, say so and go on
            print(
                f"promote: warning: cannot write the job summary to {path}: {e.strerror}",
                file=sys.stderr,
            )


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
    facts = _snapshot(run, snapshot)
    if save_snapshot:
        write_snapshot_file(save_snapshot, facts)
    state, action = run.decide(facts)
    _emit(render.status_data(state, action), render.status_text(state, action), json_)
    _summary(render.status_markdown(state, action))


def step(
    run: Run, *, dry_run: bool = False, snapshot_file: str | None = None
) -> tuple[Snapshot, Action, tuple[str, ...]]:
    """One ``next``: read, decide, act (unless dry); the facts read, the action, what was done."""
    run.new_deadline()  # each next of a watch has the whole budget for talking to GitHub
    facts = _snapshot(run, snapshot_file)
    _, action = run.decide(facts)
    if dry_run or snapshot_file:
        return facts, action, tuple(f"would {e.describe()}" for e in action.effects)
    if not action.effects and not run.gates_to_write(facts):
        return facts, action, ()  # nothing to write: no lock to take
    with run.locked(facts, "next") as note:
        # Read again as the only writer: another run may have acted since the first read.
        facts = run.snapshot()
        _, action = run.decide(facts)
        did = run.act(action, facts)
    return facts, action, ((note,) if note else ()) + did


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
        _, action, did = step(Run.load(), dry_run=dry_run, snapshot_file=snapshot)
    except LockBusy as busy:
        print(f"promote: {one_line(busy)}", file=sys.stderr)
        return
    _emit(render.next_data(action, did), render.next_text(action, did), json_)
    _summary(render.next_markdown(action, did))
    if action.stop:
        raise Exit(code=1)


def needs_person(run: Run, snapshot: Snapshot, action: Action) -> str | None:
    """What a person must do before the pipeline can move, if anything."""
    if action.stop:
        return action.stop
    state, _ = run.decide(snapshot)
    for env in state.environments:
        if env.violation and env.state is not State.COMPLETE:
            return env.violation
        if env.state is State.VALIDATING:
            for verdict in env.verdicts:
                if (
                    verdict.result.value == "pending"
                    and run.settings.validators[verdict.validator].use == "manual-approval"
                ):
                    return f"{verdict.validator} in {env.name}: {verdict.summary}"
    return None


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
            facts, action, did = step(run)
        except LockBusy as busy:  # another run is moving the pipeline: wait and look again
            if time.monotonic() >= deadline:
                raise Exit(f"promote: timed out: {one_line(busy)}", code=1) from None
            print(f"promote: {one_line(busy)}", file=sys.stderr, flush=True)
            time.sleep(pause)
            continue
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
        person = needs_person(run, facts, action)
        if person:
            print(f"needs a person: {render.inert(person)}", flush=True)
            return
        if time.monotonic() >= deadline:
            raise Exit(f"promote: timed out waiting for {render.inert(action.waiting_for)}", code=1)
        if not did:
            line = f"waiting for {render.inert(action.waiting_for)}"
            print(f"\r\x1b[K{line}" if live else line, end="" if live else "\n", flush=True)
        time.sleep(pause)


def decide_manually(
    run: Run, env_name: str | None, sha: str | None, approve: bool, reason: str
) -> str:
    """Record a designated reviewer's decision on the exact sha under test.

    With the ``issue`` backend the decision is a comment on the checklist issue; with the
    ``environment`` backend it reviews the deploy run's pending deployment on GitHub.
    """
    if not env_name:
        manual = [e.name for e in run.pipeline.environments
                  if any(run.settings.validators[v].use == "manual-approval" for v in e.validators)]  # fmt: skip
        if len(manual) != 1:
            raise PromoteError("say which environment: --env NAME")
        env_name = manual[0]
    env = run.pipeline.get(env_name)
    names = [v for v in env.validators if run.settings.validators[v].use == "manual-approval"]
    if not names:
        raise PromoteError(f"{env.name} has no manual-approval validator")
    options = run.settings.validators[names[0]].options
    backend = str(options.get("backend", "issue"))
    snapshot = run.facts()  # the state is enough: the validators' own checks are not needed
    state = run.decide(snapshot)[0].env(env.name)
    waiting_state = State.DEPLOYING if backend == "environment" else State.VALIDATING
    # The checklist issue says a manual test is asked for, even when the run that opened it
    # died before it recorded the instance as validating.
    opened = backend != "environment" and snapshot.env(env.name).checklist is not None
    waiting = state.state is waiting_state or (opened and state.state is State.DEPLOYED)
    if not waiting or state.sha is None:
        label = state.state.value if state.state else "not deployed"
        raise PromoteError(f"{env.name} is not waiting for a manual test (it is {label})")
    if sha and len(sha) < 7:
        raise PromoteError(
            f"--sha {sha} is too short: give at least 7 characters of the sha you tested"
        )
    if sha and not state.sha.startswith(sha.lower()):
        raise PromoteError(
            f"{env.name} is at {state.sha[:7]}, not {sha}: decisions are bound to the exact sha"
        )
    github = run.github
    user = github.run(github.user())
    reviewers = [str(r) for r in options.get("reviewers", run.settings.reviewers)]
    if user.lower() not in {r.lower() for r in reviewers}:
        raise PromoteError(
            f"{user} is not a designated reviewer of {env.name} (reviewers: {', '.join(reviewers) or 'none'})"
        )
    if user.lower() in change_authors(github, run.settings, snapshot.env(env.name)):
        raise PromoteError(f"{user} wrote this change and cannot approve or reject it")
    verb = "approved" if approve else "rejected"
    with run.locked(snapshot, "approve" if approve else "reject", required=False):
        if backend == "environment":
            url = _review_pending_deployment(run, snapshot, env.name, state.sha, verb, reason)
        else:
            number, url, _ = github.run(
                github.checklist_issue(
                    ledger.key(env.name, state.sha),
                    ledger.checklist_title(env.name, state.sha),
                    ledger.checklist_body(DEFAULT_CHECKLIST, env.name, state.sha),
                    reviewers,
                )
            )
            github.run(github.comment(number, ledger.decision_line(approve, state.sha, reason)))
            # The comment is the record; a reviewer with read access may not close the issue.
            with contextlib.suppress(GitHubError):
                github.run(github.close_issue(number))
    return f"{verb} {env.name} at {state.sha[:7]} as {user}: {url}"


def _review_pending_deployment(
    run: Run, snapshot: Snapshot, env: str, sha: str, state: str, reason: str
) -> str:
    github = run.github
    workflow = run.settings.deploy_workflow
    waiting = [
        r for r in snapshot.env(env).runs
        if r.head_sha == sha and r.status == "waiting" and r.path.rsplit("/", 1)[-1] == workflow
    ]  # fmt: skip
    for deploy in sorted(waiting, key=lambda r: -r.id):
        pending = github.run(
            github.call("actions.get_pending_deployments_for_run", run_id=deploy.id, cache=False)
        )
        ids = [p["environment"]["id"] for p in pending or [] if p["environment"].get("name") == env]
        if ids:
            comment = reason or f"{state} through promote"
            github.run(github.call("actions.review_pending_deployments_for_run", run_id=deploy.id,
                                   environment_ids=ids, state=state, comment=comment))  # fmt: skip
            return deploy.url
    raise PromoteError(f"no deploy run of {env} at {sha[:7]} is waiting for a review")


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
    print(decide_manually(Run.load(), env, sha, True, ""))


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
    print(decide_manually(Run.load(), env, sha, False, reason))


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
    request, snapshot = failures.request_rollback(run, env, to, strategy)
    if dry_run:
        _emit(request.data(), request.text(), json_)
        return
    with run.locked(snapshot, "rollback"):
        did = failures.perform_request(run, request, snapshot)
    text = f"rolled back {request.environment} ({render.inert(request.reason)})\n" + "\n".join(
        f"  - {render.inert(d)}" for d in did
    )
    _emit({**request.data(), "did": list(did)}, text, json_)


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
        _gateable(run, facts, number)
    pending = [
        g for g in run.gates_to_write(facts) if number is None or g.sha in heads(facts, number)
    ]
    try:
        with run.locked(facts, "gate", required=False) if pending else contextlib.nullcontext():
            written = run.write_gates(facts, only=number)
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
    _emit(data, "\n".join(lines) or "no open pull requests into environment branches", json_)


def heads(facts: Snapshot, number: int) -> set[str]:
    """The head commit of open PR ``number`` (a gate is a status on it)."""
    return {p.head_sha for p in facts.open_pulls if p.number == number}


def _gateable(run: Run, facts: Snapshot, number: int) -> None:
    """PR ``number`` is open and targets an environment branch; else a one-line error."""
    found = next((p for p in facts.open_pulls if p.number == number), None)
    if found is not None:
        base = found.base_ref
    else:
        github = run.github
        try:
            pull = github.run(github.pull(number))
        except GitHubError as e:
            if e.status == 404:
                raise PromoteError(f"no pull request #{number} in {facts.repository}") from None
            raise
        if pull.get("merged_at") or pull.get("state") != "open":
            state = "merged" if pull.get("merged_at") else "closed"
            raise PromoteError(f"pull request #{number} is {state}: only open PRs are gated")
        base = pull["base"]["ref"]
    branches = [e.branch for e in run.pipeline.environments]
    if base not in branches:
        raise PromoteError(
            f"pull request #{number} targets {base!r}, not an environment branch "
            f"({', '.join(branches)}): the gate does not apply"
        )


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
    _emit(data, text, json_)


@task(name="config", help={"json": "print one JSON object"})
@reports_errors
def config(c: Context, json_: bool = False) -> None:
    """Show the settings in force, the file they came from and the resolved pipeline."""
    run = Run.load()
    data = settings_data(run.settings, run.pipeline)
    _emit(data, settings_text(data), json_)


@task(name="demo", help={"step-ms": "simulated CI step length in ms (default 30)"})
@reports_errors
def demo(c: Context, step_ms: int | None = None) -> None:
    """Run the whole journey on a built-in sandbox: no token, no network."""
    from promote_tasks.demo import run_demo

    raise Exit(code=run_demo(step_ms=milliseconds("--step-ms", step_ms, 30)))


promote = Collection(
    "promote", status, next_, watch, approve, reject, rollback, gate, plugins_, config, demo
)
