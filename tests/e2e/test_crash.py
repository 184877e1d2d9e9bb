"""A run that dies between two writes of one transition: the next run must finish the job,
with no duplicates (DESIGN §1: "a crash between two writes must never leave a state that the
next run cannot derive and finish"). The crash is made by performing only a prefix of the
decided action's effects, exactly what a process killed mid-way would have written."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from promote_sandbox import Scenario
from promote_tasks.act import act
from tests.e2e.conftest import Driver
from tests.e2e.conftest import duplicate_statuses
from tests.e2e.conftest import one_env

TEST_ONLY = Scenario(merge_bot=True, environments=("test",))


def die_after(driver: Driver, transition: str, effects: int) -> None:
    """Decide the next step and perform only its first ``effects`` effects."""
    dry = driver.run.step(dry_run=True)
    action = dry.action
    assert action.transition == transition
    assert len(action.effects) > effects
    act(
        driver.run,
        dataclasses.replace(action, effects=action.effects[:effects]),
        dry.snapshot,
        dry.state,
    )


@pytest.mark.transition("R5")
def test_dying_inside_r5_leaves_only_the_verdict_to_write(
    make_driver: Callable[..., Driver],
) -> None:
    driver = make_driver(TEST_ONLY, one_env("test", ("health", "smoke")))
    driver.sandbox.settle()
    assert driver.next().action.transition == "R4"
    die_after(driver, "R5", 2)  # both validators recorded, the verdict not
    sha = driver.api.head("test")
    assert driver.api.latest(sha, "promote/test")["state"] == "pending"
    again = driver.next()
    assert again.action.transition == "R5"
    assert again.writes == {"POST /repos/{owner}/{repo}/statuses/{sha}": 1}
    assert driver.api.latest(sha, "promote/test")["state"] == "success"
    assert driver.next().action.transition == "R8"


def test_dying_inside_r4_still_opens_the_checklist_issue(
    make_driver: Callable[..., Driver],
) -> None:
    driver = make_driver(TEST_ONLY, one_env("test", ("health", "manual")))
    driver.sandbox.settle()
    action = driver.run.step(dry_run=True).action
    manual = next(
        i for i, e in enumerate(action.effects) if getattr(e, "validator", None) == "manual"
    )
    die_after(driver, "R4", manual)  # everything R4 writes before the manual test starts
    assert [s.action.transition for s in driver.until_rest()][-1] is None
    issues = driver.api.issues("promote:checklist")
    assert [i["title"] for i in issues] == [f"Manual test: test at {driver.api.head('test')[:7]}"]
    assert [a["login"] for a in issues[0]["assignees"]] == ["rita"]
    assert not duplicate_statuses(driver.api.statuses(driver.api.head("test")))
