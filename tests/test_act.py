"""act.py performs one effect of each kind against the sandbox and says what it did in one
line; performed again from the same facts (a re-run after a crash), it writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.act import perform
from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import CloseChecklist
from promote_tasks.model import CompletePlans
from promote_tasks.model import DispatchDeploy
from promote_tasks.model import Effect
from promote_tasks.model import FileFixPlan
from promote_tasks.model import OpenPromotion
from promote_tasks.model import RollBack
from promote_tasks.model import SetStatus
from promote_tasks.model import StartValidator
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config

PLAN = "add-greeting"
E = TypeVar("E")


@pytest.fixture
def driver(make_sandbox: Callable[..., Sandbox]) -> Driver:
    """The seed's feature PR merged into dev (dev is ahead of test), CI not yet run."""
    made = Driver(make_sandbox(scenario=Scenario(merge_bot=True)), config())
    made.sandbox.settle()
    return made


def twice(driver: Driver, effect: Effect) -> tuple[str, str]:
    """Perform ``effect``, then again from the same facts: the second time writes nothing."""
    run = driver.run
    snapshot = run.snapshot()
    state = run.decide(snapshot)[0]
    first = perform(run, effect, snapshot, state)
    assert first.kind == effect.kind
    before = driver.api.writes()
    second = perform(run, effect, snapshot, state)
    assert driver.api.writes() == before, f"{effect.kind} performed again wrote"
    return first, second


def test_set_status_writes_the_status_once(driver: Driver) -> None:
    sha = driver.api.head("dev")
    effect = SetStatus(sha, "promote/dev/smoke", "pending", "smoke is running")
    first, second = twice(driver, effect)
    assert first == f"promote/dev/smoke = pending on {sha[:7]}"
    assert first.target == f"promote/dev/smoke@{sha}"
    assert second == f"promote/dev/smoke already pending on {sha[:7]}"
    latest = driver.api.latest(sha, "promote/dev/smoke")
    assert latest is not None
    assert (latest["state"], latest["description"]) == ("pending", "smoke is running")


def test_start_validator_opens_the_manual_tests_checklist_once(driver: Driver) -> None:
    sha = driver.api.head("test")
    first, second = twice(driver, StartValidator("test", sha, "manual"))
    assert first == second == "started manual in test"
    assert first.target == "test/manual"
    (issue,) = driver.api.issues("promote:checklist")
    assert issue["title"] == f"Manual test: test at {sha[:7]}"
    assert [a["login"] for a in issue["assignees"]] == ["rita"]


def test_dispatch_deploy_starts_the_deploy_workflow_on_the_branch(driver: Driver) -> None:
    sha = driver.api.head("dev")
    runs = "/actions/workflows/deploy.yml/runs?event=workflow_dispatch&per_page=100"
    before = driver.api.get(runs)["workflow_runs"]
    did = perform(
        driver.run,
        DispatchDeploy("dev", "dev", sha, "deploy.yml"),
        driver.run.snapshot(),
        driver.state(),
    )
    assert did.startswith(f"dispatched deploy.yml for dev at {sha[:7]}: ")
    assert did.target == f"dev@{sha}"
    (dispatched,) = [r for r in driver.api.get(runs)["workflow_runs"] if r not in before]
    assert dispatched["head_branch"] == "dev"


def test_close_checklist_closes_the_issue_and_a_missing_one_is_only_said(driver: Driver) -> None:
    opened = driver.api.post("/issues", {"title": "Manual test", "labels": ["promote:checklist"]})
    number = opened["number"]
    snapshot, state = driver.run.snapshot(), driver.state()
    for _ in range(2):  # closing a closed issue changes nothing
        did = perform(driver.run, CloseChecklist(number, "test"), snapshot, state)
        assert did == f"closed checklist issue #{number} (test is decided)"
        assert (did.kind, did.target) == ("close-checklist", f"#{number}")
        assert driver.api.get(f"/issues/{number}")["state"] == "closed"
    missing = perform(driver.run, CloseChecklist(9999, "test"), snapshot, state)
    assert missing.startswith("could not close checklist issue #9999: ")


def test_open_promotion_opens_the_pr_with_its_gate_once(driver: Driver) -> None:
    sha = driver.api.head("dev")
    effect = OpenPromotion("dev", "dev", "test", sha, plans=(PLAN,), evidence=("smoke passed",))
    first, second = twice(driver, effect)
    (pull,) = [p for p in driver.api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == ("dev", "test")]  # fmt: skip
    assert first == f"opened PR #{pull['number']} (dev → test): {pull['html_url']}"
    assert second == f"found PR #{pull['number']} (dev → test): {pull['html_url']}"
    assert first.target == "dev→test"
    assert PLAN in pull["title"]
    assert "smoke passed" in pull["body"]
    assert driver.api.latest(sha, "promote/gate") is not None


def test_complete_plans_moves_the_plan_to_done_once(driver: Driver) -> None:
    assert perform(driver.run, CompletePlans(()), driver.run.snapshot(), driver.state()) == (
        "no plan to complete"
    )
    first, second = twice(driver, CompletePlans((PLAN,)))
    assert first == f"completed plan {PLAN}"
    assert second == f"plan {PLAN} already done"
    assert driver.api.file(f"plans/done/{PLAN}.md", "dev") is not None
    assert driver.api.file(f"plans/doing/{PLAN}.md", "dev") is None


def test_rollback_and_fix_plan_of_a_failed_deploy(make_sandbox: Callable[..., Sandbox]) -> None:
    scenario = Scenario(merge_bot=True, fail=(FailRule("dev", "deploy", 1),))
    driver = Driver(make_sandbox(scenario=scenario), config())
    rollback = decided(driver, RollBack)
    failed = rollback.failed_sha
    assert rollback.environment == "dev"
    assert rollback.plan == fix_plan_id(f"dev@{failed}")
    first, second = twice(driver, rollback)
    assert first.startswith(f"rolled back dev from {failed[:7]} to ")
    assert first.target == f"dev@{failed}"
    assert "found rollback deployment" in second

    fix = decided(driver, FileFixPlan)
    assert (fix.plan_id, fix.failed_sha) == (rollback.plan, failed)
    first, second = twice(driver, fix)
    assert f"filed fix plan {fix.plan_id} (priority 0)" in first
    assert second.endswith(f"fix plan {fix.plan_id} already filed")
    assert fix.plan_id in {p.id for p in driver.run.snapshot().plans}


def decided(driver: Driver, kind: type[E]) -> E:
    """CI and ``next`` in turns until the decision has an effect of ``kind``, not acted on."""
    for _ in range(12):
        driver.sandbox.settle()
        action = driver.run.decide(driver.run.snapshot())[1]
        found = [e for e in action.effects if isinstance(e, kind)]
        if found:
            return found[0]
        driver.next()
    raise AssertionError(f"no {kind.__name__} was decided")
