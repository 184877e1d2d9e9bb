"""Tests for promote_tasks.git against real repositories built in tmp_path.

Each GitHub merge method is reproduced on an environment branch ``dev`` with the git CLI:
a true merge (``git merge --no-ff``), a squash (one new single-parent commit) and a rebase
merge (the PR's commits rewritten onto the branch, committed by "GitHub").
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from promote_tasks import graph
from promote_tasks.errors import GitError
from promote_tasks.errors import PromoteError
from promote_tasks.git import GitGraph
from promote_tasks.git import current_branch
from promote_tasks.git import open_repo
from promote_tasks.git import pre_merge_commit
from promote_tasks.git import rollback_target

FIXTURES = Path(__file__).parent / "fixtures"
GITHUB = {"GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}


pytestmark = pytest.mark.usefixtures("git_env")


def run_git(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "") -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


def is_shallow(path: Path) -> bool:
    return run_git(path, "rev-parse", "--is-shallow-repository") == "true"


def merge_method(
    path: Path, sha: str, *, pr_commits: int = 1, pr_head_sha: str | None = None
) -> str:
    """How a PR landed at ``sha``: ``graph.merge_method`` over the clone, as the inference
    inside ``pre_merge_commit`` asks it."""
    repo = open_repo(path)
    try:
        return graph.merge_method(GitGraph(repo, str(path)), sha, pr_commits, pr_head_sha)
    finally:
        repo.close()


@dataclass(frozen=True)
class Landing:
    """One PR landed on ``dev``: what GitHub would report, and the ground truth."""

    number: int
    method: str
    commits: int
    head: str  # refs/pull/N/head
    sha: str  # merge_commit_sha: the merge, the squash, or the newest rebased commit
    before: str  # dev before the PR landed


class Lab:
    """A repository with an environment branch ``dev`` that PRs land on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock = 1_700_000_000
        self._prs = 0
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "dev")
        self.root = self.commit("initial commit")

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        self._clock += 60  # every commit gets its own, deterministic date
        stamp = f"@{self._clock} +0000"
        dates = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        return run_git(self.path, *args, env={**dates, **(env or {})})

    def rev(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")

    def commit(self, message: str) -> str:
        name = f"file{self._clock}.txt"
        (self.path / name).write_text(message + "\n")
        self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.rev("HEAD")

    def empty_commits(self, count: int) -> str:
        """``count`` single-parent commits on ``dev`` in one ``git fast-import``; the new tip."""
        stream = []
        for n in range(count):
            self._clock += 60
            message = f"direct push {n}"
            stream.append(
                f"commit refs/heads/dev\ncommitter Ada <ada@example.com> {self._clock} +0000\n"
                f"data {len(message)}\n{message}\n" + ("from refs/heads/dev^0\n" if n == 0 else "")
            )
        run_git(self.path, "fast-import", "--quiet", stdin="".join(stream))
        return self.rev("dev")

    def land(self, method: str, commits: int = 1, *, title: str | None = None) -> Landing:
        """Open PR #N with ``commits`` commits off ``dev`` and land it the way GitHub would."""
        self._prs += 1
        number = self._prs
        branch = f"feature/pr-{number}"
        before = self.rev("dev")
        self.git("switch", "-q", "-c", branch, "dev")
        for i in range(commits):
            self.commit(f"pr {number} commit {i + 1}")
        head = self.rev("HEAD")
        self.git("update-ref", f"refs/pull/{number}/head", head)
        if method == "merge":
            self.git("switch", "-q", "dev")
            message = title or f"Merge pull request #{number} from someone/{branch}"
            self.git("merge", "-q", "--no-ff", "-m", message, branch, env=GITHUB)
        elif method == "squash":
            self.git("switch", "-q", "dev")
            self.git("merge", "-q", "--squash", branch)
            self.git("commit", "-q", "-m", title or f"PR {number} squashed (#{number})", env=GITHUB)
        elif method == "rebase":
            # GitHub rewrites every commit (new committer), even when none needs moving.
            self.git("rebase", "-q", "--force-rebase", "dev", branch, env=GITHUB)
            self.git("switch", "-q", "dev")
            self.git("merge", "-q", "--ff-only", branch)
        else:
            raise AssertionError(method)
        return Landing(number, method, commits, head, self.rev("dev"), before)

    def shallow_clone(self, dest: Path, depth: int = 1) -> Path:
        run_git(
            self.path.parent,
            "clone",
            "-q",
            f"--depth={depth}",
            "--branch=dev",
            f"file://{self.path}",
            str(dest),
        )
        return dest

    def first_parents(self, rev: str = "dev") -> list[str]:
        return self.git("rev-list", "--first-parent", rev).split()


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path / "repo")


