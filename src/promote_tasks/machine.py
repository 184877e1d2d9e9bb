"""The Promote machine: the R1–R9 table, and pure ``derive`` / ``decide`` over a Snapshot.

``derive`` turns GitHub facts into one state per environment and the pipeline-wide halt;
``decide`` picks exactly one next action for the whole pipeline. Neither does I/O: the shell
gathers the Snapshot, performs the action's effects, and derives again.
"""

from __future__ import annotations

import dataclasses
import re

from promote_tasks.model import DEPLOY_FAILED
from promote_tasks.model import DEPLOY_SUCCESS
from promote_tasks.model import DEPLOY_SUPERSEDED
from promote_tasks.model import RUN_FAILED
from promote_tasks.model import Action
from promote_tasks.model import CommitStatus
from promote_tasks.model import Deployment
from promote_tasks.model import Effect
from promote_tasks.model import EnvFacts
from promote_tasks.model import Environment
from promote_tasks.model import EnvState
from promote_tasks.model import Evidence
from promote_tasks.model import Pipeline
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Result
from promote_tasks.model import Rollback
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.model import Verdict
from promote_tasks.model import WorkflowRun
from promote_tasks.model import effect
from promote_tasks.model import seconds_between


@dataclasses.dataclass(frozen=True)
class Transition:
    """One row of the machine. ``None`` as source or target is another machine."""

    id: str
    source: State | None
    target: State | None
    trigger: str
    effect: str
    production: bool | None = None  # the row applies only to (True) / outside (False) production


TRANSITIONS: tuple[Transition, ...] = (
    Transition("R1", None, State.DEPLOYING, "PR merged into env branch", "deploy pipeline triggered for that environment"),
    Transition("R2", State.DEPLOYING, State.DEPLOYED, "deployment succeeded", ""),
    Transition("R3", State.DEPLOYING, State.FAILED, "deployment failed", "all work halts"),
    Transition("R4", State.DEPLOYED, State.VALIDATING, "checks initiated", "`promote/<env>` = pending; each validator started"),
    Transition("R5", State.VALIDATING, State.PROMOTED, "every validator passed", "`promote/<env>` = success"),
    Transition("R6", State.VALIDATING, State.FAILED, "a validator failed", "`promote/<env>` = failure"),
    Transition("R7", State.PROMOTED, None, "not production", "open PR `<env> → <next env>` with `Promote-Plan:`", production=False),
    Transition("R8", State.PROMOTED, State.COMPLETE, "production", "plan moved `doing/ → done/`; parent completed when all siblings are", production=True),
    Transition("R9", State.FAILED, None, "fix plan created", "rollback deployed first; then fix plan with highest priority"),
)  # fmt: skip

ROWS = {row.id: row for row in TRANSITIONS}

PLAN_LINE = re.compile(r"^Promote-Plan:\s*(\S+)\s*$", re.MULTILINE)
FEATURE_PREFIX = "feature/"


def verdict_context(env: str, validator: str | None = None) -> str:
    """The commit-status context the tool writes its verdicts under."""
    return f"promote/{env}" if validator is None else f"promote/{env}/{validator}"


def fix_plan_id(key: str) -> str:
    """A fix plan's id follows from its failure key, so a re-run finds the same plan."""
    env, _, sha = key.partition("@")
    return f"fix-{env}-{sha[:7]}"


def plan_of(pull: PullRequest | None) -> str | None:
    """Plan identity: ``feature/<plan-id>`` branches, or the ``Promote-Plan:`` line."""
    if pull is None:
        return None
    found = PLAN_LINE.search(pull.body or "")
    if found:
        return found.group(1)
    if pull.head_ref.startswith(FEATURE_PREFIX) and len(pull.head_ref) > len(FEATURE_PREFIX):
        return pull.head_ref[len(FEATURE_PREFIX) :]
    return None


# -- derive ------------------------------------------------------------------------------------


