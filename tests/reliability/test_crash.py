"""A run killed right after each of its writes: the runs after it end where a run that never
died ends, with nothing written twice (DESIGN §1).

Each case drives a journey fault-free up to one transition, then runs that ``next`` in a
forked child which the sandbox kills (SIGKILL, before answering) right after the child's k-th
write of the transition reached GitHub. The child dies holding the lock; its expiry is stood
in for by deleting the lock ref. Then ``next`` (and the reviewer's approval) runs to rest and
the end state is compared with the fault-free one.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_tasks.machine import needs_person
from tests.e2e.conftest import Driver
from tests.e2e.conftest import duplicate_statuses
from tests.reliability.conftest import FORK
from tests.reliability.conftest import child_next
from tests.reliability.conftest import differences
from tests.reliability.conftest import drop_stale_lock
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import forked
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest

LOCK_TAKING_WRITES = 2  # the lock's commit and its ref, before any write of the transition

# What each journey's acting ``next`` writes, fault-free (the lock's writes aside): the cases.
WRITES = {
    "happy": [("R4 dev", 2), ("R5 dev", 2), ("R7 dev", 2), ("R4 main", 2), ("R5 main", 2),
              ("R8 main", 3)],
    "failure": [("R4 dev", 2), ("R5 dev", 2), ("R7 dev", 2), ("R3 main", 1), ("R9 main", 2),
                ("R9 main", 3)],
}  # fmt: skip
SHARED_PREFIX = 3  # both journeys begin R4, R5, R7 in dev alike: those crashes are run once
CASES = [
    pytest.param(journey, step, k, id=f"{journey}-{label.replace(' ', '-')}-{step}-w{k}")
    for journey, steps in WRITES.items()
    for step, (label, count) in enumerate(steps)
    for k in range(1, count + 1)
    if journey == "happy" or step >= SHARED_PREFIX
]


def wait(driver: Driver, rest: Any) -> None:
    """What a person or the clock does when ``next`` has nothing to do (as ``drive`` does)."""
    person = needs_person(rest.state, rest.action, driver.run.pipeline)
    if person and "manual" in person:
        driver.approve("rita")
    elif not driver.sandbox.advance():
        driver.run.ahead += 300


def up_to(driver: Driver, step: int) -> None:
    """Drive fault-free until ``step`` acting ``next`` runs have been taken."""
    acted = 0
    for _ in range(60):
        if acted == step:
            return
        driver.sandbox.settle()
        rest = driver.next()
        if rest.acted:
            acted += 1
        else:
            wait(driver, rest)
    raise AssertionError(f"never reached acting step {step}")


def kill_inside(driver: Driver, writes: int) -> int | None:
    """Run ``next`` in children until one is killed by the sandbox after ``writes`` writes
    (a ``next`` with nothing to do writes nothing and exits 0); the last one's exit code."""
    for _ in range(20):
        go = FORK.Event()
        target = child_next(driver)

        def after_go(go: Any = go, target: Callable[[], int] = target) -> int:
            go.wait(30)
            return target()

        child = forked(after_go)
        assert child.pid is not None
        driver.sandbox.faults.kill_after(writes, child.pid)
        go.set()
        child.join(60)
        if child.exitcode != 0:
            return child.exitcode
        driver.sandbox.settle()
        dry = driver.run.step(dry_run=True)
        if not dry.action.effects:
            wait(driver, dry)
    raise AssertionError("no child ever acted")


@pytest.mark.parametrize("journey", list(WRITES))
def test_the_cases_are_the_journeys_writes(
    journey: str, reference: Callable[[str], dict[str, Any]]
) -> None:
    assert reference(journey)["writes"] == WRITES[journey]


@pytest.mark.parametrize(("journey", "step", "k"), CASES)
def test_a_run_killed_after_a_write_converges_to_the_fault_free_end(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    journey: str,
    step: int,
    k: int,
) -> None:
    expected = reference(journey)["fingerprint"]
    driver = new_driver(make_sandbox, journey)
    up_to(driver, step)
    driver.sandbox.settle()
    before = driver.api.writes()
    assert kill_inside(driver, LOCK_TAKING_WRITES + k) == -signal.SIGKILL
    assert sum((driver.api.writes() - before).values()) == LOCK_TAKING_WRITES + k
    drop_stale_lock(driver.api)
    to_rest(driver, journey)
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), expected) == []


def test_duplicate_statuses_sees_a_repeat() -> None:
    """The duplicate check these tests lean on can fail."""
    same = {"context": "promote/dev", "state": "pending", "description": "x"}
    assert duplicate_statuses([{**same, "id": 1}, {**same, "id": 2}])
