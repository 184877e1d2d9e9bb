"""Many ``promote next`` at once, as processes (forked after the parent imported everything,
each calling the CLI entry point ``promote_tasks.cli.main(["next"])`` in the sandbox clone):
nothing is written twice, every process exits 0 (a loser finds the lock held, or finds the
winner's write), and the journey still ends in the fault-free state. The one exception is the
documented one: a ``next`` that itself records a failure (R3, R9) exits 3 (halted), as it does
run alone; so in the failure journey 3 is allowed too. Losers that take the lock after the
winner may take the following transition themselves, so a journey has fewer races than
transitions.

N = 8 at every acting transition of both journeys; N = 2 and 4 at the first transition and
at the journey's last one (the costliest writes), to keep the module affordable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_tasks import cli
from promote_tasks.console import HALTED
from tests.e2e.conftest import Driver
from tests.reliability.conftest import FORK
from tests.reliability.conftest import JOURNEYS
from tests.reliability.conftest import at_rest
from tests.reliability.conftest import differences
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import forked
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest
from tests.reliability.test_crash import wait


def cli_next(driver: Driver, go: Any) -> Callable[[], int]:
    """``promote next`` in the clone as the author, once ``go`` is set."""

    def run() -> int:
        os.chdir(driver.clone)
        os.environ.update(driver.environ)
        os.environ["GITHUB_TOKEN"] = driver.sandbox.token(driver.sandbox.scenario.author)
        go.wait(30)
        return cli.main(["next"])

    return run


def race(driver: Driver, n: int) -> list[int | None]:
    """``n`` processes run ``next`` at the same moment; their exit codes."""
    go = FORK.Event()
    children = [forked(cli_next(driver, go)) for _ in range(n)]
    go.set()
    for child in children:
        child.join(120)
    return [child.exitcode for child in children]


def races(driver: Driver, journey: str, sizes: Callable[[int, bool], int]) -> int:
    """Drive the journey, racing ``sizes(step, last)`` processes whenever a ``next`` would
    act; the number of races run."""
    done = at_rest(journey)
    raced = 0
    for _ in range(60):
        driver.sandbox.settle()
        dry = driver.run.step(dry_run=True)
        if dry.action.effects:
            n = sizes(raced, dry.action.transition in ("R8", "R9"))
            codes = race(driver, n)
            assert set(codes) <= ({0, HALTED} if journey == "failure" else {0}), codes
            assert duplicates(driver.api) == []
            raced += 1
            continue
        rest = driver.next()
        if done(driver, rest):
            return raced
        wait(driver, rest)
    raise AssertionError("the journey did not finish")


@pytest.mark.parametrize("journey", list(JOURNEYS))
def test_eight_at_every_transition(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    journey: str,
) -> None:
    driver = new_driver(make_sandbox, journey)
    assert races(driver, journey, lambda step, last: 8) >= 2
    to_rest(driver, journey)
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), reference(journey)["fingerprint"]) == []


@pytest.mark.parametrize("n", [2, 4])
def test_two_and_four_at_the_first_and_last_transitions(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    n: int,
) -> None:
    driver = new_driver(make_sandbox, "failure")
    assert races(driver, "failure", lambda step, last: n if step == 0 or last else 1) >= 2
    to_rest(driver, "failure")
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), reference("failure")["fingerprint"]) == []
