"""The invariants every scenario ends with hold on the seeded repository, and each one fails
when someone breaks what it guards: a check that cannot fail would prove nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import Scenario
from tests.scenarios.conftest import GREETING
from tests.scenarios.conftest import Scene
from tests.scenarios.conftest import plan_file

MakeScene = Callable[..., Scene]


def test_the_invariants_hold_on_the_seed_and_catch_what_they_guard(make_scene: MakeScene) -> None:
    scene = make_scene(Scenario())
    scene.auto_merge = False
    scene.rest()
    scene.check_invariants(done=[])
    team, api = scene.team, scene.api

    # Anything left for the tool to do: here, the gate of a new PR.
    team.push_branch("feature/other", "dev", {"other.txt": "other\n"}, "Other work\n")
    team.open_pull("feature/other", "dev", "Other work")
    with pytest.raises(AssertionError, match="an idle next wrote"):
        scene.assert_idle()
    scene.rest()

    # A status written twice in a row, the same both times.
    dev = scene.git.head("dev")
    for _ in range(2):
        team.post_status(dev, "ci/lint", "success", "clean")
    with pytest.raises(AssertionError, match=dev):
        scene.assert_no_duplicates(scene.every_status())

    # Code validated in test that was never validated in dev (and then deployed there).
    pushed = team.push_direct("test", {"banner.txt": "sale\n"}, "Announce the sale\n")
    team.post_status(pushed, "promote/test", "success", "validated in test")
    with pytest.raises(AssertionError, match="was validated in test, but no commit"):
        scene.assert_validated_before(scene.every_status())
    scene.sandbox.settle()
    with pytest.raises(AssertionError, match=r"banner\.txt reached test"):
        scene.assert_never_reached("test", "banner.txt", "sale\n")

    # A plan's code in production while its file is still in doing/.
    team.push_direct("main", {GREETING.path: GREETING.text}, "Greet shoppers\n")
    with pytest.raises(
        AssertionError, match="add-greeting's code is in main but its file is in doing"
    ):
        scene.assert_plans_follow_the_code()

    # A completion the scenario did not expect, then one that is no bookkeeping at all.
    moved = {f"plans/done/{GREETING.plan}.md": plan_file(GREETING.plan, "Greet", 2)}
    api.commit(
        "dev",
        f"plans: complete {GREETING.plan}\n",
        {**moved, f"plans/doing/{GREETING.plan}.md": None},
    )
    with pytest.raises(AssertionError, match="plans completed"):
        scene.assert_completed_once([], [])
    scene.assert_completed_once([GREETING.plan], [])
    api.commit("dev", f"plans: complete {GREETING.plan}\n", {"app.txt": "changed\n"})
    with pytest.raises(AssertionError, match="is no bookkeeping"):
        scene.assert_completed_once([GREETING.plan], [])
