"""The faults of test_faults.py over HTTP/2, as api.github.com is reached: the sandbox behind
its HTTP/2 front, over TLS, on the tool's own connection. A cut connection there loses every
stream on it at once, reads and writes in flight together: the reads are asked again on a new
connection, each write is looked for before it is sent again, and the journey still ends in the
fault-free end state with no write made twice."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_sandbox.h2front import H2Front
from promote_tasks.session import Run
from tests.reliability.conftest import Recorder
from tests.reliability.conftest import differences
from tests.reliability.conftest import duplicates
from tests.reliability.conftest import fingerprint
from tests.reliability.conftest import new_driver
from tests.reliability.conftest import to_rest


def port_of(sandbox: Sandbox) -> int:
    return int(sandbox.api_url.rsplit(":", 1)[1])


@pytest.fixture
def fronted(
    make_sandbox: Callable[..., Sandbox], certificate: Path
) -> Iterator[Callable[[str], tuple[Recorder, H2Front]]]:
    """A journey's driver whose runs (the tool's, the reviewer's) reach the sandbox through
    its HTTP/2 front."""
    fronts: list[H2Front] = []

    def make(journey: str) -> tuple[Recorder, H2Front]:
        driver = new_driver(make_sandbox, journey, retry_after=0)
        front = H2Front(port_of(driver.sandbox), str(certificate), str(certificate)).start()
        fronts.append(front)
        driver.environ["GITHUB_API_URL"] = front.url
        driver.run = driver.as_user(driver.sandbox.scenario.author)
        return driver, front

    yield make
    for front in fronts:
        front.stop()


def test_a_read_rides_out_a_connection_cut_under_a_whole_wave(
    fronted: Callable[[str], tuple[Recorder, H2Front]],
) -> None:
    driver, front = fronted("happy")
    plain = Run.load(driver.clone, environ=driver.sandbox.env()).facts()
    rule = driver.sandbox.faults.target("GET", r"/deployments$", "drop", times=1)
    run = Run.load(driver.clone, environ=driver.environ)
    facts = run.facts()
    assert rule.hits == 1
    assert facts.environments == plain.environments
    assert set(front.stats.protocols) == {"h2"}
    assert len(front.stats.protocols) == 2  # the cut one, and the one the reads went on on
    assert run.github.stats.retries >= 1


@pytest.mark.parametrize("kind", ["drop", "applied_then_dropped"])
@pytest.mark.parametrize("journey", ["happy", "failure"])
def test_every_write_cut_off_once_over_http2_still_ends_in_the_fault_free_state(
    fronted: Callable[[str], tuple[Recorder, H2Front]],
    reference: Callable[[str], dict[str, Any]],
    journey: str,
    kind: str,
) -> None:
    expected = reference(journey)["fingerprint"]
    driver, front = fronted(journey)
    rule = driver.sandbox.faults.every_write_once(kind)
    failed = to_rest(driver, journey, errors=1)
    # as over HTTP/1.1: only the rollback's dispatch (no id to look for) may end a run
    assert len(failed) <= (journey == "failure"), failed
    assert all(line.endswith("(it may have been applied)") for line in failed), failed
    driver.sandbox.faults.clear()
    assert rule.hits >= sum(n for _, n in reference(journey)["writes"])
    assert len(front.stats.protocols) > rule.hits  # each cut cost its connection
    assert set(front.stats.protocols) == {"h2"}
    assert duplicates(driver.api) == []
    assert differences(fingerprint(driver.api), expected) == []
