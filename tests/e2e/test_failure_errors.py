"""What the failure path refuses, each in one line naming what and where: a branch moved or
gone under a rollback, a revert PR closed by hand, a second rollback target for a failure
already rolled back, and API answers whose topology contradicts the PR's facts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Scenario
from promote_tasks import targets as failures
from promote_tasks.default_plugins.rollback import Redeploy
from promote_tasks.default_plugins.rollback import Reset
from promote_tasks.default_plugins.rollback import Revert
from promote_tasks.errors import GitError
from promote_tasks.errors import PromoteError
from promote_tasks.graph import pre_merge_commit
from promote_tasks.ledger import fix_plan_id
from promote_tasks.ledger import revert_branch
from promote_tasks.registry import RollbackRun
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.test_failure_strategies import pipeline
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]


@pytest.fixture
def merged(make_driver: MakeDriver) -> Driver:
    """The feature merged into dev (a merge commit) and deployed; revert configured for dev."""
    driver = make_driver(Scenario(merge_bot=True), pipeline("redeploy", dev_rollback="revert"))
    driver.sandbox.settle()
    return driver


def rollback_run(driver: Driver, env: str, target: str, failed: str | None = None) -> RollbackRun:
    run = driver.run
    failed = failed or driver.api.head(env)
    return RollbackRun(
        environment=run.pipeline.get(env),
        failed_sha=failed,
        target=target,
        plan=fix_plan_id(f"{env}@{failed}"),
        settings=run.settings,
        github=run.github,
    )


def parents(api: Api, sha: str) -> list[str]:
    return [p["sha"] for p in api.get(f"/commits/{sha}")["parents"]]


def test_a_branch_moved_under_a_rollback_is_refused(merged: Driver) -> None:
    api = merged.api
    failed = api.head("dev")
    before, feature = parents(api, failed)
    # Someone forces dev elsewhere (off the failed sha) before the rollback runs.
    status, _ = api.call(
        "PATCH", f"{api.repo_path}/git/refs/heads/dev", {"sha": feature, "force": True}
    )
    assert status == 200
    writes = api.writes()
    for strategy in (Revert(), Reset()):
        with pytest.raises(PromoteError) as caught:
            strategy.rollback(rollback_run(merged, "dev", before, failed))
        assert str(caught.value) == (
            f"cannot roll back dev: dev is at {feature[:7]}, which does not hold the failed "
            f"{failed[:7]} (moved by hand?)"
        )
    assert api.writes() == writes


def test_a_branch_gone_under_a_rollback_is_refused(merged: Driver) -> None:
    api = merged.api
    failed = api.head("dev")
    before = parents(api, failed)[0]
    for branch in ("test", "dev"):
        status, _ = api.call("DELETE", f"{api.repo_path}/git/refs/heads/{branch}")
        assert status == 204
        if branch == "test":
            with pytest.raises(
                PromoteError, match=r"^cannot roll back test: branch test does not exist$"
            ):
                failures.request_rollback(merged.run, "test", None, None)
    with pytest.raises(PromoteError, match=r"^cannot roll back dev: branch dev is gone$"):
        Revert().rollback(rollback_run(merged, "dev", before, failed))


def test_a_revert_pr_closed_by_hand_is_not_reopened(merged: Driver) -> None:
    api = merged.api
    failed = api.head("dev")
    before = parents(api, failed)[0]
    branch = revert_branch("dev", failed)
    api.post("/git/refs", {"ref": f"refs/heads/{branch}", "sha": failed})
    api.commit(branch, "Roll back dev\n", {"app.txt": "shop v1\n"})
    pull = api.post("/pulls", {"title": "Roll back", "head": branch, "base": "dev"})
    status, _ = api.call("PATCH", f"{api.repo_path}/pulls/{pull['number']}", {"state": "closed"})
    assert status == 200
    with pytest.raises(PromoteError) as caught:
        Revert().rollback(rollback_run(merged, "dev", before, failed))
    assert str(caught.value) == (
        f"revert PR #{pull['number']} for dev@{failed} was closed without merging: reopen and "
        "merge it, or roll dev back by hand"
    )


def test_a_failure_already_rolled_back_elsewhere_is_not_rolled_back_again(merged: Driver) -> None:
    api = merged.api
    failed = api.head("dev")
    before, feature = parents(api, failed)
    # Someone rolled dev back to the feature's own commit (an ancestor, not the known-good one).
    github = merged.run.github
    github.run(github.rollback_deployment("dev", feature, failed, fix_plan_id(f"dev@{failed}")))
    writes = api.writes()
    with pytest.raises(PromoteError) as caught:
        failures.request_rollback(merged.run, "dev", None, None)
    assert str(caught.value).startswith(
        f"dev at {failed[:7]} was already rolled back to {feature[:7]} (deployment "
    )
    assert str(caught.value).endswith(f"), not {before[:7]}")
    with pytest.raises(PromoteError, match=f"already rolled back to {feature[:7]}"):
        Redeploy().rollback(rollback_run(merged, "dev", before, failed))
    # Asking for the same target finds it, and only dispatches its deploy.
    request, _ = failures.request_rollback(merged.run, "dev", feature, None)
    assert request.target.sha == feature
    said = Redeploy().rollback(rollback_run(merged, "dev", feature, failed))
    assert said.startswith("found rollback deployment ")
    assert len(rollbacks(api, "dev")) == 1
    assert api.writes() - writes == {
        "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches": 1
    }


def api_pre_merge(driver: Driver, merged: str, commits: int, head: str) -> str:
    graph = failures.ApiGraph(driver.run.github)
    return pre_merge_commit(graph, merged, pr_commits=commits, pr_head=head)


def commit_on(
    api: Api, parents_: list[str], message: str, author: dict[str, Any] | None = None
) -> str:
    tree = api.get(f"/git/commits/{parents_[0]}")["tree"]["sha"]
    body: dict[str, Any] = {"message": message, "tree": tree, "parents": parents_}
    if author:
        body["author"] = author
    return str(api.post("/git/commits", body)["sha"])


def test_pre_merge_from_the_api_refuses_what_topology_contradicts(merged: Driver) -> None:
    api = merged.api
    failed = api.head("dev")
    root, feature = parents(api, failed)
    with pytest.raises(
        GitError,
        match=f"^{root[:7]} in the repository on GitHub is a root commit: nothing came before it$",
    ):
        api_pre_merge(merged, root, 1, root)
    # A "rebase of two commits" whose first parent is a merge commit is no rebase merge.
    ada = {"name": "Ada", "email": "ada@example.com", "date": "2020-01-01T00:00:00Z"}
    on_merge = commit_on(api, [failed], "Rebased\n", ada)
    with pytest.raises(
        GitError,
        match=f"^{on_merge[:7]}~1 in the repository on GitHub is a merge commit, so {on_merge[:7]} is not a rebase merge of 2 commits$",
    ):
        api_pre_merge(merged, on_merge, 2, on_merge)
    # The same shapes that git.pre_merge_commit answers: merge, squash, rebase.
    assert api_pre_merge(merged, failed, 1, feature) == root
    squash = commit_on(api, [root], "Squashed (#1)\n")
    assert api_pre_merge(merged, squash, 3, feature) == root
    one = commit_on(api, [root], "First\n", ada)
    two = commit_on(api, [one], "Second\n", ada)
    assert api_pre_merge(merged, two, 2, two) == root


def test_a_deploy_failure_in_dev_needs_no_clone_at_all(
    make_driver: MakeDriver, tmp_path: Any
) -> None:
    """With no usable clone anywhere, the whole R9 runs from the API."""
    import dataclasses

    from tests.e2e.test_failures import drive_until
    from tests.e2e.test_failures import filed

    driver = make_driver(failing("dev", "deploy"), config())
    run = driver.run
    driver.run = dataclasses.replace(run, settings=dataclasses.replace(run.settings, root=tmp_path))
    before = driver.api.head("dev")
    state = drive_until(driver, filed("dev"))
    (record,) = rollbacks(driver.api, "dev")
    assert record["sha"] == before
    assert state.env("dev").fix_plan is not None
    rolled = next(d for s in driver.steps for d in s.did if d.startswith("rolled back dev"))
    assert "(newest known-good (from the API: no usable clone))" in rolled
