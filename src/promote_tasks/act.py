"""The only module that writes: a decided Action's typed effects, the gates, the promotion PR,
the rollback and the fix plan. Every write looks first, so a rerun converges; nothing derives."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from promote_tasks import ledger
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.gate import Gate
from promote_tasks.gate import gate_for
from promote_tasks.gate import gates
from promote_tasks.ledger import GATE_CONTEXT
from promote_tasks.ledger import fix_plan_id
from promote_tasks.ledger import rollback_marker_context
from promote_tasks.ledger import verdict_context
from promote_tasks.machine import Baseline
from promote_tasks.model import DEPLOY_FAILED
from promote_tasks.model import Action
from promote_tasks.model import CloseChecklist
from promote_tasks.model import CompletePlans
from promote_tasks.model import Did
from promote_tasks.model import DispatchDeploy
from promote_tasks.model import Effect
from promote_tasks.model import FileFixPlan
from promote_tasks.model import OpenPromotion
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import RollBack
from promote_tasks.model import SetStatus
from promote_tasks.model import Snapshot
from promote_tasks.model import StartValidator
from promote_tasks.model import State
from promote_tasks.plugins import notify
from promote_tasks.registry import RollbackRun
from promote_tasks.registry import Runner
from promote_tasks.targets import RollbackRequest
from promote_tasks.targets import Target
from promote_tasks.targets import local_clone
from promote_tasks.targets import rollback_target
from promote_tasks.targets import strategy_for

FIX_PRIORITY = 0  #: fix plans go before everything else


def act(
    run: Runner,
    action: Action,
    snapshot: Snapshot,
    state: PipelineState,
    *,
    read_under_lock: bool = False,
) -> tuple[Did, ...]:
    """Perform the action's effects in order, then the gates; the lines say what was done.
    ``state`` is what ``snapshot`` derived to (the gates are written from it).

    ``read_under_lock``: ``snapshot`` was read by this run holding the lock, so its statuses
    of the environments' heads are what GitHub has; a status write looks there first instead
    of asking again (only the first write of a context on a sha: later ones ask)."""
    seen = Seen(snapshot if read_under_lock else None)
    did = tuple(perform(run, effect, snapshot, state, seen) for effect in action.effects)
    did += refresh_gates(run, snapshot, state, seen)
    if action.transition:
        notify(run.pm, action=action, did=did, repository=snapshot.repository)
    return did


class Seen:
    """The statuses of the environments' heads in a snapshot read under the lock, each
    (sha, context) given out once: after this run writes it, GitHub is asked again."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        environments = snapshot.environments if snapshot is not None else ()
        self.statuses = {facts.head: facts.statuses for facts in environments if facts.head}
        self.given: set[tuple[str, str]] = set()

    def __call__(self, sha: str, context: str) -> list[dict[str, Any]] | None:
        if sha not in self.statuses or (sha, context) in self.given:
            return None
        self.given.add((sha, context))
        return [dataclasses.asdict(s) for s in self.statuses[sha] if s.context == context]


def perform(
    run: Runner,
    effect: Effect,
    snapshot: Snapshot,
    state: PipelineState,
    seen: Seen | None = None,
) -> Did:
    """One effect, one line (saying what kind of write it was and what it was about)."""
    return Did(
        _perform(run, effect, snapshot, state, seen or Seen(None)), effect.kind, _target(effect)
    )


def _target(effect: Effect) -> str:
    match effect:
        case SetStatus(sha, context):
            return f"{context}@{sha}"
        case StartValidator(environment, _, validator):
            return f"{environment}/{validator}"
        case DispatchDeploy(environment, _, sha):
            return ledger.key(environment, sha)
        case OpenPromotion(_, head, base):
            return f"{head}→{base}"
        case CompletePlans(plans):
            return ",".join(plans)
        case RollBack(environment, failed_sha):
            return ledger.key(environment, failed_sha)
        case FileFixPlan(plan_id):
            return plan_id
        case CloseChecklist(number):
            return f"#{number}"