def derive(snapshot: Snapshot, pipeline: Pipeline) -> PipelineState:
    """Each environment's state, the halt, and which plan may move, from facts alone."""
    envs = tuple(
        _derive_env(snapshot.env(env.name), env, pipeline, snapshot.plans)
        for env in pipeline.environments
    )
    open_fixes = sorted(
        (p for p in snapshot.plans if p.fix_key and not p.done), key=lambda p: (p.priority, p.id)
    )
    unfiled = [s for s in envs if s.state is State.FAILED and s.fix_plan is None]
    unfiled += [s for s in envs if s.restores is not None and s.restores_fix is None]
    halted = bool(open_fixes or unfiled)
    # A fix plan that failed in turn waits for its own fix plan: the leaf is the one to move.
    parents = {p.parent for p in open_fixes}
    leaves = [p for p in open_fixes if p.id not in parents] or open_fixes
    fix_plan = leaves[0].id if leaves else None
    if halted:
        active = fix_plan
    else:
        in_flight = [
            s
            for s in envs
            if s.plan is not None and not _settled(s, snapshot.env(s.name), snapshot.plans)
        ]
        active = in_flight[-1].plan if in_flight else None
    return PipelineState(snapshot.repository, envs, halted, fix_plan, active)


def _derive_env(
    facts: EnvFacts, env: Environment, pipeline: Pipeline, plans: tuple[Plan, ...]
) -> EnvState:
    base = EnvState(name=env.name, branch=env.branch, sha=facts.head, state=None)
    if facts.head is None:
        return dataclasses.replace(base, violation=f"branch {env.branch} does not exist")
    head = facts.head
    plan = plan_of(facts.merged_pull)
    verdicts = _statuses(facts.statuses, verdict_context(env.name))
    deployments = sorted(
        (d for d in facts.deployments if d.sha == head and not d.is_rollback), key=lambda d: d.id
    )
    runs = sorted(
        (r for r in facts.runs if r.head_sha == head and is_deploy_run(r, pipeline)),
        key=lambda r: r.id,
    )
    evidence: list[Evidence] = []
    if facts.merged_pull is not None:
        pr = facts.merged_pull
        evidence.append(
            Evidence("pull_request", pr.number, pr.url, f"#{pr.number} merged into {env.branch}")
        )

    failures: list[Evidence] = []
    for status in verdicts:
        if status.state in DEPLOY_FAILED:
            failures.append(_status_evidence(status))
    for deployment in deployments:
        latest = deployment.latest
        if latest is not None and latest.state in DEPLOY_FAILED:
            failures.append(
                Evidence("deployment", deployment.id, latest.url or deployment.url,
                         f"deployment {deployment.id} {latest.state}")
            )  # fmt: skip
    for run in runs:
        if run.status == "completed" and run.conclusion in RUN_FAILED:
            failures.append(
                Evidence(
                    "workflow_run", run.id, run.url, f"{run.name} run {run.id} {run.conclusion}"
                )
            )

    newest = deployments[-1] if deployments else None
    newest_state = newest.latest.state if newest is not None and newest.latest else ""
    if failures:
        state: State | None = State.FAILED
        evidence.extend(failures)
    elif verdicts and verdicts[-1].state == "success":
        state = State.COMPLETE if env.production else State.PROMOTED
        evidence.append(_status_evidence(verdicts[-1]))
    elif verdicts and verdicts[-1].state == "pending":
        state = State.VALIDATING
        evidence.append(_status_evidence(verdicts[-1]))
    elif newest is not None and newest_state in DEPLOY_SUCCESS | DEPLOY_SUPERSEDED:
        state = ROWS["R2"].target  # the deployment succeeded
        evidence.append(
            Evidence("deployment", newest.id, newest.url, f"deployment {newest.id} succeeded")
        )
    elif newest is not None or runs:
        state = ROWS["R2"].source  # a deployment is under way
        if newest is not None:
            evidence.append(Evidence("deployment", newest.id, newest.url,
                                     f"deployment {newest.id} {newest_state or 'created'}"))  # fmt: skip
        for run in runs:
            evidence.append(
                Evidence("workflow_run", run.id, run.url, f"{run.name} run {run.id} {run.status}")
            )
    elif facts.merged_pull is not None:
        state = State.DEPLOYING  # just merged: the deploy has not shown up yet
    else:
        state = None

    violation = None
    if facts.merged_pull is None and not verdicts and (state is not None or facts.deployments):
        violation = (
            f"head {head[:7]} of {env.branch} did not come from a merged pull request "
            "(a direct push?); merge through a PR or roll back by hand"
        )

    rollbacks = sorted(
        (d for d in facts.deployments if d.is_rollback and d.rollback_of == head),
        key=lambda d: d.id,
    )
    rollback = None
    if rollbacks:
        last = rollbacks[-1]
        rollback = Rollback(last.id, last.sha, _rollback_state(last, facts), last.plan)
        evidence.append(Evidence("deployment", last.id, last.url,
                                 f"rollback to {last.sha[:7]}: {rollback.state or 'created'}"))  # fmt: skip
    key = f"{env.name}@{head}"
    fix = _fix_plan_for(key, plans)
    restores = _restored_failure(facts, env)
    if restores is not None:
        evidence.append(
            Evidence(
                "rollback",
                None,
                None,
                f"restores {env.name} after the failure of {restores.partition('@')[2][:7]}",
            )
        )
    return dataclasses.replace(
        base,
        state=state,
        plan=plan,
        production=env.production,
        evidence=tuple(evidence),
        verdicts=_verdicts(facts, env),
        violation=violation,
        rollback=rollback,
        fix_plan=fix,
        restores=restores,
        restores_fix=_fix_plan_for(restores, plans) if restores else None,
    )


