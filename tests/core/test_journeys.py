"""Whole journeys through the pure machine: reachability, convergence, invariants."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from promote_tasks.machine import TRANSITIONS
from promote_tasks.model import CompletePlans
from promote_tasks.model import State
from tests.builders import PIPELINE
from tests.core.world import World

PROGRESS = {"R1", "R4", "R5", "R7", "R8"}  # moves a plan forward (R3/R6/R9 handle failures)


def drive(world: World, limit: int = 400, order: list[bool] | None = None) -> list[State | None]:
    seen = []
    for step in range(limit):
        before = world.state()
        seen.extend(e.state for e in before.environments)
        action = world.next()
        check_invariants(before, action)
        if action.stop:
            break
        if order is None or order[step % len(order)]:
            world.tick()
        if (
            action.transition is None
            and not action.effects
            and not action.waiting_for
            and world.idle()
        ):
            break
    return seen


def check_invariants(before, action):
    if action.transition in PROGRESS and before.halted:
        assert before.fix_plan is not None, action
        assert action.plan == before.fix_plan, action
    env = before.env(action.environment) if action.environment else None
    for effect in action.effects:
        args = {f.name: getattr(effect, f.name) for f in dataclasses.fields(effect)}
        if "sha" in args or "failed_sha" in args:
            assert env is not None, action
            assert args.get("sha", args.get("failed_sha")) == env.sha, action
        if "environment" in args:
            assert args["environment"] == action.environment, action


def test_happy_journey_reaches_complete_in_production():
    world = World()
    drive(world)
    taken = [(a.transition, a.environment) for a in world.actions]
    assert taken == [
        ("R4", "dev"), ("R5", "dev"), ("R7", "dev"),
        ("R4", "test"), ("R5", "test"), ("R7", "test"),
        ("R4", "main"), ("R5", "main"), ("R8", "main"),
    ]  # fmt: skip
    assert world.plans[0].done
    assert world.state().env("main").state is State.COMPLETE


def test_every_state_is_reachable():
    seen = set(drive(World()))
    seen |= set(drive(World(failures=frozenset({("test", "deploy")}))))
    assert seen >= set(State)


def test_a_failure_halts_rolls_back_files_a_fix_plan_and_the_fix_flows_through():
    world = World(failures=frozenset({("test", "manual")}))
    drive(world)
    taken = [(a.transition, a.environment, a.plan) for a in world.actions]
    r6 = taken.index(("R6", "test", "add-greeting"))
    assert [t[0] for t in taken[r6 : r6 + 3]] == ["R6", "R9", "R9"]
    fix = [p for p in world.plans if p.fix_key]
    assert len(fix) == 1
    assert fix[0].done
    # The failed plan travelled on with its fix plan, and completes with it.
    assert fix[0].failed_plans == ("add-greeting",)
    assert world.plans[0].id == "add-greeting"
    assert world.plans[0].done
    r8 = world.actions[-1]
    assert r8.transition == "R8"
    assert (r8.plan, r8.effects) == (
        fix[0].id,
        (CompletePlans((fix[0].id, "add-greeting"), (("add-greeting", fix[0].id),)),),
    )


def test_every_transition_row_is_taken_on_some_journey():
    taken = set()
    for failures in (frozenset(), {("dev", "deploy")}, {("main", "monitor")}):
        world = World(failures=frozenset(failures))
        drive(world)
        taken |= {a.transition for a in world.actions}
    # R2 is observed, never taken by the tool (CI moves deploying → deployed).
    assert taken == {t.id for t in TRANSITIONS} - {"R1", "R2"}


FAILURE_POINTS = [
    (env.name, stage) for env in PIPELINE.environments for stage in ("deploy", *env.validators)
]


@settings(max_examples=40, deadline=None)
@given(
    failures=st.sets(st.sampled_from(FAILURE_POINTS), max_size=3),
    order=st.lists(st.booleans(), min_size=1, max_size=6).filter(any),
)
def test_any_failures_any_interleaving_converges_without_duplicates(failures, order):
    world = World(failures=frozenset(failures))
    drive(world, limit=300, order=order)
    assert all(p.done for p in world.plans if p.fix_key), "every fix plan finishes"
    keys = [p.fix_key for p in world.plans if p.fix_key]
    assert len(keys) == len(set(keys)), "one fix plan per failure"
    for env in world.envs.values():
        opened = [(p.head_sha, p.base_ref) for p in env.promotions]
        assert len(opened) == len(set(opened)), "one promotion PR per instance"
        rollbacks = [d.rollback_of for d in env.deployments if d.is_rollback]
        assert len(rollbacks) == len(set(rollbacks)), "one rollback per failure"
    if not failures:
        assert world.plans[0].done
