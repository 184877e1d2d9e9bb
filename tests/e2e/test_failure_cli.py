"""``promote rollback`` for people: the same rollback as R9, asked for by hand, with
``--dry-run --json`` that writes nothing and one-line errors for bad input."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.cli import main
from promote_tasks.ledger import fix_plan_id
from promote_tasks.model import State
from tests.e2e.conftest import LOCK_WRITES
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.test_failures import dispatches
from tests.e2e.test_failures import drive_until
from tests.e2e.test_failures import failing
from tests.e2e.test_failures import filed
from tests.e2e.test_failures import promote
from tests.e2e.test_failures import rollbacks

MakeDriver = Callable[..., Driver]
Cli = Callable[..., tuple[int, str, str]]


SETTINGS = config(
    extra='[[environments]]\nname = "dev"\n[[environments]]\nname = "test"\n'
    'rollback = "revert"\n[[environments]]\nname = "main"\n'
)


def deployed_driver(sandbox: Sandbox) -> Driver:
    """The feature merged into dev and deployed there; nothing validated yet."""
    driver = Driver(sandbox, SETTINGS)
    driver.sandbox.settle()
    assert driver.state().env("dev").state is State.DEPLOYED
    return driver


@pytest.fixture(scope="module")
def shared(module_sandbox: Callable[[Scenario], Sandbox]) -> Driver:
    """One deployed sandbox for the tests that write nothing."""
    return deployed_driver(module_sandbox(Scenario(merge_bot=True)))


@pytest.fixture
def fresh(make_sandbox: Callable[..., Sandbox]) -> Driver:
    """A deployed sandbox of its own, for tests that write."""
    return deployed_driver(make_sandbox(scenario=Scenario(merge_bot=True)))


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Driver], Cli]:
    """``promote ...`` in process, in a sandbox clone, with a CI job's environment."""

    def bind(driver: Driver) -> Cli:
        monkeypatch.chdir(driver.clone)
        for key in ("GITHUB_API_URL", "GITHUB_REPOSITORY", "GITHUB_TOKEN"):
            monkeypatch.setenv(key, driver.environ[key])
        monkeypatch.delenv("GH_TOKEN", raising=False)
        monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

        def run(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
            return code, out, err

        return run

    return bind


def test_dry_run_json_says_exactly_what_would_happen_and_writes_nothing(
    shared: Driver, cli: Callable[[Driver], Cli]
) -> None:
    api, run = shared.api, cli(shared)
    head, before = api.head("dev"), api.get(f"/commits/{api.head('dev')}")["parents"][0]["sha"]
    writes = api.writes()
    code, out, err = run("rollback", "--env", "dev", "--dry-run", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "schema": 1,
        "environment": "dev",
        "failed_sha": head,
        "target": before,
        "strategy": "redeploy",
        "reason": f"asked for by hand (dev is deployed at {head[:7]})",
    }
    code, out, err = run("rollback", "--env", "test", "--to", before[:10], "--dry-run", "--json")
    assert code == 1
    assert (
        err.strip()
        == f"promote: error: --to {before[:10]} is the head of test itself: nothing to roll back"
    )
    code, out, _ = run("rollback", "--env", "dev", "--to", before[:10], "--dry-run")
    assert code == 0
    assert out.startswith(
        f"would roll back dev from {head[:7]} to {before[:7]} (asked for with --to) with redeploy\n"
    )
    assert api.writes() == writes


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "say which environment: --env NAME"),
        (("--env", "prod"), "unknown environment 'prod' (known: dev, test, main)"),
        (("--env", "dev", "--strategy", "undo"), "unknown rollback strategy 'undo' (known: redeploy, reset, revert)"),
        (("--env", "dev", "--strategy", "reset"), 'rollback strategy reset is opt-in and dev is configured for redeploy: set rollback = "reset" for dev to allow it'),
        (("--env", "dev", "--to", "0" * 40), f"--to {'0' * 40}: no such commit in acme/shop"),
        (("--env", "dev", "--to", "dev"), "--to dev is the head of dev itself: nothing to roll back"),
        (("--env", "test", "--to", "dev"), "--to dev is not an ancestor of test's head {test7}"),
    ],
    ids=["no-env", "unknown-env", "unknown-strategy", "reset-not-configured", "unknown-commit", "to-head", "not-ancestor"],
)  # fmt: skip
@pytest.mark.parametrize("dry", [True, False], ids=["dry", "wet"])
def test_bad_input_is_one_line_exit_1_and_nothing_written(
    shared: Driver, cli: Callable[[Driver], Cli], args: tuple[str, ...], error: str, dry: bool
) -> None:
    api, run = shared.api, cli(shared)
    writes = api.writes()
    code, out, err = run("rollback", *args, *(["--dry-run"] if dry else []))
    assert (code, out) == (1, "")
    assert err == "promote: error: " + error.format(test7=api.head("test")[:7]) + "\n"
    assert api.writes() == writes


def test_rollback_by_hand_records_the_failure_rolls_back_and_next_files_the_fix_plan(
    fresh: Driver, cli: Callable[[Driver], Cli]
) -> None:
    api, run, deployed = fresh.api, cli(fresh), fresh
    head = api.head("dev")
    before = api.get(f"/commits/{head}")["parents"][0]["sha"]
    code, out, err = run("rollback", "--env", "dev", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert (data["failed_sha"], data["target"], data["strategy"]) == (head, before, "redeploy")
    assert data["did"][0]["text"] == f"promote/dev = failure on {head[:7]}"
    assert data["did"][1]["text"].startswith(
        f"rolled back dev from {head[:7]} to {before[:7]} (newest known-good) with redeploy: created rollback deployment "
    )
    assert api.latest(head, "promote/dev")["description"] == "rolled back by hand"
    (record,) = rollbacks(api, "dev")
    assert record["payload"]["promote"] == {
        "rollback_of": head,
        "plan": fix_plan_id(f"dev@{head}"),
        "carries": ["add-greeting"],
    }
    assert len(dispatches(api)) == 1

    # Asking again changes nothing; next carries on from there as after R9's rollback.
    writes = api.writes()
    code, out, err = run("rollback", "--env", "dev")
    assert (code, err) == (0, "")
    assert "found rollback deployment" in out
    assert "already set off" in out
    assert api.writes() - writes == Counter(LOCK_WRITES), "only the lock it held while it looked"
    state = drive_until(deployed, filed("dev"))
    assert state.halted
    assert state.fix_plan == fix_plan_id(f"dev@{head}")
    assert state.env("dev").state is State.FAILED
    assert len(rollbacks(api, "dev")) == 1


def test_the_console_script_rolls_back_a_failed_environment(make_driver: MakeDriver) -> None:
    driver = make_driver(failing("dev", "smoke"))
    drive_until(driver, lambda s: s.env("dev").state is State.FAILED)
    dry = promote(driver, "rollback", "--env", "dev", "--dry-run", "--json")
    assert (dry.returncode, dry.stderr) == (0, "")
    data = json.loads(dry.stdout)
    assert data["reason"] == "dev is failed: promote/dev failure: failed: smoke"
    done = promote(driver, "rollback", "--env", "dev")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(
        "rolled back dev (dev is failed: promote/dev failure: failed: smoke)\n  - rolled back dev from "
    )
    assert len(rollbacks(driver.api, "dev")) == 1
    state = drive_until(driver, filed("dev"))
    assert len(rollbacks(driver.api, "dev")) == 1
    assert state.env("dev").rollback is not None
