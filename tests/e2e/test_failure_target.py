"""The rollback target for each merge method: the newest known-good commit before the failed
sha, else the commit before the failed PR landed (from the PR's facts). Computed with git in
the checkout the tool runs in (fetched from origin first, deepened when shallow), and from the
API when there is no usable clone; both must give the same answer."""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from promote_sandbox import Scenario
from promote_tasks import git
from promote_tasks import targets as failures
from promote_tasks.errors import PromoteError
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config

MakeDriver = Callable[..., Driver]


def elsewhere(driver: Driver, root: Path) -> Driver:
    """The same driver, but the tool runs in ``root`` instead of the sandbox clone."""
    run = driver.run
    driver.run = dataclasses.replace(run, settings=dataclasses.replace(run.settings, root=root))
    return driver


def add_commit(api: Api, branch: str, message: str, files: dict[str, str]) -> str:
    """A commit on ``branch`` authored an hour ago (as work is, before it is merged: a squash
    authored in the same second by the same person would look like a rebase)."""
    parent = api.head(branch)
    tree = api.get(f"/git/commits/{parent}")["tree"]["sha"]
    entries = [
        {"path": p, "mode": "100644", "type": "blob", "content": t} for p, t in files.items()
    ]
    new_tree = api.post("/git/trees", {"base_tree": tree, "tree": entries})["sha"]
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    author = {
        "name": "Alice Author",
        "email": "alice@example.com",
        "date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    sha = api.post(
        "/git/commits",
        {"message": message, "tree": new_tree, "parents": [parent], "author": author},
    )["sha"]
    status, data = api.call("PATCH", f"{api.repo_path}/git/refs/heads/{branch}", {"sha": sha})
    assert status == 200, data
    return str(sha)


def target(driver: Driver, env: str = "dev") -> failures.Target:
    snapshot = driver.run.snapshot()
    head = snapshot.env(env).head
    assert head is not None
    return failures.rollback_target(driver.run, snapshot, env, head)


def shallow_clone(driver: Driver, into: Path) -> Path:
    bare = driver.sandbox.bare_path
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", "--branch", "main", f"file://{bare}", str(into)],
        check=True, capture_output=True, env=os.environ,
    )  # fmt: skip
    (into / "promote.toml").write_text((driver.clone / "promote.toml").read_text())
    return into


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_the_target_is_the_same_from_git_and_from_the_api(
    make_driver: MakeDriver, method: str, tmp_path: Path
) -> None:
    driver = make_driver(Scenario(merge_bot=True, merge_method=method), config())
    api = driver.api
    before = api.head("dev")
    # The feature PR carries two commits, so a rebase lands two and a squash one.
    add_commit(api, "feature/add-greeting", "Greet by name\n", {"greeting.txt": "Hi {name}\n"})
    driver.sandbox.settle()
    failed = api.head("dev")
    landed = 2 if method == "rebase" else 1
    chain = [failed]
    for _ in range(landed):
        chain.append(api.get(f"/commits/{chain[-1]}")["parents"][0]["sha"])
    assert chain[-1] == before, f"{method}: the PR landed as {landed} commit(s)"

    # Known-good: the seed's commit, validated in dev. The clone is fetched first.
    clone = driver.clone
    assert not git.has_commit(clone, failed)
    assert target(driver) == failures.Target(before, "newest known-good")
    assert git.has_commit(clone, failed)
    # A shallow checkout (Actions' default) is deepened to find it.
    shallow = shallow_clone(driver, tmp_path / "shallow")
    asked = ["git", "rev-parse", "--is-shallow-repository"]
    assert subprocess.run(asked, cwd=shallow, capture_output=True, text=True).stdout == "true\n"
    assert target(elsewhere(driver, shallow)).sha == before
    # No usable clone: the API answers the same.
    nowhere = tmp_path / "not-a-clone"
    nowhere.mkdir()
    found = target(elsewhere(driver, nowhere))
    assert found == failures.Target(before, "newest known-good (from the API: no usable clone)")

    # A person marks the seed's commit failed in dev: no known-good commit is left, and the
    # target comes from the PR's facts (merge method, commit count, head) instead.
    api.post(f"/statuses/{before}", {"state": "failure", "context": "promote/dev"})
    elsewhere(driver, clone)
    assert failures.known_good(driver.run, "dev", failed) == ()
    assert target(driver) == failures.Target(before, "before #1 landed (no known-good commit)")
    assert target(elsewhere(driver, nowhere)) == failures.Target(
        before, "before #1 landed (no known-good commit) (from the API: no usable clone)"
    )


def test_a_head_no_pr_produced_and_nothing_known_good_has_no_target(
    make_driver: MakeDriver,
) -> None:
    driver = make_driver(Scenario(merge_bot=False), config())
    api = driver.api
    before = api.head("dev")
    api.post(f"/statuses/{before}", {"state": "failure", "context": "promote/dev"})
    pushed = api.commit("dev", "A direct push\n", {"pushed.txt": "oops\n"})
    with pytest.raises(PromoteError) as caught:
        target(driver)
    assert str(caught.value) == (
        f"no rollback target for dev at {pushed[:7]}: no known-good commit before it and no "
        "merged pull request produced it; roll back by hand with "
        "`promote rollback --env dev --to SHA`"
    )


def test_known_good_is_success_and_never_failure(make_driver: MakeDriver) -> None:
    driver = make_driver(Scenario(merge_bot=True), config())
    api = driver.api
    seed = api.head("test")
    driver.sandbox.settle()
    driver.run.snapshot()
    assert failures.known_good(driver.run, "test", "0" * 40) == (seed,)
    # The failed sha itself never counts, even with a success on it.
    assert failures.known_good(driver.run, "test", seed) == ()
    api.post(f"/statuses/{seed}", {"state": "error", "context": "promote/test"})
    api.post(f"/statuses/{seed}", {"state": "success", "context": "promote/test"})
    assert failures.known_good(driver.run, "test", "0" * 40) == ()


def test_known_good_off_the_first_parent_chain_falls_back_to_the_pr(
    make_driver: MakeDriver, tmp_path: Path
) -> None:
    driver = make_driver(Scenario(merge_bot=True), config())
    api = driver.api
    before = api.head("dev")
    driver.sandbox.settle()
    failed = api.head("dev")
    feature = api.get(f"/commits/{failed}")["parents"][1]["sha"]
    # The feature's own commit was once deployed and validated in dev (a second parent of the
    # merge, so off the first-parent chain), and the seed's commit has since been marked failed.
    api.post(
        "/deployments",
        {"ref": feature, "environment": "dev", "auto_merge": False, "required_contexts": []},
    )
    api.post(f"/statuses/{feature}", {"state": "success", "context": "promote/dev"})
    api.post(f"/statuses/{before}", {"state": "failure", "context": "promote/dev"})
    assert failures.known_good(driver.run, "dev", failed) == (feature,)
    assert target(driver) == failures.Target(before, "before #1 landed (no known-good commit)")
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    assert target(elsewhere(driver, nowhere)).sha == before
