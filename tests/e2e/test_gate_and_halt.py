"""The pre-merge gate (``promote gate``) and the ``promote-halt`` hook against the sandbox."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Scenario
from promote_tasks.hooks import halt
from promote_tasks.model import PipelineState
from promote_tasks.model import State
from tests import console
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import gate
from tests.e2e.test_failures import open_other_pull
from tests.e2e.test_failures import promote

MakeDriver = Callable[..., Driver]
STATUS_WRITES = "POST /repos/{owner}/{repo}/statuses/{sha}"


@pytest.fixture
def halted(make_driver: MakeDriver) -> tuple[Driver, str, dict[str, Any]]:
    """A pipeline halted by dev's failed deploy (fix plan filed) and another plan's open PR."""
    driver = make_driver(failing("dev", "deploy"), config())
    state: PipelineState = drive_until(driver, filed("dev"))
    fix = state.env("dev").fix_plan
    assert fix is not None
    return driver, fix, open_other_pull(driver.api)


def gate_json(driver: Driver, *args: str) -> dict[str, Any]:
    done = promote(driver, "gate", "--json", *args)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return dict(json.loads(done.stdout))


def one_line_error(driver: Driver, *args: str) -> str:
    before = driver.api.writes()
    done = promote(driver, *args)
    assert (done.returncode, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith("promote: error: ")
    assert driver.api.writes() == before, "nothing written"
    return line.removeprefix("promote: error: ")


# -- promote gate ----------------------------------------------------------------------------


def test_the_gate_holds_other_work_while_halted_and_lets_the_fix_plan_through(
    halted: tuple[Driver, str, dict[str, Any]],
) -> None:
    driver, fix, other = halted
    api = driver.api
    api.post("/git/refs", {"ref": f"refs/heads/feature/{fix}", "sha": api.head("dev")})
    api.commit(f"feature/{fix}", "The fix\n", {"fix.txt": "fixed\n"})
    mine = api.post(
        "/pulls", {"title": "Fix", "head": f"feature/{fix}", "base": "dev", "draft": True}
    )
    data = gate_json(driver)
    assert data["repository"] == driver.sandbox.repository
    found = {g["pull"]: g for g in data["gates"]}
    assert found[other["number"]] == {
        "pull": other["number"],
        "sha": other["head"]["sha"],
        "state": "failure",
        "description": f"halted: a failure is unresolved; only fix plan {fix} may merge",
        "written": True,
    }
    assert (found[mine["number"]]["state"], found[mine["number"]]["description"]) == (
        "success",
        f"ready to merge (plan {fix})",
    )
    assert gate(api, other["head"]["sha"])["state"] == "failure"  # type: ignore[index]
    assert gate(api, mine["head"]["sha"])["state"] == "success"  # type: ignore[index]

    before = api.writes()
    again = gate_json(driver)
    assert [g["written"] for g in again["gates"]] == [False] * len(again["gates"])
    assert api.writes() == before, "a second gate writes nothing"

    (only,) = gate_json(driver, "--pr", str(other["number"]))["gates"]
    assert (only["pull"], only["written"]) == (other["number"], False)


def test_gate_text_output_says_what_it_wrote(halted: tuple[Driver, str, dict[str, Any]]) -> None:
    driver, fix, other = halted
    done = promote(driver, "gate", "--pr", f"#{other['number']}")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"#{other['number']} at {other['head']['sha'][:7]}: failure (halted: a failure is "
        f"unresolved; only fix plan {fix} may merge)\n"
    )


def test_gate_refuses_what_it_cannot_gate_in_one_line(
    halted: tuple[Driver, str, dict[str, Any]],
) -> None:
    driver, _, other = halted
    api = driver.api
    repository = driver.sandbox.repository
    assert (
        one_line_error(driver, "gate", "--pr", "9999") == f"no pull request #9999 in {repository}"
    )
    assert one_line_error(driver, "gate", "--pr", "seven") == (
        "--pr expects a pull request number, got 'seven'"
    )
    api.post("/git/refs", {"ref": "refs/heads/docs", "sha": api.head("main")})
    docs = api.post("/pulls", {"title": "Docs", "head": "feature/other", "base": "docs"})
    assert one_line_error(driver, "gate", "--pr", str(docs["number"])) == (
        f"pull request #{docs['number']} targets 'docs', not an environment branch "
        "(dev, test, main): the gate does not apply"
    )
    (merged,) = [p for p in api.pulls() if p["merged_at"] and p["base"]["ref"] == "dev"]
    assert one_line_error(driver, "gate", "--pr", str(merged["number"])) == (
        f"pull request #{merged['number']} is merged: only open PRs are gated"
    )
    api.call("PATCH", f"{api.repo_path}/pulls/{other['number']}", {"state": "closed"})
    assert one_line_error(driver, "gate", "--pr", str(other["number"])) == (
        f"pull request #{other['number']} is closed: only open PRs are gated"
    )


def test_the_gate_job_of_a_pr_merged_before_it_ran_has_nothing_to_gate(
    halted: tuple[Driver, str, dict[str, Any]], tmp_path: Path
) -> None:
    """The gate workflow's job for a PR's event may run after a person merged it: not an
    error (a red job for nothing), as long as it is that event's own PR."""
    driver, _, other = halted
    api = driver.api
    (merged,) = [p for p in api.pulls() if p["merged_at"] and p["base"]["ref"] == "dev"]
    event = tmp_path / "event.json"
    environ = {
        **{k: driver.environ[k] for k in ("GITHUB_API_URL", "GITHUB_REPOSITORY")},
        "GITHUB_TOKEN": driver.environ["GITHUB_TOKEN"],
        "GITHUB_EVENT_PATH": str(event),
    }
    before = api.writes()
    event.write_text(json.dumps({"pull_request": {"number": merged["number"]}}), "utf-8")
    done = console.promote("gate", "--pr", str(merged["number"]), cwd=driver.clone, env=environ)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    (line,) = done.stderr.splitlines()
    assert line == (
        f"promote: pull request #{merged['number']} is merged: only open PRs are gated; "
        "nothing to gate"
    )
    # Another PR's event (or an event file that says nothing) is no excuse: still an error.
    for text in (json.dumps({"pull_request": {"number": other["number"]}}), "not json"):
        event.write_text(text, "utf-8")
        done = console.promote("gate", "--pr", str(merged["number"]), cwd=driver.clone, env=environ)
        assert done.returncode == 1, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert api.writes() == before, "nothing written"


