"""``python -m promote_sandbox serve`` (what ``promote sandbox serve`` runs)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from promote_sandbox.cli import main


def _serve(*args: str) -> tuple[subprocess.Popen[str], dict[str, str], float]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "promote_sandbox", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    values: dict[str, str] = {}
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line == "READY":
            break
        key, _, value = line.partition("=")
        values[key] = value
    return proc, values, time.perf_counter() - start


def test_serve_prints_env_lines_then_ready_and_stops_on_sigint(tmp_path: Path) -> None:
    proc, values, elapsed = _serve("--port", "0", "--dir", str(tmp_path / "sb"))
    try:
        for key in (
            "GITHUB_API_URL",
            "GITHUB_REPOSITORY",
            "GITHUB_TOKEN",
            "PROMOTE_REVIEWER_TOKEN",
            "PROMOTE_CLONE",
        ):
            assert values.get(key), key
        assert values["GITHUB_REPOSITORY"] == "acme/shop"
        assert Path(values["PROMOTE_CLONE"], ".git").is_dir()
        req = urllib.request.Request(
            f"{values['GITHUB_API_URL']}/user",
            headers={"Authorization": f"token {values['GITHUB_TOKEN']}"},
        )
        with urllib.request.urlopen(req) as resp:
            assert json.load(resp)["login"] == "alice"
        req = urllib.request.Request(
            f"{values['GITHUB_API_URL']}/user",
            headers={"Authorization": f"token {values['PROMOTE_REVIEWER_TOKEN']}"},
        )
        with urllib.request.urlopen(req) as resp:
            assert json.load(resp)["login"] == "rita"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
    assert code == 0
    print(f"sandbox serve startup: {elapsed:.2f} s")  # reported, never asserted


def test_serve_stops_cleanly_on_sigterm_and_ci_runs_on_its_own(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(
        json.dumps({"merge_bot": True, "fail": [{"env": "dev", "stage": "smoke", "times": 1}]})
    )
    proc, values, _ = _serve(
        "--dir", str(tmp_path / "sb"), "--scenario", str(scenario), "--step-ms", "5"
    )
    try:
        url = values["GITHUB_API_URL"]
        with urllib.request.urlopen(f"{url}/_sandbox/scenario") as resp:
            assert json.load(resp)["fail"] == [{"env": "dev", "stage": "smoke", "times": 1}]
        merged = False
        for _ in range(500):
            with urllib.request.urlopen(f"{url}/_sandbox/state") as resp:
                state = json.load(resp)
            if state["pulls"][0]["merged"] and not state["busy"]:
                merged = True
                break
            time.sleep(0.01)
        assert merged
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0


def test_bad_input_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    taken = tmp_path / "taken"
    (taken / "clone").mkdir(parents=True)
    cases = [
        (json.dumps({"fail": [{"env": "qa", "stage": "deploy"}]}), [], "fail.env 'qa'"),
        ("{not json", [], f"cannot read {bad}"),
        ("{}", ["--fault-rate", "2"], "--fault-rate must be between 0 and 1"),
        ("{}", ["--dir", str(taken)], "already holds a sandbox"),
    ]
    for text, args, words in cases:
        bad.write_text(text)
        assert main(["serve", "--scenario", str(bad), *args]) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("promote sandbox: "), err
        assert words in err
        assert err.count("\n") == 1, err


def test_serve_with_actions_runs_the_emulator_and_adopts_a_setup_commit(tmp_path: Path) -> None:
    proc, values, _ = _serve("--dir", str(tmp_path / "sb"), "--actions")
    try:
        control = values["PROMOTE_SANDBOX_CONTROL"]
        with urllib.request.urlopen(f"{control}/actions") as resp:
            assert json.load(resp)["runs"] == []
        clone = Path(values["PROMOTE_CLONE"])
        workflow = clone / ".github/workflows/hello.yml"
        workflow.write_text(
            "name: hello\non: workflow_dispatch\npermissions: {}\njobs:\n  hi:\n"
            "    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n"
        )

        def git(*args: str) -> None:
            subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)

        git("checkout", "-q", "-B", "setup")
        git("add", "-A")
        git("-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "setup")
        git("push", "-q", "origin", "setup")
        adopt = urllib.request.Request(
            f"{control}/adopt", data=json.dumps({"ref": "setup"}).encode(), method="POST"
        )
        with urllib.request.urlopen(adopt) as resp:
            sha = json.load(resp)["sha"]
        api, repo = values["GITHUB_API_URL"], values["GITHUB_REPOSITORY"]
        headers = {"Authorization": f"token {values['GITHUB_TOKEN']}"}
        with urllib.request.urlopen(
            urllib.request.Request(f"{api}/repos/{repo}/git/ref/heads/main", headers=headers)
        ) as resp:
            assert json.load(resp)["object"]["sha"] == sha
        dispatch = urllib.request.Request(
            f"{api}/repos/{repo}/actions/workflows/hello.yml/dispatches",
            data=json.dumps({"ref": "main"}).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(dispatch) as resp:
            assert resp.status == 204
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{control}/actions") as resp:
                runs = json.load(resp)["runs"]
            if runs and runs[0]["status"] == "completed":
                break
            time.sleep(0.2)
        assert [(r["workflow"], r["conclusion"]) for r in runs] == [
            (".github/workflows/hello.yml", "success")
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
