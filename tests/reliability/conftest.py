"""Reliability: journeys driven to rest, an end-state fingerprint, duplicate checks, and runs of
``next`` (and of the reviewer's ``approve``) in forked child processes, so a run can really
die, or many can race.

The journeys are those of the default pipeline (dev → test → main, the default validators:
health and smoke everywhere, the designated reviewer's manual test in test, the production
monitor's soak window in main). The happy one carries plan add-greeting to complete in main,
with one approval by ``rita``; the failure one fails test's deploy once (R3), so test is
rolled back and a fix plan filed (R9).

The fingerprint is what GitHub holds at rest, with every sha and id the tool or the sandbox
mints replaced by what it stands for (a commit by its tree, numbers by ``N``): two runs that
left the same things compare equal however their commits were stamped.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import multiprocessing
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import FailRule
from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_tasks import cli
from promote_tasks import session
from promote_tasks import tasks
from promote_tasks.errors import PromoteError
from promote_tasks.model import State
from tests.e2e.conftest import LOCK_WRITES
from tests.e2e.conftest import Api
from tests.e2e.conftest import ClockedRun
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.conftest import duplicate_statuses
from tests.e2e.test_failures import deployments

ENVS = ("dev", "test", "main")
SETTINGS = config()  # the default pipeline; rita is the designated reviewer
REVIEWER = "rita"
LOCK_REF = "promote/lock"
FORK = multiprocessing.get_context("fork")


def happy() -> Scenario:
    return Scenario(merge_bot=True)


def failure() -> Scenario:
    return Scenario(merge_bot=True, fail=(FailRule("test", "deploy", 1),))


JOURNEYS: dict[str, Callable[[], Scenario]] = {"happy": happy, "failure": failure}


def at_rest(name: str) -> Callable[[Driver, Step], bool]:
    """The journey's end: the plan complete in main, or test's failure has its fix plan."""

    def done(driver: Driver, rest: Step) -> bool:
        state = driver.run.decide(rest.snapshot)[0]
        if name == "happy":
            main = state.env("main")
            return main.state is State.COMPLETE and any(p.done for p in rest.snapshot.plans)
        test = state.env("test")
        return test.fix_plan is not None and test.rollback is not None

    return done


# -- driving --------------------------------------------------------------------------------


class Reached(Exception):  # a signal, not an error
    """The journey got to the write it was to stop before (``Recorder.stop_at``)."""

    def __init__(self, label: str, approval: bool) -> None:
        super().__init__(label)
        self.label = label
        self.approval = approval


class Recorder(Driver):
    """A driver that keeps what each acting ``next`` and each approval wrote (the lock's own
    writes aside), and can stop the journey right before its ``stop_at``-th such act."""

    def __init__(self, sandbox: Sandbox, settings: str) -> None:
        super().__init__(sandbox, settings)
        self.log: list[tuple[str, int]] = []
        self.stop_at: int | None = None

    def next(self) -> Step:
        if self.stop_at == len(self.log):
            dry = self.run.step(dry_run=True)
            if dry.action.effects or self.run.gates_to_write(dry.snapshot, dry.state):
                action = dry.action
                label = f"{action.transition or '-'} {action.environment or ''}".strip()
                raise Reached(label, approval=False)
        taken = super().next()
        if taken.acted:
            self.log.append((taken.label, sum(taken.writes.values())))
        return taken

    def approve(self, login: str, env: str | None = None) -> str:
        label = f"approve {env or 'test'}"
        if self.stop_at == len(self.log):
            raise Reached(label, approval=True)
        before = self.api.writes()
        said = super().approve(login, env)
        wrote = self.api.writes() - before
        if wrote[LOCK_WRITES[-1]]:
            wrote -= Counter(LOCK_WRITES)
        self.log.append((label, sum(wrote.values())))
        return said


def new_driver(make_sandbox: Callable[..., Sandbox], journey: str, **kw: Any) -> Recorder:
    return Recorder(make_sandbox(scenario=JOURNEYS[journey](), step_ms=0, **kw), SETTINGS)


def drive(driver: Driver, journey: str) -> None:
    """CI, ``next`` and the reviewer in turns until the journey's end."""
    driver.drive(at_rest(journey), reviewer=REVIEWER, tick=300)


