"""The Promote machine: the R1–R9 table, and pure ``derive`` (facts → a state per environment
and the halt) and ``decide`` (exactly one next action for the pipeline)."""

from __future__ import annotations

import dataclasses

from promote_tasks import ledger
from promote_tasks.ledger import FIX_PREFIX
from promote_tasks.ledger import fix_plan_id
from promote_tasks.ledger import is_bookkeeping
from promote_tasks.ledger import parse_key
from promote_tasks.ledger import plans_listed
from promote_tasks.ledger import reset_of
from promote_tasks.ledger import rollback_marker_context
from promote_tasks.ledger import rollback_of
from promote_tasks.ledger import undone
from promote_tasks.ledger import verdict_context
from promote_tasks.model import DEPLOY_FAILED
from promote_tasks.model import DEPLOY_SUCCESS
from promote_tasks.model import DEPLOY_SUPERSEDED
from promote_tasks.model import RUN_FAILED
from promote_tasks.model import Action
from promote_tasks.model import CloseChecklist
from promote_tasks.model import Commit
from promote_tasks.model import CommitStatus
from promote_tasks.model import CompletePlans
from promote_tasks.model import Deployment
from promote_tasks.model import DispatchDeploy
from promote_tasks.model import Effect
from promote_tasks.model import EnvFacts
from promote_tasks.model import Environment
from promote_tasks.model import EnvState
from promote_tasks.model import Evidence
from promote_tasks.model import FileFixPlan
from promote_tasks.model import OpenPromotion
from promote_tasks.model import Pipeline
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Result
from promote_tasks.model import RollBack
from promote_tasks.model import Rollback
from promote_tasks.model import SetStatus
from promote_tasks.model import Snapshot
from promote_tasks.model import StartValidator
from promote_tasks.model import State
from promote_tasks.model import Verdict
from promote_tasks.model import WorkflowRun
from promote_tasks.model import duration
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

FEATURE_PREFIX = "feature/"
REVERT_PREFIX = "promote/revert-"  # the branches of the revert strategy's PRs


def plan_of(pull: PullRequest | None) -> str | None:
    """Plan identity: ``feature/<plan-id>`` branches, or the ``Promote-Plan:`` line."""
    if pull is None:
        return None
    listed = plans_listed(pull.body)
    if listed:
        return listed[0]
    if pull.head_ref.startswith(FEATURE_PREFIX) and len(pull.head_ref) > len(FEATURE_PREFIX):
        return pull.head_ref[len(FEATURE_PREFIX) :]
    return None


# -- lineage: what a head carries, and whether it came the right way ---------------------------


@dataclasses.dataclass(frozen=True)
class Lineage:
    """The commits between an environment's newest validated commit and its branch tip, read.

    ``plans``: the plans of the pull requests that brought them (each once, newest first);
    ``taken_out``: plans a rollback of this branch took back out; ``violating``: commits that
    did not come the one allowed way, each with why; ``last_validated``: where the walk
    stopped (None: no validated commit was found, as before promote's first validation).
    """

    plans: tuple[str, ...] = ()
    taken_out: tuple[str, ...] = ()
    violating: tuple[tuple[str, str], ...] = ()
    last_validated: str | None = None


def newest_validated(facts: EnvFacts) -> str | None:
    """The newest commit of the branch known validated here (the head, or one below it)."""
    return next((c.sha for c in facts.history if c.validated), None)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """``promote adopt``'s verdict for one environment: its head becomes its known-good
    baseline (``why`` None), or not, and why."""

    environment: str
    sha: str | None
    why: str | None = None


def baselines(snapshot: Snapshot, pipeline: Pipeline, only: str | None = None) -> list[Baseline]:
    """Which environments' heads ``promote adopt`` records as known-good: only where promote
    never validated anything (a branch it is new to), so nothing it judged is overruled."""
    out = []
    for env in pipeline.environments:
        if only is not None and env.name != only:
            continue
        facts = snapshot.env(env.name)
        if facts.head is None:
            out.append(Baseline(env.name, None, f"branch {env.branch} does not exist"))
            continue
        good = newest_validated(facts) or (facts.known_good[0] if facts.known_good else None)
        context = verdict_context(env.name)
        judged = {s.state for s in facts.statuses if s.context == context}
        if good is not None:
            where = "its head" if good == facts.head else good[:7]
            out.append(Baseline(env.name, facts.head, f"already has a known-good commit ({where})"))
        elif judged & {"failure", "error"}:
            out.append(
                Baseline(env.name, facts.head, f"{context} failed on {facts.head[:7]}: roll back")
            )
        else:
            out.append(Baseline(env.name, facts.head))
    return out