ROLLBACK_OF_LINE = re.compile(r"^Promote-Rollback-Of:\s*(\S+@[0-9a-f]{40})\s*$", re.MULTILINE)
RESET_MARKER = re.compile(r"^rolled back (\S+@[0-9a-f]{40})$")


def rollback_marker_context(env: str) -> str:
    """The status a ``reset`` rollback leaves on the commit it reset the branch to."""
    return verdict_context(env, "rollback")


def _restored_failure(facts: EnvFacts, env: Environment) -> str | None:
    """The failed ``env@sha`` that this head rolled back, by revert PR or by reset."""
    if facts.merged_pull is not None:
        found = ROLLBACK_OF_LINE.search(facts.merged_pull.body or "")
        if found and found.group(1).startswith(f"{env.name}@"):
            return found.group(1)
    markers = _statuses(facts.statuses, rollback_marker_context(env.name))
    if markers:
        found = RESET_MARKER.match(markers[-1].description)
        if found and found.group(1).startswith(f"{env.name}@"):
            return found.group(1)
    return None


def _fix_plan_for(key: str | None, plans: tuple[Plan, ...]) -> str | None:
    """The fix plan filed for a failure: by its key, or by the id the key gives (a store may
    know finished plans by name alone)."""
    if key is None:
        return None
    wanted = fix_plan_id(key)
    return next((p.id for p in plans if p.fix_key == key or p.id == wanted), None)


def _rollback_state(record: Deployment, facts: EnvFacts) -> str:
    """How far a rollback got: its own statuses, else those of the deploy it set off.

    The tool's rollback deployment is a record; when the rollback dispatches the deploy
    workflow, CI reports on a deployment of its own at the same sha, created after the record.
    """
    if record.latest is not None:
        return record.latest.state
    followers = sorted(
        (d for d in facts.deployments
         if not d.is_rollback and d.sha == record.sha and d.id > record.id and d.latest is not None),
        key=lambda d: d.id,
    )  # fmt: skip
    return followers[-1].latest.state if followers and followers[-1].latest else ""


def is_deploy_run(run: WorkflowRun, pipeline: Pipeline) -> bool:
    workflow = pipeline.deploy_workflow
    return workflow is not None and run.path.rsplit("/", 1)[-1] == workflow


def _statuses(statuses: tuple[CommitStatus, ...], context: str) -> list[CommitStatus]:
    return sorted((s for s in statuses if s.context == context), key=lambda s: s.id)


def _status_evidence(status: CommitStatus) -> Evidence:
    text = f"{status.context} {status.state}" + (
        f": {status.description}" if status.description else ""
    )
    return Evidence("commit_status", status.id, status.target_url, text)


_RECORDED = {"success": Result.PASSED, "failure": Result.FAILED, "error": Result.FAILED}


