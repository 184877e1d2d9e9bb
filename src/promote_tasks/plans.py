"""Plan files: a small front-matter, and which files move when a plan completes. Pure."""

from __future__ import annotations

import dataclasses
import re

from promote_tasks.errors import ConfigError
from promote_tasks.model import Plan

REQUIRED = ("id", "title", "priority")
KNOWN = (*REQUIRED, "parent", "fix_key", "failed_plans", "completed_with", "returned")
KEEP = ".gitkeep"  # keeps a status folder in the tree when its last plan moves out
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
    failed = fields.get("failed_plans", "").strip().strip("[]")
    failed_plans = tuple(p.strip().strip("\"'") for p in failed.split(",") if p.strip())
    for failed_id in failed_plans:
        if not ID.match(failed_id):
            raise ConfigError(f"{path}: failed_plans names {failed_id!r}, not a plan id")
    plan = Plan(
        id=fields["id"],
        title=fields["title"],
        status=status,
        priority=priority,
        parent=fields.get("parent") or None,
        fix_key=fields.get("fix_key") or None,
        failed_plans=failed_plans,
        completed_with=fields.get("completed_with") or None,
        returned=fields.get("returned") or None,
    )
    return PlanFile(path, plan, "\n".join(lines[end + 1 :]).lstrip("\n"))


def render_plan(plan: Plan, body: str) -> str:
    head = [f"id: {plan.id}", f"title: {plan.title}", f"priority: {plan.priority}"]
    if plan.parent:
        head.append(f"parent: {plan.parent}")
    if plan.fix_key:
        head.append(f"fix_key: {plan.fix_key}")
    if plan.failed_plans:
        head.append(f"failed_plans: [{', '.join(plan.failed_plans)}]")
    if plan.completed_with:
        head.append(f"completed_with: {plan.completed_with}")
    if plan.returned:
        head.append(f'returned: "{plan.returned}"')
    return "---\n" + "\n".join(head) + "\n---\n\n" + body.rstrip("\n") + "\n"


def with_front_matter(text: str, path: str, **changes: str) -> str:
    """The plan file ``text`` with front-matter keys set (the body and other keys kept)."""
    found = parse_plan(text, path)
    plan: Plan = dataclasses.replace(found.plan, **changes)  # type: ignore[arg-type]
    return render_plan(plan, found.body)


def completion(plans: tuple[Plan, ...], plan_ids: tuple[str, ...] | str) -> tuple[str, ...]:
    """Ids to move to ``done``: the plans (those the store knows), then each parent whose
    children are all done."""
    wanted = (plan_ids,) if isinstance(plan_ids, str) else plan_ids
    by_id = {p.id: p for p in plans}
    done = {p.id for p in plans if p.done}
    moved: list[str] = []
    for plan_id in wanted:
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