def contained(sha: str, facts: EnvFacts, pipeline: Pipeline) -> bool | None:
    """Is ``sha`` in the newest validated head of the environment ``facts`` describe?

    True at or below that head on the first-parent chain, and for a commit above it that adds
    only plan bookkeeping; False for unvalidated commits above it; None when the chain read
    does not say (the shell asks GitHub then: ``upstream_contains``).
    """
    chain = [c.sha for c in facts.history]
    good = newest_validated(facts)
    if sha not in chain:
        return None
    if good is None:
        return False
    at, stop = chain.index(sha), chain.index(good)
    if at >= stop:
        return True
    above = facts.history[at:stop]
    return all(is_bookkeeping(c, pipeline.bookkeeping_dir) for c in above)


def _segment(facts: EnvFacts) -> tuple[list[Commit], str | None]:
    """The chain from the tip down to just above the newest validated commit below the head."""
    segment: list[Commit] = []
    past_head = False
    for commit in facts.history:
        if past_head and commit.validated:
            return segment, commit.sha
        segment.append(commit)
        past_head = past_head or commit.sha == facts.head
    return segment, None


def _groups(
    segment: list[Commit], arrivals: tuple[PullRequest, ...]
) -> list[tuple[PullRequest | None, list[Commit]]]:
    """The segment cut into what each merge brought: a merge or squash commit alone, a rebase
    merge's commits together (one committer, one moment, the same PR), and loose commits."""
    by_merge = {p.merge_commit_sha: p for p in arrivals if p.merged and p.merge_commit_sha}
    out: list[tuple[PullRequest | None, list[Commit]]] = []
    i = 0
    while i < len(segment):
        commit = segment[i]
        pull = by_merge.get(commit.sha)
        if pull is None:
            out.append((None, [commit]))
            i += 1
            continue
        group = [commit]
        while (
            i + len(group) < len(segment)
            and len(group[-1].parents) == 1
            and (below := segment[i + len(group)]).committer == commit.committer
            and pull.number in below.pulls
            and below.sha not in by_merge
        ):
            group.append(below)
        out.append((pull, group))
        i += len(group)
    return out


def lineage(
    facts: EnvFacts,
    env: Environment,
    pipeline: Pipeline,
    upstream: EnvFacts | None = None,
    upstream_plans: tuple[str, ...] = (),
) -> Lineage:
    """What the head of ``env`` carries and whether every commit came the one allowed way
    (DESIGN §3.6): in the first environment through a merged PR from a plan's branch; in the
    others through a merged PR from the previous environment's branch whose head that
    environment validated (or as commits that environment validated). Plan bookkeeping and
    the tool's own reverts are allowed everywhere; a revert takes what it rolled back out.
    ``upstream``: the previous environment's facts; ``upstream_plans``: what its head carries.
    """
    if not facts.history or facts.head not in {c.sha for c in facts.history}:
        # A snapshot saved before histories were read: the head's PR is all there is.
        return Lineage(
            plans=_arrival_plans(facts.merged_pull, env, pipeline, upstream, upstream_plans)
        )
    segment, last_validated = _segment(facts)
    groups = _groups(segment, facts.arrivals)
    if last_validated is None:
        # Nothing here was ever validated (promote is new to this branch): judge the head's
        # own arrival and what sits above it, not the history from before.
        head_group = next(
            i for i, (_, commits) in enumerate(groups) if facts.head in {c.sha for c in commits}
        )
        groups = groups[: head_group + 1]
    plans: list[str] = []
    taken: list[str] = []
    violating: list[tuple[str, str]] = []
    below_revert = False
    shas = {c.sha for c in segment}
    for pull, commits in groups:
        first = commits[0]
        carried = _arrival_plans(pull, env, pipeline, upstream, upstream_plans)
        if below_revert:
            taken.extend(carried)
            continue
        if pull is None:
            if is_bookkeeping(first, pipeline.bookkeeping_dir):
                continue
            if upstream is not None and (
                first.sha in facts.upstream_contains or contained(first.sha, upstream, pipeline)
            ):
                continue  # brought through the previous environment after all
            violating.append((first.sha, "a direct push"))
            continue
        if _reverts(pull, env, shas):
            below_revert = True
            continue
        plans.extend(carried)
        why = _unfit(pull, env, pipeline, upstream, facts.upstream_contains)
        if why is not None:
            violating.append((first.sha, why))
    return Lineage(
        plans=tuple(dict.fromkeys(plans)),
        taken_out=tuple(dict.fromkeys(p for p in taken if p not in plans)),
        violating=tuple(violating),
        last_validated=last_validated,
    )