METHODS = ["merge", "squash", "rebase"]


# --- pre_merge_commit and merge_method -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("commits", [1, 3])
def test_pre_merge_commit_each_method(lab: Lab, method: str, commits: int) -> None:
    lab.land("merge", 2)
    pr = lab.land(method, commits)
    lab.land("squash", 1)  # a later landing must not matter

    assert pre_merge_commit(lab.path, pr.sha, pr_commits=commits, method=method) == pr.before  # type: ignore[arg-type]
    inferred = merge_method(lab.path, pr.sha, pr_commits=commits, pr_head_sha=pr.head)
    assert inferred == ("squash" if method == "rebase" and commits == 1 else method)
    assert pre_merge_commit(lab.path, pr.sha, pr_commits=commits, pr_head_sha=pr.head) == pr.before


def test_rebase_of_several_commits_is_several_single_parent_commits(lab: Lab) -> None:
    pr = lab.land("rebase", 4)
    landed = lab.first_parents()[:5]
    assert landed[0] == pr.sha
    assert landed[4] == pr.before
    for sha in landed[:4]:
        assert len(lab.git("rev-list", "--parents", "-n1", sha).split()) == 2
    assert pr.head not in landed  # rewritten, as GitHub does


def test_merge_method_from_topology_not_titles(lab: Lab) -> None:
    # A true merge titled like a squash, and a squash titled like a merge.
    merge = lab.land("merge", 2, title="Fix the widget (#1)")
    squash = lab.land("squash", 2, title="Merge pull request #2 from someone/feature")
    assert merge_method(lab.path, merge.sha, pr_commits=2) == "merge"
    assert merge_method(lab.path, squash.sha, pr_commits=2, pr_head_sha=squash.head) == "squash"
    assert pre_merge_commit(lab.path, merge.sha, pr_commits=2) == merge.before
    assert pre_merge_commit(lab.path, squash.sha, pr_commits=2, method="squash") == squash.before


def test_rebase_by_a_person_is_still_a_rebase(lab: Lab) -> None:
    lab.git("switch", "-q", "-c", "feature/by-hand", "dev")
    lab.commit("first (#41)")
    lab.commit("second (#42)")
    head = lab.rev("HEAD")
    before = lab.rev("dev")
    person = {"GIT_COMMITTER_NAME": "Rita Rebaser", "GIT_COMMITTER_EMAIL": "rita@example.com"}
    lab.git("rebase", "-q", "--force-rebase", "dev", "feature/by-hand", env=person)
    lab.git("switch", "-q", "dev")
    lab.git("merge", "-q", "--ff-only", "feature/by-hand")
    tip = lab.rev("dev")
    assert merge_method(lab.path, tip, pr_commits=2, pr_head_sha=head) == "rebase"
    assert pre_merge_commit(lab.path, tip, pr_commits=2, pr_head_sha=head) == before


def test_squash_and_rebase_of_several_commits_cannot_be_told_without_the_head(lab: Lab) -> None:
    pr = lab.land("rebase", 2)
    with pytest.raises(GitError, match=r"cannot tell a squash from a rebase merge of 2 commits"):
        pre_merge_commit(lab.path, pr.sha, pr_commits=2)
    with pytest.raises(GitError, match=r"^PR head 0000000 is not in .*: fetch the PR's head"):
        merge_method(lab.path, pr.sha, pr_commits=2, pr_head_sha="0" * 40)


