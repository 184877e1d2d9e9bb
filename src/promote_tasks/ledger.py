"""Every word the tool writes on GitHub and reads back (contexts, ``Promote-*`` trailers, labels,
the ``env@sha`` key, the lock, PR and issue texts), each writer beside its parser. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol


class Commit(Protocol):
    """What the bookkeeping rule reads of a commit (``model.Commit`` has it)."""

    @property
    def message(self) -> str: ...

    @property
    def parents(self) -> tuple[str, ...]: ...

    @property
    def files(self) -> tuple[str, ...] | None: ...


# -- the instance key ---------------------------------------------------------------------------

_KEY = re.compile(r"^([^@\s]+)@([0-9a-f]{40})$")


def key(env: str, sha: str) -> str:
    """An instance's key ``env@sha``: fix plans, checklists and rollbacks are found by it."""
    return f"{env}@{sha}"


def parse_key(text: str | None) -> tuple[str, str] | None:
    found = _KEY.match(text or "")
    return (found.group(1), found.group(2)) if found else None


# -- commit status contexts -------------------------------------------------------------------

GATE_CONTEXT = "promote/gate"


def verdict_context(env: str, validator: str | None = None) -> str:
    """The commit-status context the tool writes its verdicts under."""
    return f"promote/{env}" if validator is None else f"promote/{env}/{validator}"


def rollback_marker_context(env: str) -> str:
    """The status a ``reset`` rollback leaves on the commit it reset the branch to."""
    return verdict_context(env, "rollback")


def reset_marker(failure: str) -> str:
    """The marker's description: which failure (``env@sha``) the reset rolled back."""
    return f"rolled back {failure}"


def reset_of(description: str) -> str | None:
    found = re.fullmatch(r"rolled back (\S+@[0-9a-f]{40})", description or "")
    return found.group(1) if found else None


# -- trailer lines ------------------------------------------------------------------------------


def trailer(name: str, value: str) -> str:
    """One ``Promote-<name>: <value>`` line."""
    return f"Promote-{name}: {value}\n"


def trailers(text: str | None, name: str) -> tuple[str, ...]:
    """Every value of the ``Promote-<name>:`` lines of ``text``, in order."""
    return tuple(
        re.findall(rf"^Promote-{re.escape(name)}:[ \t]*(\S+)[ \t]*$", text or "", re.MULTILINE)
    )


def first(text: str | None, name: str) -> str | None:
    found = trailers(text, name)
    return found[0] if found else None


PLAN = "Plan"  # a promotion PR carries each plan
AUTHOR = "Author"  # and who wrote the change, so an author never approves it downstream
KEY = "Key"  # a checklist issue names its instance
ROLLBACK_OF = "Rollback-Of"  # a revert PR names the failure it rolls back
UNDO_OF = "Undo-Of"  # or the violation it takes back out (no failure)
CULPRIT = "Culprit"  # and the PR whose merge failed
BOOKKEEPING = "Bookkeeping"  # a plan bookkeeping commit names its own parent


def plans_listed(body: str | None) -> tuple[str, ...]:
    """Every ``Promote-Plan:`` line of a PR body, in order, once each."""
    return tuple(dict.fromkeys(trailers(body, PLAN)))


def plan_lines(plans: Iterable[str]) -> str:
    return "".join(trailer(PLAN, plan) for plan in plans)


def rollback_of(body: str | None) -> str | None:
    """The failure a revert rolls back, ``env@sha``."""
    found = first(body, ROLLBACK_OF)
    return found if parse_key(found) else None


def undo_line(failure: str) -> str:
    """The line of a revert PR that takes a violation (``env@sha``) back out of a branch."""
    return trailer(UNDO_OF, failure)


def undone(body: str | None) -> str | None:
    found = first(body, UNDO_OF)
    return found if parse_key(found) else None


def culprit(body: str | None) -> int | None:
    found = first(body, CULPRIT)
    digits = (found or "").lstrip("#")
    return int(digits) if digits.isdigit() else None


def culprit_line(number: int) -> str:
    return trailer(CULPRIT, f"#{number}")


# -- plan bookkeeping ---------------------------------------------------------------------------


def bookkeeping_trailer(parent: str) -> str:
    """The trailer of a plan bookkeeping commit: it names the commit's own parent, so a squash
    or a rebase that copies the message elsewhere names the wrong one."""
    return trailer(BOOKKEEPING, parent).rstrip("\n")


def claims_bookkeeping(message: str, parents: tuple[str, ...]) -> bool:
    """Whether a commit's message says it is plan bookkeeping for where it stands now: one
    parent, and a trailer naming that parent (``true``: written by an older version).

    A claim is a hint, never proof: :func:`is_bookkeeping` looks at what the commit changed.
    """
    if len(parents) != 1:
        return False
    return any(value in ("true", parents[0]) for value in trailers(message, BOOKKEEPING))


def is_bookkeeping(commit: Commit, plans_dir: str | None) -> bool:
    """Plan bookkeeping is what a commit does: it claims to be, and everything it changed from
    its parent lies under the plans directory. Unknown changes (``files`` unread) are not."""
    if plans_dir is None or commit.files is None:
        return False
    if not claims_bookkeeping(commit.message, commit.parents):
        return False
    prefix = plans_dir.strip("/") + "/"
    return all(path.startswith(prefix) for path in commit.files)