def _arrival_plans(
    pull: PullRequest | None,
    env: Environment,
    pipeline: Pipeline,
    upstream: EnvFacts | None,
    upstream_plans: tuple[str, ...],
) -> tuple[str, ...]:
    """The plans a merged PR brought: a plan's branch; every ``Promote-Plan:`` line of a
    promotion; and what the previous environment's head carries when the PR was merged at
    it (a PR opened by hand, or one whose head moved after promote wrote its body)."""
    if pull is None or pull.head_ref.startswith(REVERT_PREFIX):
        return ()
    listed = plans_listed(pull.body)
    source = pipeline.before(env.name)
    if upstream is not None and source is not None and pull.head_ref == source.branch:
        if pull.head_sha in {upstream.head, upstream.branch_head}:
            listed = (*listed, *upstream_plans)
        return tuple(dict.fromkeys(listed))
    own = plan_of(pull)
    return (own,) if own else listed


def _reverts(pull: PullRequest, env: Environment, segment: set[str]) -> bool:
    """Is this PR the tool's revert of something in this branch (a failure or a violation)?
    It must name a commit of this branch below it: a branch name alone proves nothing."""
    if not pull.head_ref.startswith(REVERT_PREFIX):
        return False
    named = parse_key(rollback_of(pull.body) or undone(pull.body))
    return named is not None and named[0] == env.name and named[1] in segment


def _unfit(
    pull: PullRequest,
    env: Environment,
    pipeline: Pipeline,
    upstream: EnvFacts | None,
    vouched: tuple[str, ...],
) -> str | None:
    """Why a merged PR is not an allowed way into ``env``, or None when it is."""
    if upstream is None:
        if plan_of(pull) is None:
            return f"#{pull.number} from {pull.head_ref}, not a plan's branch"
        return None
    source = pipeline.before(env.name)
    assert source is not None
    if pull.head_ref != source.branch:
        return f"#{pull.number} from {pull.head_ref} skipped {upstream.name}"
    if pull.head_sha in vouched or contained(pull.head_sha, upstream, pipeline):
        return None
    return f"#{pull.number} brought {pull.head_sha[:7]}, which {upstream.name} never validated"


def _violation(env: Environment, found: Lineage, upstream: str | None) -> str | None:
    if not found.violating:
        return None
    what = ", ".join(f"{sha[:7]} ({why})" for sha, why in found.violating[:5])
    more = f" and {len(found.violating) - 5} more" if len(found.violating) > 5 else ""
    came = f"never validated in {upstream}" if upstream else "not from a plan's pull request"
    back = found.last_validated[:7] if found.last_validated else "its last validated commit"
    fix = f"roll back with `promote rollback --env {env.name}` (back to {back})"
    if upstream:
        fix += f", or bring the change through {upstream}"
    return f"{env.branch} holds commits {came}: {what}{more}; {fix}"


# -- derive ------------------------------------------------------------------------------------


def derive(snapshot: Snapshot, pipeline: Pipeline) -> PipelineState:
    """Each environment's state, the halt, and which plans may move, from facts alone."""
    envs: list[EnvState] = []
    for index, env in enumerate(pipeline.environments):
        upstream = snapshot.env(pipeline.environments[index - 1].name) if index else None
        envs.append(
            _derive_env(
                snapshot.env(env.name),
                env,
                pipeline,
                snapshot,
                upstream,
                envs[-1] if envs else None,
            )
        )
    # A fix plan whose file does not parse still holds the halt it was filed for.
    open_fixes = sorted(
        (
            p
            for p in snapshot.plans
            if not p.done and (p.fix_key or (p.problem and p.id.startswith(FIX_PREFIX)))
        ),
        key=lambda p: (p.priority, p.id),
    )
    unfiled = [s for s in envs if s.state is State.FAILED and s.fix_plan is None]
    unfiled += [s for s in envs if s.restores is not None and s.restores_fix is None]
    halted = bool(open_fixes or unfiled)
    # A fix plan that failed in turn waits for its own fix plan: the leaf is the one to move.
    parents = {p.parent for p in open_fixes}
    leaves = [p for p in open_fixes if p.id not in parents] or open_fixes
    fix_plan = leaves[0].id if leaves else None
    unsettled = [
        s
        for s in envs
        if not _settled(s, snapshot.env(s.name), snapshot.plans, pipeline.bookkeeping_dir)
    ]
    in_flight: dict[str, str] = {}
    for s in reversed(unsettled):
        for plan in s.plans:
            in_flight.setdefault(plan, s.name)
    if halted:
        active: tuple[str, ...] = (fix_plan,) if fix_plan else ()
    else:
        carrying = [s for s in unsettled if s.plans]
        active = carrying[-1].plans if carrying else ()
    return PipelineState(
        snapshot.repository,
        tuple(envs),
        halted,
        fix_plan,
        active[0] if active else None,
        active,
        tuple(in_flight.items()),
        tuple((p.id, p.problem) for p in snapshot.plans if p.problem),
    )