def _verdicts(facts: EnvFacts, env: Environment) -> tuple[Verdict, ...]:
    """One verdict per configured validator: fresh from the shell, else as last recorded."""
    fresh = {v.validator: v for v in facts.verdicts}
    out = []
    for name in env.validators:
        if name in fresh:
            out.append(fresh[name])
            continue
        recorded = _statuses(facts.statuses, verdict_context(env.name, name))
        if recorded:
            last = recorded[-1]
            out.append(
                Verdict(
                    name,
                    _RECORDED.get(last.state, Result.PENDING),
                    last.target_url,
                    last.description,
                )
            )
        else:
            out.append(Verdict(name, Result.PENDING))
    return tuple(out)


def _settled(state: EnvState, facts: EnvFacts, plans: tuple[Plan, ...]) -> bool:
    """Has this instance finished its pass: complete, or promoted and carried onward?"""
    if state.state is State.COMPLETE:
        return state.plan is None or any(p.id == state.plan and p.done for p in plans)
    if state.state is State.FAILED:  # resolved once its fix plan is done
        return any(p.id == state.fix_plan and p.done for p in plans)
    if state.state is State.PROMOTED:
        shas = {state.sha, facts.branch_head} - {None}
        return bool(facts.next_contains_head) or any(
            p.merged and p.head_sha in shas for p in facts.promotions
        )
    return False


# -- decide ------------------------------------------------------------------------------------


def _take(
    row_id: str,
    env: EnvState,
    *effects: Effect,
    observed: bool = False,
    instance: State | None = None,
) -> Action:
    """The action for one table row; ``observed``: the facts already show the row's target;
    ``instance``: the state of the instance acted on, when it is no longer the head."""
    row = ROWS[row_id]
    expected = row.target if observed else row.source
    if expected is not None and (instance or env.state) is not expected:
        raise AssertionError(f"{row_id} taken from {env.state} in {env.name}")  # a bug in decide
    if row.production is not None and row.production != env.production:
        raise AssertionError(f"{row_id} taken in {env.name} (production={env.production})")
    return Action(row_id, env.name, row.source, row.target, effects, plan=env.plan)


def decide(state: PipelineState, snapshot: Snapshot, pipeline: Pipeline) -> Action:
    """Exactly one next action for the whole pipeline.

    Failures come first (record, roll back, file the fix plan). Then, downstream first, the
    one plan allowed to move: the fix plan while halted, else the plan furthest along.
    """
    for env in state.environments:
        if env.state is State.FAILED and env.rollback is not None and env.rollback.failed:
            return Action(
                None,
                env.name,
                env.state,
                stop=(
                    f"rollback of {env.name} to {env.rollback.target[:7]} failed "
                    f"(deployment {env.rollback.deployment_id}); deploy {env.rollback.target[:7]} "
                    f"to {env.name} by hand, then run `promote next` again"
                ),
            )
        if env.state is State.FAILED and env.restores is not None:
            # The head a revert or reset put back did not deploy: that is a failed rollback,
            # not a new failure to roll back in turn.
            failed = env.restores.partition("@")[2]
            return Action(
                None,
                env.name,
                env.state,
                stop=(
                    f"rollback of {env.name} failed: {env.sha[:7] if env.sha else '?'}, which restores "
                    f"{env.name} after the failure of {failed[:7]}, did not deploy; deploy a "
                    f"known-good commit to {env.name} by hand, then run `promote next` again"
                ),
            )
    waits: list[str] = []
    for env in state.environments:
        if env.state is State.FAILED:
            action = _on_failure(env, snapshot.env(env.name), pipeline, snapshot.plans, waits)
            if action is not None:
                return action
    for env in state.environments:
        if env.restores is not None and env.restores_fix is None:
            action = _after_restore(env, snapshot.env(env.name), waits)
            if action is not None:
                return action
    for env in reversed(state.environments):
        if env.state in (None, State.FAILED):
            if env.violation:
                waits.append(env.violation)
            continue
        if env.violation:
            waits.append(env.violation)
            continue
        if state.halted:
            allowed = state.fix_plan is not None and env.plan == state.fix_plan
        else:
            allowed = state.active_plan is None or env.plan == state.active_plan
        if not allowed:
            if not _settled(env, snapshot.env(env.name), snapshot.plans):
                holder = (
                    f"fix plan {state.fix_plan}" if state.halted else f"plan {state.active_plan}"
                )
                waits.append(f"{env.name}: plan {env.plan} waits while {holder} is in flight")
            continue
        action = _progress(env, snapshot, pipeline, waits)
        if action is not None:
            return action
    return Action(None, waiting_for=waits[0] if waits else None, plan=state.active_plan)


