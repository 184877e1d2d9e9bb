"""The Actions emulator: the repository's own workflow files run on the sandbox's events, as
jobs of real subprocesses, visible through the Actions API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_sandbox.actions import cron_matches
from tests.sandbox.conftest import Client
from tests.sandbox.test_fidelity import validate

HELLO = """\
name: hello
run-name: hello ${{ inputs.who }}
on:
  workflow_dispatch:
    inputs:
      who: {required: false, default: world}
      pause: {required: false, default: "0"}
  issue_comment:
    types: [created]
  pull_request:
    types: [closed]
    branches: [dev]
  pull_request_target:
    types: [opened]
    branches: [dev]
  workflow_run:
    workflows: [Deploy]
    types: [completed]
  schedule:
    - cron: "*/15 * * * *"
permissions: {}
concurrency:
  group: hello-${{ github.repository }}
  cancel-in-progress: false
env:
  LEVEL_WORKFLOW: w
jobs:
  hi:
    if: >-
      github.event_name != 'issue_comment' ||
      contains(github.event.issue.labels.*.name, 'hello')
    runs-on: ubuntu-latest
    timeout-minutes: 2
    env:
      LEVEL_JOB: j
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2
        with:
          persist-credentials: false
      - id: first
        env:
          WHO: ${{ inputs.who }}
          TOKEN: ${{ secrets.GITHUB_TOKEN }}
          PAUSE: ${{ inputs.pause }}
        run: |
          echo "hello $WHO from $GITHUB_EVENT_NAME ($LEVEL_WORKFLOW$LEVEL_JOB)"
          python3 -c 'import json, os; e = json.load(open(os.environ["GITHUB_EVENT_PATH"])); print("payload", sorted(e))'
          test -f app.txt && echo "checked out $(git rev-parse HEAD)"
          echo "token in env: ${GITHUB_TOKEN:-no}; given: $TOKEN"
          echo "length=${#TOKEN}" >> "$GITHUB_OUTPUT"
          echo "### said hello to $WHO" >> "$GITHUB_STEP_SUMMARY"
          sleep "${PAUSE:-0}"
      - name: second
        run: echo "the first said ${{ steps.first.outputs.length }}"
      - name: never
        if: failure()
        run: echo "not reached"
