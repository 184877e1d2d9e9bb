"""The one commit-graph walk (graph.py) over a graph held as data: the same questions the git
and API backends answer (tests/test_git.py and tests/e2e/test_failure_errors.py run them)."""

from __future__ import annotations

import pytest

from promote_tasks.errors import GitError
from promote_tasks.graph import first_parents
from promote_tasks.graph import merge_method
from promote_tasks.graph import newest_known_good
from promote_tasks.graph import pre_merge_commit


class Graph:
    where = "the test graph"

    def __init__(self, parents: dict[str, tuple[str, ...]], who: dict[str, str]) -> None:
        self._parents = parents
        self._who = who

    def parents(self, sha: str) -> tuple[str, ...]:
        if sha not in self._parents:
            raise GitError(f"unknown commit {sha}")
        return self._parents[sha]

    def authorship(self, sha: str) -> tuple[object, ...]:
        if sha not in self._who:
            raise GitError(f"unknown commit {sha}")
        return (self._who[sha],)


# root <- a <- m(a, f2) <- r1 <- r2 ; f1 <- f2 is a feature branch; s is a squash on a
HISTORY = Graph(
    {
        "root": (), "a": ("root",), "f1": ("a",), "f2": ("f1",), "m": ("a", "f2"),
        "r1": ("m",), "r2": ("r1",), "s": ("a",),
    },
    {"root": "x", "a": "x", "f1": "ann", "f2": "bob", "m": "gh", "r1": "ann", "r2": "bob", "s": "gh"},
)  # fmt: skip


def test_the_walk_follows_first_parents_to_the_root():
    assert list(first_parents(HISTORY, "r2")) == ["r1", "m", "a", "root"]
    assert newest_known_good(HISTORY, "r2", {"a", "root"}.__contains__) == "a"
    assert newest_known_good(HISTORY, "r2", {"r2"}.__contains__) is None, "never itself"


@pytest.mark.parametrize(
    ("merged", "commits", "head", "method", "before"),
    [("m", 2, "f2", "merge", "a"), ("s", 2, "f2", "squash", "a"), ("r2", 2, "f2", "rebase", "m")],
)
def test_the_commit_before_a_merge_by_each_method(merged, commits, head, method, before):
    assert merge_method(HISTORY, merged, commits, head) == method
    assert pre_merge_commit(HISTORY, merged, pr_commits=commits, pr_head=head) == before


def test_what_topology_contradicts_is_refused():
    with pytest.raises(GitError, match="is a root commit"):
        pre_merge_commit(HISTORY, "root")
    with pytest.raises(GitError, match="has one parent, so it is not a merge commit"):
        pre_merge_commit(HISTORY, "s", method="merge")
    with pytest.raises(GitError, match=r"r1~1 in the test graph is a merge commit"):
        pre_merge_commit(HISTORY, "r1", pr_commits=2, method="rebase")
    with pytest.raises(GitError, match="cannot tell a squash from a rebase"):
        merge_method(HISTORY, "s", 2, None)
    with pytest.raises(GitError, match="PR head nope is not in the test graph"):
        merge_method(HISTORY, "s", 2, "nope")
