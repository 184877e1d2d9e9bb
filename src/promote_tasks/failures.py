"""The shell side of failures: known-good commits, the rollback target, the ``rollback`` and
``file-fix-plan`` effects of R9, ``promote rollback``, and the fix plan's text.

The rollback target is computed locally with git, in the checkout the tool runs in (fetched
from ``origin`` first): the newest known-good commit on the first-parent chain before the
failed sha, else the commit the branch pointed to before the failed PR landed. Without a
usable clone the same two questions are answered from the API, one commit at a time; never
guessed. The strategy that performs the rollback is a plugin (``default_plugins/rollback.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

from promote_tasks import git
from promote_tasks import ledger
from promote_tasks import render
from promote_tasks.errors import GitError
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.ledger import fix_plan_id
from promote_tasks.ledger import rollback_marker_context
from promote_tasks.ledger import verdict_context
from promote_tasks.machine import derive
from promote_tasks.model import DEPLOY_FAILED
from promote_tasks.model import Action
from promote_tasks.model import Effect
from promote_tasks.model import Environment
from promote_tasks.model import EnvState
from promote_tasks.model import Plan
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.model import effect
from promote_tasks.model import split
from promote_tasks.plugins import notify
from promote_tasks.registry import RollbackRun
from promote_tasks.registry import RollbackStrategy

if TYPE_CHECKING:
    from promote_tasks.github import GitHub
    from promote_tasks.shell import Run

FIX_PRIORITY = 0  #: fix plans go before everything else
KNOWN_GOOD_CANDIDATES = 30  #: newest distinct shas deployed in the environment that are looked at
API_WALK_LIMIT = 200  #: first-parent commits walked through the API when there is no clone


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a rollback goes, and why that commit (one line, for people)."""

    sha: str
    how: str


# -- known-good commits and the target --------------------------------------------------------


def known_good(run: Run, snapshot: Snapshot, environment: str, failed_sha: str) -> tuple[str, ...]:
    """Shas deployed in ``environment`` whose ``promote/<env>`` is success and never failure,
    newest deployment first (read from GitHub, one concurrent wave)."""
    candidates: list[str] = []
    for deployment in sorted(snapshot.env(environment).deployments, key=lambda d: -d.id):
        if deployment.sha != failed_sha and deployment.sha not in candidates:
            candidates.append(deployment.sha)
    candidates = candidates[:KNOWN_GOOD_CANDIDATES]
    if not candidates:
        return ()
    github = run.github

    async def read() -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(github.statuses_of(sha) for sha in candidates)))

    context = verdict_context(environment)
    good = []
    for sha, statuses in zip(candidates, github.run(read()), strict=True):
        states = {s["state"] for s in statuses if s["context"] == context}
        if "success" in states and not states & DEPLOY_FAILED:
            good.append(sha)
    return tuple(good)


def local_clone(run: Run, branch: str, sha: str) -> str | None:
    """The checkout the tool runs in, holding ``sha`` (fetched from ``origin`` when missing);
    None when there is no usable clone (not a repository, no remote, a different repository)."""
    root = str(run.settings.root)
    try:
        if git.has_commit(root, sha):
            return root
        git.fetch(root, [f"+refs/heads/{branch}:refs/remotes/{git.DEFAULT_REMOTE}/{branch}"])
        return root if git.has_commit(root, sha) else None
    except GitError:
        return None


