"""Walks of a branch's commit graph for a rollback target, over any backend (``git.GitGraph``,
``targets.ApiGraph``). Pure; answers come from topology and PR facts, never commit titles."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Literal
from typing import Protocol

from promote_tasks.errors import GitError

MergeMethod = Literal["merge", "squash", "rebase"]
MERGE_METHODS: tuple[MergeMethod, ...] = ("merge", "squash", "rebase")


class CommitGraph(Protocol):
    """What a walk asks of a repository. ``where`` names it in errors."""

    where: str

    def parents(self, sha: str) -> tuple[str, ...]:
        """The commit's parents, first parent first (GitError when the commit is unknown)."""

    def authorship(self, sha: str) -> tuple[object, ...]:
        """Who wrote the commit, and when: a rebase keeps it, a squash does not."""


def first_parents(graph: CommitGraph, start: str) -> Iterator[str]:
    """``start^1``, ``start^1^1``, ... down to the root."""
    current = start
    while True:
        parents = graph.parents(current)
        if not parents:
            return
        current = parents[0]
        yield current


def newest_known_good(
    graph: CommitGraph, failed: str, is_good: Callable[[str], bool]
) -> str | None:
    """The first commit on ``failed``'s first-parent chain (itself excluded) that is good."""
    return next((sha for sha in first_parents(graph, failed) if is_good(sha)), None)


def merge_method(
    graph: CommitGraph, merged: str, pr_commits: int, pr_head: str | None
) -> MergeMethod:
    """How a PR landed at ``merged``: two parents, a merge; one commit, a squash (a rebase of
    one is the same shape); else a rebase keeps the authorship of the PR's head commit, a
    squash is authored anew at merge time."""
    if len(graph.parents(merged)) >= 2:
        return "merge"
    if pr_commits == 1:
        return "squash"
    short = merged[:7]
    if pr_head is None:
        raise GitError(
            f"cannot tell a squash from a rebase merge of {pr_commits} commits at {short} "
            f"in {graph.where}: give the PR's head sha or the merge method"
        )
    try:
        head = graph.authorship(pr_head)
    except GitError:
        raise GitError(
            f"PR head {pr_head[:7]} is not in {graph.where}, so a squash cannot be told from a "
            f"rebase merge at {short}: fetch the PR's head (pull/<N>/head) or give the method"
        ) from None
    return "rebase" if pr_head == merged or head == graph.authorship(merged) else "squash"


def pre_merge_commit(
    graph: CommitGraph,
    merged: str,
    *,
    pr_commits: int = 1,
    pr_head: str | None = None,
    method: MergeMethod | None = None,
) -> str:
    """The commit the branch pointed to just before a PR landed at ``merged`` (its
    ``merge_commit_sha``; for a rebase merge the newest rebased commit): the merge commit's
    first parent, the squash's parent, or ``merged~pr_commits`` for a rebase merge."""
    short, where = merged[:7], graph.where
    method = method or merge_method(graph, merged, pr_commits, pr_head)
    parents = graph.parents(merged)
    if not parents:
        raise GitError(f"{short} in {where} is a root commit: nothing came before it")
    if method == "merge":
        if len(parents) < 2:
            raise GitError(f"{short} in {where} has one parent, so it is not a merge commit")
        return parents[0]
    if len(parents) > 1:
        raise GitError(
            f"{short} in {where} has {len(parents)} parents, so it is not a {method} merge"
        )
    if method == "squash":
        return parents[0]
    landed = merged
    for steps, commit in enumerate(first_parents(graph, merged), 1):
        if len(graph.parents(landed)) != 1:
            raise GitError(
                f"{short}~{steps - 1} in {where} is a merge commit, so {short} is not "
                f"a rebase merge of {pr_commits} commits"
            )
        if steps == pr_commits:
            return commit
        landed = commit
    raise GitError(
        f"{short} in {where} has fewer than {pr_commits} commits before it, so it is not "
        f"a rebase merge of {pr_commits} commits"
    )
