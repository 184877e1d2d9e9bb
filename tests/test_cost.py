"""What a run costs: start-up that imports and builds only what it uses, and the requests a
``status`` read makes, pinned (a cold read, and a poll whose unchanged answers are 304s).

Against the sandbox over real HTTP; request counts are asserted, never wall-clock times.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from promote_sandbox import Sandbox
from promote_sandbox import testing
from promote_tasks.github import PACE
from promote_tasks.schemas import schema
from promote_tasks.session import Run
from tests import console
from tests.console import GITHUB_KEYS

make_sandbox = testing.make_sandbox
sandbox = testing.sandbox

HEAVY = ("ghapi", "git", "fastspec", "fasttransport", "fastcore", "httpx2")

#: Requests of a cold ``status`` read of the sandbox's 3 environments (dev, test, main).
COLD_READ = 20
#: Requests of the same read again in the same process, and how many of them were 304s:
#: every one (the repository check is made once per client, so the poll has one fewer).
POLL = 19
POLL_NOT_MODIFIED = 19


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
