"""ghapi 2.x, sync and async, talks to the sandbox as it talks to api.github.com."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from promote_sandbox import Sandbox


def client(sandbox: Sandbox, *, sync: bool, token: str | None = None) -> Any:
    from ghapi.all import GhApi

    owner, repo = sandbox.repository.split("/")
    return GhApi(
        owner=owner,
        repo=repo,
        token=token or sandbox.author_token,
        gh_host=sandbox.api_url,
        sync=sync,
        timeout=30,
    )


def test_sync_client_reads_and_writes(sandbox: Sandbox) -> None:
    from ghapi.all import APIError

    api = client(sandbox, sync=True)
    assert api.repos.get().full_name == "acme/shop"
    dev = api.git.get_ref("heads/dev")  # ghapi 2.x leaves the slash unencoded
    assert dev.ref == "refs/heads/dev"
    pulls = api.pulls.list(state="open", head="acme:feature/add-greeting")
    assert [p.number for p in pulls] == [1]
    status = api.repos.create_commit_status(dev.object.sha, state="pending", context="promote/dev")
    assert status.state == "pending"
    combined = api.repos.get_combined_status_for_ref(dev.object.sha)
    assert any(s.context == "promote/dev" and s.state == "pending" for s in combined.statuses)
    merged = api.pulls.merge(1, merge_method="merge")
    assert merged.merged is True
    sandbox.settle()
    runs = api.actions.list_workflow_runs("deploy.yml", branch="dev", event="push", per_page=100)
    assert runs.workflow_runs[0].head_sha == merged.sha
    deployments = api.repos.list_deployments(environment="dev")
    latest = max(deployments, key=lambda d: d.id)
    statuses = api.repos.list_deployment_statuses(latest.id)
    assert max(statuses, key=lambda s: s.id).state == "success"
    details = api.actions.create_workflow_dispatch(
        "deploy.yml",
        ref="dev",
        inputs={"environment": "dev", "sha": merged.sha},
        return_run_details=True,
    )
    assert details.workflow_run_id > 0
    assert (
        api.actions.create_workflow_dispatch("deploy.yml", ref="dev", inputs={"environment": "dev"})
        is None
    )
    with pytest.raises(APIError) as missing:
        api.pulls.get(999)
    assert missing.value.status_code == 404
    with pytest.raises(APIError) as exists:
        api.git.create_ref(ref="refs/heads/dev", sha=merged.sha)
    assert exists.value.status_code == 422
    assert "Reference already exists" in str(exists.value.message)


def test_sync_client_conditional_request_and_bad_token(sandbox: Sandbox) -> None:
    from ghapi.all import APIError

    api = client(sandbox, sync=True)
    resp = api.pulls.list(raw_=True)
    etag = resp.headers["etag"]
    with pytest.raises(APIError) as not_modified:
        api.pulls.list(headers_={"If-None-Match": etag})
    assert not_modified.value.status_code == 304
    assert api.recv_hdrs["X-RateLimit-Remaining"]
    bad = client(sandbox, sync=True, token="sbx_nobody_0")
    with pytest.raises(APIError) as denied:
        bad.repos.get()
    assert denied.value.status_code == 401


def test_async_client_reads_concurrently(sandbox: Sandbox) -> None:
    api = client(sandbox, sync=False)

    async def snapshot() -> list[Any]:
        return list(
            await asyncio.gather(
                api.git.get_ref("heads/dev"),
                api.git.get_ref("heads/test"),
                api.git.get_ref("heads/main"),
                api.repos.list_deployments(environment="dev"),
                api.repos.list_deployments(environment="test"),
                api.repos.list_deployments(environment="main"),
                api.actions.list_workflow_runs_for_repo(per_page=100),
                api.pulls.list(state="all"),
                api.issues.list_for_repo(state="all"),
                api.checks.list_for_ref("main"),
            )
        )

    dev, test, main, d_dev, d_test, d_main, runs, pulls, issues, checks = asyncio.run(snapshot())
    assert dev.object.sha == test.object.sha == main.object.sha
    assert [d.environment for d in (d_dev[0], d_test[0], d_main[0])] == ["dev", "test", "main"]
    assert runs.total_count == 6
    assert pulls[0].number == 1
    assert issues[0].pull_request
    assert {c.name for c in checks.check_runs} == {"deploy", "smoke", "monitor"}


def test_async_client_writes(sandbox: Sandbox) -> None:
    api = client(sandbox, sync=False)

    async def flow() -> Any:
        issue = await api.issues.create(title="Manual test", labels=["promote"])
        await api.issues.create_comment(issue.number, body="looks good")
        return await api.issues.list_comments(issue.number)

    comments = asyncio.run(flow())
    assert [c.body for c in comments] == ["looks good"]