def _perform(
    run: Runner, effect: Effect, snapshot: Snapshot, state: PipelineState, seen: Seen
) -> str:
    github = run.github
    match effect:
        case SetStatus(sha, context, status, description, target_url):
            return str(
                github.run(
                    github.set_status(
                        sha, context, status, description, target_url, seen=seen(sha, context)
                    )
                )
            )
        case StartValidator(environment, sha, name):
            return _start(run, snapshot, environment, sha, name)
        case DispatchDeploy(environment, branch, sha, workflow):
            url = github.run(
                github.dispatch(workflow, branch, {"environment": environment, "sha": sha})
            )
            return f"dispatched {workflow} for {environment} at {sha[:7]}: {url}"
        case CloseChecklist(number, environment):
            try:
                github.run(github.close_issue(number))
            except GitHubError as e:  # tidying up: the decision itself is on record
                return f"could not close checklist issue #{number}: {e}"
            return f"closed checklist issue #{number} ({environment} is decided)"
        case OpenPromotion():
            return open_promotion(run, effect, snapshot, state)
        case CompletePlans(plans, completed_with):
            if not plans:
                return "no plan to complete"
            notes = dict(completed_with)
            moved = github.run(run.plan_store.complete(run.settings, github, plans, notes))
            if moved:
                return "completed plan " + ", ".join(moved)
            return f"plan {', '.join(plans)} already done"
        case RollBack(environment, failed_sha, strategy, plan, carries):
            return roll_back(
                run, snapshot, environment, failed_sha, strategy, plan, carries=carries
            )
        case FileFixPlan():
            return file_fix_plan(run, effect)


def _start(run: Runner, snapshot: Snapshot, env: str, sha: str, name: str) -> str:
    """Start a validator; one that breaks when started records its verdict *error*."""
    try:
        run.validator(name).start(run.validation_run(snapshot, env, name))
    except (PromoteError, KeyboardInterrupt):
        raise  # GitHub's own trouble: the run stops here and the next one starts again
    except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
        why = f"{name} raised {type(e).__name__} when started: {e}"[:140]
        context = verdict_context(env, name)
        github = run.github
        github.run(github.set_status(sha, context, "error", why))
        return f"{context} = error on {sha[:7]} ({why})"
    return f"started {name} in {env}"


# -- the pre-merge gate ---------------------------------------------------------------------


def refresh_gates(
    run: Runner, snapshot: Snapshot, state: PipelineState, seen: Seen | None = None
) -> tuple[Did, ...]:
    """Write ``promote/gate`` on every open PR into an environment branch, where it changed."""
    return tuple(
        Did(f"gate of #{gate.pull}: {gate.state} ({gate.description})", "gate", f"#{gate.pull}")
        for gate, written in write_gates(run, snapshot, state, seen=seen)
        if written
    )


def write_gates(
    run: Runner,
    snapshot: Snapshot,
    state: PipelineState,
    only: int | None = None,
    *,
    seen: Seen | None = None,
) -> tuple[tuple[Gate, bool], ...]:
    """Each gate (of PR ``only``, or of every open PR into an environment branch) and
    whether it had to be written; statuses already right are left alone."""
    github = run.github
    chosen = [
        gate for gate in gates(state, snapshot, run.pipeline) if only is None or gate.pull == only
    ]
    unique = list({gate.sha: gate for gate in chosen}.values())  # a status is per commit

    async def write_all() -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    github.set_status(
                        gate.sha,
                        GATE_CONTEXT,
                        gate.state,
                        gate.description,
                        seen=seen(gate.sha, GATE_CONTEXT) if seen else None,
                    )
                    for gate in unique
                )
            )
        )

    lines = github.run(write_all()) if unique else []
    written = {gate.sha: "already" not in line for gate, line in zip(unique, lines, strict=True)}
    return tuple((gate, written[gate.sha]) for gate in chosen)


# -- R7: the promotion PR ---------------------------------------------------------------------


