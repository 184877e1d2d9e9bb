"""End-to-end fixtures: an observer client and a driver that runs ``next`` against a sandbox.

``make_sandbox`` / ``sandbox`` come from ``promote_sandbox.testing`` (top-level conftest).

Everything goes over real HTTP to the sandbox (real ghapi, real git); CI moves only when a
test says so (``step_ms=0`` and ``advance()`` / ``settle()``), so runs are deterministic.
The tool's own clock is the one thing a test may move forward (``ClockedRun.ahead``): the
snapshot is then read as if that many seconds had passed, which is what a soak window needs.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_tasks.act import act
from promote_tasks.machine import needs_person
from promote_tasks.model import Action
from promote_tasks.model import PipelineState
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.session import Run

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# What taking and dropping the repository's free lock writes (its commit, its ref, deleting it).
LOCK_WRITES = (
    "POST /repos/{owner}/{repo}/git/commits",
    "POST /repos/{owner}/{repo}/git/refs",
    "DELETE /repos/{owner}/{repo}/git/refs/{ref}",
)
BOOKKEEPING = "Promote-Bookkeeping: "  # then the commit's parent (or "true", as once written)


class Api:
    """An independent observer: plain urllib against the sandbox, no retries, no caching."""

    def __init__(self, sandbox: Sandbox, token: str) -> None:
        self.base = sandbox.api_url
        self.repo_path = f"/repos/{sandbox.repository}"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("Authorization", f"token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            return e.code, json.loads(text) if text else None

    def get(self, tail: str) -> Any:
        status, data = self.call("GET", self.repo_path + tail)
        assert status == 200, f"GET {tail}: {status} {data}"
        return data

    def post(self, tail: str, body: Any) -> Any:
        status, data = self.call("POST", self.repo_path + tail, body)
        assert status in (200, 201), f"POST {tail}: {status} {data}"
        return data

    def commit(self, branch: str, message: str, changes: dict[str, str | None]) -> str:
        """One commit on ``branch`` through the git data API: path -> text, or None to delete."""
        parent = self.head(branch)
        tree = self.get(f"/git/commits/{parent}")["tree"]["sha"]
        entries = [
            {"path": path, "mode": "100644", "type": "blob"}
            | ({"sha": None} if text is None else {"content": text})
            for path, text in changes.items()
        ]
        new_tree = self.post("/git/trees", {"base_tree": tree, "tree": entries})["sha"]
        commit = self.post(
            "/git/commits", {"message": message, "tree": new_tree, "parents": [parent]}
        )["sha"]
        status, data = self.call(
            "PATCH", f"{self.repo_path}/git/refs/heads/{branch}", {"sha": commit}
        )
        assert status == 200, f"update {branch}: {status} {data}"
        return str(commit)

    def control(self, tail: str) -> Any:
        status, data = self.call("GET", f"/_sandbox/{tail}")
        assert status == 200, f"GET /_sandbox/{tail}: {status}"
        return data

    # -- reads the tests assert on -------------------------------------------------------

    def head(self, branch: str) -> str:
        return str(self.get(f"/git/ref/heads/{branch}")["object"]["sha"])

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        """Every commit status on ``sha``, oldest first."""
        found = self.get(f"/commits/{sha}/statuses?per_page=100")
        return sorted(found, key=lambda s: s["id"])

    def latest(self, sha: str, context: str) -> dict[str, Any] | None:
        mine = [s for s in self.statuses(sha) if s["context"] == context]
        return mine[-1] if mine else None

    def pulls(self) -> list[dict[str, Any]]:
        return sorted(self.get("/pulls?state=all&per_page=100"), key=lambda p: p["number"])

    def issues(self, labels: str | None = None) -> list[dict[str, Any]]:
        """Issues proper (not pull requests), any state."""
        query = "state=all&per_page=100" + (
            f"&labels={urllib.parse.quote(labels)}" if labels else ""
        )
        found = self.get(f"/issues?{query}")
        return sorted((i for i in found if "pull_request" not in i), key=lambda i: i["number"])

    def comments(self, number: int) -> list[dict[str, Any]]:
        return list(self.get(f"/issues/{number}/comments?per_page=100"))

    def commits(self, branch: str, count: int = 10) -> list[dict[str, Any]]:
        return list(self.get(f"/commits?sha={branch}&per_page={count}"))

    def file(self, path: str, ref: str) -> str | None:
        status, data = self.call("GET", f"{self.repo_path}/contents/{path}?ref={ref}")
        if status == 404:
            return None
        assert status == 200, f"contents {path}: {status}"
        import base64

        return base64.b64decode(data["content"]).decode()

    def writes(self) -> Counter[str]:
        """Write requests the sandbox has answered so far, by route."""
        requests = self.control("stats")["requests"]
        return Counter({k: v for k, v in requests.items() if k.startswith(WRITE_METHODS)})

    def state(self) -> dict[str, Any]:
        return dict(self.control("state"))


@dataclasses.dataclass
class ClockedRun(Run):
    """A Run whose snapshots are taken ``ahead`` seconds after the wall clock says."""

    ahead: float = 0.0

    def with_verdicts(self, snapshot: Snapshot) -> Snapshot:
        if self.ahead:
            taken = datetime.datetime.fromisoformat(snapshot.taken_at.replace("Z", "+00:00"))
            later = taken + datetime.timedelta(seconds=self.ahead)
            snapshot = dataclasses.replace(snapshot, taken_at=later.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return super().with_verdicts(snapshot)


@dataclasses.dataclass(frozen=True)
class Step:
    """One ``next``: what it read, what it decided, what it said it did, what it wrote."""

    snapshot: Snapshot
    action: Action
    did: tuple[str, ...]
    writes: Counter[str]
    state: PipelineState

    @property
    def acted(self) -> bool:
        return bool(self.action.transition or self.did)

    @property
    def label(self) -> str:
        return f"{self.action.transition or '-'} {self.action.environment or ''}".strip()


class Driver:
    """Runs ``next`` against a sandbox as a person or a CI job would, and keeps the record."""

    def __init__(self, sandbox: Sandbox, config: str) -> None:
        self.sandbox = sandbox
        self.environ = sandbox.env()
        self.clone = Path(self.environ["PROMOTE_CLONE"])
        (self.clone / "promote.toml").write_text(config, encoding="utf-8")
        self.run = self.as_user(sandbox.scenario.author)
        self.api = Api(sandbox, sandbox.author_token)
        self.steps: list[Step] = []
        self.replays: list[tuple[Step, Counter[str]]] = []
        self.approvals = 0

    def as_user(self, login: str) -> ClockedRun:
        environ = {**self.environ, "GITHUB_TOKEN": self.sandbox.token(login)}
        return ClockedRun.load(self.clone, environ=environ)

    # -- the tool ---------------------------------------------------------------------------

    def next(self) -> Step:
        before = self.api.writes()
        done = self.run.step()
        wrote = self.api.writes() - before
        if wrote[LOCK_WRITES[-1]]:
            wrote -= Counter(LOCK_WRITES)  # the lock's own writes are not the transition's
        taken = Step(done.snapshot, done.action, done.did, wrote, done.state)
        self.steps.append(taken)
        return taken

    def replay(self, taken: Step) -> Counter[str]:
        """Perform a step's effects again from the same facts (a re-run after a crash)."""
        before = self.api.writes()
        act(self.run, taken.action, taken.snapshot, taken.state)
        wrote = self.api.writes() - before
        self.replays.append((taken, wrote))
        return wrote

    def state(self) -> PipelineState:
        return self.run.decide(self.run.snapshot())[0]

    def env_state(self, name: str) -> State | None:
        return self.state().env(name).state

    def until_rest(self, limit: int = 20, replays: int = 0) -> list[Step]:
        """``next`` until a step does nothing; optionally replay every transition."""
        taken = []
        for _ in range(limit):
            current = self.next()
            taken.append(current)
            assert current.action.stop is None, current.action.stop
            if current.action.transition:
                for _ in range(replays):
                    wrote = self.replay(current)
                    assert not wrote, f"replaying {current.label} wrote {dict(wrote)}"
            if not current.acted:
                return taken
        raise AssertionError(f"next kept acting: {[s.label for s in taken]}")

    def approve(self, login: str, env: str | None = None) -> str:
        self.approvals += 1
        return self.as_user(login).record_decision(env, None, True, "")

    def drive(
        self,
        done: Callable[[Driver, Step], bool],
        *,
        reviewer: str | None = None,
        tick: float = 60.0,
        limit: int = 40,
        replays: int = 0,
        idle_nexts: int = 0,
    ) -> None:
        """Alternate CI and ``next`` until ``done``: approve when a person is needed (as
        ``reviewer``), and let ``tick`` seconds pass on the tool's clock when CI is idle."""
        for _ in range(limit):
            self.sandbox.settle()
            rest = self.until_rest(replays=replays)[-1]
            if done(self, rest):
                return
            for _ in range(idle_nexts):
                again = self.next()
                assert not again.acted, f"an idle next acted: {again.label} {again.did}"
                assert not again.writes, f"an idle next wrote {dict(again.writes)}"
            person = needs_person(rest.state, rest.action, self.run.pipeline)
            if person and reviewer and "manual" in person:
                self.approve(reviewer)
                continue
            if self.sandbox.advance():
                continue
            self.run.ahead += tick
        raise AssertionError(f"the journey did not finish: {self.steps[-1].action}")

    def advance_until(self, ready: Callable[[], bool], limit: int = 20) -> None:
        """Move CI one step at a time until ``ready()``."""
        for _ in range(limit):
            if ready():
                return
            assert self.sandbox.advance(), "CI went idle first"
        raise AssertionError("CI did not get there")

    def deployed(self, env: str, *, after: str | None = None) -> bool:
        """Has the newest deployment of ``env``'s head (a head other than ``after``) succeeded?"""
        head = self.api.head(env)
        if head == after:
            return False
        mine = [
            d
            for d in self.api.state()["deployments"]
            if d["environment"] == env and d["sha"] == head
        ]
        return bool(mine) and mine[-1]["state"] == "success"

    # -- what GitHub now holds --------------------------------------------------------------

    def transitions(self) -> list[tuple[str, str, str]]:
        """(transition, environment, sha) of every transition taken, in order."""
        out = []
        for taken in self.steps:
            action = taken.action
            if action.transition and action.environment:
                sha = taken.snapshot.env(action.environment).head or ""
                out.append((action.transition, action.environment, sha))
        return out


