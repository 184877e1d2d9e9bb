"""Every write the tool makes (statuses, pulls, merges, issues and comments, git data, refs,
deployments, dispatches, contents, the lock's own) and the reviewer's approval makes (its
comment, the close of the checklist issue) answered once with a fault: each still has exactly
one effect, and the journey comes to rest in the fault-free end state.

``every_write_once(kind)`` faults the first attempt of each distinct write (method, path and
body, timestamps aside); the same write sent again is served, whether the tool's client
retries it or a later ``next`` re-derives it. Retry-After is 0, so no case sleeps.

Every run rides its faults out but one, by design: the deploy workflow's dispatch (the
rollback's redeploy) is never sent again in the run that lost its answer, since GitHub gives
no id to look for; that ``next`` ends with exit 1 and one line ("it may have been applied"),
and the next run looks for the dispatched run before it dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Sandbox
from tests.reliability.conftest import JOURNEYS
from tests.reliability.conftest import differences
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest

KINDS = ("502", "drop", "applied_then_dropped", "secondary_rate_limit")


def faulted_routes(sandbox: Sandbox) -> set[str]:
    """The write routes (``METHOD template``) the sandbox answered with a fault."""
    found = set()
    for request in sandbox.stats.to_json()["faulted"]:
        method, path = request.split(" ", 1)
        matched = sandbox.router.match(method, path)
        assert matched is not None, request
        found.add(f"{method} {matched[0].template}")
    return found


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_every_write_faulted_once_still_ends_in_the_fault_free_state(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    journey: str,
    kind: str,
) -> None:
    expected = reference(journey)["fingerprint"]
    driver = new_driver(make_sandbox, journey, retry_after=0)
    rule = driver.sandbox.faults.every_write_once(kind)
    failed = to_rest(driver, journey, errors=1)
    # By design (see above): only the rollback's dispatch, so only in the failure journey.
    assert len(failed) <= (journey == "failure"), failed
    assert all(line.endswith("(it may have been applied)") for line in failed), failed
    assert all("\n" not in line for line in failed), failed
    driver.sandbox.faults.clear()
    assert rule.hits >= sum(n for _, n in reference(journey)["writes"])  # every write met it
    assert faulted_routes(driver.sandbox) == set(driver.api.writes())  # every kind of write
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), expected) == []


def test_a_lost_dispatch_answer_is_one_line_naming_the_write(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    driver = new_driver(make_sandbox, "failure", retry_after=0)
    driver.sandbox.faults.target("POST", r"/dispatches$", "drop", times=1)
    (line,) = to_rest(driver, "failure", errors=1)
    assert line.endswith("(it may have been applied)"), line
    assert "create_workflow_dispatch" in line, line


def test_a_dispatch_applied_whose_answer_was_lost_is_found_and_next_goes_on(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
) -> None:
    driver = new_driver(make_sandbox, "failure", retry_after=0)
    rule = driver.sandbox.faults.target("POST", r"/dispatches$", "applied_then_dropped", times=1)
    assert to_rest(driver, "failure", errors=0) == []  # the look found the run: no red job
    assert rule.hits == 1
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), reference("failure")["fingerprint"]) == []
