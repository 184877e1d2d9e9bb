"""Every endpoint's JSON against GitHub's published models (githubkit-schemas, API 2022-11-28).

Each response is validated from its JSON text in strict mode, and its keys are compared with the
model's fields at every level, so the sandbox can neither omit a required field nor invent one.
One sandbox is driven through a full journey (merges, deploys, a dispatch, reviews, issues, an
approval-gated environment) and every write's answer is recorded along the way.
"""

from __future__ import annotations

import base64
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from tests.sandbox.conftest import Client
from tests.sandbox.conftest import Resp


@dataclass
class Exchange:
    name: str
    model: str
    resp: Resp
    status: int


def _model(spec: str) -> Any:
    import githubkit_schemas.v2022_11_28.models as models

    if spec.startswith("list[") and spec.endswith("]"):
        return list[getattr(models, spec[5:-1])]  # type: ignore[misc]
    return getattr(models, spec)


def invented_keys(value: Any, data: Any, path: str = "$") -> list[str]:
    """Keys in ``data`` that the validated model does not declare, at any depth."""
    from pydantic import BaseModel

    found: list[str] = []
    if isinstance(value, BaseModel) and isinstance(data, dict):
        cls = type(value)
        if cls.model_config.get("extra") == "allow":
            return found  # GitHub declares these objects free-form (payloads, permissions)
        fields = {(f.alias or name): name for name, f in cls.model_fields.items()}
        found += [f"{path}.{k}" for k in data if k not in fields]
        for key, name in fields.items():
            if key in data:
                found += invented_keys(getattr(value, name), data[key], f"{path}.{key}")
    elif isinstance(value, list) and isinstance(data, list):
        for i, (v, d) in enumerate(zip(value, data, strict=False)):
            found += invented_keys(v, d, f"{path}[{i}]")
    return found


def validate(model_spec: str, text: str) -> list[str]:
    import json

    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(_model(model_spec))
    value = adapter.validate_json(text, strict=True)
    return invented_keys(value, json.loads(text))


