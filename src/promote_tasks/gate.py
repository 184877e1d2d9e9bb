"""The pre-merge gate: which open PR into an environment branch may merge now, and why not.

Pure, like the machine it reads: ``gates`` turns a derived PipelineState and the open PRs
into the ``promote/gate`` verdict of each head commit.
"""

from __future__ import annotations

import dataclasses

from promote_tasks.ledger import GATE_CONTEXT
from promote_tasks.ledger import key as instance_key
from promote_tasks.ledger import rollback_of
from promote_tasks.ledger import undone
from promote_tasks.machine import FEATURE_PREFIX
from promote_tasks.machine import derive
from promote_tasks.machine import plan_of
from promote_tasks.model import Pipeline
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Snapshot
from promote_tasks.model import State

TOOL_BRANCH_PREFIX = "promote/"  # branches the tool itself opens PRs from (reverts)
ROLLBACK_GATE = "a rollback opened by promote"


@dataclasses.dataclass(frozen=True)
class Gate:
    """The ``promote/gate`` verdict for one open PR into an environment branch."""

    pull: int
    sha: str
    state: str  # success | failure
    description: str


def gate_for(
    pull: PullRequest,
    state: PipelineState,
    pipeline: Pipeline,
    first_in_line: tuple[int, str] | None = None,
) -> Gate:
    """May this PR merge? Only feature/* → first env and env → next env, in order, one plan at
    a time, the source promoted at the PR's head, and nothing but the fix plan while halted.
    ``first_in_line``: the one PR into the first environment that may go in now (see
    :func:`gates`)."""

    def verdict(ok: bool, text: str) -> Gate:
        return Gate(pull.number, pull.head_sha, "success" if ok else "failure", text[:140])

    branches = [e.branch for e in pipeline.environments]
    index = branches.index(pull.base_ref)
    if pull.head_ref.startswith(TOOL_BRANCH_PREFIX):
        # Anyone can name a branch promote/...: only a rollback of the base's current failure
        # (or violation) passes, as promote's revert strategy opens it.
        target = state.environments[index]
        key = rollback_of(pull.body) or undone(pull.body)
        current = instance_key(target.name, target.sha or "")
        if key == current and (target.state is State.FAILED or target.violation):
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
        carried: tuple[str, ...] = (plan,)
    else:
        source = state.environments[index - 1]
        if pull.head_ref != source.branch:
            return verdict(
                False, f"skips an environment: {pull.base_ref} takes PRs from {source.branch} only"
            )
        if source.violation:
            return verdict(False, source.violation)
        at_head = pull.head_sha in {source.sha, source.branch_head}
        if source.state is not State.PROMOTED or not at_head:
            label = source.state.value if source.state else "not deployed"
            if not at_head:
                label = f"at {(source.sha or 'nothing')[:7]} now"
            return verdict(
                False, f"{source.name} is not promoted at {pull.head_sha[:7]} (it is {label})"
            )
        carried = source.plans
        plan = source.plan
    if state.halted:
        if state.fix_plan is None or state.fix_plan not in carried:
            holder = f"fix plan {state.fix_plan}" if state.fix_plan else "a fix plan"
            return verdict(False, f"halted: a failure is unresolved; only {holder} may merge")
    elif state.active_plans and not set(carried) <= set(state.active_plans):
        flying = ", ".join(state.active_plans)
        return verdict(False, f"one plan at a time: plan {flying} is in flight")
    elif index == 0 and first_in_line is not None and pull.number != first_in_line[0]:
        number, chosen = first_in_line
        return verdict(False, f"one plan at a time: plan {chosen} (#{number}) goes first")
    return verdict(True, "ready to merge" + (f" (plan {', '.join(carried)})" if plan else ""))


def _entering(
    state: PipelineState, snapshot: Snapshot, pipeline: Pipeline
) -> list[tuple[PullRequest, str]]:
    """Open PRs into the first environment that could go in now, with their plans."""
    if state.active_plans and not state.halted:
        return []
    first = pipeline.environments[0].branch
    out = []
    for pull in snapshot.open_pulls:
        plan = plan_of(pull)
        if pull.base_ref != first or plan is None or pull.head_ref.startswith(TOOL_BRANCH_PREFIX):
            continue
        if state.halted and plan != state.fix_plan:
            continue
        out.append((pull, plan))
    return out


def unknown_candidates(snapshot: Snapshot, pipeline: Pipeline) -> tuple[tuple[str, str], ...]:
    """(plan, PR head) for PRs the gate must choose among whose plan the store does not know:
    the shell reads their plan files from the PR (``Snapshot.proposed``)."""
    first = pipeline.environments[0].branch
    known = {p.id for p in snapshot.plans}
    unknown = [
        p for p in snapshot.open_pulls if p.base_ref == first and plan_of(p) not in known | {None}
    ]
    if not unknown or len([p for p in snapshot.open_pulls if p.base_ref == first]) < 2:
        return ()  # nobody to rank: no need to derive the state to find out who may enter
    entering = _entering(derive(snapshot, pipeline), snapshot, pipeline)
    if len(entering) < 2:
        return ()
    known = {p.id for p in snapshot.plans}
    return tuple((plan, pull.head_sha) for pull, plan in entering if plan not in known)


def first_in_line(
    state: PipelineState, snapshot: Snapshot, pipeline: Pipeline
) -> tuple[int, str] | None:
    """The one open PR into the first environment that may merge now, and its plan: the fix
    plan's first, then the plan with the lowest priority (as the plan store, else the PR's own
    plan file, says), then the oldest PR; None while others are in flight (nobody goes in)."""
    known = {p.id: p for p in (*snapshot.proposed, *snapshot.plans)}
    candidates = []
    for pull, plan in _entering(state, snapshot, pipeline):
        found = known.get(plan)
        fix = found is not None and found.fix_key is not None
        priority = found.priority if found is not None else Plan(plan).priority
        candidates.append((0 if fix else 1, priority, pull.number, plan))
    if not candidates:
        return None
    chosen = min(candidates)
    return chosen[2], chosen[3]


def gates(state: PipelineState, snapshot: Snapshot, pipeline: Pipeline) -> tuple[Gate, ...]:
    """Gates for every open PR whose base is an environment branch.

    ``promote/gate`` is a commit status: it belongs to the head commit, not to the PR. When
    several PRs share a head (``feature/x`` into ``dev`` and into ``main``), the commit gets
    the first failure among them, so a second PR can never borrow the first one's success.
    """
    branches = {e.branch for e in pipeline.environments}
    chosen = first_in_line(state, snapshot, pipeline)
    own = [
        gate_for(p, state, pipeline, chosen) for p in snapshot.open_pulls if p.base_ref in branches
    ]
    # A promotion merged before its gate was written (the run that opened it died, or the
    # write's answer was lost): the head gets the gate it was merged under, as it would have.
    for env, facts in zip(state.environments, snapshot.environments, strict=True):
        if env.state is not State.PROMOTED or any(
            s.context == GATE_CONTEXT for s in facts.statuses
        ):
            continue
        landed = [p for p in facts.promotions if p.merged and p.head_sha == env.sha]
        if landed:
            reopened = dataclasses.replace(landed[0], state="open", merged=False)
            own.append(gate_for(reopened, state, pipeline, chosen))
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
