"""``promote adopt``: a team starting on branches promote never validated records each head as
its known-good baseline, once; where promote validated anything, nothing is overruled."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from promote_sandbox import Scenario
from tests.console import promote
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config

STAGES = ("stage", "preprod", "prod")  # branches promote has never validated anything on


def fresh(make_driver: Callable[..., Driver]) -> Driver:
    """A repository the team just adopted promote in: three environment branches at one
    commit (what ``promote init`` wrote), nothing validated there."""
    entries = "".join(
        f'[[environments]]\nname = "{name}"\nvalidators = ["health"]\n'
        + ("production = true\n" if name == "prod" else "")
        for name in STAGES
    )
    driver = make_driver(Scenario(merge_bot=True), config(extra=entries))
    setup = driver.api.commit("main", "Set up promote", {".github/promote/manual-test.md": "- x\n"})
    for name in STAGES:
        driver.api.post("/git/refs", {"ref": f"refs/heads/{name}", "sha": setup})
    return driver


def writes(driver: Driver) -> Counter[str]:
    return driver.api.writes()


def test_adopt_records_each_head_once_and_the_pipeline_rests(
    make_driver: Callable[..., Driver],
) -> None:
    driver = fresh(make_driver)
    before = driver.state()
    assert not any(
        e.state and e.state.value in ("promoted", "complete") for e in before.environments
    )

    lines = driver.run.adopt(None, dry_run=True)
    assert [line.split(":")[0] for line in lines] == list(STAGES)
    assert all("would adopt" in line for line in lines), lines
    baseline = writes(driver)

    lines = driver.run.adopt(None)
    assert all("= success on" in line for line in lines), lines
    wrote = writes(driver) - baseline
    assert wrote["POST /repos/{owner}/{repo}/statuses/{sha}"] == len(STAGES), wrote
    head = driver.api.head("stage")
    for name in STAGES:
        status = driver.api.latest(head, f"promote/{name}") or {}
        assert status.get("state") == "success", status
        assert "adopted by" in (status.get("description") or ""), status

    after = driver.state()
    assert [e.violation for e in after.environments] == [None, None, None]
    assert [e.state.value if e.state else None for e in after.environments] == [
        "promoted",
        "promoted",
        "complete",
    ]
    assert driver.until_rest()[-1].acted is False  # nothing to promote: all hold one commit

    again = writes(driver)
    lines = driver.run.adopt(None)
    assert all("already has a known-good commit (its head)" in line for line in lines), lines
    assert writes(driver) - again == Counter()


def test_adopt_overrules_nothing_promote_validated(make_driver: Callable[..., Driver]) -> None:
    driver = make_driver()  # the seed: every environment validated at its first commit
    driver.api.commit("dev", "A direct push", {"x.txt": "x\n"})
    before = writes(driver)
    lines = driver.run.adopt(None)
    assert len(lines) == 3, lines
    assert all("not adopted, already has a known-good commit" in line for line in lines), lines
    assert writes(driver) - before == Counter()
    assert driver.state().env("dev").violation  # still reported: adopt is no way around it


def test_adopt_of_an_unknown_environment_is_one_line_and_writes_nothing(
    make_driver: Callable[..., Driver],
) -> None:
    driver = fresh(make_driver)
    before = writes(driver)
    done = promote("adopt", "--env", "staging", cwd=driver.clone, env=driver.environ)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert "unknown environment 'staging'" in line, line
    assert writes(driver) - before == Counter()
