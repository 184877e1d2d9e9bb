"""The sandbox's Actions emulator: it runs the repository's own workflow files on its events.

Which files: every ``.github/workflows/*.yml`` / ``*.yaml`` except ``deploy.yml`` and
``smoke.yml``, which the simulated CI (:mod:`promote_sandbox.ci`) plays by its scenario. The
files are read at the event's commit as GitHub does: the default branch's tip for
``schedule``, ``issue_comment``, ``workflow_run`` and ``pull_request_target`` (the base
branch), the dispatched ref for ``workflow_dispatch``, the pushed commit for ``push``, the merge
commit for ``pull_request`` and the deployed sha for ``deployment_status``.

Events and their filters: ``push`` (``branches``, ``branches-ignore``, ``paths``,
``paths-ignore``), ``pull_request`` and ``pull_request_target`` (``types``: opened,
synchronize, closed; ``branches`` = the base), ``issue_comment`` (created), ``deployment_status``,
``workflow_run`` (``workflows`` by name, ``types``: completed), ``schedule`` (cron on the
sandbox's clock: one CI step is a minute, or ``steps_per_minute`` steps) and ``workflow_dispatch`` (``inputs`` with defaults
and choices). GitHub's rule for its own token holds: an event caused by a write made with a
job's ``GITHUB_TOKEN`` (the ``github-actions[bot]`` identity) starts no workflow, except
``workflow_dispatch``; what the Environments feature does for a deploy job still does. A PR
it opens or updates gets ``pull_request`` runs that wait for a person's approval, which the
sandbox never gives: they conclude ``action_required`` without running.

A run: workflow-level ``concurrency:`` (one running per group; a newer pending run replaces an
older pending one, or cancels the running one with ``cancel-in-progress: true``), jobs in
``needs:`` order with job-level ``if:``, ``timeout-minutes`` (wall-clock minutes, scaled by
``seconds_per_minute``), ``env:`` at workflow, job and step level, step ``if:``, ``id``,
``continue-on-error``, ``working-directory``, ``shell`` (bash, sh, python), ``$GITHUB_OUTPUT``,
``$GITHUB_ENV``, ``$GITHUB_PATH`` and ``$GITHUB_STEP_SUMMARY``. Expressions: see
:mod:`promote_sandbox.expressions`. The token is ``secrets.GITHUB_TOKEN`` / ``github.token``
only, as on GitHub: it is not in a step's environment unless the workflow puts it there.

Stood in for, not run: ``actions/checkout`` (a full clone of the sandbox repository at the
event's commit, or ``with.ref``, into the workspace; no credentials are kept),
``actions/setup-python`` (the interpreter running the sandbox is on the PATH), and any ``run:``
step that pip-installs promote-tasks (from git or from the action's path): instead the
``promote`` of the interpreter running the sandbox is put on the PATH (and in
``$RUNNER_TEMP/promote-venv/bin``, where the action expects it), because installing the tool
for every run would take longer than the run. ``uses: ./…`` runs a composite action from the
workspace and ``uses: <owner>/promote-tasks@<ref>`` this repository's ``action.yml``, step by
step. Any other ``uses:`` fails its step, saying so.

Runs are workflow runs of the REST API (``GET …/actions/runs``), their jobs are jobs and
check runs, and a job's log is ``GET …/actions/jobs/{job_id}/logs`` (a redirect to plain text
under ``/_sandbox/logs/``, as GitHub redirects to its log storage).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import yaml

from promote_sandbox.expressions import ExpressionError
from promote_sandbox.expressions import condition
from promote_sandbox.expressions import substitute
from promote_sandbox.expressions import to_text
from promote_sandbox.server import ApiError
from promote_sandbox.store import BOT_LOGIN
from promote_sandbox.store import CheckRun
from promote_sandbox.store import CheckSuite
from promote_sandbox.store import Comment
from promote_sandbox.store import Deployment
from promote_sandbox.store import DeploymentStatus
from promote_sandbox.store import Issue
from promote_sandbox.store import Job
from promote_sandbox.store import Run
from promote_sandbox.store import Step
from promote_sandbox.store import Workflow

if TYPE_CHECKING:
    from promote_sandbox.ci import CI
    from promote_sandbox.shapes import Shapes
    from promote_sandbox.store import Store

WORKFLOWS_DIR = ".github/workflows"
KIND = "actions"  # Run.kind of an emulated run (the simulated CI's are deploy / smoke)
DEFAULT_TIMEOUT_MINUTES = 360
PR_TYPES_DEFAULT = ("opened", "synchronize", "reopened")
_INSTALLS_PROMOTE = re.compile(
    r"pip\b[^\n]*\binstall\b[^\n]*(promote-tasks|PROMOTE_ACTION_PATH)", re.IGNORECASE
)
_PROMOTE_ACTION = re.compile(r"^[\w.-]+/promote-tasks@[\w./-]+$")
_MAX_LOG = 200_000


class WorkflowError(ValueError):
    """A workflow file the emulator cannot run; the message names the file."""


@dataclass
class WorkflowFile:
    path: str
    name: str
    on: dict[str, Any]
    data: dict[str, Any]


@dataclass
class Event:
    """What happened, as a workflow sees it."""

    name: str
    payload: dict[str, Any]
    actor: str
    sha: str  # GITHUB_SHA, and where the workflow files are read
    ref: str  # GITHUB_REF
    head_branch: str | None
    head_sha: str
    action: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # for the filters: branch, paths, ...


@dataclass
class Emulated:
    """One emulated workflow run: the store's Run plus what the emulator needs."""

    run: Run
    workflow: WorkflowFile
    event: Event
    group: str | None
    cancel_in_progress: bool
    logs: dict[int, list[str]] = field(default_factory=dict)  # job id -> lines
    summary: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    process: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None


