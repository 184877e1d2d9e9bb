"""The failure path end to end on the sandbox (manual CI clock): a failure is recorded, the
environment rolled back to the commit before the failed merge, a highest-priority fix plan
filed, and everything else halted until that plan is done.

Helpers here are shared by the other ``test_failure_*.py`` modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import PipelineState
from promote_tasks.model import State
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.conftest import front_matter

MakeDriver = Callable[..., Driver]
ROLLBACK_TASK = "deploy:rollback"


# -- helpers shared by the failure tests ----------------------------------------------------


def failing(env: str, stage: str, times: int | None = 1, **kwargs: Any) -> Scenario:
    """A sandbox whose ``stage`` fails in ``env`` the first ``times`` times (merge bot on)."""
    return Scenario(merge_bot=True, fail=(FailRule(env, stage, times),), **kwargs)


def drive_until(
    driver: Driver,
    done: Callable[[PipelineState], bool],
    *,
    reviewer: str | None = "rita",
    limit: int = 40,
) -> PipelineState:
    """CI and ``next`` in turns (approving manual tests as ``reviewer``) until ``done``."""
    driver.drive(
        lambda d, rest: done(d.run.decide(rest.snapshot)[0]),
        reviewer=reviewer,
        tick=300,
        limit=limit,
    )
    return driver.state()


def filed(env: str) -> Callable[[PipelineState], bool]:
    """Done when the failure in ``env`` has its fix plan."""
    return lambda state: (
        state.env(env).fix_plan is not None or state.env(env).restores_fix is not None
    )


def rollbacks(api: Api, env: str) -> list[dict[str, Any]]:
    """The tool's rollback deployments of ``env``, oldest first."""
    found = api.get(f"/deployments?environment={env}&task={ROLLBACK_TASK}&per_page=100")
    return sorted(found, key=lambda d: d["id"])


def deployments(api: Api, env: str, sha: str | None = None) -> list[dict[str, Any]]:
    """Every deployment of ``env`` (at ``sha``), oldest first, each with its latest state."""
    query = f"environment={env}&per_page=100" + (f"&sha={sha}" if sha else "")
    found = sorted(api.get(f"/deployments?{query}"), key=lambda d: d["id"])
    for deployment in found:
        statuses = api.get(f"/deployments/{deployment['id']}/statuses?per_page=100")
        deployment["state"] = max(statuses, key=lambda s: s["id"])["state"] if statuses else None
    return found


def fix_plans(driver: Driver) -> list[Any]:
    snapshot = driver.run.snapshot()
    return [p for p in snapshot.plans if p.fix_key]


def dispatches(api: Api) -> list[dict[str, Any]]:
    runs = api.get("/actions/workflows/deploy.yml/runs?event=workflow_dispatch&per_page=100")
    return sorted(runs["workflow_runs"], key=lambda r: r["id"])


def open_other_pull(api: Api, *, base: str = "dev", draft: bool = True) -> dict[str, Any]:
    """An unrelated plan's PR from ``feature/other`` (a draft, so the merge bot leaves it)."""
    api.post("/git/refs", {"ref": "refs/heads/feature/other", "sha": api.head(base)})
    api.commit("feature/other", "Other work\n", {"other.txt": "other\n"})
    return dict(
        api.post(
            "/pulls",
            {"title": "Other work", "head": "feature/other", "base": base, "draft": draft},
        )
    )


def gate(api: Api, sha: str) -> dict[str, Any] | None:
    return api.latest(sha, "promote/gate")


