"""Plan files: the front-matter is YAML, read and written with PyYAML.

What the tool writes, PyYAML reads back as the same values; what PyYAML refuses, the tool
refuses too, in one line naming the file and the line.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from promote_tasks.errors import ConfigError
from promote_tasks.model import Plan
from promote_tasks.plans import ID
from promote_tasks.plans import KNOWN
from promote_tasks.plans import parse_plan
from promote_tasks.plans import render_plan
from promote_tasks.plans import with_front_matter

PATH = "plans/doing/x.md"
SHA = "0123456789abcdef0123456789abcdef01234567"


def front_matter(text: str) -> Any:
    """What PyYAML itself reads between the fences of a plan file."""
    lines = text.split("\n")
    assert lines[0] == "---"
    return yaml.safe_load("\n".join(lines[1 : lines.index("---", 1)]))


def every_field(title: str, returned: str = "rolled back: test went back to 1234567") -> Plan:
    return Plan(
        "fix-test-0123456", title, "doing", 0, "epic", f"test@{SHA}",
        ("add-greeting", "add-footer"), "fix-dev-7654321", returned,
    )  # fmt: skip


TITLES = [
    "Fix test: plan add-greeting failed at abc1234",
    "Add a greeting",
    "- a leading dash",
    "#12: the hash comes first",
    "Fix #12 properly",
    "it's \"quoted\" 'twice'",
    "café ☃ — ünïcödé 日本語",
    "yes",
    "2024",
    "null",
    "[not a list]",
    "{not: a mapping}",
    "&anchor *alias !tag %directive @at `tick`",
    "trailing colon:",
    " leading and trailing spaces ",
    "a\ttab",
    "a line\nbreak and\n---\na fence",
    "escape \x1b[31mred",
    "...",
]


@pytest.mark.parametrize("title", TITLES)
def test_what_the_tool_writes_pyyaml_reads_back_as_the_same_values(title: str) -> None:
    plan = every_field(title, returned=f"returned: {title}")
    text = render_plan(plan, "Why and what.\n")
    assert front_matter(text) == {
        "id": plan.id, "title": title, "priority": 0, "parent": "epic",
        "fix_key": f"test@{SHA}", "failed_plans": ["add-greeting", "add-footer"],
        "completed_with": "fix-dev-7654321", "returned": f"returned: {title}",
    }  # fmt: skip
    assert list(front_matter(text)) == list(KNOWN), "keys in the documented order"
    found = parse_plan(text, PATH)
    assert found.plan == plan
    assert found.body == "Why and what."


@given(
    plan_id=st.from_regex(ID, fullmatch=True),
    title=st.text(min_size=1).filter(str.strip),
    priority=st.integers(-1000, 1000),
    failed=st.lists(st.from_regex(ID, fullmatch=True), max_size=3),
    returned=st.text(),
)
def test_any_plan_round_trips_through_pyyaml_and_parse_plan(
    plan_id: str, title: str, priority: int, failed: list[str], returned: str
) -> None:
    plan = Plan(plan_id, title, "doing", priority, failed_plans=tuple(failed),
                returned=returned or None)  # fmt: skip
    text = render_plan(plan, "Body.")
    data = front_matter(text)
    assert (data["id"], data["title"], data["priority"]) == (plan_id, title, priority)
    assert data.get("failed_plans", []) == failed
    assert parse_plan(text, PATH).plan == plan


def test_the_front_matter_reads_well() -> None:
    text = render_plan(every_field("Fix test: plan add-greeting failed at abc1234"), "Body.")
    assert text == (
        "---\n"
        "id: fix-test-0123456\n"
        "title: 'Fix test: plan add-greeting failed at abc1234'\n"
        "priority: 0\n"
        "parent: epic\n"
        f"fix_key: test@{SHA}\n"
        "failed_plans: [add-greeting, add-footer]\n"
        "completed_with: fix-dev-7654321\n"
        "returned: 'rolled back: test went back to 1234567'\n"
        "---\n\nBody.\n"
    )
    plain = render_plan(Plan("add-greeting", "Add a greeting", "doing", 2), "Say hello.\n")
    assert plain == "---\nid: add-greeting\ntitle: Add a greeting\npriority: 2\n---\n\nSay hello.\n"
    long = "word " * 40 + "end"
    assert f"\ntitle: {long}\n" in render_plan(Plan("x", long), ""), "one line, never folded"


def test_with_front_matter_sets_keys_and_keeps_the_body() -> None:
    text = "---\nid: x\ntitle: 'Fix test: a failure'\npriority: 1\n---\n\n# Why\n\n---\nmore\n"
    changed = with_front_matter(text, PATH, completed_with="fix-x", returned="back: again")
    assert front_matter(changed) == {
        "id": "x", "title": "Fix test: a failure", "priority": 1,
        "completed_with": "fix-x", "returned": "back: again",
    }  # fmt: skip
    assert changed.endswith("---\n\n# Why\n\n---\nmore\n")
    assert parse_plan(changed, PATH).body == "# Why\n\n---\nmore"


ACCEPTED = {
    "quoted values": ("id: 'x'\ntitle: \"A: b\"\npriority: 1", {"title": "A: b"}),
    "comments": ("# a note\nid: x  # the id\ntitle: A\npriority: 1 # high", {"title": "A"}),
    "a colon without a space": ("id: x\ntitle: a:b\npriority: 1", {"title": "a:b"}),
    "a block list": ("id: x\ntitle: A\npriority: 1\nfailed_plans:\n  - a\n  - b",
                     {"failed_plans": ("a", "b")}),
    "empty optional keys": ("id: x\ntitle: A\npriority: 1\nparent:\nfailed_plans: []",
                            {"parent": None, "failed_plans": ()}),
    "a negative priority": ("id: x\ntitle: A\npriority: -1", {"priority": -1}),
    "a quoted key": ("'id': x\ntitle: A\npriority: 1", {"id": "x"}),
    "a folded title": ("id: x\ntitle: >-\n  two\n  lines\npriority: 1", {"title": "two lines"}),
}  # fmt: skip


@pytest.mark.parametrize(("block", "expected"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_yaml_accepts_is_accepted(block: str, expected: dict[str, Any]) -> None:
    yaml.safe_load(block)  # PyYAML agrees
    plan = parse_plan(f"---\n{block}\n---\nBody.\n", PATH).plan
    for key, value in expected.items():
        assert getattr(plan, key) == value


# (front-matter block, message after "plans/doing/x.md"); the block starts on line 2.
REFUSED = {
    "unquoted ': ' in a value": (
        "id: x\ntitle: Fix test: plan add-greeting failed\npriority: 1",
        ":3: the front-matter is not valid YAML (mapping values are not allowed here; a value "
        "with ': ' in it needs quotes, e.g. title: 'Fix test: a failure')",
    ),
    "a tab for indentation": (
        "id: x\n\ttitle: A\npriority: 1",
        ":3: the front-matter is not valid YAML (while scanning for the next token, found "
        "character '\\t' that cannot start any token)",
    ),
    "an unclosed flow list": (
        "id: x\ntitle: A\npriority: 1\nfailed_plans: [a, b",
        ":5: the front-matter is not valid YAML (while parsing a flow sequence, expected ',' or "
        "']', but got '<stream end>')",
    ),
    "an unclosed quote": (
        "id: x\ntitle: 'A\npriority: 1",
        ":3: the front-matter is not valid YAML (while scanning a quoted scalar, found "
        "unexpected end of stream)",
    ),
    "an undefined alias": (
        "id: x\ntitle: *name\npriority: 1",
        ":3: the front-matter is not valid YAML (found undefined alias 'name')",
    ),
    "a python tag": (
        "id: x\ntitle: !!python/object:os.system A\npriority: 1",
        ":3: the front-matter is not valid YAML (could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system')",
    ),
    "a control character": (
        "id: x\ntitle: A\x07\npriority: 1",
        ": the front-matter holds character #x0007, which YAML does not allow in a file",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("block", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_what_yaml_refuses_is_refused_in_one_line_naming_the_file_and_line(
    block: str, message: str
) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(block)  # PyYAML refuses it too
    with pytest.raises(ConfigError) as caught:
        parse_plan(f"---\n{block}\n---\nBody.\n", PATH)
    assert str(caught.value) == PATH + message
    assert "\n" not in str(caught.value)


# Valid YAML, but not a plan: the type a key needs, the keys we know, each key once.
WRONG = {
    "a title YAML reads as a number": (
        "id: x\ntitle: 2024\npriority: 1",
        ":3: title must be text, got 2024, which YAML reads as a number (quote it: title: '2024')",
    ),
    "a title YAML reads as true/false": (
        "id: x\ntitle: yes\npriority: 1",
        ":3: title must be text, got yes, which YAML reads as true/false (quote it: title: 'yes')",
    ),
    "a list for a title": ("id: x\ntitle: [a]\npriority: 1", ":3: title must be text, got a list"),
    "a returned date": (
        "id: x\ntitle: A\npriority: 1\nreturned: 2024-01-01",
        ":5: returned must be text, got 2024-01-01, which YAML reads as a date "
        "(quote it: returned: '2024-01-01')",
    ),
    "priority as text": ("id: x\ntitle: A\npriority: high",
                         ":4: priority must be a whole number, got 'high'"),
    "priority quoted": ("id: x\ntitle: A\npriority: '1'",
                        ":4: priority must be a whole number, got '1'"),
    "priority a fraction": ("id: x\ntitle: A\npriority: 1.5",
                            ":4: priority must be a whole number, got 1.5"),
    "priority true": ("id: x\ntitle: A\npriority: true",
                      ":4: priority must be a whole number, got true"),
    "failed_plans not a list": (
        "id: x\ntitle: A\npriority: 1\nfailed_plans: a",
        ":5: failed_plans must be a list of plan ids like [a, b], got 'a'",
    ),
    "failed_plans of numbers": (
        "id: x\ntitle: A\npriority: 1\nfailed_plans: [1, 2]",
        ":5: failed_plans must be a list of plan ids like [a, b], got a list",
    ),
    "failed_plans not ids": (
        "id: x\ntitle: A\npriority: 1\nfailed_plans: [a b]",
        ":5: failed_plans names 'a b', not a plan id",
    ),
    "a bad id": (
        "id: ../x\ntitle: A\npriority: 1",
        ":2: id '../x' is not a valid plan id (letters, digits, '.', '_' and '-', starting "
        "with a letter or digit)",
    ),
    "an unknown key": (
        "id: x\ntitel: A\npriority: 1",
        ":3: unknown key 'titel' (known: id, title, priority, parent, fix_key, failed_plans, "
        "completed_with, returned)",
    ),
    "a key twice": ("id: x\ntitle: A\npriority: 1\ntitle: B", ":5: key 'title' appears twice"),
    "a list, not keys": ("- id: x", ":2: the front-matter must be 'key: value' lines"),
    "no title": ("id: x\npriority: 1", ": missing required key 'title'"),
    "an empty title": ("id: x\ntitle: ''\npriority: 1", ": missing required key 'title'"),
    "nothing": ("", ": missing required key 'id'"),
}  # fmt: skip


@pytest.mark.parametrize(("block", "message"), WRONG.values(), ids=WRONG.keys())
def test_a_front_matter_that_is_not_a_plan_is_refused_naming_the_line(
    block: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_plan(f"---\n{block}\n---\nBody.\n", PATH)
    assert str(caught.value) == PATH + message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Say hello.\n", ": plan files start with a '---' front-matter block"),
        ("---\nid: x\n", ": the front-matter block is not closed with '---'"),
        ("---\nid: x\ntitle: A\n  ---\npriority: 1\n", ": the front-matter block is not closed with '---'"),
    ],
)  # fmt: skip
def test_the_fences_start_a_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_plan(text, PATH)
    assert str(caught.value) == PATH + message


def test_reading_plans_does_not_import_yaml_until_a_plan_is_read() -> None:
    code = (
        "import sys, promote_tasks.plans as p; print('yaml' in sys.modules); "
        "p.parse_plan('---\\nid: x\\ntitle: A\\npriority: 1\\n---\\n', 'x.md'); "
        "print('yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]