def _after_restore(env: EnvState, facts: EnvFacts, waits: list[str]) -> Action | None:
    """A revert or reset moved the branch off the failed sha: once that head is deployed,
    file the failure's fix plan (R9 for the failed instance, which is no longer the head)."""
    assert env.sha is not None
    assert env.restores is not None
    failed_sha = env.restores.partition("@")[2]
    # Only a deploy made after the failure shows the restored head running again (a reset
    # target has older successful deployments of its own).
    since = max((d.id for d in facts.deployments if d.sha == failed_sha), default=0)
    deploys = sorted(
        (d for d in facts.deployments if d.sha == env.sha and not d.is_rollback and d.id > since),
        key=lambda d: d.id,
    )
    latest = deploys[-1].latest.state if deploys and deploys[-1].latest else ""
    if latest not in DEPLOY_SUCCESS | DEPLOY_SUPERSEDED:
        waits.append(f"rollback of {env.name} to {env.sha[:7]} ({latest or 'not deployed yet'})")
        return None
    culprit = CULPRIT_LINE.search(facts.merged_pull.body or "") if facts.merged_pull else None
    return _take(
        "R9", env,
        effect("file-fix-plan", id=fix_plan_id(env.restores), key=env.restores, environment=env.name,
               failed_sha=failed_sha, culprit=culprit.group(1) if culprit else "",
               rollback_target=env.sha, rollback_state=latest, failed_plan="", parent=""),
        instance=State.FAILED,
    )  # fmt: skip


CULPRIT_LINE = re.compile(r"^Promote-Culprit:\s*#?(\d+)\s*$", re.MULTILINE)


def _on_failure(
    env: EnvState, facts: EnvFacts, pipeline: Pipeline, plans: tuple[Plan, ...], waits: list[str]
) -> Action | None:
    spec = pipeline.get(env.name)
    assert env.sha is not None
    recorded = _statuses(facts.statuses, verdict_context(env.name))
    if not any(s.state in DEPLOY_FAILED for s in recorded):
        # The failure came from the deploy itself: make it the sticky verdict on the sha.
        reason = next(
            (e.summary for e in env.evidence if e.kind != "pull_request"), "deploy failed"
        )
        status = effect("set-status", sha=env.sha, context=verdict_context(env.name),
                        state="failure", description=reason[:140])  # fmt: skip
        return _take("R3", env, status, observed=True)
    key = env.key
    if env.rollback is None:
        return _take(
            "R9", env,
            effect("rollback", environment=env.name, failed_sha=env.sha, strategy=spec.rollback,
                   plan=fix_plan_id(key)),
        )  # fmt: skip
    if not env.rollback.succeeded:
        waiting = f"rollback of {env.name} to {env.rollback.target[:7]} ({env.rollback.state or 'created'})"
        waits.append(waiting)
        dispatched = any(
            r.event == "workflow_dispatch" and r.head_sha == env.sha and is_deploy_run(r, pipeline)
            for r in facts.runs
        )
        if env.rollback.state or dispatched or not pipeline.deploy_workflow:
            return None
        # Only the record exists and no deploy was dispatched: a run died inside the strategy.
        # Its steps are idempotent, so run it again: it finishes what is missing, once.
        again = effect("rollback", environment=env.name, failed_sha=env.sha, strategy=spec.rollback,
                       plan=fix_plan_id(key))  # fmt: skip
        return Action(
            None, env.name, env.state, env.state, (again,), waiting_for=waiting, plan=env.plan
        )
    if env.fix_plan is None:
        culprit = next((e for e in env.evidence if e.kind == "pull_request"), None)
        # A fix plan that fails gets a child fix plan: completing the child completes it too.
        parent = env.plan if env.plan and any(p.id == env.plan and p.fix_key for p in plans) else ""
        return _take(
            "R9", env,
            effect("file-fix-plan", id=fix_plan_id(key), key=key, environment=env.name,
                   failed_sha=env.sha, culprit=str(culprit.id) if culprit else "",
                   rollback_target=env.rollback.target, rollback_state=env.rollback.state,
                   failed_plan=env.plan or "", parent=parent),
        )  # fmt: skip
    return None


