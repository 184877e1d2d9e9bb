"""What a head carries and whether it came the one allowed way (DESIGN §3.6), over histories:
bookkeeping by what a commit changes, direct pushes, skip merges, laundering, several plans in
one environment, rebase groups, reverts, and a branch promote never validated before."""

from __future__ import annotations

import dataclasses

from promote_tasks.ledger import bookkeeping_trailer
from promote_tasks.ledger import claims_bookkeeping
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Commit
from promote_tasks.model import CompletePlans
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import State
from tests.builders import PIPELINE
from tests.builders import dep
from tests.builders import facts
from tests.builders import pr
from tests.builders import sha
from tests.builders import snap
from tests.builders import st

L = sha("last validated")  # every branch starts at this validated commit
BOT = "GitHub <noreply@github.com> 2026-11-24T09:40:00Z"
ALICE = "Alice <alice@example.com> 2026-11-24T09:30:00Z"


def commit(label: str, parent: str = L, *, pulls: tuple[int, ...] = (), **kw: object) -> Commit:
    return Commit(sha(label), (parent,), committer=kw.pop("committer", BOT), pulls=pulls, **kw)  # type: ignore[arg-type]


def good(at: str = L) -> Commit:
    return Commit(at, (sha("older"),), validated=True)


def merged(
    number: int, head_ref: str, head: str, base: str, at: str, body: str = ""
) -> PullRequest:
    return dataclasses.replace(pr(number, head_ref, head, base, body=body), merge_commit_sha=at)


def env_facts(name: str, *history: Commit, arrivals: tuple[PullRequest, ...] = (), **kw):
    head = kw.pop("head", history[0].sha)
    merged_pull = next((p for p in arrivals if p.merge_commit_sha == head), None)
    return facts(
        name,
        head,
        branch_head=history[0].sha,
        history=(*history, good()),
        arrivals=arrivals,
        merged_pull=merged_pull,
        deployments=(dep(90 + len(name), name, head, "success"),),
        **kw,
    )


def validated_world():
    """dev, test and main all at L, validated (the builders' settled world, with histories)."""
    return {
        name: facts(
            name,
            L,
            history=(good(),),
            statuses=(st(i, f"promote/{name}", "success"),),
            next_contains_head=name != "main",
        )
        for i, name in enumerate(("dev", "test", "main"), 1)
    }


def state_of(*envs, plans=(), open_pulls=()):
    world = validated_world()
    for env in envs:
        world[env.name] = env
    snapshot = snap(*world.values(), plans=plans, open_pulls=open_pulls)
    return derive(snapshot, PIPELINE), snapshot


# -- bookkeeping ------------------------------------------------------------------------------


def test_a_bookkeeping_claim_must_name_the_commits_own_parent():
    assert claims_bookkeeping(f"plans: x\n\n{bookkeeping_trailer(L)}\n", (L,))
    assert claims_bookkeeping("plans: x\n\nPromote-Bookkeeping: true\n", (L,)), "as once written"
    # A squash copies the message of a bookkeeping commit from elsewhere: it names another parent.
    copied = f"Promote x (#9)\n\n* plans: complete x\n\n{bookkeeping_trailer(sha('elsewhere'))}\n"
    assert not claims_bookkeeping(copied, (L,))
    assert not claims_bookkeeping(f"Merge\n\n{bookkeeping_trailer(L)}\n", (L, sha("other")))


def test_a_bookkeeping_commit_on_top_starts_no_instance():
    feature = merged(7, "feature/x", sha("fx"), "dev", sha("mx"))
    tip = commit(
        "plans", sha("mx"), message=f"plans: file f\n\n{bookkeeping_trailer(sha('mx'))}",
        files=("plans/inbox/f.md",),
    )  # fmt: skip
    dev = env_facts("dev", tip, commit("mx", pulls=(7,)), arrivals=(feature,), head=sha("mx"))
    state, _ = state_of(dev)
    assert (state.env("dev").sha, state.env("dev").plans, state.env("dev").violation) == (
        sha("mx"),
        ("x",),
        None,
    )


def test_a_marker_in_a_real_change_is_a_direct_push():
    pushed = commit(
        "push", committer=ALICE, message=f"tweak\n\n{bookkeeping_trailer(L)}", files=("app.txt",)
    )
    state, snapshot = state_of(env_facts("dev", pushed))
    dev = state.env("dev")
    assert dev.sha == pushed.sha, "it changes the app: it is the head"
    assert dev.violating == (pushed.sha,)
    assert dev.violation == (
        f"dev holds commits not from a plan's pull request: {pushed.sha[:7]} (a direct push); "
        f"roll back with `promote rollback --env dev` (back to {L[:7]})"
    )
    action = decide(state, snapshot, PIPELINE)
    assert (action.transition, action.waiting_for) == (None, dev.violation)