@pytest.mark.parametrize(
    ("landing", "commits", "method", "message"),
    [
        ("squash", 1, "merge", r"has one parent, so it is not a merge commit"),
        ("merge", 2, "squash", r"has 2 parents, so it is not a squash merge"),
        ("merge", 2, "rebase", r"has 2 parents, so it is not a rebase merge"),
    ],
)
def test_pre_merge_commit_refuses_facts_that_contradict_topology(
    lab: Lab, landing: str, commits: int, method: str, message: str
) -> None:
    pr = lab.land(landing, commits)
    with pytest.raises(GitError, match=message) as caught:
        pre_merge_commit(lab.path, pr.sha, pr_commits=commits, method=method)  # type: ignore[arg-type]
    assert pr.sha[:7] in str(caught.value)
    assert str(lab.path) in str(caught.value)


def test_rebase_count_reaching_into_an_earlier_merge_is_refused(lab: Lab) -> None:
    lab.land("merge", 1)
    pr = lab.land("rebase", 2)
    with pytest.raises(GitError, match=r"~2 in .* is a merge commit, so .* not a rebase merge"):
        pre_merge_commit(lab.path, pr.sha, pr_commits=3, method="rebase")


def test_rebase_count_beyond_the_root_is_refused(lab: Lab) -> None:
    pr = lab.land("rebase", 2)
    with pytest.raises(GitError, match=r"fewer than 5 commits before it"):
        pre_merge_commit(lab.path, pr.sha, pr_commits=5, method="rebase")


def test_root_commit_has_nothing_before_it(lab: Lab) -> None:
    with pytest.raises(GitError, match=r"is a root commit"):
        pre_merge_commit(lab.path, lab.root, method="squash")


def test_bad_arguments_are_programming_errors(lab: Lab) -> None:
    with pytest.raises(ValueError, match="pr_commits"):
        pre_merge_commit(lab.path, lab.root, pr_commits=0)
    with pytest.raises(ValueError, match="method"):
        pre_merge_commit(lab.path, lab.root, method="fast-forward")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        rollback_target(lab.path, lab.root, [], limit=0)


# --- rollback_target -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_rollback_to_the_commit_before_the_failed_merge(lab: Lab, method: str) -> None:
    good = lab.land("merge", 2)
    failed = lab.land(method, 3)
    assert rollback_target(lab.path, failed.sha, {good.sha}) == good.sha == failed.before


@pytest.mark.parametrize("first", METHODS)
@pytest.mark.parametrize("second", METHODS)
def test_two_failures_in_a_row_skip_the_first_failed_one(lab: Lab, first: str, second: str) -> None:
    good = lab.land("squash", 2)
    failed_1 = lab.land(first, 2)
    failed_2 = lab.land(second, 3)
    known_good = {lab.root, good.sha}  # failed_1 was never validated
    assert rollback_target(lab.path, failed_1.sha, known_good) == good.sha
    assert rollback_target(lab.path, failed_2.sha, known_good) == good.sha
    assert failed_2.before == failed_1.sha  # the naive answer would redeploy a failed commit


def test_known_good_several_merges_back_and_the_newest_wins(lab: Lab) -> None:
    landings = [lab.land(method, 2) for method in METHODS * 3]
    failed = landings[-1]
    known_good = [landings[1].sha, landings[4].sha, lab.root]
    assert rollback_target(lab.path, failed.sha, known_good) == landings[4].sha
    assert rollback_target(lab.path, failed.sha, [landings[1].sha]) == landings[1].sha


def test_failed_sha_itself_never_counts(lab: Lab) -> None:
    good = lab.land("merge", 1)
    failed = lab.land("squash", 1)
    assert rollback_target(lab.path, failed.sha, [failed.sha, good.sha]) == good.sha


def test_known_good_off_the_first_parent_chain_is_ignored(lab: Lab) -> None:
    # A PR head that passed checks elsewhere is not a state the environment was ever in.
    good = lab.land("squash", 1)
    failed = lab.land("merge", 3)
    assert rollback_target(lab.path, failed.sha, [failed.head, good.sha]) == good.sha


