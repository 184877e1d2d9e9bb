"""The whole story the sandbox exists for, driven over REST the way the tool drives GitHub:
dev deploys and is validated, the promotion to test fails to deploy, test is rolled back."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from tests.sandbox.conftest import Client


def latest_state(gh: Client, env: str, sha: str) -> str | None:
    found = gh.repo("GET", f"/deployments?environment={env}&sha={sha}").json
    if not found:
        return None
    newest = max(found, key=lambda d: d["id"])
    statuses = gh.repo("GET", f"/deployments/{newest['id']}/statuses").json
    return max(statuses, key=lambda s: s["id"])["state"] if statuses else None


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url) as resp:
            return int(resp.status) == 200
    except urllib.error.HTTPError:
        return False


def test_promotion_failure_and_rollback(make_sandbox: Callable[..., Sandbox]) -> None:
    scenario = Scenario(merge_bot=True, fail=(FailRule("test", "deploy", 1),))
    sandbox = make_sandbox(scenario=scenario)
    gh = Client(sandbox, sandbox.author_token)
    test_before = gh.repo("GET", "/git/ref/heads/test").json["object"]["sha"]

    # Merge machine: the bot merges the feature PR; CI deploys dev.
    sandbox.settle()
    dev = gh.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    assert [p["number"] for p in gh.repo("GET", f"/commits/{dev}/pulls").json] == [1]
    assert latest_state(gh, "dev", dev) == "success"
    env_url = gh.repo("GET", "/deployments?environment=dev").json[0]
    status = gh.repo("GET", f"/deployments/{env_url['id']}/statuses").json[0]
    assert healthy(status["environment_url"])
    smoke = gh.repo("GET", f"/commits/{dev}/check-runs?check_name=smoke").json["check_runs"]
    assert smoke[0]["conclusion"] == "success"

    # Promote machine: record the verdict, open the promotion PR (the bot merges it).
    for context in ("promote/dev/health", "promote/dev/smoke", "promote/dev"):
        assert (
            gh.repo("POST", f"/statuses/{dev}", {"state": "success", "context": context}).status
            == 201
        )
    pr = gh.repo(
        "POST",
        "/pulls",
        {
            "title": "Promote add-greeting to test",
            "head": "dev",
            "base": "test",
            "body": "Promote-Plan: add-greeting",
        },
    )
    assert pr.status == 201
    sandbox.settle()
    test = gh.repo("GET", "/git/ref/heads/test").json["object"]["sha"]
    assert gh.repo("GET", f"/pulls/{pr.json['number']}").json["merge_commit_sha"] == test
    assert latest_state(gh, "test", test) == "failure"
    failed_run = gh.repo("GET", f"/actions/runs?head_sha={test}&event=push").json["workflow_runs"][
        0
    ]
    assert failed_run["conclusion"] == "failure"

    # Rollback: first parent of the merge, a rollback deployment, then a dispatch at the target.
    target = gh.repo("GET", f"/git/commits/{test}").json["parents"][0]["sha"]
    assert target == test_before
    lock = gh.repo("POST", "/git/refs", {"ref": f"refs/promote/locks/test@{test}", "sha": test})
    assert lock.status == 201
    rollback = gh.repo(
        "POST",
        "/deployments",
        {
            "ref": target,
            "environment": "test",
            "task": "deploy:rollback",
            "auto_merge": False,
            "required_contexts": [],
            "payload": {"promote": {"rollback_of": test, "plan": "fix-test"}},
        },
    )
    assert rollback.status == 201
    dispatched = gh.repo(
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {
            "ref": "test",
            "inputs": {"environment": "test", "sha": target},
            "return_run_details": True,
        },
    )
    assert dispatched.status == 200
    sandbox.settle()
    assert latest_state(gh, "test", target) == "success"
    assert healthy(f"{sandbox.api_url}/_sandbox/health/test")
    assert Client(sandbox, None)("GET", "/_sandbox/health/test", token=None).json["sha"] == target

    # Fix plan: a bookkeeping commit on dev starts no deploy.
    runs_before = gh.repo("GET", "/actions/runs").json["total_count"]
    body = "---\nid: fix-test\ntitle: Fix the test deploy\npriority: 0\n---\n"
    put = gh.repo(
        "PUT",
        "/contents/plans/doing/fix-test.md",
        {
            "message": "Plan fix-test",
            "content": base64.b64encode(body.encode()).decode(),
            "branch": "dev",
        },
    )
    assert put.status == 201
    sandbox.settle()
    assert gh.repo("GET", "/actions/runs").json["total_count"] == runs_before
