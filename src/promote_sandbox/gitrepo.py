"""The sandbox's git: a bare repository driven through the git command line.

The sandbox must not import gitpython (``promote_tasks.git`` is its only importer), and the
plumbing commands it needs (``merge-tree --write-tree``, ``commit-tree``, ``mktree``,
``update-ref`` with an expected old value) are exactly what GitHub's own merge and ref endpoints
do, so a thin subprocess wrapper is both sufficient and honest.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

ZERO_SHA = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


class GitCommandError(RuntimeError):
    """A git command failed; carries git's stderr for the sandbox's own diagnostics."""


@dataclass(frozen=True)
class Ident:
    """Who and when, as git records it (seconds since the epoch, always UTC)."""

    name: str
    email: str
    when: int

    def env(self, role: str) -> dict[str, str]:
        return {
            f"GIT_{role}_NAME": self.name,
            f"GIT_{role}_EMAIL": self.email,
            f"GIT_{role}_DATE": f"@{self.when} +0000",
        }


@dataclass(frozen=True)
class CommitInfo:
    """A parsed commit object."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Ident
    committer: Ident
    message: str


@dataclass(frozen=True)
class TreeEntry:
    """One line of ``git ls-tree -l``."""

    mode: str
    type: str
    sha: str
    size: int | None
    path: str


@dataclass(frozen=True)
class FileChange:
    """One file of a diff, with what GitHub's ``files`` entries need."""

    status: str  # added, removed, modified, renamed, copied, changed
    path: str
    previous_path: str | None
    blob_sha: str | None
    additions: int
    deletions: int


_STATUS = {
    "A": "added",
    "D": "removed",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "changed",
}


_HEX_DIGITS = b"0123456789abcdef"


