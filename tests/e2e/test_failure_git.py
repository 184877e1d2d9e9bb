"""``git.fetch`` and ``git.has_commit``: what the failure path asks of the local clone before it
computes a rollback target (real repositories: a bare remote, a clone of it, a stranger)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from promote_tasks.errors import GitError
from promote_tasks.git import fetch
from promote_tasks.git import has_commit


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env=os.environ, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(work: Path, name: str) -> str:
    (work / name).write_text(name + "\n")
    git(work, "add", name)
    git(work, "commit", "-q", "-m", name)
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Path]:
    """A bare remote with branch ``test``, and a clone of it taken before ``test`` moved on."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "test")
    commit(work, "one")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(work, "remote", "add", "origin", str(bare))
    return work, clone


def test_fetch_brings_a_branch_and_a_pull_head(remote: tuple[Path, Path]) -> None:
    work, clone = remote
    newer = commit(work, "two")
    git(work, "push", "-q", "origin", "test")
    pr_head = commit(work, "three")
    git(work, "push", "-q", "origin", "HEAD:refs/pull/7/head")
    assert not has_commit(clone, newer)
    assert not has_commit(clone, pr_head)
    fetch(clone, ["+refs/heads/test:refs/remotes/origin/test", "refs/pull/7/head"])
    assert has_commit(clone, newer)
    assert has_commit(clone, pr_head)
    assert git(clone, "rev-parse", "refs/remotes/origin/test") == newer
    fetch(clone, [])  # nothing asked, nothing done


def test_has_commit_is_false_for_a_tree_and_for_nonsense(remote: tuple[Path, Path]) -> None:
    _, clone = remote
    tree = git(clone, "rev-parse", "HEAD^{tree}")
    assert has_commit(clone, git(clone, "rev-parse", "HEAD"))
    assert not has_commit(clone, tree)
    assert not has_commit(clone, "not-a-sha")


def test_fetch_without_the_remote_is_one_line(tmp_path: Path) -> None:
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    git(lonely, "init", "-q")
    with pytest.raises(GitError, match=r"^cannot fetch into .*lonely: it has no 'origin' remote$"):
        fetch(lonely, ["refs/heads/test"])


def test_fetch_of_a_missing_ref_names_it(remote: tuple[Path, Path]) -> None:
    _, clone = remote
    with pytest.raises(GitError) as caught:
        fetch(clone, ["refs/pull/99/head"])
    message = str(caught.value)
    assert message.startswith("cannot fetch refs/pull/99/head from 'origin' into ")
    assert "\n" not in message


def test_fetch_from_a_remote_that_is_gone(remote: tuple[Path, Path], tmp_path: Path) -> None:
    _, clone = remote
    (tmp_path / "remote.git").rename(tmp_path / "moved.git")
    with pytest.raises(GitError, match="cannot fetch refs/heads/test from 'origin'"):
        fetch(clone, ["refs/heads/test"])


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        fetch(tmp_path, ["refs/heads/test"])
    with pytest.raises(GitError, match="not a git repository"):
        has_commit(tmp_path, "a" * 40)
