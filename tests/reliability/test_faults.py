"""Every write the tool makes (statuses, pulls, merges, issues and comments, git data, refs,
deployments, dispatches, contents, the lock's own) answered once with a fault: each still has
exactly one effect, and the journey comes to rest in the fault-free end state.

``every_write_once(kind)`` faults the first attempt of each distinct write (method, path and
body, timestamps aside); the same write sent again is served, whether the tool's client
retries it or a later ``next`` re-derives it. Retry-After is 0, so no case sleeps.
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
    to_rest(driver, journey)
    driver.sandbox.faults.clear()
    assert rule.hits >= sum(n for _, n in reference(journey)["writes"])  # every write met it
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), expected) == []