def _progress(
    env: EnvState, snapshot: Snapshot, pipeline: Pipeline, waits: list[str]
) -> Action | None:
    facts = snapshot.env(env.name)
    spec = pipeline.get(env.name)
    assert env.sha is not None
    if env.state is State.DEPLOYING:
        pending_deploy = [e for e in env.evidence if e.kind in ("deployment", "workflow_run")]
        merged_at = facts.merged_pull.merged_at if facts.merged_pull else None
        if (
            not pending_deploy
            and pipeline.deploy_workflow
            and merged_at
            and seconds_between(merged_at, snapshot.taken_at) >= pipeline.deploy_grace_seconds
        ):
            dispatch = effect("dispatch-deploy", environment=env.name, branch=env.branch,
                              sha=env.sha, workflow=pipeline.deploy_workflow)  # fmt: skip
            return _take("R1", env, dispatch, observed=True)
        waits.append(f"deployment of {env.name} at {env.sha[:7]}")
        return None
    if env.state is State.DEPLOYED:
        # The instance turns "validating" with its last write, so a run that dies half-way
        # leaves it "deployed" and the next run starts every validator again (idempotently).
        effects = []
        for name in spec.validators:
            effects.append(
                effect("start-validator", environment=env.name, sha=env.sha, validator=name)
            )
            effects.append(effect("set-status", sha=env.sha, context=verdict_context(env.name, name),
                                  state="pending", description="started"))  # fmt: skip
        effects.append(effect("set-status", sha=env.sha, context=verdict_context(env.name),
                              state="pending", description="validating"))  # fmt: skip
        return _take("R4", env, *effects)
    if env.state is State.VALIDATING:
        return _validate(env, facts, waits)
    if env.state is State.PROMOTED and not env.production:
        if _settled(env, facts, snapshot.plans):
            return None
        open_pr = next((p for p in facts.promotions if p.state == "open"), None)
        following = pipeline.after(env.name)
        assert following is not None
        if open_pr is not None:
            waits.append(f"merge of #{open_pr.number} ({env.branch} → {following.branch})")
            return None
        return _take(
            "R7", env,
            effect("open-pr", head=env.branch, base=following.branch, sha=env.sha,
                   plan=env.plan or "", environment=env.name),
        )  # fmt: skip
    if env.state is State.COMPLETE and env.plan is not None:
        if any(p.id == env.plan and p.done for p in snapshot.plans):
            return None
        return _take("R8", env, effect("complete-plan", plan=env.plan), observed=True)
    return None


def _validate(env: EnvState, facts: EnvFacts, waits: list[str]) -> Action | None:
    assert env.sha is not None
    recorded = {
        v: _statuses(facts.statuses, verdict_context(env.name, v))
        for v in (x.validator for x in env.verdicts)
    }
    state_of = {Result.PASSED: "success", Result.FAILED: "failure", Result.PENDING: "pending"}
    updates = [
        effect("set-status", sha=env.sha, context=verdict_context(env.name, v.validator),
               state=state_of[v.result], description=(v.summary or v.result.value)[:140],
               target_url=v.url or "")
        for v in env.verdicts
        if not recorded[v.validator] or recorded[v.validator][-1].state != state_of[v.result]
    ]  # fmt: skip
    failed = [v for v in env.verdicts if v.result is Result.FAILED]
    if failed:
        names = ", ".join(v.validator for v in failed)
        verdict = effect("set-status", sha=env.sha, context=verdict_context(env.name),
                         state="failure", description=f"failed: {names}"[:140])  # fmt: skip
        return _take("R6", env, *updates, verdict)
    pending = [v.validator for v in env.verdicts if v.result is Result.PENDING]
    if not pending:
        verdict = effect("set-status", sha=env.sha, context=verdict_context(env.name),
                         state="success", description="all validators passed")  # fmt: skip
        return _take("R5", env, *updates, verdict)
    waits.append(f"validation of {env.name} at {env.sha[:7]}: {', '.join(pending)}")
    if updates:
        return Action(None, env.name, env.state, env.state, tuple(updates),
                      waiting_for=waits[-1], plan=env.plan)  # fmt: skip
    return None


