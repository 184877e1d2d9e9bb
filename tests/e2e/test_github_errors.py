"""GitHub going wrong, against the sandbox over real HTTP with real ghapi.

Every failure a person can meet (bad or missing token, no access, unknown repository, network
down, timeouts, malformed settings) is one line, in-process (``PromoteError``) and through the
``promote`` console script (``promote: error: ...``, exit 1, no traceback), and never carries the
token. Faults the sandbox injects are retried within bounds, honouring ``Retry-After``; repeated
reads cost 304s; a write whose answer is lost is neither lost nor made twice.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_sandbox import testing
from promote_sandbox.server import FaultPlan
from promote_tasks.default_plugins.plan_stores import Issues
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.github import Connection
from promote_tasks.github import GitHub
from promote_tasks.github import UncertainWrite
from promote_tasks.model import Pipeline
from promote_tasks.model import Plan
from promote_tasks.model import Snapshot
from promote_tasks.session import Run

# The shared sandbox fixture, bound here so this module does not depend on a conftest.
make_sandbox = testing.make_sandbox

PROMOTE = Path(sys.executable).with_name("promote")
FAKE_TOKEN = "sbx_nobody_0123456789abcdef01234567"  # well-formed, unknown to the sandbox


class Waits(list[float]):
    """A ``sleep`` for ``GitHub(...)`` that records the waits asked for instead of sleeping."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def control(sandbox: Sandbox, tail: str) -> Any:
    """The sandbox's control endpoints (never faulted, never delayed)."""
    with urllib.request.urlopen(f"{sandbox.api_url}/_sandbox/{tail}", timeout=10) as response:
        return json.load(response)


def pipeline_of(sandbox: Sandbox) -> Pipeline:
    return Run.load(Path(sandbox.env()["PROMOTE_CLONE"]), environ=sandbox.env()).pipeline


def client(sandbox: Sandbox, token: str | None = None, **kwargs: Any) -> GitHub:
    token = token or sandbox.author_token
    return GitHub(Connection(sandbox.repository, token, sandbox.api_url), **kwargs)


def same_facts(a: Snapshot, b: Snapshot) -> bool:
    return dataclasses.replace(a, taken_at="") == dataclasses.replace(b, taken_at="")


def launch(args: list[str], sandbox: Sandbox, **overrides: str | None) -> subprocess.Popen[str]:
    """The real console script, in the sandbox clone, with the sandbox's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "PROMOTE_"))}
    env.update(sandbox.env())
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.Popen(
        [str(PROMOTE), *args],
        cwd=sandbox.env()["PROMOTE_CLONE"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def promote(
    args: list[str], sandbox: Sandbox, **overrides: str | None
) -> subprocess.CompletedProcess[str]:
    return finish(launch(args, sandbox, **overrides))


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("promote: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


# -- every error a person can meet: one line, exit 1, no token ---------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A way GitHub access goes wrong: how to provoke it and a fragment of the message."""

    id: str
    expected: str
    environ: Callable[[Sandbox], dict[str, str | None]]
    sandbox: dict[str, Any] = dataclasses.field(default_factory=dict)
    command: tuple[str, ...] = ("status",)
    as_bob: bool = False  # the read-only user, writing

    def make(self, make_sandbox: Callable[..., Sandbox]) -> Sandbox:
        sandbox = make_sandbox(step_ms=0, **self.sandbox)
        if self.command[0] == "next":
            sandbox.settle()  # the merge bot merged PR #1 and dev deployed: next writes
        return sandbox


