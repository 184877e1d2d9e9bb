"""decide(): exactly one next action, failures first, one plan at a time."""

from __future__ import annotations

import dataclasses

import pytest

from promote_tasks.ledger import fix_plan_id
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import CommitStatus
from promote_tasks.model import Plan
from promote_tasks.model import Result
from promote_tasks.model import State
from promote_tasks.model import Verdict
from tests.builders import PIPELINE
from tests.builders import dep
from tests.builders import facts
from tests.builders import pr
from tests.builders import sha
from tests.builders import snap
from tests.builders import st

H = sha("head")
FEATURE = pr(7, "feature/add-greeting", sha("feature"), "dev")
PROMOTION = pr(8, "dev", H, "test", body="Promote-Plan: add-greeting")
PLAN = Plan("add-greeting", "Add a greeting", "doing")


def next_action(*envs, **kw):
    snapshot = snap(*envs, **kw)
    return decide(derive(snapshot, PIPELINE), snapshot, PIPELINE)


def kinds(action):
    return [e.kind for e in action.effects]


def test_settled_pipeline_has_nothing_to_do():
    action = next_action()
    assert (action.transition, action.waiting_for, action.effects) == (None, None, ())


@pytest.mark.transition("R1")
def test_dispatches_the_deploy_when_nothing_started_after_the_grace_period():
    merged = pr(7, "feature/add-greeting", sha("f"), "dev", merged_at="2026-11-24T09:00:00Z")
    action = next_action(facts("dev", H, merged_pull=merged))
    assert (action.transition, action.source, action.target) == ("R1", None, State.DEPLOYING)
    assert kinds(action) == ["dispatch-deploy"]
    assert action.effects[0].sha == H
    assert action.effects[0].branch == "dev"


def test_waits_for_ci_within_the_grace_period():
    merged = pr(7, "feature/add-greeting", sha("f"), "dev", merged_at="2026-11-24T09:59:30Z")
    action = next_action(facts("dev", H, merged_pull=merged))
    assert action.transition is None
    assert action.waiting_for == f"deployment of dev at {H[:7]}"


@pytest.mark.transition("R4")
def test_deployed_starts_validation():
    action = next_action(
        facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),))
    )
    assert (action.transition, action.source, action.target) == (
        "R4",
        State.DEPLOYED,
        State.VALIDATING,
    )
    assert action.plan == "add-greeting"
    assert [
        (e.kind, e.context if e.kind == "set-status" else e.validator) for e in action.effects
    ] == [
        ("set-status", "promote/dev/health"),  # pending before it starts: an error after
        ("start-validator", "health"),
        ("set-status", "promote/dev/smoke"),
        ("start-validator", "smoke"),
        ("set-status", "promote/dev"),  # last: a run dying half-way leaves it deployed
    ]
    assert all(e.state == "pending" for e in action.effects if e.kind == "set-status")


def validating(*verdicts, statuses=()):
    return facts(
        "dev",
        H,
        merged_pull=FEATURE,
        deployments=(dep(5, "dev", H, "success"),),
        statuses=(st(1, "promote/dev", "pending"), *statuses),
        verdicts=verdicts,
    )


@pytest.mark.transition("R5")
def test_all_validators_passed_promotes():
    action = next_action(
        validating(
            Verdict("health", Result.PASSED), Verdict("smoke", Result.PASSED, "https://ci/1")
        )
    )
    assert (action.transition, action.source, action.target) == (
        "R5",
        State.VALIDATING,
        State.PROMOTED,
    )
    final = action.effects[-1]
    assert (final.context, final.state) == ("promote/dev", "success")
    recorded = {e.context: (e.state, e.target_url) for e in action.effects[:-1]}
    assert recorded == {
        "promote/dev/health": ("success", ""),
        "promote/dev/smoke": ("success", "https://ci/1"),
    }


@pytest.mark.transition("R6")
def test_a_failed_validator_fails_the_instance():
    action = next_action(
        validating(
            Verdict("health", Result.FAILED, summary="503"), Verdict("smoke", Result.PENDING)
        )
    )
    assert (action.transition, action.source, action.target) == (
        "R6",
        State.VALIDATING,
        State.FAILED,
    )
    assert (action.effects[-1].context, action.effects[-1].state) == (
        "promote/dev",
        "failure",
    )
    assert "health" in action.effects[-1].description


