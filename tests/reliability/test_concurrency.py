"""Many ``promote next`` at once, as processes (forked after the parent imported everything,
each calling the CLI entry point ``promote_tasks.cli.main(["next", "--json"])`` in the sandbox
clone): nothing is written twice, and the journey still ends in the fault-free state.

Every process exits as designed: 0, or 3 when what it did recorded a failure (R3, R9), as it
does run alone; a loser either finds the lock held (exit 0, one line saying so) or takes it
after the winner and does what is left, often the following transition. So a journey has
fewer races than acting runs; the reviewer's approval is a person's act between races.

N = 8 at every acting ``next`` of both journeys; N = 2 and 4 at every one of the failure
journey (the one with R3 and R9, whose losers exit 3 when they take R9).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_tasks.console import HALTED
from tests.reliability.conftest import FORK
from tests.reliability.conftest import REVIEWER
from tests.reliability.conftest import Recorder
from tests.reliability.conftest import cli_next
from tests.reliability.conftest import differences
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import forked
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest
from tests.reliability.conftest import until_act
from tests.reliability.test_crash import FAILING

BUSY = "promote: another promote run holds the lock"


def race(driver: Recorder, n: int, tmp: Path) -> list[str | None]:
    """``n`` processes run ``next`` at the same moment, each exiting as designed; the
    transition each one took (None: it found the lock held, or nothing left to do)."""
    go = FORK.Event()
    outs = [tmp / f"next-{i}.json" for i in range(n)]
    children = [forked(cli_next(driver, go, str(out))) for out in outs]
    go.set()
    for child in children:
        child.join(120)
    took = []
    for child, out in zip(children, outs, strict=True):
        text = out.read_text(encoding="utf-8")
        err = Path(f"{out}.err").read_text(encoding="utf-8")
        if not text:  # it left the work to the lock's holder
            assert (child.exitcode, err.startswith(BUSY), err.count("\n")) == (0, True, 1), err
            took.append(None)
            continue
        transition = json.loads(text)["transition"]
        assert (child.exitcode, err) == (HALTED if transition in FAILING else 0, ""), text
        took.append(transition)
    return took


def races(driver: Recorder, n: int, tmp: Path) -> Counter[str]:
    """Drive the journey, racing ``n`` processes whenever a ``next`` would act (the reviewer
    approves when asked); every transition a raced process took."""
    taken: Counter[str] = Counter()
    while (reached := until_act(driver)) is not None:
        if reached.approval:
            driver.approve(REVIEWER)
            continue
        here = tmp / str(sum(taken.values()))
        here.mkdir()
        took = race(driver, n, here)
        assert any(took) or reached.label.startswith("-"), f"nobody acted: {reached.label}"
        assert duplicates(driver.api) == [], reached.label
        taken.update(t for t in took if t)
    return taken


def transitions(writes: list[tuple[str, int]]) -> Counter[str]:
    """The transitions of a journey's acting runs, as many times as each was taken."""
    return Counter(label.split()[0] for label, _ in writes if label.startswith("R"))


@pytest.mark.parametrize("journey", ["happy", "failure"])
def test_eight_at_every_acting_next(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    tmp_path: Path,
    journey: str,
) -> None:
    driver = new_driver(make_sandbox, journey)
    # Each transition taken once, by one of the eight: none twice, none skipped.
    assert races(driver, 8, tmp_path) == transitions(reference(journey)["writes"])
    assert to_rest(driver, journey, errors=0) == []
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), reference(journey)["fingerprint"]) == []


@pytest.mark.parametrize("n", [2, 4])
def test_two_and_four_at_every_acting_next(
    make_sandbox: Callable[..., Sandbox],
    reference: Callable[[str], dict[str, Any]],
    tmp_path: Path,
    n: int,
) -> None:
    driver = new_driver(make_sandbox, "failure")
    assert races(driver, n, tmp_path) == transitions(reference("failure")["writes"])
    assert to_rest(driver, "failure", errors=0) == []
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), reference("failure")["fingerprint"]) == []
