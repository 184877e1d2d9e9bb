"""The whole journey on the sandbox: the feature PR merges into dev, and ``next`` (plus one
approval by the designated reviewer) carries plan add-greeting through dev, test and main.

One journey is driven per module; each test checks one promise about what it left on GitHub.
While driving, every transition is replayed three times from the same facts (a re-run after a
crash) and every resting point is met with three ``next`` calls: none of them may write.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.model import State
from tests.e2e.conftest import BOOKKEEPING
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.conftest import duplicate_statuses
from tests.e2e.conftest import one_env

PLAN = "add-greeting"
EXPECTED = [
    ("R4", "dev"), ("R5", "dev"), ("R7", "dev"),
    ("R4", "test"), ("R5", "test"), ("R7", "test"),
    ("R4", "main"), ("R5", "main"), ("R8", "main"),
]  # fmt: skip


class Journey:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.api = driver.api
        self.before_heads = {b: self.api.head(b) for b in ("dev", "test", "main")}
        self.before_pulls = self.api.pulls()

    def complete(self, driver: Driver, rest: Step) -> bool:
        state = driver.run.decide(rest.snapshot)[0]
        done = any(p.id == PLAN and p.done for p in rest.snapshot.plans)
        return state.env("main").state is State.COMPLETE and done


@pytest.fixture(scope="module")
def journey(module_sandbox: Callable[[Scenario], Sandbox]) -> Journey:
    driver = Driver(module_sandbox(Scenario(merge_bot=True)), config())
    trip = Journey(driver)
    driver.drive(trip.complete, reviewer="rita", tick=300, replays=3, idle_nexts=2)
    return trip


@pytest.mark.transition("R4", "R5", "R7", "R8")
def test_next_and_one_approval_reach_complete_in_main(journey: Journey) -> None:
    driver = journey.driver
    assert [(t, e) for t, e, _ in driver.transitions()] == EXPECTED
    assert driver.approvals == 1
    state = driver.state()
    assert [e.state for e in state.environments] == [State.PROMOTED, State.PROMOTED, State.COMPLETE]
    assert [e.plan for e in state.environments] == [PLAN, PLAN, PLAN]
    assert not state.halted
    assert state.active_plan is None
    for env in state.environments:
        assert env.sha is not None
        assert journey.api.latest(env.sha, f"promote/{env.name}")["state"] == "success"
    # The same code is now in every environment: main holds what test holds, which holds dev's.
    dev, test, main = (e.sha for e in state.environments)
    assert journey.api.get(f"/compare/{main}...{dev}")["status"] in ("behind", "identical")
    assert journey.api.get(f"/compare/{test}...{dev}")["status"] in ("behind", "identical")


def test_promotion_prs_carry_the_plan_and_the_author(journey: Journey) -> None:
    new = [
        p
        for p in journey.api.pulls()
        if p["number"] not in {q["number"] for q in journey.before_pulls}
    ]
    assert [(p["head"]["ref"], p["base"]["ref"]) for p in new] == [
        ("dev", "test"),
        ("test", "main"),
    ]
    for pull in new:
        body = pull["body"]
        assert pull["merged_at"] is not None
        assert f"\nPromote-Plan: {PLAN}\n" in f"\n{body}"
        assert "\nPromote-Author: alice\n" in body
        assert "rita" not in [
            line.split(": ")[1] for line in body.splitlines() if line.startswith("Promote-Author:")
        ]
        assert PLAN in pull["title"]
    # The evidence that it passed travels with the promotion.
    assert "health: passed" in new[0]["body"]
    assert "smoke: passed" in new[0]["body"]
    assert "manual: passed" in new[1]["body"]


def test_plan_file_moves_to_done_in_one_bookkeeping_commit(journey: Journey) -> None:
    api = journey.api
    commits = api.commits("dev", 20)
    bookkeeping = [c for c in commits if BOOKKEEPING in c["commit"]["message"]]
    assert len(bookkeeping) == 1
    head = commits[0]
    assert head["sha"] == bookkeeping[0]["sha"], "the move is the newest commit on dev"
    assert head["commit"]["message"].startswith(f"plans: complete {PLAN}")
    files = api.get(f"/commits/{head['sha']}")["files"]
    # doing/ keeps a .gitkeep: its last plan moved out, and git must not see the folder
    # renamed (an open PR adding a plan there would no longer merge).
    assert sorted((f["status"], f.get("previous_filename"), f["filename"]) for f in files) == [
        ("added", None, "plans/doing/.gitkeep"),
        ("renamed", f"plans/doing/{PLAN}.md", f"plans/done/{PLAN}.md"),
    ]
    before = api.file(f"plans/doing/{PLAN}.md", journey.before_heads["dev"])
    assert before is not None
    assert api.file(f"plans/done/{PLAN}.md", "dev") == before
    assert api.file(f"plans/doing/{PLAN}.md", "dev") is None
    # Only the feature merge and the bookkeeping commit landed on dev's first-parent line.
    merge = journey.driver.state().env("dev").sha
    assert [p["sha"] for p in head["parents"]] == [merge]
    assert api.get(f"/commits/{merge}")["parents"][0]["sha"] == journey.before_heads["dev"]


def test_bookkeeping_commit_starts_no_instance(journey: Journey) -> None:
    driver, api = journey.driver, journey.api
    driver.sandbox.settle()
    dev_tip = api.head("dev")
    runs = api.state()["runs"]
    assert not [r for r in runs if r["head_sha"] == dev_tip], "a plan move must not deploy"
    deployments = api.state()["deployments"]
    for _ in range(3):
        idle = driver.next()
        assert not idle.acted
        assert not idle.writes
        assert idle.action.waiting_for is None
    state = driver.state()
    assert [e.state for e in state.environments] == [State.PROMOTED, State.PROMOTED, State.COMPLETE]
    assert state.env("dev").sha != dev_tip, "the instance head is the merge, not the plan move"
    assert api.state()["deployments"] == deployments
    assert api.state()["runs"] == runs


def test_every_transition_happens_once_and_replays_write_nothing(journey: Journey) -> None:
    driver = journey.driver
    taken = driver.transitions()
    assert len(set(taken)) == len(taken)
    transition_steps = [s for s in driver.steps if s.action.transition]
    assert all(s.writes for s in transition_steps), "every transition writes something"
    assert len(driver.replays) == 3 * len(transition_steps)
    assert all(not wrote for _, wrote in driver.replays)
    # Exactly the promotion PRs, one checklist issue and one plan move were created.
    writes = sum((s.writes for s in driver.steps), start=type(driver.steps[0].writes)())
    assert writes["POST /repos/{owner}/{repo}/pulls"] == 2
    assert writes["POST /repos/{owner}/{repo}/git/commits"] == 1
    assert writes["POST /repos/{owner}/{repo}/issues"] == 1


def test_statuses_are_never_written_twice(journey: Journey) -> None:
    state = journey.driver.state()
    for env in state.environments:
        assert env.sha is not None
        statuses = journey.api.statuses(env.sha)
        assert not duplicate_statuses(statuses), env.name
        mine = [s for s in statuses if s["context"].startswith(f"promote/{env.name}")]
        # pending at R4 then the verdict: two statuses per context, nothing more.
        contexts = {s["context"] for s in mine}
        assert len(mine) == 2 * len(contexts)
        assert {journey.api.latest(env.sha, c)["state"] for c in contexts} == {"success"}


def test_manual_checklist_issue_opened_once_from_the_template(journey: Journey) -> None:
    api = journey.api
    test_sha = journey.driver.state().env("test").sha
    issues = api.issues("promote:checklist")
    assert len(issues) == 1
    issue = issues[0]
    template = api.file(".github/promote/manual-test.md", "test")
    assert template is not None
    assert issue["body"].startswith(template.rstrip())
    assert f"Promote-Key: test@{test_sha}" in issue["body"]
    assert [a["login"] for a in issue["assignees"]] == ["rita"]
    assert issue["state"] == "closed"
    decisions = [(c["user"]["login"], c["body"].strip()) for c in api.comments(issue["number"])]
    assert decisions == [("rita", f"Promote-Approve: {test_sha}")]


@pytest.mark.transition("R4", "R5", "R8")
def test_a_short_journey_with_ci_on_the_wall_clock(make_driver: Callable[..., Driver]) -> None:
    """CI runs in its own thread while ``next`` reads and writes: the same end, once each."""
    scenario = Scenario(merge_bot=True, environments=("main",))
    driver = make_driver(scenario, one_env("main", ("health", "smoke")), step_ms=5)
    for _ in range(200):  # a bound, not a timing: each idle round sleeps 20 ms
        taken = driver.next()
        assert taken.action.stop is None
        if any(p.id == PLAN and p.done for p in taken.snapshot.plans):
            break
        if not taken.acted:
            time.sleep(0.02)
    else:
        raise AssertionError(f"no completion: {driver.steps[-1].action}")
    assert [t for t, _, _ in driver.transitions()] == ["R4", "R5", "R8"]
    last = driver.steps[-1].snapshot
    sha = last.env("main").head  # below the plan move: plans live on the first branch, main
    assert sha is not None
    assert sha != driver.api.head("main")
    assert driver.run.decide(last)[0].env("main").state is State.COMPLETE
    assert driver.api.latest(sha, "promote/main")["state"] == "success"
    assert not duplicate_statuses(driver.api.statuses(sha))


def test_on_enterprise_server_runs_without_a_path_are_matched_by_workflow_id(
    make_driver: Callable[..., Driver],
) -> None:
    """GitHub Enterprise Server's workflow runs carry no ``path``: without the workflow id,
    the smoke runs would never be found and the journey would wait for ever."""
    driver = make_driver(Scenario(merge_bot=True, enterprise=True))
    runs = driver.api.get("/actions/runs")["workflow_runs"]
    assert runs
    assert all("path" not in r for r in runs)
    driver.drive(Journey(driver).complete, reviewer="rita", tick=300)
    assert driver.state().env("main").state is State.COMPLETE
