"""A failed plan's fate. Its code stays on the environment branches after a ``redeploy``
rollback, travels with the fix plan and completes with it (``test_journeys``). A ``revert``
rollback in the first environment takes its code out of every environment: the plan goes back
to ``plans/inbox/``, saying why, and is never silently left in ``plans/doing/``."""

from __future__ import annotations

from collections.abc import Callable

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_sandbox.seed import APP_BEFORE
from tests.e2e.conftest import config
from tests.scenarios.conftest import GREETING
from tests.scenarios.conftest import Scene
from tests.scenarios.conftest import front_matter

MakeScene = Callable[..., Scene]
PLAN = GREETING.plan


def test_a_plan_reverted_out_of_every_environment_returns_to_the_inbox(
    make_scene: MakeScene,
) -> None:
    scene = make_scene(
        Scenario(fail=(FailRule("dev", "smoke", times=1),)),
        config(extra='rollback = "revert"\n'),
    )
    scene.drive(scene.settled(returned=[PLAN], fixes=1), f"{PLAN} back in the inbox")

    (fix,) = scene.fixes
    assert front_matter(scene.git.text("dev", f"plans/done/{fix}.md") or "")["fix_key"].startswith(
        "dev@"
    )
    returned = front_matter(scene.git.text("dev", f"plans/inbox/{PLAN}.md") or "")
    assert returned.get("id") == PLAN
    assert returned.get("returned"), returned
    for env in ("dev", "test", "main"):  # the revert took it out everywhere, the fix went on
        assert scene.git.text(env, GREETING.path) == APP_BEFORE, env
        assert scene.git.text(env, scene.codes[fix].path) == scene.codes[fix].text, env
    scene.check_invariants(done=[fix], returned=[PLAN])
