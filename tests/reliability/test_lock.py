"""The lock's own writes under faults: a creation GitHub never applied is sent again, and one
that keeps failing is an error that says so, never "another promote run holds the lock"."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_tasks.errors import GitHubError
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
    assert driver.api.call("GET", f"/git/ref/{LOCK_REF}")[0] == 404  # taken, then dropped


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
