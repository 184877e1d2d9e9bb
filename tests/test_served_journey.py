"""A team's first journey, from outside: `promote sandbox serve` with the merge bot, a loop of
`promote next` (plus one `promote approve` with the reviewer's token) reaches complete in main."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

from tests import console
from tests.console import GITHUB_KEYS
from tests.console import SCRIPT


def test_a_loop_of_promote_next_against_promote_sandbox_serve_reaches_complete(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"merge_bot": True}))
    server = subprocess.Popen(
        [SCRIPT, "sandbox", "serve", "--port", "0", "--dir", str(tmp_path / "sb"), "--scenario", str(scenario), "--step-ms", "20"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        env = {}
        for line in server.stdout:
            if line.strip() == "READY":
                break
            key, _, value = line.strip().partition("=")
            env[key] = value
        clone = Path(env["PROMOTE_CLONE"])
        with (clone / "promote.toml").open("a") as f:
            f.write("\n[validators.monitor]\nsoak_seconds = 1\n")
        author = {k: env[k] for k in GITHUB_KEYS}
        reviewer = {**author, "GITHUB_TOKEN": env["PROMOTE_REVIEWER_TOKEN"]}

        def promote(environ, *args):
            return console.promote(*args, cwd=clone, env=environ)

        approved = False
        for _ in range(150):
            step = promote(author, "next", "--json")
            assert step.returncode == 0, step.stderr
            waiting = json.loads(step.stdout)["waiting_for"] or ""
            if waiting.endswith(": manual") and not approved:
                result = promote(reviewer, "approve", "--env", "test")
                assert result.returncode == 0, result.stderr
                approved = True
            if json.loads(step.stdout)["transition"] == "R8":
                break
        else:
            raise AssertionError(f"no R8; last step {step.stdout}")
        assert approved
        status = json.loads(promote(author, "status", "--json").stdout)
        assert (status["environments"][-1]["state"], status["environments"][-1]["plan"]) == (
            "complete",
            "add-greeting",
        )
        api = env["GITHUB_API_URL"] + "/repos/" + env["GITHUB_REPOSITORY"]

        def get(tail):
            request = urllib.request.Request(
                api + tail, headers={"Authorization": "token " + env["GITHUB_TOKEN"]}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)

        pulls = {
            (p["head"]["ref"], p["base"]["ref"]): p for p in get("/pulls?state=all&per_page=100")
        }
        for pair in (("dev", "test"), ("test", "main")):
            assert "Promote-Plan: add-greeting" in pulls[pair]["body"]
        tree = [e["path"] for e in get("/git/trees/dev?recursive=1")["tree"]]
        assert "plans/done/add-greeting.md" in tree
        assert "plans/doing/add-greeting.md" not in tree
    finally:
        server.terminate()
        server.wait(timeout=30)
