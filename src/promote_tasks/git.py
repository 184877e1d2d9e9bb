"""Local git facts: rollback targets, the commit before a merge, shallow clones, the branch.
The only module that imports gitpython, inside the functions (``import git`` costs ~150 ms)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from promote_tasks import graph
from promote_tasks.errors import GitError

if TYPE_CHECKING:
    import git

# Answers come from topology and facts read from GitHub, never from commit titles: real
# histories have merges titled like squashes and rebased commits that carry "(#N)".
MergeMethod = graph.MergeMethod
MERGE_METHODS = graph.MERGE_METHODS

DEFAULT_REMOTE = "origin"
_FIRST_DEEPEN = 32  # commits fetched by the first deepening of a shallow clone; then it doubles
_FIX_SHALLOW = "clone with full history (actions/checkout: fetch-depth: 0)"


def open_repo(path: str | os.PathLike[str]) -> git.Repo:
    """Open the git repository at or above ``path``; :class:`GitError` naming it if there is none.

    The caller owns the returned repository and should ``close()`` it (gitpython keeps
    ``git cat-file`` processes alive until then).
    """
    import git

    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.exc.InvalidGitRepositoryError, git.exc.NoSuchPathError):
        raise GitError(f"not a git repository: {os.fspath(path)}") from None


def current_branch(repo_path: str | os.PathLike[str]) -> str | None:
    """Name of the checked-out branch (``"feature/x"``), or ``None`` when HEAD is detached.

    A branch with no commits yet (a fresh ``git init``) still has a name.
    """
    with _opened(repo_path) as repo:
        if repo.head.is_detached:
            return None
        return repo.head.reference.name


_REMOTE_URL = re.compile(
    r"^(?:[a-z+]+://(?:[^@/]+@)?[^/:]+(?::\d+)?/|[^@/:]+@[^/:]+:)(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$"
)


def remote_repository(
    repo_path: str | os.PathLike[str], remote: str = DEFAULT_REMOTE
) -> str | None:
    """``owner/name`` from the URL of a remote on a host (https, ssh or scp-style), or None
    when there is no repository, no such remote, or the remote is a local path."""
    try:
        with _opened(repo_path) as repo:
            if remote not in [r.name for r in repo.remotes]:
                return None
            url = repo.remotes[remote].url
    except GitError:
        return None
    return repository_from_url(url)


def remote_url(repo_path: str | os.PathLike[str], remote: str = DEFAULT_REMOTE) -> str | None:
    """The configured URL of ``remote``, or None. Asks the git CLI (a few ms), not gitpython
    (150 ms to import): ``promote-guard`` needs this and nothing else from git."""
    import subprocess

    try:
        done = subprocess.run(
            ["git", "config", "--get", f"remote.{remote}.url"],
            cwd=repo_path,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def repository_from_url(url: str) -> str | None:
    """``owner/name`` from a remote URL on a host (https, ssh or scp-style); None for a local
    path or anything else. Pure: no git is asked."""
    found = _REMOTE_URL.match(url.strip())
    return f"{found.group('owner')}/{found.group('name')}" if found else None


def has_commit(repo_path: str | os.PathLike[str], sha: str) -> bool:
    """Whether the commit ``sha`` is in the repository (a tree or blob sha is not a commit)."""
    with _opened(repo_path) as repo:
        try:
            _resolve(repo, sha, os.fspath(repo_path))
        except GitError:
            return False
        return True


def fetch(
    repo_path: str | os.PathLike[str], refspecs: Iterable[str], *, remote: str = DEFAULT_REMOTE
) -> None:
    """Fetch ``refspecs`` from ``remote`` (no tags), e.g. ``+refs/heads/test:refs/remotes/origin/test``
    or ``refs/pull/7/head`` (kept only as reachable objects until the next fetch).

    :class:`GitError` (one line) when there is no such remote or the fetch fails.
    """
    import git

    specs = list(refspecs)
    path = os.fspath(repo_path)
    with _opened(repo_path) as repo:
        if remote not in {r.name for r in repo.remotes}:
            raise GitError(f"cannot fetch into {path}: it has no {remote!r} remote")
        if not specs:
            return
        try:
            repo.git.fetch("--quiet", "--no-tags", remote, *specs)
        except git.exc.GitCommandError as exc:
            reason = _first_line(exc.stderr) or f"git fetch exited {exc.status}"
            raise GitError(
                f"cannot fetch {specs[0]} from {remote!r} into {path} ({reason})"
            ) from None


def rollback_target(
    repo_path: str | os.PathLike[str],
    failed_sha: str,
    known_good: Iterable[str],
    *,
    limit: int | None = None,
    remote: str = DEFAULT_REMOTE,
) -> str:
    """The newest known-good commit on the first-parent chain before ``failed_sha``.

    Walks ``failed_sha^1``, ``failed_sha^1^1``, ... (``failed_sha`` itself never counts) and
    returns the full sha of the first commit found in ``known_good`` — the shas deployed and
    validated in the environment, as the caller read them from GitHub (full shas; abbreviated
    ones of 7 or more characters match by prefix). The commits of the failed PR and of earlier
    failed merges are skipped because they are not known-good.

    One streamed ``git rev-list --first-parent``, stopped at the first match: git's own speed,
    and no limit unless ``limit`` is given. A shallow clone is deepened from ``remote`` as the
    walk reaches its boundary. :class:`GitError` (one line, naming the sha and the repository)
    when nothing is found, ``failed_sha`` is unknown, the path is not a repository, or a
    shallow clone cannot be deepened.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    is_good = _sha_matcher(known_good)
    path = os.fspath(repo_path)
    with _opened(repo_path) as repo:
        failed = _resolve(repo, failed_sha, path)
        short = _short(failed.hexsha)
        if not is_good:  # walking (and deepening) would be for nothing
            raise GitError(f"no known-good commit before {short} in {path}: none was given")
        walked, start = 0, failed.hexsha
        while True:
            last = start
            for sha in _rev_list_first_parent(repo, start):
                if sha == start:
                    continue  # the walk's own start: failed_sha, or a boundary walked already
                walked += 1
                if is_good(sha):
                    return sha
                if limit is not None and walked >= limit:
                    raise GitError(
                        f"no known-good commit within {limit} first-parent commits before "
                        f"{short} in {path}"
                    )
                last = sha
            if last not in _shallow_commits(repo):
                break  # the root: nothing further back
            # The boundary's own object still names its parent: often that is the answer.
            named = _resolve(repo, last, path).parents
            if named and is_good(named[0].hexsha):
                return named[0].hexsha
            _deepen(repo, failed, last, max(_FIRST_DEEPEN, walked), remote=remote, path=path)
            start = last
    raise GitError(
        f"no known-good commit before {short} in {path}: "
        f"reached the first commit after {walked} first-parent commits"
    )