def open_promotion(
    run: Runner, effect: OpenPromotion, snapshot: Snapshot, state: PipelineState
) -> str:
    body = ledger.promotion_body(
        effect.head, effect.base, effect.sha, effect.environment,
        effect.checks, effect.evidence, effect.plans, effect.authors,
    )  # fmt: skip
    title = ledger.promotion_title(effect.head, effect.base, effect.plans, effect.sha)
    github = run.github
    number, url, created = github.run(
        github.open_pull(effect.head, effect.base, title, body, effect.sha)
    )
    pull = PullRequest(number or 0, effect.head, effect.sha, effect.base, body=body)
    if number is None:  # the base already holds the head: it was promoted
        gate = gate_for(pull, state, run.pipeline)
        github.run(github.set_status(effect.sha, GATE_CONTEXT, gate.state, gate.description))
        return f"{effect.base} already holds {effect.head} at {effect.sha[:7]}: promoted"
    # Gate the new PR now, not at the next run: where promote/gate is a required check, the
    # Merge machine can merge it at once (and a PR merged before a lost answer came back gets
    # the gate it was merged under).
    opened = dataclasses.replace(snapshot, open_pulls=(*snapshot.open_pulls, pull))
    write_gates(run, opened, state, only=number)
    verb = "opened" if created else "found"
    return f"{verb} PR #{number} ({effect.head} → {effect.base}): {url}"


# -- R9: the rollback and the fix plan -----------------------------------------------------------


def roll_back(
    run: Runner,
    snapshot: Snapshot,
    environment: str,
    failed_sha: str,
    strategy_name: str | None,
    plan: str,
    target: Target | None = None,
    *,
    carries: tuple[str, ...] = (),
    undo: bool = False,
) -> str:
    """Roll ``environment`` back from ``failed_sha`` with its strategy; one line.
    ``carries``: the plans the failed head carried; ``undo``: a violation taken back out."""
    env = run.pipeline.get(environment)
    strategy = strategy_for(run, env, strategy_name)
    target = target or rollback_target(run, snapshot, environment, failed_sha)
    done = strategy.rollback(
        RollbackRun(
            environment=env,
            failed_sha=failed_sha,
            target=target.sha,
            plan=plan,
            settings=run.settings,
            github=run.github,
            repo_path=local_clone(run, env.branch, failed_sha),
            plans=carries,
            undo=undo,
        )
    )
    return (
        f"rolled back {environment} from {failed_sha[:7]} to {target.sha[:7]} "
        f"({target.how}) with {strategy.name}: {done}"
    )


def file_fix_plan(run: Runner, effect: FileFixPlan) -> str:
    """File the fix plan through the plan store, once (found by id on a re-run)."""
    github = run.github
    store = run.plan_store
    plan = Plan(
        id=effect.plan_id,
        title=ledger.fix_plan_title(
            effect.environment, effect.failed_sha, effect.failed_plans or effect.returned
        ),
        status="inbox",
        priority=FIX_PRIORITY,
        parent=effect.parent,
        fix_key=effect.failure,
        failed_plans=effect.failed_plans,
    )
    did = []
    # Plans a rollback took out of every environment go back to the inbox first: a run that
    # dies between the two writes finds the fix plan missing and does both again.
    if effect.returned:
        reason = (
            f"its code was rolled back out of {effect.environment} after the failure of "
            f"{effect.failed_sha[:7]} (fix plan {plan.id})"
        )
        moved = github.run(store.reopen(run.settings, github, effect.returned, reason))
        if moved:
            did.append(f"returned plan {', '.join(moved)} to the inbox")
    known = {p.id for p in github.run(store.plans(run.settings, github))}
    if plan.id in known:
        return "; ".join([*did, f"fix plan {plan.id} already filed"])
    github.run(store.create(run.settings, github, plan, fix_plan_body(run, effect)))
    did.append(
        f"filed fix plan {plan.id} (priority {plan.priority}) for the failure of "
        f"{effect.failed_sha[:7]} in {effect.environment}"
    )
    return "; ".join(did)


