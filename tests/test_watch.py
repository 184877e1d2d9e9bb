"""`promote watch`: runs `next` until the pipeline rests or needs a person; plain lines off a tty."""

from __future__ import annotations

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from tests.console import GITHUB_KEYS
from tests.console import promote


def run(sandbox, *args, token=None):
    env = {k: sandbox.env()[k] for k in GITHUB_KEYS}
    if token:
        env["GITHUB_TOKEN"] = token
    return promote(*args, cwd=sandbox.clone_path, env=env, timeout=300)


def test_watch_stops_for_the_reviewer_then_runs_to_rest(make_sandbox):
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True), step_ms=20)
    with (sandbox.clone_path / "promote.toml").open("a") as f:
        f.write("\n[validators.monitor]\nsoak_seconds = 1\n")
    first = run(sandbox, "watch", "--interval", "0.05")
    assert first.returncode == 8, first.stderr  # a person must act: as gh pr checks, 8
    lines = first.stdout.splitlines()
    assert lines[-1] == "needs a person: manual in test: waiting for rita"
    assert "\x1b" not in first.stdout, "no live progress line when stdout is not a terminal"
    assert any(line.startswith("R7 dev:") for line in lines)
    approved = run(sandbox, "approve", "--env", "test", token=sandbox.reviewer_token)
    assert approved.returncode == 0, approved.stderr
    second = run(sandbox, "watch", "--interval", "0.05")
    assert second.returncode == 0, second.stderr
    assert any(line.startswith("R8 main:") for line in second.stdout.splitlines())
    assert second.stdout.splitlines()[-1] == "the pipeline rests"


def test_watch_gives_up_after_its_timeout(make_sandbox):
    hung = Scenario(merge_bot=True, hang=(FailRule("dev", "deploy"),))  # dev's deploy never ends
    sandbox = make_sandbox(scenario=hung, step_ms=20)
    result = run(sandbox, "watch", "--interval", "0.05", "--timeout", "2")
    assert result.returncode == 4  # the --timeout ran out
    assert result.stderr.startswith("promote: timed out waiting for deployment of dev at")
    assert result.stderr.count("\n") == 1