def rollback_target(run: Run, snapshot: Snapshot, environment: str, failed_sha: str) -> Target:
    """The commit to roll ``environment`` back to after ``failed_sha`` failed there."""
    env = run.pipeline.get(environment)
    github = run.github
    good = known_good(run, snapshot, environment, failed_sha)
    clone = local_clone(run, env.branch, failed_sha)
    if good:
        if clone is not None:
            try:
                return Target(git.rollback_target(clone, failed_sha, good), "newest known-good")
            except GitError:
                pass  # none on the first-parent chain: fall back to the PR's facts
        else:
            found = github.run(_api_known_good(github, failed_sha, frozenset(good)))
            if found is not None:
                return Target(found, "newest known-good (from the API: no usable clone)")
    pull = culprit_pull(run, snapshot, environment, failed_sha)
    if pull is None:
        raise PromoteError(
            f"no rollback target for {environment} at {failed_sha[:7]}: no known-good commit "
            f"before it and no merged pull request produced it; roll back by hand with "
            f"`promote rollback --env {environment} --to SHA`"
        )
    number = int(pull["number"])
    details = github.run(github.pull(number))
    commits = max(1, int(details.get("commits") or 1))
    head = str(details["head"]["sha"])
    how = f"before #{number} landed (no known-good commit)"
    if clone is None:
        sha = github.run(_api_pre_merge(github, failed_sha, commits, head))
        return Target(sha, how + " (from the API: no usable clone)")
    if commits > 1 and not git.has_commit(clone, head):
        with contextlib.suppress(GitError):  # merge_method says what is missing if it matters
            git.fetch(clone, [f"refs/pull/{number}/head"])
    return Target(
        git.pre_merge_commit(clone, failed_sha, pr_commits=commits, pr_head_sha=head), how
    )


def culprit_pull(
    run: Run, snapshot: Snapshot, environment: str, failed_sha: str
) -> dict[str, Any] | None:
    """The PR whose merge into the environment branch produced ``failed_sha``."""
    facts = snapshot.env(environment)
    if facts.head == failed_sha and facts.merged_pull is not None:
        pr = facts.merged_pull
        return {"number": pr.number, "html_url": pr.url, "title": pr.title}
    github = run.github
    return github.run(github.merged_pull_of(failed_sha, run.pipeline.get(environment).branch))


async def _api_known_good(github: GitHub, failed_sha: str, good: frozenset[str]) -> str | None:
    current = await github.git_commit(failed_sha)
    for _ in range(API_WALK_LIMIT):
        parents = current.get("parents") or []
        if not parents:
            return None
        sha = str(parents[0]["sha"])
        if sha in good:
            return sha
        current = await github.git_commit(sha)
    return None


def _who(commit: Mapping[str, Any]) -> tuple[Any, ...]:
    author = commit.get("author") or {}
    return author.get("name"), author.get("email"), author.get("date")


async def _api_pre_merge(github: GitHub, merged_sha: str, commits: int, head_sha: str) -> str:
    """``git.pre_merge_commit`` over the API: the same topology and PR facts, read remotely."""
    short = merged_sha[:7]
    merged = await github.git_commit(merged_sha)
    parents = [str(p["sha"]) for p in merged.get("parents") or []]
    if not parents:
        raise GitError(f"{short} is a root commit: nothing came before it")
    if len(parents) >= 2 or commits == 1:
        return parents[0]  # a merge commit, or a squash (a rebase of one commit is the same)
    head = await github.git_commit(head_sha)
    if head_sha != merged_sha and _who(head) != _who(merged):
        return parents[0]  # a squash: a new commit authored at merge time
    current = merged
    for step in range(commits):
        above = current.get("parents") or []
        if len(above) != 1:
            raise GitError(
                f"{short}~{step} is a merge commit, so {short} is not a rebase merge of "
                f"{commits} commits"
            )
        if step == commits - 1:
            return str(above[0]["sha"])
        current = await github.git_commit(str(above[0]["sha"]))
    raise AssertionError("unreachable")  # pragma: no cover


# -- performing the rollback ------------------------------------------------------------------