def fix_plan_body(run: Runner, effect: FileFixPlan) -> str:
    """What a person needs to start fixing: where, which change, which checks, the rollback."""
    env, failed = effect.environment, effect.failed_sha
    lines = [
        f"`{env}` failed at {failed} and promote rolled it back. Until this plan is done,",
        f"promote holds all other work: fix the cause on `feature/{effect.plan_id}` and bring",
        "the fix through the environments as this plan.",
        "",
        f"- Environment: {env}",
        f"- Failed sha: {failed}",
        f"- Culprit: {_culprit_line(run, effect)}",
    ]
    if effect.failed_plans:
        lines.append(
            f"- Failed plans (they travel on with this fix): {','.join(effect.failed_plans)}"
        )
    if effect.returned:
        lines.append(
            f"- Returned to the inbox (their code was rolled back): {','.join(effect.returned)}"
        )
    state = effect.rollback_state or "pending"
    detail = f" {effect.rollback_detail}" if effect.rollback_detail else ""
    lines.append(f"- Rollback: to {effect.rollback_target} — {state}{detail}")
    lines += ["", "## Failing checks", ""]
    checks = effect.failing if effect.failing is not None else _failing_on(run, env, failed)
    lines += [f"- {text}" + (f" ({url})" if url else "") for text, url in checks] or [
        "- (none recorded)"
    ]
    return "\n".join(lines) + "\n"


def _culprit_line(run: Runner, effect: FileFixPlan) -> str:
    if effect.culprit_text:
        return effect.culprit_text
    if effect.culprit is None:
        return f"unknown (no merged pull request produced {effect.failed_sha[:7]})"
    github = run.github
    try:
        pull = github.run(github.pull(effect.culprit))
    except GitHubError:
        return f"#{effect.culprit}"
    title, url = pull.get("title") or "", pull.get("html_url") or ""
    return f"#{effect.culprit} {title} ({url})".replace("  ", " ")


def _failing_on(run: Runner, env: str, failed: str) -> tuple[tuple[str, str | None], ...]:
    """The verdicts recorded as failed on ``failed`` (a revert or reset moved the branch off
    it, so they are read from GitHub, not from the head's facts)."""
    github = run.github
    latest: dict[str, dict[str, Any]] = {}
    for status in sorted(github.run(github.statuses_of(failed)), key=lambda s: s["id"]):
        latest[status["context"]] = status
    prefix = verdict_context(env)
    found = []
    for context, status in sorted(latest.items()):
        mine = context == prefix or context.startswith(prefix + "/")
        if mine and context != rollback_marker_context(env) and status["state"] in DEPLOY_FAILED:
            text = f"{context} {status['state']}" + (
                f": {status['description']}" if status.get("description") else ""
            )
            found.append((text, status.get("target_url")))
    return tuple(found)


# -- promote rollback ----------------------------------------------------------------------------


def perform_request(run: Runner, request: RollbackRequest, snapshot: Snapshot) -> tuple[str, ...]:
    """Roll back as asked (the same code path as R9): first make the failure the sticky verdict
    on the head, so the machine halts, never promotes that sha and files the fix plan. A
    violation is only taken back out: no failure, no fix plan, no halt."""
    github = run.github
    env, failed = request.environment, request.failed_sha
    if request.undo:
        return (
            roll_back(run, snapshot, env, failed, request.strategy, "", request.target, undo=True),
        )
    did = []
    recorded = [
        s for s in snapshot.env(env).statuses
        if s.context == verdict_context(env) and s.state in DEPLOY_FAILED
    ]  # fmt: skip
    if not recorded:
        why = request.reason if request.state.state is State.FAILED else "rolled back by hand"
        did.append(
            github.run(github.set_status(failed, verdict_context(env), "failure", why[:140]))
        )
    plan = fix_plan_id(ledger.key(env, failed))
    did.append(
        roll_back(
            run, snapshot, env, failed, request.strategy, plan, request.target,
            carries=request.state.plans,
        )
    )  # fmt: skip
    back = RollBack(env, failed, request.strategy, plan, request.state.plans)
    action = Action("R9", env, request.state.state, None, (back,), plan=request.state.plan)
    notify(run.pm, action=action, did=tuple(did), repository=snapshot.repository)
    return tuple(did)


def write_baselines(run: Runner, chosen: list[Baseline], who: str) -> list[str]:
    """``promote/<env>`` = success on each chosen head: promote's own record of a known-good
    commit, said to be a baseline a person adopted (looked for first, as every status)."""
    github = run.github

    async def write_all() -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    github.set_status(
                        b.sha or "",
                        verdict_context(b.environment),
                        "success",
                        f"baseline: adopted by {who} with promote adopt",
                    )
                    for b in chosen
                )
            )
        )

    return github.run(write_all())
