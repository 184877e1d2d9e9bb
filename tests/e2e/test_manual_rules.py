"""Manual approval rules beyond the basics: commit authors, sticky rejections, exact shas."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.model import Result
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import one_env
from tests.e2e.test_manual_approval import cli_for
from tests.e2e.test_manual_approval import manual_verdict
from tests.e2e.test_manual_approval import wait_for_manual_test

TEST_ONLY = Scenario(merge_bot=True, environments=("test",))


def test_a_reviewer_who_wrote_a_commit_of_the_change_cannot_approve_it(
    make_sandbox: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox = make_sandbox(scenario=TEST_ONLY)
    # rita pushes a commit to the feature branch before it merges: she is now an author too.
    Api(sandbox, sandbox.token("rita")).commit(
        "feature/add-greeting", "tweak", {"app.txt": "hello from rita\n"}
    )
    driver = wait_for_manual_test(
        Driver(sandbox, one_env("test", ("health", "manual"), reviewers=("rita", "bob")))
    )
    cli = cli_for(driver, monkeypatch, capsys)
    code, _, err = cli("rita", "approve", "--env", "test")
    assert (code, err.strip()) == (
        1,
        "promote: error: rita wrote this change and cannot approve or reject it",
    )
    sha = driver.api.head("test")
    issue = driver.api.issues("promote:checklist")[0]
    Api(sandbox, sandbox.token("rita")).post(
        f"/issues/{issue['number']}/comments", {"body": f"Promote-Approve: {sha}"}
    )
    driver.next()
    assert manual_verdict(driver)[0] is Result.PENDING, "her comment does not count either"
    code, _, err = cli("bob", "approve", "--env", "test")
    assert (code, err) == (0, ""), err


def test_a_rejection_stands_even_if_an_approval_follows(make_driver: Callable[..., Driver]) -> None:
    driver = wait_for_manual_test(make_driver(TEST_ONLY, one_env("test", ("health", "manual"))))
    sha = driver.api.head("test")
    number = driver.api.issues("promote:checklist")[0]["number"]
    rita = Api(driver.sandbox, driver.sandbox.token("rita"))
    rita.post(f"/issues/{number}/comments", {"body": f"Promote-Reject: {sha} the button is gone"})
    rita.post(f"/issues/{number}/comments", {"body": f"Promote-Approve: {sha}"})
    step = driver.next()
    assert step.action.transition == "R6"
    assert manual_verdict(driver) == (Result.FAILED, "rejected by rita: the button is gone")


def test_a_sha_prefix_shorter_than_seven_is_refused(
    make_driver: Callable[..., Driver],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver = wait_for_manual_test(make_driver(TEST_ONLY, one_env("test", ("health", "manual"))))
    before = driver.api.writes()
    code, out, err = cli_for(driver, monkeypatch, capsys)(
        "rita", "approve", "--env", "test", "--sha", driver.api.head("test")[:3]
    )
    assert (code, out) == (1, "")
    assert "too short: give at least 7 characters" in err
    assert driver.api.writes() == before