def _journey(sandbox: Sandbox) -> list[Exchange]:
    gh = Client(sandbox, sandbox.author_token)
    rita = Client(sandbox, sandbox.reviewer_token)
    log: list[Exchange] = []

    def write(
        name: str, model: str, status: int, client: Client, method: str, tail: str, body: Any = None
    ) -> Resp:
        resp = client.repo(method, tail, body)
        assert resp.status == status, (name, resp.status, resp.text)
        log.append(Exchange(name, model, resp, status))
        return resp

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    write(
        "request reviewers",
        "PullRequestSimple",
        201,
        gh,
        "POST",
        "/pulls/1/requested_reviewers",
        {"reviewers": ["rita"]},
    )
    write(
        "create review",
        "PullRequestReview",
        200,
        rita,
        "POST",
        "/pulls/1/reviews",
        {"event": "APPROVE", "body": "ok"},
    )
    write(
        "update pull", "PullRequest", 200, gh, "PATCH", "/pulls/1", {"body": "Plan: add-greeting"}
    )
    write(
        "merge pull",
        "PullRequestMergeResult",
        200,
        gh,
        "PUT",
        "/pulls/1/merge",
        {"merge_method": "merge"},
    )
    sandbox.settle()
    dev = gh.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    write(
        "create status",
        "Status",
        201,
        gh,
        "POST",
        f"/statuses/{dev}",
        {
            "state": "success",
            "context": "promote/dev",
            "description": "ok",
            "target_url": "http://x",
        },
    )
    write(
        "create pull",
        "PullRequest",
        201,
        gh,
        "POST",
        "/pulls",
        {
            "title": "Promote add-greeting to test",
            "head": "dev",
            "base": "test",
            "body": "Promote-Plan: add-greeting",
        },
    )
    write(
        "create issue",
        "Issue",
        201,
        gh,
        "POST",
        "/issues",
        {"title": "Manual test", "body": "- [ ] a", "labels": ["promote"], "assignees": ["rita"]},
    )
    write(
        "update issue",
        "ReposOwnerRepoIssuesIssueNumberPatchResponse200",
        200,
        gh,
        "PATCH",
        "/issues/3",
        {"state": "closed"},
    )
    comment = write(
        "create comment",
        "IssueComment",
        201,
        rita,
        "POST",
        "/issues/3/comments",
        {"body": "approve"},
    )
    write(
        "update comment",
        "IssueComment",
        200,
        rita,
        "PATCH",
        f"/issues/comments/{comment.json['id']}",
        {"body": "approve!"},
    )
    write(
        "add labels", "list[Label]", 200, gh, "POST", "/issues/2/labels", {"labels": ["promotion"]}
    )
    write(
        "set labels",
        "list[Label]",
        200,
        gh,
        "PUT",
        "/issues/2/labels",
        {"labels": ["promotion", "x"]},
    )
    write("remove label", "list[Label]", 200, gh, "DELETE", "/issues/2/labels/x")
    write(
        "create label",
        "Label",
        201,
        gh,
        "POST",
        "/labels",
        {"name": "promote:fix", "color": "ff0000"},
    )
    write(
        "create ref",
        "GitRef",
        201,
        gh,
        "POST",
        "/git/refs",
        {"ref": "refs/promote/locks/dev", "sha": dev},
    )
    write(
        "update ref",
        "GitRef",
        200,
        gh,
        "PATCH",
        "/git/refs/promote/locks/dev",
        {"sha": dev, "force": True},
    )
    blob = write(
        "create blob",
        "ShortBlob",
        201,
        gh,
        "POST",
        "/git/blobs",
        {"content": "x", "encoding": "utf-8"},
    )
    tree_sha = gh.repo("GET", f"/git/commits/{dev}").json["tree"]["sha"]
    tree = write(
        "create tree",
        "GitTree",
        201,
        gh,
        "POST",
        "/git/trees",
        {
            "base_tree": tree_sha,
            "tree": [
                {"path": "plans/x.md", "mode": "100644", "type": "blob", "sha": blob.json["sha"]}
            ],
        },
    )
    write(
        "create commit",
        "GitCommit",
        201,
        gh,
        "POST",
        "/git/commits",
        {"message": "x", "tree": tree.json["sha"], "parents": [dev]},
    )
    put = write(
        "put contents",
        "FileCommit",
        201,
        gh,
        "PUT",
        "/contents/plans/inbox/fix.md",
        {"message": "Add", "content": b64("---\nid: fix\n---\n"), "branch": "dev"},
    )
    write(
        "delete contents",
        "FileCommit",
        200,
        gh,
        "DELETE",
        "/contents/plans/inbox/fix.md",
        {"message": "Drop", "sha": put.json["content"]["sha"], "branch": "dev"},
    )
    deployment = write(
        "create deployment",
        "Deployment",
        201,
        gh,
        "POST",
        "/deployments",
        {
            "ref": dev,
            "environment": "dev",
            "task": "deploy:rollback",
            "auto_merge": False,
            "required_contexts": [],
            "payload": {"promote": {"rollback_of": dev}},
        },
    )
    write(
        "create deployment status",
        "DeploymentStatus",
        201,
        gh,
        "POST",
        f"/deployments/{deployment.json['id']}/statuses",
        {"state": "success", "environment_url": "http://x", "log_url": "http://y"},
    )
    write(
        "put environment",
        "Environment",
        200,
        gh,
        "PUT",
        "/environments/test",
        {
            "wait_timer": 0,
            "reviewers": [{"type": "User", "id": sandbox.store.users["rita"].id}],
            "deployment_branch_policy": None,
        },
    )
    write(
        "dispatch (no details)",
        "",
        204,
        gh,
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {"ref": "test", "inputs": {"environment": "test", "sha": dev}},
    )
    sandbox.settle()
    run_id = gh.repo("GET", "/actions/runs?event=workflow_dispatch").json["workflow_runs"][0]["id"]
    env_id = gh.repo("GET", "/environments/test").json["id"]
    log.append(
        Exchange(
            "pending deployments",
            "list[PendingDeployment]",
            rita.repo("GET", f"/actions/runs/{run_id}/pending_deployments"),
            200,
        )
    )
    write(
        "review pending deployments",
        "list[Deployment]",
        200,
        rita,
        "POST",
        f"/actions/runs/{run_id}/pending_deployments",
        {"environment_ids": [env_id], "state": "approved", "comment": "go"},
    )
    write("cancel run", "EmptyObject", 202, gh, "POST", f"/actions/runs/{run_id}/cancel")
    gh.repo("PUT", "/environments/test", {"reviewers": []})
    write("merge promotion", "PullRequestMergeResult", 200, gh, "PUT", "/pulls/2/merge", {})
    sandbox.settle()
    return log


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sandbox, list[Exchange]]]:
    sandbox = start(tmp_path_factory.mktemp("fidelity"), scenario=Scenario(), step_ms=0)
    try:
        yield sandbox, _journey(sandbox)
    finally:
        sandbox.stop()


