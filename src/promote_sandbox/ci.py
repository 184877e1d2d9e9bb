"""The simulated CI: deploy and smoke-test workflow runs, production monitors, the merge bot.

How the sandbox represents what real CI would do (documented here because the tool reads it):

* A push to an environment branch (a merge, a ref update, a contents write, or a client's own
  ``git push`` noticed by comparing refs) whose changed paths are not all under ``plans/``
  queues a run of workflow ``Deploy`` (``.github/workflows/deploy.yml``, event ``push``,
  ``head_branch`` = the environment, ``head_sha`` = the new head). Each step then moves it:
  run/job/check run ``deploy`` go ``queued → in_progress → completed``; the job creates a
  deployment (creator ``github-actions[bot]``, ``environment`` = the environment, ``ref`` = the
  branch, task ``deploy``) whose statuses go ``queued → in_progress → success`` (or
  ``failure`` when the scenario fails stage ``deploy``), ``environment_url`` = the health URL.
* ``workflow_dispatch`` of ``deploy.yml`` with inputs ``environment`` and ``sha`` deploys that sha
  the same way (event ``workflow_dispatch``); the run's ``head_sha`` is the dispatched branch's
  tip, as on GitHub, while the deployment records the sha that was deployed, as a deploy
  workflow that creates its own deployment does.
* An environment with required reviewers (scenario ``required_reviewers`` or the environments
  API) holds the run in ``waiting`` (run, job, check run and a ``waiting`` deployment status)
  until someone approves through ``pending_deployments``.
* Any ``success`` deployment status (from CI or from a client) starts workflow ``Smoke tests``
  (``.github/workflows/smoke.yml``, event ``deployment_status``) whose job ``smoke`` is a check run
  on the deployed sha, failing when the scenario fails stage ``smoke``. GitHub would also queue a
  run for every non-success status and skip its job; the sandbox leaves those runs out.
* In production (the last environment) a success also starts a ``monitor`` check run on the sha,
  from a separate app ("Sandbox Monitor"): it stays ``in_progress`` while the monitor is green
  (a monitor never ends on its own), concludes ``failure`` two steps later when the scenario
  fails stage ``monitor``, and concludes ``neutral`` when a newer deployment supersedes it.
* Health: ``GET /_sandbox/health/<env>`` answers for the environment's current deployment (the
  one with the newest ``success`` status): 200 ``{"status": "ok"}`` or 503 when the scenario
  fails stage ``health`` for that deployment (counted per deployment, not per request).
* Stage ``manual`` is never executed here; drivers read it from ``GET /_sandbox/scenario``.
* ``hang`` rules keep a deploy or smoke run ``in_progress`` forever (settling ignores them).
* Sandbox tokens act like personal access tokens: their merges and ref updates do start push
  workflows. The Actions emulator's ``GITHUB_TOKEN`` (identity ``github-actions[bot]``) follows
  GitHub's rule instead: its pushes start no deploy and the deployment statuses it writes start
  no smoke run; only its ``workflow_dispatch`` does (:mod:`promote_sandbox.actions`).
* The runs of every other workflow file are the Actions emulator's; this CI never steps them.
* Environment protection: a ``wait_timer`` elapses after that many CI steps (one step stands for
  a minute); required reviewers approve through ``POST …/pending_deployments``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from typing import Protocol

from promote_sandbox.server import ApiError
from promote_sandbox.shapes import Shapes
from promote_sandbox.store import BOT_LOGIN
from promote_sandbox.store import Approval
from promote_sandbox.store import BaseMoved
from promote_sandbox.store import CheckRun
from promote_sandbox.store import CheckSuite
from promote_sandbox.store import Deployment
from promote_sandbox.store import DeploymentStatus
from promote_sandbox.store import Issue
from promote_sandbox.store import Job
from promote_sandbox.store import Run
from promote_sandbox.store import Step
from promote_sandbox.store import Store
from promote_sandbox.store import Workflow

DEPLOY_PATH = ".github/workflows/deploy.yml"
SMOKE_PATH = ".github/workflows/smoke.yml"
WAITING = 10  # deploy phase: held by environment protection rules
DONE = 99
MONITOR_FAIL_AFTER = 2


class Emulator(Protocol):
    """What CI hands on to the Actions emulator (:class:`promote_sandbox.actions.Actions`)."""

    def owns(self, workflow: Workflow) -> bool: ...
    def dispatch(self, workflow: Workflow, ref: str, inputs: Any, actor: str) -> Run: ...
    def cancel(self, run: Run) -> None: ...
    def refresh(self) -> None: ...


class CI:
    """Advances runs one step at a time; every method expects the store lock to be held."""

    def __init__(self, store: Store, shapes: Shapes) -> None:
        self.store = store
        self.shapes = shapes
        self.scenario = store.scenario
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.unhealthy: set[int] = set()
        self.health_seen: set[int] = set()
        self.monitors: dict[int, str] = {}
        self.monitor_countdown: dict[int, int] = {}
        self.run_numbers: Counter[int] = Counter()
        self.quiet = False
        self.bot_failed: set[tuple[int, str, str]] = set()
        self.run_listeners: list[Callable[[Run], None]] = []  # a run completed
        self.tick_listeners: list[Callable[[], None]] = []  # one CI step went by
        self.actions: Emulator | None = None  # the Actions emulator, when the sandbox runs one
        now = store.now()
        self.deploy_wf = Workflow(
            store.new_id(),
            "Deploy",
            DEPLOY_PATH,
            now,
            dispatch_inputs={
                "environment": {
                    "required": True,
                    "type": "choice",
                    "options": list(self.scenario.environments),
                },
                "sha": {"required": False, "type": "string"},
            },
        )
        self.smoke_wf = Workflow(store.new_id(), "Smoke tests", SMOKE_PATH, now)
        store.workflows[self.deploy_wf.id] = self.deploy_wf
        store.workflows[self.smoke_wf.id] = self.smoke_wf
        store.push_listeners.append(self.on_push)
        store.status_listeners.append(self.on_status)

    # -- scenario bookkeeping ----------------------------------------------------------------

    def _attempt(self, env: str, stage: str) -> tuple[bool, bool]:
        """Count one attempt of a stage; returns (fails, hangs) for it."""
        self.attempts[(env, stage)] += 1
        n = self.attempts[(env, stage)]
        failures = self.scenario.failures(env, stage)
        hangs = self.scenario.hangs(env, stage)
        return (failures is None or n <= failures), (hangs is None or n <= hangs)

    def health_url(self, env: str) -> str:
        return f"{self.store.base_url}/_sandbox/health/{env}"

    def current_deployment(self, env: str) -> Deployment | None:
        best: tuple[int, Deployment] | None = None
        for deployment in self.store.deployments.values():
            if deployment.environment != env:
                continue
            for sid in deployment.statuses:
                if self.store.deployment_statuses[sid].state == "success" and (
                    best is None or sid > best[0]
                ):
                    best = (sid, deployment)
        return best[1] if best else None

    def health(self, env: str) -> tuple[int, dict[str, Any]]:
        if env not in self.scenario.environments:
            return 404, {"status": "unknown", "environment": env}
        current = self.current_deployment(env)
        if current is None:
            return 503, {"status": "down", "environment": env, "sha": None}
        failing = current.id in self.unhealthy
        return (503 if failing else 200), {
            "status": "failing" if failing else "ok",
            "environment": env,
            "sha": current.sha,
            "deployment_id": current.id,
        }

    # -- triggers ----------------------------------------------------------------------------

    def on_push(self, branch: str, old: str | None, new: str, actor: str) -> None:
        if self.quiet or branch not in self.scenario.environments or actor == BOT_LOGIN:
            return
        repo = self.store.repo
        if repo.tree_entry(new, DEPLOY_PATH) is None:
            return
        paths = repo.changed_paths(old, new)
        if not paths or all(p.startswith("plans/") for p in paths):
            return
        self.start_deploy(branch, branch, new, new, "push", actor)

    def on_status(self, deployment: Deployment, status: DeploymentStatus) -> None:
        if self.quiet or status.state != "success":
            return
        if status.creator == BOT_LOGIN and not status.by_actions:
            return  # written with GITHUB_TOKEN: no deployment_status workflow runs
        env = deployment.environment
        if env in self.scenario.environments and deployment.id not in self.health_seen:
            self.health_seen.add(deployment.id)
            fails, _ = self._attempt(env, "health")
            if fails:
                self.unhealthy.add(deployment.id)
        self.start_smoke(deployment, status.creator)
        if env == self.scenario.production:
            self.start_monitor(env, deployment.sha)

    # -- creating runs -----------------------------------------------------------------------

    def _suite(self, sha: str, branch: str | None, app: str = "actions") -> CheckSuite:
        now = self.store.now()
        suite = CheckSuite(self.store.new_id(), sha, branch, app, now, now)
        self.store.suites[suite.id] = suite
        return suite

    def _run(
        self,
        wf: Workflow,
        kind: str,
        event: str,
        branch: str | None,
        head_sha: str,
        env: str,
        target: str,
        actor: str,
        title: str,
        job_name: str,
        steps: list[str],
    ) -> Run:
        store = self.store
        suite = self._suite(head_sha, branch)
        self.run_numbers[wf.id] += 1
        now = store.now()
        run = Run(
            id=store.new_id(),
            workflow_id=wf.id,
            kind=kind,
            name=wf.name,
            run_number=self.run_numbers[wf.id],
            event=event,
            head_branch=branch,
            head_sha=head_sha,
            actor=actor,
            triggering_actor=actor,
            created_at=now,
            updated_at=now,
            suite_id=suite.id,
            display_title=title,
            environment=env,
            target_sha=target,
        )
        suite.run_id = run.id
        job = Job(
            id=store.new_id(),
            run_id=run.id,
            name=job_name,
            head_sha=head_sha,
            head_branch=branch,
            workflow_name=wf.name,
            created_at=now,
            steps=[Step(name, i + 1) for i, name in enumerate(steps)],
        )
        store.jobs[job.id] = job
        run.job_ids.append(job.id)
        store.check_runs[job.id] = CheckRun.queued_job(
            job.id,
            job_name,
            head_sha,
            suite.id,
            now,
            f"{self.shapes.html}/actions/runs/{run.id}/job/{job.id}",
        )
        store.runs[run.id] = run
        return run

    def start_deploy(
        self, env: str, branch: str, head_sha: str, target: str, event: str, actor: str
    ) -> Run:
        run = self._run(
            self.deploy_wf,
            "deploy",
            event,
            branch,
            head_sha,
            env,
            target,
            actor,
            f"Deploy {target or head_sha} to {env}",
            "deploy",
            ["Set up job", "Run actions/checkout@v5", "Deploy", "Complete job"],
        )
        run.will_fail, run.will_hang = self._attempt(env, "deploy")
        return run

    def start_smoke(self, deployment: Deployment, actor: str) -> Run:
        branch = deployment.ref if self.store.branch_sha(deployment.ref) is not None else None
        run = self._run(
            self.smoke_wf,
            "smoke",
            "deployment_status",
            branch,
            deployment.sha,
            deployment.environment,
            deployment.sha,
            actor,
            f"Smoke tests for {deployment.environment} at {deployment.sha}",
            "smoke",
            ["Set up job", "Run actions/checkout@v5", "Smoke tests", "Complete job"],
        )
        run.deployment_id = deployment.id
        if deployment.environment in self.scenario.environments:
            run.will_fail, run.will_hang = self._attempt(deployment.environment, "smoke")
        return run

    def start_monitor(self, env: str, sha: str) -> CheckRun:
        store = self.store
        now = store.now()
        for cid, menv in self.monitors.items():
            old = store.check_runs[cid]
            if menv == env and old.status != "completed":
                old.status, old.conclusion, old.completed_at = "completed", "neutral", now
                old.title = "Superseded"
                old.summary = f"A newer deployment to {env} replaced {old.head_sha}."
                self.monitor_countdown.pop(cid, None)
        suite = self._suite(sha, env, app="monitor")
        check = CheckRun(
            id=store.new_id(),
            name="monitor",
            head_sha=sha,
            suite_id=suite.id,
            app="monitor",
            status="in_progress",
            conclusion=None,
            created_at=now,
            started_at=now,
            title="Monitors green",
            summary=f"Watching {env} at {sha}.",
            details_url=self.health_url(env),
        )
        store.check_runs[check.id] = check
        self.monitors[check.id] = env
        fails, _ = self._attempt(env, "monitor")
        if fails:
            self.monitor_countdown[check.id] = MONITOR_FAIL_AFTER
        return check

    # -- workflow_dispatch and approvals -----------------------------------------------------

    def dispatch(self, wf: Workflow, ref: str, inputs: Any, actor: str) -> Run:
        if self.actions is not None and self.actions.owns(wf):
            return self.actions.dispatch(wf, ref, inputs, actor)
        if wf.id != self.deploy_wf.id:
            raise ApiError(422, "Workflow does not have 'workflow_dispatch' trigger")
        repo = self.store.repo
        name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
        head = repo.ref(f"refs/heads/{name}")
        if head is None:
            tag = repo.ref(f"refs/tags/{name}")
            head = repo.full_sha(tag, "commit") if tag else None
        if head is None:
            raise ApiError(422, f"No ref found for: {ref}")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise ApiError(422, "Invalid request.\n\nFor 'properties/inputs', must be an object.")
        unexpected = sorted(set(inputs) - set(wf.dispatch_inputs))
        if unexpected:
            raise ApiError(422, f"Unexpected inputs provided: {unexpected}".replace("'", '"'))
        if len(inputs) > 25:
            raise ApiError(422, "Invalid request.\n\nNo more than 25 properties are allowed.")
        for key, spec in wf.dispatch_inputs.items():
            value = inputs.get(key)
            if spec.get("required") and (value is None or value == ""):
                raise ApiError(422, f"Required input '{key}' not provided")
            if value is not None and spec.get("type") == "choice" and value not in spec["options"]:
                raise ApiError(
                    422,
                    f"Provided value '{value}' for input '{key}' not in the list of allowed values",
                )
        env = str(inputs["environment"])
        wanted = str(inputs.get("sha") or "")
        target = head
        if wanted:
            hexadecimal = all(c in "0123456789abcdef" for c in wanted)
            target = (repo.full_sha(wanted, "commit") or "") if hexadecimal else ""
        run = self.start_deploy(env, name, head, target, "workflow_dispatch", actor)
        run.display_title = f"Deploy {wanted or head} to {env}"
        return run

    def pending(self, run: Run) -> list[tuple[str, list[str]]]:
        if run.kind != "deploy" or run.phase != WAITING:
            return []
        env = self.store.environments[run.environment]
        return [(env.name, list(env.reviewers))]

    def review(
        self, run: Run, env_ids: list[int], state: str, comment: str, login: str
    ) -> list[Deployment]:
        waiting = self.pending(run)
        if not waiting:
            raise ApiError(422, "No pending deployment requests to approve or reject")
        env = self.store.environments[run.environment]
        if env.id not in env_ids:
            raise ApiError(422, "Environment ids do not match pending deployment requests")
        if login not in env.reviewers or (
            env.prevent_self_review and login == run.triggering_actor
        ):
            raise ApiError(422, "You are not an allowed reviewer for this deployment")
        run.approvals.append(Approval(env.name, state, login, comment, self.store.now()))
        deployment = self.store.deployments[run.deployment_id] if run.deployment_id else None
        if state == "approved":
            run.needs_approval = False
            if run.timer_left <= 0:
                self._start_deploy_job(run)
        else:
            self._conclude(run, "failure")
            if deployment is not None:
                self.store.add_deployment_status(
                    deployment,
                    "failure",
                    BOT_LOGIN,
                    description="Deployment rejected",
                    by_actions=True,
                )
        return [deployment] if deployment else []

    def cancel(self, run: Run) -> None:
        if run.kind == "actions" and self.actions is not None:
            self.actions.cancel(run)
            return
        if run.status == "completed":
            raise ApiError(409, "Cannot cancel a workflow run that is completed.")
        self._conclude(run, "cancelled")
        if run.deployment_id is not None:
            deployment = self.store.deployments[run.deployment_id]
            self.store.add_deployment_status(
                deployment, "error", BOT_LOGIN, description="Run cancelled", by_actions=True
            )

    # -- stepping ----------------------------------------------------------------------------

    def _jobs(self, run: Run) -> list[Job]:
        return [self.store.jobs[j] for j in run.job_ids]

    def _touch(self, run: Run, status: str) -> None:
        now = self.store.now()
        run.status = status
        run.updated_at = now
        if status == "in_progress" and run.run_started_at is None:
            run.run_started_at = now
        for job in self._jobs(run):
            if job.status != "completed":
                job.status = status
                if status == "in_progress" and job.started_at is None:
                    job.started_at = now
                check = self.store.check_runs[job.id]
                check.status = status
                if status == "in_progress" and check.started_at is None:
                    check.started_at = now
        self.store.suites[run.suite_id].updated_at = now

    def _progress_steps(self, run: Run, upto: int) -> None:
        now = self.store.now()
        for job in self._jobs(run):
            for step in job.steps:
                if step.number < upto and step.status != "completed":
                    step.status, step.conclusion = "completed", "success"
                    step.started_at = step.started_at or now
                    step.completed_at = now
                elif step.number == upto and step.status == "queued":
                    step.status, step.started_at = "in_progress", now

    def _conclude(self, run: Run, conclusion: str) -> None:
        now = self.store.now()
        for job in self._jobs(run):
            for step in job.steps:
                if step.status != "completed":
                    if conclusion == "success":
                        step.conclusion = "success"
                    elif step.status == "in_progress":
                        step.conclusion = conclusion
                    else:
                        step.conclusion = "skipped"
                    step.status = "completed"
                    step.started_at = step.started_at or now
                    step.completed_at = now
            self.store.complete_job(job, conclusion, now)
        run.status, run.conclusion, run.updated_at = "completed", conclusion, now
        run.phase = DONE
        self.store.suites[run.suite_id].updated_at = now
        if not self.quiet:
            for listener in self.run_listeners:
                listener(run)

    def _start_deploy_job(self, run: Run) -> None:
        store = self.store
        env = store.ensure_environment(run.environment)
        if run.phase == 0 and (env.reviewers or env.wait_timer):
            self._touch(run, "waiting")
            run.waiting_since = store.now()
            run.needs_approval = bool(env.reviewers)
            run.timer_left = env.wait_timer  # one CI step stands for one minute
            if run.target_sha:
                self._waiting_status(self._deployment(run))
            run.phase = WAITING
            return
        self._touch(run, "in_progress")
        self._progress_steps(run, 2)
        if not run.target_sha:
            run.phase = 1
            return
        deployment = (
            store.deployments[run.deployment_id] if run.deployment_id else self._deployment(run)
        )
        store.add_deployment_status(
            deployment, "queued", BOT_LOGIN, log_url=self._log_url(run), by_actions=True
        )
        run.phase = 1

    def _deployment(self, run: Run) -> Deployment:
        deployment = self.store.add_deployment(
            run.target_sha,
            run.head_branch or run.target_sha,
            run.environment,
            BOT_LOGIN,
            by_actions=True,
            description="",
        )
        run.deployment_id = deployment.id
        for job in self._jobs(run):
            self.store.check_runs[job.id].deployment_id = deployment.id
        return deployment

    def _waiting_status(self, deployment: Deployment) -> None:
        # REST cannot create ``waiting`` (it is not in the create enum) but GitHub Actions does.
        self.store.record_deployment_status(
            deployment, "waiting", BOT_LOGIN, environment=deployment.environment, by_actions=True
        )

    def _log_url(self, run: Run) -> str:
        return f"{self.shapes.html}/actions/runs/{run.id}"

    def step(self, run: Run) -> bool:
        """Move one run one step; False when it cannot move (waiting, hanging or done)."""
        if run.phase == WAITING and not run.needs_approval and run.status != "completed":
            if run.timer_left > 0:
                run.timer_left -= 1
                return True
            self._start_deploy_job(run)
            return True
        if run.phase in (WAITING, DONE) or run.status == "completed" or run.kind == "actions":
            return False
        if run.kind == "deploy":
            return self._step_deploy(run)
        return self._step_smoke(run)

    def _step_deploy(self, run: Run) -> bool:
        store = self.store
        if run.phase == 0:
            self._start_deploy_job(run)
            return True
        if not run.target_sha:
            self._conclude(run, "failure")
            return True
        deployment = store.deployments[run.deployment_id] if run.deployment_id else None
        assert deployment is not None
        if run.phase == 1:
            store.add_deployment_status(
                deployment, "in_progress", BOT_LOGIN, log_url=self._log_url(run), by_actions=True
            )
            self._progress_steps(run, 3)
            run.phase = 2
            return True
        if run.will_hang:
            return False
        if run.will_fail:
            self._conclude(run, "failure")
            store.add_deployment_status(
                deployment,
                "failure",
                BOT_LOGIN,
                description="Deployment failed",
                log_url=self._log_url(run),
                by_actions=True,
            )
        else:
            self._conclude(run, "success")
            store.add_deployment_status(
                deployment,
                "success",
                BOT_LOGIN,
                log_url=self._log_url(run),
                environment_url=self.health_url(run.environment),
                by_actions=True,
            )
        return True

    def _step_smoke(self, run: Run) -> bool:
        if run.phase == 0:
            self._touch(run, "in_progress")
            self._progress_steps(run, 3)
            run.phase = 1
            return True
        if run.will_hang:
            return False
        self._conclude(run, "failure" if run.will_fail else "success")
        return True

    def _step_monitors(self) -> bool:
        changed = False
        now = self.store.now()
        for cid in list(self.monitor_countdown):
            self.monitor_countdown[cid] -= 1
            changed = True
            if self.monitor_countdown[cid] <= 0:
                del self.monitor_countdown[cid]
                check = self.store.check_runs[cid]
                check.status, check.conclusion, check.completed_at = "completed", "failure", now
                check.title = "Monitor alert"
                check.summary = (
                    f"Error rate above threshold in {self.monitors[cid]} at {check.head_sha}."
                )
        return changed

    # -- merge bot ---------------------------------------------------------------------------

    def _gate_failing(self, sha: str) -> bool:
        latest = self.store.latest_status(sha, "promote/gate")
        return latest is not None and latest.state in ("failure", "error")

    def _bot_candidates(self) -> list[Issue]:
        found = []
        for issue in sorted(self.store.issues.values(), key=lambda i: i.number):
            pull = issue.pull
            if pull is None or issue.state != "open" or pull.draft:
                continue
            if pull.base_ref not in self.scenario.environments:
                continue
            if self.scenario.people_merge and pull.head_ref not in self.scenario.environments:
                continue  # a developer's PR: a person merges it
            if self._gate_failing(pull.head_sha) or self.store.unmet_check(issue):
                continue
            if (issue.number, pull.head_sha, pull.base_sha) in self.bot_failed:
                continue
            self.store.compute_mergeable(issue)
            if pull.mergeable:
                found.append(issue)
        return found

    def _merge_bot(self) -> bool:
        changed = False
        for issue in self._bot_candidates():
            if issue.state != "open":
                continue
            pull = issue.pull
            assert pull is not None
            key = (issue.number, pull.head_sha, pull.base_sha)
            try:
                merged = self.store.merge_pull(issue, self.scenario.merge_method, issue.user)
            except BaseMoved:
                continue
            if merged is None:
                self.bot_failed.add(key)  # e.g. a rebase that conflicts; retried when a side moves
            changed = changed or merged is not None
        return changed

    # -- the clock ---------------------------------------------------------------------------

    def advance(self) -> bool:
        """One CI step: notice pushes, move every run once, merge what the bot may merge."""
        store = self.store
        with store.lock:
            store.sync_refs()
            changed = False
            for run in sorted(store.runs.values(), key=lambda r: r.id):
                if run.status != "completed":
                    changed = self.step(run) or changed
            changed = self._step_monitors() or changed
            for listener in self.tick_listeners:
                listener()
            if self.scenario.merge_bot:
                changed = self._merge_bot() or changed
            for issue in store.issues.values():
                if (
                    issue.pull is not None
                    and issue.state == "open"
                    and issue.pull.mergeable is None
                ):
                    store.compute_mergeable(issue)
                    changed = True
            return changed

    def busy(self) -> bool:
        """Whether another step would change anything."""
        store = self.store
        with store.lock:
            for run in store.runs.values():
                if run.status == "completed" or run.phase == DONE or run.kind == "actions":
                    continue
                if run.phase == WAITING and run.needs_approval:
                    continue
                hung = run.will_hang and (
                    (run.kind == "deploy" and run.phase == 2)
                    or (run.kind == "smoke" and run.phase == 1)
                )
                if not hung:
                    return True
            if self.monitor_countdown:
                return True
            if any(
                i.pull is not None and i.state == "open" and i.pull.mergeable is None
                for i in store.issues.values()
            ):
                return True
            return self.scenario.merge_bot and bool(self._bot_candidates())