CASES = [
    Case("bad-token", "GitHub rejected the token (401", lambda s: {"GITHUB_TOKEN": FAKE_TOKEN}),
    Case(
        "read-only-user-writes",
        # next's first write is its lock; a status written directly is refused the same way
        "on acme/shop (403: Resource not accessible by personal access token)",
        lambda s: {"GITHUB_TOKEN": s.token("bob")},
        sandbox={"scenario": Scenario(merge_bot=True)},
        command=("next",),
    ),
    Case(
        "unknown-repository",
        "repository acme/nope not found, or the token cannot see it (404)",
        lambda s: {"GITHUB_REPOSITORY": "acme/nope"},
    ),
    Case(
        "network-down",
        "cannot reach GitHub at http://127.0.0.1:",
        lambda s: {"GITHUB_API_URL": f"http://127.0.0.1:{closed_port()}"},
    ),
    Case(
        "timeout",
        "did not answer within 0.2 s (5 attempts of repos.list_commits; PROMOTE_HTTP_TIMEOUT per request)",
        lambda s: {"PROMOTE_HTTP_TIMEOUT": "0.2"},
        sandbox={"latency_ms": 1500},
    ),
    Case(
        "missing-token",
        "no GitHub token: set GITHUB_TOKEN (or GH_TOKEN)",
        lambda s: {"GITHUB_TOKEN": None, "GH_TOKEN": None},
    ),
    Case(
        "malformed-repository",
        "repository 'acme-shop' is not owner/name",
        lambda s: {"GITHUB_REPOSITORY": "acme-shop"},
    ),
    Case(
        "repository-with-a-path",
        "repository 'acme/shop/extra' is not owner/name",
        lambda s: {"GITHUB_REPOSITORY": "acme/shop/extra"},
    ),
    Case(
        "token-with-a-space",
        "GITHUB_TOKEN is malformed",
        lambda s: {"GITHUB_TOKEN": f"token {s.author_token}"},
    ),
    Case(
        "token-with-a-line-break",
        "GITHUB_TOKEN is malformed",
        lambda s: {"GITHUB_TOKEN": f"{s.author_token}\nX-Evil: 1"},
    ),
    Case(
        "bad-timeout-setting",
        "PROMOTE_HTTP_TIMEOUT='soon' is not a positive number",
        lambda s: {"PROMOTE_HTTP_TIMEOUT": "soon"},
    ),
]


def secrets_of(sandbox: Sandbox, environ: dict[str, str | None]) -> list[str]:
    """Every token string that must not be shown: the sandbox's and the one passed in."""
    found = [u["token"] for u in sandbox.users.values()] + [FAKE_TOKEN]
    given = environ.get("GITHUB_TOKEN")
    if given:
        found += [given, *given.split()]
    return [t for t in found if len(t) >= 8]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_is_one_line_without_the_token_in_process(
    case: Case, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = case.make(make_sandbox)
    environ = {**sandbox.env(), **case.environ(sandbox)}
    environ = {k: v for k, v in environ.items() if v is not None}
    run = Run.load(Path(sandbox.env()["PROMOTE_CLONE"]), environ=environ)

    def attempt() -> None:
        github = GitHub(Connection.from_environment(None, environ), sleep=Waits())
        if case.command[0] == "next":
            head = control(sandbox, "state")["environments"]["dev"]["head"]
            github.run(github.set_status(head, "promote/dev", "pending", "validating"))
        else:
            github.run(github.read_snapshot(run.pipeline))

    with pytest.raises(PromoteError) as raised:
        attempt()
    message = str(raised.value)
    assert case.expected in message
    assert "\n" not in message
    for secret in secrets_of(sandbox, case.environ(sandbox)):
        assert secret not in message
        assert secret not in repr(raised.value)


@pytest.fixture(scope="module")
def console_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Sandbox, dict[str, str | None], subprocess.Popen[str]]]]:
    """Every case's ``promote`` process, all started at once (each pays ~1 s of imports)."""
    sandboxes: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sandboxes.append(start(tmp_path_factory.mktemp("sandbox"), **kwargs))
        return sandboxes[-1]

    runs = {}
    try:
        for case in CASES:
            sandbox = case.make(make)
            overrides = case.environ(sandbox)
            runs[case.id] = (sandbox, overrides, launch(list(case.command), sandbox, **overrides))
        yield runs
    finally:
        for _, _, process in runs.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
        for sandbox in sandboxes:
            sandbox.stop()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_error_is_one_line_without_the_token_from_the_console_script(
    case: Case,
    console_runs: dict[str, tuple[Sandbox, dict[str, str | None], subprocess.Popen[str]]],
) -> None:
    sandbox, overrides, process = console_runs[case.id]
    result = finish(process)
    assert_one_line_error(result, case.expected)
    for secret in secrets_of(sandbox, overrides):
        assert secret not in result.stdout + result.stderr