WRITE_NAMES = [
    "request reviewers",
    "create review",
    "update pull",
    "merge pull",
    "create status",
    "create pull",
    "create issue",
    "update issue",
    "create comment",
    "update comment",
    "add labels",
    "set labels",
    "remove label",
    "create label",
    "create ref",
    "update ref",
    "create blob",
    "create tree",
    "create commit",
    "put contents",
    "delete contents",
    "create deployment",
    "create deployment status",
    "put environment",
    "review pending deployments",
    "cancel run",
    "merge promotion",
    "pending deployments",
]


@pytest.mark.parametrize("name", WRITE_NAMES)
def test_write_responses_match_githubs_models(
    journey: tuple[Sandbox, list[Exchange]], name: str
) -> None:
    _, log = journey
    [exchange] = [e for e in log if e.name == name]
    assert validate(exchange.model, exchange.resp.text) == []


def _reads(sandbox: Sandbox) -> list[tuple[str, str, str]]:
    """(id, path under /repos/owner/repo or absolute, model) for every GET the sandbox serves."""
    gh = Client(sandbox, sandbox.author_token)
    dev = gh.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    main = gh.repo("GET", "/git/ref/heads/main").json["object"]["sha"]
    deployment = gh.repo("GET", "/deployments?environment=test").json[0]["id"]
    status = gh.repo("GET", f"/deployments/{deployment}/statuses").json[0]["id"]
    run = gh.repo("GET", "/actions/runs?event=workflow_dispatch").json["workflow_runs"][0]["id"]
    job = gh.repo("GET", f"/actions/runs/{run}/jobs").json["jobs"][0]["id"]
    wf = gh.repo("GET", "/actions/workflows").json["workflows"][0]["id"]
    tree = gh.repo("GET", f"/git/commits/{dev}").json["tree"]["sha"]
    blob = gh.repo("GET", "/contents/app.txt?ref=dev").json["sha"]
    comment = gh.repo("GET", "/issues/3/comments").json[0]["id"]
    check = gh.repo("GET", f"/commits/{main}/check-runs").json["check_runs"][0]["id"]
    return [
        ("user", "/user", "PrivateUser"),
        ("public user", "/users/rita", "PublicUser"),
        ("rate limit", "/rate_limit", "RateLimitOverview"),
        ("repository", "", "FullRepository"),
        ("branches", "/branches", "list[ShortBranch]"),
        ("branch", "/branches/feature/add-greeting", "BranchWithProtection"),
        ("permission", "/collaborators/bob/permission", "RepositoryCollaboratorPermission"),
        ("branch rules", "/rules/branches/dev", "list[RepositoryRuleDetailedOneof7]"),
        ("get ref", "/git/ref/heads/dev", "GitRef"),
        ("matching refs", "/git/matching-refs/heads/", "list[GitRef]"),
        ("legacy ref", "/git/refs/heads/dev", "GitRef"),
        ("legacy refs", "/git/refs/heads/feature", "list[GitRef]"),
        ("blob", f"/git/blobs/{blob}", "Blob"),
        ("tree", f"/git/trees/{tree}?recursive=1", "GitTree"),
        ("git commit", f"/git/commits/{dev}", "GitCommit"),
        ("commits", "/commits?sha=dev", "list[Commit]"),
        ("commit", f"/commits/{dev}", "Commit"),
        ("combined status", f"/commits/{main}/status", "CombinedCommitStatus"),
        ("statuses", f"/commits/{main}/statuses", "list[Status]"),
        ("commit pulls", f"/commits/{dev}/pulls", "list[PullRequestSimple]"),
        (
            "check runs",
            f"/commits/{main}/check-runs",
            "ReposOwnerRepoCommitsRefCheckRunsGetResponse200",
        ),
        (
            "check suites",
            f"/commits/{main}/check-suites",
            "ReposOwnerRepoCommitsRefCheckSuitesGetResponse200",
        ),
        ("check run", f"/check-runs/{check}", "CheckRun"),
        ("compare", "/compare/main...dev", "CommitComparison"),
        ("content file", "/contents/plans/doing/add-greeting.md", "ContentFile"),
        ("content dir", "/contents/.github", "list[ContentDirectoryItems]"),
        ("pulls", "/pulls?state=all", "list[PullRequestSimple]"),
        ("pull", "/pulls/1", "PullRequest"),
        ("pull commits", "/pulls/1/commits", "list[Commit]"),
        ("pull files", "/pulls/1/files", "list[DiffEntry]"),
        ("reviews", "/pulls/1/reviews", "list[PullRequestReview]"),
        ("requested reviewers", "/pulls/1/requested_reviewers", "PullRequestReviewRequest"),
        ("issues", "/issues?state=all", "list[Issue]"),
        ("issue", "/issues/3", "Issue"),
        ("issue of a pull", "/issues/1", "Issue"),
        ("comments", "/issues/3/comments", "list[IssueComment]"),
        ("comment", f"/issues/comments/{comment}", "IssueComment"),
        ("issue labels", "/issues/2/labels", "list[Label]"),
        ("labels", "/labels", "list[Label]"),
        ("deployments", "/deployments", "list[Deployment]"),
        ("deployment", f"/deployments/{deployment}", "Deployment"),
        ("deployment status", f"/deployments/{deployment}/statuses/{status}", "DeploymentStatus"),
        ("workflows", "/actions/workflows", "ReposOwnerRepoActionsWorkflowsGetResponse200"),
        ("workflow", "/actions/workflows/deploy.yml", "Workflow"),
        (
            "workflow runs",
            f"/actions/workflows/{wf}/runs",
            "ReposOwnerRepoActionsWorkflowsWorkflowIdRunsGetResponse200",
        ),
        ("runs", "/actions/runs", "ReposOwnerRepoActionsRunsGetResponse200"),
        ("run", f"/actions/runs/{run}", "WorkflowRun"),
        ("jobs", f"/actions/runs/{run}/jobs", "ReposOwnerRepoActionsRunsRunIdJobsGetResponse200"),
        ("job", f"/actions/jobs/{job}", "Job"),
        ("approvals", f"/actions/runs/{run}/approvals", "list[EnvironmentApprovals]"),
        ("environments", "/environments", "ReposOwnerRepoEnvironmentsGetResponse200"),
        ("environment", "/environments/test", "Environment"),
        ("error 404", "/pulls/999", "BasicError"),
        ("error 422", "/commits/nope", "BasicError"),
    ]