"""


def _push_workflow(sandbox: Sandbox, path: str, text: str) -> None:
    clone = sandbox.clone_path

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)

    git("fetch", "-q", "origin")
    git("checkout", "-q", "-B", "setup", "origin/main")
    (clone / path).write_text(text, encoding="utf-8")
    git("add", path)
    git("commit", "-q", "-m", f"add {path}")
    git("push", "-q", "origin", "setup")
    sandbox.adopt("setup")


@pytest.fixture
def hello(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    sandbox = make_sandbox(actions=True)
    _push_workflow(sandbox, ".github/workflows/hello.yml", HELLO)
    return sandbox


def _runs(gh: Client, query: str = "") -> list[dict[str, Any]]:
    resp = gh.repo("GET", f"/actions/runs{query}")
    assert resp.status == 200, resp.text
    assert validate("ReposOwnerRepoActionsRunsGetResponse200", resp.text) == []
    return [r for r in resp.json["workflow_runs"] if r["path"].endswith("hello.yml")]


def _log(sandbox: Sandbox, gh: Client, run_id: int) -> str:
    jobs = gh.repo("GET", f"/actions/runs/{run_id}/jobs")
    assert validate("ReposOwnerRepoActionsRunsRunIdJobsGetResponse200", jobs.text) == []
    [job] = jobs.json["jobs"]
    resp = gh.repo("GET", f"/actions/jobs/{job['id']}/logs")
    assert resp.status == 302
    with urllib.request.urlopen(resp.headers["Location"]) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        return str(answer.read().decode())


def test_a_dispatched_workflow_runs_its_steps_with_the_actions_environment(
    hello: Sandbox,
) -> None:
    gh = Client(hello, hello.author_token)
    listed = gh.repo("GET", "/actions/workflows")
    assert validate("ReposOwnerRepoActionsWorkflowsGetResponse200", listed.text) == []
    assert "hello" in [w["name"] for w in listed.json["workflows"]]
    one = gh.repo("GET", "/actions/workflows/hello.yml")
    assert validate("Workflow", one.text) == []
    resp = gh.repo(
        "POST",
        "/actions/workflows/hello.yml/dispatches",
        {"ref": "main", "inputs": {"who": "bob"}, "return_run_details": True},
    )
    assert resp.status == 200, resp.text
    run_id = resp.json["workflow_run_id"]
    hello.wait_for_actions(60)
    run = gh.repo("GET", f"/actions/runs/{run_id}")
    assert validate("WorkflowRun", run.text) == []
    got = run.json
    assert (got["event"], got["status"], got["conclusion"]) == (
        "workflow_dispatch",
        "completed",
        "success",
    )
    assert got["display_title"] == "hello bob"
    assert got["actor"]["login"] == "alice"
    log = _log(hello, gh, run_id)
    assert "hello bob from workflow_dispatch (wj)" in log
    assert "payload ['inputs', 'ref', 'repository', 'sender', 'workflow']" in log
    assert "checked out " + hello.store.branch_sha("main") in log  # type: ignore[operator]
    assert "token in env: no; given: ***" in log  # only where the workflow puts it; masked
    assert hello.store.bot_token not in log
    assert "the first said 43" in log  # a step's output in the next step
    assert "not reached" not in log
    with hello.store.lock:
        [summary] = [r["summary"] for r in hello.actions.overview()["runs"]]  # type: ignore[union-attr]
    assert "### said hello to bob" in summary


def test_bad_dispatch_inputs_are_refused_as_github_does(hello: Sandbox) -> None:
    gh = Client(hello, hello.author_token)
    resp = gh.repo(
        "POST", "/actions/workflows/hello.yml/dispatches", {"ref": "main", "inputs": {"x": "1"}}
    )
    assert resp.status == 422
    assert "Unexpected inputs" in resp.json["message"]
    assert _runs(gh) == []


def test_writes_with_github_token_start_no_workflow_and_a_persons_do(hello: Sandbox) -> None:
    """GitHub's recursion rule: the bot's comment starts nothing; alice's does, and the job's
    ``if:`` skips it on an issue without the label."""
    bot = Client(hello, hello.store.bot_token)
    gh = Client(hello, hello.author_token)
    assert bot.repo("POST", "/issues/1/comments", {"body": "from a job"}).status == 201
    assert _runs(gh) == []
    assert gh.repo("POST", "/issues/1/comments", {"body": "from alice"}).status == 201
    hello.wait_for_actions(30)
    [run] = _runs(gh)
    assert (run["event"], run["conclusion"]) == ("issue_comment", "skipped")
    with hello.store.lock:
        assert "issue_comment on #1" in hello.actions.overview()["suppressed"]  # type: ignore[union-attr]
    assert bot("GET", "/user").status == 403  # an installation token is not a user's


def test_pull_request_events_and_a_deploy_completing_start_their_runs(hello: Sandbox) -> None:
    gh = Client(hello, hello.author_token)
    assert gh.repo("PUT", "/pulls/1/merge", {"merge_method": "merge"}).status == 200
    hello.settle()  # the simulated CI deploys dev: Deploy completes
    hello.wait_for_actions(60)
    everything = _runs(gh)
    # Both were created; they share one concurrency group (with the schedule, which the CI
    # steps tick), so a newer pending run may replace an older one, as on GitHub.
    assert {"pull_request", "workflow_run"} <= {r["event"] for r in everything}
    assert {r["event"] for r in everything} <= {"pull_request", "workflow_run", "schedule"}
    assert any(r["conclusion"] == "success" for r in everything)
    runs = _runs(gh, "?event=pull_request")
    assert runs
    assert runs[0]["head_branch"] == "feature/add-greeting"


def test_a_merge_made_with_github_token_starts_no_deploy(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(actions=True)
    bot = Client(sandbox, sandbox.store.bot_token)
    before = len(sandbox.store.runs)
    assert bot.repo("PUT", "/pulls/1/merge", {"merge_method": "merge"}).status == 200
    sandbox.settle()
    assert len(sandbox.store.runs) == before


def test_concurrency_keeps_one_running_and_the_newest_pending(hello: Sandbox) -> None:
    gh = Client(hello, hello.author_token)
    for who in ("one", "two", "three"):
        body = {"ref": "main", "inputs": {"who": who, "pause": "1"}}
        assert gh.repo("POST", "/actions/workflows/hello.yml/dispatches", body).status == 204
    hello.wait_for_actions(60)
    by_title = {r["display_title"]: r["conclusion"] for r in _runs(gh)}
    assert by_title == {"hello one": "success", "hello two": "cancelled", "hello three": "success"}


def test_timeout_minutes_ends_a_job_that_runs_too_long(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(actions=True, seconds_per_minute=0.5)
    _push_workflow(sandbox, ".github/workflows/hello.yml", HELLO)
    gh = Client(sandbox, sandbox.author_token)
    started = time.monotonic()
    body = {"ref": "main", "inputs": {"pause": "30"}}
    assert gh.repo("POST", "/actions/workflows/hello.yml/dispatches", body).status == 204
    sandbox.wait_for_actions(20)
    assert time.monotonic() - started < 15
    [run] = _runs(gh)
    assert run["conclusion"] == "cancelled"
    assert "exceeded the maximum execution time of 2 minutes" in _log(sandbox, gh, run["id"])


def test_schedule_ticks_on_the_sandbox_clock(hello: Sandbox) -> None:
    gh = Client(hello, hello.author_token)
    for _ in range(16):  # one CI step is a minute: */15 fires at least once
        hello.advance()
    hello.wait_for_actions(60)
    assert "schedule" in {r["event"] for r in _runs(gh)}


def test_this_repositorys_action_runs_as_a_composite_step(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(actions=True)
    workflow = """\