def test_abbreviated_and_uppercase_known_good_shas_match(lab: Lab) -> None:
    good = lab.land("merge", 1)
    failed = lab.land("rebase", 2)
    assert rollback_target(lab.path, failed.sha, [good.sha[:10]]) == good.sha
    assert rollback_target(lab.path, failed.sha, [good.sha.upper()]) == good.sha


def test_rollback_target_accepts_a_branch_name(lab: Lab) -> None:
    good = lab.land("merge", 1)
    lab.land("rebase", 2)
    assert rollback_target(lab.path, "dev", [good.sha]) == good.sha


def test_limit_bounds_the_walk(lab: Lab) -> None:
    good = lab.land("squash", 1)
    failed = lab.land("rebase", 4)  # good is the 4th first-parent commit before failed
    assert rollback_target(lab.path, failed.sha, [good.sha], limit=4) == good.sha
    with pytest.raises(GitError) as caught:
        rollback_target(lab.path, failed.sha, [good.sha], limit=3)
    assert str(caught.value) == (
        f"no known-good commit within 3 first-parent commits before {failed.sha[:7]} in {lab.path}"
    )


def test_no_known_good_at_all_is_refused_without_walking(lab: Lab, tmp_path: Path) -> None:
    failed = lab.land("merge", 2)
    clone = lab.shallow_clone(tmp_path / "clone")
    with pytest.raises(GitError) as caught:
        rollback_target(clone, failed.sha, [])
    assert str(caught.value) == (
        f"no known-good commit before {failed.sha[:7]} in {clone}: none was given"
    )
    assert run_git(clone, "rev-list", "--count", "HEAD") == "1"  # nothing fetched


def test_walk_reaching_the_root_says_so(lab: Lab) -> None:
    failed = lab.land("merge", 2)
    with pytest.raises(GitError, match=r"reached the first commit after 1 first-parent commits"):
        rollback_target(lab.path, failed.sha, ["f" * 40])


# --- errors --------------------------------------------------------------------------------------


def test_unknown_sha_is_a_one_line_error_naming_it(lab: Lab) -> None:
    for call in (
        lambda: rollback_target(lab.path, "deadbeef" * 5, [lab.root]),
        lambda: pre_merge_commit(lab.path, "deadbeef" * 5, method="merge"),
    ):
        with pytest.raises(GitError) as caught:
            call()
        assert str(caught.value) == f"unknown commit deadbee in {lab.path}"
        assert isinstance(caught.value, PromoteError)


def test_a_tree_sha_is_not_a_commit(lab: Lab) -> None:
    tree = lab.git("rev-parse", "dev^{tree}")
    with pytest.raises(GitError, match=rf"unknown commit {tree[:7]} in"):
        rollback_target(lab.path, tree, [lab.root])


@pytest.mark.parametrize("exists", [True, False])
def test_not_a_git_repository(tmp_path: Path, exists: bool) -> None:
    path = tmp_path / "plain"
    if exists:
        path.mkdir()
    message = f"not a git repository: {path}"
    calls = [
        lambda: open_repo(path),
        lambda: current_branch(path),
        lambda: rollback_target(path, "abc1234", []),
        lambda: pre_merge_commit(path, "abc1234", method="squash"),
    ]
    for call in calls:
        with pytest.raises(GitError) as caught:
            call()
        assert str(caught.value) == message


# --- shallow clones ------------------------------------------------------------------------------


def test_shallow_clone_is_deepened_to_find_known_good(lab: Lab, tmp_path: Path) -> None:
    good = lab.land("merge", 2)
    for method in METHODS * 4:
        lab.land(method, 2)
    failed = lab.land("rebase", 3)
    clone = lab.shallow_clone(tmp_path / "clone")
    assert is_shallow(clone)
    assert run_git(clone, "rev-list", "--count", "HEAD") == "1"

    assert rollback_target(clone, failed.sha, {good.sha}) == good.sha
    assert run_git(clone, "cat-file", "-t", good.sha) == "commit"


