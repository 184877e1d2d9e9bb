"""Scenarios: what a real team does, end to end against the sandbox, and what must hold after.

The team works as people do: git in a clone of its own (branches, commits, ``git push``),
GitHub's REST API (open a PR, merge it with a merge method, post a status) and a designated
reviewer who approves or rejects the manual test. Promotion PRs are merged by the team once
``promote/gate`` is green on them (the Merge machine); a developer works each fix plan the tool
files on ``feature/<fix-plan-id>``. The tool runs beside them through the e2e ``Driver`` (the
same ``step()`` that ``promote next`` runs) and, where a person would type a command, through
the ``promote`` CLI: in-process (``Scene.cli``) or the installed console script
(``Scene.console``).

CI moves only when a scenario lets it (``step_ms=0``); time passes only on ``Clock.tick``, for
the tool and the sandbox together, so a soak window or a timeout is a few ticks, not a sleep.
Every scenario ends with ``Scene.check_invariants``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import io
import itertools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox.seed import APP_AFTER
from promote_tasks.cli import main as cli_main
from tests.console import clean_environ
from tests.console import promote
from tests.e2e.conftest import Api
from tests.e2e.conftest import ClockedRun
from tests.e2e.conftest import Driver
from tests.e2e.conftest import Step
from tests.e2e.conftest import config
from tests.e2e.conftest import duplicate_statuses

ENVS = ("dev", "test", "main")
GATE = "promote/gate"
METHODS = ("merge", "squash", "rebase")
TICK = 300.0  # seconds of tool and sandbox time per idle round: a soak window, past a grace
PATIENCE = 4  # idle rounds in a row (20 minutes) before a scenario counts as stuck
# CI is not instant: a rebase merge of the same commit onto the same parent within one second
# (GitHub's timestamp resolution) would give the very same sha in two environments.
CI_SECONDS = 10.0
ROUNDS = 80
KEY_LINE = re.compile(r"^Promote-Key:\s*(\S+)@([0-9a-f]{40})\s*$", re.MULTILINE)
PLAN_LINE = re.compile(r"^Promote-Plan:\s*(\S+)\s*$", re.MULTILINE)
COMPLETION = re.compile(r"^plans: complete\b")


@dataclasses.dataclass(frozen=True)
class Code:
    """What a plan's code does to the app: one file and its content, so that where the code
    has arrived can be read from any branch."""

    plan: str
    path: str
    text: str


GREETING = Code("add-greeting", "app.txt", APP_AFTER)  # the seeded plan, PR #1 into dev
FOOTER = Code("add-footer", "footer.txt", "(c) shop, all rights reserved\n")


def plan_file(plan: str, title: str, priority: int) -> str:
    return f"---\nid: {plan}\ntitle: {title}\npriority: {priority}\n---\n\n{title}.\n"


def front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines between a plan file's ``---`` fences."""
    lines = text.split("\n")
    if lines[0] != "---" or "---" not in lines[1:]:
        return {}
    end = lines.index("---", 1)
    pairs = (line.partition(":") for line in lines[1:end] if line.strip())
    return {k.strip(): v.strip().strip("\"'") for k, _, v in pairs}


def names(subject: str, plan: str) -> bool:
    """Does a commit subject name ``plan`` (as a whole id, not part of a longer one)?"""
    return re.search(rf"(?<![\w-]){re.escape(plan)}(?![\w-])", subject) is not None


