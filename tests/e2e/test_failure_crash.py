"""Never twice: ``next`` run again and again after a failure, replayed from the same facts, or
killed between (and inside) the rollback and the fix plan, ends with exactly one rollback and
one fix plan."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from promote_tasks.errors import PromoteError
from promote_tasks.ledger import fix_plan_id
from promote_tasks.ledger import revert_branch
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.test_failure_strategies import pipeline
from tests.e2e.test_failures import dispatches
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import fix_plans
from tests.e2e.test_failures import promote
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]

FLAKY_STORE = '''
"""A plan store that dies once while filing a plan: before writing, or after it wrote."""
from pathlib import Path

from promote_tasks import hookimpl
from promote_tasks.default_plugins.plan_stores import Files
from promote_tasks.errors import PromoteError

MARK = Path({mark!r})


class Flaky(Files):
    name = "flaky"

    async def create(self, settings, github, plan, body):
        if MARK.exists():
            return await super().create(settings, github, plan, body)
        MARK.write_text("died once")
        if {after!r}:
            await super().create(settings, github, plan, body)
        raise PromoteError("the runner was killed")


@hookimpl
def register_plan_stores(register):
    register(Flaky())
'''


def failed_in_test(driver: Driver) -> str:
    state = drive_until(driver, lambda s: s.env("test").state is State.FAILED)
    sha = state.env("test").sha
    assert sha is not None
    return sha


def test_next_again_and_again_after_a_failure_makes_one_rollback_and_one_fix_plan(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(failing("test", "deploy"))
    api = driver.api
    failed = failed_in_test(driver)
    # Before CI moves, every next finds the rollback under way and writes nothing.
    rolled = [s for s in driver.steps if s.label == "R9 test"]
    assert len(rolled) == 1
    for _ in range(3):
        again = driver.next()
        assert again.action.transition is None
        assert again.action.waiting_for is not None
        assert again.action.waiting_for.startswith("rollback of test to ")
        assert not again.writes
    # The rollback replayed from the same facts (a re-run after a crash) writes nothing.
    assert not driver.replay(rolled[0])
    state = drive_until(driver, filed("test"))
    (filing,) = [s for s in driver.steps if s.label == "R9 test" and "filed" in str(s.did)]
    assert not driver.replay(filing)
    for _ in range(3):
        idle = driver.next()
        assert not idle.acted
        assert not idle.writes
    assert len(rollbacks(api, "test")) == 1
    assert len(dispatches(api)) == 1
    assert [p.id for p in fix_plans(driver)] == [fix_plan_id(f"test@{failed}")]
    assert state.halted


@pytest.mark.parametrize("after", [False, True], ids=["before-writing", "after-writing"])
def test_a_run_killed_while_filing_the_fix_plan_files_it_once_when_run_again(
    make_driver: MakeDriver, tmp_path: Path, after: bool
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    mark = tmp_path / "died"
    (plugins / "flaky.py").write_text(FLAKY_STORE.format(mark=str(mark), after=after))
    settings = config(extra=f'plugins_dir = "{plugins}"\nplan_store = "flaky"\n')
    driver = make_driver(failing("test", "deploy"), settings)
    api = driver.api
    failed_in_test(driver)
    with pytest.raises(PromoteError, match="the runner was killed"):
        drive_until(driver, filed("test"))
    assert mark.exists()
    assert len(rollbacks(api, "test")) == 1
    assert len(fix_plans(driver)) == (1 if after else 0)
    # The next run (a new process: settings, plugins and GitHub client loaded afresh).
    driver.run = driver.as_user("alice")
    state = drive_until(driver, filed("test"))
    assert len(rollbacks(api, "test")) == 1
    assert len(dispatches(api)) == 1
    (plan,) = fix_plans(driver)
    assert plan.id == state.env("test").fix_plan
    said = [d for s in driver.steps for d in s.did if "fix plan" in d]
    # Run again, the machine either files it (the store died before writing) or finds it.
    assert [d.split(" (")[0] for d in said] == ([] if after else [f"filed fix plan {plan.id}"])


def until_r3(driver: Driver, env: str = "test") -> str:
    """``next`` until the failure in ``env`` is recorded (R3), before anything is rolled back."""
    for _ in range(40):
        driver.sandbox.settle()
        if driver.next().label == f"R3 {env}":
            return driver.api.head(env)
    raise AssertionError(f"no R3 in {env}")


def kill_inside_redeploy(driver: Driver) -> str:
    """What a run killed inside redeploy leaves: the rollback deployment, no dispatch."""
    before = driver.api.head("test")
    failed = until_r3(driver)
    github = driver.run.github
    github.run(github.rollback_deployment("test", before, failed, fix_plan_id(f"test@{failed}")))
    return before


def test_a_run_killed_inside_redeploy_is_finished_by_next_alone(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("test", "deploy"))
    kill_inside_redeploy(driver)
    drive_until(driver, filed("test"), limit=10)
    assert len(dispatches(driver.api)) == 1


def test_a_run_killed_inside_redeploy_is_finished_by_promote_rollback(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(failing("test", "deploy"))
    api = driver.api
    before = kill_inside_redeploy(driver)
    status = json.loads(promote(driver, "status", "--json").stdout)
    test = next(e for e in status["environments"] if e["name"] == "test")
    assert (test["rollback"]["target"], test["rollback"]["state"]) == (before, "")
    assert f"rollback to {before[:7]}: created" in [e["summary"] for e in test["evidence"]]
    # A person finishes it before any next does: the same rollback, found first, dispatches once.
    done = promote(driver, "rollback", "--env", "test")
    assert (done.returncode, done.stderr) == (0, "")
    assert "found rollback deployment" in done.stdout
    assert f"dispatched deploy.yml on test for test at {before[:7]}" in done.stdout
    drive_until(driver, filed("test"))
    assert len(rollbacks(api, "test")) == 1
    assert len(dispatches(api)) == 1
    assert len(fix_plans(driver)) == 1


def test_a_run_killed_inside_revert_is_finished_by_the_next_run(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("test", "deploy"), pipeline("revert"))
    api = driver.api
    before = api.head("test")
    failed = until_r3(driver)
    # The run died after pushing the revert branch and opening its PR, before merging it.
    branch = revert_branch("test", failed)
    api.post("/git/refs", {"ref": f"refs/heads/{branch}", "sha": failed})
    api.commit(branch, "Roll back test\n", {"app.txt": api.file("app.txt", before) or ""})
    opened = api.post("/pulls", {"title": "Roll back", "head": branch, "base": "test",
                                 "body": f"Promote-Rollback-Of: test@{failed}\n"})  # fmt: skip
    state = drive_until(driver, filed("test"))
    reverts = [p for p in api.pulls() if p["head"]["ref"] == branch]
    assert [(p["number"], p["merged_at"] is not None) for p in reverts] == [
        (opened["number"], True)
    ]
    assert state.env("test").restores == f"test@{failed}"
    assert len(fix_plans(driver)) == 1
