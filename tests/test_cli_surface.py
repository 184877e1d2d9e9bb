"""The command line as a person and a script meet it (issue 14): help, one task at a time,
exit statuses, JSON that validates against ``promote schema``, output for terminals and CI,
and ``PROMOTE_DEBUG=api`` that never shows the token. All through the console script."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest

from promote_sandbox import FailRule
from promote_sandbox import Scenario
from promote_tasks.schemas import schema
from tests.console import SCRIPT
from tests.console import clean_environ
from tests.console import promote

OPTIONS = {
    "status": {"--json", "--snapshot", "--save-snapshot", "--exit-status"},
    "next": {"--json", "--dry-run", "--snapshot", "--until-rest", "--budget"},
    "watch": {"--interval", "--timeout"},
    "approve": {"--env", "--sha"},
    "reject": {"--env", "--sha", "--reason"},
    "rollback": {"--env", "--to", "--strategy", "--dry-run", "--json"},
    "gate": {"--pr", "--json"},
    "adopt": {"--env", "--dry-run"},
    "plugins": {"--json"},
    "config": {"--json"},
    "doctor": {"--json"},
    "schema": {"--name"},
    "init": {"--dry-run", "--force"},
    "demo": {"--step-ms", "--actions"},
    "sandbox": {
        "--command", "--port", "--dir", "--scenario", "--latency-ms", "--fault-rate", "--seed",
        "--step-ms", "--retry-after", "--actions",
    },
}  # fmt: skip
HIDDEN = ("--pty", "--echo", "--prompt-for-sudo-password", "--warn-only", "--write-pyc")


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return promote(*args, cwd=cwd, env=env)


def test_help_shows_the_products_options_and_every_task(tmp_path: Path) -> None:
    shown = run("--help", cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (0, "")
    for hidden in HIDDEN:
        assert hidden not in shown.stdout, f"invoke's {hidden} is not the product's"
    listed = re.findall(r"^  (\w+) {2,}", shown.stdout.split("Tasks:")[1], re.MULTILINE)
    assert sorted(listed) == sorted(OPTIONS)
    assert run("help", cwd=tmp_path).stdout == shown.stdout


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_task_has_a_description_its_options_and_examples(tmp_path: Path, name: str) -> None:
    shown = run("help", name, cwd=tmp_path)
    assert (shown.returncode, shown.stderr) == (0, "")
    text = shown.stdout
    assert text.startswith(f"Usage: promote {name} [OPTIONS]\n\n")
    options = text.split("Options:\n")[1].split("\n\n")[0]
    assert set(re.findall(r"--[\w-]+", options)) == OPTIONS[name]
    examples = text.split("Examples:\n")[1].strip().splitlines()
    assert 2 <= len(examples) <= 3
    assert all(line.strip().startswith(f"promote {name}") for line in examples)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("next", "status"), "promote: error: promote runs one task at a time, not next, status"),
        (("nxt",), "promote: error: unknown task 'nxt': did you mean next?"),
        (("-d", "next"), "promote: error: unknown option -d (see promote help)"),
        (("--repo", "not-a-repo", "status"), "promote: error: --repo expects OWNER/NAME"),
        (("sandbox", "run"), "promote: error: sandbox: say what to do: serve (not 'run')"),
        (("sandbox", "serve", "--port", "abc"), "promote: error: --port expects a whole number"),
    ],
    ids=["chained", "misspelt", "short-core-flag", "bad-repo", "sandbox-verb", "sandbox-port"],
)
def test_mistakes_are_one_line_and_exit_1(tmp_path: Path, args: tuple[str, ...], line: str) -> None:
    done = run(*args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(line)
    assert done.stderr.count("\n") == 1


def test_version(tmp_path: Path) -> None:
    assert run("--version", cwd=tmp_path).stdout.strip() == "promote 0.1.0"


# -- against a sandbox ----------------------------------------------------------------------------


@pytest.fixture
def halted(make_sandbox):
    """dev's deploy fails: after a few steps the pipeline is halted."""
    sandbox = make_sandbox(
        scenario=Scenario(merge_bot=True, fail=(FailRule("dev", "deploy", times=1),))
    )
    env = sandbox.env()
    for _ in range(6):
        sandbox.settle()
        promote("next", cwd=sandbox.clone_path, env=env)
    return sandbox