class Git:
    """Read-only git on the sandbox's bare repository: exactly what GitHub holds."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "--git-dir", str(self.path), *args],
            capture_output=True,
            text=True,
            check=check,
        )

    def text(self, ref: str, path: str) -> str | None:
        found = self.run("cat-file", "blob", f"{ref}:{path}", check=False)
        return found.stdout if found.returncode == 0 else None

    def files(self, ref: str, directory: str) -> list[str]:
        listed = self.run("ls-tree", "--name-only", ref, f"{directory.rstrip('/')}/")
        return [line.rsplit("/", 1)[-1] for line in listed.stdout.splitlines()]

    def outside_plans(self, sha: str) -> tuple[str, ...]:
        """The top of the tree without ``plans/``: equal for two commits with the same code."""
        lines = self.run("ls-tree", sha).stdout.splitlines()
        return tuple(line for line in lines if line.split("\t", 1)[1] != "plans")

    def history(self, ref: str) -> list[tuple[str, str]]:
        """(sha, subject) of every commit reachable from ``ref``, children before parents."""
        out = self.run("log", "--topo-order", "--format=%H %s", ref).stdout.splitlines()
        return [(line[:40], line[41:]) for line in out]

    def changed(self, sha: str) -> list[str]:
        """Paths ``sha`` changes against its first parent."""
        return self.run("diff", "--name-only", f"{sha}^1", sha).stdout.split()

    def every_commit(self) -> list[str]:
        return self.run("rev-list", "--all").stdout.split()

    def head(self, branch: str) -> str:
        return self.run("rev-parse", f"refs/heads/{branch}").stdout.strip()


class Clock:
    """Time for the tool and the sandbox together: a ``tick`` passes for both at once, so the
    durations the tool measures against GitHub's timestamps are the simulated ones."""

    def __init__(self, sandbox: Sandbox, driver: Driver) -> None:
        self.offset = 0.0
        self.driver = driver
        self.runs: dict[str, ClockedRun] = {}
        sandbox.store.now = self.now  # the sandbox stamps everything with its store's clock

    def now(self) -> float:
        return time.time() + self.offset

    def tick(self, seconds: float = TICK) -> None:
        self.offset += seconds
        self.driver.run.ahead = self.offset

    def run_as(self, login: str) -> ClockedRun:
        """The tool as ``login`` runs it (one per person: connecting costs a third of a second)."""
        run = self.runs.setdefault(login, self.driver.as_user(login))
        run.ahead = self.offset
        return run


class Team:
    """Alice and her colleagues: a clone of their own, ``git push``, and the REST API."""

    IDENT = ("Alice Author", "alice@example.com")

    def __init__(self, sandbox: Sandbox, api: Api, directory: Path) -> None:
        self.api = api
        self.method = sandbox.scenario.merge_method
        self.clone = directory
        subprocess.run(
            ["git", "clone", "-q", str(sandbox.bare_path), str(directory)],
            check=True,
            capture_output=True,
        )

    def git(self, *args: str, stdin: str | None = None) -> str:
        name, email = self.IDENT
        # Work is written before it is merged: an hour earlier than the merge.
        written = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
        environ = {
            **os.environ,
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_AUTHOR_DATE": written.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "GIT_COMMITTER_DATE": written.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        done = subprocess.run(
            ["git", *args],
            cwd=self.clone,
            env=environ,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, base: str, files: dict[str, str], message: str) -> str:
        """A commit with ``files`` on top of ``origin/<base>``, checked out (detached)."""
        self.git("fetch", "-q", "origin")
        self.git("checkout", "-q", "--detach", f"origin/{base}")
        for path, text in files.items():
            target = self.clone / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-F", "-", stdin=message)
        return self.git("rev-parse", "HEAD")

    def push_branch(self, branch: str, base: str, files: dict[str, str], message: str) -> str:
        sha = self.commit(base, files, message)
        self.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return sha

    def push_direct(self, branch: str, files: dict[str, str], message: str) -> str:
        """What the pre-push hook exists to stop: ``git push origin HEAD:<env>``."""
        sha = self.commit(branch, files, message)
        self.git("push", "-q", "origin", f"HEAD:{branch}")
        return sha

    def open_pull(self, head: str, base: str, title: str, body: str = "") -> dict[str, Any]:
        return dict(
            self.api.post("/pulls", {"title": title, "head": head, "base": base, "body": body})
        )

    def start_plan(self, code: Code, title: str, priority: int = 2) -> dict[str, Any]:
        """A plan's PR as the Code machine opens it: its plan file and its code, into dev."""
        branch = f"feature/{code.plan}"
        files = {f"plans/doing/{code.plan}.md": plan_file(code.plan, title, priority)}
        self.push_branch(branch, "dev", {**files, code.path: code.text}, f"{title}\n")
        return self.open_pull(branch, "dev", title, f"Implements plan `{code.plan}`.\n")

    def start_fix(self, plan: str) -> tuple[Code, dict[str, Any]]:
        """The developer's fix for a fix plan: ``feature/<plan>`` from dev, one commit, a PR."""
        code = Code(plan, f"fixes/{plan}.txt", f"fixed: {plan}\n")
        branch = f"feature/{plan}"
        self.push_branch(branch, "dev", {code.path: code.text}, f"Fix {plan}\n")
        return code, self.open_pull(branch, "dev", f"Fix {plan}", "Fixes the failure.\n")

    def merge(self, number: int, method: str | None = None) -> tuple[int, Any]:
        return self.api.call(
            "PUT",
            f"{self.api.repo_path}/pulls/{number}/merge",
            {"merge_method": method or self.method},
        )

    def post_status(self, sha: str, context: str, state: str, description: str) -> None:
        self.api.post(
            f"/statuses/{sha}", {"state": state, "context": context, "description": description}
        )