def to_rest(driver: Driver, journey: str, *, errors: int = 10) -> list[str]:
    """Drive to the journey's end, then once more with CI settled: nothing may be left to do.
    A ``next`` (or approval) that fails, a fault it could not ride out, is a run that ended
    with exit 1 and its one line: the next one goes on, as the next CI job would; up to
    ``errors`` of them. The lines of the runs that failed."""
    failed: list[str] = []
    while True:
        try:
            drive(driver, journey)
            driver.sandbox.settle()
            last = driver.until_rest()[-1]
            assert not last.acted
            return failed
        except PromoteError as e:
            failed.append(str(e))
            if len(failed) > errors:
                raise


def journey_of(driver: Driver) -> str:
    return "failure" if driver.sandbox.scenario.fail else "happy"


def _driven_to(driver: Recorder, acts: int) -> Reached | None:
    """Drive fault-free, exactly as the reference run, until ``acts`` acting runs (``next``
    or approval) are taken; the one that would come next (not taken), or None at the end."""
    driver.stop_at = acts
    try:
        drive(driver, journey_of(driver))
    except Reached as reached:
        return reached
    finally:
        driver.stop_at = None
    return None


def until_act(driver: Recorder) -> Reached | None:
    """Up to the next acting run, not taking it; None when the journey ends first."""
    return _driven_to(driver, len(driver.log))


def up_to(driver: Recorder, acts: int) -> Reached:
    """In one go from the start, until ``acts`` acting runs are taken."""
    reached = _driven_to(driver, acts)
    if reached is None:
        raise AssertionError(f"the journey ended before act {acts}")
    return reached


def forked(target: Callable[[], int]) -> multiprocessing.process.BaseProcess:
    """Start ``target`` in a forked child that exits with its return value."""

    def body() -> None:
        code = 1
        try:
            code = target()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
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


def child_approve(driver: Driver) -> Callable[[], int]:
    """The reviewer's ``promote approve`` as a fresh run of its own."""

    def run() -> int:
        driver.as_user(REVIEWER).record_decision(None, None, True, "")
        return 0

    return run


def cli_next(driver: Driver, go: Any, out: str) -> Callable[[], int]:
    """``promote next --json`` in the clone as the author, once ``go`` is set, its stdout
    and stderr in ``out`` and ``out.err``. The tool's clock is the driver's (a soak window
    passes as ``ClockedRun.ahead`` says, as for every run of the driver's own), and a run
    that finds the lock held looks again every 0.1 s, not every second: the same waits,
    at a pace a suite of races can afford."""

    def run() -> int:
        shift = driver.run.ahead

        @dataclasses.dataclass
        class Ahead(ClockedRun):
            ahead: float = shift

        tasks.Run = Ahead  # type: ignore[misc]
        session.LOCK_POLL = 0.1
        os.chdir(driver.clone)
        os.environ.update(driver.environ)
        os.environ["GITHUB_TOKEN"] = driver.sandbox.token(driver.sandbox.scenario.author)
        sys.stdout = open(out, "w", encoding="utf-8")  # noqa: SIM115 (closed at exit)
        sys.stderr = open(f"{out}.err", "w", encoding="utf-8")  # noqa: SIM115
        go.wait(30)
        return cli.main(["next", "--json"])

    return run


def drop_stale_lock(api: Api) -> None:
    """What the lock's expiry does for a run that died holding it (without the wait)."""
    status, _ = api.call("DELETE", f"{api.repo_path}/git/refs/{LOCK_REF}")
    assert status in (204, 404, 422), status


# -- the end state --------------------------------------------------------------------------

_SHA = re.compile(r"\b[0-9a-f]{7,40}\b")
_NUMBER = re.compile(r"\b\d{2,}(?=s?\b)")  # 300s too: a soak's seconds


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


def dispatches(api: Api) -> list[dict[str, Any]]:
    """Every ``workflow_dispatch`` run of any workflow (a rollback's redeploy), oldest first."""
    runs = api.get("/actions/runs?event=workflow_dispatch&per_page=100")["workflow_runs"]
    return sorted(runs, key=lambda r: r["id"])