def carried_with_fixes(plans: tuple[str, ...], known: tuple[Plan, ...]) -> tuple[str, ...]:
    """``plans`` and, for each fix plan among them, the plans whose failure it fixes (a failed
    plan travels on with its fix; a fix of a fix brings both), each once."""
    by_id = {p.id: p for p in known}
    out: list[str] = []
    todo = list(plans)
    while todo:
        plan = todo.pop(0)
        if plan in out:
            continue
        out.append(plan)
        found = by_id.get(plan)
        if found is not None:
            todo.extend(found.failed_plans)
    return tuple(out)


def _derive_env(
    facts: EnvFacts,
    env: Environment,
    pipeline: Pipeline,
    snapshot: Snapshot,
    upstream: EnvFacts | None,
    upstream_state: EnvState | None,
) -> EnvState:
    plans = snapshot.plans
    base = EnvState(
        name=env.name, branch=env.branch, sha=facts.head, state=None, branch_head=facts.branch_head
    )
    if facts.head is None:
        return dataclasses.replace(base, violation=f"branch {env.branch} does not exist")
    head = facts.head
    verdicts = _statuses(facts.statuses, verdict_context(env.name))
    deployments = sorted(
        (d for d in facts.deployments if d.sha == head and not d.is_rollback), key=lambda d: d.id
    )
    runs = sorted(
        (r for r in facts.runs if r.head_sha == head and is_deploy_run(r, pipeline, env.branch)),
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

    upstream_plans = upstream_state.plans if upstream_state is not None else ()
    found = lineage(facts, env, pipeline, upstream, upstream_plans)
    carried = carried_with_fixes(found.plans, plans)
    newest = deployments[-1] if deployments else None
    newest_state = newest.latest.state if newest is not None and newest.latest else ""
    validated = bool(verdicts) and verdicts[-1].state == "success"
    if failures:
        state: State | None = State.FAILED
        evidence.extend(failures)
    elif validated:
        finished = not env.production or all(
            p.done for p in plans if p.id in carried
        )  # production is complete once the plans it carries are recorded done (R8)
        state = State.COMPLETE if env.production and finished else State.PROMOTED
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
    if state is State.DEPLOYING:
        timed_out = _deploy_timed_out(deployments, runs, env, snapshot.taken_at)
        if timed_out is not None:
            state = State.FAILED
            first = 1 if facts.merged_pull is not None else 0  # the cause goes first
            evidence.insert(first, timed_out)

    violation = None
    if not validated and (found.last_validated is not None or state is not None):
        violation = _violation(env, found, upstream.name if upstream is not None else None)
    if (
        not facts.history  # without a history read, the old rule: no PR, nobody validated
        and facts.merged_pull is None
        and not verdicts
        and (state is not None or facts.deployments)
    ):
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
    fix = _fix_plan_for(ledger.key(env.name, head), plans)
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
    verdicts_now = _verdicts(facts, env, snapshot.taken_at)
    return dataclasses.replace(
        base,
        clock=_clock(state, deployments, runs, facts, env, verdicts_now, snapshot.taken_at),
        state=state,
        plan=carried[0] if carried else None,
        plans=carried,
        unknown=tuple(p for p in carried if plans and p not in {q.id for q in plans}),
        taken_out=found.taken_out,
        production=env.production,
        evidence=tuple(evidence),
        verdicts=verdicts_now,
        violation=violation,
        violating=tuple(sha for sha, _ in found.violating) if violation else (),
        last_validated=found.last_validated,
        rollback=rollback,
        fix_plan=fix,
        restores=restores,
        restores_fix=_fix_plan_for(restores, plans) if restores else None,
    )


def _deploy_timed_out(
    deployments: list[Deployment],
    runs: list[WorkflowRun],
    env: Environment,
    now: str,
) -> Evidence | None:
    """A deploy (deployment or deploy run) still unfinished ``deploy_timeout_seconds`` after it
    started has failed. Before anything starts, R1 dispatches the deploy instead."""
    started = [d.created_at for d in deployments if d.created_at]
    started += [r.created_at for r in runs if r.created_at]
    if not started:
        return None
    elapsed = seconds_between(min(started), now)
    if elapsed < env.deploy_timeout_seconds:
        return None
    return Evidence("timeout", None, None, f"deploy timed out after {env.deploy_timeout_seconds} s")


def _clock(
    state: State | None,
    deployments: list[Deployment],
    runs: list[WorkflowRun],
    facts: EnvFacts,
    env: Environment,
    verdicts: tuple[Verdict, ...],
    now: str,
) -> str | None:
    """How long the instance has been deploying or validating, and when that times out."""
    if state is State.DEPLOYING:
        started = [d.created_at for d in deployments if d.created_at]
        started += [r.created_at for r in runs if r.created_at]
        if not started:
            return None
        elapsed = seconds_between(min(started), now)
        left = env.deploy_timeout_seconds - elapsed
        return f"deploying for {duration(elapsed)}, times out in {duration(left)}"
    if state is not State.VALIDATING:
        return None
    soonest: tuple[float, str] | None = None
    began: list[str] = []
    for verdict in verdicts:
        if verdict.result is not Result.PENDING:
            continue
        recorded = _statuses(facts.statuses, verdict_context(env.name, verdict.validator))
        first = next((s.created_at for s in recorded if s.created_at), None)
        if first is None:
            continue
        began.append(first)
        manual = verdict.validator in env.manual
        limit = env.approval_timeout_seconds if manual else env.validation_timeout_seconds
        left = limit - seconds_between(first, now)
        if soonest is None or left < soonest[0]:
            soonest = (left, verdict.validator)
    if soonest is None:
        return None
    elapsed = seconds_between(min(began), now)
    return f"validating for {duration(elapsed)}, {soonest[1]} times out in {duration(soonest[0])}"


def _restored_failure(facts: EnvFacts, env: Environment) -> str | None:
    """The failed ``env@sha`` that this head rolled back, by revert PR or by reset."""
    if facts.merged_pull is not None:
        found = rollback_of(facts.merged_pull.body)
        if found and found.startswith(f"{env.name}@"):
            return found
    markers = _statuses(facts.statuses, rollback_marker_context(env.name))
    if markers:
        found = reset_of(markers[-1].description)
        if found and found.startswith(f"{env.name}@"):
            return found
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


def is_deploy_run(run: WorkflowRun, pipeline: Pipeline, branch: str) -> bool:
    """A run of the deploy workflow for the environment on ``branch`` (pushed or dispatched
    there: a run for the same sha on another branch deploys another environment)."""
    workflow = pipeline.deploy_workflow
    if workflow is None or run.path.rsplit("/", 1)[-1] != workflow:
        return False
    return not run.head_branch or run.head_branch == branch


def _statuses(statuses: tuple[CommitStatus, ...], context: str) -> list[CommitStatus]:
    return sorted((s for s in statuses if s.context == context), key=lambda s: s.id)


def _status_evidence(status: CommitStatus) -> Evidence:
    text = f"{status.context} {status.state}" + (
        f": {status.description}" if status.description else ""
    )
    return Evidence("commit_status", status.id, status.target_url, text)


_RECORDED = {"success": Result.PASSED, "failure": Result.FAILED, "error": Result.ERROR}


def _verdicts(facts: EnvFacts, env: Environment, now: str) -> tuple[Verdict, ...]:
    """One verdict per configured validator: fresh from the shell, else as last recorded; a
    validator still pending past its timeout (from the ``started`` status R4 wrote) failed."""
    fresh = {v.validator: v for v in facts.verdicts}
    out = []
    for name in env.validators:
        recorded = _statuses(facts.statuses, verdict_context(env.name, name))
        if name in fresh:
            verdict = fresh[name]
        elif recorded:
            last = recorded[-1]
            verdict = Verdict(
                name, _RECORDED.get(last.state, Result.PENDING), last.target_url, last.description
            )
        else:
            verdict = Verdict(name, Result.PENDING)
        started = next((s.created_at for s in recorded if s.created_at), None)
        if verdict.result is Result.PENDING and started is not None:
            manual = name in env.manual
            limit = env.approval_timeout_seconds if manual else env.validation_timeout_seconds
            if seconds_between(started, now) >= limit:
                what = "manual approval" if manual else name
                verdict = Verdict(
                    name, Result.FAILED, verdict.url, f"{what} timed out after {limit} s"
                )
        out.append(verdict)
    return tuple(out)


def _settled(
    state: EnvState, facts: EnvFacts, plans: tuple[Plan, ...], bookkeeping_dir: str | None
) -> bool:
    """Has this instance finished its pass: complete, or promoted and carried onward?"""
    if state.state is State.COMPLETE:
        return True
    if state.state is State.FAILED:  # resolved once its fix plan is done
        return any(p.id == state.fix_plan and p.done for p in plans)
    if state.state is State.PROMOTED and not state.production:
        shas = {state.sha, facts.branch_head} - {None}
        return bool(facts.next_contains_head) or any(
            p.merged
            and (p.head_sha in shas or _carried(p.head_sha, state.sha, facts, bookkeeping_dir))
            for p in facts.promotions
        )
    return False


def _carried(head: str, sha: str | None, facts: EnvFacts, bookkeeping_dir: str | None) -> bool:
    """Did a promotion merged at ``head`` carry ``sha``: is ``head`` above it on the branch with
    only plan bookkeeping between? (A squash or rebase leaves no ancestry to ask about, and R8
    may have moved a plan between the validation and the merge.)"""
    chain = [c.sha for c in facts.history]
    if sha is None or head not in chain or sha not in chain:
        return False
    at, stop = chain.index(head), chain.index(sha)
    return at <= stop and all(is_bookkeeping(c, bookkeeping_dir) for c in facts.history[at:stop])


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
            action = _after_restore(env, snapshot.env(env.name), pipeline, snapshot.plans, waits)
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
            allowed = state.fix_plan is not None and state.fix_plan in env.plans
        else:
            # One plan at a time: the plans furthest along move; an instance behind them
            # waits, unless what it carries already travelled with them.
            allowed = not state.active_plans or (
                bool(env.plans) and set(env.plans) <= set(state.active_plans)
            )
        if not allowed:
            if not _settled(env, snapshot.env(env.name), snapshot.plans, pipeline.bookkeeping_dir):
                holder = (
                    f"fix plan {state.fix_plan}"
                    if state.halted
                    else "plan " + ", ".join(state.active_plans)
                )
                what = ", ".join(env.plans) or (env.sha or "")[:7]
                waits.append(f"{env.name}: {what} waits while {holder} is in flight")
            continue
        action = _progress(env, snapshot, pipeline, waits)
        if action is not None:
            return action
    return Action(
        None,
        effects=_tidy(state, snapshot, pipeline),
        waiting_for=waits[0] if waits else None,
        plan=state.active_plan,
    )


def _tidy(state: PipelineState, snapshot: Snapshot, pipeline: Pipeline) -> tuple[Effect, ...]:
    """Close the checklist issue of an instance whose manual test is decided (the run that
    recorded the decision may have died before closing it)."""
    return tuple(
        close
        for env in state.environments
        if (close := _close_checklist(env, snapshot.env(env.name), pipeline)) is not None
    )


def _close_checklist(env: EnvState, facts: EnvFacts, pipeline: Pipeline) -> Effect | None:
    checklist = facts.checklist
    if checklist is None or checklist.state != "open":
        return None
    manual = pipeline.get(env.name).manual
    decided = env.state in (State.PROMOTED, State.COMPLETE, State.FAILED) or (
        env.state is State.VALIDATING
        and any(v.validator in manual for v in env.verdicts)
        and all(v.result is not Result.PENDING for v in env.verdicts if v.validator in manual)
    )
    if not decided:
        return None
    return CloseChecklist(checklist.number, env.name)


def _fates(
    env: EnvState, failed: tuple[str, ...], pipeline: Pipeline, restored: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What becomes of the plans a failed instance carried, (travel on, returned): they
    travel on with the fix plan, unless a rollback that moved the first environment's branch
    back took their code out of every environment (back to the inbox)."""
    if restored and pipeline.before(env.name) is None:
        return (), failed
    return failed, ()


def _after_restore(
    env: EnvState, facts: EnvFacts, pipeline: Pipeline, plans: tuple[Plan, ...], waits: list[str]
) -> Action | None:
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
    culprit = ledger.culprit(facts.merged_pull.body) if facts.merged_pull else None
    # What the failed head carried: what the revert took out below it, or what the reset
    # recorded on its deployment before it moved the branch.
    failed = env.taken_out or next(
        (d.carries for d in facts.deployments if failed_sha in (d.rollback_of, d.reset_of)), ()
    )
    travel, returned = _fates(env, failed, pipeline, restored=True)
    fix = FileFixPlan(
        fix_plan_id(env.restores), env.restores, env.name, failed_sha, env.sha, latest,
        rollback_detail=f"(restored by moving {env.branch} to {env.sha[:7]})",
        culprit=culprit, parent=_parent_fix(failed, plans) or None,
        failed_plans=travel, returned=returned,
    )  # fmt: skip
    return _take("R9", env, fix, instance=State.FAILED)


def _parent_fix(carried: tuple[str, ...], plans: tuple[Plan, ...]) -> str:
    """A fix plan that fails gets a child fix plan: completing the child completes it too."""
    fixes = {p.id for p in plans if p.fix_key}
    return next((p for p in carried if p in fixes), "")


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
        status = SetStatus(sha=env.sha, context=verdict_context(env.name),
                        state="failure", description=reason[:140])  # fmt: skip
        return _take("R3", env, status, observed=True)
    key = env.key
    if env.rollback is None:
        back = RollBack(env.name, env.sha, spec.rollback, fix_plan_id(key), env.plans)
        return _take("R9", env, back)
    if not env.rollback.succeeded:
        waiting = f"rollback of {env.name} to {env.rollback.target[:7]} ({env.rollback.state or 'created'})"
        waits.append(waiting)
        dispatched = any(
            r.event == "workflow_dispatch"
            and r.head_sha == env.sha
            and is_deploy_run(r, pipeline, env.branch)
            for r in facts.runs
        )
        if env.rollback.state or dispatched or not pipeline.deploy_workflow:
            return None
        # Only the record exists and no deploy was dispatched: a run died inside the strategy.
        # Its steps are idempotent, so run it again: it finishes what is missing, once.
        again = RollBack(env.name, env.sha, spec.rollback, fix_plan_id(key), env.plans)
        return Action(
            None, env.name, env.state, env.state, (again,), waiting_for=waiting, plan=env.plan
        )
    if env.fix_plan is None:
        pull = facts.merged_pull
        record = next((d for d in facts.deployments if d.id == env.rollback.deployment_id), None)
        url = f", {record.url}" if record is not None and record.url else ""
        travel, returned = _fates(env, env.plans, pipeline, restored=False)
        fix = FileFixPlan(
            fix_plan_id(key), key, env.name, env.sha, env.rollback.target, env.rollback.state,
            rollback_detail=f"(deployment {env.rollback.deployment_id}{url})",
            culprit=pull.number if pull else None,
            culprit_text=f"#{pull.number} {pull.title} ({pull.url})".replace("  ", " ") if pull else None,
            parent=_parent_fix(env.plans, plans) or None,
            failed_plans=travel, returned=returned, failing=_failing(env),
        )  # fmt: skip
        return _take("R9", env, fix)
    return None


def _failing(env: EnvState) -> tuple[tuple[str, str | None], ...]:
    """Each failing check of a failed head, with its link, for the fix plan."""
    found: list[tuple[str, str | None]] = [
        (f"{v.validator}: {v.summary or 'failed'}", v.url) for v in env.verdicts if v.result.bad
    ]
    found += [
        (e.summary, e.url)
        for e in env.evidence
        if e.kind in ("deployment", "workflow_run", "commit_status", "timeout")
        and not e.summary.startswith("rollback")
    ]
    return tuple(found)


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
            dispatch = DispatchDeploy(environment=env.name, branch=env.branch,
                              sha=env.sha, workflow=pipeline.deploy_workflow)  # fmt: skip
            return _take("R1", env, dispatch, observed=True)
        waits.append(f"deployment of {env.name} at {env.sha[:7]}")
        return None
    if env.state is State.DEPLOYED:
        # The instance turns "validating" with its last write, so a run that dies half-way
        # leaves it "deployed" and the next run starts every validator again (idempotently).
        effects: list[Effect] = []
        for name in spec.validators:
            # Pending first: a validator that breaks when started records its error after.
            effects.append(SetStatus(sha=env.sha, context=verdict_context(env.name, name),
                                  state="pending", description="started"))  # fmt: skip
            effects.append(StartValidator(environment=env.name, sha=env.sha, validator=name))
        effects.append(SetStatus(sha=env.sha, context=verdict_context(env.name),
                              state="pending", description="validating"))  # fmt: skip
        return _take("R4", env, *effects)
    if env.state is State.VALIDATING:
        return _validate(env, facts, pipeline, waits)
    if env.state is State.PROMOTED and not env.production:
        if _settled(env, facts, snapshot.plans, pipeline.bookkeeping_dir):
            return None
        open_pr = next((p for p in facts.promotions if p.state == "open"), None)
        following = pipeline.after(env.name)
        assert following is not None
        if open_pr is not None:
            waits.append(f"merge of #{open_pr.number} ({env.branch} → {following.branch})")
            return None
        return _take(
            "R7", env,
            OpenPromotion(
                env.name, env.branch, following.branch, env.sha, env.plans,
                checks=tuple(
                    f"{v.validator}: {v.result.value}" + (f" ({v.url})" if v.url else "")
                    for v in env.verdicts
                ),
                evidence=tuple(e.summary + (f" ({e.url})" if e.url else "") for e in env.evidence),
                authors=facts.change_authors
                or ((facts.merged_pull.author,) if facts.merged_pull else ()),
            ),
        )  # fmt: skip
    if env.state is State.PROMOTED and env.production:
        pending, notes = completing(env, snapshot.plans)
        return _take(
            "R8", env,
            CompletePlans(pending, tuple(notes.items())),
        )  # fmt: skip
    return None


def completing(env: EnvState, plans: tuple[Plan, ...]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The plans R8 completes for a validated production head: every plan it carries that
    the store knows and has not done (a plan with no file is reported, not waited for), and
    for each failed plan that travelled with its fix, that fix's id."""
    by_id = {p.id: p for p in plans}
    pending = tuple(p for p in env.plans if p in by_id and not by_id[p].done)
    notes: dict[str, str] = {}
    for plan in env.plans:
        found = by_id.get(plan)
        for failed in found.failed_plans if found else ():
            if failed in pending and failed not in notes:
                notes[failed] = plan
    return pending, notes


def _validate(
    env: EnvState, facts: EnvFacts, pipeline: Pipeline, waits: list[str]
) -> Action | None:
    assert env.sha is not None
    recorded = {
        v: _statuses(facts.statuses, verdict_context(env.name, v))
        for v in (x.validator for x in env.verdicts)
    }
    state_of = {
        Result.PASSED: "success",
        Result.FAILED: "failure",
        Result.ERROR: "error",
        Result.PENDING: "pending",
    }
    updates = [
        SetStatus(sha=env.sha, context=verdict_context(env.name, v.validator),
               state=state_of[v.result], description=(v.summary or v.result.value)[:140],
               target_url=v.url or "")
        for v in env.verdicts
        if not recorded[v.validator] or recorded[v.validator][-1].state != state_of[v.result]
    ]  # fmt: skip
    failed = [v for v in env.verdicts if v.result.bad]
    decided = dataclasses.replace(env, state=State.FAILED if failed else State.PROMOTED)
    # The checklist closes before the verdict is written: the read does not look for the
    # checklist of a head whose verdict is success (a run that dies between the two writes
    # leaves the head validating, and the next one writes the verdict).
    close = _close_checklist(decided, facts, pipeline)
    after = (close,) if close is not None else ()
    if failed:
        names = ", ".join(v.validator for v in failed)
        verdict = SetStatus(sha=env.sha, context=verdict_context(env.name),
                         state="failure", description=f"failed: {names}"[:140])  # fmt: skip
        return _take("R6", env, *updates, *after, verdict)
    pending = [v.validator for v in env.verdicts if v.result is Result.PENDING]
    if not pending:
        verdict = SetStatus(sha=env.sha, context=verdict_context(env.name),
                         state="success", description="all validators passed")  # fmt: skip
        return _take("R5", env, *updates, *after, verdict)
    waits.append(f"validation of {env.name} at {env.sha[:7]}: {', '.join(pending)}")
    if updates:
        return Action(None, env.name, env.state, env.state, tuple(updates),
                      waiting_for=waits[-1], plan=env.plan)  # fmt: skip
    return None


def needs_person(state: PipelineState, action: Action, pipeline: Pipeline) -> str | None:
    """What a person must do before the pipeline can move, if anything: a stop, a violation,
    or a manual test waiting for its reviewer."""
    if action.stop:
        return action.stop
    for env in state.environments:
        if env.violation and env.state is not State.COMPLETE:
            return env.violation
        if env.state is State.VALIDATING:
            manual = pipeline.get(env.name).manual
            for verdict in env.verdicts:
                if verdict.result is Result.PENDING and verdict.validator in manual:
                    return f"{verdict.validator} in {env.name}: {verdict.summary}"
    return None
