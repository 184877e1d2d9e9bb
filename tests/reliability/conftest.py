"""Reliability: journeys driven to rest, an end-state fingerprint, duplicate checks, and runs of
``next`` in forked child processes (so a run can really die, or many can race).

Two small journeys keep the cost down (a two-environment pipeline, dev then main, one
``health`` validator each): the happy one carries plan add-greeting to complete in main; the
failure one fails main's deploy once, so main is rolled back and a fix plan filed.

The fingerprint is what GitHub holds at rest, with every sha and id the tool or the sandbox
mints replaced by what it stands for (a commit by its tree, numbers by ``N``): two runs that
left the same things compare equal however their commits were stamped.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks.errors import PromoteError
from promote_tasks.model import State
from tests.e2e.conftest import Api
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.conftest import duplicate_statuses
from tests.e2e.test_failures import deployments

ENVS = ("dev", "main")
SETTINGS = config(
    extra="".join(
        f'[[environments]]\nname = "{env}"\nvalidators = ["health"]\n'
        + ("production = true\n" if env == "main" else "")
        for env in ENVS
    )
)
LOCK_REF = "promote/lock"
FORK = multiprocessing.get_context("fork")


def happy() -> Scenario:
    return Scenario(merge_bot=True, environments=ENVS)


def failure() -> Scenario:
    return Scenario(merge_bot=True, environments=ENVS, fail=(FailRule("main", "deploy", 1),))


JOURNEYS: dict[str, Callable[[], Scenario]] = {"happy": happy, "failure": failure}


def at_rest(name: str) -> Callable[[Driver, Step], bool]:
    """The journey's end: the plan complete in main, or main's failure has its fix plan."""

    def done(driver: Driver, rest: Step) -> bool:
        main = driver.run.decide(rest.snapshot)[0].env("main")
        if name == "happy":
            return main.state is State.COMPLETE and any(p.done for p in rest.snapshot.plans)
        return main.fix_plan is not None and main.rollback is not None

    return done


# -- driving --------------------------------------------------------------------------------


def new_driver(make_sandbox: Callable[..., Sandbox], journey: str, **kw: Any) -> Driver:
    return Driver(make_sandbox(scenario=JOURNEYS[journey](), step_ms=0, **kw), SETTINGS)


def to_rest(driver: Driver, journey: str) -> None:
    """Drive to the journey's end, then once more with CI settled: nothing may be left to do.
    A ``next`` that fails (a fault it could not ride out) is a run that ended: the next one
    goes on, as the next CI job would."""
    done = at_rest(journey)
    for _ in range(10):
        try:
            driver.drive(done, reviewer="rita", tick=300)
            driver.sandbox.settle()
            last = driver.until_rest()[-1]
            assert not last.acted
            return
        except PromoteError:
            continue
    raise AssertionError("the journey kept failing")


def forked(target: Callable[[], int]) -> multiprocessing.process.BaseProcess:
    """Start ``target`` in a forked child that exits with its return value."""

    def body() -> None:
        code = 1
        try:
            code = target()
        finally:
            os._exit(code)

    child = FORK.Process(target=body)
    child.start()
    return child


def child_next(driver: Driver) -> Callable[[], int]:
    """One ``next`` as a fresh run of its own (no connection shared with the parent)."""

    def run() -> int:
        mine = driver.as_user(driver.sandbox.scenario.author)
        mine.ahead = driver.run.ahead
        mine.step()
        return 0

    return run


def drop_stale_lock(api: Api) -> None:
    """What the lock's expiry does for a run that died holding it (without the wait)."""
    status, _ = api.call("DELETE", f"{api.repo_path}/git/refs/{LOCK_REF}")
    assert status in (204, 404, 422), status


# -- the end state --------------------------------------------------------------------------

_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_NUMBER = re.compile(r"\b\d{2,}\b")


def norm(text: str | None) -> str:
    """Text with minted shas and ids replaced (they differ between equivalent runs)."""
    return _NUMBER.sub("N", _SHA.sub("H", text or ""))


def commit_of(api: Api, sha: str) -> str:
    """A commit by what it says (its message, normalised), not by its sha."""
    return norm(api.get(f"/git/commits/{sha}")["message"])