def _full(sha: str) -> bool:
    """A full object name: 40 lower-case hex digits (what it names never changes)."""
    return len(sha) == 40 and not sha.strip("0123456789abcdef")


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no inherited GIT_* (a hook's GIT_DIR would redirect us), C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"})
    if extra:
        env.update(extra)
    return env


def _parse_ident(text: str) -> Ident:
    # "Name <email> 1700000000 +0000"
    head, _, rest = text.rpartition(">")
    name, _, email = head.partition("<")
    when = int(rest.split()[0])
    return Ident(name.strip(), email.strip(), when)


class GitRepo:
    """A bare repository on disk; every method is one or two git invocations.

    What a full sha names never changes, so answers about full shas (a commit, its history,
    an expansion, an ancestry, a tree listing, a blob) are remembered: a git subprocess costs
    milliseconds, and the sandbox answers requests one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._commits: dict[str, CommitInfo] = {}
        self._histories: dict[tuple[str, str | None, int], list[str]] = {}
        self._types: dict[str, str] = {}
        self._expanded: dict[tuple[str, str], str] = {}
        self._ancestry: dict[tuple[str, str], bool] = {}
        self._trees: dict[tuple[str, bool, bool], list[TreeEntry]] = {}
        self._blobs: dict[str, bytes] = {}
        self._ranges: dict[tuple[str, str], list[str]] = {}
        self._cache_lock = threading.Lock()
        self._packed_refs = str(path / "packed-refs")
        self._refs_root = str(path / "refs")

    @classmethod
    def init_bare(cls, path: Path, default_branch: str) -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
            check=True,
            capture_output=True,
            env=git_env(),
        )
        repo = cls(path)
        repo.run("config", "uploadpack.allowAnySHA1InWant", "true")
        repo.run("config", "receive.denyNonFastForwards", "false")
        return repo

    def run(
        self,
        *args: str,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> bytes:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            env=git_env(env),
            check=False,
        )
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip()
            raise GitCommandError(f"git {' '.join(args)} failed ({proc.returncode}): {detail}")
        return proc.stdout

    def _try(self, *args: str, input: bytes | None = None) -> bytes | None:
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            input=input,
            capture_output=True,
            check=False,
            env=git_env(),
        )
        return proc.stdout if proc.returncode == 0 else None

    # -- objects -----------------------------------------------------------------------------

    def object_type(self, sha: str) -> str | None:
        if not sha or sha.startswith("-"):
            return None
        known = self._types.get(sha)
        if known is not None:
            return known
        out = self._try("cat-file", "-t", sha)
        kind = out.decode().strip() if out else None
        if kind is not None and len(sha) == 40:
            self._types[sha] = kind  # objects never change type; absent ones may appear later
        return kind

    def full_sha(self, sha: str, kind: str) -> str | None:
        """Expand a sha of the given object kind; None if absent or of another kind."""
        if not sha or sha.startswith("-"):
            return None
        known = self._expanded.get((sha, kind))
        if known is not None:
            return known
        out = self._try("rev-parse", "--verify", "--quiet", "--end-of-options", f"{sha}^{{{kind}}}")
        found = out.decode().strip() if out else None
        if found and _full(sha):  # absent objects may appear later; a short sha may turn ambiguous
            self._expanded[(sha, kind)] = found
        return found

    def commit(self, sha: str) -> CommitInfo:
        with self._cache_lock:
            cached = self._commits.get(sha)
        if cached is not None:
            return cached
        raw = self.run("cat-file", "commit", sha).decode("utf-8", errors="replace")
        header, _, message = raw.partition("\n\n")
        tree = ""
        parents: list[str] = []
        author = committer = Ident("", "", 0)
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key == "author":
                author = _parse_ident(value)
            elif key == "committer":
                committer = _parse_ident(value)
        info = CommitInfo(sha, tree, tuple(parents), author, committer, message)
        with self._cache_lock:
            self._commits[sha] = info
        return info

    def read_blob(self, sha: str) -> bytes:
        known = self._blobs.get(sha)
        if known is None:
            known = self.run("cat-file", "blob", sha)
            if _full(sha):
                self._blobs[sha] = known
        return known

    def hash_blob(self, data: bytes) -> str:
        return self.run("hash-object", "-w", "--stdin", input=data).decode().strip()

    def ls_tree(
        self, tree: str, *, recursive: bool = False, with_trees: bool = False
    ) -> list[TreeEntry]:
        key = (tree, recursive, with_trees)
        known = self._trees.get(key)
        if known is not None:
            return list(known)
        args = ["ls-tree", "-l", "-z"]
        if recursive:
            args.append("-r")
            if with_trees:
                args.append("-t")
        out = self.run(*args, tree).decode("utf-8", errors="replace")
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, sha, size = meta.split()
            entries.append(TreeEntry(mode, kind, sha, None if size == "-" else int(size), path))
        if _full(tree):
            self._trees[key] = list(entries)
        return entries

    def tree_entry(self, commit: str, path: str) -> TreeEntry | None:
        """The entry at ``path`` in a commit's tree; the root tree for an empty path."""
        if not path:
            return TreeEntry("040000", "tree", self.commit(commit).tree, None, "")
        out = self._try("ls-tree", "-l", "-z", commit, "--", path)
        if not out:
            return None
        record = out.decode("utf-8", errors="replace").split("\0")[0]
        meta, _, found = record.partition("\t")
        if found != path:
            return None
        mode, kind, sha, size = meta.split()
        return TreeEntry(mode, kind, sha, None if size == "-" else int(size), found)

    def mktree(self, entries: list[TreeEntry]) -> str:
        body = "".join(f"{e.mode} {e.type} {e.sha}\t{e.path}\0" for e in entries)
        return self.run("mktree", "-z", input=body.encode()).decode().strip()

    def build_tree(self, base_tree: str | None, edits: dict[str, TreeEntry | None]) -> str:
        """Apply path edits (None deletes, a tree entry replaces a whole subtree) to a tree."""
        flat: dict[str, TreeEntry] = {}
        if base_tree:
            for existing_entry in self.ls_tree(base_tree, recursive=True):
                flat[existing_entry.path] = existing_entry
        for path, entry in edits.items():
            path = path.strip("/")
            prefix = path + "/"
            for existing in [p for p in flat if p == path or p.startswith(prefix)]:
                del flat[existing]
            if entry is None:
                continue
            if entry.type == "tree":
                for sub in self.ls_tree(entry.sha, recursive=True):
                    flat[f"{path}/{sub.path}"] = sub
            else:
                flat[path] = TreeEntry(entry.mode, entry.type, entry.sha, None, path)
        return self._write_nested(flat)

    def _write_nested(self, flat: dict[str, TreeEntry]) -> str:
        root: dict[str, object] = {}
        for path, entry in flat.items():
            node = root
            *dirs, name = path.split("/")
            for part in dirs:
                child = node.setdefault(part, {})
                assert isinstance(child, dict)
                node = child
            node[name] = entry
        return self._write_node(root)

    def _write_node(self, node: dict[str, object]) -> str:
        entries = []
        for name, child in node.items():
            if isinstance(child, TreeEntry):
                entries.append(TreeEntry(child.mode, child.type, child.sha, None, name))
            else:
                assert isinstance(child, dict)
                entries.append(TreeEntry("040000", "tree", self._write_node(child), None, name))
        return self.mktree(entries)

    def commit_tree(
        self,
        tree: str,
        parents: list[str] | tuple[str, ...],
        message: str,
        author: Ident,
        committer: Ident,
    ) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        env = {**author.env("AUTHOR"), **committer.env("COMMITTER")}
        return self.run(*args, input=message.encode(), env=env).decode().strip()

    # -- history -----------------------------------------------------------------------------

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        key = (ancestor, descendant)
        known = self._ancestry.get(key)
        if known is not None:
            return known
        proc = subprocess.run(
            [
                "git",
                "--git-dir",
                str(self.path),
                "merge-base",
                "--is-ancestor",
                ancestor,
                descendant,
            ],
            capture_output=True,
            check=False,
            env=git_env(),
        )
        if proc.returncode not in (0, 1):
            return False  # not commits (yet): ask again next time
        if _full(ancestor) and _full(descendant):
            self._ancestry[key] = proc.returncode == 0
        return proc.returncode == 0

    def commits_between(self, base: str, head: str) -> list[str]:
        """``rev-list --reverse base..head``: the commits ``head`` has that ``base`` has not."""
        key = (base, head)
        known = self._ranges.get(key)
        if known is None:
            known = self.rev_list("--reverse", f"{base}..{head}")
            if _full(base) and _full(head):
                self._ranges[key] = known
        return list(known)

    def merge_base(self, a: str, b: str) -> str | None:
        out = self._try("merge-base", a, b)
        return out.decode().strip() if out else None

    def rev_list(self, *args: str) -> list[str]:
        return self.run("rev-list", *args).decode().split()

    def history(self, sha: str, path: str | None = None, limit: int = 1000) -> list[str]:
        """``rev-list`` from a commit sha, remembered: a commit's history never changes."""
        key = (sha, path, limit)
        with self._cache_lock:
            cached = self._histories.get(key)
        if cached is None:
            cached = self.rev_list(f"--max-count={limit}", sha, *(["--", path] if path else []))
            with self._cache_lock:
                self._histories[key] = cached
        return cached

    def merge_trees(self, ours: str, theirs: str) -> str | None:
        """The tree of a three-way merge of two commits, or None when it conflicts."""
        proc = subprocess.run(
            ["git", "--git-dir", str(self.path), "merge-tree", "--write-tree", ours, theirs],
            capture_output=True,
            check=False,
            env=git_env(),
        )
        if proc.returncode == 0:
            return proc.stdout.decode().split()[0]
        if proc.returncode == 1:
            return None
        raise GitCommandError(f"git merge-tree failed: {proc.stderr.decode(errors='replace')}")

    def pick_tree(self, commit: str, onto: str) -> str | None:
        """The tree of ``commit``'s change replayed on ``onto`` (a cherry-pick), or None."""
        info = self.commit(commit)
        if not info.parents:
            return None
        parent = info.parents[0]
        # merge-tree in this git has no --merge-base; give it one by making a throwaway
        # commit with onto's tree whose only parent is the picked commit's parent.
        stand_in = self.commit_tree(
            self.commit(onto).tree, [parent], "pick", info.author, info.committer
        )
        return self.merge_trees(stand_in, commit)

    def changed_files(self, old: str | None, new: str) -> list[FileChange]:
        base = old or EMPTY_TREE
        raw = self.run("diff-tree", "-r", "-z", "-M", "--raw", "--no-commit-id", base, new)
        num = self.run("diff-tree", "-r", "-z", "-M", "--numstat", "--no-commit-id", base, new)
        counts: dict[str, tuple[int, int]] = {}
        fields = num.decode("utf-8", errors="replace").split("\0")
        i = 0
        while i < len(fields):
            record = fields[i]
            if not record:
                i += 1
                continue
            added, deleted, path = record.split("\t", 2)
            if path == "":  # rename: old and new path follow
                path = fields[i + 2]
                i += 3
            else:
                i += 1
            # binary files count as "-"
            counts[path] = (
                int(added) if added.isdigit() else 0,
                int(deleted) if deleted.isdigit() else 0,
            )
        changes: list[FileChange] = []
        parts = raw.decode("utf-8", errors="replace").split("\0")
        i = 0
        while i < len(parts):
            meta = parts[i]
            if not meta.startswith(":"):
                i += 1
                continue
            _, _, _, new_sha, status = meta[1:].split(" ")
            code = status[0]
            if code in ("R", "C"):
                previous, path = parts[i + 1], parts[i + 2]
                i += 3
            else:
                previous, path = None, parts[i + 1]
                i += 2
            adds, dels = counts.get(path, (0, 0))
            changes.append(
                FileChange(
                    _STATUS.get(code, "modified"),
                    path,
                    previous,
                    None if code == "D" else new_sha,
                    adds,
                    dels,
                )
            )
        return changes

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        base = old or EMPTY_TREE
        out = self.run("diff-tree", "-r", "-z", "--name-only", "--no-commit-id", base, new)
        return [p for p in out.decode("utf-8", errors="replace").split("\0") if p]

    # -- refs --------------------------------------------------------------------------------

    def refs(self, prefix: str = "refs/") -> dict[str, str]:
        found = self._ref_files()
        if found is None:
            out = self.run("for-each-ref", "--format=%(refname) %(objectname)", prefix)
            found = dict(line.partition(" ")[::2] for line in out.decode().splitlines())
        return {name: sha for name, sha in sorted(found.items()) if name.startswith(prefix)}

    def ref(self, name: str) -> str | None:
        if name.startswith("refs/"):
            found = self._ref_files()
            if found is not None:
                return found.get(name)
        out = self._try("rev-parse", "--verify", "--quiet", name)
        return out.decode().strip() if out else None

    def _ref_files(self) -> dict[str, str] | None:
        """Read loose and packed refs straight from disk (every request reads refs; a subprocess
        each time is the sandbox's biggest cost). None when anything looks unusual: ask git.

        Plain ``os`` calls rather than ``Path``/``open``/``os.walk``: this runs on every request."""
        found: dict[str, str] = {}
        try:
            fd = os.open(self._packed_refs, os.O_RDONLY)
        except FileNotFoundError:
            pass
        else:
            try:
                text = _read_all(fd).decode("utf-8")
            finally:
                os.close(fd)
            for line in text.splitlines():
                if line and line[0] not in "#^":
                    sha, _, name = line.partition(" ")
                    found[name] = sha
        pending = [(self._refs_root, "refs/")]
        while pending:
            directory, prefix = pending.pop()
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                    continue
                if entry.name.endswith(".lock"):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY)
                except (FileNotFoundError, IsADirectoryError):
                    continue
                try:
                    content = os.read(fd, 4096).strip()
                finally:
                    os.close(fd)
                if len(content) != 40 or content.strip(_HEX_DIGITS):
                    return None
                found[prefix + entry.name] = content.decode("ascii")
        return found

    def set_ref(self, name: str, new: str, old: str | None = None) -> bool:
        """Compare-and-swap a ref; ``old=ZERO_SHA`` requires that it does not exist yet."""
        args = ["update-ref", name, new]
        if old is not None:
            args.append(old)
        return self._try(*args) is not None

    def delete_ref(self, name: str) -> bool:
        return self._try("update-ref", "-d", name) is not None
