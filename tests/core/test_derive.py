"""DESIGN §3.1: every evidence row, and the odd things GitHub really sends."""

from __future__ import annotations

import dataclasses

import pytest

from promote_tasks.machine import derive
from promote_tasks.model import Deployment
from promote_tasks.model import Plan
from promote_tasks.model import State
from tests.builders import PIPELINE
from tests.builders import dep
from tests.builders import facts
from tests.builders import pr
from tests.builders import run
from tests.builders import sha
from tests.builders import snap
from tests.builders import st

H = sha("head")
H0 = sha("h0")
FEATURE = pr(7, "feature/add-greeting", sha("feature"), "dev")


def dep_unordered() -> Deployment:
    # Listed newest-first and shuffled: only the ids tell the order.
    d = dep(5, "dev", H, "queued", "in_progress", "success")
    return dataclasses.replace(d, statuses=(d.statuses[2], d.statuses[0], d.statuses[1]))


PROMOTION = pr(8, "dev", H, "test", body="Promote dev to test\n\nPromote-Plan: add-greeting\n")

CASES = {
    # deploying
    "just merged, nothing yet": ("dev", facts("dev", H, merged_pull=FEATURE), State.DEPLOYING),
    "deployment queued": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued"),)), State.DEPLOYING),
    "deployment waiting (not in the REST enum)": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued", "waiting"),)), State.DEPLOYING),
    "unknown deployment state means not finished": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "frobnicating"),)), State.DEPLOYING),
    "deployment without statuses": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H),)), State.DEPLOYING),
    "deploy run in progress, no deployment yet": ("dev", facts("dev", H, merged_pull=FEATURE, runs=(run(3, H, "in_progress"),)), State.DEPLOYING),
    "deploy run waiting for approval": ("dev", facts("dev", H, merged_pull=FEATURE, runs=(run(3, H, "waiting"),)), State.DEPLOYING),
    "other workflows do not count as a deploy": ("dev", facts("dev", H, merged_pull=FEATURE, runs=(run(3, H, "completed", "failure", workflow="lint.yml"),)), State.DEPLOYING),
    # deployed
    "deployment succeeded": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued", "in_progress", "success"),)), State.DEPLOYED),
    "statuses listed out of order": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep_unordered(),)), State.DEPLOYED),
    "superseded (inactive) after success": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued", "success", "inactive"),)), State.DEPLOYED),
    "several deployments, newest in flight": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"), dep(9, "dev", H, "queued"))), State.DEPLOYING),
    "several deployments listed newest first": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(9, "dev", H, "queued", "success"), dep(5, "dev", H, "queued"))), State.DEPLOYED),
    "a deployment of another sha does not count": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(4, "dev", H0, "success"),)), State.DEPLOYING),
    # validating
    "promote/dev pending": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),), statuses=(st(1, "promote/dev", "pending"),)), State.VALIDATING),
    # failed
    "deployment failure": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued", "failure"),)), State.FAILED),
    "deployment error": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "error"),)), State.FAILED),
    "an earlier failed deployment of the same sha stays failed": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "failure"), dep(9, "dev", H, "success"))), State.FAILED),
    "deploy run concluded failure": ("dev", facts("dev", H, merged_pull=FEATURE, runs=(run(3, H, "completed", "failure"),)), State.FAILED),
    "deploy run timed out": ("dev", facts("dev", H, merged_pull=FEATURE, runs=(run(3, H, "completed", "timed_out"),)), State.FAILED),
    "validation failed": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),), statuses=(st(1, "promote/dev", "pending"), st(2, "promote/dev", "failure"))), State.FAILED),
    "failed sha never promoted, even when green later": ("dev", facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),), statuses=(st(3, "promote/dev", "success"), st(2, "promote/dev", "failure"))), State.FAILED),
    # promoted / complete
    "validated outside production": ("test", facts("test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "success"),), statuses=(st(1, "promote/test", "pending"), st(2, "promote/test", "success"))), State.PROMOTED),
    "validated in production": ("main", facts("main", H, merged_pull=pr(9, "test", H, "main", body="Promote-Plan: add-greeting"), deployments=(dep(5, "main", H, "success"),), statuses=(st(2, "promote/main", "success"), st(1, "promote/main", "pending"))), State.COMPLETE),
    # nothing
    "nothing ever deployed": ("dev", facts("dev", H), None),
    "branch missing": ("dev", facts("dev", None), None),
}  # fmt: skip


@pytest.mark.parametrize(("env", "env_facts", "expected"), CASES.values(), ids=CASES.keys())
def test_derive_state(env, env_facts, expected):
    state = derive(snap(env_facts), PIPELINE).env(env)
    assert state.state is expected
    if expected is not None:
        assert state.evidence, "every derived state names its evidence"


@pytest.mark.transition("R2")
def test_deployment_success_moves_deploying_to_deployed():
    before = facts(
        "dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "queued", "in_progress"),)
    )
    after = facts(
        "dev",
        H,
        merged_pull=FEATURE,
        deployments=(dep(5, "dev", H, "queued", "in_progress", "success"),),
    )
    assert derive(snap(before), PIPELINE).env("dev").state is State.DEPLOYING
    assert derive(snap(after), PIPELINE).env("dev").state is State.DEPLOYED


def test_evidence_names_the_object_and_url():
    state = derive(
        snap(facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "failure"),))),
        PIPELINE,
    )
    failure = [e for e in state.env("dev").evidence if e.kind == "deployment"]
    assert failure[0].id == 5
    assert failure[0].url == "https://api.github.example/deployments/5"
    assert "failure" in failure[0].summary


