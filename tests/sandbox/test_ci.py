"""The simulated CI: deploys on push, dispatch, smoke runs, monitors, health, the merge bot."""

from __future__ import annotations

import base64
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from tests.sandbox.conftest import Client


def head(gh: Client, branch: str) -> str:
    return str(gh.repo("GET", f"/git/ref/heads/{branch}").json["object"]["sha"])


def deployments(gh: Client, env: str) -> list[dict[str, Any]]:
    return list(gh.repo("GET", f"/deployments?environment={env}").json)


def states(gh: Client, deployment_id: int) -> list[str]:
    statuses = gh.repo("GET", f"/deployments/{deployment_id}/statuses").json
    return [s["state"] for s in sorted(statuses, key=lambda s: s["id"])]


def runs(gh: Client, **query: str) -> list[dict[str, Any]]:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return list(gh.repo("GET", f"/actions/runs?{qs}").json["workflow_runs"])


def check_runs(gh: Client, sha: str, name: str) -> list[dict[str, Any]]:
    return list(
        gh.repo("GET", f"/commits/{sha}/check-runs?check_name={name}&filter=all").json["check_runs"]
    )


def dispatch_deploy(gh: Client, env: str) -> None:
    """``workflow_dispatch`` of deploy.yml on the environment's own branch."""
    resp = gh.repo(
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {"ref": env, "inputs": {"environment": env}},
    )
    assert resp.status == 204, resp.text


def health(sandbox: Sandbox, env: str) -> tuple[int, dict[str, Any]]:
    resp = Client(sandbox, None)("GET", f"/_sandbox/health/{env}", token=None)
    return resp.status, resp.json


def test_seeded_environments_are_deployed_and_validated(gh: Client, sandbox: Sandbox) -> None:
    sha = head(gh, "main")
    for env in ("dev", "test", "main"):
        found = deployments(gh, env)
        assert len(found) == 1
        assert found[0]["sha"] == sha
        assert found[0]["creator"]["login"] == "github-actions[bot]"
        assert states(gh, found[0]["id"]) == ["queued", "in_progress", "success"]
        status = gh.repo("GET", f"/deployments/{found[0]['id']}/statuses").json[0]
        assert status["environment_url"] == f"{sandbox.api_url}/_sandbox/health/{env}"
        assert health(sandbox, env) == (
            200,
            {"status": "ok", "environment": env, "sha": sha, "deployment_id": found[0]["id"]},
        )
    combined = gh.repo("GET", f"/commits/{sha}/status").json
    contexts = {s["context"]: s["state"] for s in combined["statuses"]}
    for ctx in (
        "promote/dev",
        "promote/test",
        "promote/main",
        "promote/dev/health",
        "promote/dev/smoke",
        "promote/test/manual",
        "promote/main/monitor",
    ):
        assert contexts[ctx] == "success"
    assert combined["state"] == "success"
    assert all(
        s["creator"]["login"] == "alice" for s in gh.repo("GET", f"/commits/{sha}/statuses").json
    )
    assert [r["conclusion"] for r in runs(gh)] == ["success"] * 6
    monitor = check_runs(gh, sha, "monitor")
    assert [(m["status"], m["conclusion"]) for m in monitor] == [("in_progress", None)]