READ_IDS = [
    "user",
    "public user",
    "rate limit",
    "repository",
    "branches",
    "branch",
    "permission",
    "get ref",
    "matching refs",
    "legacy ref",
    "legacy refs",
    "blob",
    "tree",
    "git commit",
    "commits",
    "commit",
    "combined status",
    "statuses",
    "commit pulls",
    "check runs",
    "check suites",
    "check run",
    "compare",
    "content file",
    "content dir",
    "pulls",
    "pull",
    "pull commits",
    "pull files",
    "reviews",
    "requested reviewers",
    "issues",
    "issue",
    "issue of a pull",
    "comments",
    "comment",
    "issue labels",
    "labels",
    "deployments",
    "deployment",
    "deployment status",
    "workflows",
    "workflow",
    "workflow runs",
    "runs",
    "run",
    "jobs",
    "job",
    "approvals",
    "environments",
    "environment",
    "error 404",
    "error 422",
]


@pytest.fixture(scope="module")
def reads(journey: tuple[Sandbox, list[Exchange]]) -> dict[str, tuple[str, str]]:
    sandbox, _ = journey
    return {name: (path, model) for name, path, model in _reads(sandbox)}


@pytest.mark.parametrize("name", READ_IDS)
def test_read_responses_match_githubs_models(
    journey: tuple[Sandbox, list[Exchange]], reads: dict[str, tuple[str, str]], name: str
) -> None:
    sandbox, _ = journey
    path, model = reads[name]
    gh = Client(sandbox, sandbox.author_token)
    url = (
        path
        if path in ("/user", "/rate_limit") or path.startswith("/users/")
        else f"/repos/{sandbox.repository}{path}"
    )
    resp = gh("GET", url)
    expected = 404 if name == "error 404" else 422 if name == "error 422" else 200
    assert resp.status == expected, resp.text
    assert validate(model, resp.text) == []


def test_every_read_route_is_covered(
    journey: tuple[Sandbox, list[Exchange]], reads: dict[str, tuple[str, str]]
) -> None:
    """Every GET route the router knows is exercised above (or is an alias of one that is)."""
    sandbox, _ = journey
    aliases = {
        "/repos/{owner}/{repo}/git/matching-refs/",  # same handler as matching-refs/{ref}
        "/repos/{owner}/{repo}/git/refs",  # legacy list of all refs, same handler as git/refs/{ref}
        "/repos/{owner}/{repo}/contents",  # root listing, same handler as contents/{path}
        "/repos/{owner}/{repo}/contents/",
        "/repos/{owner}/{repo}/pulls/{number}/merge",  # 204 or 404, no body
        "/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments",  # validated in the journey
        "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",  # validated below
        "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs",  # 302 to plain text (test_actions.py)
    }
    served = {r.template for r in sandbox.router.routes if r.method == "GET"}
    covered = set()
    for path, _ in reads.values():
        url = path.split("?")[0]
        if not (url in ("/user", "/rate_limit") or url.startswith("/users/")):
            url = f"/repos/{sandbox.repository}{url}"
        matched = sandbox.router.match("GET", url)
        assert matched is not None, url
        covered.add(matched[0].template)
    assert served - covered - aliases == set()


