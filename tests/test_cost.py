"""What a run costs: start-up that imports and builds only what it uses, and the requests a
``status`` read makes, pinned (a cold read, and a poll whose unchanged answers are 304s).

Against the sandbox over real HTTP; request counts are asserted, never wall-clock times.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import api_repo
from promote_sandbox import testing
from promote_sandbox.seed import plan_text
from promote_tasks.errors import GitHubError
from promote_tasks.github import PACE
from promote_tasks.github.client import POOL
from promote_tasks.model import State
from promote_tasks.schemas import schema
from promote_tasks.session import Run
from tests import console
from tests.console import GITHUB_KEYS
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config

make_sandbox = testing.make_sandbox
sandbox = testing.sandbox

HEAVY = ("ghapi", "git", "fastspec", "fasttransport", "fastcore", "httpx2")

#: Requests of a cold ``status`` read of the sandbox's 3 environments (dev, test, main).
COLD_READ = 12
#: Requests of the same read again in the same process, and how many of them were 304s:
#: every one.
POLL = 11
POLL_NOT_MODIFIED = 11
#: Requests of a ``next`` at rest with 20 open PRs into dev (their gates looked at): all 304s.
POLL_20_PRS = 32
#: Requests the sandbox served for the whole default journey (feature PR to main, one
#: approval), driven in one process as the e2e tests drive it; most of them 304s.
JOURNEY = 589


def loaded(code: str, cwd: Path | None = None) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after ``code``."""
    probe = (
        f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True, check=True
    )
    return list(json.loads(done.stdout.splitlines()[-1].replace("'", '"')))


def test_promote_help_imports_no_client_and_no_git() -> None:
    code = (
        "import contextlib, io\n"
        "from promote_tasks.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass"
    )
    assert loaded(code) == []


def test_the_hook_imports_no_client_and_no_git() -> None:
    assert loaded("import promote_tasks.hooks.guard") == []


def test_a_read_builds_only_the_operations_it_calls(sandbox: Sandbox) -> None:
    code = (
        "from pathlib import Path\n"
        "from promote_tasks.session import Run\n"
        f"run = Run.load(Path({sandbox.env()['PROMOTE_CLONE']!r}), environ={sandbox.env()!r})\n"
        "run.facts()\n"
        "print(len(run.github.api.built))"
    )
    probe = f"{code}\nimport sys\nprint(sorted(m for m in sys.modules if m.startswith('ghapi')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    built, modules = done.stdout.splitlines()[-2:]
    assert int(built) <= 15  # of ghapi's ~1,200
    assert modules == "['ghapi', 'ghapi.gh_spec']"  # its metadata, not ghapi.core's whole client


def test_the_requests_of_a_cold_read_and_of_a_poll(sandbox: Sandbox) -> None:
    env = sandbox.env()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    stats = run.github.stats
    run.facts()
    assert (stats.requests, stats.not_modified) == (COLD_READ, 0)
    run.facts()
    assert (stats.requests - COLD_READ, stats.not_modified) == (POLL, POLL_NOT_MODIFIED)


def routes_of(sandbox: Sandbox) -> dict[str, int]:
    requests = sandbox.stats.to_json()["requests"]
    return {r.removeprefix("GET /repos/{owner}/{repo}"): n for r, n in requests.items()}


def test_a_validated_head_reads_no_runs_checks_or_checklists_but_its_deploys(
    sandbox: Sandbox,
) -> None:
    """Seeded, each environment's head is validated: its validators are not asked again, so
    its check runs, workflow runs and checklist issues are not read. Its deployments still
    are: a deploy that fails after validation fails the environment."""
    env = sandbox.env()
    api = Api(sandbox, sandbox.author_token)
    sandbox.stats.reset()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    before = run.facts()
    read = routes_of(sandbox)
    for route in ("/actions/runs", "/commits/{ref}/check-runs", "/issues"):
        assert route not in read, route
    assert read["/deployments/{deployment_id}/statuses"] == 3
    assert [s.state for s in run.decide(before)[0].environments] == [
        State.PROMOTED,
        State.PROMOTED,
        State.COMPLETE,
    ]

    (deployment,) = api.get("/deployments?environment=main")
    api.post(f"/deployments/{deployment['id']}/statuses", {"state": "failure"})
    fresh = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    assert fresh.decide(fresh.facts())[0].env("main").state is State.FAILED


