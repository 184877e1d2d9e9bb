"""The ``promote`` console script end to end: a subprocess in the sandbox clone, configured
only by the environment a CI job would have (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``,
``GITHUB_TOKEN``, ``GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests import console
from tests.console import GITHUB_KEYS
from tests.e2e.conftest import Driver

STATUS_KEYS = {"repository", "halted", "fix_plan", "active_plan", "environments"}
ENV_KEYS = {"name", "branch", "sha", "plan", "state", "validators", "evidence", "next"}
VALIDATOR_KEYS = {"name", "result", "url"}
NEXT_KEYS = {"transition", "environment", "from", "to", "did", "waiting_for"}


def promote(driver: Driver, summary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: driver.environ[k] for k in GITHUB_KEYS}
    environ["GITHUB_STEP_SUMMARY"] = str(summary)
    return console.promote(*args, cwd=driver.clone, env=environ, timeout=60)


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert (result.returncode, result.stderr) == (0, "")
    return json.loads(result.stdout)


@pytest.mark.transition("R4")
def test_status_and_next_from_the_console_script(
    make_driver: Callable[..., Driver], tmp_path: Path
) -> None:
    driver = make_driver()
    api = driver.api
    driver.sandbox.settle()  # the feature PR merged into dev and dev deployed
    dev = api.head("dev")
    summary = tmp_path / "summary.md"
    before = api.writes()

    status = ok_json(promote(driver, summary, "status", "--json"))
    assert set(status) >= STATUS_KEYS
    assert (status["repository"], status["halted"], status["fix_plan"], status["active_plan"]) == (
        "acme/shop",
        False,
        None,
        "add-greeting",
    )
    assert [e["name"] for e in status["environments"]] == ["dev", "test", "main"]
    for env in status["environments"]:
        assert set(env) >= ENV_KEYS, env["name"]
        assert env["validators"], env["name"]
        for validator in env["validators"]:
            assert set(validator) >= VALIDATOR_KEYS
    first, second, third = status["environments"]
    assert (first["branch"], first["sha"], first["plan"], first["state"]) == (
        "dev",
        dev,
        "add-greeting",
        "deployed",
    )
    assert [(v["name"], v["result"]) for v in first["validators"]] == [
        ("health", "pending"),
        ("smoke", "pending"),
    ]
    assert "R4" in first["next"]
    assert {e["kind"] for e in first["evidence"]} >= {"pull_request", "deployment"}
    assert (second["state"], third["state"]) == ("promoted", "complete")
    assert [(v["name"], v["result"]) for v in third["validators"]] == [
        ("health", "passed"),
        ("smoke", "passed"),
        ("monitor", "passed"),
    ]
    assert api.writes() == before
    assert summary.read_text(encoding="utf-8").startswith("### promote: acme/shop\n")

    dry = promote(driver, summary, "next", "--dry-run", "--json")
    planned = ok_json(dry)
    assert set(planned) >= NEXT_KEYS
    assert (planned["transition"], planned["environment"], planned["from"], planned["to"]) == (
        "R4",
        "dev",
        "deployed",
        "validating",
    )
    assert planned["did"]
    assert all(line["text"].startswith("would ") for line in planned["did"])
    assert api.writes() == before
    assert api.statuses(dev) == []

    taken = ok_json(promote(driver, summary, "next", "--json"))
    assert (taken["transition"], taken["environment"], taken["waiting_for"]) == ("R4", "dev", None)
    wrote = {(d["kind"], d["target"], d["text"]) for d in taken["did"]}
    assert ("set-status", f"promote/dev@{dev}", f"promote/dev = pending on {dev[:7]}") in wrote
    assert api.latest(dev, "promote/dev")["state"] == "pending"
    assert api.writes() != before

    text = summary.read_text(encoding="utf-8")
    assert text.count("### promote next") == 2
    assert f"| set-status | promote/dev@{dev} | promote/dev = pending on {dev[:7]} |" in text
    assert f"| dev | [`{dev[:7]}`](https://github.com/acme/shop/commit/{dev}) | deployed |" in text

    human = promote(driver, summary, "status")
    assert (human.returncode, human.stderr) == (0, "")
    lines = human.stdout.splitlines()
    assert lines[0] == "acme/shop"
    assert lines[1].split()[:3] == ["dev", dev[:7], "validating"]
