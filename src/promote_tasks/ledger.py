"""The words the tool writes on GitHub and reads back, each writer beside its parser. Pure."""

from __future__ import annotations

import re

from promote_tasks.model import Commit

BOOKKEEPING_KEY = "Promote-Bookkeeping"
_BOOKKEEPING_LINE = re.compile(rf"^{BOOKKEEPING_KEY}:[ \t]*(\S+)[ \t]*$", re.MULTILINE)
PLAN_KEY = "Promote-Plan"
PLAN_LINE = re.compile(rf"^{PLAN_KEY}:\s*(\S+)\s*$", re.MULTILINE)
UNDO_KEY = "Promote-Undo-Of"
UNDO_LINE = re.compile(rf"^{UNDO_KEY}:\s*(\S+@[0-9a-f]{{40}})\s*$", re.MULTILINE)


def bookkeeping_trailer(parent: str) -> str:
    """The trailer of a plan bookkeeping commit: it names the commit's own parent, so a squash
    or a rebase that copies the message elsewhere names the wrong one."""
    return f"{BOOKKEEPING_KEY}: {parent}"


def claims_bookkeeping(message: str, parents: tuple[str, ...]) -> bool:
    """Whether a commit's message says it is plan bookkeeping for where it stands now: one
    parent, and a trailer naming that parent (``true``: written by an older version).

    A claim is a hint, never proof: :func:`is_bookkeeping` looks at what the commit changed.
    """
    if len(parents) != 1:
        return False
    return any(value in ("true", parents[0]) for value in _BOOKKEEPING_LINE.findall(message))


def is_bookkeeping(commit: Commit, plans_dir: str | None) -> bool:
    """Plan bookkeeping is what a commit does: it claims to be, and everything it changed from
    its parent lies under the plans directory. Unknown changes (``files`` unread) are not."""
    if plans_dir is None or commit.files is None:
        return False
    if not claims_bookkeeping(commit.message, commit.parents):
        return False
    prefix = plans_dir.strip("/") + "/"
    return all(path.startswith(prefix) for path in commit.files)


def plans_listed(body: str) -> tuple[str, ...]:
    """Every ``Promote-Plan:`` line of a PR body, in order, once each."""
    return tuple(dict.fromkeys(PLAN_LINE.findall(body or "")))


def plan_lines(plans: tuple[str, ...]) -> str:
    return "".join(f"{PLAN_KEY}: {plan}\n" for plan in plans)


def undo_line(key: str) -> str:
    """The line of a revert PR that takes a violation (``env@sha``) back out of a branch."""
    return f"{UNDO_KEY}: {key}\n"


def undone(body: str) -> str | None:
    found = UNDO_LINE.search(body or "")
    return found.group(1) if found else None


LOCK_REF = "promote/lock"  # refs/promote/lock: creating a ref that exists fails, atomically
_LOCK_LINE = re.compile(r"^Promote-Lock-(Owner|Since|Until):[ \t]*(.+?)[ \t]*$", re.MULTILINE)


def lock_message(owner: str, since: str, until: str) -> str:
    """The message of the commit the lock ref points to: who holds it, since and until when."""
    return (
        f"promote lock\n\nPromote-Lock-Owner: {owner}\nPromote-Lock-Since: {since}\n"
        f"Promote-Lock-Until: {until}\n"
    )


def lock_holder(message: str) -> tuple[str, str, str]:
    """(owner, since, until) of a lock commit's message; empty strings where it says nothing
    (a lock whose commit says nothing counts as expired)."""
    found = dict(_LOCK_LINE.findall(message or ""))
    return found.get("Owner", ""), found.get("Since", ""), found.get("Until", "")
