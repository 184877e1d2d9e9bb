"""manual-approval through GitHub's environment required reviewers (pending deployments)."""

from __future__ import annotations

import pytest

from promote_sandbox import Scenario
from promote_tasks.errors import PromoteError
from promote_tasks.model import State
from promote_tasks.session import Run


def drive_until(run, sandbox, done, limit=200):
    for _ in range(limit):
        taken = run.step()
        state, action, did = taken.state, taken.action, taken.did
        if done(state):
            return state
        if not (action.transition or did):
            sandbox.advance()
    raise AssertionError(f"not reached; last action {action}")


@pytest.fixture
def protected(make_sandbox):
    sandbox = make_sandbox(
        scenario=Scenario(merge_bot=True, required_reviewers={"test": ("rita",)})
    )
    with (sandbox.clone_path / "promote.toml").open("a") as f:
        f.write('\n[validators.manual]\nbackend = "environment"\nreviewers = ["rita", "alice"]\n')
    env = sandbox.env()
    author = Run.load(sandbox.clone_path, environ=env)
    reviewer = Run.load(
        sandbox.clone_path, environ={**env, "GITHUB_TOKEN": env["PROMOTE_REVIEWER_TOKEN"]}
    )
    return sandbox, author, reviewer


def test_the_reviewer_approves_the_held_deploy_and_the_validator_reads_it(protected):
    sandbox, author, reviewer = protected
    state = drive_until(
        author, sandbox, lambda s: s.env("test").state is State.DEPLOYING and s.env("test").plan
    )
    for _ in range(5):  # the run is held: nothing moves without a review
        sandbox.advance()
    held = author.decide(author.snapshot())[0].env("test")
    assert held.state is State.DEPLOYING
    with pytest.raises(
        PromoteError, match="alice wrote this change and cannot approve or reject it"
    ):
        author.record_decision("test", None, True, "")
    assert "approved test at" in reviewer.record_decision("test", None, True, "")
    state = drive_until(author, sandbox, lambda s: s.env("test").state is State.PROMOTED)
    manual = next(v for v in state.env("test").verdicts if v.validator == "manual")
    assert (manual.result.value, manual.summary) == ("passed", "approved by rita")


def test_a_rejected_review_never_deploys(protected):
    sandbox, author, reviewer = protected
    drive_until(
        author, sandbox, lambda s: s.env("test").state is State.DEPLOYING and s.env("test").plan
    )
    for _ in range(5):
        sandbox.advance()
    reviewer.record_decision("test", None, False, "checkout is broken")
    state = drive_until(author, sandbox, lambda s: s.env("test").state is State.FAILED, limit=60)
    assert state.env("test").state is State.FAILED
