"""render.py: the JSON, the text and the job summary made from a derived state, with no I/O."""

from __future__ import annotations

import json

from promote_tasks import render
from promote_tasks.model import Action
from promote_tasks.model import Did
from promote_tasks.model import EnvState
from promote_tasks.model import PipelineState
from promote_tasks.model import Result
from promote_tasks.model import State
from promote_tasks.model import Verdict
from promote_tasks.schemas import SCHEMAS

SHA = "a" * 40
NOTHING = Action(transition=None)


def pipeline(*envs: EnvState, halted: bool = False) -> PipelineState:
    return PipelineState(
        repository="acme/shop",
        environments=envs,
        halted=halted,
        fix_plan="fix-test-1" if halted else None,
        active_plan=None,
    )


def dev(**changes: object) -> EnvState:
    fields: dict[str, object] = {
        "name": "dev",
        "branch": "dev",
        "sha": SHA,
        "state": State.VALIDATING,
        "plans": ("add-greeting",),
        "verdicts": (
            Verdict("health", Result.PASSED, url="https://ci.example/run/1"),
            Verdict("smoke", Result.PENDING),
        ),
    }
    fields.update(changes)
    return EnvState(**fields)  # type: ignore[arg-type]


def test_inert_shows_escape_sequences_instead_of_sending_them() -> None:
    assert render.inert("ok\x1b[2Jgone\u202e") == "ok\\x1b[2Jgone\\x202e"


def test_the_summary_links_each_sha_to_its_commit_and_each_check_to_its_run() -> None:
    text = render.status_markdown(pipeline(dev()), NOTHING, web="https://ghe.example/")
    row = next(line for line in text.splitlines() if line.startswith("| dev |"))
    assert f"[`{SHA[:7]}`](https://ghe.example/acme/shop/commit/{SHA})" in row
    assert "[health ✓](https://ci.example/run/1)" in row
    assert "smoke …" in row
    assert "[smoke" not in row


def test_text_from_github_cannot_break_the_summary_table() -> None:
    sneaky = dev(plans=("a|b](javascript:x)",), verdicts=())
    row = render.status_markdown(pipeline(sneaky), NOTHING).splitlines()[-1]
    assert row.count(" | ") == 5  # six cells, none added by the plan id
    assert "| a\\|b\\](javascript:x) |" in row  # escaped: no cell, no link


def test_a_url_that_is_not_http_is_not_a_link() -> None:
    assert render._link("x", "javascript:alert(1)") == "x"
    assert render._link("x", None) == "x"


def test_the_summary_says_halted_in_its_title() -> None:
    text = render.status_markdown(pipeline(dev(), halted=True), NOTHING)
    assert text.splitlines()[0] == "### promote: acme/shop — **halted**"


def test_what_next_did_is_a_table_of_writes_with_links() -> None:
    did = (
        Did("opened PR #7 https://github.com/acme/shop/pull/7", "open-pr", "dev→test"),
        Did("promote/dev = success on aaaaaaa", "set-status", f"promote/dev@{SHA}"),
    )
    action = Action(
        transition="R8", environment="dev", source=State.VALIDATING, target=State.PROMOTED
    )
    lines = render.next_markdown(action, did).splitlines()
    assert lines[2] == "R8 dev: validating → promoted"
    assert "| open-pr | dev→test | [opened PR #7 https://github.com/acme/shop/pull/7]" in lines[6]
    assert lines[7] == f"| set-status | promote/dev@{SHA} | promote/dev = success on aaaaaaa |"


def test_did_keeps_the_prose_as_text_and_the_json_validates() -> None:
    import jsonschema

    did = (Did("closed issue #3", "close-issue", "dev@" + SHA, "https://x.example/3"),)
    data = {"schema": 1, **render.next_data(Action(transition="R5", environment="dev"), did)}
    assert data["did"] == [
        {
            "kind": "close-issue",
            "target": "dev@" + SHA,
            "url": "https://x.example/3",
            "text": "closed issue #3",
        }
    ]
    jsonschema.validate(json.loads(json.dumps(data)), SCHEMAS["next"])


def test_status_json_validates_against_its_schema() -> None:
    import jsonschema

    data = {
        "schema": 1,
        **render.status_data(pipeline(dev(), halted=True), NOTHING),
        "requests": {"made": 0, "remaining": None},
    }
    jsonschema.validate(json.loads(json.dumps(data)), SCHEMAS["status"])
