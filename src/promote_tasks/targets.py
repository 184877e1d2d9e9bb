"""Where a rollback goes and how: known-good commits, the target (from git in the local clone,
fetched first, else from the API; never guessed), the strategy. Reads only."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import TYPE_CHECKING
from typing import Any

from promote_tasks import git
from promote_tasks import render
from promote_tasks.errors import GitError
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.graph import newest_known_good
from promote_tasks.graph import pre_merge_commit
from promote_tasks.ledger import verdict_context
from promote_tasks.machine import derive
from promote_tasks.model import DEPLOY_FAILED
from promote_tasks.model import Environment
from promote_tasks.model import EnvState
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.registry import RollbackStrategy
from promote_tasks.registry import Runner as Run

if TYPE_CHECKING:
    from promote_tasks.registry import GitHubPort

KNOWN_GOOD_CANDIDATES = 30  #: newest distinct shas deployed in the environment that are looked at


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a rollback goes, and why that commit (one line, for people)."""

    sha: str
    how: str


# -- known-good commits and the target --------------------------------------------------------


def known_good(run: Run, environment: str, failed_sha: str) -> tuple[str, ...]:
    """Shas deployed in ``environment`` whose ``promote/<env>`` is success and never failure,
    newest deployment first (read from GitHub, one concurrent wave)."""
    github = run.github
    # All of them: the snapshot has only the newest page, and an older deploy counts.
    shas = [str(d["sha"]) for d in github.run(github.deployments(environment))]
    candidates: list[str] = []
    for sha in shas:
        if sha != failed_sha and sha not in candidates:
            candidates.append(sha)
    candidates = candidates[:KNOWN_GOOD_CANDIDATES]
    if not candidates:
        return ()

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
    good = known_good(run, environment, failed_sha)
    clone = local_clone(run, env.branch, failed_sha)
    if good:
        if clone is not None:
            try:
                return Target(git.rollback_target(clone, failed_sha, good), "newest known-good")
            except GitError:
                pass  # none on the first-parent chain: fall back to the PR's facts
        else:
            api = ApiGraph(github)
            found = newest_known_good(api, failed_sha, frozenset(good).__contains__)
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
        sha = pre_merge_commit(ApiGraph(github), failed_sha, pr_commits=commits, pr_head=head)
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
    found: dict[str, Any] | None = github.run(
        github.merged_pull_of(failed_sha, run.pipeline.get(environment).branch)
    )
    return found


class ApiGraph:
    """GitHub's git data API as a :class:`graph.CommitGraph`, for a run with no usable clone:
    one request per commit walked (content-addressed, so each is asked once per process)."""

    where = "the repository on GitHub"

    def __init__(self, github: GitHubPort) -> None:
        self.github = github

    def _commit(self, sha: str) -> dict[str, Any]:
        try:
            return dict(self.github.run(self.github.git_commit(sha)))
        except GitHubError as e:
            if e.status in (404, 422):
                raise GitError(f"unknown commit {sha[:7]} in {self.where}") from None
            raise

    def parents(self, sha: str) -> tuple[str, ...]:
        return tuple(str(p["sha"]) for p in self._commit(sha).get("parents") or ())

    def authorship(self, sha: str) -> tuple[object, ...]:
        author = self._commit(sha).get("author") or {}
        return author.get("name"), author.get("email"), author.get("date")


# -- the strategy ------------------------------------------------------------------------------


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
        target = Target(_ancestor(run, snapshot, env, to, failed), "asked for with --to")
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


def _ancestor(run: Run, snapshot: Snapshot, env: Environment, to: str, head: str) -> str:
    github = run.github
    try:
        commit = github.run(github.commit(to))
    except GitHubError as e:
        if e.status in (404, 422):
            raise PromoteError(f"--to {to}: no such commit in {snapshot.repository}") from None
        raise
    sha = str(commit["sha"])
    if sha == head:
        raise PromoteError(f"--to {to} is the head of {env.branch} itself: nothing to roll back")
    if github.run(github.compare(sha, head)).get("status") != "ahead":
        raise PromoteError(f"--to {to} is not an ancestor of {env.branch}'s head {head[:7]}")
    return sha
