"""Rollback strategies against the sandbox: ``revert`` (a PR restoring the target's tree,
merged by the tool), ``reset`` (opt-in: the branch forced back, a marker status left), a team's
``tag-redeploy`` from the top-level ``plugins/`` directory; and what happens around them:
two failures in a row, a rollback that fails, a check that turns green too late."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import Result
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.test_failures import dispatches
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import fix_plans
from tests.e2e.test_failures import labels
from tests.e2e.test_failures import promote
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]
PLUGINS = Path(__file__).parents[2] / "plugins"


def pipeline(test_rollback: str, extra: str = "", dev_rollback: str = "redeploy") -> str:
    """The default pipeline, with the rollback strategy of dev and test chosen."""
    envs = (
        f'[[environments]]\nname = "dev"\nvalidators = ["health", "smoke"]\n'
        f'rollback = "{dev_rollback}"\n'
        f'[[environments]]\nname = "test"\nvalidators = ["health", "smoke", "manual"]\n'
        f'rollback = "{test_rollback}"\n'
        '[[environments]]\nname = "main"\nvalidators = ["health", "smoke", "monitor"]\n'
    )
    return config(extra=extra + envs)


def tree(driver: Driver, sha: str) -> str:
    return str(driver.api.get(f"/git/commits/{sha}")["tree"]["sha"])


@pytest.mark.transition("R9")
def test_revert_merges_a_pr_that_restores_the_target_and_files_the_fix_plan_after_it_deploys(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(failing("test", "deploy"), pipeline("revert"))
    api = driver.api
    before = api.head("test")
    state = drive_until(driver, filed("test"))
    test = state.env("test")
    assert test.restores is not None
    failed = test.restores.partition("@")[2]
    key = f"test@{failed}"
    assert labels(driver.steps)[-3:] == ["R3 test", "R9 test", "R9 test"]

    # One revert PR from promote/revert-test-<sha7>, merged by the tool, carrying the failure.
    (pull,) = [p for p in api.pulls() if p["head"]["ref"].startswith("promote/revert-")]
    promotion = next(p for p in api.pulls() if p["head"]["ref"] == "dev")
    assert pull["head"]["ref"] == f"promote/revert-test-{failed[:7]}"
    assert (pull["base"]["ref"], pull["merged_at"] is not None) == ("test", True)
    assert f"\nPromote-Rollback-Of: {key}\n" in pull["body"]
    assert f"\nPromote-Culprit: #{promotion['number']}\n" in pull["body"]
    # It carries its own promote/gate (a required check would otherwise hold the merge).
    gate = api.latest(pull["head"]["sha"], "promote/gate")
    assert gate is not None
    assert (gate["state"], gate["description"]) == ("success", "a rollback opened by promote")
    # test now holds the target's tree on top of the failed head, and that deployed.
    head = api.head("test")
    assert test.sha == head
    assert tree(driver, head) == tree(driver, before)
    assert failed in [p["sha"] for p in api.get(f"/commits/{head}")["parents"]]
    assert driver.deployed("test")
    assert rollbacks(api, "test") == []
    # Run again from the facts it acted on (a re-run after a crash): it finds it all, writes nothing.
    (rolled,) = [s for s in driver.steps if s.label == "R9 test" and "revert" in str(s.did)]
    assert not driver.replay(rolled)

    # The fix plan is keyed by the failure, names the culprit, and holds the halt.
    (plan,) = fix_plans(driver)
    assert (plan.id, plan.fix_key, plan.priority) == (fix_plan_id(key), key, 0)
    text = api.file(f"plans/inbox/{plan.id}.md", "dev")
    assert text is not None
    assert f"- Culprit: #{promotion['number']} " in text
    assert f"- Rollback: to {head} — success (restored by moving test to {head[:7]})" in text
    assert "- promote/test failure: deployment " in text
    assert (state.halted, state.fix_plan) == (True, plan.id)
    for _ in range(2):
        idle = driver.next()
        assert not idle.acted
        assert not idle.writes
    # The failed sha is never promoted again: it still carries its failure.
    assert api.latest(failed, "promote/test")["state"] == "failure"


def test_revert_on_the_plans_branch_keeps_the_plan_files(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("dev", "deploy"), pipeline("redeploy", dev_rollback="revert"))
    api = driver.api
    before = api.head("dev")
    # The failing change also adds a plan file: the revert must not take plan bookkeeping back.
    plan = "---\nid: next\ntitle: Next step\npriority: 2\n---\n\nLater.\n"
    api.commit("feature/add-greeting", "Plan the next step\n", {"plans/inbox/next.md": plan})
    state = drive_until(driver, filed("dev"))
    head = state.env("dev").sha
    assert head is not None
    assert api.file("app.txt", head) == api.file("app.txt", before)
    assert api.file("plans/inbox/next.md", head) == plan
    assert api.file("plans/inbox/next.md", before) is None


@pytest.mark.transition("R9")
def test_reset_forces_the_branch_back_and_leaves_a_marker(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("test", "deploy"), pipeline("reset"))
    api = driver.api
    before = api.head("test")
    state = drive_until(driver, filed("test"))
    test = state.env("test")
    assert test.restores is not None
    failed = test.restores.partition("@")[2]
    assert api.head("test") == before
    marker = api.latest(before, "promote/test/rollback")
    assert (marker["state"], marker["description"]) == ("success", f"rolled back test@{failed}")
    # The target was deployed again before the fix plan was filed.
    (dispatch,) = dispatches(api)
    assert (dispatch["head_branch"], dispatch["conclusion"]) == ("test", "success")
    assert driver.deployed("test")
    (plan,) = fix_plans(driver)
    assert plan.fix_key == f"test@{failed}"
    (rolled,) = [s for s in driver.steps if s.label == "R9 test" and "reset" in str(s.did)]
    assert not driver.replay(rolled)
    assert api.head("test") == before
    assert state.halted
    assert api.latest(failed, "promote/test")["state"] == "failure"


def test_a_team_strategy_loaded_by_path_redeploys_from_a_tag(make_driver: MakeDriver) -> None:
    settings = pipeline("tag-redeploy", extra=f'plugins_dir = "{PLUGINS}"\n')
    driver = make_driver(failing("test", "deploy"), settings)
    api = driver.api
    before = api.head("test")
    state = drive_until(driver, filed("test"))
    failed = state.env("test").sha
    assert failed is not None
    tag = f"rollback/test/{before[:7]}"
    assert api.get(f"/git/ref/tags/{tag}")["object"]["sha"] == before
    (record,) = rollbacks(api, "test")
    assert (record["sha"], record["ref"]) == (before, tag)
    assert record["payload"]["promote"]["rollback_of"] == failed
    (dispatch,) = dispatches(api)
    assert (dispatch["head_branch"], dispatch["conclusion"]) == ("test", "success")
    assert state.env("test").rollback is not None
    assert state.env("test").rollback.state == "success"
    assert [p.fix_key for p in fix_plans(driver)] == [f"test@{failed}"]
    rolled = next(s for s in driver.steps if s.action.transition == "R9" and "tagged" in str(s.did))
    assert f"with tag-redeploy: tagged {tag}; created rollback deployment" in rolled.did[0]


def test_two_failures_in_a_row_skip_the_first_and_chain_the_fix_plans(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(failing("test", "deploy"))
    api = driver.api
    before = api.head("test")
    state = drive_until(driver, filed("test"))
    first = state.env("test")
    assert first.fix_plan is not None
    # The fix plan's code arrives like any plan's, on feature/<fix plan id>.
    api.post("/git/refs", {"ref": f"refs/heads/feature/{first.fix_plan}", "sha": api.head("dev")})
    api.commit(f"feature/{first.fix_plan}", "Fix the deploy\n", {"fix.txt": "fixed\n"})
    api.post(
        "/pulls", {"title": "Fix the deploy", "head": f"feature/{first.fix_plan}", "base": "dev"}
    )

    def manual_pending(s: object) -> bool:
        test = driver.state().env("test")
        return (
            test.sha != first.sha
            and any(v.validator == "manual" and v.result is Result.PENDING for v in test.verdicts)
            and test.state is State.VALIDATING
        )

    drive_until(driver, manual_pending, reviewer=None)
    driver.as_user("rita").record_decision("test", None, False, "still broken")
    state = drive_until(driver, filed("test"))
    second = state.env("test")
    assert second.sha != first.sha
    assert second.plan == first.fix_plan
    # Rolled back again past the first failed sha, to the last known-good commit.
    records = rollbacks(api, "test")
    assert [(r["sha"], r["payload"]["promote"]["rollback_of"]) for r in records] == [
        (before, first.sha),
        (before, second.sha),
    ]
    plans = {p.id: p for p in fix_plans(driver)}
    assert second.fix_plan is not None
    assert plans[second.fix_plan].parent == first.fix_plan
    assert (state.halted, state.fix_plan) == (True, second.fix_plan)


@pytest.mark.transition("R9")
def test_a_failed_rollback_stops_loudly_and_nothing_else_happens(
    make_driver: MakeDriver,
) -> None:
    # The failed deploy and the rollback's deploy both fail.
    driver = make_driver(failing("test", "deploy", 2))
    api = driver.api
    before = api.head("test")
    for _ in range(40):
        driver.sandbox.settle()
        if driver.next().action.stop:
            break
    writes = api.writes()
    stopped = promote(driver, "next")
    assert stopped.returncode == 1
    (line,) = stopped.stdout.splitlines()
    assert line.startswith(f"STOP: rollback of test to {before[:7]} failed (deployment ")
    assert line.endswith(f"deploy {before[:7]} to test by hand, then run `promote next` again")
    assert api.writes() == writes
    assert fix_plans(driver) == []
    assert driver.next().action.stop is not None

    # A person deploys the target by hand; then next files the fix plan.
    status, _ = api.call(
        "POST",
        f"{api.repo_path}/actions/workflows/deploy.yml/dispatches",
        {"ref": "test", "inputs": {"environment": "test", "sha": before}},
    )
    assert status == 204
    state = drive_until(driver, filed("test"))
    assert state.env("test").rollback is not None
    assert state.env("test").rollback.succeeded
    assert len(rollbacks(api, "test")) == 1
    assert len(fix_plans(driver)) == 1


@pytest.mark.transition("R6")
def test_a_failed_sha_is_never_promoted_even_when_its_check_turns_green(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(Scenario(merge_bot=True, fail=(FailRule("dev", "smoke", 1),)))
    api = driver.api
    state = drive_until(driver, filed("dev"))
    failed = state.env("dev").sha
    assert failed is not None
    # Someone makes every check green on the failed sha afterwards.
    for context in ("promote/dev/smoke", "promote/dev/health", "promote/dev"):
        api.post(f"/statuses/{failed}", {"state": "success", "context": context})
    for _ in range(3):
        taken = driver.next()
        assert taken.action.transition is None
    assert driver.state().env("dev").state is State.FAILED
    assert not [p for p in api.pulls() if p["head"]["ref"] == "dev"]


@pytest.mark.parametrize("strategy", ["revert", "reset"])
def test_a_failed_revert_or_reset_deploy_stops_loudly(
    make_driver: MakeDriver, strategy: str
) -> None:
    driver = make_driver(failing("test", "deploy", 2), pipeline(strategy))
    for _ in range(30):
        driver.sandbox.settle()
        taken = driver.next()
        if taken.action.stop:
            break
    assert taken.action.stop is not None
    assert taken.action.stop.startswith("rollback of test failed: ")
    assert fix_plans(driver) == []