def duplicate_statuses(statuses: list[dict[str, Any]]) -> list[str]:
    """Statuses that repeat the previous one of their context (same state and description)."""
    last: dict[str, tuple[str, str]] = {}
    found = []
    for status in sorted(statuses, key=lambda s: s["id"]):
        seen = (status["state"], status.get("description") or "")
        if last.get(status["context"]) == seen:
            found.append(f"{status['context']} {seen}")
        last[status["context"]] = seen
    return found


def front_matter(text: str) -> dict[str, Any]:
    """A plan file's front-matter as PyYAML reads it (and GitHub renders it): the tool's
    files must be valid YAML, not only readable by the tool's own parser."""
    lines = text.split("\n")
    assert lines[0] == "---", text
    data = yaml.safe_load("\n".join(lines[1 : lines.index("---", 1)]))
    assert isinstance(data, dict), text
    return data


def config(*, reviewers: tuple[str, ...] = ("rita",), extra: str = "") -> str:
    names = ", ".join(f'"{r}"' for r in reviewers)
    return f"reviewers = [{names}]\n{extra}"


def one_env(name: str, validators: tuple[str, ...], extra: str = "", **kw: Any) -> str:
    """Settings for a one-environment pipeline (fast to drive; it is its own production, and
    says so: a list of only some default environments must)."""
    names = ", ".join(f'"{v}"' for v in validators)
    entry = f'[[environments]]\nname = "{name}"\nvalidators = [{names}]\nproduction = true\n'
    return config(extra=f"{extra}\n{entry}", **kw)


@pytest.fixture
def make_driver(make_sandbox: Callable[..., Sandbox]) -> Callable[..., Driver]:
    """``make_driver(scenario, config_text)``: a fresh sandbox (manual CI clock unless
    ``step_ms`` says otherwise) and a driver."""

    def make(scenario: Scenario | None = None, settings: str | None = None, **kw: Any) -> Driver:
        sandbox = make_sandbox(scenario=scenario or Scenario(merge_bot=True), **kw)
        return Driver(sandbox, settings if settings is not None else config())

    return make


@pytest.fixture(scope="module")
def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Sandbox]]:
    """Like ``make_sandbox`` but shared by a module's tests (one long journey, many checks)."""
    made: list[Sandbox] = []

    def make(scenario: Scenario) -> Sandbox:
        made.append(start(tmp_path_factory.mktemp("sandbox"), scenario=scenario, step_ms=0))
        return made[-1]

    yield make
    for box in made:
        box.stop()
