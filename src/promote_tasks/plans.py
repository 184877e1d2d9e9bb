"""Plan files: YAML front-matter between ``---`` fences, and which files move when a plan
completes. Pure: text in, text out (PyYAML reads and writes the front-matter, imported only
when a plan file is read or written)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
from typing import TYPE_CHECKING
from typing import Any

from promote_tasks.errors import ConfigError
from promote_tasks.errors import PromoteError
from promote_tasks.model import Plan

if TYPE_CHECKING:
    import yaml

REQUIRED = ("id", "title", "priority")
KNOWN = (*REQUIRED, "parent", "fix_key", "failed_plans", "completed_with", "returned")
TEXT = ("id", "title", "parent", "fix_key", "completed_with", "returned")
KEEP = ".gitkeep"  # keeps a status folder in the tree when its last plan moves out
STATUS_DIRS = ("inbox", "doing", "done")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FIRST_LINE = 2  # the front-matter's first line in the file, after the opening ``---``
STR_TAG = "tag:yaml.org,2002:str"
BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines breaks a line


@dataclasses.dataclass(frozen=True)
class PlanFile:
    path: str  # relative to the repository root, e.g. plans/doing/add-greeting.md
    plan: Plan
    body: str


def parse_plan(text: str, path: str) -> PlanFile:
    """Read the ``---``-fenced YAML front-matter; every problem names the file (and the line)."""
    lines = text.split(
        "\n"
    )  # only "\n": a value may hold other characters str.splitlines splits on
    # Fences start a line, as in Jekyll and on GitHub; an indented "---" belongs to a value.
    if not lines or lines[0].rstrip() != "---":
        raise ConfigError(f"{path}: plan files start with a '---' front-matter block")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.rstrip() == "---")
    except StopIteration:
        raise ConfigError(f"{path}: the front-matter block is not closed with '---'") from None
    fields, line = _front_matter("\n".join(lines[1:end]), path)
    for key in REQUIRED:
        if key not in fields:
            raise ConfigError(f"{path}: missing required key {key!r}")
    if not ID.match(fields["id"]):
        raise ConfigError(
            f"{path}:{line['id']}: id {fields['id']!r} is not a valid plan id "
            "(letters, digits, '.', '_' and '-', starting with a letter or digit)"
        )
    failed_plans = tuple(fields.get("failed_plans", ()))
    for failed_id in failed_plans:
        if not ID.match(failed_id):
            raise ConfigError(
                f"{path}:{line['failed_plans']}: failed_plans names {failed_id!r}, not a plan id"
            )
    parts = path.replace("\\", "/").split("/")
    status = parts[-2] if len(parts) >= 2 and parts[-2] in STATUS_DIRS else "inbox"
    plan = Plan(
        id=fields["id"],
        title=fields["title"],
        status=status,
        priority=fields["priority"],
        parent=fields.get("parent"),
        fix_key=fields.get("fix_key"),
        failed_plans=failed_plans,
        completed_with=fields.get("completed_with"),
        returned=fields.get("returned"),
    )
    return PlanFile(path, plan, "\n".join(lines[end + 1 :]).lstrip("\n").removesuffix("\n"))


def _front_matter(block: str, path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The known keys of a YAML front-matter block, typed (``null``, ``""`` and ``[]`` leave a
    key out), and the file line of each key."""
    import yaml

    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    try:
        loader = yaml.SafeLoader(block)  # refuses characters YAML does not allow, at once
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(error, path, len(block))) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return fields, lines
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError(
                f"{path}:{node.start_mark.line + FIRST_LINE}: the front-matter must be "
                "'key: value' lines"
            )
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + FIRST_LINE
            key = key_node.value if key_node.tag == STR_TAG else None
            if key not in KNOWN:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                raise ConfigError(
                    f"{path}:{line}: unknown key {shown!r} (known: {', '.join(KNOWN)})"
                )
            if key in lines:
                raise ConfigError(f"{path}:{line}: key {key!r} appears twice")
            lines[key] = line
            value = loader.construct_object(value_node, deep=True)
            if value is None or value == "" or value == []:
                continue  # `parent:` or `failed_plans: []`: none
            fields[key] = _typed(key, value, value_node, f"{path}:{line}")
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(error, path, len(block))) from None
    finally:
        loader.dispose()
    return fields, lines