def test_status_exit_status_says_halted_and_every_json_validates(halted) -> None:
    env, cwd = halted.env(), halted.clone_path
    done = run("status", "--exit-status", "--json", cwd=cwd, env=env)
    assert done.returncode == 3, done.stderr  # halted
    data = json.loads(done.stdout)
    assert data["halted"] is True
    jsonschema.validate(data, schema("status"))
    for name, args in (
        ("next", ("next", "--dry-run", "--json")),
        ("next", ("next", "--until-rest", "--json")),
        ("gate", ("gate", "--json")),
        ("rollback", ("rollback", "--env", "dev", "--dry-run", "--json")),
        ("doctor", ("doctor", "--json")),
    ):
        done = run(*args, cwd=cwd, env=env)
        assert done.returncode in (0, 1, 3), (args, done.stderr)
        jsonschema.validate(json.loads(done.stdout), schema(name))


def test_status_exit_status_waits_for_a_person_with_8(make_sandbox) -> None:
    sandbox = make_sandbox(scenario=Scenario(merge_bot=True), step_ms=20)
    env, cwd = sandbox.env(), sandbox.clone_path
    done = promote("watch", "--interval", "0.05", cwd=cwd, env=env, timeout=300)
    assert done.returncode == 8, done.stderr
    assert run("status", "--exit-status", cwd=cwd, env=env).returncode == 8
    assert run("status", cwd=cwd, env=env).returncode == 0, "without --exit-status: 0"


def test_promote_debug_api_logs_each_request_and_never_the_token(make_sandbox) -> None:
    sandbox = make_sandbox()
    env = {**sandbox.env(), "PROMOTE_DEBUG": "api"}
    done = run("status", cwd=sandbox.clone_path, env=env)
    assert done.returncode == 0, done.stderr
    logged = done.stderr.splitlines()
    assert logged
    assert all(
        re.fullmatch(r"promote: api: (GET|POST) /\S+ \d{3} \(\S+ left, \d+ ms\)", ln)
        for ln in logged
    )
    assert any(" /repos/acme/shop/commits?" in ln for ln in logged)
    for user in sandbox.users.values():
        assert user["token"] not in done.stdout + done.stderr
    verbose = run("-v", "status", cwd=sandbox.clone_path, env=sandbox.env())
    assert verbose.stderr.splitlines()[0].startswith("promote: api: ")


def test_output_for_terminals_pipes_and_narrow_consoles(make_sandbox) -> None:
    sandbox = make_sandbox()
    env = sandbox.env()
    piped = run("status", cwd=sandbox.clone_path, env=env)
    assert "✓" in piped.stdout
    assert "\x1b[" not in piped.stdout, "no colour into a pipe"
    ascii_only = run("status", cwd=sandbox.clone_path, env={**env, "PYTHONIOENCODING": "ascii"})
    assert ascii_only.returncode == 0, ascii_only.stderr
    assert "health:ok" in ascii_only.stdout
    assert on_a_terminal(sandbox.clone_path, env).count("\x1b[32m✓") >= 1
    assert "\x1b[" not in on_a_terminal(sandbox.clone_path, {**env, "NO_COLOR": "1"})


def on_a_terminal(cwd: Path, env: dict[str, str]) -> str:
    """``promote status`` with a terminal for stdout (a pseudo-terminal)."""
    parent, child = pty.openpty()
    try:
        done = subprocess.run(
            [SCRIPT, "status"], cwd=cwd, env=clean_environ(env), stdout=child,
            stderr=subprocess.PIPE, timeout=120, check=False,
        )  # fmt: skip
        os.close(child)
        child = -1
        chunks = []
        while True:
            try:
                chunk = os.read(parent, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert done.returncode == 0, done.stderr
        return b"".join(chunks).decode()
    finally:
        os.close(parent)
        if child != -1:
            os.close(child)


def test_a_reader_that_leaves_early_ends_the_run_quietly(tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line
    try:
        done = subprocess.run(
            [SCRIPT, "--help"], cwd=tmp_path, env=clean_environ(), stdout=write,
            stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr
    assert done.stderr == ""
