"""Console scripts behind ``.pre-commit-hooks.yaml``: one module per hook, ``main(argv=None)``.
Cheap to import (no gitpython, pluggy or ghapi): a hook costs little more than Python's start."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from promote_tasks.config import Settings
from promote_tasks.config import load_settings
from promote_tasks.errors import PromoteError

ZERO_SHA = "0" * 40
HEADS = "refs/heads/"


@dataclasses.dataclass(frozen=True)
class Ref:
    """One ref in a push: ``local_sha`` is None when the push deletes ``remote_ref``."""

    remote_ref: str
    local_sha: str | None = None
    local_ref: str = ""

    @property
    def branch(self) -> str | None:
        """The remote branch written (``"test"``), or None for a tag or another kind of ref."""
        if self.remote_ref.startswith(HEADS):
            return self.remote_ref[len(HEADS) :]
        return None


@dataclasses.dataclass(frozen=True)
class Push:
    remote_name: str
    remote_url: str
    refs: tuple[Ref, ...]


def read_push(positional: list[str], environ: Mapping[str, str], stdin: TextIO | None) -> Push:
    """What is being pushed, from pre-commit's variables or from git's own pre-push protocol."""
    # pre-commit gives one ref per push in PRE_COMMIT_* (the first ref with something new);
    # git gives the remote's name and URL as arguments and one "<local ref> <local sha>
    # <remote ref> <remote sha>" line per ref on stdin, deletions included.
    name = environ.get("PRE_COMMIT_REMOTE_NAME") or (positional[0] if positional else "")
    url = environ.get("PRE_COMMIT_REMOTE_URL") or (positional[1] if len(positional) > 1 else "")
    remote_ref = environ.get("PRE_COMMIT_REMOTE_BRANCH")
    if remote_ref:  # run by pre-commit: one ref, never a deletion (pre-commit skips those)
        ref = Ref(
            _qualified(remote_ref),
            environ.get("PRE_COMMIT_TO_REF") or "HEAD",
            environ.get("PRE_COMMIT_LOCAL_BRANCH", ""),
        )
        return Push(name, url, (ref,))
    refs = []
    if stdin is not None and not stdin.isatty():
        for line in stdin.read().splitlines():
            parts = line.split()
            if len(parts) != 4:
                continue
            local_ref, local_sha, remote, _ = parts
            refs.append(Ref(remote, None if local_sha == ZERO_SHA else local_sha, local_ref))
    return Push(name, url, tuple(refs))


def _qualified(ref: str) -> str:
    return ref if ref.startswith("refs/") else HEADS + ref


def is_the_repository(push: Push, settings: Settings, environ: Mapping[str, str]) -> bool:
    """Does the push go to the repository the pipeline runs on?

    Yes for the ``origin`` remote (where the tasks find the repository too), when git does not
    say which remote it is, and for any remote whose URL is origin's or names the same
    repository as origin's or the configured one (``GITHUB_REPOSITORY`` or ``repository``):
    another name for the same repository is no way around a hook. A deploy remote
    (``heroku``) or a fork is not the pipeline's.
    """
    from promote_tasks.git import remote_url
    from promote_tasks.git import repository_from_url

    if push.remote_name in ("", "origin") or not push.remote_url:
        return True
    origin = remote_url(Path.cwd())
    if origin is not None and push.remote_url == origin:
        return True
    named = repository_from_url(push.remote_url)
    if named is None:
        return False
    ours = {
        repo.lower()
        for repo in (
            environ.get("GITHUB_REPOSITORY"),
            settings.repository,
            repository_from_url(origin) if origin else None,
        )
        if repo
    }
    return named.lower() in ours


def parser(hook: str, doc: str, *, push: bool = False) -> argparse.ArgumentParser:
    """A hook's arguments; a push hook also takes git's pre-push ``remote`` and ``url``."""
    made = argparse.ArgumentParser(prog=hook, description=doc.splitlines()[0])
    if push:
        made.add_argument(
            "remote", nargs="*", help="remote name and URL (git's pre-push arguments)"
        )
    return made


@dataclasses.dataclass(frozen=True)
class PushHook:
    """A pre-push hook's inputs: its arguments, the settings, and the push."""

    args: argparse.Namespace
    settings: Settings
    push: Push
    environ: Mapping[str, str]

    @property
    def ours(self) -> bool:
        """Does the push go to the pipeline's repository (see ``is_the_repository``)?"""
        return is_the_repository(self.push, self.settings, self.environ)


def start_push_hook(
    made: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None,
    stdin: TextIO | None,
) -> PushHook:
    """Parse the arguments, read the settings (a ``PromoteError`` if they are broken), read
    the push from pre-commit's variables or git's protocol."""
    args = made.parse_args(argv)
    environ = os.environ if environ is None else environ
    settings = repository_settings()
    push = read_push(args.remote, environ, sys.stdin if stdin is None else stdin)
    return PushHook(args, settings, push, environ)


def repository_settings() -> Settings:
    """The tasks' settings, for the repository the hook runs in (git runs hooks at its top)."""
    return load_settings(Path.cwd())


def say(hook: str, first: str, *more: str) -> None:
    """A hook's message: what is wrong on the first line, what to do on the next ones."""
    print(f"{hook}: {first}", file=sys.stderr)
    for line in more:
        print(f"  {line}", file=sys.stderr)


def fail(hook: str, error: PromoteError) -> int:
    say(hook, f"error: {error}")
    return 1
