"""The Actions emulator's expressions: the forms the shipped workflows use, GitHub's rules."""

from __future__ import annotations

from typing import Any

import pytest

from promote_sandbox.expressions import ExpressionError
from promote_sandbox.expressions import condition
from promote_sandbox.expressions import evaluate
from promote_sandbox.expressions import substitute

CONTEXTS: dict[str, Any] = {
    "github": {
        "event_name": "issue_comment",
        "repository": "acme/shop",
        "sha": "abc",
        "event": {
            "issue": {"labels": [{"name": "promote:checklist"}, {"name": "bug"}]},
            "pull_request": {"number": 7},
        },
    },
    "inputs": {"sha": "", "environment": "test"},
    "env": {"N": "3"},
    "steps": {"s": {"outputs": {"x": "1"}}},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("github.event_name != 'issue_comment'", False),
        ("github.event_name == 'ISSUE_COMMENT'", True),  # strings compare without case
        ("contains(github.event.issue.labels.*.name, 'promote:checklist')", True),
        ("contains(github.event.issue.labels.*.name, 'nope')", False),
        (
            "github.event_name != 'issue_comment' ||\n"
            "contains(github.event.issue.labels.*.name, 'promote:checklist')",
            True,
        ),
        ("inputs.sha || github.sha", "abc"),  # || yields an operand
        ("inputs.environment && 'yes'", "yes"),
        ("github.event.pull_request.number", 7),
        ("github['event']['pull_request']['number'] == 7", True),
        ("env.N == 3", True),  # a string and a number compare as numbers
        ("steps.s.outputs.x", "1"),
        ("github.nothing.here", None),
        ("!github.nothing", True),
        ("format('promote-{0}-{1}', github.repository, 2)", "promote-acme/shop-2"),
        ("startsWith(github.repository, 'ACME/')", True),
        ("join(github.event.issue.labels.*.name, ', ')", "promote:checklist, bug"),
        ("fromJSON('{\"a\": [1, 2]}').a[1]", 2),
        ("1 < 2 && 'b' > 'A'", True),
        ("(false || null) == 0", True),
    ],
)
def test_expressions_evaluate_as_on_github(text: str, value: Any) -> None:
    assert evaluate(text, CONTEXTS) == value


def test_substitution_puts_values_into_text() -> None:
    text = "group: promote-${{ github.repository }} at ${{ inputs.sha || github.sha }}${{ null }}"
    assert substitute(text, CONTEXTS) == "group: promote-acme/shop at abc"


@pytest.mark.parametrize(
    ("text", "status", "runs"),
    [
        (None, "success", True),
        (None, "failure", False),
        ("github.event_name == 'issue_comment'", "success", True),
        ("github.event_name == 'issue_comment'", "failure", False),  # success() is implied
        ("${{ always() }}", "failure", True),
        ("failure()", "failure", True),
        ("${{ github.event_name == 'push' }}", "success", False),
    ],
)
def test_if_implies_success_unless_it_asks_for_a_status(
    text: str | None, status: str, runs: bool
) -> None:
    assert condition(text, CONTEXTS, lambda: status) is runs


@pytest.mark.parametrize(
    "text", ["hashFiles('x')", "matrix.os", "github.sha ==", "'open", "github.sha )"]
)
def test_what_the_emulator_cannot_read_is_an_error_not_a_guess(text: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(text, CONTEXTS)
