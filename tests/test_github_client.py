"""github/client.py against the sandbox: its own pager, the ETag cache, and ``write_once``.
(tests/e2e/test_github_errors.py covers retries, deadlines and errors.)"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from promote_sandbox import Sandbox
from promote_tasks.errors import GitHubError
from promote_tasks.github import Connection
from promote_tasks.github import GitHub
from promote_tasks.github import UncertainWrite


def client(sandbox: Sandbox) -> GitHub:
    return GitHub(Connection(sandbox.repository, sandbox.author_token, sandbox.api_url))


def answered(sandbox: Sandbox) -> int:
    """Requests the sandbox has answered so far (its control endpoint is not counted)."""
    with urllib.request.urlopen(f"{sandbox.api_url}/_sandbox/stats", timeout=10) as response:
        return int(json.load(response)["total"])


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


def test_every_page_is_read_following_link_next(sandbox: Sandbox) -> None:
    github = client(sandbox)
    sha = github.run(github.ref_sha("heads/dev"))
    assert sha is not None

    async def many() -> None:
        for n in range(130):
            await github.set_status(sha, f"page/{n}", "success")

    github.run(many())
    before = github.stats.requests
    statuses = github.run(github.statuses_of(sha))
    assert {s["context"] for s in statuses} >= {f"page/{n}" for n in range(130)}
    assert len(statuses) >= 130
    assert github.stats.requests - before == 2  # two pages of 100, and no third ask


def test_a_repeated_read_is_a_304_and_a_fresh_one_never_is(sandbox: Sandbox) -> None:
    github = client(sandbox)
    first = github.run(github.repository())
    again = github.run(github.repository())
    assert again == first
    assert github.stats.not_modified == 1  # served from the cache, with GitHub's word for it
    before = github.stats.not_modified
    github.run(github.pull(1))
    github.run(github.pull(1))  # a look before a write: never from the cache
    assert github.stats.not_modified == before


def test_write_once_looks_first_and_writes_once(sandbox: Sandbox) -> None:
    github = client(sandbox)
    sha = github.run(github.ref_sha("heads/dev"))
    assert sha is not None
    made = github.run(github.ensure_ref("heads/once", sha))
    before = answered(sandbox)
    again = github.run(github.ensure_ref("heads/once", sha))
    assert (made, again) == ((sha, True), (sha, False))
    assert answered(sandbox) - before == 1  # the look, and no write


def test_a_lost_answer_is_looked_for_before_it_is_sent_again(sandbox: Sandbox) -> None:
    github = client(sandbox)
    sent: list[str] = []
    landed: list[str] = []

    async def look() -> str | None:
        return landed[0] if landed else None

    async def lost() -> str:  # GitHub applied it; its answer never came back
        sent.append("write")
        landed.append("made")
        raise UncertainWrite(GitHubError("GitHub answered 502 to x.y on acme/shop", 502))

    assert github.run(github.write_once(look, lost)) == ("made", False)
    assert sent == ["write"]

    refused: list[str] = []

    async def second() -> str:  # another run made it meanwhile: GitHub refuses ours
        refused.append("write")
        landed[:] = ["theirs"]
        raise GitHubError("GitHub answered 422 to x.y on acme/shop: already exists", 422)

    landed.clear()
    assert github.run(github.write_once(look, second)) == ("theirs", False)
    assert refused == ["write"]

    async def nothing() -> str | None:
        return None

    async def broken() -> str:
        raise GitHubError("GitHub answered 422 to x.y on acme/shop: invalid", 422)

    with pytest.raises(GitHubError, match="invalid"):
        github.run(github.write_once(nothing, broken))