def test_shallow_clone_is_deepened_progressively(lab: Lab, tmp_path: Path) -> None:
    failed = lab.empty_commits(200)  # stand-ins for landings: any single-parent commits
    good = lab.rev("dev~80")
    clone = lab.shallow_clone(tmp_path / "clone")
    assert rollback_target(clone, failed, [good]) == good
    depth = int(run_git(clone, "rev-list", "--count", "HEAD"))
    assert 81 <= depth < 201  # deepened a few times (32, 33, 66 commits), not unshallowed
    assert is_shallow(clone)


def test_shallow_clone_deepened_to_the_root(lab: Lab, tmp_path: Path) -> None:
    lab.land("squash", 1)
    failed = lab.land("merge", 2)
    clone = lab.shallow_clone(tmp_path / "clone")
    with pytest.raises(GitError, match=r"reached the first commit after 2 first-parent commits"):
        rollback_target(clone, failed.sha, ["f" * 40])
    assert not is_shallow(clone)


def test_shallow_clone_of_a_shallow_clone_cannot_be_deepened(lab: Lab, tmp_path: Path) -> None:
    lab.empty_commits(6)
    middle = lab.shallow_clone(tmp_path / "middle", depth=3)
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", "--depth=1", f"file://{middle}", str(clone))
    with pytest.raises(GitError) as caught:
        rollback_target(clone, "HEAD", [lab.root])
    message = str(caught.value)
    assert message.startswith(f"cannot walk back from {lab.rev('dev')[:7]}: {clone} is still ")
    assert message.endswith(
        "after fetching all history from 'origin'; clone with full history "
        "(actions/checkout: fetch-depth: 0)"
    )


def test_known_good_parent_needs_no_fetch_in_a_depth_1_clone(lab: Lab, tmp_path: Path) -> None:
    good = lab.land("squash", 1)
    failed = lab.land("merge", 2)
    clone = lab.shallow_clone(tmp_path / "clone")
    run_git(clone, "remote", "remove", "origin")  # any fetch would fail
    assert rollback_target(clone, failed.sha, [good.sha]) == good.sha
    assert pre_merge_commit(clone, failed.sha, pr_commits=2) == failed.before


def test_rebase_in_a_shallow_clone_deepens(lab: Lab, tmp_path: Path) -> None:
    pr = lab.land("rebase", 5)
    lab.land("squash", 1)
    clone = lab.shallow_clone(tmp_path / "clone", depth=2)
    assert pre_merge_commit(clone, pr.sha, pr_commits=5, method="rebase") == pr.before


def test_shallow_clone_without_remote_says_how_to_fix_it(lab: Lab, tmp_path: Path) -> None:
    good = lab.land("merge", 1)
    lab.land("squash", 1)
    failed = lab.land("squash", 1)
    clone = lab.shallow_clone(tmp_path / "clone")
    run_git(clone, "remote", "remove", "origin")
    with pytest.raises(GitError) as caught:
        rollback_target(clone, failed.sha, [good.sha])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot walk back from {failed.sha[:7]}: {clone} is a shallow clone")
    assert "no 'origin' remote" in message
    assert "fetch-depth: 0" in message


def test_shallow_clone_whose_remote_is_gone(lab: Lab, tmp_path: Path) -> None:
    good = lab.land("merge", 1)
    lab.land("squash", 1)
    failed = lab.land("squash", 1)
    clone = lab.shallow_clone(tmp_path / "clone")
    run_git(clone, "remote", "set-url", "origin", f"file://{tmp_path}/nowhere")
    with pytest.raises(GitError, match=r"cannot deepen shallow clone .* from 'origin' \(.+\)") as e:
        rollback_target(clone, failed.sha, [good.sha])
    assert "\n" not in str(e.value)
    assert "fetch-depth: 0" in str(e.value)


