"""Two plans at once, as teams have them: both PRs open together, or the second merged while the
first is in flight; with ``promote/gate`` a required check (the sandbox then refuses a merge on
a red gate, as GitHub does) and without it (nothing stops a person merging past a red gate).

With the gate one plan is let into dev at a time (the fix plan first, then the lowest
``priority``, then the oldest PR), and every other PR's gate names the chosen plan. Without it,
whatever lands together travels together: the instance carries every plan, its promotion PRs
have one ``Promote-Plan:`` line per plan, and R8 completes each once."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from tests.scenarios.conftest import FOOTER
from tests.scenarios.conftest import GATE
from tests.scenarios.conftest import GREETING
from tests.scenarios.conftest import METHODS
from tests.scenarios.conftest import PLAN_LINE
from tests.scenarios.conftest import Scene
from tests.scenarios.conftest import front_matter

MakeScene = Callable[..., Scene]
FOOTER_TITLE = "Add a footer"


def gate_of(scene: Scene, pull: dict[str, Any]) -> dict[str, str]:
    number = pull["number"]
    head = scene.api.get(f"/pulls/{number}")["head"]["sha"]
    found = scene.api.latest(head, GATE)
    assert found is not None, f"#{number} has no {GATE}"
    return {"state": found["state"], "description": found["description"] or ""}


@pytest.mark.parametrize(
    ("footer_priority", "first"),
    [(1, FOOTER.plan), (2, GREETING.plan)],
    ids=["lower-priority-first", "older-pr-first"],
)
def test_two_prs_open_at_once_with_the_gate_go_one_after_the_other(
    make_scene: MakeScene, footer_priority: int, first: str
) -> None:
    scene = make_scene(Scenario(required_checks=(GATE,)))
    pulls = {
        GREETING.plan: scene.api.get("/pulls/1"),
        FOOTER.plan: scene.team.start_plan(FOOTER, FOOTER_TITLE, footer_priority),
    }
    scene.codes[FOOTER.plan] = FOOTER
    (second,) = set(pulls) - {first}
    scene.rest()  # the tool writes the gates

    assert gate_of(scene, pulls[first])["state"] == "success"
    held = gate_of(scene, pulls[second])
    assert held["state"] == "failure", held
    assert first in held["description"], held
    # Both developers press merge: GitHub takes the chosen plan and refuses the other.
    assert scene.team.merge(pulls[first]["number"])[0] == 200
    refused, answer = scene.team.merge(pulls[second]["number"])
    assert refused == 405, answer

    scene.drive(scene.settled(done=list(pulls)), "both plans complete")
    assert scene.completed_at(first) < scene.completed_at(second)
    merged_second = scene.api.get(f"/pulls/{pulls[second]['number']}")["merge_commit_sha"]
    assert scene.git.text(merged_second, f"plans/done/{first}.md"), (
        "merged before the first was done"
    )
    scene.check_invariants(done=list(pulls))


def test_two_prs_merged_at_once_without_the_gate_travel_together(make_scene: MakeScene) -> None:
    scene = make_scene(Scenario())
    footer = scene.team.start_plan(FOOTER, FOOTER_TITLE)
    scene.codes[FOOTER.plan] = FOOTER
    both = {GREETING.plan, FOOTER.plan}
    # Nobody waits for a gate: both developers merge at once.
    assert scene.team.merge(1)[0] == 200
    assert scene.team.merge(footer["number"])[0] == 200

    scene.auto_merge = False
    scene.drive(scene.pull_open("dev", "test"), "the promotion PR dev → test")
    done = scene.console("status", "--json")
    assert (done.returncode, done.stderr) == (0, "")
    dev = next(e for e in json.loads(done.stdout)["environments"] if e["name"] == "dev")
    assert set(dev.get("plans") or ()) == both, dev
    assert dev["plan"] in both
    (promotion,) = scene.promotions("dev", "test")
    assert set(PLAN_LINE.findall(promotion["body"])) == both

    scene.auto_merge = True
    scene.drive(scene.settled(done=both), "both plans complete")
    (onward,) = scene.promotions("test", "main")
    assert set(PLAN_LINE.findall(onward["body"])) == both
    scene.check_invariants(done=both)


@pytest.mark.parametrize(
    ("required", "method"),
    [(True, "merge"), *((False, method) for method in METHODS)],
    ids=["gate-required", *(f"no-gate-{method}" for method in METHODS)],
)
def test_a_plan_merged_behind_one_in_flight(
    make_scene: MakeScene, required: bool, method: str
) -> None:
    scene = make_scene(Scenario(required_checks=(GATE,) if required else (), merge_method=method))
    scene.drive(scene.awaiting_review("test"), f"{GREETING.plan}'s manual test in test")
    in_flight = scene.status().get("in_flight")
    assert {"plan": GREETING.plan, "environment": "test"} in (in_flight or []), in_flight

    footer = scene.team.start_plan(FOOTER, FOOTER_TITLE)
    scene.codes[FOOTER.plan] = FOOTER
    scene.rest()
    held = gate_of(scene, footer)
    assert held["state"] == "failure", held
    assert GREETING.plan in held["description"], held
    status, answer = scene.team.merge(footer["number"])
    # With the gate required GitHub refuses; without it the merge goes through, past red.
    assert status == (405 if required else 200), answer

    scene.drive(scene.settled(done=[GREETING.plan, FOOTER.plan]), "both plans complete")
    assert scene.completed_at(GREETING.plan) < scene.completed_at(FOOTER.plan)
    assert scene.status().get("in_flight") == []
    # Each plan went dev → test once: R8's bookkeeping on dev after a squash or rebase of the
    # promotion is no new instance to promote (it was carried, or travels with the next one).
    assert len(scene.promotions("dev", "test")) == 2, scene.promotions("dev", "test")
    scene.check_invariants(done=[GREETING.plan, FOOTER.plan])


@pytest.mark.parametrize("method", METHODS)
def test_a_pr_opened_before_the_plan_in_flight_completes_still_merges_after(
    make_scene: MakeScene, method: str
) -> None:
    scene = make_scene(Scenario(required_checks=(GATE,), merge_method=method))
    scene.drive(scene.pull_open("test", "main"), f"{GREETING.plan}'s promotion to main")
    footer = scene.team.start_plan(FOOTER, FOOTER_TITLE)  # branched off dev before R8
    scene.codes[FOOTER.plan] = FOOTER

    scene.drive(lambda: scene.plan_folder(GREETING.plan) == "done", f"{GREETING.plan} complete")
    pull = scene.api.get(f"/pulls/{footer['number']}")
    assert pull["merged_at"] is None, "merged while the other plan was in flight"
    for _ in range(3):  # GitHub computes mergeability on the first read
        pull = scene.api.get(f"/pulls/{footer['number']}")
        if pull["mergeable"] is not None:
            break
    assert pull["mergeable"] is True, pull["mergeable_state"]

    scene.drive(scene.settled(done=[GREETING.plan, FOOTER.plan]), "both plans complete")
    assert scene.api.get(f"/pulls/{footer['number']}")["merged_at"] is not None
    scene.check_invariants(done=[GREETING.plan, FOOTER.plan])


def test_two_plans_that_travel_together_fail_together_and_complete_with_the_fix(
    make_scene: MakeScene,
) -> None:
    scene = make_scene(Scenario(merge_method="squash", fail=(FailRule("test", "deploy", times=1),)))
    footer = scene.team.start_plan(FOOTER, FOOTER_TITLE)
    scene.codes[FOOTER.plan] = FOOTER
    assert scene.team.merge(1)[0] == 200
    assert scene.team.merge(footer["number"])[0] == 200  # past the red gate: no ruleset

    both = [GREETING.plan, FOOTER.plan]
    scene.drive(scene.settled(done=both, fixes=1), "both plans and the fix plan complete")
    (fix,) = scene.fixes
    for plan in both:  # each failed plan says it completed with the fix that carried it
        done = front_matter(scene.git.text("dev", f"plans/done/{plan}.md") or "")
        assert done.get("completed_with") == fix, (plan, done)
    for code in (GREETING, FOOTER, scene.codes[fix]):
        assert scene.git.text("main", code.path) == code.text, code.plan
    assert scene.status().get("in_flight") == []
    scene.check_invariants(done=[*both, fix])