def test_a_skipping_pr_fails_and_so_does_every_pr_at_its_commit(make_driver: MakeDriver) -> None:
    driver = make_driver()
    api = driver.api
    feature = next(p for p in api.pulls() if p["base"]["ref"] == "dev")
    skipping = api.post(
        "/pulls", {"title": "Skip", "head": feature["head"]["ref"], "base": "main", "draft": True}
    )
    found = {g["pull"]: g for g in gate_json(driver)["gates"]}
    assert (found[skipping["number"]]["state"], found[skipping["number"]]["description"]) == (
        "failure",
        "skips an environment: main takes PRs from test only",
    )
    assert found[feature["number"]]["description"] == (
        f"#{skipping['number']} at this commit: skips an environment: main takes PRs from test only"
    )
    assert gate(api, feature["head"]["sha"])["state"] == "failure"  # type: ignore[index]
    api.call("PATCH", f"{api.repo_path}/pulls/{skipping['number']}", {"state": "closed"})
    (alone,) = gate_json(driver)["gates"]
    assert (alone["pull"], alone["state"], alone["written"]) == (feature["number"], "success", True)


def step_until(driver: Driver, transition: str, limit: int = 60) -> Step:
    """``next`` one step at a time (CI moving when the tool rests) until ``transition``."""
    for _ in range(limit):
        taken = driver.next()
        if taken.action.transition == transition:
            return taken
        if not taken.acted and not driver.sandbox.advance():
            driver.run.ahead += 300
    raise AssertionError(f"{transition} never came")


def test_a_promotion_pr_is_gated_as_it_opens(make_driver: MakeDriver) -> None:
    driver = make_driver()
    r7 = step_until(driver, "R7")
    (pull,) = [p for p in driver.api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == ("dev", "test")]  # fmt: skip
    assert r7.writes[STATUS_WRITES] == 1, "R7 itself wrote the gate"
    status = gate(driver.api, pull["head"]["sha"])
    assert status is not None
    assert (status["state"], status["description"]) == ("success", "ready to merge (plan add-greeting)")  # fmt: skip
    assert not driver.next().writes, "the next run finds the gate written"


# -- with promote/gate a required check (as the README advises) ---------------------------------

REQUIRED = ("promote/gate",)


def test_with_the_gate_required_a_plan_still_travels_to_complete(make_driver: MakeDriver) -> None:
    driver = make_driver(Scenario(merge_bot=True, required_checks=REQUIRED))
    state = drive_until(
        driver,
        lambda s: (s.env("main").plan, s.env("main").state) == ("add-greeting", State.COMPLETE),
        limit=60,
    )
    assert [e.state for e in state.environments] == [State.PROMOTED, State.PROMOTED, State.COMPLETE]
    merged = [p for p in driver.api.get("/pulls?state=all&per_page=100") if p["merged_at"]]
    assert sorted((p["head"]["ref"], p["base"]["ref"]) for p in merged) == [
        ("dev", "test"),
        ("feature/add-greeting", "dev"),
        ("test", "main"),
    ]
    for pull in merged:  # each merged only once its gate said success
        latest = gate(driver.api, pull["head"]["sha"])
        assert latest is not None
        assert latest["state"] == "success"