def test_a_token_read_from_a_file_with_its_newline_still_works(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    result = promote(["status", "--json"], sandbox, GITHUB_TOKEN=sandbox.author_token + "\n")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert sandbox.author_token not in result.stdout + result.stderr
    assert data  # a real status, read with the stripped token


def test_an_error_never_echoes_the_token_even_when_the_server_quotes_it() -> None:
    """Defence in depth: whatever text an error carries, the token is masked."""
    github = GitHub(Connection("acme/shop", "sbx_secret_token_1234", "http://127.0.0.1:1"))

    class Echo(Exception):
        message = "Illegal header value b'token sbx_secret_token_1234'"
        status_code = 400

    error = github._error(Echo(), "repos.get", {})
    assert "sbx_secret_token_1234" not in str(error)
    assert "***" in str(error)


# -- retries ------------------------------------------------------------------------------------


def test_a_status_read_succeeds_through_faults_and_waits_as_told(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(fault_rate=0.3, seed=11, retry_after=7)
    pipeline = pipeline_of(sandbox)
    waits = Waits()
    # 8 attempts: at 30 % faults, five in a row on one of ~45 requests is a 1-in-10 event.
    github = client(sandbox, attempts=8, sleep=waits)
    first = github.run(github.read_snapshot(pipeline))

    faults = control(sandbox, "stats")["faults"]
    rate_limited = faults.get("secondary_rate_limit", 0) + faults.get("429", 0)
    assert github.stats.retries > 0
    assert github.stats.retries == sum(faults.values())  # each fault cost exactly one retry
    assert rate_limited > 0, faults
    assert waits.count(7.0) == rate_limited  # Retry-After, to the second, for 403 and 429
    assert all(w < 7.0 for w in waits if w != 7.0)  # 502 / dropped: short backoff
    heads = {name: env["head"] for name, env in control(sandbox, "state")["environments"].items()}
    assert {e.name: e.head for e in first.environments} == heads

    # A second, independent client under the same faults reads the same facts.
    again = client(sandbox, attempts=8, sleep=Waits())
    assert same_facts(again.run(again.read_snapshot(pipeline)), first)
    assert again.stats.retries > 0


def test_status_through_faults_from_the_console_script(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(fault_rate=0.2, seed=3, retry_after=0)
    result = promote(["status", "--json"], sandbox)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)
    assert sum(control(sandbox, "stats")["faults"].values()) > 0


def test_retries_are_bounded_and_end_in_one_line(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(fault_rate=1.0, seed=5, retry_after=1)
    waits = Waits()
    github = client(sandbox, attempts=3, sleep=waits)
    with pytest.raises(GitHubError) as raised:
        github.run(github.repository())
    assert github.stats.requests == 3
    assert github.stats.retries == len(waits) == 2
    assert sum(control(sandbox, "stats")["faults"].values()) == 3
    message = str(raised.value)
    assert "\n" not in message
    assert "repos.get" in message or "cannot reach GitHub" in message
    assert sandbox.author_token not in message


def test_a_failing_read_tries_each_request_exactly_attempts_times(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(fault_rate=1.0, seed=5, retry_after=1)
    pipeline = pipeline_of(sandbox)
    github = client(sandbox, attempts=3, sleep=Waits())
    with pytest.raises(GitHubError):
        github.run(github.read_snapshot(pipeline))
    n = len(pipeline.environments)
    first_wave = n + 2  # the branches' commits, the deployments, the open PRs
    assert github.stats.requests == 3 * first_wave
    assert sum(control(sandbox, "stats")["faults"].values()) == 3 * first_wave


def test_the_console_script_gives_up_after_its_attempts(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(fault_rate=1.0, seed=5, retry_after=0)
    result = promote(["status"], sandbox)
    assert_one_line_error(result, "")
    assert "Task exception" not in result.stderr
    attempts = inspect.signature(GitHub).parameters["attempts"].default
    faulted = control(sandbox, "stats")["faulted"]
    assert faulted
    # The first wave is gathered to its end, so each of its requests was made exactly
    # `attempts` times (the plan store's read, alongside, is cancelled once that wave fails).
    n = len(pipeline_of(sandbox).environments)
    repo = f"/repos/{sandbox.repository}"
    assert f"GET {repo}" not in faulted  # the repository is asked about after a 404 only
    assert faulted[f"GET {repo}/deployments"] == attempts  # one page for the few environments
    assert faulted[f"GET {repo}/commits"] == n * attempts
    assert sandbox.author_token not in result.stderr


def test_a_wait_longer_than_max_wait_is_not_waited(make_sandbox: Callable[..., Sandbox]) -> None:
    seed = seed_for(1.0, ("GET",), (("secondary_rate_limit", "429"),), after=0)
    sandbox = make_sandbox(fault_rate=1.0, seed=seed, retry_after=600)
    waits = Waits()
    github = client(sandbox, max_wait=60, sleep=waits)
    with pytest.raises(GitHubError, match=r"GitHub refused repos.get on acme/shop \((403|429)"):
        github.run(github.repository())
    assert waits == []
    assert github.stats.requests == 1


# -- ETags ---------------------------------------------------------------------------------------


def test_a_second_read_costs_304s_and_sees_changes(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    pipeline = pipeline_of(sandbox)
    github = client(sandbox)
    first = github.run(github.read_snapshot(pipeline))
    assert github.stats.not_modified == 0
    before = control(sandbox, "stats")["statuses"].get("304", 0)

    second = github.run(github.read_snapshot(pipeline))
    assert github.stats.not_modified > 0
    assert control(sandbox, "stats")["statuses"].get("304", 0) - before == (
        github.stats.not_modified
    )
    assert same_facts(second, first)

    # The cache never hides a change: a new status shows up on the next read.
    head = first.env("dev").head
    assert head is not None
    other = client(sandbox)
    other.run(other.set_status(head, "promote/dev/extra", "failure", "changed meanwhile"))
    third = github.run(github.read_snapshot(pipeline))
    contexts = {s.context: s.state for s in third.env("dev").statuses}
    assert contexts["promote/dev/extra"] == "failure"


# -- request budget ------------------------------------------------------------------------------


def served(sandbox: Sandbox, route: str) -> int:
    return int(
        control(sandbox, "stats")["requests"].get(f"GET /repos/{{owner}}/{{repo}}{route}", 0)
    )


def test_a_read_asks_once_per_sha_and_compares_only_what_it_cannot_see(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True))
    pipeline = pipeline_of(sandbox)
    github = client(sandbox)
    # Seeded: every environment at one sha, validated in each. Its statuses and PRs: one request
    # each; nothing is on its way there, so no check run, workflow run or checklist is read.
    before = github.run(github.read_snapshot(pipeline))
    assert len({e.head for e in before.environments}) == 1
    for route in ("/commits/{ref}/statuses", "/commits/{ref}/pulls"):
        assert served(sandbox, route) == 1, route
    for route in ("/actions/runs", "/commits/{ref}/check-runs", "/issues"):
        assert served(sandbox, route) == 0, route
    assert served(sandbox, "/compare/{basehead}") == 0  # the head is among test's listed commits
    assert [e.next_contains_head for e in before.environments] == [True, True, None]
    assert control(sandbox, "stats")["total"] == github.stats.requests

    # The merge bot merges PR #1 into dev: dev is ahead, and only that needs a compare.
    sandbox.settle()
    fresh = client(sandbox)
    after = fresh.run(fresh.read_snapshot(pipeline))
    assert after.env("dev").head != after.env("test").head
    assert [e.next_contains_head for e in after.environments] == [False, True, None]
    assert served(sandbox, "/compare/{basehead}") == 1
    # dev's new head is on its way: its runs and checks are read (test's manual checklists
    # are not: test's head is validated).
    for route, count in (("/actions/runs", 1), ("/commits/{ref}/check-runs", 1), ("/issues", 0)):
        assert served(sandbox, route) == count, route


def test_the_token_owner_is_asked_once_per_client(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    github = client(sandbox)
    key = "test@" + "a" * 40
    number, _, _ = github.run(
        github.checklist_issue(key, "Manual test", f"Promote-Key: {key}\n", [])
    )
    assert github.run(github.user()) == sandbox.scenario.author  # as `promote approve` asks
    first = github.run(github.comment(number, "Promote-Approve: " + "a" * 40 + "\n"))
    assert github.run(github.comment(number, "Promote-Approve: " + "a" * 40 + "\n")) == first
    assert control(sandbox, "stats")["requests"]["GET /user"] == 1


# -- writes whose answer is lost -------------------------------------------------------------------


@functools.cache
def seed_for(rate: float, methods: tuple[str, ...], want: tuple[Any, ...], after: int = 4) -> int:
    """A sandbox fault seed whose draws for ``methods`` (in order) are ``want``, then ``after``
    clean draws (for the observer's reads). Uses the sandbox's own seeded ``FaultPlan``."""
    for seed in range(200_000):
        plan = FaultPlan(rate, seed)
        drawn = [plan.draw(m) for m in (*methods, *(["GET"] * after))]
        wanted = [*want, *([None] * after)]
        if all(
            d in w if isinstance(w, tuple) else d == w for d, w in zip(drawn, wanted, strict=True)
        ):
            return seed
    raise AssertionError("no seed gives that fault sequence")


LOST = "applied_then_dropped"
RATE = 0.25
LOOK_WRITE_LOOK = ("GET", "POST", "GET")  # look, write (applied, answer lost), look: found
FEATURE = "feature/add-greeting"  # the seeded plan branch: ahead of every environment


def pulls_between(sandbox: Sandbox, head: str, base: str) -> list[int]:
    pulls = control(sandbox, "state")["pulls"]
    return [p["number"] for p in pulls if (p["head"], p["base"]) == (head, base)]


def writes_to(sandbox: Sandbox, route: str) -> int:
    return int(control(sandbox, "stats")["requests"].get(route, 0))


def observer(sandbox: Sandbox, tail: str) -> Any:
    request = urllib.request.Request(f"{sandbox.api_url}/repos/{sandbox.repository}{tail}")
    request.add_header("Authorization", f"token {sandbox.reviewer_token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_open_pull_whose_answer_is_lost_makes_exactly_one_pr(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(RATE, LOOK_WRITE_LOOK, (None, LOST, None))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    github = client(sandbox, sleep=Waits())
    number, url, _ = github.run(github.open_pull(FEATURE, "test", "Promote it", "body"))

    assert control(sandbox, "stats")["faults"] == {LOST: 1}
    assert writes_to(sandbox, "POST /repos/{owner}/{repo}/pulls") == 1  # never resent
    assert pulls_between(sandbox, FEATURE, "test") == [number]
    assert url.endswith(f"/pull/{number}")


def test_open_pull_rerun_finds_the_pr_it_made(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    github = client(sandbox)
    number, _, created = github.run(github.open_pull(FEATURE, "test", "Promote it", "body"))
    again, _, created_again = github.run(github.open_pull(FEATURE, "test", "Promote it", "body"))
    assert (created, created_again, again) == (True, False, number)
    assert pulls_between(sandbox, FEATURE, "test") == [number]


def test_set_status_whose_answer_is_lost_leaves_one_identical_status(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(RATE, LOOK_WRITE_LOOK, (None, LOST, None))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    head = control(sandbox, "state")["environments"]["dev"]["head"]
    github = client(sandbox, sleep=Waits())
    github.run(github.set_status(head, "promote/dev/crash", "pending", "validating"))

    assert control(sandbox, "stats")["faults"] == {LOST: 1}
    mine = [
        s
        for s in observer(sandbox, f"/commits/{head}/statuses")
        if s["context"] == "promote/dev/crash"
    ]
    assert [(s["state"], s["description"]) for s in mine] == [("pending", "validating")]

    # A re-run (the crash-and-rerun case) finds it and writes nothing.
    said = github.run(github.set_status(head, "promote/dev/crash", "pending", "validating"))
    assert said.startswith("promote/dev/crash already pending")
    assert writes_to(sandbox, "POST /repos/{owner}/{repo}/statuses/{sha}") == 1


def test_set_status_looked_up_in_what_was_read_asks_github_after_a_lost_answer(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """The first look goes to the statuses read under the lock (no request); once the write's
    answer is lost, the look after it asks GitHub, finds the status and writes no second."""
    seed = seed_for(RATE, ("POST", "GET"), (LOST, None))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    head = control(sandbox, "state")["environments"]["dev"]["head"]
    github = client(sandbox, sleep=Waits())
    said = github.run(
        github.set_status(head, "promote/dev/crash", "pending", "validating", seen=[])
    )

    assert control(sandbox, "stats")["faults"] == {LOST: 1}
    assert said.startswith("promote/dev/crash"), said
    mine = [
        s
        for s in observer(sandbox, f"/commits/{head}/statuses")
        if s["context"] == "promote/dev/crash"
    ]
    assert [(s["state"], s["description"]) for s in mine] == [("pending", "validating")]
    assert writes_to(sandbox, "POST /repos/{owner}/{repo}/statuses/{sha}") == 1
    # What was read says it is already there: nothing is asked, nothing written.
    requests = github.stats.requests
    again = github.run(
        github.set_status(head, "promote/dev/crash", "pending", "validating", seen=mine)
    )
    assert again.startswith("promote/dev/crash already pending"), again
    assert github.stats.requests == requests


def test_checklist_issue_whose_answer_is_lost_is_opened_once(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(RATE, LOOK_WRITE_LOOK, (None, LOST, None))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    github = client(sandbox, sleep=Waits())
    key = "test@" + "a" * 40
    number, _, _ = github.run(
        github.checklist_issue(key, "Manual test", f"Promote-Key: {key}\n", ["rita"])
    )
    assert control(sandbox, "stats")["faults"] == {LOST: 1}
    issues = observer(sandbox, "/issues?state=all&labels=promote:checklist")
    assert [i["number"] for i in issues if key in (i["body"] or "")] == [number]


def test_a_plan_issue_whose_answer_is_lost_is_filed_once(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(RATE, LOOK_WRITE_LOOK, (None, LOST, None))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    github = client(sandbox, sleep=Waits())
    settings = Run.load(Path(sandbox.env()["PROMOTE_CLONE"]), environ=sandbox.env()).settings
    plan = Plan("fix-dev-1234567", "Fix dev", priority=0, fix_key="dev@" + "1" * 40)
    assert github.run(Issues().create(settings, github, plan, "Why.")).id == plan.id
    assert control(sandbox, "stats")["faults"] == {LOST: 1}
    assert writes_to(sandbox, "POST /repos/{owner}/{repo}/issues") == 1  # never resent
    issues = observer(sandbox, "/issues?state=all&labels=plan")
    assert [i["title"] for i in issues] == ["Fix dev"]


def test_dispatch_whose_answer_is_lost_is_reported_not_repeated(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(RATE, ("POST",), (LOST,))
    sandbox = make_sandbox(fault_rate=RATE, seed=seed)
    state = control(sandbox, "state")
    runs_before = len(state["runs"])
    head = state["environments"]["test"]["head"]
    github = client(sandbox, sleep=Waits())
    with pytest.raises(UncertainWrite) as raised:
        github.run(github.dispatch("deploy.yml", "test", {"environment": "test", "sha": head}))
    assert "may have been applied" in str(raised.value)
    assert "\n" not in str(raised.value)
    assert len(control(sandbox, "state")["runs"]) == runs_before + 1  # applied once, not twice
    assert (
        writes_to(sandbox, "POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches")
        == 1
    )


def test_next_through_faults_makes_no_duplicates(make_sandbox: Callable[..., Sandbox]) -> None:
    """The journey up to the manual test in ``test``, with a fifth of all requests faulted."""
    # Seed 4: the draws (deterministic for a deterministic request sequence) include two
    # writes applied with their answer lost.
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True), fault_rate=0.2, seed=4)
    environ = sandbox.env()
    run = Run.load(Path(environ["PROMOTE_CLONE"]), environ=environ)
    # Retries are immediate (no sleeping), so a retry may draw the next fault too: seed 4's
    # longest run of faults is 5, and 8 attempts never run out whatever request draws it.
    github = GitHub(Connection.from_environment(None, environ), attempts=8, sleep=Waits())
    run = dataclasses.replace(run, _github=github)
    transitions = []
    for _ in range(8):
        sandbox.settle()
        action = run.step().action
        transitions.append((action.transition, action.environment))
    assert ("R7", "dev") in transitions  # the promotion PR was opened
    assert run.github.stats.retries > 0  # (a failed write is not retried: it is looked for)
    assert control(sandbox, "stats")["faults"].get(LOST, 0) > 0

    pulls = control(sandbox, "state")["pulls"]
    assert len(pulls_between(sandbox, "dev", "test")) == 1, pulls
    reader = client(sandbox, sleep=Waits())
    for env in ("dev", "test"):
        head = control(sandbox, "state")["environments"][env]["head"]
        statuses = reader.run(reader.statuses_of(head))
        by_context: dict[str, list[tuple[str, str]]] = {}
        for status in sorted(statuses, key=lambda s: s["id"]):
            if status["creator"]["login"] == "alice":
                by_context.setdefault(status["context"], []).append(
                    (status["state"], status["description"] or "")
                )
        for context, states in by_context.items():
            repeated = [a for a, b in itertools.pairwise(states) if a == b]
            assert not repeated, f"{context} on {env}: {states}"


def test_a_server_error_is_one_line_without_its_html_page(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    seed = seed_for(1.0, ("GET",) * 3, ("502",) * 3, after=0)
    sandbox = make_sandbox(fault_rate=1.0, seed=seed)
    github = client(sandbox, attempts=3, sleep=Waits())
    with pytest.raises(GitHubError) as raised:
        github.run(github.repository())
    assert str(raised.value) == "GitHub answered 502 to repos.get on acme/shop: server error"
    assert raised.value.status == 502


def test_an_error_carries_githubs_status_and_a_lost_connection_none(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    github = client(sandbox, attempts=1, sleep=Waits())
    with pytest.raises(GitHubError) as missing:
        github.run(github.pull(9999))
    assert missing.value.status == 404
    assert github.run(github.read_file("no/such/file.md", "main")) is None
    down = GitHub(Connection(sandbox.repository, sandbox.author_token, "http://127.0.0.1:9"))
    with pytest.raises(GitHubError) as unreachable:
        down.run(down.repository())
    assert unreachable.value.status is None