def test_deployment_statuses_list_matches_except_githubs_own_waiting_state(
    journey: tuple[Sandbox, list[Exchange]],
) -> None:
    """Actions writes ``waiting`` statuses that GitHub's own schema does not list; nothing else differs."""
    sandbox, _ = journey
    gh = Client(sandbox, sandbox.author_token)
    saw_waiting = False
    for deployment in gh.repo("GET", "/deployments?per_page=100").json:
        resp = gh.repo("GET", f"/deployments/{deployment['id']}/statuses")
        statuses = resp.json
        clean = [s for s in statuses if s["state"] != "waiting"]
        saw_waiting = saw_waiting or len(clean) != len(statuses)
        import json

        assert validate("list[DeploymentStatus]", json.dumps(clean)) == []
    assert saw_waiting


def test_dispatch_with_run_details(journey: tuple[Sandbox, list[Exchange]]) -> None:
    sandbox, _ = journey
    gh = Client(sandbox, sandbox.author_token)
    resp = gh.repo(
        "POST",
        "/actions/workflows/deploy.yml/dispatches",
        {"ref": "dev", "inputs": {"environment": "dev"}, "return_run_details": True},
    )
    assert resp.status == 200
    assert set(resp.json) == {"workflow_run_id", "run_url", "html_url"}
    assert isinstance(resp.json["workflow_run_id"], int)
    assert (
        validate("WorkflowRun", gh("GET", resp.json["run_url"].replace(sandbox.api_url, "")).text)
        == []
    )


def test_validation_error_bodies_match_githubs_model(
    journey: tuple[Sandbox, list[Exchange]],
) -> None:
    """422 bodies: GitHub sends ``status`` on every error (reference Appendix A, item 6), though
    its validation-error schemas do not declare it; that one key is the only difference allowed."""
    sandbox, _ = journey
    gh = Client(sandbox, sandbox.author_token)
    resp = gh.repo("POST", "/pulls", {"title": "x", "head": "dev", "base": "test"})
    assert resp.status == 422
    assert validate("ValidationError", resp.text) == ["$.status"]
    resp = gh.repo("POST", "/pulls/2/reviews", {"event": "APPROVE"})
    assert resp.status == 422
    assert validate("ValidationErrorSimple", resp.text) == ["$.status"]
    assert validate("BasicError", gh.repo("GET", "", token="bad").text) == []
    app_only = gh.repo("POST", "/check-runs", {"name": "x", "head_sha": "a" * 40})
    assert app_only.status == 403
    assert validate("BasicError", app_only.text) == []
    pr = gh.repo(
        "POST", "/pulls", {"title": "t", "head": "feature/add-greeting", "base": "main"}
    ).json
    stale = gh.repo("PUT", f"/pulls/{pr['number']}/merge", {"sha": "b" * 40})
    assert stale.status == 409
    assert validate("ReposOwnerRepoPullsPullNumberMergePutResponse409", stale.text) == ["$.status"]
    gh.repo("PATCH", f"/pulls/{pr['number']}", {"state": "closed"})
    closed = gh.repo("PUT", f"/pulls/{pr['number']}/merge", {})
    assert closed.status == 405
    assert validate("ReposOwnerRepoPullsPullNumberMergePutResponse405", closed.text) == ["$.status"]
    gated = gh.repo(
        "POST", "/deployments", {"ref": "main", "environment": "main", "auto_merge": False}
    )
    assert gated.status == 409
    # GitHub lists the failing contexts in the 409 (seen in real answers), beyond its schema.
    assert validate("ValidationError", gated.text) == ["$.status", "$.errors[0].contexts"]


def test_invented_keys_are_detected() -> None:
    """The key comparison itself can fail: an extra key anywhere is reported with its path."""
    sha = "a" * 40
    text = f'{{"ref":"refs/heads/x","node_id":"n","url":"u","object":{{"type":"commit","sha":"{sha}","url":"u","bogus":1}}}}'
    assert validate("GitRef", text) == ["$.object.bogus"]
    with pytest.raises(Exception):  # noqa: B017,PT011 - pydantic's ValidationError
        validate("GitRef", '{"ref":"refs/heads/x","node_id":"n","url":"u"}')


_ = typing