def promote(driver: Driver, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``promote`` console script in the sandbox clone, as a CI job would run it."""
    script = shutil.which("promote", path=str(Path(sys.executable).parent))
    assert script is not None
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))}
    environ |= {k: driver.environ[k] for k in ("GITHUB_API_URL", "GITHUB_REPOSITORY")}
    environ["GITHUB_TOKEN"] = driver.run.environ["GITHUB_TOKEN"] if driver.run.environ else ""
    return subprocess.run(
        [script, *args], cwd=driver.clone, env=environ, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def labels(steps: list[Step]) -> list[str]:
    return [s.label for s in steps if s.action.transition]


# -- the "done when" ------------------------------------------------------------------


@pytest.mark.transition("R3", "R9")
def test_a_failed_test_deploy_is_rolled_back_and_halts_everything(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("test", "deploy"))
    api = driver.api
    before = api.head("test")
    state = drive_until(driver, filed("test"))
    test = state.env("test")
    failed = test.sha
    assert failed is not None
    assert failed != before
    assert api.get(f"/commits/{failed}")["parents"][0]["sha"] == before

    # R3 recorded the failure, then R9 rolled back and (once that deployed) filed the fix plan.
    assert labels(driver.steps)[-3:] == ["R3 test", "R9 test", "R9 test"]
    assert api.latest(failed, "promote/test")["state"] == "failure"

    # One rollback deployment of test, at the commit test pointed to before the failed merge.
    (record,) = rollbacks(api, "test")
    key = f"test@{failed}"
    assert record["sha"] == before
    assert record["payload"] == {
        "promote": {"rollback_of": failed, "plan": fix_plan_id(key), "carries": ["add-greeting"]}
    }
    # ... and the dispatched deploy of that commit succeeded after it.
    (dispatch,) = dispatches(api)
    assert (dispatch["head_branch"], dispatch["conclusion"]) == ("test", "success")
    after = [d for d in deployments(api, "test", before) if d["id"] > record["id"]]
    assert [(d["task"], d["state"]) for d in after] == [("deploy", "success")]
    assert test.rollback is not None
    assert (test.rollback.target, test.rollback.state) == (before, "success")

    # One fix plan, highest priority, keyed by the failure.
    (plan,) = fix_plans(driver)
    assert (plan.id, plan.priority, plan.fix_key, plan.status) == (
        fix_plan_id(key),
        0,
        key,
        "inbox",
    )
    text = api.file(f"plans/inbox/{plan.id}.md", "dev")
    assert text is not None
    assert front_matter(text) == {
        "id": plan.id,
        "title": f"Fix test: plan add-greeting failed at {failed[:7]}",
        "priority": 0,
        "fix_key": key,
        "failed_plans": ["add-greeting"],
    }
    assert text.startswith(f"---\nid: {plan.id}\ntitle: 'Fix test: plan add-greeting failed at ")
    assert f"\npriority: 0\nfix_key: {key}\nfailed_plans: [add-greeting]\n---\n" in text
    promotion = next(
        p for p in api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == ("dev", "test")
    )
    for line in (
        "- Environment: test",
        f"- Failed sha: {failed}",
        f"- Culprit: #{promotion['number']} {promotion['title']} ({promotion['html_url']})",
        "- Failed plans (they travel on with this fix): add-greeting",
        f"- Rollback: to {before} — success (deployment {record['id']}",
    ):
        assert line in text, line
    failing_checks = text.split("## Failing checks\n\n")[1].splitlines()
    assert any(c.startswith("- deployment ") and "failure (http" in c for c in failing_checks)
    assert any(c.startswith("- Deploy run ") and "failure (http" in c for c in failing_checks)

    # Halted: status --json says so and names the fix plan.
    other = open_other_pull(api)
    status = promote(driver, "status", "--json")
    assert (status.returncode, status.stderr) == (0, "")
    data = json.loads(status.stdout)
    assert (data["halted"], data["fix_plan"]) == (True, plan.id)
    assert [e["state"] for e in data["environments"]] == ["promoted", "failed", "complete"]

    # The next `next` writes promote/gate = failure on the other plan's PR into dev.
    rest = driver.next()
    assert rest.action.transition is None
    assert rest.did == (
        f"gate of #{other['number']}: failure (halted: a failure is unresolved; only fix plan "
        f"{plan.id} may merge)",
    )
    assert gate(api, other["head"]["sha"])["state"] == "failure"
    again = driver.next()
    assert not again.acted
    assert not again.writes

    # The failed sha itself stays failed: it is never promoted to main.
    assert driver.state().env("test").state is State.FAILED
    assert not [p for p in api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == ("test", "main")]


@pytest.mark.parametrize("store", ["issues", "files"])
def test_the_halt_lifts_when_the_fix_plan_is_done(make_driver: MakeDriver, store: str) -> None:
    driver = make_driver(failing("dev", "deploy"), config(extra=f'plan_store = "{store}"\n'))
    api = driver.api
    state = drive_until(driver, filed("dev"))
    plan = state.env("dev").fix_plan
    assert plan is not None
    other = open_other_pull(api)
    driver.next()
    assert gate(api, other["head"]["sha"])["state"] == "failure"
    github = driver.run.github
    assert github.run(driver.run.plan_store.complete(driver.run.settings, github, plan)) == (plan,)
    lifted = driver.next()
    assert f"gate of #{other['number']}: success (ready to merge (plan other))" in lifted.did
    assert gate(api, other["head"]["sha"])["state"] == "success"
    state = driver.state()
    assert (state.halted, state.fix_plan) == (False, None)
    # The failed sha itself stays failed: a later run never promotes it.
    assert state.env("dev").state is State.FAILED
    assert driver.next().action.transition is None
    assert not [p for p in api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == ("dev", "test")]
