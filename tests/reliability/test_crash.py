"""A run killed right after each of its writes: the runs after it end where a run that never
died ends, with nothing written twice (DESIGN §1).

Each case drives a journey fault-free, exactly as the reference run, up to one acting run (a
``next`` that writes, or the reviewer's ``promote approve``), then starts that run in a forked
child which the sandbox kills (SIGKILL, before answering) right after the child's k-th write
reached GitHub. The child dies holding the lock; its expiry is stood in for by deleting the
lock ref. The first run after it is ``promote next`` itself (its exit status is the designed
one: 0, or 3 when it records a failure); then ``next`` and the reviewer go on to rest, and the
end state is compared with the fault-free one.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_tasks.console import HALTED
from tests.e2e.conftest import duplicate_statuses
from tests.reliability.conftest import FORK
from tests.reliability.conftest import Recorder
from tests.reliability.conftest import child_approve
from tests.reliability.conftest import child_next
from tests.reliability.conftest import cli_next
from tests.reliability.conftest import differences
from tests.reliability.conftest import drop_stale_lock
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import forked
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest
from tests.reliability.conftest import up_to

LOCK_TAKING_WRITES = 2  # the lock's commit and its ref, before any write of the run
FAILING = ("R3", "R6", "R9")  # a next that takes one of these exits 3 (it halts)

# What each journey's acting runs write, fault-free (the lock's writes aside): the cases.
WRITES = {
    "happy": [
        ("R4 dev", 3), ("R5 dev", 3), ("R7 dev", 2),
        ("R4 test", 5), ("- test", 2), ("approve test", 2), ("R5 test", 2), ("R7 test", 2),
        ("R4 main", 4), ("- main", 2), ("R5 main", 2), ("R8 main", 3),
    ],
    "failure": [
        ("R4 dev", 3), ("R5 dev", 3), ("R7 dev", 2),
        ("R3 test", 1), ("R9 test", 2), ("R9 test", 3),
    ],
}  # fmt: skip
SHARED_PREFIX = 3  # both journeys begin R4, R5, R7 in dev alike: those crashes are run once
CASES = [
    pytest.param(journey, act, k, id=f"{journey}-{act}-{label.replace(' ', '-')}-w{k}")
    for journey, acts in WRITES.items()
    for act, (label, count) in enumerate(acts)
    for k in range(1, count + 1)
    if journey == "happy" or act >= SHARED_PREFIX
]


def first_run_after(driver: Recorder, tmp: Path) -> None:
    """``promote next`` as the CI job after the crash runs it: its exit status is 0, or 3
    when what it did recorded a failure; never 1."""
    go = FORK.Event()
    out = str(tmp / "next.json")
    child = forked(cli_next(driver, go, out))
    go.set()
    child.join(120)
    err = Path(f"{out}.err").read_text(encoding="utf-8")
    said = json.loads(Path(out).read_text(encoding="utf-8") or "{}")
    expected = HALTED if said.get("transition") in FAILING else 0
    assert (child.exitcode, err) == (expected, ""), said


@pytest.mark.parametrize("journey", list(WRITES))
def test_the_cases_are_the_journeys_writes(
    journey: str, reference: Callable[[str], dict[str, Any]]
) -> None:
    assert reference(journey)["writes"] == WRITES[journey]


@pytest.mark.parametrize(("journey", "act", "k"), CASES)
def test_a_run_killed_after_a_write_converges_to_the_fault_free_end(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    tmp_path: Path,
    journey: str,
    act: int,
    k: int,
) -> None:
    expected = reference(journey)["fingerprint"]
    driver = new_driver(make_sandbox, journey)
    reached = up_to(driver, act)
    assert reached.label == WRITES[journey][act][0]
    before = driver.api.writes()
    go = FORK.Event()
    body = child_approve(driver) if reached.approval else child_next(driver)

    def after_go() -> int:
        go.wait(30)
        return body()

    child = forked(after_go)
    assert child.pid is not None
    driver.sandbox.faults.kill_after(LOCK_TAKING_WRITES + k, child.pid)
    go.set()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert sum((driver.api.writes() - before).values()) == LOCK_TAKING_WRITES + k
    drop_stale_lock(driver.api)
    first_run_after(driver, tmp_path)
    assert to_rest(driver, journey, errors=0) == []
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), expected) == []


def test_duplicate_statuses_sees_a_repeat() -> None:
    """The duplicate check these tests lean on can fail."""
    same = {"context": "promote/dev", "state": "pending", "description": "x"}
    assert duplicate_statuses([{**same, "id": 1}, {**same, "id": 2}])


def test_the_duplicate_and_end_state_checks_see_what_they_look_for(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """On a real sandbox: a status, an issue and a comment written twice are each reported,
    and the fingerprint tells the state before them from the state after."""
    driver = new_driver(make_sandbox, "happy")
    api = driver.api
    assert duplicates(api) == []
    before = fingerprint(api)
    head = api.head("dev")
    for _ in range(2):
        api.post(f"/statuses/{head}", {"context": "promote/dev", "state": "pending"})
        number = api.post("/issues", {"title": "Manual test: test at abc1234"})["number"]
    api.post(f"/issues/{number}/comments", {"body": "approved"})
    api.post(f"/issues/{number}/comments", {"body": "approved"})
    found = duplicates(api)
    assert any("promote/dev" in d for d in found), found
    assert any(d.startswith("issue twice") for d in found), found
    assert any("comment twice" in d for d in found), found
    assert differences(fingerprint(api), before) != []