def test_merge_starts_a_deploy_that_advances_step_by_step(gh: Client, sandbox: Sandbox) -> None:
    assert gh.repo("PUT", "/pulls/1/merge", {}).status == 200
    new = head(gh, "dev")
    [run] = runs(gh, branch="dev", event="push", head_sha=new)
    assert (run["status"], run["path"], run["name"]) == (
        "queued",
        ".github/workflows/deploy.yml",
        "Deploy",
    )
    assert run["actor"]["login"] == "alice"
    assert len(deployments(gh, "dev")) == 1  # not yet created
    sandbox.advance()
    assert gh.repo("GET", f"/actions/runs/{run['id']}").json["status"] == "in_progress"
    deployment = deployments(gh, "dev")[0]
    assert (deployment["sha"], deployment["ref"], deployment["task"]) == (new, "dev", "deploy")
    assert deployment["performed_via_github_app"]["slug"] == "github-actions"
    assert states(gh, deployment["id"]) == ["queued"]
    sandbox.advance()
    assert states(gh, deployment["id"]) == ["queued", "in_progress"]
    [check] = check_runs(gh, new, "deploy")
    assert check["status"] == "in_progress"
    assert check["deployment"]["id"] == deployment["id"]
    sandbox.advance()
    assert states(gh, deployment["id"]) == ["queued", "in_progress", "success"]
    done = gh.repo("GET", f"/actions/runs/{run['id']}").json
    assert (done["status"], done["conclusion"]) == ("completed", "success")
    jobs = gh.repo("GET", f"/actions/runs/{run['id']}/jobs").json["jobs"]
    assert [j["conclusion"] for j in jobs] == ["success"]
    assert all(s["conclusion"] == "success" for s in jobs[0]["steps"])
    # the older dev deployment went inactive (auto_inactive)
    older = deployments(gh, "dev")[1]
    assert states(gh, older["id"])[-1] == "inactive"
    assert health(sandbox, "dev")[1]["sha"] == new
    # smoke tests follow the successful deployment
    [smoke] = runs(gh, event="deployment_status", head_sha=new)
    assert smoke["path"] == ".github/workflows/smoke.yml"
    assert smoke["head_branch"] == "dev"
    sandbox.settle()
    [smoke_check] = check_runs(gh, new, "smoke")
    assert smoke_check["conclusion"] == "success"
    assert check_runs(gh, new, "monitor") == []  # monitors only in production


def test_plans_only_push_does_not_deploy(gh: Client, sandbox: Sandbox) -> None:
    content = base64.b64encode(b"---\nid: x\ntitle: X\npriority: 1\n---\n").decode()
    resp = gh.repo(
        "PUT",
        "/contents/plans/inbox/x.md",
        {"message": "Plan x", "content": content, "branch": "dev"},
    )
    assert resp.status == 201
    sandbox.settle()
    assert runs(gh, head_sha=head(gh, "dev")) == []
    code = base64.b64encode(b"code\n").decode()
    gh.repo("PUT", "/contents/code.txt", {"message": "Code", "content": code, "branch": "dev"})
    assert len(runs(gh, head_sha=head(gh, "dev"), event="push")) == 1


def test_a_real_git_push_to_an_env_branch_triggers_a_deploy(gh: Client, sandbox: Sandbox) -> None:
    clone = sandbox.clone_path

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=clone, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("checkout", "-q", "-b", "dev", "origin/dev")
    (clone / "hotfix.txt").write_text("hot\n")
    git("add", "hotfix.txt")
    git("commit", "-q", "-m", "Hotfix")
    git("push", "-q", "origin", "dev")
    sha = git("rev-parse", "HEAD")
    sandbox.advance()
    found = runs(gh, head_sha=sha)
    assert len(found) == 1
    assert found[0]["event"] == "push"
    sandbox.settle()
    assert deployments(gh, "dev")[0]["sha"] == sha


def test_deploy_failure_per_scenario_counts_attempts(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(fail=(FailRule("dev", "deploy", 1),)))
    gh = Client(sandbox, sandbox.author_token)
    gh.repo("PUT", "/pulls/1/merge", {})
    new = head(gh, "dev")
    sandbox.settle()
    first = deployments(gh, "dev")[0]
    assert states(gh, first["id"]) == ["queued", "in_progress", "failure"]
    assert runs(gh, head_sha=new)[0]["conclusion"] == "failure"
    assert check_runs(gh, new, "smoke") == []
    assert health(sandbox, "dev")[1]["sha"] != new  # still the old deployment
    # the rollback (or any redeploy) is attempt two: it succeeds
    old = gh.repo("GET", "/commits/main").json["sha"]
    resp = gh.repo(
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {"ref": "dev", "inputs": {"environment": "dev", "sha": old}, "return_run_details": True},
    )
    assert resp.status == 200
    run_id = resp.json["workflow_run_id"]
    assert resp.json["run_url"].endswith(f"/actions/runs/{run_id}")
    sandbox.settle()
    run = gh.repo("GET", f"/actions/runs/{run_id}").json
    assert (run["event"], run["head_branch"], run["head_sha"], run["conclusion"]) == (
        "workflow_dispatch",
        "dev",
        new,
        "success",
    )
    rollback = deployments(gh, "dev")[0]
    assert rollback["sha"] == old
    assert states(gh, rollback["id"])[-1] == "success"
    assert health(sandbox, "dev")[1]["sha"] == old