def test_deepening_uses_the_named_remote(lab: Lab, tmp_path: Path) -> None:
    good = lab.land("merge", 1)
    lab.land("squash", 1)
    failed = lab.land("squash", 1)
    clone = lab.shallow_clone(tmp_path / "clone")
    run_git(clone, "remote", "rename", "origin", "upstream")
    with pytest.raises(GitError, match="no 'origin' remote"):
        rollback_target(clone, failed.sha, [good.sha])
    assert rollback_target(clone, failed.sha, [good.sha], remote="upstream") == good.sha


# --- local facts ---------------------------------------------------------------------------------


def test_current_branch(lab: Lab) -> None:
    assert current_branch(lab.path) == "dev"
    lab.git("switch", "-q", "-c", "feature/plan-7")
    assert current_branch(lab.path) == "feature/plan-7"
    (lab.path / "sub").mkdir()
    assert current_branch(lab.path / "sub") == "feature/plan-7"
    lab.git("switch", "-q", "--detach", "dev")
    assert current_branch(lab.path) is None


def test_current_branch_before_the_first_commit(tmp_path: Path) -> None:
    run_git(tmp_path, "init", "-q", "-b", "trunk")
    assert current_branch(tmp_path) == "trunk"
    assert not is_shallow(tmp_path)


def test_open_repo_finds_the_repository_above(lab: Lab) -> None:
    (lab.path / "a" / "b").mkdir(parents=True)
    repo = open_repo(lab.path / "a" / "b")
    try:
        assert Path(repo.working_dir) == lab.path
    finally:
        repo.close()


def test_importing_the_module_does_not_import_gitpython() -> None:
    code = "import sys, promote_tasks.git; print('git' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- a real merge history ------------------------------------------------------------------------
#
# merge_history.json holds stretches of scipy/scipy's main branch (regenerate with
# fixtures/make_history_fixture.py): every first-parent commit with its parents, the PR it came
# from, how that PR landed and the ground truth "branch tip before this PR landed", worked out
# from topology and refs/pull/N/head. Each stretch is rebuilt here with the same topology and
# authorship and synthetic content, and every answer is checked against the ground truth.

HISTORY = FIXTURES / "merge_history.json"


@dataclass(frozen=True)
class Rebuilt:
    """One stretch of the real history, rebuilt in a local repository."""

    path: Path
    base: str  # real sha of the commit below the stretch
    entries: list[dict[str, Any]]  # newest first, as in the fixture
    synthetic: dict[str, str]  # real sha -> rebuilt sha
    heads: dict[int, str]  # PR number -> rebuilt head sha

    def __getitem__(self, real: str) -> str:
        return self.synthetic[real]

    @property
    def tips(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["tip"]]

    def known_good(self, *, without: str | None = None) -> set[str]:
        """Every commit the branch ever pointed to (each passed, as far as this test cares)."""
        return {self[e["sha"]] for e in self.tips if e["sha"] != without} | {self[self.base]}


def _ident(kind: str, number: int | str, date: str) -> bytes:
    return f"{kind} Author {number} <author{number}@example.invalid> {date}\n".encode()


def _data(text: str) -> bytes:
    raw = text.encode()
    return b"data %d\n%s\n" % (len(raw), raw)


