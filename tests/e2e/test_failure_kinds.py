"""A failure in every environment, of every kind: the deploy itself (R3) and each validator
(R6, manual rejection included). Each ends the same way: the environment rolled back to the
commit before the failed merge, one fix plan of highest priority, everything else halted."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import PipelineState
from promote_tasks.model import Result
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.test_failures import deployments
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import fix_plans
from tests.e2e.test_failures import labels
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]
ENVS = ("dev", "test", "main")


def manual_pending(state: PipelineState) -> bool:
    test = state.env("test")
    return test.state is State.VALIDATING and any(
        v.validator == "manual" and v.result is Result.PENDING for v in test.verdicts
    )


def reach_failure(driver: Driver, env: str, stage: str) -> PipelineState:
    if stage == "manual":
        drive_until(driver, manual_pending, reviewer=None)
        driver.as_user("rita").record_decision("test", None, False, "checkout is broken")
    return drive_until(driver, filed(env))


CASES = [
    pytest.param("R3", env, "deploy", id=f"R3-{env}-deploy", marks=pytest.mark.transition("R3"))
    for env in ENVS
] + [
    pytest.param("R6", env, stage, id=f"R6-{env}-{stage}", marks=pytest.mark.transition("R6"))
    # each environment, and each kind of validator: http-health, workflow, manual, monitor
    for env, stage in (("dev", "health"), ("dev", "smoke"), ("test", "manual"), ("main", "monitor"))
]


@pytest.mark.transition("R9")
@pytest.mark.parametrize(("row", "env", "stage"), CASES)
def test_failure_rolls_back_files_one_fix_plan_and_halts(
    make_driver: MakeDriver, row: str, env: str, stage: str
) -> None:
    driver = make_driver(failing(env, stage) if stage != "manual" else failing(env, "deploy", 0))
    api = driver.api
    before = api.head(env)
    state = reach_failure(driver, env, stage)
    failed = state.env(env)
    assert failed.state is State.FAILED
    assert failed.sha is not None
    assert api.get(f"/commits/{failed.sha}")["parents"][0]["sha"] == before
    assert labels(driver.steps)[-3:] == [f"{row} {env}", f"R9 {env}", f"R9 {env}"]

    # Rolled back once, to the commit before the failed merge, and that deploy succeeded.
    (record,) = rollbacks(api, env)
    assert (record["sha"], record["payload"]["promote"]["rollback_of"]) == (before, failed.sha)
    after = [d for d in deployments(api, env, before) if d["id"] > record["id"]]
    assert [d["state"] for d in after] == ["success"]
    # redeploy leaves the branch where it is (on dev, the fix plan's bookkeeping sits on top)
    tip = api.head(env)
    assert failed.sha in (tip, api.get(f"/commits/{tip}")["parents"][0]["sha"])

    # One fix plan, highest priority, that says what failed and links to it.
    key = f"{env}@{failed.sha}"
    (plan,) = fix_plans(driver)
    assert (plan.id, plan.priority, plan.fix_key) == (fix_plan_id(key), 0, key)
    text = api.file(f"plans/inbox/{plan.id}.md", "dev")
    assert text is not None
    checks = text.split("## Failing checks\n\n")[1].splitlines()
    name = {"deploy": "deployment "}.get(stage, f"{stage}: ")
    assert any(c.startswith(f"- {name}") and "(http" in c for c in checks), checks
    assert f"- Rollback: to {before} — success" in text

    # Halted: nothing else moves, and later runs write nothing.
    assert state.halted
    assert state.fix_plan == plan.id
    for _ in range(2):
        idle = driver.next()
        assert not idle.acted
        assert not idle.writes
    for later in ENVS[ENVS.index(env) + 1 :]:
        assert api.head(later) == before, f"{later} received the failed change"
