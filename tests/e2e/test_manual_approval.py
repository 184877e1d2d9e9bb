"""Manual approval: who may approve, bound to which sha, and what a rejection does.

A one-environment pipeline (``test``, its own production) reaches the manual test in two
steps; ``alice`` wrote the change and is made a designated reviewer so that the author rule,
not the reviewer list, is what stops her. Decisions go through the real ``promote`` CLI
(in-process, in the sandbox clone, with the sandbox's environment).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.cli import main
from promote_tasks.model import Result
from promote_tasks.model import State
from tests.e2e.conftest import Driver
from tests.e2e.conftest import one_env

CLI = Callable[..., tuple[int, str, str]]
TEST_ONLY = Scenario(merge_bot=True, environments=("test",))
SETTINGS = one_env("test", ("health", "manual"), reviewers=("rita", "alice"))


def wait_for_manual_test(driver: Driver) -> Driver:
    """Drive test to validating at the merged feature, waiting for the manual test only."""
    driver.sandbox.settle()
    assert driver.next().action.transition == "R4"
    driver.next()  # health passed
    rest = driver.next()
    assert not rest.acted
    assert rest.action.waiting_for is not None
    assert rest.action.waiting_for.endswith(": manual")
    return driver


@pytest.fixture(scope="module")
def waiting(module_sandbox: Callable[[Scenario], Sandbox]) -> Driver:
    """Shared by the tests that must not change the outcome (the approval test comes last)."""
    return wait_for_manual_test(Driver(module_sandbox(TEST_ONLY), SETTINGS))


@pytest.fixture
def fresh(make_driver: Callable[..., Driver]) -> Driver:
    return wait_for_manual_test(make_driver(TEST_ONLY, SETTINGS))


def cli_for(
    driver: Driver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> CLI:
    """``cli(login, *args)``: run ``promote <args>`` as ``login``; (exit code, stdout, stderr)."""
    monkeypatch.chdir(driver.clone)
    for key in ("GITHUB_API_URL", "GITHUB_REPOSITORY"):
        monkeypatch.setenv(key, driver.environ[key])
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)

    def run(login: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("GITHUB_TOKEN", driver.sandbox.token(login))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def cli(
    waiting: Driver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> CLI:
    return cli_for(waiting, monkeypatch, capsys)


def manual_verdict(driver: Driver) -> tuple[Result, str]:
    step = driver.steps[-1]
    state = driver.run.decide(step.snapshot)[0].env("test")
    verdict = next(v for v in state.verdicts if v.validator == "manual")
    return verdict.result, verdict.summary


def checklist(driver: Driver) -> dict[str, object]:
    issues = driver.api.issues("promote:checklist")
    assert len(issues) == 1
    return issues[0]


def test_checklist_issue_comes_from_the_template_assigned_to_the_reviewers_once(
    waiting: Driver,
) -> None:
    api = waiting.api
    sha = api.head("test")
    issue = checklist(waiting)
    template = api.file(".github/promote/manual-test.md", sha)
    assert template is not None
    body = str(issue["body"])
    assert body.startswith(template.rstrip())
    assert body.rstrip().endswith(f"Promote-Key: test@{sha}")
    assert issue["title"] == f"Manual test: test at {sha[:7]}"
    assert sorted(a["login"] for a in issue["assignees"]) == ["alice", "rita"]  # type: ignore[attr-defined]
    assert issue["state"] == "open"
    # More nexts open no second issue (replays right after R4 are in the journey test).
    for _ in range(2):
        assert not waiting.next().writes
    assert checklist(waiting)["number"] == issue["number"]


@pytest.mark.parametrize(
    ("login", "args", "message"),
    [
        ("alice", ("approve", "--env", "test"), "alice wrote this change and cannot approve or reject it"),
        ("bob", ("approve", "--env", "test"), "bob is not a designated reviewer of test (reviewers: rita, alice)"),
        ("alice", ("reject", "--env", "test", "--reason", "meh"), "alice wrote this change"),
        ("rita", ("reject", "--env", "test"), "say why: --reason TEXT"),
        ("rita", ("approve", "--env", "test", "--sha", "0" * 40), "decisions are bound to the exact sha"),
        ("rita", ("approve", "--env", "staging"), "unknown environment 'staging'"),
    ],
)  # fmt: skip
def test_refused_decisions_write_nothing(
    waiting: Driver, cli: CLI, login: str, args: tuple[str, ...], message: str
) -> None:
    before = waiting.api.writes()
    code, out, err = cli(login, *args)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("promote: error: ")
    assert message in err
    assert "Traceback" not in err
    assert waiting.sandbox.token(login) not in err
    assert waiting.api.writes() == before


def test_approvals_that_do_not_count(waiting: Driver) -> None:
    """Comments written straight on the issue: another sha, the author, a non-reviewer."""
    api = waiting.api
    sha = api.head("test")
    number = checklist(waiting)["number"]
    other = api.get(f"/commits/{sha}")["parents"][0]["sha"]  # the previous head of test
    assert other != sha
    rita = type(api)(waiting.sandbox, waiting.sandbox.token("rita"))
    rita.post(f"/issues/{number}/comments", {"body": f"Promote-Approve: {other}\n"})
    approve = {"body": f"Promote-Approve: {sha}\n"}
    api.post(f"/issues/{number}/comments", approve)  # alice, a reviewer but the author
    bob = type(api)(waiting.sandbox, waiting.sandbox.token("bob"))  # may comment, not approve
    bob.post(f"/issues/{number}/comments", approve)
    assert not waiting.next().acted
    assert manual_verdict(waiting)[0] is Result.PENDING
    assert api.latest(sha, "promote/test/manual")["state"] == "pending"


@pytest.mark.transition("R5", "R8")
def test_designated_reviewer_approves_the_exact_sha(waiting: Driver, cli: CLI) -> None:
    api = waiting.api
    sha = api.head("test")
    code, out, err = cli("rita", "approve", "--sha", sha[:7])
    assert (code, err) == (0, "")
    assert out.startswith(f"approved test at {sha[:7]} as rita: ")
    issue = checklist(waiting)
    assert issue["state"] == "closed"
    comments = api.comments(int(str(issue["number"])))
    assert (comments[-1]["user"]["login"], comments[-1]["body"].strip()) == (
        "rita",
        f"Promote-Approve: {sha}",
    )
    approved = waiting.next()
    assert approved.action.transition == "R5"
    assert manual_verdict(waiting) == (Result.PASSED, "approved by rita")
    manual = api.latest(sha, "promote/test/manual")
    assert (manual["state"], manual["target_url"]) == ("success", comments[-1]["html_url"])
    assert waiting.next().action.transition == "R8"


@pytest.mark.transition("R6")
def test_rejection_fails_the_instance(
    fresh: Driver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting, cli = fresh, cli_for(fresh, monkeypatch, capsys)
    api = waiting.api
    sha = api.head("test")
    code, out, err = cli("rita", "reject", "--env", "test", "--reason", "checkout is broken")
    assert (code, err) == (0, "")
    assert out.startswith(f"rejected test at {sha[:7]} as rita: ")
    failed = waiting.next()
    assert (failed.action.transition, failed.action.target) == ("R6", State.FAILED)
    manual = api.latest(sha, "promote/test/manual")
    assert (manual["state"], manual["description"]) == (
        "failure",
        "rejected by rita: checkout is broken",
    )
    verdict = api.latest(sha, "promote/test")
    assert (verdict["state"], verdict["description"]) == ("failure", "failed: manual")
