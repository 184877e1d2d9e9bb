"""The fix plan through the ``issues`` store, and the whole failure path under each merge method
(the failed PR landed as a merge commit, a squash, or a rebase of several commits)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.test_failure_target import add_commit
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import fix_plans
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]


@pytest.mark.transition("R9")
def test_the_fix_plan_is_an_issue_with_the_issues_store(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("dev", "smoke"), config(extra='plan_store = "issues"\n'))
    api = driver.api
    before = api.head("dev")
    state = drive_until(driver, filed("dev"))
    failed = state.env("dev").sha
    assert failed is not None
    key = f"dev@{failed}"
    for _ in range(3):
        assert not driver.next().writes
    (issue,) = api.issues("plan")
    assert issue["title"] == f"Fix dev: plan add-greeting failed at {failed[:7]}"
    assert {label["name"] for label in issue["labels"]} == {"plan", "plan:inbox", "priority:0"}
    body = issue["body"]
    assert body.endswith(
        f"\n\nPlan-Id: {fix_plan_id(key)}\nPriority: 0\nFix-Key: {key}\n"
        "Failed-Plans: add-greeting\n"
    )
    assert "- Environment: dev\n" in body
    assert f"- Failed sha: {failed}\n" in body
    assert "- Culprit: #1 Add a greeting to the app (" in body
    assert f"- Rollback: to {before} — success (deployment " in body
    assert any(line.startswith("- smoke: ") and "(http" in line for line in body.splitlines()), body
    (plan,) = fix_plans(driver)
    assert (plan.id, plan.priority, plan.status, plan.fix_key) == (
        fix_plan_id(key),
        0,
        "inbox",
        key,
    )
    assert (state.halted, state.fix_plan) == (True, plan.id)


@pytest.mark.transition("R3", "R9")
@pytest.mark.parametrize("method", ["squash", "rebase"])
def test_each_merge_method_rolls_back_to_the_commit_before_the_failed_merge(
    make_driver: MakeDriver, method: str
) -> None:
    driver = make_driver(failing("test", "deploy", merge_method=method))
    api = driver.api
    before = api.head("test")
    # Two commits in the plan's PR: a rebase lands them one by one on dev and on test.
    add_commit(api, "feature/add-greeting", "Greet by name\n", {"greeting.txt": "Hi {name}\n"})
    state = drive_until(driver, filed("test"))
    test = state.env("test")
    assert test.state is State.FAILED
    assert test.sha is not None
    landed = [test.sha]
    while landed[-1] != before:
        landed.append(api.get(f"/commits/{landed[-1]}")["parents"][0]["sha"])
        assert len(landed) < 5
    assert len(landed) - 1 == (2 if method == "rebase" else 1)
    (record,) = rollbacks(api, "test")
    assert (record["sha"], record["payload"]["promote"]["rollback_of"]) == (before, test.sha)
    assert test.rollback is not None
    assert test.rollback.state == "success"
    assert [p.fix_key for p in fix_plans(driver)] == [f"test@{test.sha}"]