class Actions:
    """The emulator. Triggers are called with the store lock held; jobs run in threads of
    their own, taking the lock only to record what happened."""

    def __init__(
        self,
        store: Store,
        shapes: Shapes,
        ci: CI,
        root: Path,
        *,
        python: str = sys.executable,
        seconds_per_minute: float = 60.0,
        steps_per_minute: int = 1,
        max_parallel: int = 2,
    ) -> None:
        self.store = store
        self.shapes = shapes
        self.ci = ci
        self.root = root
        self.python = python
        self.seconds_per_minute = seconds_per_minute
        self.steps_per_minute = max(1, steps_per_minute)
        self.steps = 0
        self.max_parallel = max_parallel
        self.runs: dict[int, Emulated] = {}
        self.workflows: dict[str, Workflow] = {}  # path -> the store's Workflow
        self.suppressed: list[str] = []  # events the GITHUB_TOKEN rule kept from starting runs
        self.errors: list[str] = []  # workflow files that could not be read
        self.minute = 0  # the sandbox's clock for schedule: one CI step is one minute
        self.epoch = int(store.created_at // 60 * 60)
        self._parsed: dict[str, WorkflowFile | WorkflowError] = {}  # blob sha -> parsed
        self._stopped = False
        self.quiet = False  # no run is created while set (the sandbox adopting a setup commit)
        self.token = store.bot_token
        store.push_listeners.append(self.on_push)
        store.status_listeners.append(self.on_deployment_status)
        store.event_listeners.append(self.on_event)
        ci.run_listeners.append(self.on_run_completed)
        ci.tick_listeners.append(self.tick)

    # -- reading workflow files ----------------------------------------------------------------

    def files(self, sha: str) -> list[WorkflowFile]:
        """The workflow files the emulator runs, as they are at commit ``sha``."""
        from promote_sandbox.ci import DEPLOY_PATH
        from promote_sandbox.ci import SMOKE_PATH

        repo = self.store.repo
        entry = repo.tree_entry(sha, WORKFLOWS_DIR)
        if entry is None or entry.type != "tree":
            return []
        found = []
        for item in sorted(repo.ls_tree(entry.sha), key=lambda e: e.path):
            path = f"{WORKFLOWS_DIR}/{item.path}"
            if item.type != "blob" or not item.path.endswith((".yml", ".yaml")):
                continue
            if path in (DEPLOY_PATH, SMOKE_PATH):
                continue
            parsed = self._parsed.get(item.sha)
            if parsed is None:
                parsed = _parse(path, repo.read_blob(item.sha))
                self._parsed[item.sha] = parsed
            if isinstance(parsed, WorkflowError):
                if str(parsed) not in self.errors:
                    self.errors.append(str(parsed))
                continue
            found.append(parsed)
            self._workflow(parsed)
        return found

    def refresh(self) -> None:
        """Register the default branch's workflow files (GitHub lists them, run or not)."""
        default = self.store.branch_sha(self.store.default_branch)
        if default is not None:
            self.files(default)

    def _workflow(self, wf: WorkflowFile) -> Workflow:
        known = self.workflows.get(wf.path)
        if known is None:
            known = Workflow(self.store.new_id(), wf.name, wf.path, self.store.now())
            self.store.workflows[known.id] = known
            self.workflows[wf.path] = known
        known.name = wf.name
        spec = wf.on.get("workflow_dispatch")
        known.dispatch_inputs = (
            dict((spec or {}).get("inputs") or {}) if isinstance(spec, dict) else {}
        )
        return known

    def owns(self, workflow: Workflow) -> bool:
        return self.workflows.get(workflow.path) is workflow

    # -- triggers (store lock held) ------------------------------------------------------------

    def _by_token(self, actor: str, what: str, *, by_actions: bool = False) -> bool:
        """GitHub's rule: events caused with GITHUB_TOKEN start no workflow run."""
        if actor == BOT_LOGIN and not by_actions:
            self.suppressed.append(what)
            return True
        return False

    def on_push(self, branch: str, old: str | None, new: str, actor: str) -> None:
        if self._by_token(actor, f"push to {branch}"):
            return
        repo = self.store.repo
        paths = repo.changed_paths(old, new)
        self.fire(
            Event(
                "push",
                {
                    "ref": f"refs/heads/{branch}",
                    "before": old or "0" * 40,
                    "after": new,
                    "created": old is None,
                    "deleted": False,
                    "forced": bool(old) and not repo.is_ancestor(old or "", new),
                    "head_commit": self.shapes.simple_commit(repo.commit(new)),
                    "pusher": {"name": actor, "email": self.store.users[actor].email},
                    **self._common(actor),
                },
                actor,
                new,
                f"refs/heads/{branch}",
                branch,
                new,
                facts={"branch": branch, "paths": paths},
            )
        )

    def on_event(self, name: str, actor: str, facts: dict[str, Any]) -> None:
        """Pull-request and issue-comment events the store announces."""
        if name == "pull_request":
            self._pull_request(facts["issue"], str(facts["action"]), actor)
        elif name == "issue_comment":
            self._issue_comment(facts["issue"], facts["comment"], actor)

    def _pull_request(self, issue: Issue, action: str, actor: str) -> None:
        pull = issue.pull
        assert pull is not None
        # GitHub: a PR opened or updated with GITHUB_TOKEN gets pull_request runs that wait
        # for a person's approval (the sandbox has no approving: they end action_required);
        # every other event it causes starts nothing.
        held = actor == BOT_LOGIN and action in PR_TYPES_DEFAULT
        if not held and self._by_token(actor, f"pull_request {action} #{issue.number}"):
            return
        payload = {
            "action": action,
            "number": issue.number,
            "pull_request": self.shapes.pull(issue),
            **self._common(actor),
        }
        facts = {"branch": pull.base_ref, "type": action}
        merge = pull.merge_commit_sha or pull.head_sha
        made = self.fire(
            Event(
                "pull_request",
                payload,
                actor,
                merge,
                f"refs/pull/{issue.number}/merge",
                pull.head_ref,
                pull.head_sha,
                action,
                facts,
            ),
            hold=held,
        )
        if held:
            self.suppressed.append(f"pull_request_target {action} #{issue.number}")
            for emulated in made:
                emulated.summary.append("This run requires approval: the PR was opened or "
                                        "updated with GITHUB_TOKEN.")  # fmt: skip
            return
        base = self.store.branch_sha(pull.base_ref) or pull.base_sha
        self.fire(
            Event(
                "pull_request_target",
                payload,
                actor,
                base,
                f"refs/heads/{pull.base_ref}",
                pull.head_ref,
                pull.head_sha,
                action,
                facts,
            )
        )

    def _issue_comment(self, issue: Issue, comment: Comment, actor: str) -> None:
        if self._by_token(actor, f"issue_comment on #{issue.number}"):
            return
        payload = {
            "action": "created",
            "issue": self.shapes.issue(issue),
            "comment": self.shapes.comment(comment),
            **self._common(actor),
        }
        self.fire(self._on_default("issue_comment", payload, actor, "created"))

    def on_deployment_status(self, deployment: Deployment, status: DeploymentStatus) -> None:
        what = f"deployment_status {status.state} of deployment {deployment.id}"
        if self._by_token(status.creator, what, by_actions=status.by_actions):
            return
        payload = {
            "action": "created",
            "deployment_status": self.shapes.deployment_status(status),
            "deployment": self.shapes.deployment(deployment),
            **self._common(status.creator),
        }
        branch = deployment.ref if self.store.branch_sha(deployment.ref) else None
        self.fire(
            Event(
                "deployment_status",
                payload,
                status.creator,
                deployment.sha,
                f"refs/heads/{branch}" if branch else "",
                branch,
                deployment.sha,
                "created",
            )
        )

    def on_run_completed(self, run: Run) -> None:
        workflow = self.store.workflows[run.workflow_id]
        payload = {
            "action": "completed",
            "workflow_run": self.shapes.run(run),
            "workflow": self.shapes.workflow(workflow),
            **self._common(run.actor),
        }
        event = self._on_default("workflow_run", payload, run.actor, "completed")
        event.facts = {"workflow": run.name, "type": "completed", "branch": run.head_branch}
        self.fire(event)

    def tick(self) -> None:
        """One CI step: the sandbox's clock moves a minute; ``schedule`` fires on its crons."""
        self.steps += 1
        if self.steps % self.steps_per_minute:
            return
        self.minute += 1
        when = time.gmtime(self.epoch + self.minute * 60)
        default = self.store.branch_sha(self.store.default_branch)
        if default is None:
            return
        for wf in self.files(default):
            for entry in wf.on.get("schedule") or []:
                cron = str((entry or {}).get("cron", "")) if isinstance(entry, dict) else ""
                if cron and cron_matches(cron, when):
                    payload = {"schedule": cron, **self._common(None)}
                    self.fire(self._on_default("schedule", payload, BOT_LOGIN, None), only=wf.path)
                    break
        self._start_ready()

    def dispatch(self, workflow: Workflow, ref: str, inputs: Any, actor: str) -> Run:
        """``POST …/dispatches`` of a workflow the emulator runs (GITHUB_TOKEN may do this)."""
        repo = self.store.repo
        name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        sha = repo.ref(f"refs/heads/{name}") or repo.ref(f"refs/tags/{name}")
        if sha is None:
            raise ApiError(422, f"No ref found for: {ref}")
        wf = next((w for w in self.files(sha) if w.path == workflow.path), None)
        if wf is None or "workflow_dispatch" not in wf.on:
            raise ApiError(422, "Workflow does not have 'workflow_dispatch' trigger")
        given = inputs or {}
        if not isinstance(given, dict):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/inputs', must be an object.")
        spec = wf.on.get("workflow_dispatch") or {}
        declared: dict[str, Any] = dict(spec.get("inputs") or {}) if isinstance(spec, dict) else {}
        unexpected = sorted(set(given) - set(declared))
        if unexpected:
            raise ApiError(422, f"Unexpected inputs provided: {unexpected}".replace("'", '"'))
        values: dict[str, Any] = {}
        for key, item in declared.items():
            item = item or {}
            value = given.get(key, item.get("default"))
            if item.get("required") and (value is None or value == ""):
                raise ApiError(422, f"Required input '{key}' not provided")
            if (
                item.get("type") == "choice"
                and value is not None
                and value not in item.get("options", [])
            ):
                raise ApiError(
                    422,
                    f"Provided value '{value}' for input '{key}' not in the list of allowed values",
                )
            if value is not None:
                values[key] = value
        payload = {
            "inputs": values,
            "ref": f"refs/heads/{name}",
            "workflow": wf.path,
            **self._common(actor),
        }
        event = Event("workflow_dispatch", payload, actor, sha, f"refs/heads/{name}", name, sha)
        made = self.fire(event, only=wf.path)
        self._start_ready()
        if not made:
            raise ApiError(422, "Workflow does not have 'workflow_dispatch' trigger")
        return made[0].run

    def _common(self, actor: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {"repository": self.shapes.repository()}
        if actor is not None:
            data["sender"] = self.shapes.user(actor)
        return data

    def _on_default(
        self, name: str, payload: dict[str, Any], actor: str, action: str | None
    ) -> Event:
        branch = self.store.default_branch
        sha = self.store.branch_sha(branch) or ""
        return Event(name, payload, actor, sha, f"refs/heads/{branch}", branch, sha, action)

    # -- creating runs -------------------------------------------------------------------------

    def fire(self, event: Event, *, only: str | None = None, hold: bool = False) -> list[Emulated]:
        """Create a run of every workflow that listens for ``event`` (``hold``: runs that
        need an approval nobody gives, concluded ``action_required`` at once)."""
        if self._stopped or self.quiet or not event.sha:
            return []
        made = []
        for wf in self.files(event.sha):
            if only is not None and wf.path != only:
                continue
            if only is None and not _listens(wf, event):
                continue
            emulated = self._create(wf, event, admit=not hold)
            if hold:
                self._finish(emulated, "action_required")
            made.append(emulated)
        if made:
            self._start_ready()
        return made

    def _create(self, wf: WorkflowFile, event: Event, *, admit: bool = True) -> Emulated:
        store = self.store
        workflow = self._workflow(wf)
        now = store.now()
        suite = CheckSuite(store.new_id(), event.head_sha, event.head_branch, "actions", now, now)
        store.suites[suite.id] = suite
        self.ci.run_numbers[workflow.id] += 1
        run = Run(
            id=store.new_id(),
            workflow_id=workflow.id,
            kind=KIND,
            name=wf.name,
            run_number=self.ci.run_numbers[workflow.id],
            event=event.name,
            head_branch=event.head_branch,
            head_sha=event.head_sha,
            actor=event.actor,
            triggering_actor=event.actor,
            created_at=now,
            updated_at=now,
            suite_id=suite.id,
            display_title=wf.name,
            environment="",
            target_sha="",
        )
        suite.run_id = run.id
        store.runs[run.id] = run
        emulated = Emulated(run, wf, event, None, False)
        contexts = self._contexts(emulated, {}, {})
        try:
            title = wf.data.get("run-name")
            if title:
                run.display_title = substitute(str(title), contexts)
            group, cancel = _concurrency(wf.data.get("concurrency"), contexts)
        except ExpressionError as e:
            group, cancel = None, False
            emulated.summary.append(f"{wf.path}: {e}")
        emulated.group, emulated.cancel_in_progress = group, cancel
        for job_id, spec in _jobs(wf):
            name = str(spec.get("name") or job_id)
            with contextlib.suppress(ExpressionError):
                name = substitute(name, contexts)
            job = Job(
                id=store.new_id(),
                run_id=run.id,
                name=name,
                head_sha=event.head_sha,
                head_branch=event.head_branch,
                workflow_name=wf.name,
                created_at=now,
            )
            store.jobs[job.id] = job
            run.job_ids.append(job.id)
            store.check_runs[job.id] = CheckRun.queued_job(
                job.id,
                name,
                event.head_sha,
                suite.id,
                now,
                f"{self.shapes.html}/actions/runs/{run.id}/job/{job.id}",
            )
            emulated.logs[job.id] = []
        self.runs[run.id] = emulated
        if group is not None and admit:
            self._admit(emulated)
        return emulated

    def _admit(self, new: Emulated) -> None:
        """``concurrency:``: at most one running and one pending run per group."""
        for other in sorted(self.runs.values(), key=lambda e: e.run.id):
            if other is new or other.group != new.group or other.run.status == "completed":
                continue
            if other.thread is None or new.cancel_in_progress:  # waiting (or, with
                # cancel-in-progress, running): the newer run takes its place
                self._cancel(
                    other,
                    f"Canceling since a higher priority waiting request for {new.group} exists",
                )
        if any(
            o is not new and o.group == new.group and o.run.status != "completed"
            for o in self.runs.values()
        ):
            self._set_status(new, "pending")

    # -- running -------------------------------------------------------------------------------

    def _start_ready(self) -> None:
        """Start queued runs whose group is free, up to ``max_parallel`` at a time."""
        if self._stopped:
            return
        running = [e for e in self.runs.values() if e.run.status == "in_progress"]
        for emulated in sorted(self.runs.values(), key=lambda e: e.run.id):
            if len(running) >= self.max_parallel:
                return
            if emulated.run.status not in ("queued", "pending") or emulated.thread is not None:
                continue
            if emulated.group is not None and any(r.group == emulated.group for r in running):
                continue
            self._set_status(emulated, "in_progress")
            running.append(emulated)
            emulated.thread = threading.Thread(
                target=self._execute, args=(emulated,), name=f"actions-run-{emulated.run.id}",
                daemon=True,
            )  # fmt: skip
            emulated.thread.start()

    def _set_status(self, emulated: Emulated, status: str) -> None:
        now = self.store.now()
        run = emulated.run
        run.status, run.updated_at = status, now
        if status == "in_progress" and run.run_started_at is None:
            run.run_started_at = now
        self.store.suites[run.suite_id].updated_at = now

    def _execute(self, emulated: Emulated) -> None:
        try:
            conclusion = self._run_jobs(emulated)
        except Exception as e:  # a bug in the emulator must not leave a run in progress forever
            import traceback

            traceback.print_exc()
            conclusion = "failure"
            emulated.summary.append(f"emulator error: {e}")
        with self.store.lock:
            if emulated.cancelled.is_set():
                conclusion = "cancelled"
            self._finish(emulated, conclusion)
            self._start_ready()

    def _finish(self, emulated: Emulated, conclusion: str) -> None:
        run = emulated.run
        if run.status == "completed":
            return
        now = self.store.now()
        for job_id in run.job_ids:
            job = self.store.jobs[job_id]
            if job.status != "completed":
                self._job_done(job, "cancelled" if conclusion == "cancelled" else "skipped")
        run.status, run.conclusion, run.updated_at = "completed", conclusion, now
        run.phase = 99
        self.store.suites[run.suite_id].updated_at = now
        for listener in self.ci.run_listeners:
            listener(run)

    def _job_done(self, job: Job, conclusion: str) -> None:
        self.store.complete_job(job, conclusion, self.store.now())

    def _run_jobs(self, emulated: Emulated) -> str:
        """Run the jobs in ``needs:`` order; the run's conclusion."""
        results: dict[str, dict[str, Any]] = {}
        order = _job_order(emulated.workflow)
        ids = dict(zip([j for j, _ in _jobs(emulated.workflow)], emulated.run.job_ids, strict=True))
        conclusions = []
        for job_key, spec in order:
            job = self.store.jobs[ids[job_key]]
            if emulated.cancelled.is_set():
                break
            needs = _names(spec.get("needs"))
            needs_ctx = {n: results.get(n, {"result": "skipped", "outputs": {}}) for n in needs}
            failed_need = any(needs_ctx[n]["result"] != "success" for n in needs)
            contexts = self._contexts(emulated, {}, needs_ctx, job_key=job_key)
            status = "failure" if failed_need else "success"
            try:
                run_it = condition(spec.get("if"), contexts, lambda s=status: s)  # type: ignore[misc]
            except ExpressionError as e:
                self._log(emulated, job, f"##[error]{e}")
                run_it, status = False, "failure"
                with self.store.lock:
                    self._job_done(job, "failure")
                results[job_key] = {"result": "failure", "outputs": {}}
                conclusions.append("failure")
                continue
            if not run_it:
                with self.store.lock:
                    self._job_done(job, "skipped")
                results[job_key] = {"result": "skipped", "outputs": {}}
                conclusions.append("skipped")
                continue
            result, outputs = self._job(emulated, job, job_key, spec, needs_ctx)
            results[job_key] = {"result": result, "outputs": outputs}
            conclusions.append(result)
        if emulated.cancelled.is_set() or "cancelled" in conclusions:
            return "cancelled"
        if "failure" in conclusions:
            return "failure"
        if conclusions and all(c == "skipped" for c in conclusions):
            return "skipped"
        return "success"

    def _contexts(
        self,
        emulated: Emulated,
        env: dict[str, str],
        needs: dict[str, Any],
        *,
        job_key: str = "",
        steps: dict[str, Any] | None = None,
        runner_temp: str = "",
        workspace: str = "",
    ) -> dict[str, Any]:
        event = emulated.event
        run = emulated.run
        store = self.store
        github = {
            "action": "",
            "action_path": "",
            "actor": event.actor,
            "triggering_actor": event.actor,
            "api_url": store.base_url,
            "server_url": store.base_url,
            "graphql_url": f"{store.base_url}/graphql",
            "event": event.payload,
            "event_name": event.name,
            "event_path": "",
            "job": job_key,
            "ref": event.ref,
            "ref_name": event.ref.rsplit("/", 1)[-1] if event.ref.startswith("refs/heads/")
            else event.ref.removeprefix("refs/"),
            "ref_type": "branch",
            "repository": f"{store.owner}/{store.name}",
            "repository_owner": store.owner,
            "run_id": str(run.id),
            "run_number": str(run.run_number),
            "run_attempt": str(run.run_attempt),
            "sha": event.sha,
            "token": self.token,
            "workflow": emulated.workflow.name,
            "workspace": workspace,
            "head_ref": event.head_branch if event.name.startswith("pull_request") else "",
            "base_ref": (
                (event.payload.get("pull_request") or {}).get("base", {}).get("ref", "")
                if event.name.startswith("pull_request") else ""
            ),
        }  # fmt: skip
        inputs = (
            dict(event.payload.get("inputs") or {}) if event.name == "workflow_dispatch" else {}
        )
        return {
            "github": github,
            "env": env,
            "inputs": inputs,
            "secrets": {"GITHUB_TOKEN": self.token},
            "vars": {},
            "steps": steps or {},
            "needs": needs,
            "job": {"status": "success"},
            "runner": {"os": "Linux", "arch": "X64", "name": "sandbox", "temp": runner_temp,
                       "tool_cache": runner_temp},
        }  # fmt: skip

    def _log(self, emulated: Emulated, job: Job, line: str) -> None:
        lines = emulated.logs.setdefault(job.id, [])
        if sum(len(x) for x in lines) < _MAX_LOG:
            lines.append(line.replace(self.token, "***"))

    def _job(
        self,
        emulated: Emulated,
        job: Job,
        job_key: str,
        spec: dict[str, Any],
        needs: dict[str, Any],
    ) -> tuple[str, dict[str, str]]:
        """Run one job's steps; its result and its outputs."""
        store = self.store
        base = self.root / f"run-{emulated.run.id}-{job.id}"
        workspace, temp, home = base / "work", base / "temp", base / "home"
        for d in (workspace, temp, home):
            d.mkdir(parents=True, exist_ok=True)
        event_path = temp / "event.json"
        event_path.write_text(json.dumps(emulated.event.payload), encoding="utf-8")
        wf_data = emulated.workflow.data
        limit = spec.get("timeout-minutes", DEFAULT_TIMEOUT_MINUTES)
        try:
            minutes = float(limit)
        except (TypeError, ValueError):
            minutes = DEFAULT_TIMEOUT_MINUTES
        deadline = time.monotonic() + minutes * self.seconds_per_minute
        job_state = _JobState(workspace=workspace, temp=temp, home=home, event_path=event_path)
        with store.lock:
            now = store.now()
            job.status, job.started_at = "in_progress", now
            check = store.check_runs[job.id]
            check.status, check.started_at = "in_progress", now
            raw_steps = list(spec.get("steps") or [])
            job.steps = [
                Step(str(s.get("name") or s.get("uses") or _first_line(s.get("run"))), i + 2)
                for i, s in enumerate(raw_steps)
            ]
            job.steps.insert(0, Step("Set up job", 1, "completed", "success", now, now))
        self._log(
            emulated, job, f"Job {job.name} ({emulated.workflow.path}, event {emulated.event.name})"
        )
        status = "success"
        timed_out = False
        try:
            env: dict[str, str] = {}
            contexts = self._contexts(emulated, env, needs, job_key=job_key, runner_temp=str(temp), workspace=str(workspace))  # fmt: skip
            for scope in (wf_data.get("env"), spec.get("env")):
                for key, value in (scope or {}).items():
                    env[str(key)] = substitute(to_text(value), contexts)
            job_state.env = env
            for index, raw in enumerate(raw_steps):
                step = job.steps[index + 1]
                if emulated.cancelled.is_set():
                    status = "cancelled"
                if time.monotonic() > deadline:
                    timed_out, status = True, "cancelled"
                outcome = self._step(
                    emulated, job, step, raw, job_state, needs, job_key,
                    (lambda s=status: s), deadline, defaults=_defaults(wf_data, spec),
                )  # fmt: skip
                if outcome == "timed_out":
                    timed_out, status = True, "cancelled"
                elif outcome == "failure" and not raw.get("continue-on-error"):
                    status = "failure" if status == "success" else status
                elif outcome == "cancelled":
                    status = "cancelled"
            if timed_out:
                self._log(emulated, job, f"##[error]The job has exceeded the maximum execution time of {minutes:g} minutes.")  # fmt: skip
            outputs: dict[str, str] = {}
            contexts = self._contexts(emulated, job_state.env, needs, job_key=job_key, steps=job_state.steps, runner_temp=str(temp), workspace=str(workspace))  # fmt: skip
            for key, value in (spec.get("outputs") or {}).items():
                try:
                    outputs[str(key)] = substitute(to_text(value), contexts)
                except ExpressionError as e:
                    self._log(emulated, job, f"##[error]{e}")
        finally:
            shutil.rmtree(base, ignore_errors=True)
        with store.lock:
            self._job_done(job, status)
        return status, outputs

    def _step(
        self,
        emulated: Emulated,
        job: Job,
        step: Step,
        raw: dict[str, Any],
        state: _JobState,
        needs: dict[str, Any],
        job_key: str,
        status: Any,
        deadline: float,
        *,
        defaults: dict[str, Any],
        scope: _Scope | None = None,
    ) -> str:
        """One step (or one step of a composite action): its outcome."""
        store = self.store
        local = scope or _Scope(steps=state.steps)
        contexts = self._contexts(emulated, dict(state.env), needs, job_key=job_key,
                                  steps=local.steps, runner_temp=str(state.temp),
                                  workspace=str(state.workspace))  # fmt: skip
        if local.inputs is not None:
            contexts["inputs"] = local.inputs
            contexts["github"] = {**contexts["github"], "action_path": local.action_path}
        with store.lock:
            step.status, step.started_at = "in_progress", store.now()
        try:
            if not condition(raw.get("if"), contexts, status):
                outcome = "skipped"
            else:
                outcome = self._do_step(emulated, job, raw, state, contexts, deadline, defaults, local, needs, job_key, status)  # fmt: skip
        except ExpressionError as e:
            self._log(emulated, job, f"##[error]{e}")
            outcome = "failure"
        step_id = raw.get("id")
        if step_id:
            local.steps[str(step_id)] = {
                "outputs": local.outputs.get(str(step_id), {}),
                "outcome": outcome,
                "conclusion": "success" if raw.get("continue-on-error") and outcome == "failure"
                else outcome,
            }  # fmt: skip
        with store.lock:
            step.status, step.completed_at = "completed", store.now()
            step.conclusion = "cancelled" if outcome == "timed_out" else outcome
        return outcome

    def _do_step(
        self,
        emulated: Emulated,
        job: Job,
        raw: dict[str, Any],
        state: _JobState,
        contexts: dict[str, Any],
        deadline: float,
        defaults: dict[str, Any],
        scope: _Scope,
        needs: dict[str, Any],
        job_key: str,
        status: Any,
    ) -> str:
        env = dict(state.env)
        for key, value in (raw.get("env") or {}).items():
            env[str(key)] = substitute(to_text(value), contexts)
        step_id = str(raw.get("id") or "")
        uses = raw.get("uses")
        if uses:
            uses = str(uses)
            with_ = {
                str(k): substitute(to_text(v), contexts) for k, v in (raw.get("with") or {}).items()
            }
            self._log(emulated, job, f"Run {uses}")
            if uses.startswith("actions/checkout@"):
                return self._checkout(emulated, job, state, with_)
            if uses.startswith("actions/setup-python@"):
                self._log(
                    emulated,
                    job,
                    f"stood in: {uses} (the interpreter running the sandbox is on the PATH)",
                )
                state.path.insert(0, str(_shims(state.temp, self.python)))
                return "success"
            action_dir = self._action_dir(uses, state)
            if action_dir is None:
                self._log(emulated, job, f"##[error]the sandbox does not emulate uses: {uses}")
                return "failure"
            return self._composite(emulated, job, action_dir, with_, state, deadline, needs, job_key, status, step_id, scope)  # fmt: skip
        script = substitute(str(raw.get("run") or ""), contexts)
        self._log(emulated, job, f"Run {_first_line(script)}")
        if _INSTALLS_PROMOTE.search(script):
            shims = _shims(state.temp, self.python)
            state.path.insert(0, str(shims))
            self._log(
                emulated,
                job,
                f"stood in: installing promote-tasks (the sandbox's own promote is in {shims})",
            )
            return "success"
        shell = str(raw.get("shell") or defaults.get("shell") or "")
        cwd = state.workspace
        directory = raw.get("working-directory") or defaults.get("working-directory")
        if directory:
            cwd = state.workspace / substitute(str(directory), contexts)
        return self._script(emulated, job, script, shell, env, state, cwd, deadline, step_id, scope)

    def _script(
        self,
        emulated: Emulated,
        job: Job,
        script: str,
        shell: str,
        env: dict[str, str],
        state: _JobState,
        cwd: Path,
        deadline: float,
        step_id: str,
        scope: _Scope,
    ) -> str:
        state.counter += 1
        n = state.counter
        suffix = ".py" if shell == "python" else ".sh"
        script_path = state.temp / f"step-{n}{suffix}"
        script_path.write_text(script, encoding="utf-8")
        files = {
            "GITHUB_OUTPUT": state.temp / f"output-{n}",
            "GITHUB_ENV": state.temp / f"env-{n}",
            "GITHUB_PATH": state.temp / f"path-{n}",
            "GITHUB_STEP_SUMMARY": state.temp / f"summary-{n}",
        }
        for f in files.values():
            f.write_text("", encoding="utf-8")
        command = {
            "": ["bash", "-e", str(script_path)],
            "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_path)],
            "sh": ["sh", "-e", str(script_path)],
            "python": [self.python, str(script_path)],
        }.get(shell)
        if command is None:
            self._log(emulated, job, f"##[error]the sandbox does not emulate shell: {shell}")
            return "failure"
        full_env = self._environment(emulated, job, state, env, files)
        left = deadline - time.monotonic()
        if left <= 0:
            return "timed_out"
        try:
            process = subprocess.Popen(
                command, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            self._log(emulated, job, f"##[error]{e}")
            return "failure"
        emulated.process = process
        reader = threading.Thread(target=self._read, args=(emulated, job, process), daemon=True)
        reader.start()
        outcome = "success"
        try:
            code = process.wait(timeout=left)
            if code != 0:
                self._log(emulated, job, f"##[error]Process completed with exit code {code}.")
                outcome = "failure"
        except subprocess.TimeoutExpired:
            _kill(process)
            outcome = "timed_out"
        finally:
            reader.join(timeout=5)
            emulated.process = None
        if emulated.cancelled.is_set():
            outcome = "cancelled"
        outputs = _key_values(files["GITHUB_OUTPUT"].read_text("utf-8", errors="replace"))
        if step_id:
            scope.outputs[step_id] = outputs
        state.env.update(_key_values(files["GITHUB_ENV"].read_text("utf-8", errors="replace")))
        for line in files["GITHUB_PATH"].read_text("utf-8", errors="replace").splitlines():
            if line.strip():
                state.path.insert(0, line.strip())
        summary = files["GITHUB_STEP_SUMMARY"].read_text("utf-8", errors="replace")
        if summary.strip():
            emulated.summary.append(summary.replace(self.token, "***"))
        return outcome

    def _read(self, emulated: Emulated, job: Job, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self._log(emulated, job, raw.decode("utf-8", errors="replace").rstrip("\n"))

    def _environment(
        self,
        emulated: Emulated,
        job: Job,
        state: _JobState,
        env: dict[str, str],
        files: dict[str, Path],
    ) -> dict[str, str]:
        """A step's environment: the runner's variables, then the workflow's ``env:``. Nothing
        of the sandbox's own environment leaks in but the PATH and the locale."""
        store = self.store
        event = emulated.event
        run = emulated.run
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        base["PATH"] = os.pathsep.join([*state.path, base.get("PATH", os.defpath)])
        base.update({
            "HOME": str(state.home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_ACTOR": event.actor,
            "GITHUB_TRIGGERING_ACTOR": event.actor,
            "GITHUB_API_URL": store.base_url,
            "GITHUB_SERVER_URL": store.base_url,
            "GITHUB_GRAPHQL_URL": f"{store.base_url}/graphql",
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_EVENT_PATH": str(state.event_path),
            "GITHUB_REPOSITORY": f"{store.owner}/{store.name}",
            "GITHUB_REPOSITORY_OWNER": store.owner,
            "GITHUB_RUN_ID": str(run.id),
            "GITHUB_RUN_NUMBER": str(run.run_number),
            "GITHUB_RUN_ATTEMPT": str(run.run_attempt),
            "GITHUB_JOB": job.name,
            "GITHUB_WORKFLOW": emulated.workflow.name,
            "GITHUB_WORKFLOW_REF": f"{store.owner}/{store.name}/{emulated.workflow.path}@{event.ref}",
            "GITHUB_SHA": event.sha,
            "GITHUB_REF": event.ref,
            "GITHUB_REF_NAME": event.ref.rsplit("/", 1)[-1],
            "GITHUB_WORKSPACE": str(state.workspace),
            "RUNNER_TEMP": str(state.temp),
            "RUNNER_OS": "Linux",
            "RUNNER_ARCH": "X64",
            "RUNNER_NAME": "sandbox",
            "GIT_CONFIG_NOSYSTEM": "1",
        })  # fmt: skip
        if event.name.startswith("pull_request"):
            pull = event.payload.get("pull_request") or {}
            base["GITHUB_HEAD_REF"] = str((pull.get("head") or {}).get("ref", ""))
            base["GITHUB_BASE_REF"] = str((pull.get("base") or {}).get("ref", ""))
        if state.action_path:
            base["GITHUB_ACTION_PATH"] = state.action_path
        base.update({k: str(v) for k, v in files.items()})
        base.update(env)
        return base

    def _checkout(
        self, emulated: Emulated, job: Job, state: _JobState, with_: dict[str, str]
    ) -> str:
        repo = self.store.repo
        wanted = with_.get("ref") or emulated.event.sha
        with self.store.lock:
            sha = _resolve(repo, wanted)
        if sha is None:
            self._log(emulated, job, f"##[error]checkout: no commit for ref {wanted!r}")
            return "failure"
        target = state.workspace / with_.get("path", "")
        target.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(state.home),
               "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}  # fmt: skip
        commands = [
            ["git", "init", "-q", str(target)],
            ["git", "-C", str(target), "remote", "add", "origin", str(repo.path)],
            ["git", "-C", str(target), "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*"],
            ["git", "-C", str(target), "fetch", "-q", "origin", sha],
            ["git", "-C", str(target), "checkout", "-q", "--detach", sha],
        ]  # fmt: skip
        for command in commands:
            done = subprocess.run(command, capture_output=True, env=env, check=False)
            if done.returncode != 0:
                self._log(
                    emulated,
                    job,
                    f"##[error]checkout: {done.stderr.decode(errors='replace').strip()}",
                )
                return "failure"
        branch = emulated.event.ref.removeprefix("refs/heads/")
        if (
            emulated.event.ref.startswith("refs/heads/")
            and not with_.get("ref")
            and repo.ref(emulated.event.ref) == sha
        ):
            subprocess.run(["git", "-C", str(target), "checkout", "-q", "-B", branch, sha], capture_output=True, env=env, check=False)  # fmt: skip
        self._log(
            emulated,
            job,
            f"stood in: actions/checkout: a full clone at {sha} (no credentials kept)",
        )
        return "success"

    def _action_dir(self, uses: str, state: _JobState) -> Path | None:
        if uses.startswith("./"):
            found = state.workspace / uses
            return (
                found
                if (found / "action.yml").is_file() or (found / "action.yaml").is_file()
                else None
            )
        if _PROMOTE_ACTION.match(uses):
            return promote_action_dir()
        return None

    def _composite(
        self,
        emulated: Emulated,
        job: Job,
        action_dir: Path,
        with_: dict[str, str],
        state: _JobState,
        deadline: float,
        needs: dict[str, Any],
        job_key: str,
        status: Any,
        step_id: str,
        scope: _Scope,
    ) -> str:
        path = action_dir / "action.yml"
        if not path.is_file():
            path = action_dir / "action.yaml"
        try:
            action = yaml.safe_load(path.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as e:
            self._log(emulated, job, f"##[error]{path}: {e}")
            return "failure"
        runs = (action or {}).get("runs") or {}
        if runs.get("using") != "composite":
            self._log(emulated, job, f"##[error]{path}: only composite actions are emulated")
            return "failure"
        inputs: dict[str, Any] = {}
        github_token = self.token
        for key, spec in ((action or {}).get("inputs") or {}).items():
            default = (spec or {}).get("default")
            if key in with_:
                inputs[key] = with_[key]
            elif default is not None:
                ctx = {"github": {"token": github_token}, "secrets": {"GITHUB_TOKEN": github_token}}
                inputs[key] = substitute(to_text(default), ctx)
        inner = _Scope(steps={}, inputs=inputs, action_path=str(action_dir))
        previous = state.action_path
        state.action_path = str(action_dir)
        outcome = "success"
        try:
            for raw in runs.get("steps") or []:
                step = Step(str(raw.get("name") or raw.get("uses") or "step"), 0)
                result = self._step(
                    emulated, job, step, raw, state, needs, job_key,
                    (lambda o=outcome: "success" if o == "success" else "failure"), deadline,
                    defaults={"shell": raw.get("shell", "bash")}, scope=inner,
                )  # fmt: skip
                if result in ("failure", "timed_out", "cancelled"):
                    outcome = result
                    if not raw.get("continue-on-error"):
                        break
        finally:
            state.action_path = previous
        outputs: dict[str, str] = {}
        ctx = self._contexts(emulated, dict(state.env), needs, job_key=job_key, steps=inner.steps)
        ctx["inputs"] = inputs
        for key, spec in ((action or {}).get("outputs") or {}).items():
            try:
                outputs[str(key)] = substitute(to_text((spec or {}).get("value", "")), ctx)
            except ExpressionError as e:
                self._log(emulated, job, f"##[error]{e}")
        if step_id:
            scope.outputs[step_id] = outputs
        return outcome

    # -- cancelling, logs, shutting down -------------------------------------------------------

    def cancel(self, run: Run) -> None:
        """``POST …/runs/{id}/cancel`` of an emulated run."""
        emulated = self.runs.get(run.id)
        if emulated is None or run.status == "completed":
            raise ApiError(409, "Cannot cancel a workflow run that is completed.")
        self._cancel(emulated, "The run was canceled by a person.")

    def _cancel(self, emulated: Emulated, why: str) -> None:
        emulated.cancelled.set()
        emulated.summary.append(why)
        if emulated.thread is None:  # not started: it ends here
            self._finish(emulated, "cancelled")
            return
        process = emulated.process
        if process is not None:
            _kill(process)

    def log(self, job_id: int) -> str | None:
        """A job's log as plain text (the token masked), or None for an unknown job."""
        for emulated in self.runs.values():
            if job_id in emulated.logs:
                lines = [
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}"
                    for line in emulated.logs[job_id]
                ]
                return "\n".join(lines) + "\n"
        return None

    def overview(self) -> dict[str, Any]:
        """``GET /_sandbox/actions``: the runs, their summaries, suppressed events, bad files."""
        runs = []
        for emulated in sorted(self.runs.values(), key=lambda e: e.run.id):
            run = emulated.run
            runs.append({
                "id": run.id,
                "workflow": emulated.workflow.path,
                "event": run.event,
                "actor": run.actor,
                "status": run.status,
                "conclusion": run.conclusion,
                "group": emulated.group,
                "jobs": [
                    {"id": j, "name": self.store.jobs[j].name,
                     "conclusion": self.store.jobs[j].conclusion}
                    for j in run.job_ids
                ],
                "summary": "\n".join(emulated.summary),
            })  # fmt: skip
        return {
            "runs": runs,
            "suppressed": list(self.suppressed[-200:]),
            "errors": list(self.errors),
            "minute": self.minute,
        }

    def busy(self, upto: int | None = None) -> bool:
        """Whether a run (with an id up to ``upto``) is queued, pending or in progress."""
        return any(
            e.run.status != "completed" and (upto is None or e.run.id <= upto)
            for e in self.runs.values()
        )

    def stop(self) -> None:
        with self.store.lock:
            self._stopped = True
            for emulated in self.runs.values():
                if emulated.run.status != "completed":
                    self._cancel(emulated, "The sandbox stopped.")
        for emulated in list(self.runs.values()):
            if emulated.thread is not None:
                emulated.thread.join(timeout=10)


@dataclass
class _JobState:
    workspace: Path
    temp: Path
    home: Path
    event_path: Path
    env: dict[str, str] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)
    steps: dict[str, Any] = field(default_factory=dict)
    counter: int = 0
    action_path: str = ""


@dataclass
class _Scope:
    """The ``steps`` a step sees: the job's, or a composite action's own."""

    steps: dict[str, Any]
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    inputs: dict[str, Any] | None = None
    action_path: str = ""


def promote_action_dir() -> Path | None:
    """This repository's ``action.yml``: at the root of the checkout this package runs from
    (``src/promote_sandbox/`` is two levels below it); None in an installed copy."""
    root = Path(__file__).resolve().parent.parent.parent
    return root if (root / "action.yml").is_file() else None


def _shims(temp: Path, python: str) -> Path:
    """``$RUNNER_TEMP/promote-venv/bin`` with ``promote`` and ``python`` of the sandbox's
    interpreter: what the stood-in install step would have made."""
    bin_dir = temp / "promote-venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (
        ("promote", f'exec "{python}" -c "from promote_tasks.cli import main; raise SystemExit(main())" "$@"\n'),
        ("python", f'exec "{python}" "$@"\n'),
        ("python3", f'exec "{python}" "$@"\n'),
    ):  # fmt: skip
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\n{body}", encoding="utf-8")
        shim.chmod(0o755)
    return bin_dir


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _resolve(repo: Any, ref: str) -> str | None:
    ref = ref.strip()
    for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if candidate.startswith("refs/"):
            sha = repo.ref(candidate)
            if sha:
                return str(sha)
    if re.fullmatch(r"[0-9a-f]{7,40}", ref):
        found = repo.full_sha(ref, "commit")
        return str(found) if found else None
    return None


def _key_values(text: str) -> dict[str, str]:
    """``$GITHUB_OUTPUT`` / ``$GITHUB_ENV``: ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, _, delimiter = line.partition("<<")
            body = []
            i += 1
            while i < len(lines) and lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            out[name.strip()] = "\n".join(body)
        elif "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = value
        i += 1
    return out


def _first_line(text: Any) -> str:
    return str(text or "").strip().splitlines()[0] if str(text or "").strip() else "step"


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def _defaults(wf: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for scope in (wf, job):
        found.update(((scope.get("defaults") or {}).get("run")) or {})
    return found


def _jobs(wf: WorkflowFile) -> list[tuple[str, dict[str, Any]]]:
    jobs = wf.data.get("jobs") or {}
    return [(str(k), v if isinstance(v, dict) else {}) for k, v in jobs.items()]


def _job_order(wf: WorkflowFile) -> list[tuple[str, dict[str, Any]]]:
    """The jobs, each after the ones it ``needs`` (file order otherwise)."""
    pending = _jobs(wf)
    done: list[tuple[str, dict[str, Any]]] = []
    names: set[str] = set()
    while pending:
        for i, (key, spec) in enumerate(pending):
            if all(n in names for n in _names(spec.get("needs"))):
                done.append(pending.pop(i))
                names.add(key)
                break
        else:  # a cycle or an unknown need: run the rest in file order (they will be skipped)
            done.extend(pending)
            break
    return done


def _concurrency(value: Any, contexts: dict[str, Any]) -> tuple[str | None, bool]:
    if value is None:
        return None, False
    if isinstance(value, str):
        return substitute(value, contexts), False
    if isinstance(value, dict):
        group = value.get("group")
        cancel = value.get("cancel-in-progress", False)
        if isinstance(cancel, str):
            cancel = substitute(cancel, contexts).lower() == "true"
        return (substitute(to_text(group), contexts) if group else None), bool(cancel)
    return None, False


def _parse(path: str, data: bytes) -> WorkflowFile | WorkflowError:
    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        return WorkflowError(f"{path}: not YAML: {e}")
    if not isinstance(loaded, dict):
        return WorkflowError(f"{path}: not a workflow (a mapping at the top)")
    on = loaded.get("on", loaded.get(True))  # PyYAML reads a bare `on` as true
    if isinstance(on, str):
        on = {on: None}
    elif isinstance(on, list):
        on = {str(e): None for e in on}
    if not isinstance(on, dict):
        return WorkflowError(f"{path}: `on:` must name events")
    name = str(loaded.get("name") or path)
    return WorkflowFile(path, name, {str(k): v for k, v in on.items()}, loaded)


def _glob(pattern: str) -> re.Pattern[str]:
    """GitHub's filter patterns: ``*`` within a path segment, ``**`` across, ``?``, ``[…]``."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "."}.get(c, re.escape(c) if c not in "[]" else c)
        i += 1
    return re.compile(f"^{out}$")


def _filtered(names: list[str], include: Any, exclude: Any) -> bool:
    """Whether any of ``names`` passes an include list (all when None) and an ignore list;
    ``!pattern`` in an include list excludes again, as GitHub reads it in order."""
    if include is None and exclude is None:
        return True
    for name in names:
        if include is not None:
            ok = False
            for pattern in _names(include):
                negate = pattern.startswith("!")
                if _glob(pattern.removeprefix("!")).match(name):
                    ok = not negate
            if not ok:
                continue
        if exclude is not None and any(_glob(p).match(name) for p in _names(exclude)):
            continue
        return True
    return False


def _listens(wf: WorkflowFile, event: Event) -> bool:
    if event.name not in wf.on:
        return False
    spec = wf.on[event.name]
    spec = spec if isinstance(spec, dict) else {}
    facts = event.facts
    if event.name in ("pull_request", "pull_request_target"):
        types = _names(spec.get("types")) or list(PR_TYPES_DEFAULT)
        if facts.get("type") not in types:
            return False
        return _filtered(
            [str(facts.get("branch"))], spec.get("branches"), spec.get("branches-ignore")
        )
    if event.name == "push":
        if not _filtered(
            [str(facts.get("branch"))], spec.get("branches"), spec.get("branches-ignore")
        ):
            return False
        paths = list(facts.get("paths") or [])
        return _filtered(paths, spec.get("paths"), spec.get("paths-ignore")) if paths else True
    if event.name == "workflow_run":
        if facts.get("type") not in (_names(spec.get("types")) or ["completed", "requested"]):
            return False
        if facts.get("workflow") not in _names(spec.get("workflows")):
            return False
        return _filtered(
            [str(facts.get("branch") or "")], spec.get("branches"), spec.get("branches-ignore")
        )
    if event.name == "issue_comment":
        return event.action in (_names(spec.get("types")) or ["created", "edited", "deleted"])
    return event.name in ("deployment_status", "workflow_dispatch", "schedule")


def _cron_field(text: str, value: int, low: int, high: int) -> bool:
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, _, raw_step = part.partition("/")
            step = int(raw_step)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, _, b = part.partition("-")
            start, end = int(a), int(b)
        else:
            start = int(part)
            end = high if step != 1 else start
        if start <= value <= end and (value - start) % step == 0:
            return True
    return False


def cron_matches(cron: str, when: time.struct_time) -> bool:
    """Whether a five-field POSIX cron (UTC, as GitHub reads it) fires at ``when``."""
    fields = cron.split()
    if len(fields) != 5:
        return False
    minute, hour, dom, month, dow = fields
    weekday = (when.tm_wday + 1) % 7  # cron: 0 is Sunday; struct_time: 0 is Monday
    try:
        day_ok = (
            _cron_field(dom, when.tm_mday, 1, 31) or _cron_field(dow, weekday, 0, 6)
            if dom != "*" and dow != "*"
            else _cron_field(dom, when.tm_mday, 1, 31) and _cron_field(dow, weekday, 0, 6)
        )
        return (
            _cron_field(minute, when.tm_min, 0, 59)
            and _cron_field(hour, when.tm_hour, 0, 23)
            and _cron_field(month, when.tm_mon, 1, 12)
            and day_ok
        )
    except ValueError:
        return False


__all__ = ["Actions", "WorkflowError", "cron_matches"]
