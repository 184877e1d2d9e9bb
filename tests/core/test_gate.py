"""The pre-merge gate: feature → dev, env → next env, promoted source, one plan, halt."""

from __future__ import annotations

from promote_tasks.gate import gate_for
from promote_tasks.gate import gates
from promote_tasks.machine import derive
from promote_tasks.model import Plan
from tests.builders import PIPELINE
from tests.builders import dep
from tests.builders import facts
from tests.builders import pr
from tests.builders import sha
from tests.builders import snap
from tests.builders import st

H = sha("head")
FEATURE = pr(7, "feature/add-greeting", sha("feature"), "dev")


def gate(pull, *envs, plans=()):
    snapshot = snap(*envs, plans=plans, open_pulls=(pull,))
    return gate_for(pull, derive(snapshot, PIPELINE), PIPELINE)


def test_a_feature_pr_into_dev_is_ready_when_nothing_is_in_flight():
    g = gate(pr(9, "feature/q", sha("q"), "dev", merged=False))
    assert (g.state, g.description, g.sha, g.pull) == (
        "success",
        "ready to merge (plan q)",
        sha("q"),
        9,
    )


def test_only_feature_branches_go_into_dev():
    g = gate(pr(9, "hotfix", sha("q"), "dev", merged=False))
    assert (g.state, g.description) == ("failure", "dev takes PRs from feature/<plan-id> branches")


def test_no_skipping_environments():
    g = gate(pr(9, "dev", sha("h0"), "main", merged=False))
    assert (g.state, g.description) == (
        "failure",
        "skips an environment: main takes PRs from test only",
    )


def test_the_source_must_be_promoted_at_the_prs_head():
    validating = facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),),
                       statuses=(st(1, "promote/dev", "pending"),))  # fmt: skip
    g = gate(pr(9, "dev", H, "test", merged=False), validating)
    assert (g.state, g.description) == (
        "failure",
        f"dev is not promoted at {H[:7]} (it is validating)",
    )
    promoted = facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),),
                     statuses=(st(1, "promote/dev", "success"),))  # fmt: skip
    g = gate(pr(9, "dev", H, "test", merged=False, body="Promote-Plan: add-greeting"), promoted)
    assert (g.state, g.description) == ("success", "ready to merge (plan add-greeting)")


def test_one_plan_at_a_time():
    in_flight = facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),))
    g = gate(pr(9, "feature/q", sha("q"), "dev", merged=False), in_flight)
    assert (g.state, g.description) == (
        "failure",
        "one plan at a time: plan add-greeting is in flight",
    )


def test_while_halted_only_the_fix_plan_merges():
    failed = facts("test", H, merged_pull=pr(8, "dev", H, "test", body="Promote-Plan: add-greeting"),
                   deployments=(dep(5, "test", H, "failure"),))  # fmt: skip
    other = pr(9, "feature/q", sha("q"), "dev", merged=False)
    g = gate(other, failed)
    assert (g.state, g.description) == (
        "failure",
        "halted: a failure is unresolved; only a fix plan may merge",
    )
    fix = Plan("fix-test-" + H[:7], status="inbox", priority=0, fix_key=f"test@{H}")
    assert gate(other, failed, plans=(fix,)).description == (
        f"halted: a failure is unresolved; only fix plan {fix.id} may merge"
    )
    mine = pr(10, f"feature/{fix.id}", sha("f"), "dev", merged=False)
    assert gate(mine, failed, plans=(fix,)).state == "success"
    done = Plan(fix.id, status="done", priority=0, fix_key=f"test@{H}")
    assert gate(other, failed, plans=(done,)).state == "success", (
        "the gate opens when the halt lifts"
    )


def test_gates_cover_open_prs_into_environment_branches_only():
    pulls = (
        pr(9, "feature/q", sha("q"), "dev", merged=False),
        pr(11, "x", sha("x"), "docs", merged=False),
    )
    snapshot = snap(open_pulls=pulls)
    assert [g.pull for g in gates(derive(snapshot, PIPELINE), snapshot, PIPELINE)] == [9]


def test_the_tools_own_rollback_prs_pass_into_a_failed_environment():
    failed = facts("test", H, merged_pull=pr(8, "dev", H, "test", body="Promote-Plan: add-greeting"),
                   deployments=(dep(5, "test", H, "failure"),))  # fmt: skip
    branch = "promote/revert-test-" + H[:7]
    rollback = pr(21, branch, sha("r"), "test", merged=False, body=f"Promote-Rollback-Of: test@{H}")
    g = gate(rollback, failed)
    assert (g.state, g.description) == ("success", "a rollback opened by promote")