def test_dispatch_validation_and_204(gh: Client) -> None:
    path = "/actions/workflows/deploy.yml/dispatches"
    sha = head(gh, "dev")
    assert (
        gh.repo("POST", path, {"ref": "dev", "inputs": {"environment": "dev", "sha": sha}}).status
        == 204
    )
    assert gh.repo("POST", path, {"ref": sha, "inputs": {"environment": "dev"}}).status == 422
    assert gh.repo("POST", path, {"ref": "dev", "inputs": {}}).json["message"] == (
        "Required input 'environment' not provided"
    )
    assert gh.repo("POST", path, {"ref": "dev", "inputs": {"environment": "prod"}}).status == 422
    assert (
        gh.repo("POST", path, {"ref": "dev", "inputs": {"environment": "dev", "x": "1"}}).status
        == 422
    )
    smoke = gh.repo("POST", "/actions/workflows/smoke.yml/dispatches", {"ref": "dev"})
    assert smoke.status == 422
    wf = gh.repo("GET", "/actions/workflows").json
    assert [w["path"] for w in wf["workflows"]] == [
        ".github/workflows/deploy.yml",
        ".github/workflows/smoke.yml",
    ]
    by_id = gh.repo("GET", f"/actions/workflows/{wf['workflows'][0]['id']}/runs").json
    assert by_id["total_count"] == 4  # three seeded deploys and the dispatch


def test_smoke_failure_and_health_failure(make_sandbox: Callable[..., Sandbox]) -> None:
    scenario = Scenario(fail=(FailRule("dev", "smoke", 1), FailRule("dev", "health", 1)))
    sandbox = make_sandbox(scenario=scenario)
    gh = Client(sandbox, sandbox.author_token)
    gh.repo("PUT", "/pulls/1/merge", {})
    new = head(gh, "dev")
    sandbox.settle()
    assert check_runs(gh, new, "smoke")[0]["conclusion"] == "failure"
    code, body = health(sandbox, "dev")
    assert code == 503
    assert body["sha"] == new
    assert health(sandbox, "dev")[0] == 503  # per deployment, not per request
    assert health(sandbox, "test")[0] == 200
    # a second deployment of the same sha is healthy again
    dispatch_deploy(gh, "dev")
    sandbox.settle()
    assert health(sandbox, "dev")[0] == 200


def test_production_monitor_fails_after_a_few_steps(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(fail=(FailRule("main", "monitor"),)))
    gh = Client(sandbox, sandbox.author_token)
    sha = head(gh, "feature/add-greeting")
    resp = gh.repo(
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {"ref": "main", "inputs": {"environment": "main", "sha": sha}},
    )
    assert resp.status == 204
    for _ in range(3):
        sandbox.advance()
    [monitor] = check_runs(gh, sha, "monitor")
    assert monitor["status"] == "in_progress"
    assert monitor["app"]["slug"] == "sandbox-monitor"
    sandbox.settle()
    [monitor] = check_runs(gh, sha, "monitor")
    assert (monitor["status"], monitor["conclusion"]) == ("completed", "failure")
    old = check_runs(gh, head(gh, "main"), "monitor")[0]
    assert (old["status"], old["conclusion"]) == ("completed", "neutral")


def test_rest_created_deployment_gets_no_statuses_on_its_own(gh: Client, sandbox: Sandbox) -> None:
    sha = head(gh, "dev")
    resp = gh.repo(
        "POST",
        "/deployments",
        {
            "ref": sha,
            "environment": "dev",
            "task": "deploy:rollback",
            "auto_merge": False,
            "required_contexts": [],
            "payload": {"promote": {"rollback_of": sha}},
        },
    )
    assert resp.status == 201
    body = resp.json
    assert body["payload"] == {"promote": {"rollback_of": sha}}
    assert body["creator"]["login"] == "alice"
    assert body["production_environment"] is False
    sandbox.settle()
    assert states(gh, body["id"]) == []
    posted = gh.repo(
        "POST", f"/deployments/{body['id']}/statuses", {"state": "success", "log_url": "http://x"}
    )
    assert posted.status == 201
    assert posted.json["target_url"] == "http://x"
    assert states(gh, body["id"]) == ["success"]
    assert (
        gh.repo("POST", f"/deployments/{body['id']}/statuses", {"state": "waiting"}).status == 422
    )