# -- the manual test's checklist issue ------------------------------------------------------------

CHECKLIST_LABEL = "promote:checklist"


def checklist_title(env: str, sha: str) -> str:
    return f"Manual test: {env} at {sha[:7]}"


def checklist_body(checklist: str, env: str, sha: str) -> str:
    """The checklist issue: the repository's checklist, how to decide, and its key."""
    return (
        f"{checklist.rstrip()}\n\n---\nManual test of `{env}` at {sha}.\n"
        "A designated reviewer who did not write the change records the result with\n"
        f'`promote approve --env {env}` or `promote reject --env {env} --reason "..."`.\n\n'
        + trailer(KEY, key(env, sha))
    )


def checklist_key(body: str | None) -> str | None:
    found = first(body, KEY)
    return found if parse_key(found) else None


def decision_line(approve: bool, sha: str, reason: str = "") -> str:
    """A reviewer's decision, bound to the exact sha: a comment on the checklist issue."""
    return f"Promote-{'Approve' if approve else 'Reject'}: {sha} {reason}".rstrip() + "\n"


_DECISION = re.compile(r"^Promote-(Approve|Reject):[ \t]*([0-9a-f]{40})[ \t]*(.*)$", re.MULTILINE)


def decisions(text: str | None) -> tuple[tuple[bool, str, str], ...]:
    """(approved, sha, reason) of every decision line of a comment."""
    return tuple(
        (verb == "Approve", sha, reason.strip())
        for verb, sha, reason in _DECISION.findall(text or "")
    )


# -- the promotion PR --------------------------------------------------------------------------


def promotion_title(head: str, base: str, plans: tuple[str, ...], sha: str) -> str:
    return f"Promote {', '.join(plans) or sha[:7]}: {head} → {base}"


def promotion_body(
    head: str,
    base: str,
    sha: str,
    environment: str,
    checks: Iterable[str],
    evidence: Iterable[str],
    plans: tuple[str, ...],
    authors: Iterable[str],
) -> str:
    """What R7's PR says: what was validated where, with the evidence, then one line per plan
    it carries and per author of the change."""
    checked = "\n".join(f"- {line}" for line in checks) or "- (no validators)"
    shown = "\n".join(f"- {line}" for line in evidence)
    return (
        f"Promotes `{head}` at {sha} to `{base}`.\n\n"
        f"Validated in {environment}:\n{checked}\n\nEvidence:\n{shown}\n\n"
        + plan_lines(plans)
        + "".join(trailer(AUTHOR, a) for a in authors)
    )


def authors(body: str | None) -> tuple[str, ...]:
    return trailers(body, AUTHOR)


# -- the revert --------------------------------------------------------------------------------


def revert_branch(env: str, failed_sha: str) -> str:
    return f"promote/revert-{env}-{failed_sha[:7]}"


def revert_marker(failure: str, undo: bool) -> str:
    """The line that names what a revert takes out: a failure, or a violation (no failure)."""
    return undo_line(failure) if undo else trailer(ROLLBACK_OF, failure)


def revert_message(env: str, target: str, failed_sha: str, undo: bool) -> str:
    why = "held commits that skipped the way in" if undo else "failed"
    return (
        f"Roll back {env} to {target[:7]}\n\n"
        f"Restores the tree of {target}\nafter {failed_sha} {why} in {env}.\n\n"
        + revert_marker(key(env, failed_sha), undo)
    )


def revert_title(env: str, target: str, failed_sha: str, culprit_number: int | None) -> str:
    what = f"#{culprit_number}" if culprit_number else failed_sha[:7]
    return f"Roll back {env} to {target[:7]} (revert {what})"


def revert_body(
    env: str, target: str, failed_sha: str, fix_plan: str, undo: bool, culprit_number: int | None
) -> str:
    what = "holds commits that skipped the way in" if undo else "failed"
    lines = [
        f"`{env}` {what} at {failed_sha}. This PR restores the tree of the last",
        f"known-good commit {target} on top of it; promote opened and merges it.",
        *([] if undo else [f"Fix plan: {fix_plan}"]),
        "",
        revert_marker(key(env, failed_sha), undo).rstrip("\n"),
    ]
    if culprit_number:
        lines.append(culprit_line(culprit_number).rstrip("\n"))
    return "\n".join(lines) + "\n"


# -- fix plans ---------------------------------------------------------------------------------

FIX_PREFIX = "fix-"


def fix_plan_id(failure: str) -> str:
    """A fix plan's id follows from its failure key, so a re-run finds the same plan."""
    env, _, sha = failure.partition("@")
    return f"{FIX_PREFIX}{env}-{sha[:7]}"


def fix_plan_title(env: str, failed_sha: str, plans: tuple[str, ...]) -> str:
    what = f"plan {', '.join(plans)}" if plans else "a change"
    return f"Fix {env}: {what} failed at {failed_sha[:7]}"


# -- the lock ------------------------------------------------------------------------------------

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
