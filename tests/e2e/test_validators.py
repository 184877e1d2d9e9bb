"""Each built-in validator pending, passing and failing against the sandbox's CI.

CI moves one step at a time (``advance``), so a test can stop it exactly where a validator
must still be pending; the tool's clock moves only where a soak window must pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_tasks.model import Result
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.conftest import one_env

MakeDriver = Callable[..., Driver]


def verdicts(driver: Driver, env: str) -> dict[str, tuple[Result, str | None, str]]:
    """validator -> (result, url, summary), as the last ``next`` saw them."""
    last = driver.steps[-1]
    state = driver.run.decide(last.snapshot)[0].env(env)
    return {v.validator: (v.result, v.url, v.summary) for v in state.verdicts}


@pytest.mark.transition("R4", "R5")
def test_health_passes_and_smoke_is_pending_while_its_run_is_in_progress(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver()
    api = driver.api
    seeded = api.head("dev")
    driver.advance_until(lambda: driver.deployed("dev", after=seeded))
    driver.sandbox.advance()  # the smoke run starts
    sha = api.head("dev")
    smoke_runs = [
        r for r in api.state()["runs"] if r["head_sha"] == sha and "smoke" in r["workflow"]
    ]
    assert [r["status"] for r in smoke_runs] == ["in_progress"]

    assert driver.next().action.transition == "R4"
    update = driver.next()
    assert update.action.transition is None
    health_url = driver.sandbox.health_url("dev")
    assert verdicts(driver, "dev")["health"] == (
        Result.PASSED,
        health_url,
        f"GET {health_url}: 200",
    )
    assert verdicts(driver, "dev")["smoke"][0] is Result.PENDING
    assert api.latest(sha, "promote/dev/health")["state"] == "success"
    assert api.latest(sha, "promote/dev/health")["target_url"] == health_url
    assert api.latest(sha, "promote/dev/smoke")["state"] == "pending"
    assert api.latest(sha, "promote/dev")["state"] == "pending"
    idle = driver.next()
    assert not idle.acted
    assert "smoke" in (idle.action.waiting_for or "")

    driver.sandbox.settle()  # the smoke run succeeds
    done = driver.next()
    assert (done.action.transition, done.action.target) == ("R5", State.PROMOTED)
    assert api.latest(sha, "promote/dev/smoke")["state"] == "success"
    assert api.latest(sha, "promote/dev")["state"] == "success"


@pytest.mark.transition("R6")
@pytest.mark.parametrize(
    ("stage", "validator", "summary"),
    [("health", "health", ": 503, expected 200"), ("smoke", "smoke", "smoke.yml failure")],
)
def test_failing_check_fails_the_instance(
    make_driver: MakeDriver, stage: str, validator: str, summary: str
) -> None:
    driver = make_driver(Scenario(merge_bot=True, fail=(FailRule("dev", stage),)))
    api = driver.api
    driver.sandbox.settle()
    sha = api.head("dev")
    assert driver.next().action.transition == "R4"
    failed = driver.next()
    assert (failed.action.transition, failed.action.source, failed.action.target) == (
        "R6",
        State.VALIDATING,
        State.FAILED,
    )
    mine = api.latest(sha, f"promote/dev/{validator}")
    assert mine["state"] == "failure"
    assert mine["description"].endswith(summary)
    assert mine["target_url"]
    verdict = api.latest(sha, "promote/dev")
    assert (verdict["state"], verdict["description"]) == ("failure", f"failed: {validator}")
    # The other validator passed and says so.
    other = "smoke" if validator == "health" else "health"
    assert api.latest(sha, f"promote/dev/{other}")["state"] == "success"
    assert driver.state().env("dev").state is State.FAILED


MAIN_ONLY = Scenario(merge_bot=True, environments=("main",))
MONITOR = one_env(
    "main", ("health", "smoke", "monitor"), "[validators.monitor]\nsoak_seconds = 300\n"
)


@pytest.mark.transition("R4", "R5", "R8")
def test_monitor_is_pending_for_the_soak_window_then_passes(make_driver: MakeDriver) -> None:
    driver = make_driver(MAIN_ONLY, MONITOR)
    api = driver.api
    driver.sandbox.settle()
    sha = api.head("main")
    assert driver.next().action.transition == "R4"
    started = api.latest(sha, "promote/main/monitor")
    assert started["state"] == "pending"
    driver.next()  # health and smoke passed
    assert verdicts(driver, "main")["monitor"][0] is Result.PENDING
    assert verdicts(driver, "main")["monitor"][2].endswith("of 300s")

    driver.run.ahead = 270  # most of the window, whatever the test's own run time
    waiting = driver.next()
    assert not waiting.acted
    assert waiting.action.waiting_for == f"validation of main at {sha[:7]}: monitor"
    assert api.latest(sha, "promote/main/monitor") == started

    driver.run.ahead = 300
    passed = driver.next()
    assert passed.action.transition == "R5"
    assert api.latest(sha, "promote/main/monitor")["state"] == "success"
    assert api.latest(sha, "promote/main")["state"] == "success"
    # The monitor check run is still green and running: that is what passing means.
    checks = api.get(f"/commits/{sha}/check-runs?check_name=monitor")["check_runs"]
    assert [(c["status"], c["conclusion"]) for c in checks] == [("in_progress", None)]
    assert driver.next().action.transition == "R8"


@pytest.mark.transition("R6")
def test_monitor_alert_fails_the_instance(make_driver: MakeDriver) -> None:
    scenario = Scenario(merge_bot=True, environments=("main",), fail=(FailRule("main", "monitor"),))
    driver = make_driver(scenario, MONITOR)
    api = driver.api
    seeded = api.head("main")
    driver.advance_until(lambda: driver.deployed("main", after=seeded))
    sha = api.head("main")
    assert driver.next().action.transition == "R4"
    pending = driver.next()
    assert pending.action.transition is None
    assert verdicts(driver, "main")["monitor"][0] is Result.PENDING

    driver.sandbox.settle()  # the monitor raises its alert
    failed = driver.next()
    assert failed.action.transition == "R6"
    monitor = api.latest(sha, "promote/main/monitor")
    assert (monitor["state"], monitor["description"]) == ("failure", "monitor failure")
    assert monitor["target_url"] == driver.sandbox.health_url("main")
    assert api.latest(sha, "promote/main")["description"] == "failed: monitor"