def test_create_deployment_defaults_are_hostile(gh: Client, sandbox: Sandbox) -> None:
    # main's head carries an in-progress monitor check run, so the default required_contexts fail
    conflict = gh.repo("POST", "/deployments", {"ref": "main", "environment": "main"})
    assert conflict.status == 409
    assert conflict.json["errors"][0]["field"] == "required_contexts"
    # a ref behind the default branch gets main merged into it: 202 and no deployment
    gh.repo("PUT", "/pulls/1/merge", {})
    sandbox.settle()
    dev = head(gh, "dev")
    gh.repo("POST", "/pulls", {"title": "Promote", "head": "dev", "base": "test"})
    gh.repo("PUT", "/pulls/2/merge", {})
    gh.repo("POST", "/pulls", {"title": "Promote", "head": "test", "base": "main"})
    gh.repo("PUT", "/pulls/3/merge", {})
    sandbox.settle()
    count = len(gh.repo("GET", "/deployments").json)
    auto = gh.repo(
        "POST", "/deployments", {"ref": "dev", "environment": "dev", "required_contexts": []}
    )
    assert auto.status == 202
    assert auto.json == {"message": "Auto-merged main into dev on deployment."}
    assert len(gh.repo("GET", "/deployments").json) == count
    assert head(gh, "dev") != dev
    old = gh.repo(
        "POST", "/deployments", {"ref": dev, "environment": "dev", "required_contexts": []}
    )
    assert old.status == 409
    ok = gh.repo(
        "POST",
        "/deployments",
        {"ref": dev, "environment": "dev", "required_contexts": [], "auto_merge": False},
    )
    assert ok.status == 201
    assert ok.json["environment"] == "dev"


def test_required_reviewers_hold_the_run_until_approved(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(scenario=Scenario(required_reviewers={"test": ("rita",)}))
    gh = Client(sandbox, sandbox.author_token)
    rita = Client(sandbox, sandbox.reviewer_token)
    dispatch_deploy(gh, "test")
    sandbox.settle()
    [run] = runs(gh, event="workflow_dispatch")
    assert run["status"] == "waiting"
    pending = gh.repo("GET", f"/actions/runs/{run['id']}/pending_deployments").json
    assert pending[0]["environment"]["name"] == "test"
    assert pending[0]["current_user_can_approve"] is False
    assert rita.repo("GET", f"/actions/runs/{run['id']}/pending_deployments").json[0][
        "current_user_can_approve"
    ]
    env_id = pending[0]["environment"]["id"]
    denied = gh.repo(
        "POST",
        f"/actions/runs/{run['id']}/pending_deployments",
        {"environment_ids": [env_id], "state": "approved", "comment": "me"},
    )
    assert denied.status == 422
    ok = rita.repo(
        "POST",
        f"/actions/runs/{run['id']}/pending_deployments",
        {"environment_ids": [env_id], "state": "approved", "comment": "ship it"},
    )
    assert ok.status == 200
    assert ok.json[0]["environment"] == "test"
    sandbox.settle()
    assert gh.repo("GET", f"/actions/runs/{run['id']}").json["conclusion"] == "success"
    approvals = gh.repo("GET", f"/actions/runs/{run['id']}/approvals").json
    assert [(a["state"], a["user"]["login"]) for a in approvals] == [("approved", "rita")]
    env = gh.repo("GET", "/environments/test").json
    assert env["protection_rules"][0]["type"] == "required_reviewers"


def test_merge_bot_merges_unless_the_gate_fails(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True))
    gh = Client(sandbox, sandbox.author_token)
    feature = head(gh, "feature/add-greeting")
    gh.repo("POST", f"/statuses/{feature}", {"state": "failure", "context": "promote/gate"})
    sandbox.settle()
    assert gh.repo("GET", "/pulls/1").json["state"] == "open"
    gh.repo("POST", f"/statuses/{feature}", {"state": "success", "context": "promote/gate"})
    sandbox.settle()
    pr = gh.repo("GET", "/pulls/1").json
    assert pr["merged"]
    assert pr["merged_by"]["login"] == "alice"
    assert deployments(gh, "dev")[0]["sha"] == head(gh, "dev")