def test_a_validated_head_whose_deploys_are_only_runs_has_its_runs_read(
    sandbox: Sandbox,
) -> None:
    """An environment whose deploy leaves no deployment (a workflow without GitHub's
    Environments) is watched through its deploy runs, validated or not."""
    env = sandbox.env()
    api = Api(sandbox, sandbox.author_token)
    (deployment,) = api.get("/deployments?environment=dev")
    status, _ = api.call("DELETE", f"{api.repo_path}/deployments/{deployment['id']}")
    assert status == 204, status
    sandbox.stats.reset()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    facts = run.facts()
    assert facts.env("dev").deployments == ()
    read = routes_of(sandbox)
    assert read["/actions/runs"] == 1  # dev's; test's and main's heads have deployments
    assert "/commits/{ref}/check-runs" not in read
    assert run.github.stats.requests == COLD_READ - 1 + 1  # one deployment less, the runs more


def test_a_page_of_deployments_full_of_another_environment_hides_nothing(
    sandbox: Sandbox,
) -> None:
    """Preview environments deploy on every PR: the newest deployments of the repository are
    all theirs. Each pipeline environment is then read on its own, and sees what it did."""
    env = sandbox.env()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    before = run.facts()
    api = Api(sandbox, sandbox.author_token)
    sha = api.get("/branches/dev")["commit"]["sha"]
    for _ in range(3 * 20):  # the shared page of 3 environments, full
        api.post("/deployments", {"ref": sha, "environment": "preview", "required_contexts": []})
    fresh = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    after = fresh.facts()
    for name in ("dev", "test", "main"):
        whole = api.get(f"/deployments?environment={name}&per_page=100")
        assert [d.id for d in after.env(name).deployments] == [d["id"] for d in whole][:20]
        assert after.env(name).deployments == before.env(name).deployments
    assert fresh.decide(after)[0] == run.decide(before)[0]
    assert fresh.github.stats.requests == COLD_READ + 3  # one more for each environment


