"""The console script and the invoke collection, run as a person runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from promote_tasks.cli import main
from tests import console

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "snapshot.json"


def promote(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return console.promote(*args, cwd=cwd, env=env)


@pytest.fixture(autouse=True)
def configured(tmp_path: Path) -> Path:
    """tmp_path configured as the sandbox seeds a repository: the default pipeline, with a
    designated reviewer for its manual test (without one, every command refuses to start)."""
    (tmp_path / "promote.toml").write_text('reviewers = ["rita"]\n')
    return tmp_path / "promote.toml"


def test_help_lists_the_tasks():
    result = promote("--help")
    assert result.returncode == 0
    for name in ("next", "status", "plugins"):
        assert f"\n  {name} " in result.stdout


def test_invoke_list_in_the_repository_shows_the_promote_collection():
    invoke = shutil.which("invoke", path=str(Path(sys.executable).parent))
    result = subprocess.run(
        [invoke, "--list"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for name in ("promote.next", "promote.status", "promote.plugins", "test", "lint"):
        assert name in result.stdout


def test_collection_is_importable_from_the_package():
    from promote_tasks import promote as collection

    assert collection.name == "promote"
    assert {"status", "next", "plugins"} <= set(collection.task_names)


def test_status_json_from_a_saved_snapshot(tmp_path):
    result = promote("status", "--json", "--snapshot", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "schema", "repository", "halted", "fix_plan", "active_plan", "active_plans", "in_flight",
        "plan_problems", "environments", "requests",
    }  # fmt: skip
    assert data["requests"] == {"made": 0, "remaining": None}  # a saved snapshot asks nobody
    assert (data["repository"], data["halted"], data["active_plan"]) == (
        "acme/shop",
        False,
        "add-greeting",
    )
    test = data["environments"][1]
    assert {"name", "branch", "sha", "plan", "state", "validators", "evidence", "next"} <= set(test)
    assert (test["name"], test["state"], test["plan"]) == ("test", "validating", "add-greeting")
    assert [v["result"] for v in test["validators"]] == ["passed", "passed", "pending"]


def test_next_json_from_a_saved_snapshot_writes_nothing(tmp_path):
    result = promote("next", "--json", "--snapshot", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"transition", "environment", "from", "to", "did", "waiting_for"} <= set(data)
    assert data["transition"] is None
    assert data["waiting_for"].endswith(": manual")


def test_status_text_is_inert_against_escape_sequences(tmp_path):
    text = EXAMPLE.read_text().replace(
        '"repository": "acme/shop"', '"repository": "acme/\\u001b[31mshop"'
    )
    (tmp_path / "s.json").write_text(text)
    result = promote("status", "--snapshot", str(tmp_path / "s.json"), cwd=tmp_path)
    assert result.returncode == 0
    assert "\x1b" not in result.stdout
    assert "acme/\\x1b[31mshop" in result.stdout


ERRORS = {
    "missing file": (lambda d: ["status", "--snapshot", str(d / "none.json")], "cannot read snapshot"),
    "not json": (lambda d: ["status", "--snapshot", _write(d, "x.json", "{oops")], "not JSON"),
    "unknown key": (lambda d: ["status", "--snapshot", _write(d, "k.json", EXAMPLE.read_text().replace('"taken_at"', '"taken"'))], "unknown key 'taken'"),
    "wrong type": (lambda d: ["next", "--snapshot", _write(d, "t.json", EXAMPLE.read_text().replace('"id": 12,', '"id": "12",'))], "environments[0].deployments[0].id: expected int"),
    "no repository": (lambda d: ["status"], "no repository: set GITHUB_REPOSITORY"),
}  # fmt: skip


def _write(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(text)
    return str(directory / name)


@pytest.mark.parametrize(("args", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_one_line_with_exit_status_1(tmp_path, args, message):
    result = promote(*args(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("promote: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_is_reported_with_file_and_key(tmp_path):
    (tmp_path / "promote.toml").write_text('reviewers = "rita"\n')
    result = promote("status", "--snapshot", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"promote: error: {tmp_path / 'promote.toml'}: reviewers: expected a list of GitHub logins, got 'rita'"
    )


def test_snapshot_must_cover_the_configured_pipeline(tmp_path):
    (tmp_path / "promote.toml").write_text(
        '[[environments]]\nname = "dev"\n[[environments]]\nname = "prod"\n'
    )
    result = promote("status", "--snapshot", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 1
    assert "no facts for environment 'prod'" in result.stderr


def test_plugins_lists_contributions(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    contributed = {p["name"]: p["contributes"] for p in data["plugins"]}
    assert "validator:http-health" in contributed["validators"]
    assert contributed["manual_approval"] == ["validator:manual-approval"]


def test_save_snapshot_round_trips(tmp_path):
    saved = tmp_path / "saved.json"
    first = promote(
        "status", "--json", "--snapshot", str(EXAMPLE), "--save-snapshot", str(saved), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    again = promote("status", "--json", "--snapshot", str(saved), cwd=tmp_path)
    assert json.loads(again.stdout) == json.loads(first.stdout)
    assert json.loads(saved.read_text()) == json.loads(EXAMPLE.read_text())


def test_save_snapshot_to_an_unwritable_place_is_one_line(tmp_path):
    result = promote(
        "status",
        "--snapshot",
        str(EXAMPLE),
        "--save-snapshot",
        str(tmp_path / "no" / "x.json"),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("promote: error: cannot write snapshot")


def test_promote_sandbox_serve_prints_the_environment_then_ready(tmp_path):
    process = subprocess.Popen(
        [console.SCRIPT, "sandbox", "serve", "--port", "0", "--dir", str(tmp_path / "sb")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == "READY":
                break
        keys = dict(line.split("=", 1) for line in lines[:-1])
        assert lines[-1] == "READY"
        assert {
            "GITHUB_API_URL",
            "GITHUB_REPOSITORY",
            "GITHUB_TOKEN",
            "PROMOTE_REVIEWER_TOKEN",
            "PROMOTE_CLONE",
        } <= set(keys)
        assert keys["GITHUB_API_URL"].startswith("http://127.0.0.1:")
        assert Path(keys["PROMOTE_CLONE"], ".git").is_dir()
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_config_json_is_the_settings_in_force_and_where_they_came_from(tmp_path, configured):
    configured.unlink()
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "preview.py").write_text(
        "from promote_tasks import hookimpl\nfrom promote_tasks.model import Environment\n"
        "@hookimpl\ndef register_environments(register):\n"
        "    register(Environment('preview', 'preview', order=5, validators=('health',)))\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "shop"\n\n[tool.promote]\nreviewers = ["rita", "bob"]\n'
        'plugins_dir = "plugins"\nrollback = "revert"\nvalidation_timeout_seconds = 600\n'
        '[tool.promote.validators.smoke]\nworkflows = ["smoke.yml", "e2e.yml"]\n'
    )
    result = promote("config", "--json", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert (data["source"], data["root"]) == (str(tmp_path / "pyproject.toml"), str(tmp_path))
    assert data["reviewers"] == ["rita", "bob"]
    assert [(e["name"], e["branch"], e["production"]) for e in data["environments"]] == [
        ("dev", "dev", False), ("preview", "preview", False), ("test", "test", False),
        ("main", "main", True),
    ]  # fmt: skip
    test = data["environments"][2]
    assert test == {
        "name": "test", "branch": "test", "production": False,
        "validators": ["health", "smoke", "manual"], "manual": ["manual"], "rollback": "revert",
        "url": None, "deploy_timeout_seconds": 1800, "validation_timeout_seconds": 600,
        "approval_timeout_seconds": 604800,
    }  # fmt: skip
    assert data["validators"]["smoke"] == {
        "use": "workflow", "options": {"workflows": ["smoke.yml", "e2e.yml"]},
    }  # fmt: skip
    assert data["validators"]["manual"] == {"use": "manual-approval", "options": {}}
    assert {k: data[k] for k in ("plans_dir", "plan_store", "plugins_dir", "rollback")} == {
        "plans_dir": "plans", "plan_store": "files", "plugins_dir": "plugins", "rollback": "revert",
    }  # fmt: skip
    assert data["hooks"] == {"offline": "warn", "timeout": 5.0}


def test_config_text_says_where_the_settings_came_from(tmp_path, configured):
    result = promote("config", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"settings from {configured}",
        "repository: GITHUB_REPOSITORY, else the origin remote",
        "reviewers: rita",
        "environments: dev → test → main",
    ]
    assert lines[5].startswith(
        "  test     branch test; validators health, smoke, manual (waits for a person); "
        "rollback redeploy; times out: deploy 1800 s, validation 3600 s, approval 604800 s"
    )
    assert lines[6].startswith("  main     branch main, production; ")
    assert '  smoke    workflow: workflows = ["smoke.yml"]' in lines
    assert "plans: plans/ (plan store files)" in lines


def test_config_is_in_the_task_list():
    result = promote("--help")
    assert "\n  config " in result.stdout