def test_pending_validators_wait_and_record_interim_verdicts_once():
    env = validating(Verdict("health", Result.PASSED), Verdict("smoke", Result.PENDING))
    action = next_action(env)
    assert action.transition is None
    assert [(e.context, e.state) for e in action.effects] == [
        ("promote/dev/health", "success"),
        ("promote/dev/smoke", "pending"),
    ]
    recorded = validating(
        Verdict("health", Result.PASSED),
        Verdict("smoke", Result.PENDING),
        statuses=(st(2, "promote/dev/health", "success"), st(3, "promote/dev/smoke", "pending")),
    )
    again = next_action(recorded)
    assert (again.transition, again.effects) == (None, ())
    assert again.waiting_for == f"validation of dev at {H[:7]}: smoke"


def test_recorded_verdicts_stand_in_when_no_fresh_ones_were_gathered():
    env = validating(
        statuses=(st(2, "promote/dev/health", "success"), st(3, "promote/dev/smoke", "success"))
    )
    assert next_action(env).transition == "R5"


def promoted_dev(**kw):
    return facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),),
                 statuses=(st(1, "promote/dev", "success"),), **kw)  # fmt: skip


@pytest.mark.transition("R7")
def test_promoted_opens_the_pr_to_the_next_environment():
    action = next_action(promoted_dev(next_contains_head=False))
    assert (action.transition, action.source, action.target) == ("R7", State.PROMOTED, None)
    effect = action.effects[0]
    assert (effect.kind, effect.head, effect.base, effect.plans) == (
        "open-pr",
        "dev",
        "test",
        ("add-greeting",),
    )


def test_an_open_promotion_pr_is_not_opened_twice():
    open_pr = pr(8, "dev", H, "test", merged=False, body="Promote-Plan: add-greeting")
    action = next_action(promoted_dev(next_contains_head=False, promotions=(open_pr,)))
    assert action.transition is None
    assert action.waiting_for == "merge of #8 (dev → test)"


def test_a_merged_promotion_settles_the_instance_even_after_squash():
    merged = pr(8, "dev", H, "test", body="Promote-Plan: add-greeting")
    action = next_action(promoted_dev(next_contains_head=False, promotions=(merged,)))
    assert (action.transition, action.waiting_for) == (None, None)


def complete_main(plans):
    promotion = pr(9, "test", H, "main", body="Promote-Plan: add-greeting")
    env = facts("main", H, merged_pull=promotion, deployments=(dep(5, "main", H, "success"),),
                statuses=(st(1, "promote/main", "success"),))  # fmt: skip
    return next_action(env, plans=plans)


@pytest.mark.transition("R8")
def test_complete_in_production_moves_the_plan_to_done():
    action = complete_main((PLAN,))
    assert (action.transition, action.source, action.target) == (
        "R8",
        State.PROMOTED,
        State.COMPLETE,
    )
    assert [(e.kind, e.plans) for e in action.effects] == [("complete-plans", ("add-greeting",))]
    done = Plan("add-greeting", status="done")
    assert complete_main((done,)).transition is None


def failed_test(*deployments, statuses=(), plans=(), **kw):
    env = facts("test", H, merged_pull=PROMOTION,
                deployments=deployments or (dep(5, "test", H, "queued", "failure"),), statuses=statuses)  # fmt: skip
    return next_action(env, plans=plans, **kw)


@pytest.mark.transition("R3")
def test_a_failed_deployment_is_recorded_as_the_verdict():
    action = failed_test()
    assert (action.transition, action.source, action.target) == (
        "R3",
        State.DEPLOYING,
        State.FAILED,
    )
    effect = action.effects[0]
    assert (effect.context, effect.state, effect.sha) == (
        "promote/test",
        "failure",
        H,
    )
    assert "deployment 5 failure" in effect.description


@pytest.mark.transition("R9")
def test_failure_rolls_back_first_then_files_the_fix_plan():
    recorded = (st(1, "promote/test", "failure"),)
    first = failed_test(statuses=recorded)
    assert (first.transition, first.source, first.target) == ("R9", State.FAILED, None)
    assert [(e.kind, e.strategy, e.failed_sha) for e in first.effects] == [
        ("rollback", "redeploy", H)
    ]
    key = f"test@{H}"
    rolling = dep(6, "test", sha("h0"), "in_progress", task="deploy:rollback", rollback_of=H)
    second = failed_test(dep(5, "test", H, "failure"), rolling, statuses=recorded)
    assert second.transition is None
    assert second.waiting_for.startswith("rollback of test to")
    rolled = dep(
        6, "test", sha("h0"), "in_progress", "success", task="deploy:rollback", rollback_of=H
    )
    third = failed_test(dep(5, "test", H, "failure"), rolled, statuses=recorded)
    assert third.transition == "R9"
    filed = third.effects[0]
    assert (filed.kind, filed.plan_id, filed.failure, filed.culprit) == (
        "file-fix-plan",
        fix_plan_id(key),
        key,
        8,
    )
    assert filed.rollback_target == sha("h0")
    fix = Plan(fix_plan_id(key), status="inbox", priority=0, fix_key=key)
    fourth = failed_test(dep(5, "test", H, "failure"), rolled, statuses=recorded, plans=(fix,))
    assert (fourth.transition, fourth.effects) == (None, ())