def files(api: Api, branch: str) -> dict[str, str]:
    """Every file on ``branch``: plans/ by normalised path and content (a fix plan is named
    for the failed sha), the rest by blob sha."""
    tree = api.get(f"/git/trees/{api.head(branch)}?recursive=1")["tree"]
    out = {}
    for entry in tree:
        if entry["type"] != "blob":
            continue
        if entry["path"].startswith("plans/"):
            blob = api.get(f"/git/blobs/{entry['sha']}")
            out[norm(entry["path"])] = norm(base64.b64decode(blob["content"]).decode())
        else:
            out[entry["path"]] = entry["sha"]
    return out


def fingerprint(api: Api) -> dict[str, Any]:
    """What GitHub holds, per environment and for the repository, free of minted shas."""
    envs = {}
    for env in ENVS:
        head = api.head(env)
        latest = {}
        for status in api.statuses(head):
            latest[status["context"]] = (status["state"], norm(status.get("description")))
        envs[env] = {
            "messages": [norm(c["commit"]["message"]) for c in api.commits(env, 20)],
            "statuses": dict(sorted(latest.items())),
            "files": files(api, env),
            "deployments": [
                (d["task"], commit_of(api, d["sha"]), d["state"]) for d in deployments(api, env)
            ],
        }
    pulls = sorted(
        (p["head"]["ref"], p["base"]["ref"], p["state"], norm(p["title"])) for p in api.pulls()
    )
    issues = sorted(
        (norm(i["title"]), i["state"], tuple(sorted(lb["name"] for lb in i["labels"])))
        for i in api.issues()
    )
    return {"environments": envs, "pulls": pulls, "issues": issues}


def duplicates(api: Api) -> list[str]:
    """Anything GitHub holds twice that the tool should have written once."""
    found = []
    for env in ENVS:
        for deployment in deployments(api, env):
            found += [f"{env}: {d}" for d in duplicate_statuses(api.statuses(deployment["sha"]))]
        found += [f"{env}: {d}" for d in duplicate_statuses(api.statuses(api.head(env)))]
        bookkeeping = Counter(
            norm(c["commit"]["message"])
            for c in api.commits(env, 40)
            if len(c["parents"]) == 1 and "Promote-Bookkeeping" in c["commit"]["message"]
        )
        found += [f"{env} commit twice: {m}" for m, n in bookkeeping.items() if n > 1]
        # The tool's own deployments (CI deploys a sha again when a rollback brings it back).
        tasks = Counter(
            (d["task"], d["sha"]) for d in deployments(api, env) if d["task"] != "deploy"
        )
        found += [f"{env} deployment twice: {t}" for t, n in tasks.items() if n > 1]
    open_pulls = Counter(
        (p["head"]["ref"], p["base"]["ref"]) for p in api.pulls() if p["state"] == "open"
    )
    found += [f"two open PRs {k}" for k, n in open_pulls.items() if n > 1]
    all_pulls = Counter((p["head"]["ref"], p["base"]["ref"], p["title"]) for p in api.pulls())
    found += [f"PR twice {k}" for k, n in all_pulls.items() if n > 1]
    titles = Counter(i["title"] for i in api.issues())
    found += [f"issue twice: {t}" for t, n in titles.items() if n > 1]
    return found


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """Each journey's fault-free end state (driven once per worker, then remembered)."""
    from promote_sandbox import start

    made: dict[str, dict[str, Any]] = {}

    def get(journey: str) -> dict[str, Any]:
        if journey not in made:
            box = start(tmp_path_factory.mktemp("ref"), scenario=JOURNEYS[journey](), step_ms=0)
            try:
                driver = Driver(box, SETTINGS)
                to_rest(driver, journey)
                assert not duplicates(driver.api)
                made[journey] = {
                    "fingerprint": fingerprint(driver.api),
                    "writes": [(s.label, sum(s.writes.values())) for s in driver.steps if s.acted],
                }
            finally:
                box.stop()
        return made[journey]

    return get


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where two fingerprints differ, one line per leaf (readable where ``==`` is not)."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for key in sorted(set(got) | set(want)):
            out += differences(got.get(key), want.get(key), f"{where}/{key}")
        return out
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]