def test_plan_identity_from_feature_branch_and_promote_plan_line():
    dev = facts("dev", H, merged_pull=FEATURE)
    test = facts("test", H, merged_pull=PROMOTION)
    state = derive(snap(dev, test), PIPELINE)
    assert state.env("dev").plan == "add-greeting"
    assert state.env("test").plan == "add-greeting"


def test_a_head_not_from_a_merged_pr_is_a_violation():
    pushed = facts(
        "dev", H, deployments=(dep(5, "dev", H, "success"), dep(4, "dev", H0, "success"))
    )
    state = derive(snap(pushed), PIPELINE).env("dev")
    assert state.violation is not None
    assert "did not come from a merged pull request" in state.violation
    assert H[:7] in state.violation


def test_a_validated_head_without_a_pr_is_no_violation():
    # The seed: branches at a commit the tool itself validated earlier.
    state = derive(snap(), PIPELINE)
    assert [e.violation for e in state.environments] == [None, None, None]
    assert [e.state for e in state.environments] == [State.PROMOTED, State.PROMOTED, State.COMPLETE]


def test_rollback_deployment_is_kept_apart_from_the_failed_instance():
    target = H0
    env = facts(
        "test",
        H,
        merged_pull=PROMOTION,
        deployments=(
            dep(5, "test", H, "queued", "failure"),
            dep(
                6,
                "test",
                target,
                "success",
                task="deploy:rollback",
                rollback_of=H,
                plan="fix-test-1234567",
            ),
        ),
        statuses=(st(1, "promote/test", "failure"),),
    )
    state = derive(snap(env), PIPELINE).env("test")
    assert state.state is State.FAILED
    assert state.rollback is not None
    assert (state.rollback.target, state.rollback.state, state.rollback.succeeded) == (
        target,
        "success",
        True,
    )


def test_rollback_of_another_sha_is_not_this_instances_rollback():
    env = facts("test", H, merged_pull=PROMOTION, deployments=(
        dep(5, "test", H, "failure"), dep(6, "test", H0, "success", task="deploy:rollback", rollback_of=sha("older"))))  # fmt: skip
    assert derive(snap(env), PIPELINE).env("test").rollback is None


def test_halted_while_a_failure_has_no_finished_fix_plan():
    failed = facts("test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "failure"),))
    assert derive(snap(failed), PIPELINE).halted
    fix = Plan("fix-test-" + H[:7], status="doing", priority=0, fix_key=f"test@{H}")
    state = derive(snap(failed, plans=(fix,)), PIPELINE)
    assert (state.halted, state.fix_plan, state.active_plan) == (True, fix.id, fix.id)
    done = Plan(fix.id, status="done", priority=0, fix_key=f"test@{H}")
    assert not derive(snap(failed, plans=(done,)), PIPELINE).halted


def test_active_plan_is_the_one_furthest_along():
    dev = facts("dev", sha("q"), merged_pull=pr(11, "feature/q", sha("fq"), "dev"))
    test = facts("test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "success"),))
    assert derive(snap(dev, test), PIPELINE).active_plan == "add-greeting"


def test_a_failed_fix_plan_hands_the_halt_to_its_own_fix_plan():
    first = Plan("fix-dev-1111111", status="doing", priority=0, fix_key="dev@" + "1" * 40)
    child = Plan(
        "fix-test-2222222", status="doing", priority=0, parent=first.id, fix_key="test@" + "2" * 40
    )
    state = derive(snap(plans=(first, child)), PIPELINE)
    assert (state.halted, state.fix_plan) == (True, child.id)


def test_rollback_state_follows_the_deploy_it_set_off():
    target = H0
    record = dep(6, "test", target, task="deploy:rollback", rollback_of=H)  # no statuses of its own
    older = dep(4, "test", target, "success")  # an earlier deploy of the same sha does not count
    follower = dep(7, "test", target, "queued", "in_progress")
    env = facts(
        "test",
        H,
        merged_pull=PROMOTION,
        deployments=(dep(5, "test", H, "failure"), older, record, follower),
    )
    assert derive(snap(env), PIPELINE).env("test").rollback.state == "in_progress"
    done = dep(7, "test", target, "queued", "in_progress", "success")
    env = facts(
        "test",
        H,
        merged_pull=PROMOTION,
        deployments=(dep(5, "test", H, "failure"), older, record, done),
    )
    assert derive(snap(env), PIPELINE).env("test").rollback.succeeded
    alone = facts(
        "test", H, merged_pull=PROMOTION, deployments=(dep(5, "test", H, "failure"), older, record)
    )
    assert derive(snap(alone), PIPELINE).env("test").rollback.state == ""