# -- the pre-merge gate ------------------------------------------------------------------------

GATE_CONTEXT = "promote/gate"
TOOL_BRANCH_PREFIX = "promote/"  # branches the tool itself opens PRs from (reverts)
ROLLBACK_GATE = "a rollback opened by promote"


@dataclasses.dataclass(frozen=True)
class Gate:
    """The ``promote/gate`` verdict for one open PR into an environment branch."""

    pull: int
    sha: str
    state: str  # success | failure
    description: str


def gate_for(pull: PullRequest, state: PipelineState, pipeline: Pipeline) -> Gate:
    """May this PR merge? Only feature/* → first env and env → next env, in order, one plan at
    a time, the source promoted at the PR's head, and nothing but the fix plan while halted."""

    def verdict(ok: bool, text: str) -> Gate:
        return Gate(pull.number, pull.head_sha, "success" if ok else "failure", text[:140])

    branches = [e.branch for e in pipeline.environments]
    index = branches.index(pull.base_ref)
    if pull.head_ref.startswith(TOOL_BRANCH_PREFIX):
        # Anyone can name a branch promote/...: only a rollback of the base's current failure
        # passes, as promote's revert strategy opens it.
        target = state.environments[index]
        found = ROLLBACK_OF_LINE.search(pull.body or "")
        if (
            target.state is State.FAILED
            and found
            and found.group(1) == f"{target.name}@{target.sha}"
        ):
            return verdict(True, ROLLBACK_GATE)
        return verdict(
            False,
            f"{TOOL_BRANCH_PREFIX}* PRs are promote's rollbacks of a failure in {target.name}; "
            "this is not one",
        )
    if index == 0:
        plan = plan_of(pull)
        if plan is None:
            return verdict(
                False, f"{pull.base_ref} takes PRs from {FEATURE_PREFIX}<plan-id> branches"
            )
    else:
        source = state.environments[index - 1]
        if pull.head_ref != source.branch:
            return verdict(
                False, f"skips an environment: {pull.base_ref} takes PRs from {source.branch} only"
            )
        if source.state is not State.PROMOTED or source.sha != pull.head_sha:
            label = source.state.value if source.state else "not deployed"
            if source.sha != pull.head_sha:
                label = f"at {(source.sha or 'nothing')[:7]} now"
            return verdict(
                False, f"{source.name} is not promoted at {pull.head_sha[:7]} (it is {label})"
            )
        plan = source.plan
    if state.halted:
        if state.fix_plan is None or plan != state.fix_plan:
            holder = f"fix plan {state.fix_plan}" if state.fix_plan else "a fix plan"
            return verdict(False, f"halted: a failure is unresolved; only {holder} may merge")
    elif state.active_plan is not None and plan != state.active_plan:
        return verdict(False, f"one plan at a time: plan {state.active_plan} is in flight")
    return verdict(True, "ready to merge" + (f" (plan {plan})" if plan else ""))


def gates(state: PipelineState, snapshot: Snapshot, pipeline: Pipeline) -> tuple[Gate, ...]:
    """Gates for every open PR whose base is an environment branch.

    ``promote/gate`` is a commit status: it belongs to the head commit, not to the PR. When
    several PRs share a head (``feature/x`` into ``dev`` and into ``main``), the commit gets
    the first failure among them, so a second PR can never borrow the first one's success.
    """
    branches = {e.branch for e in pipeline.environments}
    own = [gate_for(p, state, pipeline) for p in snapshot.open_pulls if p.base_ref in branches]
    failing: dict[str, Gate] = {}
    for gate in own:
        if gate.state == "failure":
            failing.setdefault(gate.sha, gate)
    return tuple(
        gate
        if gate.sha not in failing or failing[gate.sha] is gate
        else dataclasses.replace(
            gate,
            state="failure",
            description=f"#{failing[gate.sha].pull} at this commit: {failing[gate.sha].description}"[
                :140
            ],
        )
        for gate in own
    )