def test_a_promote_branch_is_no_way_around_the_gate():
    refused = "promote/* PRs are promote's rollbacks of a failure in test; this is not one"
    failed = facts("test", H, merged_pull=pr(8, "dev", H, "test", body="Promote-Plan: add-greeting"),
                   deployments=(dep(5, "test", H, "failure"),))  # fmt: skip
    no_line = pr(21, "promote/sneak", sha("r"), "test", merged=False)
    assert (gate(no_line, failed).state, gate(no_line, failed).description) == ("failure", refused)
    other_sha = pr(21, "promote/sneak", sha("r"), "test", merged=False,
                   body=f"Promote-Rollback-Of: test@{sha('elsewhere')}")  # fmt: skip
    assert gate(other_sha, failed).state == "failure"
    other_env = pr(21, "promote/sneak", sha("r"), "main", merged=False,
                   body=f"Promote-Rollback-Of: test@{H}")  # fmt: skip
    assert gate(other_env, failed).state == "failure"
    healthy = pr(21, "promote/sneak", sha("r"), "dev", merged=False,
                 body=f"Promote-Rollback-Of: dev@{H}")  # fmt: skip
    assert gate(healthy).state == "failure", "nothing failed in dev: nothing to roll back"


def test_the_pr_head_must_be_the_promoted_head_of_the_source():
    promoted = facts("dev", H, merged_pull=FEATURE, deployments=(dep(5, "dev", H, "success"),),
                     statuses=(st(1, "promote/dev", "success"),))  # fmt: skip
    stale = pr(9, "dev", sha("older"), "test", merged=False, body="Promote-Plan: add-greeting")
    g = gate(stale, promoted)
    assert (g.state, g.description) == (
        "failure",
        f"dev is not promoted at {sha('older')[:7]} (it is at {H[:7]} now)",
    )


def test_prs_sharing_a_head_commit_share_its_first_failure():
    good = pr(9, "feature/q", sha("q"), "dev", merged=False)
    skipping = pr(10, "feature/q", sha("q"), "main", merged=False)
    other = pr(11, "feature/r", sha("r"), "dev", merged=False)
    snapshot = snap(open_pulls=(good, skipping, other))
    found = {g.pull: g for g in gates(derive(snapshot, PIPELINE), snapshot, PIPELINE)}
    assert (found[10].state, found[10].description) == (
        "failure",
        "skips an environment: main takes PRs from test only",
    )
    assert (found[9].state, found[9].description) == (
        "failure",
        "#10 at this commit: skips an environment: main takes PRs from test only",
    )
    # Other commits keep their own verdict: #11 waits its turn behind the older #9.
    assert (found[11].state, found[11].description) == (
        "failure",
        "one plan at a time: plan q (#9) goes first",
    )


def test_one_pr_into_dev_goes_first_the_others_wait_naming_it():
    old = pr(9, "feature/old", sha("old"), "dev", merged=False)
    urgent = pr(10, "feature/urgent", sha("urgent"), "dev", merged=False)
    later = pr(11, "feature/later", sha("later"), "dev", merged=False)
    plans = (Plan("urgent", priority=1), Plan("old"), Plan("later"))
    snapshot = snap(plans=plans, open_pulls=(old, urgent, later))
    found = {g.pull: g for g in gates(derive(snapshot, PIPELINE), snapshot, PIPELINE)}
    assert (found[10].state, found[10].description) == ("success", "ready to merge (plan urgent)")
    for number in (9, 11):
        assert (found[number].state, found[number].description) == (
            "failure",
            "one plan at a time: plan urgent (#10) goes first",
        )
    # Same priority: the oldest PR first.
    snapshot = snap(plans=(Plan("old"), Plan("later")), open_pulls=(later, old))
    found = {g.pull: g for g in gates(derive(snapshot, PIPELINE), snapshot, PIPELINE)}
    assert (found[9].state, found[11].state) == ("success", "failure")


def test_the_fix_plan_goes_first_whatever_the_priorities():
    fix = pr(12, "feature/fix-dev-abc1234", sha("fix"), "dev", merged=False)
    other = pr(9, "feature/old", sha("old"), "dev", merged=False)
    plans = (
        Plan("old", priority=0),
        Plan("fix-dev-abc1234", priority=0, fix_key="dev@" + "a" * 40),
    )
    snapshot = snap(plans=plans, open_pulls=(other, fix))
    found = {g.pull: g for g in gates(derive(snapshot, PIPELINE), snapshot, PIPELINE)}
    assert (found[12].state, found[9].state) == ("success", "failure")