name: uses the action
on: workflow_dispatch
permissions: {}
jobs:
  status:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2
        with:
          persist-credentials: false
      - id: promote
        uses: promote-tasks/promote-tasks@0000000000000000000000000000000000000000
        with:
          command: config
      - run: echo "halted=${{ steps.promote.outputs.halted }} code=${{ steps.promote.outputs.exit-code }}"
"""
    _push_workflow(sandbox, ".github/workflows/uses.yml", workflow)
    gh = Client(sandbox, sandbox.author_token)
    assert gh.repo("POST", "/actions/workflows/uses.yml/dispatches", {"ref": "main"}).status == 204
    sandbox.wait_for_actions(120)
    [run] = [
        r
        for r in gh.repo("GET", "/actions/runs").json["workflow_runs"]
        if r["path"].endswith("uses.yml")
    ]
    log = _log(sandbox, gh, run["id"])
    assert run["conclusion"] == "success", log
    assert "stood in: installing promote-tasks" in log
    assert "halted=false code=0" in log


@pytest.mark.parametrize(
    ("cron", "when", "fires"),
    [
        ("*/15 * * * *", (2026, 12, 2, 10, 30), True),
        ("*/15 * * * *", (2026, 12, 2, 10, 31), False),
        ("0 9 * * 1-5", (2026, 12, 2, 9, 0), True),  # a Wednesday
        ("0 9 * * 0", (2026, 12, 2, 9, 0), False),
        ("5,10 * 2 12 *", (2026, 12, 2, 3, 10), True),
    ],
)
def test_cron_reads_as_posix_cron(cron: str, when: tuple[int, ...], fires: bool) -> None:
    stamp = time.strptime("{:04d}-{:02d}-{:02d} {:02d}:{:02d}".format(*when), "%Y-%m-%d %H:%M")
    assert cron_matches(cron, stamp) is fires


def test_the_actions_overview_is_json(hello: Sandbox) -> None:
    with urllib.request.urlopen(f"{hello.api_url}/_sandbox/actions") as answer:
        data = json.loads(answer.read())
    assert set(data) == {"runs", "suppressed", "errors", "minute"}


def test_a_pr_opened_with_github_token_gets_runs_that_wait_for_an_approval(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """GitHub's rule for workflow-made PRs: pull_request runs are created but need a person's
    approval (here: none comes, action_required); pull_request_target starts nothing."""
    sandbox = make_sandbox(actions=True)
    _push_workflow(sandbox, ".github/workflows/hello.yml", HELLO.replace("closed]", "opened]"))
    bot = Client(sandbox, sandbox.store.bot_token)
    gh = Client(sandbox, sandbox.author_token)
    subprocess.run(["git", "fetch", "-q", "origin"], cwd=sandbox.clone_path, check=True)
    (sandbox.clone_path / "more.txt").write_text("more\n")
    for args in (("checkout", "-q", "-B", "topic", "origin/main"), ("add", "more.txt"),
                 ("commit", "-q", "-m", "more"), ("push", "-q", "origin", "topic")):  # fmt: skip
        subprocess.run(["git", *args], cwd=sandbox.clone_path, check=True, capture_output=True)
    opened = bot.repo("POST", "/pulls", {"title": "t", "head": "topic", "base": "dev"})
    assert opened.status == 201, opened.text
    runs = _runs(gh)
    assert [(r["event"], r["status"], r["conclusion"]) for r in runs] == [
        ("pull_request", "completed", "action_required")
    ]
    assert _runs(gh, "?status=action_required") == runs