def fingerprint(api: Api) -> dict[str, Any]:
    """What GitHub holds, per environment and for the repository, free of minted shas."""
    envs = {}
    for env in ENVS:
        head = api.head(env)
        latest = {}
        for status in api.statuses(head):
            latest[status["context"]] = (status["state"], norm(status.get("description")))
        envs[env] = {
            "messages": [norm(c["commit"]["message"]) for c in api.commits(env, 30)],
            "statuses": dict(sorted(latest.items())),
            "files": files(api, env),
            "deployments": [
                (d["task"], commit_of(api, d["sha"]), d["state"]) for d in deployments(api, env)
            ],
        }
    pulls = sorted(
        (p["head"]["ref"], p["base"]["ref"], p["state"], bool(p["merged_at"]), norm(p["title"]))
        for p in api.pulls()
    )
    issues = sorted(
        (
            norm(i["title"]),
            i["state"],
            tuple(sorted(lb["name"] for lb in i["labels"])),
            tuple(norm(f"{c['user']['login']}: {c['body']}") for c in api.comments(i["number"])),
        )
        for i in api.issues()
    )
    runs = [
        (r["path"], r["head_branch"], commit_of(api, r["head_sha"]), r["conclusion"])
        for r in dispatches(api)
    ]
    lock = api.call("GET", f"{api.repo_path}/git/ref/{LOCK_REF}")[0]
    return {
        "environments": envs,
        "pulls": pulls,
        "issues": issues,
        "dispatches": runs,
        "lock": lock,
    }


def duplicates(api: Api) -> list[str]:
    """Anything GitHub holds twice that the tool (or the reviewer's approve) should have
    written once: a status repeated on a commit, a bookkeeping commit, a deployment, a
    dispatch, a PR, an issue, a comment, a plan file."""
    found = []
    pulls = api.pulls()
    shas = {p["head"]["sha"] for p in pulls}
    for env in ENVS:
        shas.add(api.head(env))
        for deployment in deployments(api, env):
            shas.add(deployment["sha"])
        commits = api.commits(env, 60)
        shas |= {c["sha"] for c in commits}
        bookkeeping = Counter(
            norm(c["commit"]["message"])
            for c in commits
            if len(c["parents"]) == 1
            and (
                "Promote-Bookkeeping" in c["commit"]["message"]
                or c["commit"]["message"].startswith("plans:")
            )
        )
        found += [f"{env} commit twice: {m}" for m, n in bookkeeping.items() if n > 1]
        # The tool's own deployments (CI deploys a sha again when a rollback brings it back).
        tasks = Counter(
            (d["task"], d["sha"]) for d in deployments(api, env) if d["task"] != "deploy"
        )
        found += [f"{env} deployment twice: {t}" for t, n in tasks.items() if n > 1]
        plans = Counter(
            path.rsplit("/", 1)[-1] for path in files(api, env) if path.startswith("plans/")
        )
        found += [f"{env} plan file twice: {f}" for f, n in plans.items() if n > 1]
    for sha in sorted(shas):
        found += [f"{sha[:7]}: {d}" for d in duplicate_statuses(api.statuses(sha))]
    runs = Counter((r["path"], r["head_branch"], r["head_sha"]) for r in dispatches(api))
    found += [f"dispatched twice: {r}" for r, n in runs.items() if n > 1]
    open_pulls = Counter(
        (p["head"]["ref"], p["base"]["ref"]) for p in pulls if p["state"] == "open"
    )
    found += [f"two open PRs {k}" for k, n in open_pulls.items() if n > 1]
    all_pulls = Counter((p["head"]["ref"], p["base"]["ref"], p["title"]) for p in pulls)
    found += [f"PR twice {k}" for k, n in all_pulls.items() if n > 1]
    issues = api.issues()
    titles = Counter(i["title"] for i in issues)
    found += [f"issue twice: {t}" for t, n in titles.items() if n > 1]
    for issue in issues:
        said = Counter((c["user"]["login"], c["body"]) for c in api.comments(issue["number"]))
        found += [f"#{issue['number']} comment twice: {c}" for c, n in said.items() if n > 1]
    return found


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """Each journey's fault-free end state and what each of its acting runs wrote (driven
    once per worker, then remembered)."""
    from promote_sandbox import start

    made: dict[str, dict[str, Any]] = {}

    def get(journey: str) -> dict[str, Any]:
        if journey not in made:
            box = start(tmp_path_factory.mktemp("ref"), scenario=JOURNEYS[journey](), step_ms=0)
            try:
                driver = Recorder(box, SETTINGS)
                assert to_rest(driver, journey, errors=0) == []
                assert duplicates(driver.api) == []
                made[journey] = {"fingerprint": fingerprint(driver.api), "writes": driver.log}
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
