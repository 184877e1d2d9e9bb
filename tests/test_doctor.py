"""`promote doctor` against a sandbox repository, as a team would meet it: read-only checks,
each mistake named with its fix, exit 1 while any is left, 0 once fixed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import jsonschema

from promote_sandbox import Sandbox
from promote_sandbox.scenario import Scenario
from promote_sandbox.scenario import UserSpec
from promote_sandbox.scenario import _default_users
from promote_tasks.schemas import schema
from tests import console
from tests.e2e.conftest import Api
from tests.sandbox.conftest import Client
from tests.sandbox.test_fidelity import validate

PROMOTE_YML = """\
name: promote
on:
  workflow_dispatch:
concurrency:
  group: promote-${{ github.repository }}
  cancel-in-progress: false
permissions: {}
jobs:
  next:
    runs-on: ubuntu-latest
    permissions:
      contents: write
      pull-requests: write
      issues: write
      deployments: write
      statuses: write
      actions: write
      checks: read
    steps:
      - run: promote next --until-rest
"""
NO_INPUTS = "name: Deploy\non:\n  push:\n  workflow_dispatch:\njobs: {}\n"
ADMIN = UserSpec("ada", "admin", "Ada Admin", "ada@example.com")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def doctor(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    environ = sandbox.env()
    return console.promote("doctor", *args, cwd=Path(environ["PROMOTE_CLONE"]), env=environ)


def commit_to(clone: Path, branch: str, path: str, text: str) -> None:
    git(clone, "fetch", "-q", "origin", branch)
    git(clone, "checkout", "-q", "-B", f"doctor-{branch}", f"origin/{branch}")
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_text(text, encoding="utf-8")
    git(clone, "add", path)
    git(clone, "commit", "-q", "-m", f"doctor test: {path}")
    git(clone, "push", "-q", "origin", f"HEAD:{branch}")


def all_writes(sandbox: Sandbox) -> int:
    return sum(Api(sandbox, sandbox.author_token).writes().values())


def failing(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("✗")]


def test_three_mistakes_are_named_and_fixed_it_exits_0(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(scenario=Scenario(users=(*_default_users(), ADMIN)))
    clone = Path(sandbox.env()["PROMOTE_CLONE"])
    # The promote workflow is in every branch (as after `promote init` travelled the pipeline).
    commit_to(clone, "dev", ".github/workflows/promote.yml", PROMOTE_YML)
    git(clone, "push", "-q", "origin", "origin/dev:test", "origin/dev:main")
    # The mistakes: no test branch, a deploy workflow without inputs, a reviewer who only reads.
    git(clone, "push", "-q", "origin", ":test")
    commit_to(clone, "dev", ".github/workflows/deploy.yml", NO_INPUTS)
    toml = (clone / "promote.toml").read_text(encoding="utf-8")
    (clone / "promote.toml").write_text(toml.replace('"rita"', '"bob"'), encoding="utf-8")
    before = all_writes(sandbox)

    found = doctor(sandbox)
    assert found.returncode == 1, found.stderr
    assert failing(found) == [
        "✗ branch test: the environment branch test does not exist",
        "✗ deploy workflow: .github/workflows/deploy.yml does not accept workflow_dispatch"
        " with inputs environment, sha",
        "✗ reviewer bob: bob is not a collaborator with write access (has read)",
    ]
    assert "→ give bob write access, or take them out of reviewers" in found.stdout
    assert all_writes(sandbox) == before  # the doctor only reads

    # The fixes.
    git(clone, "push", "-q", "origin", "origin/main:refs/heads/test")
    git(clone, "fetch", "-q", "origin")
    deploy = git(clone, "show", "origin/main:.github/workflows/deploy.yml")
    commit_to(clone, "dev", ".github/workflows/deploy.yml", deploy + "\n")
    (clone / "promote.toml").write_text(toml, encoding="utf-8")

    healthy = doctor(sandbox, "--json")
    assert (healthy.returncode, healthy.stderr) == (0, ""), healthy.stdout
    data = json.loads(healthy.stdout)
    jsonschema.validate(data, schema("doctor"))
    assert data["ok"] is True
    assert {c["name"] for c in data["checks"] if not c["ok"]} == {
        "ruleset dev",
        "ruleset test",
        "ruleset main",
    }  # warnings only
    assert not any(c["required"] for c in data["checks"] if not c["ok"])


def test_a_ruleset_requiring_a_pr_and_the_gate_is_seen(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(scenario=Scenario(users=(*_default_users(), ADMIN)))
    gh = Client(sandbox, sandbox.token("ada"))
    made = gh.repo("POST", "/rulesets", {
        "name": "environments", "enforcement": "active", "target": "branch",
        "conditions": {"ref_name": {"include": ["refs/heads/dev"], "exclude": []}},
        "rules": [
            {"type": "pull_request"},
            {"type": "required_status_checks", "parameters": {
                "strict_required_status_checks_policy": False,
                "required_status_checks": [{"context": "promote/gate"}]}},
        ],
    })  # fmt: skip
    assert made.status == 201, made.text
    rules = gh.repo("GET", "/rules/branches/dev").json
    assert [r["type"] for r in rules] == ["pull_request", "required_status_checks"]
    # each as GitHub's published models describe it (pull_request, required_status_checks)
    assert validate("RepositoryRuleDetailedOneof7", json.dumps(rules[0])) == []
    assert validate("RepositoryRuleDetailedOneof8", json.dumps(rules[1])) == []
    assert gh.repo("GET", "/rules/branches/test").json == []
    data = json.loads(doctor(sandbox, "--json").stdout)
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["ruleset dev"]["ok"] is True
    assert by_name["ruleset test"]["ok"] is False


def test_a_ruleset_needs_an_admin(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    gh = Client(sandbox, sandbox.author_token)
    refused = gh.repo("POST", "/rulesets", {"name": "x", "conditions": {}, "rules": []})
    assert refused.status == 403


def test_without_a_token_the_doctor_says_so_in_one_line(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    environ = {k: v for k, v in sandbox.env().items() if k != "GITHUB_TOKEN"}
    result = console.promote("doctor", cwd=Path(environ["PROMOTE_CLONE"]), env=environ)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert "token" in result.stderr.lower()


def test_the_promote_jobs_token_must_be_allowed_what_the_pipeline_writes(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    """A GITHUB_TOKEN's permissions are the workflow's permissions: block (GitHub shows them
    nowhere else), so the doctor reads them there: missing writes named, the template passes."""
    from promote_tasks.init import template

    sandbox = make_sandbox()
    clone = Path(sandbox.env()["PROMOTE_CLONE"])
    narrow = PROMOTE_YML.replace("      statuses: write\n", "").replace(
        "      actions: write\n", "      actions: read\n"
    )
    commit_to(clone, "main", ".github/workflows/promote.yml", narrow)
    found = doctor(sandbox)
    assert found.returncode == 1
    assert (
        "✗ workflow permissions: the promote job's token may not statuses: write, actions: write"
        in found.stdout
    )
    assert "→ add to the promote job's permissions: statuses: write, actions: write" in found.stdout

    bare = PROMOTE_YML.replace("permissions: {}\n", "").split("    permissions:")[0] + (
        "    steps:\n      - run: promote next --until-rest\n"
    )
    commit_to(clone, "main", ".github/workflows/promote.yml", bare)
    assert (
        "✗ workflow permissions: .github/workflows/promote.yml sets no permissions"
        in doctor(sandbox).stdout
    )

    commit_to(clone, "main", ".github/workflows/promote.yml", template("workflows/promote.yml"))
    healthy = doctor(sandbox)
    assert "✓ workflow permissions: the promote job may write actions, contents" in healthy.stdout
    assert "sbx_" not in healthy.stdout + healthy.stderr
