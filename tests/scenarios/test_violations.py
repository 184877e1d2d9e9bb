"""Code that skipped an environment: a direct ``git push origin HEAD:test``, a PR
``feature/x → main`` merged past a red gate, and a direct push to dev whose message carries the
bookkeeping marker but whose commit changes the app. Each is a violation, reported (naming the
commit) until someone resolves it with ``promote rollback --env <env>``: never validated, never
promoted, ``promote next`` never fails because of it. The rollback reverts the branch to its last
validated commit through a PR the tool merges, files no fix plan and halts nothing; then the
pipeline goes on, and the offending change never reaches the next environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Scenario
from tests.scenarios.conftest import GATE
from tests.scenarios.conftest import GREETING
from tests.scenarios.conftest import Code
from tests.scenarios.conftest import Scene

MakeScene = Callable[..., Scene]
PLAN = GREETING.plan
SALE = Code("sale", "banner.txt", "50% off everything today!\n")  # a hotfix, no plan
PRICE = Code("price", "price.txt", "9.99\n")
GATES = pytest.mark.parametrize("required", [False, True], ids=["no-gate", "gate-required"])


NEXT = {"dev": "test", "test": "main"}


def assert_reported(scene: Scene, env: str, sha: str) -> None:
    """The violation names the commit, the commit is never validated there, and nothing of
    ``env`` was promoted onward."""
    found = scene.env_status(env)
    assert sha[:7] in (found.get("violation") or ""), found
    verdict = scene.api.latest(sha, f"promote/{env}")
    assert verdict is None or verdict["state"] != "success", verdict
    if env in NEXT:
        assert all(p["merged_at"] is None for p in scene.promotions(env, NEXT[env]))


def promote_by_hand(scene: Scene, env: str, sha: str) -> dict[str, Any]:
    """Someone opens the promotion PR of the pushed commit themselves: its gate is red and
    names the commit."""
    pull = scene.team.open_pull(env, NEXT[env], f"Ship {env} to {NEXT[env]}")
    scene.rest()
    gate = scene.api.latest(pull["head"]["sha"], GATE) or {}
    assert gate.get("state") == "failure", gate
    assert sha[:7] in (gate.get("description") or ""), gate
    return pull


def revert_merged(scene: Scene, env: str) -> Callable[[], bool]:
    def check() -> bool:
        reverts = [
            p
            for p in scene.api.pulls()
            if p["base"]["ref"] == env and p["head"]["ref"].startswith("promote/")
        ]
        return any(p["merged_at"] for p in reverts) and not scene.env_status(env).get("violation")

    return check


def resolve(scene: Scene, env: str, before: str) -> None:
    """``promote rollback --env <env>``: the tool merges a revert to the last validated
    commit, the violation is gone, and no fix plan is filed and nothing halts."""
    code, out, err = scene.cli("rollback", "--env", env)
    assert (code, err) == (0, ""), out + err
    scene.drive(revert_merged(scene, env), f"the revert of {env}, and the violation gone")
    assert scene.fix_files() == [], "a violation files no fix plan"
    status = scene.status()
    assert (status["halted"], status["fix_plan"]) == (False, None), status
    reverts = [p for p in scene.api.pulls() if p["head"]["ref"].startswith("promote/")]
    assert len(reverts) == 1, [p["head"]["ref"] for p in reverts]
    assert scene.git.outside_plans(scene.git.head(env)) == scene.git.outside_plans(before)


def close(scene: Scene, pull: dict[str, Any]) -> None:
    path = f"{scene.api.repo_path}/pulls/{pull['number']}"
    assert scene.api.call("PATCH", path, {"state": "closed"})[0] == 200


@GATES
def test_a_direct_push_to_test_is_a_violation_until_rolled_back(
    make_scene: MakeScene, required: bool
) -> None:
    scene = make_scene(Scenario(required_checks=(GATE,) if required else ()))
    scene.auto_merge = False  # the plan's PR waits; the push comes first
    before = scene.git.head("test")
    pushed = scene.team.push_direct("test", {SALE.path: SALE.text}, "Announce the sale\n")
    scene.rest()
    if not required:  # as a CI job would run them: the console script
        done = scene.console("next")
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        status = scene.console("status", "--json")
        assert status.returncode == 0, status.stderr
        test = next(e for e in json.loads(status.stdout)["environments"] if e["name"] == "test")
        assert pushed[:7] in (test.get("violation") or ""), test
    assert_reported(scene, "test", pushed)
    by_hand = promote_by_hand(scene, "test", pushed)
    scene.clock.tick()
    scene.rest()
    assert_reported(scene, "test", pushed)  # still, until resolved

    resolve(scene, "test", before)
    close(scene, by_hand)  # its author gives up on it
    scene.auto_merge = True
    scene.drive(scene.settled(done=[PLAN]), f"{PLAN} complete after the rollback")
    assert scene.git.text("test", SALE.path) is None
    scene.assert_never_reached("main", SALE.path, SALE.text)
    scene.check_invariants(done=[PLAN])


@GATES
def test_a_skip_merge_into_main_is_a_violation_until_rolled_back(
    make_scene: MakeScene, required: bool
) -> None:
    scene = make_scene(Scenario(required_checks=(GATE,) if required else ()))
    scene.auto_merge = False
    before = scene.git.head("main")
    scene.team.push_branch("feature/x", "main", {SALE.path: SALE.text}, "Announce the sale\n")
    pull = scene.team.open_pull("feature/x", "main", "Announce the sale")
    scene.rest()
    gate = scene.api.latest(pull["head"]["sha"], GATE)
    assert (gate or {}).get("state") == "failure", gate
    if required:
        # GitHub refuses a red required check; a person with write access overrides it.
        assert scene.team.merge(pull["number"])[0] == 405
        scene.team.post_status(pull["head"]["sha"], GATE, "success", "merging anyway")
    status, merged = scene.team.merge(pull["number"])
    assert status == 200, merged
    scene.rest()
    assert_reported(scene, "main", merged["sha"])

    resolve(scene, "main", before)
    scene.auto_merge = True
    scene.drive(scene.settled(done=[PLAN]), f"{PLAN} complete after the rollback")
    assert scene.git.text("main", SALE.path) is None
    scene.check_invariants(done=[PLAN])


def test_a_direct_push_carrying_the_bookkeeping_marker_is_still_a_direct_push(
    make_scene: MakeScene,
) -> None:
    scene = make_scene(Scenario())
    scene.auto_merge = False
    before = scene.git.head("dev")
    message = "Lower the price\n\nPromote-Bookkeeping: true\n"  # anyone can type a trailer
    pushed = scene.team.push_direct("dev", {PRICE.path: PRICE.text}, message)
    scene.rest()
    assert_reported(scene, "dev", pushed)
    by_hand = promote_by_hand(scene, "dev", pushed)

    resolve(scene, "dev", before)
    close(scene, by_hand)
    scene.auto_merge = True
    scene.drive(scene.settled(done=[PLAN]), f"{PLAN} complete after the rollback")
    for env in ("dev", "test", "main"):
        assert scene.git.text(env, PRICE.path) is None, env
    scene.assert_never_reached("test", PRICE.path, PRICE.text)
    scene.assert_never_reached("main", PRICE.path, PRICE.text)
    scene.check_invariants(done=[PLAN])