def test_with_the_gate_required_a_revert_rollback_still_merges(make_driver: MakeDriver) -> None:
    scenario = failing("test", "deploy", required_checks=REQUIRED)
    driver = make_driver(scenario, config(extra='rollback = "revert"\n'))
    state = drive_until(driver, filed("test"))
    assert state.env("test").restores is not None, "rolled back by the merged revert PR"
    every = driver.api.get("/pulls?state=all&per_page=100")
    (revert,) = [p for p in every if p["head"]["ref"].startswith("promote/revert-")]
    assert revert["merged_at"] is not None


# -- promote-halt ----------------------------------------------------------------------------


def push_of(driver: Driver, branch: str, **extra: str) -> dict[str, str]:
    """What pre-commit hands ``promote-halt`` for a push of ``branch`` to the sandbox."""
    environ = driver.run.environ or {}
    return {
        "GITHUB_API_URL": driver.environ["GITHUB_API_URL"],
        "GITHUB_REPOSITORY": driver.environ["GITHUB_REPOSITORY"],
        "GITHUB_TOKEN": environ["GITHUB_TOKEN"],
        "PRE_COMMIT_REMOTE_NAME": "origin",
        "PRE_COMMIT_REMOTE_URL": "https://example.invalid/shop.git",
        "PRE_COMMIT_REMOTE_BRANCH": f"refs/heads/{branch}",
        "PRE_COMMIT_TO_REF": "HEAD",
        **extra,
    }


def test_halt_refuses_other_work_naming_the_fix_plan_and_writes_nothing(
    halted: tuple[Driver, str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    driver, fix, _ = halted
    monkeypatch.chdir(driver.clone)
    before = driver.api.writes()
    assert halt.main([], push_of(driver, "feature/other")) == 1
    assert capsys.readouterr().err == (
        f"promote-halt: refused: work is halted until fix plan `{fix}` completes; only "
        f"`feature/{fix}` may be pushed, not `feature/other`.\n"
        f"  `promote status` shows the failure; push the fix to `feature/{fix}` and open a PR "
        "into `dev`.\n"
    )
    assert halt.main([], push_of(driver, f"feature/{fix}")) == 0
    assert capsys.readouterr().err == ""
    assert driver.api.writes() == before


def test_halt_refuses_everything_while_a_failure_has_no_fix_plan_yet(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = make_driver(failing("dev", "deploy"), config())
    step_until(driver, "R3")  # failed; R9 (rollback, fix plan) is the next run's work
    assert driver.state().halted
    assert driver.state().fix_plan is None
    monkeypatch.chdir(driver.clone)
    assert halt.main([], push_of(driver, "feature/anything")) == 1
    assert capsys.readouterr().err == (
        "promote-halt: refused: work is halted: a failure has no fix plan filed yet.\n"
        "  `promote next` rolls back and files it; `promote status` shows the failure.\n"
    )


def test_halt_lets_work_through_when_nothing_is_halted(
    make_driver: MakeDriver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = make_driver()
    monkeypatch.chdir(driver.clone)
    assert halt.main([], push_of(driver, "feature/next-thing")) == 0
    assert capsys.readouterr().err == ""


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("server", ["silent_server", "closed_port"])
def test_halt_without_an_answer_warns_or_refuses_within_its_timeout(
    make_driver: MakeDriver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    server: str,
) -> None:
    driver = make_driver()
    monkeypatch.chdir(driver.clone)
    url = request.getfixturevalue(server)
    environ = push_of(driver, "feature/x", GITHUB_API_URL=url)
    expected = (
        f"GitHub at {url} did not answer within 0.5 s (1 attempt)"
        if server == "silent_server"
        else "cannot reach"
    )
    assert halt.main(["--timeout", "0.5"], environ) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"promote-halt: warning: cannot tell whether work is halted ({expected}")
    assert err.endswith("; pushing anyway\n")
    assert environ["GITHUB_TOKEN"] not in err
    Path("promote.toml").write_text(config(extra='[hooks]\noffline = "refuse"\ntimeout = 0.5\n'))
    assert halt.main([], environ) == 1
    assert capsys.readouterr().err.startswith(
        f"promote-halt: refused: cannot tell whether work is halted: {expected}"
    )