def test_a_tree_github_cuts_short_still_shows_every_plan(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GitHub lists at most 100,000 entries of a recursive tree (``truncated``); a large
    repository's plan files are then read from the plans directory's own tree."""
    env = sandbox.env()
    whole = Run.load(Path(env["PROMOTE_CLONE"]), environ=env).facts().plans
    assert whole
    monkeypatch.setattr(api_repo, "TREE_LIMIT", 2)
    api = Api(sandbox, sandbox.author_token)
    cut = api.get("/git/trees/main?recursive=1")
    assert cut["truncated"]
    assert not any(e["path"].startswith("plans/") for e in cut["tree"])
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    assert run.facts().plans == whole


def test_a_plans_directory_github_cuts_short_too_is_one_line(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_repo, "TREE_LIMIT", 1)  # the plans directory's own tree is cut too
    env = {k: sandbox.env()[k] for k in GITHUB_KEYS}
    done = console.promote("status", cwd=Path(sandbox.env()["PROMOTE_CLONE"]), env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "plans/ at dev has more entries than GitHub lists in a tree" in done.stderr
    assert "Traceback" not in done.stderr


class Waits(list[float]):
    """A ``sleep`` that records the waits asked for instead of sleeping."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_status_json_says_the_requests_made_and_the_rate_limit_left(sandbox: Sandbox) -> None:
    env = {k: sandbox.env()[k] for k in GITHUB_KEYS}
    clone = Path(sandbox.env()["PROMOTE_CLONE"])
    done = console.promote("status", "--json", cwd=clone, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    data = json.loads(done.stdout)
    jsonschema.validate(data, schema("status"))
    made, left = data["requests"]["made"], data["requests"]["remaining"]
    assert made >= COLD_READ
    assert 0 < left <= 5000 - made
    text = console.promote("status", cwd=clone, env=env).stdout
    assert f"GitHub: {made} requests, " in text.splitlines()[-1]
    assert sandbox.env()["GITHUB_TOKEN"] not in done.stdout + text


def test_a_nearly_spent_rate_limit_is_said_once_and_slows_the_run(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    env = sandbox.env()
    waits = Waits()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env, client_options={"sleep": waits})
    run.facts()
    assert waits == []
    assert capsys.readouterr().err == ""
    for login in list(sandbox.limiter.used):  # the hour nearly spent: 40 left
        sandbox.limiter.used[login] = 4960
    run.facts()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("promote: warning: GitHub's rate limit is nearly spent")
    assert run.requests()["remaining"] == 40 - (POLL - POLL_NOT_MODIFIED)  # 304s are free
    assert run.github.stats.retries == 0
    # the requests after the first low answer went one a PACE: each waited its turn
    assert len(waits) >= 2
    assert all(b - a > PACE / 2 for a, b in itertools.pairwise(sorted(waits)))


def open_feature_prs(sandbox: Sandbox, count: int) -> None:
    """``count`` open PRs into dev, each from its own feature branch with its own plan file."""
    api = Api(sandbox, sandbox.author_token)
    for i in range(count):
        plan = f"open-{i}"
        api.post("/git/refs", {"ref": f"refs/heads/feature/{plan}", "sha": api.head("dev")})
        api.commit(
            f"feature/{plan}",
            f"{plan}\n",
            {"app.txt": f"{plan}\n", f"plans/doing/{plan}.md": plan_text(plan, plan)},
        )
        api.post("/pulls", {"title": plan, "head": f"feature/{plan}", "base": "dev"})


def test_polling_with_20_open_prs_is_all_304s_gates_included(sandbox: Sandbox) -> None:
    open_feature_prs(sandbox, 20)
    env = sandbox.env()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    while run.step().did:  # the gates written: at rest
        pass
    stats = run.github.stats
    before = (stats.requests, stats.not_modified)
    assert not run.step().did
    made, fresh = stats.requests - before[0], stats.not_modified - before[1]
    assert (made, fresh) == (POLL_20_PRS, POLL_20_PRS)


def test_a_list_of_more_than_a_page_is_whole_when_its_first_page_is_a_304(
    sandbox: Sandbox,
) -> None:
    sha = Api(sandbox, sandbox.author_token).head("dev")
    for i in range(120):
        sandbox.store.add_commit_status(sha, "success", f"ci/{i}", "alice")
    env = sandbox.env()
    github = Run.load(Path(env["PROMOTE_CLONE"]), environ=env).github
    first = github.run(github.statuses_of(sha))
    again = github.run(github.statuses_of(sha))
    assert len(first) == len(again) > 120
    assert github.stats.not_modified == 2  # both pages, the second found from the first's Link


def test_gates_for_100_prs_go_through_a_pool_of_kept_alive_connections(sandbox: Sandbox) -> None:
    open_feature_prs(sandbox, 100)
    env = sandbox.env()
    run = Run.load(Path(env["PROMOTE_CLONE"]), environ=env)
    facts = run.facts()
    sandbox.stats.reset()
    written = run.gate(facts)
    assert len(written) == 101
    assert all(changed for _, changed in written)
    connections = sandbox.stats.to_json()["connections"]
    assert connections["most_open"] <= POOL
    # kept alive and reused: a pool for each of the gate's reads, lock and writes, not one each
    assert connections["opened"] <= 3 * POOL < sandbox.stats.to_json()["total"] / 4


def test_pacing_counts_against_the_deadline(sandbox: Sandbox) -> None:
    env = sandbox.env()
    waits = Waits()
    run = Run.load(
        Path(env["PROMOTE_CLONE"]), environ=env, client_options={"sleep": waits, "deadline": 5}
    )
    run.facts()
    for login in list(sandbox.limiter.used):  # the hour nearly spent
        sandbox.limiter.used[login] = 4960

    def three_reads() -> None:  # one a PACE, their requests take more than 5 s
        for _ in range(3):
            run.facts()

    with pytest.raises(GitHubError, match=r"rate limit is nearly spent .* does not fit in 5 s"):
        three_reads()
    assert waits
    assert max(waits) < 5  # no turn after the deadline was waited for


def test_the_requests_of_a_whole_journey(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True))
    driver = Driver(sandbox, config())
    sandbox.stats.reset()

    def complete(driver: Driver, rest: Step) -> bool:
        main = driver.run.decide(rest.snapshot)[0].env("main")
        return main.state is State.COMPLETE and all(p.done for p in rest.snapshot.plans)

    driver.drive(complete, reviewer="rita", tick=300)
    data = sandbox.stats.to_json()
    assert data["total"] == JOURNEY
    assert data["connections"]["most_open"] <= POOL