def test_a_failed_rollback_stops_everything_loudly():
    rolled = dep(6, "test", sha("h0"), "failure", task="deploy:rollback", rollback_of=H)
    action = failed_test(
        dep(5, "test", H, "failure"), rolled, statuses=(st(1, "promote/test", "failure"),)
    )
    assert action.transition is None
    assert action.stop is not None
    assert "rollback of test" in action.stop
    assert "by hand" in action.stop


def test_halt_blocks_other_plans_but_not_the_fix_plan():
    key = f"test@{H}"
    fix = Plan(fix_plan_id(key), status="doing", priority=0, fix_key=key)
    rolled = dep(6, "test", sha("h0"), "success", task="deploy:rollback", rollback_of=H)
    failed = facts("test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "failure"), rolled),
                   statuses=(st(1, "promote/test", "failure"),))  # fmt: skip
    other = facts("dev", sha("q"), merged_pull=pr(11, "feature/q", sha("fq"), "dev"),
                  deployments=(dep(9, "dev", sha("q"), "success"),))  # fmt: skip
    blocked = next_action(failed, other, plans=(fix,))
    assert blocked.transition is None
    assert "fix plan" in blocked.waiting_for
    fixing = facts("dev", sha("f"), merged_pull=pr(12, f"feature/{fix.id}", sha("ff"), "dev"),
                   deployments=(dep(9, "dev", sha("f"), "success"),))  # fmt: skip
    allowed = next_action(failed, fixing, plans=(fix,))
    assert (allowed.transition, allowed.plan, allowed.environment) == ("R4", fix.id, "dev")


def test_only_one_plan_in_flight():
    later = facts("dev", sha("q"), merged_pull=pr(11, "feature/q", sha("fq"), "dev"),
                  deployments=(dep(9, "dev", sha("q"), "success"),))  # fmt: skip
    ahead = facts("test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "success"),),
                  statuses=(st(1, "promote/test", "pending"),))  # fmt: skip
    action = next_action(later, ahead)
    assert action.transition is None
    assert action.waiting_for.startswith("validation of test")


def test_a_direct_push_is_reported_not_acted_on():
    pushed = facts("dev", H, deployments=(dep(5, "dev", H, "success"),))
    action = next_action(pushed)
    assert action.transition is None
    assert "did not come from a merged pull request" in action.waiting_for


def test_decide_is_deterministic_for_the_same_facts():
    env = validating(Verdict("health", Result.PASSED), Verdict("smoke", Result.PASSED))
    assert next_action(env) == next_action(env)


@pytest.mark.transition("R9")
def test_after_a_revert_the_fix_plan_follows_the_reverted_head():
    key = f"test@{H}"
    revert_head = sha("revert")
    revert = pr(20, "promote/revert-test-" + H[:7], sha("rv"), "test",
                body=f"Rolls test back.\n\nPromote-Rollback-Of: {key}\nPromote-Culprit: #8\n")  # fmt: skip

    def at(*states):
        env = facts(
            "test",
            revert_head,
            merged_pull=revert,
            deployments=(dep(9, "test", revert_head, *states),),
        )
        snapshot = snap(env)
        return derive(snapshot, PIPELINE), decide(derive(snapshot, PIPELINE), snapshot, PIPELINE)

    state, action = at("queued", "in_progress")
    assert state.halted
    assert state.env("test").restores == key
    assert action.waiting_for == f"rollback of test to {revert_head[:7]} (in_progress)"
    state, action = at("queued", "in_progress", "success")
    assert (action.transition, action.environment, action.source) == ("R9", "test", State.FAILED)
    filed = action.effects[0]
    assert (filed.kind, filed.failure, filed.culprit, filed.rollback_target) == (
        "file-fix-plan", key, 8, revert_head)  # fmt: skip