def rebuild(stretch: dict[str, Any], path: Path) -> Rebuilt:
    """Replay a stretch with ``git fast-import``: same parents, authors and dates, new content."""
    marks: dict[str, int] = {}
    stream: list[bytes] = []
    clock = iter(range(1_000_000_000, 2_000_000_000, 60))

    def commit(
        real: str,
        ref: str,
        parents: list[str],
        subject: str,
        author: bytes,
        committer: str = "github",
    ) -> None:
        marks[real] = len(marks) + 1
        who = b"GitHub <noreply@github.com>" if committer == "github" else b"A Person <p@x.invalid>"
        stream.append(f"commit {ref}\nmark :{marks[real]}\n".encode())
        stream.append(author)
        stream.append(b"committer %s %d +0000\n" % (who, next(clock)))
        stream.append(_data(subject))
        for n, parent in enumerate(parents):
            stream.append(f"{'from' if n == 0 else 'merge'} :{marks[parent]}\n".encode())
        stream.append(b"M 644 inline history.txt\n" + _data(real))

    base = stretch["base"]
    commit(base, "refs/heads/main", [], "base", _ident("author", 0, "1000000000 +0000"))
    heads: dict[int, str] = {}
    for e in reversed(stretch["entries"]):
        author = _ident("author", e["author"], e["author_date"])
        parents = [e["parents"][0]]
        if len(e["parents"]) > 1:  # a side branch from the fork point, ending at the PR head
            side = e["parents"][1]
            fork = e.get("fork") or base
            chain = [fork]
            for n in range(min(max(e["pr_commits"] or 1, 1), 3) - 1):
                chain.append(f"{side}-{n}")
                commit(chain[-1], "refs/heads/side", [chain[-2]], "side", author, "person")
            commit(side, "refs/heads/side", [chain[-1]], "pr head", author, "person")
            parents.append(side)
        commit(e["sha"], "refs/heads/main", parents, e["subject"], author, e["committer"])
        if "pr_head" in e:
            head = e["pr_head"]
            who = _ident("author", head["author"], head["author_date"])
            commit(head["sha"], f"refs/pull/{e['pr']}/head", [e["before"]], "pr head", who)
            heads[e["pr"]] = head["sha"]

    path.mkdir(parents=True)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True, env=env)
    stream.append(b"done\n")
    marks_file = path / ".git" / "fast-import-marks"
    subprocess.run(
        ["git", "fast-import", "--quiet", "--done", f"--export-marks={marks_file}"],
        cwd=path,
        input=b"".join(stream),
        check=True,
        env=env,
    )
    by_mark = dict(line.split() for line in marks_file.read_text().splitlines())
    synthetic = {real: by_mark[f":{mark}"] for real, mark in marks.items()}
    return Rebuilt(
        path=path,
        base=base,
        entries=stretch["entries"],
        synthetic=synthetic,
        heads={number: synthetic[sha] for number, sha in heads.items()},
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> list[Rebuilt]:
    document = json.loads(HISTORY.read_text())
    root = tmp_path_factory.mktemp("history")
    return [rebuild(s, root / f"stretch-{n}") for n, s in enumerate(document["stretches"])]


def test_history_fixture_is_small_and_covers_every_method_and_trap() -> None:
    assert HISTORY.stat().st_size < 200_000
    document = json.loads(HISTORY.read_text())
    entries = [e for s in document["stretches"] for e in s["entries"]]
    assert 100 <= len(entries) <= 400
    methods = Counter(e["method"] for e in entries if e["tip"])
    assert methods["merge"] > 20
    assert methods["squash"] > 20
    assert methods["rebase"] > 5
    traps = Counter(t for e in entries for t in e.get("traps", []))
    for trap in (
        "merge-titled-like-squash",  # a true merge, titled "... (#N)"
        "single-parent-titled-like-merge",  # a squash, titled "Merge pull request #N ..."
        "rebased-commit-with-pr-number",  # a rebased commit carrying "(#N)"
        "rebased-by-person",  # rebased commits committed by a person, not GitHub
        "squash-of-several-commits",
    ):
        assert traps[trap] >= 1, trap
    assert max(e["landed"] for e in entries) >= 10  # a rebase merge of many commits
    # For a rebase merge, the PR's commit count (what GitHub reports) is what landed.
    assert all(e["pr_commits"] == e["landed"] for e in entries if e["method"] == "rebase")


def test_history_rebuilt_with_the_same_topology(history: list[Rebuilt]) -> None:
    for rebuilt in history:
        fp = run_git(rebuilt.path, "rev-list", "--first-parent", "main").split()
        assert fp == [rebuilt[e["sha"]] for e in rebuilt.entries] + [rebuilt[rebuilt.base]]
        for e in rebuilt.entries:
            line = run_git(rebuilt.path, "rev-list", "--parents", "-n1", rebuilt[e["sha"]])
            assert line.split()[1:] == [rebuilt[p] for p in e["parents"]]


def test_history_rollback_target_is_the_tip_before_each_pr(history: list[Rebuilt]) -> None:
    wrong = []
    for rebuilt in history:
        known_good = rebuilt.known_good()
        for e in rebuilt.entries:  # rebased commits that were never the tip included
            got = rollback_target(rebuilt.path, rebuilt[e["sha"]], known_good)
            if got != rebuilt[e["before"]]:
                wrong.append((e["sha"][:10], e["method"], e["subject"][:40]))
    assert wrong == []


def test_history_second_failure_in_a_row_skips_the_first(history: list[Rebuilt]) -> None:
    checked = 0
    for rebuilt in history:
        tips = rebuilt.tips
        for newer, older in itertools.pairwise(tips):
            assert newer["before"] == older["sha"]
            known_good = rebuilt.known_good(without=older["sha"])
            got = rollback_target(rebuilt.path, rebuilt[newer["sha"]], known_good)
            assert got == rebuilt[older["before"]], (newer["sha"], older["sha"])
            checked += 1
    assert checked > 200


def test_history_pre_merge_commit_from_github_facts(history: list[Rebuilt]) -> None:
    wrong, traps = [], Counter[str]()
    for rebuilt in history:
        for i, e in enumerate(rebuilt.entries):
            if not e["tip"] or e["method"] is None:
                continue
            count = e["landed"] if e["method"] == "rebase" else e["pr_commits"] or 1
            merged, before = rebuilt[e["sha"]], rebuilt[e["before"]]
            answers = [pre_merge_commit(rebuilt.path, merged, pr_commits=count, method=e["method"])]
            if e["method"] == "merge" or count == 1 or e["pr"] in rebuilt.heads:
                head = rebuilt.heads.get(e["pr"])
                answers.append(
                    pre_merge_commit(rebuilt.path, merged, pr_commits=count, pr_head_sha=head)
                )
            if any(answer != before for answer in answers):
                wrong.append((e["sha"][:10], e["method"], e["subject"][:40]))
            for landed in rebuilt.entries[i : i + e["landed"]]:  # the PR's commits
                traps.update(landed.get("traps", []))
    assert wrong == []
    assert traps["merge-titled-like-squash"]
    assert traps["rebased-commit-with-pr-number"]


def test_history_merge_method_told_from_topology_and_pr_head(history: list[Rebuilt]) -> None:
    told = Counter[str]()
    for rebuilt in history:
        for e in rebuilt.tips:
            count = e["landed"] if e["method"] == "rebase" else e["pr_commits"] or 1
            if e["method"] is None or count == 1:
                continue  # one commit: squash and rebase are the same shape
            head = rebuilt.heads.get(e["pr"])
            if e["method"] != "merge" and head is None:
                continue
            got = merge_method(rebuilt.path, rebuilt[e["sha"]], pr_commits=count, pr_head_sha=head)
            assert got == e["method"], e["sha"]
            told[got] += 1
    assert told["merge"]
    assert told["squash"]
    assert told["rebase"]


def test_history_shallow_clone_is_deepened_across_the_stretch(
    history: list[Rebuilt], tmp_path: Path
) -> None:
    rebuilt = history[0]
    source = rebuilt.path
    newest = rebuilt.entries[0]
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "-q", "--depth=1", "--branch=main", f"file://{source}", str(clone))
    assert is_shallow(clone)
    # Nothing passed in the whole stretch: the walk must reach the base, deepening as it goes.
    assert (
        rollback_target(clone, rebuilt[newest["sha"]], {rebuilt[rebuilt.base]})
        == rebuilt[rebuilt.base]
    )

    biggest = max(rebuilt.tips, key=lambda e: e["landed"] if e["method"] == "rebase" else 0)
    run_git(source, "branch", "-f", "biggest-rebase", rebuilt[biggest["sha"]])
    clone = tmp_path / "clone-rebase"
    run_git(
        tmp_path,
        "clone",
        "-q",
        "--depth=1",
        "--branch=biggest-rebase",
        f"file://{source}",
        str(clone),
    )
    got = pre_merge_commit(
        clone, rebuilt[biggest["sha"]], pr_commits=biggest["landed"], method="rebase"
    )
    assert got == rebuilt[biggest["before"]]