def test_required_checks_hold_a_merge_until_they_succeed(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(scenario=Scenario(required_checks=("promote/gate",)))
    gh = Client(sandbox, sandbox.author_token)
    feature = head(gh, "feature/add-greeting")
    refused = gh.repo("PUT", "/pulls/1/merge", {})
    assert (refused.status, refused.json["message"]) == (
        405,
        'Required status check "promote/gate" is expected.',
    )
    gh.repo("POST", f"/statuses/{feature}", {"state": "failure", "context": "promote/gate"})
    refused = gh.repo("PUT", "/pulls/1/merge", {})
    assert (refused.status, refused.json["message"]) == (
        405,
        'Required status check "promote/gate" is failure.',
    )
    assert head(gh, "dev") != feature
    gh.repo("POST", f"/statuses/{feature}", {"state": "success", "context": "Promote/Gate"})
    assert gh.repo("PUT", "/pulls/1/merge", {}).status == 200


def test_the_merge_bot_minds_required_checks(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True, required_checks=("promote/gate",)))
    gh = Client(sandbox, sandbox.author_token)
    sandbox.settle()
    assert gh.repo("GET", "/pulls/1").json["state"] == "open", "no gate yet: it waits"
    feature = head(gh, "feature/add-greeting")
    gh.repo("POST", f"/statuses/{feature}", {"state": "success", "context": "promote/gate"})
    sandbox.settle()
    assert gh.repo("GET", "/pulls/1").json["merged"]


@pytest.mark.parametrize("method", ["squash", "rebase"])
def test_merge_bot_uses_the_scenario_method(
    make_sandbox: Callable[..., Sandbox], method: str
) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True, merge_method=method))
    gh = Client(sandbox, sandbox.author_token)
    sandbox.settle()
    dev = gh.repo("GET", "/commits/dev").json
    assert len(dev["parents"]) == 1
    assert dev["commit"]["message"].splitlines()[0].endswith("(#1)") == (method == "squash")


def test_wall_clock_advances_ci_without_control_calls(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(step_ms=5)
    gh = Client(sandbox, sandbox.author_token)
    gh.repo("PUT", "/pulls/1/merge", {})
    new = head(gh, "dev")
    for _ in range(400):
        found = runs(gh, head_sha=new, event="push")
        if found and found[0]["status"] == "completed":
            break
        time.sleep(0.01)
    assert found[0]["conclusion"] == "success"


def test_cancel_and_hang(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(scenario=Scenario(hang=(FailRule("dev", "deploy"),)))
    gh = Client(sandbox, sandbox.author_token)
    gh.repo("PUT", "/pulls/1/merge", {})
    sandbox.settle()
    [run] = runs(gh, event="push", head_sha=head(gh, "dev"))
    assert run["status"] == "in_progress"
    assert gh.repo("POST", f"/actions/runs/{run['id']}/cancel").status == 202
    assert gh.repo("GET", f"/actions/runs/{run['id']}").json["conclusion"] == "cancelled"
    assert gh.repo("POST", f"/actions/runs/{run['id']}/cancel").status == 409
    assert states(gh, deployments(gh, "dev")[0]["id"])[-1] == "error"


def test_wait_timer_holds_a_run_for_that_many_steps(gh: Client, sandbox: Sandbox) -> None:
    put = gh.repo("PUT", "/environments/dev", {"wait_timer": 2})
    assert put.status == 200
    assert put.json["protection_rules"][0] == {
        **put.json["protection_rules"][0],
        "type": "wait_timer",
        "wait_timer": 2,
    }
    dispatch_deploy(gh, "dev")
    sandbox.advance()
    [run] = runs(gh, event="workflow_dispatch")
    assert run["status"] == "waiting"
    pending = gh.repo("GET", f"/actions/runs/{run['id']}/pending_deployments").json
    assert pending[0]["wait_timer"] == 2
    assert pending[0]["wait_timer_started_at"] is not None
    assert pending[0]["reviewers"] == []
    deployment = deployments(gh, "dev")[0]
    assert states(gh, deployment["id"]) == ["waiting"]
    sandbox.advance()
    sandbox.advance()
    assert gh.repo("GET", f"/actions/runs/{run['id']}").json["status"] == "waiting"
    sandbox.settle()
    assert gh.repo("GET", f"/actions/runs/{run['id']}").json["conclusion"] == "success"
    assert states(gh, deployment["id"]) == ["waiting", "queued", "in_progress", "success"]