def test_the_squash_of_a_promotion_carrying_the_marker_is_a_real_head():
    body = "Promote-Plan: x\nPromote-Plan: y\n"
    promotion = merged(9, "dev", sha("dev head"), "test", sha("squash"), body=body)
    squash = commit(
        "squash",
        pulls=(9,),
        message=f"Promote (#9)\n\n* plans: complete w\n\n{bookkeeping_trailer(sha('w'))}",
    )
    dev = env_facts(
        "dev", commit("dev head", validated=True), statuses=(st(3, "promote/dev", "success"),)
    )
    state, _ = state_of(dev, env_facts("test", squash, arrivals=(promotion,)))
    test = state.env("test")
    assert (test.sha, test.plans, test.violation) == (squash.sha, ("x", "y"), None)


# -- the one allowed way in ---------------------------------------------------------------------


def test_two_plans_merged_into_dev_are_both_carried():
    x = merged(7, "feature/x", sha("fx"), "dev", sha("mx"))
    y = merged(8, "feature/y", sha("fy"), "dev", sha("my"))
    dev = env_facts(
        "dev", commit("my", sha("mx"), pulls=(8,)), commit("mx", pulls=(7,)), arrivals=(x, y)
    )
    state, _ = state_of(dev)
    assert state.env("dev").plans == ("y", "x")
    assert state.in_flight == (("y", "dev"), ("x", "dev"))


def test_a_pr_into_dev_from_a_branch_that_is_no_plan_is_a_violation():
    hotfix = merged(7, "hotfix", sha("fh"), "dev", sha("mh"))
    state, _ = state_of(env_facts("dev", commit("mh", pulls=(7,)), arrivals=(hotfix,)))
    assert "#7 from hotfix, not a plan's branch" in (state.env("dev").violation or "")


def test_a_direct_push_below_a_promotion_is_not_laundered_by_it():
    promotion = merged(9, "dev", L, "test", sha("merge"), body="Promote-Plan: x\n")
    pushed = commit("push", committer=ALICE)
    test = env_facts("test", commit("merge", pushed.sha, pulls=(9,)), pushed, arrivals=(promotion,))
    state, _ = state_of(test)
    assert state.env("test").violating == (pushed.sha,)
    assert state.env("test").violation == (
        f"test holds commits never validated in dev: {pushed.sha[:7]} (a direct push); "
        f"roll back with `promote rollback --env test` (back to {L[:7]}), "
        "or bring the change through dev"
    )


def test_a_pushed_commit_that_dev_validated_since_came_through_after_all():
    pushed = commit("push", committer=ALICE)
    dev = env_facts(
        "dev",
        commit("m", pushed.sha, validated=True),
        dataclasses.replace(pushed, validated=None),
        statuses=(st(3, "promote/dev", "success"),),
    )
    state, _ = state_of(dev, env_facts("test", pushed))
    assert state.env("test").violation is None


def test_a_skip_merge_into_production_is_a_violation_never_complete():
    skip = merged(5, "feature/x", sha("fx"), "main", sha("skip"))
    main = env_facts(
        "main", commit("skip", pulls=(5,)), arrivals=(skip,),
        statuses=(st(8, "promote/main", "pending"),),
    )  # fmt: skip
    state, snapshot = state_of(main)
    assert "#5 from feature/x skipped test" in (state.env("main").violation or "")
    assert decide(state, snapshot, PIPELINE).transition is None


def test_a_promotion_merged_at_a_head_dev_never_validated_is_a_violation():
    drifted = merged(9, "dev", sha("unvalidated"), "test", sha("merge"))
    dev = env_facts("dev", commit("unvalidated", pulls=(3,)))
    state, _ = state_of(dev, env_facts("test", commit("merge", pulls=(9,)), arrivals=(drifted,)))
    assert f"#9 brought {sha('unvalidated')[:7]}, which dev never validated" in (
        state.env("test").violation or ""
    )


def test_a_rebase_merge_is_one_arrival():
    promotion = merged(9, "dev", L, "test", sha("r2"), body="Promote-Plan: x\n")
    test = env_facts(
        "test", commit("r2", sha("r1"), pulls=(9,)), commit("r1", pulls=(9,)), arrivals=(promotion,)
    )
    state, _ = state_of(test)
    assert (state.env("test").plans, state.env("test").violation) == (("x",), None)