class Scene:
    """One scenario: the sandbox, the tool (a Driver), the team, one clock, and the record."""

    def __init__(self, sandbox: Sandbox, settings: str, team_dir: Path) -> None:
        self.sandbox = sandbox
        self.driver = Driver(sandbox, settings)
        self.api = self.driver.api
        self.git = Git(sandbox.bare_path)
        self.clock = Clock(sandbox, self.driver)
        self.team = Team(sandbox, self.api, team_dir)
        self.codes: dict[str, Code] = {GREETING.plan: GREETING}
        self.fixes: dict[str, dict[str, Any]] = {}  # fix plan -> the developer's PR
        self.auto_merge = True  # the team merges PRs whose gate is green
        self.console_reviews = False  # the reviewer types `promote approve` / `promote reject`
        self.rejections: Counter[str] = Counter()
        self.decided: set[str] = set()
        self.after_next: list[Callable[[Step], None]] = []
        self.initial = {env: self.git.head(env) for env in ENVS}

    # -- running the tool and the people in turns ----------------------------------------

    def until_rest(self, limit: int = 25) -> list[Step]:
        """``next`` until a step does nothing; it must never stop for a person or fail."""
        taken = []
        for _ in range(limit):
            step = self.driver.next()
            taken.append(step)
            assert step.action.stop is None, f"next stopped: {step.action.stop}"
            for watch in self.after_next:
                watch(step)
            if not step.acted:
                return taken
        raise AssertionError(f"next kept acting: {[s.label for s in taken]}")

    def rest(self) -> list[Step]:
        """Let CI finish what it can (taking a few seconds), then ``next`` until it rests."""
        self.clock.tick(CI_SECONDS)
        self.sandbox.settle()
        return self.until_rest()

    def drive(self, done: Callable[[], bool], what: str) -> None:
        """CI, the tool and the people in turns until ``done()``; ``TICK`` seconds pass whenever
        nobody had anything to do. Stuck (nothing moves for a while) is a failure."""
        idle = 0
        for _ in range(ROUNDS):
            steps = self.rest()
            if done():
                return
            moved = len(steps) > 1 or bool(steps[-1].writes)
            if self.people() or moved or self.sandbox.advance():
                idle = 0
                continue
            idle += 1
            if idle > PATIENCE:
                break
            self.clock.tick()
        raise AssertionError(f"{what} never happened; {self.describe()}")

    def people(self) -> bool:
        """What the people do when the tool rests: review, fix, merge. True if anyone acted."""
        acted = [self.review(), self.work_fix_plans(), self.auto_merge and self.merge_green()]
        return any(acted)

    def review(self) -> bool:
        """The designated reviewer decides an open manual test of an environment's head:
        rejects it as often as the scenario fails stage ``manual`` there, else approves."""
        for issue in self.api.issues("promote:checklist"):
            found = KEY_LINE.search(issue["body"] or "")
            if issue["state"] != "open" or not found or found.group(0) in self.decided:
                continue
            env, sha = found.groups()
            if self.git.head(env) != sha:
                continue
            reject = self.rejections[env] < (self.sandbox.scenario.failures(env, "manual") or 0)
            self.decided.add(found.group(0))
            reviewer = self.sandbox.scenario.reviewer
            if self.console_reviews:
                verb = ["reject", "--reason", "checkout is broken"] if reject else ["approve"]
                done = self.console(*verb, "--env", env, "--sha", sha, login=reviewer)
                assert done.returncode == 0, done.stderr
            else:
                run = self.clock.run_as(reviewer)
                run.record_decision(env, sha, not reject, "checkout is broken" if reject else "")
            self.rejections[env] += reject
            return True  # one decision at a time: it changes what the tool does next
        return False

    def work_fix_plans(self) -> bool:
        """A developer takes each fix plan the tool filed and opens its PR into dev."""
        started = False
        for name in self.git.files("dev", "plans/inbox"):
            plan = name.removesuffix(".md")
            text = self.git.text("dev", f"plans/inbox/{name}") or ""
            if plan in self.fixes or "fix_key" not in front_matter(text):
                continue
            code, pull = self.team.start_fix(plan)
            self.codes[plan] = code
            self.fixes[plan] = pull
            started = True
        return started

    def merge_green(self) -> bool:
        """The Merge machine: every open PR into an environment branch whose gate is green
        (promote's own revert PRs are the tool's to merge)."""
        merged = False
        for pull in self.open_pulls():
            if pull["head"]["ref"].startswith("promote/"):
                continue
            gate = self.api.latest(pull["head"]["sha"], GATE)
            if gate is not None and gate["state"] == "success":
                merged = self.team.merge(pull["number"])[0] == 200 or merged
        return merged

    # -- what the scenarios wait for -------------------------------------------------------

    def open_pulls(self) -> list[dict[str, Any]]:
        found = self.api.get("/pulls?state=open&per_page=100")
        return sorted((p for p in found if p["base"]["ref"] in ENVS), key=lambda p: p["number"])

    def plan_folder(self, plan: str) -> str | None:
        """Where ``plan``'s file is on dev: doing, done or inbox (None: nowhere)."""
        found = [
            f for f in ("inbox", "doing", "done") if self.git.text("dev", f"plans/{f}/{plan}.md")
        ]
        assert len(found) <= 1, f"{plan} is in {found} at once"
        return found[0] if found else None

    def settled(
        self, done: Iterable[str] = (), returned: Iterable[str] = (), fixes: int = 0
    ) -> Callable[[], bool]:
        """Done when ``fixes`` fix plans were filed, ``done`` and every fix plan are in
        ``plans/done/``, ``returned`` in ``plans/inbox/``, and no PR waits to be merged."""
        wanted = [*done]
        back = [*returned]

        def check() -> bool:
            if len(self.fixes) < fixes:
                return False
            if any(self.plan_folder(p) != "done" for p in [*wanted, *self.fixes]):
                return False
            return all(self.plan_folder(p) == "inbox" for p in back) and not self.open_pulls()

        return check

    def awaiting_review(self, env: str) -> Callable[[], bool]:
        """Done when ``env``'s head has an open checklist issue (its manual test is on)."""

        def check() -> bool:
            key = f"{env}@{self.git.head(env)}"
            return any(
                issue["state"] == "open" and f"Promote-Key: {key}" in (issue["body"] or "")
                for issue in self.api.issues("promote:checklist")
            )

        return check

    def pull_open(self, head: str, base: str) -> Callable[[], bool]:
        return lambda: any(
            (p["head"]["ref"], p["base"]["ref"]) == (head, base) for p in self.open_pulls()
        )

    def describe(self) -> str:
        _, out, err = self.cli("status")
        plans = {
            folder: self.git.files("dev", f"plans/{folder}")
            for folder in ("inbox", "doing", "done")
        }
        pulls = [f"#{p['number']} {p['head']['ref']}→{p['base']['ref']}" for p in self.open_pulls()]
        waiting = self.driver.steps[-1].action.waiting_for if self.driver.steps else None
        return f"waiting for {waiting!r}; plans {plans}; open PRs {pulls}; status:\n{out}{err}"

    # -- the CLI, as a person types it -----------------------------------------------------

    def environ(self, login: str | None) -> dict[str, str]:
        token = self.sandbox.token(login or self.sandbox.scenario.author)
        keys = ("GITHUB_API_URL", "GITHUB_REPOSITORY")
        return {**{k: self.driver.environ[k] for k in keys}, "GITHUB_TOKEN": token}

    def cli(self, *args: str, login: str | None = None) -> tuple[int, str, str]:
        """``promote *args`` in the tool's clone, in this process (the same invoke program as
        the console script, without starting one)."""
        out, err = io.StringIO(), io.StringIO()
        environ = clean_environ(self.environ(login))
        with (
            mock.patch.dict(os.environ, environ, clear=True),
            contextlib.chdir(self.driver.clone),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = cli_main(list(args))
        return code, out.getvalue(), err.getvalue()

    def console(self, *args: str, login: str | None = None) -> subprocess.CompletedProcess[str]:
        """The installed ``promote`` console script, as a person or a CI job runs it."""
        return promote(*args, cwd=self.driver.clone, env=self.environ(login))

    def status(self) -> dict[str, Any]:
        code, out, err = self.cli("status", "--json")
        assert (code, err) == (0, ""), err
        return dict(json.loads(out))

    # -- the invariants every scenario ends with -------------------------------------------

    def check_invariants(self, *, done: Iterable[str], returned: Iterable[str] = ()) -> None:
        self.sandbox.settle()
        self.assert_idle()
        self.assert_plans_follow_the_code()
        self.assert_completed_once(done, returned)
        statuses = self.every_status()
        self.assert_validated_before(statuses)
        self.assert_no_duplicates(statuses)

    def assert_idle(self) -> None:
        """An hour after the pipeline came to rest, another ``next`` takes no transition and
        writes nothing."""
        self.clock.tick(3600)
        self.sandbox.settle()
        again = self.driver.next()
        assert again.action.stop is None, again.action.stop
        assert again.action.transition is None, f"an idle next took {again.label}"
        assert not again.writes, f"an idle next wrote {dict(again.writes)}"

    def assert_plans_follow_the_code(self) -> None:
        """No plan whose code is in production is still open (doing/ or inbox/) on dev."""
        for code in self.codes.values():
            if self.git.text("main", code.path) == code.text:
                folder = self.plan_folder(code.plan)
                assert folder == "done", (
                    f"{code.plan}'s code is in main but its file is in {folder}"
                )

    def assert_completed_once(self, done: Iterable[str], returned: Iterable[str]) -> None:
        """One ``plans: complete`` bookkeeping commit on dev per completed plan, its file in
        done/; a returned plan is back in inbox/ with its reason, never completed."""
        done = {*done, *self.fixes}
        returned = set(returned)
        known = {*self.codes, *done, *returned}
        for folder in ("inbox", "doing", "done"):
            known |= {n.removesuffix(".md") for n in self.git.files("dev", f"plans/{folder}")}
        named: Counter[str] = Counter()
        for sha, subject in self.git.history("dev"):
            if not COMPLETION.match(subject):
                continue
            outside = [p for p in self.git.changed(sha) if not p.startswith("plans/")]
            assert not outside, f"{sha[:7]} {subject!r} is no bookkeeping: it changes {outside}"
            named.update(plan for plan in known if names(subject, plan))
        assert dict(named) == dict.fromkeys(done, 1), "plans completed (and how often)"
        for plan in done:
            assert self.plan_folder(plan) == "done", plan
        for plan in returned:
            assert self.plan_folder(plan) == "inbox", plan
            text = self.git.text("dev", f"plans/inbox/{plan}.md") or ""
            assert front_matter(text).get("returned"), f"{plan} came back without a reason"

    def every_status(self) -> dict[str, list[dict[str, Any]]]:
        """Every commit status on every commit GitHub holds, oldest first."""
        return {sha: self.api.statuses(sha) for sha in self.git.every_commit()}

    def assert_validated_before(self, statuses: dict[str, list[dict[str, Any]]]) -> None:
        """Nothing reached an environment without passing the one before: every sha that got
        ``promote/test`` (``promote/main``) = success has the code of a sha that got
        ``promote/dev`` (``promote/test``) = success."""
        validated: dict[str, set[str]] = {env: set() for env in ENVS}
        for sha, found in statuses.items():
            for status in found:
                env = status["context"].removeprefix("promote/")
                if env in validated and status["state"] == "success":
                    validated[env].add(sha)
        for before, env in itertools.pairwise(ENVS):
            trees = {self.git.outside_plans(sha) for sha in validated[before]}
            for sha in validated[env]:
                assert self.git.outside_plans(sha) in trees, (
                    f"{sha[:7]} was validated in {env}, but no commit with its code was "
                    f"validated in {before}"
                )

    def assert_no_duplicates(self, statuses: dict[str, list[dict[str, Any]]]) -> None:
        """No promotion PR twice for a head and base, no checklist issue twice for an
        ``env@sha``, no commit status written twice in a row with the same state and text."""
        promotions = Counter(
            (p["head"]["sha"], p["base"]["ref"])
            for p in self.api.pulls()
            if p["head"]["ref"] in ENVS and p["base"]["ref"] in ENVS
        )
        assert [k for k, n in promotions.items() if n > 1] == [], "promotion PRs twice"
        keys = Counter(
            m.group(0)
            for issue in self.api.issues("promote:checklist")
            if (m := KEY_LINE.search(issue["body"] or ""))
        )
        assert [k for k, n in keys.items() if n > 1] == [], "checklist issues twice"
        for sha, found in statuses.items():
            assert not duplicate_statuses(found), sha

    def assert_never_reached(self, env: str, path: str, text: str) -> None:
        """``env`` never ran (was never deployed at, nor is now at) code with ``path`` = ``text``."""
        deployed = {d["sha"] for d in self.api.get(f"/deployments?environment={env}&per_page=100")}
        for sha in {*deployed, self.git.head(env)}:
            assert self.git.text(sha, path) != text, f"{path} reached {env} at {sha[:7]}"

    # -- small facts the scenarios assert on -----------------------------------------------

    def env_status(self, name: str) -> dict[str, Any]:
        return next(e for e in self.status()["environments"] if e["name"] == name)

    def promotions(self, head: str, base: str) -> list[dict[str, Any]]:
        return [p for p in self.api.pulls() if (p["head"]["ref"], p["base"]["ref"]) == (head, base)]

    def fix_files(self) -> list[str]:
        """Every fix plan file on dev, wherever it is."""
        return [
            name
            for folder in ("inbox", "doing", "done")
            for name in self.git.files("dev", f"plans/{folder}")
            if "fix_key" in front_matter(self.git.text("dev", f"plans/{folder}/{name}") or "")
        ]

    def completed_at(self, plan: str) -> int:
        """Position (0 = the root) of the commit on dev that completed ``plan``."""
        history = list(reversed(self.git.history("dev")))
        return next(i for i, (_, s) in enumerate(history) if COMPLETION.match(s) and names(s, plan))


@pytest.fixture
def make_scene(
    make_sandbox: Callable[..., Sandbox], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Scene]:
    """``make_scene(scenario, settings)``: a fresh sandbox (CI on a manual clock, no merge
    bot: the team merges), the tool's driver and the team's clone."""

    def make(scenario: Scenario | None = None, settings: str | None = None) -> Scene:
        sandbox = make_sandbox(scenario=scenario or Scenario())
        return Scene(
            sandbox, config() if settings is None else settings, tmp_path_factory.mktemp("team")
        )

    return make
