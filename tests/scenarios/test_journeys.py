"""One plan from its merge into dev to production, under each merge method: the happy path, and
each kind of failure on the way (a deploy that fails or hangs past its timeout, smoke tests,
the health check, the reviewer's rejection, the production monitor). After a failure the tool
rolls back and files a fix plan, a developer fixes it on ``feature/<fix-plan-id>``, and the fix
travels dev → test → main carrying the failed plan's code with it: both plans end complete."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.scenarios.conftest import GREETING
from tests.scenarios.conftest import METHODS
from tests.scenarios.conftest import PLAN_LINE
from tests.scenarios.conftest import Scene
from tests.scenarios.conftest import front_matter

MakeScene = Callable[..., Scene]
PLAN = GREETING.plan


@dataclass(frozen=True)
class Failure:
    """Where a failure strikes, and how the sandbox produces it."""

    env: str
    stage: str
    hang: bool = False

    def scenario(self, method: str) -> Scenario:
        rule = (FailRule(self.env, self.stage, times=1),)
        if self.hang:
            return Scenario(hang=rule, merge_method=method)
        return Scenario(fail=rule, merge_method=method)

    def settings(self) -> str:
        # A deploy that never ends fails after a minute here (the default is half an hour).
        return config(extra="deploy_timeout_seconds = 60\n" if self.hang else "")


FAILURES = {
    "deploy-fails": Failure("test", "deploy"),
    "smoke-fails": Failure("dev", "smoke"),
    "health-fails": Failure("main", "health"),
    "reviewer-rejects": Failure("test", "manual"),
    "monitor-fails": Failure("main", "monitor"),
    "deploy-hangs": Failure("dev", "deploy", hang=True),
}


@pytest.mark.parametrize("method", METHODS)
def test_a_plan_reaches_production(make_scene: MakeScene, method: str) -> None:
    scene = make_scene(Scenario(merge_method=method))
    # With merge commits the reviewer types `promote approve` (the console script) herself.
    scene.console_reviews = method == "merge"
    scene.drive(scene.settled(done=[PLAN]), f"{PLAN} complete")

    assert scene.git.text("main", GREETING.path) == GREETING.text
    for head, base in (("dev", "test"), ("test", "main")):
        (pull,) = scene.promotions(head, base)
        assert pull["merged_at"] is not None
        assert PLAN_LINE.findall(pull["body"]) == [PLAN]
    assert scene.fix_files() == []
    scene.check_invariants(done=[PLAN])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", FAILURES)
def test_a_failure_is_fixed_and_the_failed_plan_completes_with_its_fix(
    make_scene: MakeScene, kind: str, method: str
) -> None:
    failure = FAILURES[kind]
    scene = make_scene(failure.scenario(method), failure.settings())
    scene.drive(scene.settled(done=[PLAN], fixes=1), f"{PLAN} and its fix plan complete")

    (fix,) = scene.fixes
    fix_text = scene.git.text("dev", f"plans/done/{fix}.md") or ""
    failed_at = front_matter(fix_text)["fix_key"]
    assert failed_at.startswith(f"{failure.env}@"), (
        f"the failure was {failed_at}, not in {failure.env}"
    )
    if failure.hang:
        evidence = [s["description"] or "" for s in scene.api.statuses(failed_at.partition("@")[2])]
        assert any("deploy timed out after 60 s" in d for d in [*evidence, fix_text]), evidence
    # The failed plan's code travelled with the fix: it is complete, and says with what.
    greeting = front_matter(scene.git.text("dev", f"plans/done/{PLAN}.md") or "")
    assert greeting.get("completed_with") == fix
    for code in (GREETING, scene.codes[fix]):
        assert scene.git.text("main", code.path) == code.text, code.plan
    scene.check_invariants(done=[PLAN, fix])


def test_production_is_promoted_until_its_plans_are_recorded_done(make_scene: MakeScene) -> None:
    scene = make_scene(Scenario())
    seen: list[tuple[bool, str]] = []

    def watch(step: Step) -> None:
        head = scene.git.head("main")
        verdict = scene.api.latest(head, "promote/main")
        if head == scene.initial["main"] or verdict is None or verdict["state"] != "success":
            return
        recorded = scene.plan_folder(PLAN) == "done"
        seen.append((recorded, scene.env_status("main")["state"]))

    scene.after_next.append(watch)
    scene.drive(scene.settled(done=[PLAN]), f"{PLAN} complete")
    assert (False, "promoted") in seen, "validated in main, not yet recorded done: promoted"
    assert {state for recorded, state in seen if not recorded} == {"promoted"}, seen
    assert {state for recorded, state in seen if recorded} == {"complete"}, seen
    scene.check_invariants(done=[PLAN])
