"""The seeded workflow files and the scenario format."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import ScenarioError
from promote_sandbox.seed import SMOKE_WORKFLOW
from promote_sandbox.seed import deploy_workflow


def test_seeded_workflows_pass_the_github_workflow_schema(sandbox: Sandbox, tmp_path: Path) -> None:
    checker = shutil.which("check-jsonschema") or str(
        Path(__file__).parents[2] / ".venv/bin/check-jsonschema"
    )
    files = []
    for name in ("deploy.yml", "smoke.yml"):
        path = sandbox.clone_path / ".github" / "workflows" / name
        text = path.read_text()
        assert "actions/checkout@v5" in text
        files.append(str(path))
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    ok = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        [checker, "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True
    )
    assert bad.returncode != 0


def test_deploy_workflow_declares_what_the_sandbox_simulates() -> None:
    text = deploy_workflow(("dev", "test", "main"))
    assert "paths-ignore:\n      - 'plans/**'" in text
    assert "workflow_dispatch:" in text
    assert "environment:" in text
    assert "sha:" in text
    assert "branches: [dev, test, main]" in text
    assert "deployment_status:" in SMOKE_WORKFLOW


def test_scenario_round_trips_and_counts_failures() -> None:
    data = {
        "fail": [
            {"env": "test", "stage": "deploy", "times": 1},
            {"env": "main", "stage": "monitor"},
        ],
        "merge_bot": True,
        "merge_method": "squash",
    }
    scenario = Scenario.from_json(data)
    assert scenario.failures("test", "deploy") == 1
    assert scenario.failures("main", "monitor") is None
    assert scenario.failures("dev", "deploy") == 0
    assert scenario.production == "main"
    again = Scenario.from_json(json.loads(json.dumps(scenario.to_json())))
    assert again.fail == scenario.fail
    assert again.merge_method == "squash"
    assert FailRule("main", "monitor") in scenario.fail


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"fail": [{"env": "qa", "stage": "deploy"}]}, "fail.env"),
        ({"fail": [{"env": "dev", "stage": "build"}]}, "fail.stage"),
        ({"fail": [{"env": "dev"}]}, "env and stage"),
        ({"fail": [{"env": "dev", "stage": "deploy", "times": "1"}]}, "times"),
        ({"merge_method": "fast-forward"}, "merge_method"),
        ({"merge_bot": "yes"}, "merge_bot"),
        ({"reviewer": "alice"}, "reviewer"),
        (
            {"users": [{"login": "x", "token": "ghp_abc"}], "author": "x", "reviewer": "x"},
            "real GitHub",
        ),
        ({"colour": 1}, "colour"),
        ({"required_reviewers": {"test": 5}}, "required_reviewers"),
        ({"required_reviewers": {"test": "rita"}}, "required_reviewers"),
        ({"environments": ["dev", "qa team"]}, "branch names"),
        ({"environments": ["dev", "-x"]}, "branch names"),
        ({"users": [{"login": "x", "token": 5}, {"login": "y"}], "author": "x"}, "x.token"),
        ({"users": [{"login": "x", "name": 5}, {"login": "y"}], "author": "x"}, "x.name"),
        ({"plan_id": "../escape"}, "plan_id '../escape' must be"),
        ({"owner": "acme/evil"}, "owner 'acme/evil' must be"),
        ({"repo": "a..b"}, "repo 'a..b' must be"),
        ([], "JSON object"),
    ],
)
def test_bad_scenarios_name_the_key(data: object, words: str) -> None:
    with pytest.raises(ScenarioError, match=words):
        Scenario.from_json(data)


def test_an_unreadable_scenario_file_is_named(tmp_path: Path) -> None:
    for name, raw in (("latin1.json", b"\xff{}"), ("broken.json", b"{not json")):
        path = tmp_path / name
        path.write_bytes(raw)
        with pytest.raises(ScenarioError, match=f"cannot read {path}"):
            Scenario.load(path)
    with pytest.raises(ScenarioError, match="cannot read"):
        Scenario.load(tmp_path / "missing.json")


def test_custom_names_and_users(make_sandbox: Callable[..., Sandbox]) -> None:
    scenario = Scenario.from_json(
        {
            "owner": "team",
            "repo": "app",
            "plan_id": "new-thing",
            "users": [
                {"login": "dana", "role": "write", "token": "sbx_dana_fixed"},
                {"login": "rex", "role": "admin"},
            ],
            "author": "dana",
            "reviewer": "rex",
        }
    )
    sandbox = make_sandbox(scenario=scenario)
    assert sandbox.repository == "team/app"
    assert sandbox.author_token == "sbx_dana_fixed"
    assert sandbox.users["rex"]["role"] == "admin"
    env = sandbox.env()
    assert env["GITHUB_REPOSITORY"] == "team/app"
    assert env["GITHUB_TOKEN"] == "sbx_dana_fixed"
    assert (sandbox.clone_path / "plans" / "doing" / "new-thing.md").exists()
    assert 'reviewers = ["rex"]' in (sandbox.clone_path / "promote.toml").read_text()