def _rev_list_first_parent(repo: git.Repo, start: str) -> Iterator[str]:
    """``git rev-list --first-parent start``, line by line as git prints it."""
    process = repo.git.rev_list("--first-parent", start, as_process=True)
    try:
        for line in process.proc.stdout:
            yield line.decode("ascii").strip()
    finally:
        process.proc.kill()
        process.proc.wait()


def pre_merge_commit(
    repo_path: str | os.PathLike[str],
    merged_sha: str,
    *,
    pr_commits: int = 1,
    method: MergeMethod | None = None,
    pr_head_sha: str | None = None,
    remote: str = DEFAULT_REMOTE,
) -> str:
    """The commit the branch pointed to just before a PR landed at ``merged_sha``.

    ``merged_sha`` is the PR's ``merge_commit_sha`` (for a rebase merge, the newest of the
    rebased commits). The answer by ``method``:

    - ``"merge"``: first parent of the merge commit (which must have two or more parents);
    - ``"squash"``: the squash commit's only parent;
    - ``"rebase"``: ``merged_sha~pr_commits`` — the ``pr_commits`` commits the PR landed as,
      each with one parent, are stepped over.

    With ``method=None`` it is found by :func:`graph.merge_method` from ``pr_commits`` and
    ``pr_head_sha``. This is the rollback target of last resort, for an environment with no
    known-good commit yet; prefer :func:`rollback_target`. A shallow clone is deepened from
    ``remote`` when a rebase merge reaches past its boundary.
    """
    if pr_commits < 1:
        raise ValueError(f"pr_commits must be at least 1, not {pr_commits}")
    if method is not None and method not in MERGE_METHODS:
        raise ValueError(f"method must be one of {', '.join(MERGE_METHODS)}, not {method!r}")
    path = os.fspath(repo_path)
    with _opened(repo_path) as repo:
        merged = _resolve(repo, merged_sha, path)
        return graph.pre_merge_commit(
            GitGraph(repo, path, remote), merged.hexsha,
            pr_commits=pr_commits, pr_head=pr_head_sha, method=method,
        )  # fmt: skip