def test_a_commit_by_someone_else_below_a_rebase_is_not_part_of_it():
    promotion = merged(9, "dev", L, "test", sha("r2"), body="Promote-Plan: x\n")
    pushed = commit("r1", pulls=(9,), committer=ALICE)  # same PR, another hand: pushed by her
    test = env_facts("test", commit("r2", pushed.sha, pulls=(9,)), pushed, arrivals=(promotion,))
    state, _ = state_of(test)
    assert state.env("test").violating == (pushed.sha,)


def test_the_tools_revert_takes_what_it_reverted_out_of_the_branch():
    failed = merged(7, "feature/x", sha("fx"), "dev", sha("mx"))
    body = f"Promote-Rollback-Of: dev@{sha('mx')}\n"
    revert = merged(8, "promote/revert-dev-abc", sha("rv"), "dev", sha("mr"), body=body)
    dev = env_facts(
        "dev",
        commit("mr", sha("mx"), pulls=(8,)),
        commit("mx", pulls=(7,)),
        arrivals=(failed, revert),
    )
    state, _ = state_of(dev)
    assert (state.env("dev").plans, state.env("dev").taken_out) == ((), ("x",))
    assert state.env("dev").restores == f"dev@{sha('mx')}"


def test_a_revert_branch_that_names_nothing_below_it_proves_nothing():
    body = f"Promote-Rollback-Of: dev@{sha('elsewhere')}\n"
    fake = merged(8, "promote/revert-dev-abc", sha("rv"), "dev", sha("mr"), body=body)
    state, _ = state_of(env_facts("dev", commit("mr", pulls=(8,)), arrivals=(fake,)))
    assert "#8 from promote/revert-dev-abc, not a plan's branch" in (
        state.env("dev").violation or ""
    )


def test_before_promote_validated_anything_only_the_heads_own_arrival_is_judged():
    feature = merged(7, "feature/x", sha("fx"), "dev", sha("mx"))
    old = Commit(sha("old"), (sha("older"),), committer=ALICE)  # history from before promote
    dev = facts(
        "dev", sha("mx"), branch_head=sha("mx"), merged_pull=feature, arrivals=(feature,),
        history=(commit("mx", old.sha, pulls=(7,)), old),
    )  # fmt: skip
    state, _ = state_of(dev)
    assert (state.env("dev").plans, state.env("dev").violation) == (("x",), None)


# -- plans in flight, fix plans, completion -----------------------------------------------------


def test_a_fix_plan_brings_the_plans_whose_failure_it_fixes():
    fix = merged(7, "feature/fix-test-abc", sha("ff"), "dev", sha("mf"))
    plans = (
        Plan("fix-test-abc", "Fix", "inbox", 0, fix_key=f"test@{sha('x')}", failed_plans=("x",)),
        Plan("x", "X", "doing"),
    )
    state, _ = state_of(env_facts("dev", commit("mf", pulls=(7,)), arrivals=(fix,)), plans=plans)
    assert state.env("dev").plans == ("fix-test-abc", "x")


def test_production_is_promoted_until_r8_records_the_plans_done():
    promotion = merged(9, "test", L, "main", sha("m"), body="Promote-Plan: x\nPromote-Plan: y\n")
    main = env_facts(
        "main", commit("m", pulls=(9,)), arrivals=(promotion,),
        statuses=(st(8, "promote/main", "success"),),
    )  # fmt: skip
    doing = (Plan("x", status="doing"), Plan("y", status="doing"))
    state, snapshot = state_of(main, plans=doing)
    assert state.env("main").state is State.PROMOTED
    action = decide(state, snapshot, PIPELINE)
    assert (action.transition, action.effects) == ("R8", (CompletePlans(("x", "y")),))
    done = tuple(dataclasses.replace(p, status="done") for p in doing)
    assert state_of(main, plans=done)[0].env("main").state is State.COMPLETE


def test_r8_skips_a_plan_the_store_does_not_know():
    promotion = merged(9, "test", L, "main", sha("m"), body="Promote-Plan: x\nPromote-Plan: gone\n")
    main = env_facts(
        "main", commit("m", pulls=(9,)), arrivals=(promotion,),
        statuses=(st(8, "promote/main", "success"),),
    )  # fmt: skip
    state, snapshot = state_of(main, plans=(Plan("x", status="doing"),))
    assert decide(state, snapshot, PIPELINE).effects[0] == CompletePlans(("x",))
    state, _ = state_of(main, plans=(Plan("x", status="done"),))
    assert state.env("main").state is State.COMPLETE