def strategy_for(run: Run, env: Environment, name: str | None) -> RollbackStrategy:
    """The strategy named (default: the environment's); an opt-in one only where configured."""
    name = name or env.rollback
    strategies = run.registry.rollback_strategies
    if name not in strategies:
        known = ", ".join(sorted(strategies))
        raise PromoteError(f"unknown rollback strategy {name!r} (known: {known})")
    strategy = strategies[name]
    if strategy.opt_in and env.rollback != name:
        raise PromoteError(
            f"rollback strategy {name} is opt-in and {env.name} is configured for "
            f'{env.rollback}: set rollback = "{name}" for {env.name} to allow it'
        )
    return strategy


def roll_back(
    run: Run,
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
    """Roll ``environment`` back from ``failed_sha`` (the R9 ``rollback`` effect); one line.
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


def perform(run: Run, done: Effect, snapshot: Snapshot) -> str:
    """Perform a ``rollback`` or ``file-fix-plan`` effect."""
    args = dict(done.args)
    if done.kind == "rollback":
        return roll_back(
            run, snapshot, args["environment"], args["failed_sha"], args["strategy"], args["plan"],
            carries=split(args.get("carries", "")),
        )  # fmt: skip
    if done.kind == "file-fix-plan":
        return file_fix_plan(run, snapshot, args)
    raise PromoteError(f"not a failure effect: {done.kind}")  # pragma: no cover - a bug


# -- the fix plan -----------------------------------------------------------------------------


def file_fix_plan(run: Run, snapshot: Snapshot, args: Mapping[str, str]) -> str:
    """File the fix plan through the plan store, once (found by id on a re-run)."""
    github = run.github
    store = run.plan_store
    plan = Plan(
        id=args["id"],
        title=fix_plan_title(args),
        status="inbox",
        priority=FIX_PRIORITY,
        parent=args.get("parent") or None,
        fix_key=args["key"],
        failed_plans=split(args.get("failed_plans", "")),
    )
    did = []
    # Plans a rollback took out of every environment go back to the inbox first: a run that
    # dies between the two writes finds the fix plan missing and does both again.
    returned = split(args.get("returned", ""))
    if returned:
        reason = (
            f"its code was rolled back out of {args['environment']} after the failure of "
            f"{args['failed_sha'][:7]} (fix plan {plan.id})"
        )
        moved = github.run(store.reopen(run.settings, github, returned, reason))
        if moved:
            did.append(f"returned plan {', '.join(moved)} to the inbox")
    known = {p.id for p in github.run(store.plans(run.settings, github))}
    if plan.id in known:
        return "; ".join([*did, f"fix plan {plan.id} already filed"])
    github.run(store.create(run.settings, github, plan, fix_plan_body(run, snapshot, args)))
    did.append(
        f"filed fix plan {plan.id} (priority {plan.priority}) for the failure of "
        f"{args['failed_sha'][:7]} in {args['environment']}"
    )
    return "; ".join(did)


def fix_plan_title(args: Mapping[str, str]) -> str:
    failed = split(args.get("failed_plans", "")) or split(args.get("returned", ""))
    return ledger.fix_plan_title(args["environment"], args["failed_sha"], failed)


def fix_plan_body(run: Run, snapshot: Snapshot, args: Mapping[str, str]) -> str:
    """What a person needs to start fixing: where, which change, which checks, the rollback."""
    env, failed = args["environment"], args["failed_sha"]
    culprit = _culprit_line(run, snapshot, env, failed, args.get("culprit", ""))
    lines = [
        f"`{env}` failed at {failed} and promote rolled it back. Until this plan is done,",
        "promote holds all other work: fix the cause on `feature/" + args["id"] + "` and bring the",
        "fix through the environments as this plan.",
        "",
        f"- Environment: {env}",
        f"- Failed sha: {failed}",
        f"- Culprit: {culprit}",
    ]
    if args.get("failed_plans"):
        lines.append(f"- Failed plans (they travel on with this fix): {args['failed_plans']}")
    if args.get("returned"):
        lines.append(f"- Returned to the inbox (their code was rolled back): {args['returned']}")
    lines.append(f"- Rollback: {_rollback_line(run, snapshot, args)}")
    lines += ["", "## Failing checks", ""]
    checks = failing_checks(run, snapshot, env, failed)
    lines += [f"- {text}" + (f" ({url})" if url else "") for text, url in checks] or [
        "- (none recorded)"
    ]
    return "\n".join(lines) + "\n"


def _culprit_line(run: Run, snapshot: Snapshot, env: str, failed: str, number: str) -> str:
    if not number:
        return f"unknown (no merged pull request produced {failed[:7]})"
    facts = snapshot.env(env)
    if facts.merged_pull is not None and str(facts.merged_pull.number) == number:
        pr = facts.merged_pull
        return f"#{pr.number} {pr.title} ({pr.url})".replace("  ", " ")
    try:
        pull = run.github.run(run.github.pull(int(number)))
    except GitHubError:
        return f"#{number}"
    return f"#{number} {pull.get('title') or ''} ({pull.get('html_url') or ''})".replace("  ", " ")


def _rollback_line(run: Run, snapshot: Snapshot, args: Mapping[str, str]) -> str:
    target, state = args["rollback_target"], args["rollback_state"] or "pending"
    line = f"to {target} — {state}"
    derived = derive(snapshot, run.pipeline).env(args["environment"])
    if derived.sha == args["failed_sha"] and derived.rollback is not None:
        record = next(
            (d for d in snapshot.env(derived.name).deployments
             if d.id == derived.rollback.deployment_id),
            None,
        )  # fmt: skip
        line += f" (deployment {derived.rollback.deployment_id}" + (
            f", {record.url})" if record is not None and record.url else ")"
        )
    elif derived.restores == args["key"]:
        line += f" (restored by moving {derived.branch} to {target[:7]})"
    return line


def failing_checks(
    run: Run, snapshot: Snapshot, env: str, failed: str
) -> list[tuple[str, str | None]]:
    """Each failing check with its link: the derived evidence and verdicts while the failed sha
    is the head, else the verdicts recorded on it (after a revert or reset moved the branch)."""
    state = derive(snapshot, run.pipeline).env(env)
    found: list[tuple[str, str | None]] = []
    if state.sha == failed:
        for verdict in state.verdicts:
            if verdict.result.bad:
                found.append((f"{verdict.validator}: {verdict.summary or 'failed'}", verdict.url))
        for evidence in state.evidence:
            if evidence.kind in ("deployment", "workflow_run", "commit_status") and not (
                evidence.summary.startswith("rollback")
            ):
                found.append((evidence.summary, evidence.url))
        return found
    statuses = run.github.run(run.github.statuses_of(failed))
    latest: dict[str, dict[str, Any]] = {}
    for status in sorted(statuses, key=lambda s: s["id"]):
        latest[status["context"]] = status
    prefix = verdict_context(env)
    for context, status in sorted(latest.items()):
        mine = context == prefix or context.startswith(prefix + "/")
        if mine and context != rollback_marker_context(env) and status["state"] in DEPLOY_FAILED:
            text = f"{context} {status['state']}" + (
                f": {status['description']}" if status.get("description") else ""
            )
            found.append((text, status.get("target_url")))
    return found


# -- promote rollback -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RollbackRequest:
    """What ``promote rollback`` is about to do (``--dry-run`` prints exactly this)."""

    environment: str
    failed_sha: str
    target: Target
    strategy: str
    reason: str
    state: EnvState
    undo: bool = False  # a violation taken back out: no failure, no fix plan, no halt

    def data(self) -> dict[str, str]:
        return {
            "environment": self.environment,
            "failed_sha": self.failed_sha,
            "target": self.target.sha,
            "strategy": self.strategy,
            "reason": self.reason,
        }

    def text(self) -> str:
        """For a terminal: the reason quotes GitHub (a status's description), shown inertly."""
        return (
            f"would roll back {self.environment} from {self.failed_sha[:7]} to "
            f"{self.target.sha[:7]} ({self.target.how}) with {self.strategy}\n"
            f"  reason: {render.inert(self.reason)}"
        )


def request_rollback(
    run: Run, environment: str | None, to: str | None, strategy: str | None
) -> tuple[RollbackRequest, Snapshot]:
    """Check a person's rollback request against GitHub and compute the target; writes nothing."""
    if not environment:
        raise PromoteError("say which environment: --env NAME")
    env = run.pipeline.get(environment)
    chosen = strategy_for(run, env, strategy)
    snapshot = run.snapshot()
    state = derive(snapshot, run.pipeline).env(env.name)
    if state.sha is None:
        raise PromoteError(f"cannot roll back {env.name}: branch {env.branch} does not exist")
    failed = state.sha
    undo = bool(state.violating) and state.state is not State.FAILED
    if undo and chosen.name not in run.pipeline.restoring:
        # Commits that skipped the way in are taken out of the branch, not only redeployed
        # over: a redeploy would leave them there, to go on with the next promotion.
        if strategy is not None:
            raise PromoteError(
                f"{env.name} holds commits that skipped the way in: {chosen.name} would leave "
                f"them on {env.branch}; use --strategy revert (or reset where configured)"
            )
        chosen = strategy_for(run, env, "revert")
    if to:
        target = Target(_ancestor(run, env, to, failed), "asked for with --to")
    elif undo and state.last_validated is not None:
        target = Target(state.last_validated, f"the last commit validated in {env.name}")
    else:
        target = rollback_target(run, snapshot, env.name, failed)
    if state.rollback is not None and state.rollback.target != target.sha:
        raise PromoteError(
            f"{env.name} at {failed[:7]} was already rolled back to {state.rollback.target[:7]} "
            f"(deployment {state.rollback.deployment_id}), not {target.sha[:7]}"
        )
    if state.state is State.FAILED:
        why = next((e.summary for e in state.evidence if e.kind != "pull_request"), "failed")
        reason = f"{env.name} is failed: {why}"
    elif undo:
        reason = f"{env.name} holds commits that skipped the way in: " + ", ".join(
            sha[:7] for sha in state.violating
        )
    else:
        label = state.state.value if state.state else "not deployed"
        reason = f"asked for by hand ({env.name} is {label} at {failed[:7]})"
    return RollbackRequest(env.name, failed, target, chosen.name, reason, state, undo), snapshot


def _ancestor(run: Run, env: Environment, to: str, head: str) -> str:
    github = run.github
    try:
        commit = github.run(github.call("repos.get_commit", ref=to))
    except GitHubError as e:
        if e.status in (404, 422):
            raise PromoteError(
                f"--to {to}: no such commit in {github.connection.repository}"
            ) from None
        raise
    sha = str(commit["sha"])
    if sha == head:
        raise PromoteError(f"--to {to} is the head of {env.branch} itself: nothing to roll back")
    if github.run(github.compare(sha, head)).get("status") != "ahead":
        raise PromoteError(f"--to {to} is not an ancestor of {env.branch}'s head {head[:7]}")
    return sha


def perform_request(run: Run, request: RollbackRequest, snapshot: Snapshot) -> tuple[str, ...]:
    """Roll back as asked (the same code path as R9): first make the failure the sticky verdict
    on the head, so the machine halts, never promotes that sha and files the fix plan."""
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
    plan = fix_plan_id(f"{env}@{failed}")
    did.append(
        roll_back(
            run, snapshot, env, failed, request.strategy, plan, request.target,
            carries=request.state.plans,
        )
    )  # fmt: skip
    action = Action(
        "R9",
        env,
        request.state.state,
        None,
        (effect("rollback", environment=env, failed_sha=failed, strategy=request.strategy,
                plan=plan),),
        plan=request.state.plan,
    )  # fmt: skip
    notify(run.pm, action=action, did=tuple(did), repository=snapshot.repository)
    return tuple(did)
