"""The lock's own writes under faults: a creation GitHub never applied is sent again, and one
that keeps failing is an error that says so, never "another promote run holds the lock". And
its life: a crashed run's expired lock is taken over and said so; a lock held long is looked at
before it is dropped (another run may have taken it over), a short-held one is not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_tasks import session
from promote_tasks.errors import GitHubError
from promote_tasks.ledger import lock_message
from tests.e2e.conftest import Driver
from tests.reliability.conftest import LOCK_REF
from tests.reliability.conftest import new_driver

CREATE_REF = r"/git/refs$"


def test_a_lock_creation_answered_502_once_is_sent_again_and_next_goes_on(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    driver = new_driver(make_sandbox, "happy", retry_after=0)
    rule = driver.sandbox.faults.target("POST", CREATE_REF, "502", times=1)
    taken = driver.next()
    assert rule.hits == 1
    assert taken.acted, taken.label
    assert (
        driver.api.call("GET", f"{driver.api.repo_path}/git/ref/{LOCK_REF}")[0] == 404
    )  # taken, then dropped


def test_a_lock_creation_that_keeps_failing_is_an_error_not_a_busy_lock(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    driver = new_driver(make_sandbox, "happy", retry_after=0)
    before = driver.api.writes()
    driver.sandbox.faults.target("POST", CREATE_REF, "502", times=100)
    with pytest.raises(GitHubError) as raised:
        driver.next()
    message = str(raised.value)
    assert "cannot take promote's lock" in message, message
    assert "502" in message, message
    assert "holds the lock" not in message, message
    assert "may have been applied" not in message, message
    assert "\n" not in message
    driver.sandbox.faults.clear()
    wrote = driver.api.writes() - before
    assert set(wrote) <= {"POST /repos/{owner}/{repo}/git/commits"}, (
        wrote
    )  # only the lock commit, no ref, no status


def _lock(driver: Driver, since: str, until: str, owner: str = "crashed-job (run 7)") -> str:
    """A lock commit of another run, and the lock ref pointing to it."""
    api = driver.api
    tree = api.get(f"/git/commits/{api.head('main')}")["tree"]["sha"]
    message = lock_message(owner, since, until)
    sha = str(api.post("/git/commits", {"message": message, "tree": tree, "parents": []})["sha"])
    if api.call("GET", f"{api.repo_path}/git/ref/{LOCK_REF}")[0] == 200:
        status, _ = api.call("PATCH", f"{api.repo_path}/git/refs/{LOCK_REF}", {"sha": sha, "force": True})  # fmt: skip
    else:
        status, _ = api.call("POST", f"{api.repo_path}/git/refs", {"ref": f"refs/{LOCK_REF}", "sha": sha})  # fmt: skip
    assert status in (200, 201), status
    return sha


def test_a_lock_left_by_a_crashed_run_is_taken_over_once_it_expired_and_dropped(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """What a real team meets after a runner died mid-run: the next run says whose lock it
    took over, acts, and leaves no lock behind; the run after it finds nothing to take over."""
    driver = new_driver(make_sandbox, "happy")
    _lock(driver, "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z")
    taken = driver.next()
    assert taken.acted, taken.label
    notes = [d for d in taken.did if d.kind == "lock"]
    assert len(notes) == 1, taken.did
    assert "took over a stale lock (crashed-job (run 7)" in notes[0], notes
    assert driver.api.call("GET", f"{driver.api.repo_path}/git/ref/{LOCK_REF}")[0] == 404
    again = driver.next()
    assert not [d for d in again.did if d.kind == "lock"], again.did
    assert driver.api.call("GET", f"{driver.api.repo_path}/git/ref/{LOCK_REF}")[0] == 404


def test_a_lock_held_past_its_safe_time_is_looked_at_before_it_is_dropped(
    make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that held the lock so long that another may have taken it over (its clock ahead)
    looks before it drops it, and leaves the other run's lock in place."""
    driver = new_driver(make_sandbox, "happy")
    monkeypatch.setattr(session, "LOCK_SURELY_OURS", 0)
    snapshot = driver.run.facts()
    with driver.run.locked(snapshot, "next") as note:
        assert note is None
        theirs = _lock(driver, "2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "other-job")
    found = driver.api.call("GET", f"{driver.api.repo_path}/git/ref/{LOCK_REF}")
    assert found[0] == 200, found
    assert found[1]["object"]["sha"] == theirs, found


def test_a_lock_dropped_early_is_dropped_without_a_look(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """A lock held for less than its life less two minutes is surely still this run's: it is
    deleted with no read of the ref first (one request, not two)."""
    driver = new_driver(make_sandbox, "happy")
    snapshot = driver.run.facts()
    with driver.run.locked(snapshot, "next"):
        before = driver.run.github.stats.requests
    assert driver.run.github.stats.requests - before == 1
    assert driver.api.call("GET", f"{driver.api.repo_path}/git/ref/{LOCK_REF}")[0] == 404
