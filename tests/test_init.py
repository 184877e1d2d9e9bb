"""``promote init`` (issue 13): writes what a repository needs to run promote on GitHub
Actions, never overwrites without --force, writes nothing on --dry-run or bad input, and a
second run changes nothing. Real git repositories and the real console script."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from promote_tasks.init import template
from tests.console import promote

WRITTEN = (
    ".github/workflows/promote.yml",
    ".github/workflows/promote-gate.yml",
    ".github/promote/manual-test.md",
    "plans/inbox/.gitkeep",
    "plans/doing/.gitkeep",
    "plans/done/.gitkeep",
    ".pre-commit-config.yaml",
)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts[:1]
    }


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def test_init_writes_the_workflows_checklist_settings_and_plan_folders(repo: Path) -> None:
    done = promote("init", cwd=repo)
    assert (done.returncode, done.stderr) == (0, "")
    for path in (*WRITTEN, "promote.toml"):
        assert f"wrote: {path}" in done.stdout
        assert (repo / path).is_file()
    assert (repo / ".github/workflows/promote.yml").read_text() == template("workflows/promote.yml")
    assert "left for a person:" in done.stdout
    assert "rulesets" in done.stdout
    assert "reviewers" in done.stdout


def test_a_second_run_changes_nothing(repo: Path) -> None:
    assert promote("init", cwd=repo).returncode == 0
    before = files(repo)
    again = promote("init", cwd=repo)
    assert (again.returncode, again.stderr) == (0, "")
    assert "wrote" not in again.stdout
    for path in (*WRITTEN, "promote.toml"):
        assert f"unchanged: {path}" in again.stdout
    assert files(repo) == before


def test_dry_run_lists_and_writes_nothing(repo: Path) -> None:
    shown = promote("init", "--dry-run", cwd=repo)
    assert (shown.returncode, shown.stderr) == (0, "")
    for path in (*WRITTEN, "promote.toml"):
        assert f"would write: {path}" in shown.stdout
    assert files(repo) == {}


def test_a_changed_file_is_kept_unless_force(repo: Path) -> None:
    workflow = repo / ".github/workflows/promote.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("name: ours\n")
    kept = promote("init", cwd=repo)
    assert kept.returncode == 0
    assert "kept (it differs; --force to overwrite): .github/workflows/promote.yml" in kept.stdout
    assert workflow.read_text() == "name: ours\n"
    forced = promote("init", "--force", cwd=repo)
    assert forced.returncode == 0
    assert "overwrote: .github/workflows/promote.yml" in forced.stdout
    assert workflow.read_text() == template("workflows/promote.yml")


def test_settings_go_into_an_existing_pyproject_once(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text('[project]\nname = "app"\n')
    done = promote("init", cwd=repo)
    assert "added [tool.promote] to: pyproject.toml" in done.stdout
    text = pyproject.read_text()
    assert text.startswith('[project]\nname = "app"\n\n')
    assert text.count("[tool.promote]") == 1
    assert not (repo / "promote.toml").exists()
    again = promote("init", "--force", cwd=repo)
    assert "unchanged: pyproject.toml" in again.stdout
    assert pyproject.read_text() == text


def test_the_written_settings_parse_and_name_what_is_missing(repo: Path) -> None:
    assert promote("init", cwd=repo).returncode == 0
    shown = promote("config", cwd=repo)
    assert shown.returncode == 1
    assert "reviewers" in shown.stderr
    toml = repo / "promote.toml"
    toml.write_text(toml.read_text().replace('# reviewers = ["a-login"]', 'reviewers = ["ann"]'))
    shown = promote("config", cwd=repo)
    assert (shown.returncode, shown.stderr) == (0, "")


def test_not_a_git_repository_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    done = promote("init", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "not a git repository" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_pyproject_is_one_line_and_writes_nothing(repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[project\n")
    done = promote("init", cwd=repo)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "pyproject.toml: not valid TOML" in done.stderr
    assert files(repo) == {"pyproject.toml": b"[project\n"}


def test_init_from_a_subdirectory_writes_at_the_repository_root(repo: Path) -> None:
    inner = repo / "src" / "app"
    inner.mkdir(parents=True)
    done = promote("init", cwd=inner)
    assert (done.returncode, done.stderr) == (0, "")
    assert (repo / ".github/workflows/promote-gate.yml").is_file()
    assert not (inner / ".github").exists()


def test_the_workflows_install_the_tool_from_git_pinned_to_a_commit() -> None:
    from promote_tasks.init import PLACEHOLDER_COMMIT
    from promote_tasks.init import workflow

    source = ("https://github.com/acme/promote-tasks", "a" * 40)
    for name in ("promote.yml", "promote-gate.yml"):
        text = workflow(name, source)
        assert 'PROMOTE_SOURCE: "https://github.com/acme/promote-tasks"' in text
        assert f'PROMOTE_COMMIT: "{"a" * 40}"' in text
        assert PLACEHOLDER_COMMIT not in text
        assert '"promote-tasks @ git+$PROMOTE_SOURCE@$PROMOTE_COMMIT"' in text
        assert "promote-tasks==" not in text


def test_init_writes_a_pre_commit_configuration_pinned_to_a_commit(repo: Path) -> None:
    import yaml

    assert promote("init", cwd=repo).returncode == 0
    config = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    [entry] = config["repos"]
    assert entry["repo"].endswith("promote-tasks")
    assert len(str(entry["rev"])) == 40  # a commit sha, never a tag that may not exist
    assert [h["id"] for h in entry["hooks"]] == [
        "promote-guard",
        "promote-halt",
        "promote-no-env-commit",
        "promote-plan-lint",
    ]
    done = subprocess.run(
        ["pre-commit", "validate-config", str(repo / ".pre-commit-config.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promotes_hooks_join_a_teams_own_pre_commit_configuration_once(repo: Path) -> None:
    import yaml

    own = (
        "repos:\n"
        "    - repo: https://github.com/pre-commit/pre-commit-hooks\n"
        "      rev: 0123456789abcdef0123456789abcdef01234567\n"
        "      hooks:\n"
        "          - id: trailing-whitespace\n"
    )
    (repo / ".pre-commit-config.yaml").write_text(own)
    done = promote("init", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert "added promote's hooks to: .pre-commit-config.yaml" in done.stdout
    text = (repo / ".pre-commit-config.yaml").read_text()
    assert text.startswith(own)  # the team's lines are kept as they were
    repos = yaml.safe_load(text)["repos"]
    assert [r["repo"].rsplit("/", 1)[-1] for r in repos] == ["pre-commit-hooks", "promote-tasks"]
    again = promote("init", cwd=repo)
    assert "unchanged: .pre-commit-config.yaml" in again.stdout
    assert (repo / ".pre-commit-config.yaml").read_text() == text


def test_a_pre_commit_configuration_init_cannot_extend_is_kept_unless_force(repo: Path) -> None:
    (repo / ".pre-commit-config.yaml").write_text("repos: []  # flow style: nothing to append to\n")
    kept = promote("init", cwd=repo)
    assert "kept (it differs; --force to overwrite): .pre-commit-config.yaml" in kept.stdout
    assert (repo / ".pre-commit-config.yaml").read_text().startswith("repos: []")
    forced = promote("init", "--force", cwd=repo)
    assert "overwrote: .pre-commit-config.yaml" in forced.stdout


def test_a_broken_pre_commit_configuration_is_one_line_and_writes_nothing(repo: Path) -> None:
    (repo / ".pre-commit-config.yaml").write_text("repos: [\n")
    done = promote("init", cwd=repo)
    assert done.returncode == 1
    assert done.stderr.startswith("promote: error: .pre-commit-config.yaml: not valid YAML")
    assert len(done.stderr.strip().splitlines()) == 1
    assert sorted(files(repo)) == [".pre-commit-config.yaml"]