def test_after_a_reset_the_marker_on_the_target_remembers_the_failure():
    key = f"test@{H}"
    target = sha("h0")
    marker = CommitStatus(2, "promote/test/rollback", "success", description=f"rolled back {key}")
    reset = facts("test", target, deployments=(dep(9, "test", target, "success"),),
                  statuses=(st(1, "promote/test", "success"), marker))  # fmt: skip
    snapshot = snap(reset)
    state = derive(snapshot, PIPELINE)
    assert (state.halted, state.env("test").restores, state.env("test").violation) == (
        True,
        key,
        None,
    )
    action = decide(state, snapshot, PIPELINE)
    assert (action.transition, action.effects[0].failure) == ("R9", key)
    fix = Plan(fix_plan_id(key), status="inbox", priority=0, fix_key=key)
    settled = snap(reset, plans=(fix,))
    assert decide(derive(settled, PIPELINE), settled, PIPELINE).transition is None


def test_a_reset_waits_for_a_deploy_made_after_the_failure():
    key = f"test@{H}"
    target = sha("h0")
    marker = CommitStatus(3, "promote/test/rollback", "success", description=f"rolled back {key}")
    old = dep(1, "test", target, "success", "inactive")  # from before the failure
    failed = dep(5, "test", H, "failure")
    reset = facts(
        "test",
        target,
        deployments=(old, failed),
        statuses=(st(2, "promote/test", "success"), marker),
    )
    waiting = next_action(reset)
    assert (waiting.transition, waiting.waiting_for) == (
        None,
        f"rollback of test to {target[:7]} (not deployed yet)",
    )
    redeployed = dataclasses.replace(
        reset, deployments=(old, failed, dep(7, "test", target, "queued", "success"))
    )
    assert next_action(redeployed).transition == "R9"


def test_a_restored_head_that_fails_to_deploy_stops_everything():
    key = f"test@{H}"
    revert_head = sha("revert")
    revert = pr(
        20, "promote/revert-test-" + H[:7], sha("rv"), "test", body=f"Promote-Rollback-Of: {key}\n"
    )
    broken = facts(
        "test",
        revert_head,
        merged_pull=revert,
        deployments=(dep(9, "test", revert_head, "failure"),),
    )
    action = next_action(broken)
    assert (action.transition, action.effects) == (None, ())
    assert action.stop is not None
    assert action.stop.startswith(
        f"rollback of test failed: {revert_head[:7]}, which restores test"
    )


@pytest.mark.transition("R3")
def test_a_deploy_unfinished_past_its_timeout_fails():
    started = dataclasses.replace(
        dep(5, "dev", H, "in_progress"), created_at="2026-11-24T09:20:00Z"
    )
    env = facts("dev", H, merged_pull=FEATURE, deployments=(started,))
    state = derive(snap(env), PIPELINE).env("dev")
    assert state.state is State.FAILED
    assert state.evidence[1].summary == "deploy timed out after 1800 s"
    action = next_action(env)
    assert (action.transition, action.effects[0].description) == (
        "R3",
        "deploy timed out after 1800 s",
    )
    recent = dataclasses.replace(started, created_at="2026-11-24T09:56:00Z")
    state = derive(snap(dataclasses.replace(env, deployments=(recent,))), PIPELINE).env("dev")
    assert (state.state, state.clock) == (
        State.DEPLOYING,
        "deploying for 4 min, times out in 26 min",
    )


@pytest.mark.transition("R6")
def test_a_validator_pending_past_its_timeout_fails_and_a_manual_test_has_its_own():
    pending = (
        st(2, "promote/test", "pending", "2026-11-24T08:30:00Z"),
        st(3, "promote/test/health", "success", "2026-11-24T08:30:00Z"),
        st(4, "promote/test/smoke", "pending", "2026-11-24T08:30:00Z"),
        st(5, "promote/test/manual", "pending", "2026-11-24T08:30:00Z"),
    )
    env = facts("test", H, merged_pull=PROMOTION, statuses=pending)
    verdicts = {v.validator: v for v in derive(snap(env), PIPELINE).env("test").verdicts}
    assert (verdicts["smoke"].result, verdicts["smoke"].summary) == (
        Result.FAILED,
        "smoke timed out after 3600 s",
    )
    assert verdicts["manual"].result is Result.PENDING, "a week for a person, not an hour"
    action = next_action(env)
    assert action.transition == "R6"
    week = tuple(dataclasses.replace(s, created_at="2026-11-16T10:00:00Z") for s in pending)
    later = dataclasses.replace(
        env, statuses=(*week[:2], st(4, "promote/test/smoke", "success"), week[3])
    )
    verdicts = {v.validator: v for v in derive(snap(later), PIPELINE).env("test").verdicts}
    assert (verdicts["manual"].result, verdicts["manual"].summary) == (
        Result.FAILED,
        "manual approval timed out after 604800 s",
    )
