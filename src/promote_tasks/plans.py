"""Plan files: a small front-matter, and which files move when a plan completes. Pure."""

from __future__ import annotations

import dataclasses
import re

from promote_tasks.errors import ConfigError
from promote_tasks.model import Plan

REQUIRED = ("id", "title", "priority")
KNOWN = (*REQUIRED, "parent", "fix_key")
STATUS_DIRS = ("inbox", "doing", "done")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True)
class PlanFile:
    path: str  # relative to the repository root, e.g. plans/doing/add-greeting.md
    plan: Plan
    body: str


def parse_plan(text: str, path: str) -> PlanFile:
    """Read ``---``-fenced ``key: value`` front-matter; every problem names the file and key."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ConfigError(f"{path}: plan files start with a '---' front-matter block")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        raise ConfigError(f"{path}: the front-matter block is not closed with '---'") from None
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{path}:{number}: expected 'key: value', got {line.strip()!r}")
        if key not in KNOWN:
            raise ConfigError(f"{path}:{number}: unknown key {key!r} (known: {', '.join(KNOWN)})")
        if key in fields:
            raise ConfigError(f"{path}:{number}: key {key!r} appears twice")
        fields[key] = value.strip().strip("\"'")
    for key in REQUIRED:
        if not fields.get(key):
            raise ConfigError(f"{path}: missing required key {key!r}")
    if not ID.match(fields["id"]):
        raise ConfigError(f"{path}: id {fields['id']!r} is not a valid plan id")
    try:
        priority = int(fields["priority"])
    except ValueError:
        raise ConfigError(
            f"{path}: priority must be a whole number, got {fields['priority']!r}"
        ) from None
    parts = path.replace("\\", "/").split("/")
    status = parts[-2] if len(parts) >= 2 and parts[-2] in STATUS_DIRS else "inbox"
    plan = Plan(
        id=fields["id"],
        title=fields["title"],
        status=status,
        priority=priority,
        parent=fields.get("parent") or None,
        fix_key=fields.get("fix_key") or None,
    )
    return PlanFile(path, plan, "\n".join(lines[end + 1 :]).lstrip("\n"))


def render_plan(plan: Plan, body: str) -> str:
    head = [f"id: {plan.id}", f"title: {plan.title}", f"priority: {plan.priority}"]
    if plan.parent:
        head.append(f"parent: {plan.parent}")
    if plan.fix_key:
        head.append(f"fix_key: {plan.fix_key}")
    return "---\n" + "\n".join(head) + "\n---\n\n" + body.rstrip("\n") + "\n"


def completion(plans: tuple[Plan, ...], plan_id: str) -> tuple[str, ...]:
    """Ids to move to ``done``: the plan, then each parent whose children are all done."""
    by_id = {p.id: p for p in plans}
    if plan_id not in by_id:
        raise ConfigError(f"plan {plan_id!r} is not in the plan store")
    done = {p.id for p in plans if p.done}
    moved: list[str] = []
    current: str | None = plan_id
    seen: set[str] = set()
    while current is not None and current in by_id and current not in seen:
        seen.add(current)
        if current not in done:
            moved.append(current)
            done.add(current)
        parent = by_id[current].parent
        if parent is None or parent not in by_id:
            break
        siblings = [p.id for p in plans if p.parent == parent]
        if not all(s in done for s in siblings):
            break
        current = parent
    return tuple(moved)