def _typed(key: str, value: Any, node: yaml.Node, where: str) -> Any:
    import yaml

    scalar = isinstance(node, yaml.ScalarNode)
    shown = repr(value) if isinstance(value, str) else node.value if scalar else _kind(value)
    if key in TEXT:
        if isinstance(value, str):
            return value
        if scalar:
            raise ConfigError(
                f"{where}: {key} must be text, got {shown}, which YAML reads as "
                f"{_kind(value)} (quote it: {key}: {_quoted(node.value)})"
            )
        raise ConfigError(f"{where}: {key} must be text, got {shown}")
    if key == "priority":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: priority must be a whole number, got {shown}")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value  # failed_plans
    raise ConfigError(f"{where}: failed_plans must be a list of plan ids like [a, b], got {shown}")


def _kind(value: Any) -> str:
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "true/false"),
        ((int, float), "a number"),
        (datetime.date, "a date"),
        (list, "a list"),
        (dict, "a mapping"),
    )
    return next((kind for t, kind in kinds if isinstance(value, t)), type(value).__name__)


def _yaml_problem(error: yaml.YAMLError, path: str, end: int) -> str:
    """PyYAML's complaint in one line, at the file's line (the front-matter starts on line 2):
    where the problem is, or, for something left open at the end, where it was opened."""
    import yaml

    if isinstance(error, yaml.reader.ReaderError):
        return (
            f"{path}: the front-matter holds character #x{error.character:04x}, which YAML "
            "does not allow in a file"
        )
    mark = getattr(error, "problem_mark", None)
    opened = getattr(error, "context_mark", None)
    if mark is None or (opened is not None and mark.index >= end):
        mark = opened
    where = f"{path}:{mark.line + FIRST_LINE}" if mark is not None else path
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    said = " ".join(f"{context + ', ' if context else ''}{problem}".split())
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = "; a value with ': ' in it needs quotes, e.g. title: 'Fix test: a failure'"
    return f"{where}: the front-matter is not valid YAML ({said}{hint})"


def _quoted(text: str) -> str:
    """``text`` as a YAML scalar: plain where YAML reads it back as the same text, else quoted."""
    import yaml

    return str(yaml.dump(text, Dumper=_dumper(), **_STYLE)).removesuffix("\n...\n").rstrip("\n")


_STYLE: dict[str, Any] = {"sort_keys": False, "allow_unicode": True, "width": 1 << 30}


@functools.cache
def _dumper() -> type[yaml.SafeDumper]:
    """A safe dumper writing block mappings, one key a line, and lists in flow style ``[a, b]``."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def flow_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)

    def one_line(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        # Text with a line break is written double-quoted with escapes, on one line: PyYAML's
        # own choice (single quotes over several lines) turns a trailing NEL into a space.
        style = '"' if any(c in data for c in BREAKS) else None
        return dumper.represent_scalar(STR_TAG, data, style=style)

    Dumper.add_representer(list, flow_list)
    Dumper.add_representer(str, one_line)
    return Dumper


def render_plan(plan: Plan, body: str) -> str:
    """A plan file: the front-matter (keys in ``KNOWN`` order, valid YAML), then the body."""
    import yaml

    fields: dict[str, Any] = {"id": plan.id, "title": plan.title, "priority": plan.priority}
    optional = {
        "parent": plan.parent,
        "fix_key": plan.fix_key,
        "failed_plans": list(plan.failed_plans),
        "completed_with": plan.completed_with,
        "returned": plan.returned,
    }
    fields.update({key: value for key, value in optional.items() if value})
    head = str(yaml.dump(fields, Dumper=_dumper(), default_flow_style=False, **_STYLE))
    return "---\n" + head + "---\n\n" + body.rstrip("\n") + "\n"


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


def plan_or_problem(text: str | PromoteError, path: str, plan_id: str) -> Plan:
    """The plan a file holds, or, when it does not parse (or could not be read as text), a
    plan known by its path alone with the problem: one broken file must not stop the
    pipeline, only what needs that plan."""
    if not isinstance(text, PromoteError):
        try:
            return parse_plan(text, path).plan
        except ConfigError as e:
            text = e
    parts = path.replace("\\", "/").split("/")
    status = parts[-2] if len(parts) >= 2 and parts[-2] in STATUS_DIRS else "inbox"
    return Plan(plan_id, status=status, problem=str(text))