class GitGraph:
    """The local clone as a :class:`graph.CommitGraph`; a shallow clone is deepened from
    ``remote`` when a walk reaches its boundary."""

    def __init__(self, repo: git.Repo, where: str, remote: str = DEFAULT_REMOTE) -> None:
        self.repo = repo
        self.where = where
        self.remote = remote

    def parents(self, sha: str) -> tuple[str, ...]:
        return tuple(p.hexsha for p in self._commit(sha).parents)

    def _commit(self, sha: str) -> git.Commit:
        """A commit object; past a shallow clone's boundary, after deepening it."""
        try:
            return _resolve(self.repo, sha, self.where)
        except GitError:
            boundary = next(
                (b for b in _shallow_commits(self.repo)
                 if sha in (p.hexsha for p in _resolve(self.repo, b, self.where).parents)),
                None,
            )  # fmt: skip
            if boundary is None:
                raise
            child = _resolve(self.repo, boundary, self.where)
            _deepen(self.repo, child, boundary, _FIRST_DEEPEN, remote=self.remote, path=self.where)
            return _resolve(self.repo, sha, self.where)

    def authorship(self, sha: str) -> tuple[object, ...]:
        commit = self._commit(sha)
        return (
            commit.author.name,
            commit.author.email,
            commit.authored_date,
            commit.author_tz_offset,
        )


# --- internals -------------------------------------------------------------------------------


@contextmanager
def _opened(path: str | os.PathLike[str]) -> Iterator[git.Repo]:
    repo = open_repo(path)
    try:
        yield repo
    finally:
        repo.close()


def _short(sha: str) -> str:
    return sha[:7]


def _resolve(repo: git.Repo, rev: str, path: str) -> git.Commit:
    import git

    try:
        commit = repo.commit(rev)
        commit.parents  # a full sha is taken on trust until the object is read  # noqa: B018
    except (ValueError, git.exc.BadName, git.exc.BadObject):
        raise GitError(f"unknown commit {_short(rev)} in {path}") from None
    return commit


def _sha_matcher(shas: Iterable[str]) -> _ShaMatcher:
    full: set[str] = set()
    prefixes: set[str] = set()
    for sha in shas:
        sha = sha.strip().lower()
        if len(sha) >= 40:
            full.add(sha)
        elif len(sha) >= 7:
            prefixes.add(sha)
    return _ShaMatcher(frozenset(full), tuple(sorted(prefixes)))


class _ShaMatcher:
    __slots__ = ("_full", "_prefixes")

    def __init__(self, full: frozenset[str], prefixes: tuple[str, ...]) -> None:
        self._full = full
        self._prefixes = prefixes

    def __bool__(self) -> bool:
        return bool(self._full or self._prefixes)

    def __call__(self, sha: str) -> bool:
        return sha in self._full or (bool(self._prefixes) and sha.startswith(self._prefixes))


def _shallow_commits(repo: git.Repo) -> frozenset[str]:
    """Commits whose parents a shallow clone does not have (empty when not shallow)."""
    try:
        text = Path(repo.common_dir, "shallow").read_text(encoding="ascii")
    except FileNotFoundError:
        return frozenset()
    return frozenset(text.split())


def _deepen(
    repo: git.Repo, start: git.Commit, boundary: str, depth: int, *, remote: str, path: str
) -> frozenset[str]:
    """Fetch ``depth`` more commits of history so that ``boundary``'s parents are local.

    Deepens by ``depth``, then unshallows if that did not reach past ``boundary``; returns the
    new set of shallow commits.
    """
    import git

    short = _short(boundary)
    walk = f"cannot walk back from {_short(start.hexsha)}"
    if remote not in {r.name for r in repo.remotes}:
        raise GitError(
            f"{walk}: {path} is a shallow clone ending at {short} and has no {remote!r} remote "
            f"to deepen it from; {_FIX_SHALLOW}"
        )
    for args in ((f"--deepen={depth}", remote), ("--unshallow", remote)):
        try:
            repo.git.fetch("--quiet", "--no-tags", *args)
        except git.exc.GitCommandError as exc:
            reason = _first_line(exc.stderr) or f"git fetch exited {exc.status}"
            raise GitError(
                f"{walk}: cannot deepen shallow clone {path} past {short} from {remote!r} "
                f"({reason}); {_FIX_SHALLOW}"
            ) from None
        repo.git.clear_cache()  # fresh cat-file processes see the fetched objects
        shallow = _shallow_commits(repo)
        if boundary not in shallow:
            return shallow
    raise GitError(
        f"{walk}: {path} is still shallow at {short} after fetching all history from "
        f"{remote!r}; {_FIX_SHALLOW}"
    )


def _first_line(text: object) -> str:
    for line in str(text or "").splitlines():
        line = line.strip().removeprefix("stderr:").strip().strip("'").strip()
        if line:
            return line
    return ""
