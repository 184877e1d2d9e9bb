"""The catalogue of bad input (issue 10, item 8): each way a person or a CI job can hand promote
something wrong, as data, run through the real console scripts against real sandboxes over HTTP
and real git in tmp_path.

The promise (DESIGN §4.1, §5): one line on stderr that names the problem and exit status 1 (0
where resting is the right answer: another run holds the lock, a job summary that cannot be
written is a warning, a reader that goes away early), no traceback, no token in any output, no
raw control character in any output (text from GitHub is shown inertly), nothing written on
GitHub (each sandbox's write counter) and nothing in git (the clone's refs and status). A few
cases write by design (a transition whose notifying plugin fails, a validator that raises):
they say exactly what they write.

Every case's process is started in one module fixture, ten at a time (most of a run is Python
importing the tool); the tests then judge one result each. Cases that write have a sandbox of
their own.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import re
import shlex
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_tasks.ledger import lock_message
from promote_tasks.session import Run
from tests import console
from tests.e2e.conftest import BOOKKEEPING
from tests.e2e.conftest import LOCK_WRITES
from tests.e2e.conftest import Api

EXAMPLE = Path(__file__).parent.parent / "examples" / "snapshot.json"
FAKE_TOKEN = "sbx_nobody_0123456789abcdef01234567"  # well-formed, unknown to every sandbox
WORKERS = 10  # processes at once: most of a run is imports, some wait for a lock or a socket
TIMEOUT = 60.0  # seconds a case may take: a hang is a failure, not a stuck suite
# Control characters a terminal acts on (ESC, CR, BEL, C1, bidi overrides), as render.inert sees them.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
EVIL = "red\x1b[31mALERT\x1b[0m \u202eevil\r overwritten\x07"


# -- the settings, plugins and files the cases are made of ------------------------------------

REVIEWERS = 'reviewers = ["rita"]\n'
PLUGINS = REVIEWERS + 'plugins_dir = "plugins"\n'
ENVS = '[[environments]]\nname = "dev"\n[[environments]]\nname = "test"\n[[environments]]\nname = "main"\n'  # fmt: skip
MANUAL_DEV = REVIEWERS + '[[environments]]\nname = "dev"\nvalidators = ["manual"]\nproduction = true\n'  # fmt: skip
HOOK = "from promote_tasks import hookimpl\n"
BOOM = HOOK + (
    "class Boom:\n    name = 'boom'\n    option_types = {}\n"
    "    def start(self, run):\n        return None\n"
    "    def check(self, run):\n        raise {raised}\n"
    "@hookimpl\ndef register_validators(register):\n    register(Boom())\n"
)
BOOM_SETTINGS = PLUGINS + "[validators.boom]\n" + ENVS.replace('"dev"\n', '"dev"\nvalidators = ["health", "boom"]\n')  # fmt: skip
NOTIFY = HOOK + (
    "@hookimpl\ndef promote_transition(action, did, repository):\n"
    "    raise ConnectionError('chat is down')\n"
)
GOOD_PLAN = "---\nid: x\ntitle: A plan\npriority: 1\n---\n\nWork.\n"
# next goes on past a broken plan file: here it gates the open PR #1, under the lock.
GATE_WRITES = {
    "POST /repos/{owner}/{repo}/statuses/{sha}": 1,
    "POST /repos/{owner}/{repo}/git/commits": 1,
    "POST /repos/{owner}/{repo}/git/refs": 1,
    "DELETE /repos/{owner}/{repo}/git/refs/{ref}": 1,
}
# A `next` or `gate` that finds the lock held: its first try creates the lock without a look,
# so it leaves a lock commit nothing points to and a refused ref creation; its later tries
# look. `approve` and `reject`, which fail on a busy lock, look first and write nothing.
LOCK_TRIES = {
    "POST /repos/{owner}/{repo}/git/commits": 1,
    "POST /repos/{owner}/{repo}/git/refs": 1,
}
BAD_PLANS = {
    "yaml": GOOD_PLAN.replace("A plan", "Fix dev: it failed"),
    "type": GOOD_PLAN.replace("priority: 1", "priority: high"),
    "key": GOOD_PLAN.replace("priority: 1", "priority: 1\nowner: rita"),
    "no-front-matter": "Work, but no front-matter.\n",
}
PLAN_PROBLEMS = {
    "yaml": "plans/doing/x.md:3: the front-matter is not valid YAML (mapping values are not allowed here",
    "type": "plans/doing/x.md:4: priority must be a whole number, got 'high'",
    "key": "plans/doing/x.md:5: unknown key 'owner'",
    "no-front-matter": "plans/doing/x.md: plan files start with a '---' front-matter block",
}  # fmt: skip
MANY_ENVS = REVIEWERS + "".join(f'[[environments]]\nname = "stage-{i}"\n' for i in range(400))
HOLDER = "promote next on ci-runner:4242 (Actions run 77)"


def example(change: Callable[[dict[str, Any]], object]) -> str:
    """The example snapshot, changed in place by ``change``, as JSON text."""
    data = json.loads(EXAMPLE.read_text())
    change(data)
    return json.dumps(data)


# -- sandboxes --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Box:
    """A sandbox the cases naming it share, and how it is brought to its state before they run
    (its own writes happen there, before the write counter is read)."""

    name: str
    scenario: Scenario = dataclasses.field(default_factory=Scenario)
    files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # its cases' defaults too
    setup: Callable[[Sandbox, Api], None] | None = None


def _settled(sandbox: Sandbox, api: Api) -> None:
    sandbox.settle()  # the merge bot merges PR #1 into dev, and dev deploys


def _one_next(sandbox: Sandbox, api: Api) -> None:
    """One ``next`` in-process, as its settings say (R4 on dev: validation starts)."""
    sandbox.settle()
    Run.load(sandbox.clone_path, environ=sandbox.env()).step()


def _hold_lock(sandbox: Sandbox, api: Api) -> None:
    """Another run holds the repository's lock, until long after the cases end."""
    tree = api.get(f"/git/commits/{api.head('main')}")["tree"]["sha"]
    message = lock_message(HOLDER, "2026-01-01T00:00:00Z", "2999-01-01T00:00:00Z")
    commit = api.post("/git/commits", {"message": message, "tree": tree, "parents": []})
    api.post("/git/refs", {"ref": "refs/promote/lock", "sha": commit["sha"]})


def _waiting_and_locked(sandbox: Sandbox, api: Api) -> None:
    _one_next(sandbox, api)
    _hold_lock(sandbox, api)


def _failed_with_an_evil_description(sandbox: Sandbox, api: Api) -> None:
    sandbox.settle()
    description = "deploy \x1b[31mfailed\u202e\r"
    api.post(f"/statuses/{api.head('dev')}", {"state": "failure", "context": "promote/dev", "description": description})  # fmt: skip


def _evil_pull_requests(sandbox: Sandbox, api: Api) -> None:
    """A promotion dev → test merged early whose body names an evil plan (test carries it, so it
    is in flight), and an open feature PR whose title and body are evil; the gates written."""
    sandbox.settle()
    body = f"Promote-Plan: add\x1b[31mgreeting\u202e\nPromote-Author: ev\x1bil\n{EVIL}"
    number = api.post("/pulls", {"title": EVIL, "head": "dev", "base": "test", "body": body})["number"]  # fmt: skip
    merged = api.call("PUT", f"{api.repo_path}/pulls/{number}/merge", {"merge_method": "merge"})
    assert merged[0] == 200, merged
    api.post("/git/refs", {"ref": "refs/heads/feature/evil", "sha": api.head("dev")})
    api.commit("feature/evil", f"evil {EVIL}", {"app.txt": f"{EVIL}\n"})
    api.post("/pulls", {"title": EVIL, "head": "feature/evil", "base": "dev", "body": EVIL})
    run = Run.load(sandbox.clone_path, environ=sandbox.env())
    run.gate(run.facts())


def _plan_file(text: str) -> Callable[[Sandbox, Api], None]:
    def setup(sandbox: Sandbox, api: Api) -> None:
        api.commit("dev", f"plans: x\n\n{BOOKKEEPING}true\n", {"plans/doing/x.md": text})

    return setup


BOXES = [
    Box("seeded"),
    # A `next` or `gate` that finds the lock held writes (see LOCK_TRIES): each has its own box.
    *(Box(f"locked-{name}", setup=_hold_lock) for name in ("next", "gate")),
    Box("waiting", Scenario(merge_bot=True), {"promote.toml": MANUAL_DEV}, _one_next),
    Box(
        "waiting-locked",
        Scenario(merge_bot=True),
        {"promote.toml": MANUAL_DEV},
        _waiting_and_locked,
    ),
    Box("failed", Scenario(merge_bot=True), setup=_failed_with_an_evil_description),
    Box("evil", Scenario(merge_bot=True), setup=_evil_pull_requests),
    *(
        Box(
            f"boom-{name}",
            Scenario(merge_bot=True),
            {"promote.toml": BOOM_SETTINGS, "plugins/boom.py": BOOM.replace("{raised}", raised)},
            _one_next,
        )
        for name, raised in (
            ("next", "RuntimeError('the probe fell over')"),
            ("status", "RuntimeError('the probe fell over')"),
            ("exit", "SystemExit('the probe quit')"),
        )
    ),
    Box(
        "notify",
        Scenario(merge_bot=True),
        {"promote.toml": PLUGINS, "plugins/notify.py": NOTIFY},
        _settled,
    ),
    *(Box(f"plan-{name}", setup=_plan_file(text)) for name, text in BAD_PLANS.items()),
    Box("plan-yaml-next", setup=_plan_file(BAD_PLANS["yaml"])),
]


# -- cases ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input: how to set it up, the command, what must come back.

    ``args``, ``env`` values, ``stderr`` and ``stdout`` may name placeholders: ``{dir}`` (the
    case's working directory), ``{head_dev}`` / ``{head_test}`` (and ``{..._7}``, short) of its
    sandbox after the box's setup, ``{token_<login>}``, ``{html}`` (a server answering HTML),
    ``{closed}`` (a port nothing listens on).
    """

    id: str
    args: str  # the command line after the script's name (shell words)
    stderr: str | None  # a fragment of the one line on stderr; None: stderr stays empty
    code: int = 1
    box: str = "seeded"
    files: Mapping[str, str | bytes | None] = dataclasses.field(default_factory=dict)
    env: Mapping[str, str | None] = dataclasses.field(default_factory=dict)  # None: unset
    where: str = "clone"  # clone | shallow | detached | stranger | plain (not a repository)
    script: str = "promote"
    stdout: tuple[str, ...] = ()  # fragments stdout holds; a run that fails prints nothing there
    reader: str = "pipe"  # pipe | closed (stdout's read end closed first) | one-byte (then closed)
    writes: Mapping[str, int] = dataclasses.field(default_factory=dict)  # own box only
    statuses: tuple[tuple[str, str, str], ...] = ()  # (sha placeholder, context, state) after
    fetches: bool = False  # may update remote-tracking refs (a fetch is how git reads)
    known: str | None = None  # a defect left in place: this case fails on its line count


def case(family: str, name: str, args: str, stderr: str | None, **kw: Any) -> Case:
    return Case(f"{family}/{name}", args, stderr, **kw)


def error(text: str) -> str:
    return f"promote: error: {text}"


def settings(name: str, text: str | bytes, stderr: str, command: str = "status") -> Case:
    """A configuration refused before anything is read: ``command`` in a clone holding ``text``."""
    return case("config", name, command, error(stderr), files={"promote.toml": text})


def plugin(name: str, module: str, stderr: str) -> Case:
    files = {"promote.toml": PLUGINS, "plugins/team.py": module}
    return case("plugins", name, "status", error(stderr), files=files)


CONFIG = [
    settings("malformed-toml", "reviewers = [\n", "{dir}/promote.toml: not valid TOML (Invalid value"),
    settings("a-key-twice", REVIEWERS + REVIEWERS, "{dir}/promote.toml: not valid TOML (Cannot overwrite a value (at line 2"),
    settings("not-utf-8", b'reviewers = ["ren\xe9"]\n', "{dir}/promote.toml: not UTF-8 text (byte 0xe9 at offset 17); TOML files are UTF-8"),
    settings("unknown-key", REVIEWERS + "reviewer = 1\n", "{dir}/promote.toml: reviewer: unknown key (known: approval_timeout_seconds,"),
    settings("unknown-environment-key", REVIEWERS + ENVS.replace('"dev"\n', '"dev"\nbrnach = "x"\n'), "{dir}/promote.toml: environments[0].brnach: unknown key"),
    settings("reviewers-not-a-list", 'reviewers = "rita"\n', "{dir}/promote.toml: reviewers: expected a list of GitHub logins, got 'rita'"),
    settings("production-not-last", REVIEWERS + ENVS.replace('"dev"\n', '"dev"\nproduction = true\n'), "{dir}/promote.toml: environments[0].production: only the last environment can be production"),
    settings("validator-option-unknown", REVIEWERS + "[validators.health]\nretry = 3\n", "{dir}/promote.toml: validators.health.retry: unknown option for http-health"),
    settings("validator-option-type", REVIEWERS + '[validators.health]\nretries = "3"\n', "{dir}/promote.toml: validators.health.retries: bad value '3'"),
    case("config", "tool-promot", "status", error("{dir}/pyproject.toml: [tool.promot] is not read by promote: did you mean [tool.promote]?"), files={"promote.toml": None, "pyproject.toml": '[tool.promot]\nreviewers = ["rita"]\n'}),
    case("config", "promote-toml-and-tool-promote", "status", error("{dir}/promote.toml: {dir}/pyproject.toml configures promote too ([tool.promote]): keep the settings in one of the two files"), files={"pyproject.toml": '[tool.promote]\nreviewers = ["rita"]\n'}),
    case("config", "tool-promote-not-a-table", "status", error("{dir}/pyproject.toml: [tool.promote] must be a table, got 5"), files={"promote.toml": None, "pyproject.toml": "[tool]\npromote = 5\n"}),
    settings("unknown-validator-plugin", REVIEWERS + '[validators.smoke]\nuse = "smok"\n', "{dir}/promote.toml: validators.smoke.use: no validator plugin 'smok' (known: http-health, manual-approval, monitor, workflow)"),
    settings("unknown-validator", REVIEWERS + ENVS.replace('"dev"\n', '"dev"\nvalidators = ["helth"]\n'), "{dir}/promote.toml: environments[0].validators: unknown validator 'helth'"),
    settings("unknown-strategy", REVIEWERS + 'rollback = "undo"\n', "{dir}/promote.toml: rollback: no rollback strategy 'undo' (known: redeploy, reset, revert)", "rollback --env test"),
    settings("unknown-plan-store", REVIEWERS + 'plan_store = "jira"\n', "{dir}/promote.toml: plan_store: no plan store 'jira' (known: files, issues)", "config"),
    settings("manual-test-without-reviewers", 'plans_dir = "plans"\n', "{dir}/promote.toml: reviewers: the manual test in test (validator manual, manual-approval) has no designated reviewers"),
    case("config", "no-configuration-at-all", "status", error("no promote.toml or [tool.promote] in pyproject.toml: reviewers: the manual test in test"), files={"promote.toml": None}),
    settings("partial-environment-list", REVIEWERS + '[[environments]]\nname = "test"\n', "{dir}/promote.toml: environments: lists only test, but a [[environments]] list is the whole pipeline", "gate"),
    settings("timeout-zero", REVIEWERS + "deploy_timeout_seconds = 0\n", "{dir}/promote.toml: deploy_timeout_seconds: expected a positive number of seconds, got 0"),
    settings("timeout-negative", REVIEWERS + ENVS.replace('"test"\n', '"test"\nvalidation_timeout_seconds = -5\n'), "{dir}/promote.toml: environments[1].validation_timeout_seconds: expected a positive number of seconds, got -5"),
    settings("timeout-a-string", REVIEWERS + 'approval_timeout_seconds = "a week"\n', "{dir}/promote.toml: approval_timeout_seconds: expected a number of seconds, got 'a week'", "next"),
    settings("health-timeout-negative", REVIEWERS + "[validators.health]\ntimeout = -5\n", "{dir}/promote.toml: validators.health.timeout: bad value -5 (expected a positive number of seconds)", "next"),
    settings("health-retries-negative", REVIEWERS + "[validators.health]\nretries = -1\n", "{dir}/promote.toml: validators.health.retries: bad value -1 (expected a whole number, 0 or more)"),
    settings("soak-negative", REVIEWERS + "[validators.monitor]\nsoak_seconds = -300\n", "{dir}/promote.toml: validators.monitor.soak_seconds: bad value -300 (expected a whole number of seconds, 0 or more)"),
    settings("manual-backend-misspelt", REVIEWERS + '[validators.manual]\nbackend = "enviroment"\n', "{dir}/promote.toml: validators.manual.backend: bad value 'enviroment' (expected \"issue\" or \"environment\")"),
    settings("workflows-not-names", REVIEWERS + "[validators.smoke]\nworkflows = [1]\n", "{dir}/promote.toml: validators.smoke.workflows: bad value [1] (expected a list of names)"),
    settings("plugins-dir-missing", REVIEWERS + 'plugins_dir = "nope"\n', "plugins_dir {dir}/nope is not a directory"),
]  # fmt: skip

ENVIRON = [
    case("environ", "no-token", "status", error("no GitHub token: set GITHUB_TOKEN (or GH_TOKEN)"), env={"GITHUB_TOKEN": None}),
    case("environ", "token-with-a-space", "status", error("GITHUB_TOKEN is malformed: it contains spaces or non-ASCII characters"), env={"GITHUB_TOKEN": "Bearer {token_alice}"}),
    case("environ", "token-not-ascii", "status", error("GITHUB_TOKEN is malformed: it contains spaces or non-ASCII characters"), env={"GITHUB_TOKEN": "sbx_tök\u00e9n_0123456789abcdef"}),
    case("environ", "gh-token-with-a-line-break", "status", error("GH_TOKEN is malformed"), env={"GITHUB_TOKEN": None, "GH_TOKEN": "{token_alice}\nX-Evil: 1"}),
    case("environ", "token-401", "status", error("GitHub rejected the token (401 Bad credentials): check GITHUB_TOKEN"), env={"GITHUB_TOKEN": FAKE_TOKEN}),
    case("environ", "gh-token-401", "next", error("GitHub rejected the token (401 Bad credentials): check GH_TOKEN"), env={"GITHUB_TOKEN": "", "GH_TOKEN": FAKE_TOKEN}),
    case("environ", "repository-not-owner-name", "status", error("repository 'acme' is not owner/name"), env={"GITHUB_REPOSITORY": "acme"}),
    case("environ", "repository-with-a-path", "next", error("repository 'acme/shop/extra' is not owner/name"), env={"GITHUB_REPOSITORY": "acme/shop/extra"}),
    case("environ", "unknown-repository", "status", error("repository acme/nope not found, or the token cannot see it (404)"), env={"GITHUB_REPOSITORY": "acme/nope"}),
    case("environ", "api-url-ftp", "status", error("GITHUB_API_URL='ftp://127.0.0.1/api' is not an http(s) URL"), env={"GITHUB_API_URL": "ftp://127.0.0.1/api"}),
    case("environ", "api-url-not-a-url", "next", error("GITHUB_API_URL='not a url' is not an http(s) URL"), env={"GITHUB_API_URL": "not a url"}),
    case("environ", "api-url-answers-html", "status", error("{html} answered text/html (200), not GitHub's API: check GITHUB_API_URL"), env={"GITHUB_API_URL": "{html}"}),
    case("environ", "ghes-url-answers-html", "gate", error("{html}/api/v3 answered text/html (200), not GitHub's API: check GITHUB_API_URL"), env={"GITHUB_API_URL": "{html}/api/v3"}),
    case("environ", "api-url-closed-port", "status", error("cannot reach GitHub at http://127.0.0.1:{closed} (ConnectError"), env={"GITHUB_API_URL": "http://127.0.0.1:{closed}"}),
    case("environ", "http-timeout-zero", "status", error("PROMOTE_HTTP_TIMEOUT='0' is not a positive number of seconds"), env={"PROMOTE_HTTP_TIMEOUT": "0"}),
    case("environ", "http-timeout-negative", "status", error("PROMOTE_HTTP_TIMEOUT='-1' is not a positive number of seconds"), env={"PROMOTE_HTTP_TIMEOUT": "-1"}),
    case("environ", "http-timeout-a-word", "next", error("PROMOTE_HTTP_TIMEOUT='soon' is not a positive number of seconds"), env={"PROMOTE_HTTP_TIMEOUT": "soon"}),
    case("environ", "deadline-zero", "status", error("PROMOTE_DEADLINE='0' is not a positive number of seconds"), env={"PROMOTE_DEADLINE": "0"}),
    case("environ", "deadline-infinite", "status", error("PROMOTE_DEADLINE='inf' is not a positive number of seconds"), env={"PROMOTE_DEADLINE": "inf"}),
    case("environ", "halt-hook-with-a-401-token", "", "promote-halt: warning: cannot tell whether work is halted (GitHub rejected the token (401 Bad credentials): check GITHUB_TOKEN); pushing anyway", code=0, script="promote-halt", env={"GITHUB_TOKEN": FAKE_TOKEN, "PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/feature/x", "PRE_COMMIT_TO_REF": "HEAD"}),
]  # fmt: skip

GIT = [
    case("git", "rollback-target-without-a-clone", "rollback --env dev --dry-run", None, code=0, box="waiting", where="plain", files={"promote.toml": REVIEWERS}, stdout=("would roll back dev from {head_dev_7} to {head_test_7} (newest known-good (from the API: no usable clone)) with redeploy",)),
    case("git", "rollback-target-in-a-shallow-clone", "rollback --env dev --dry-run", None, code=0, box="waiting", where="shallow", files={"promote.toml": REVIEWERS}, fetches=True, stdout=("would roll back dev from {head_dev_7} to {head_test_7} (newest known-good) with redeploy",)),
    case("git", "rollback-target-on-a-detached-head", "rollback --env dev --dry-run", None, code=0, box="waiting", where="detached", files={"promote.toml": REVIEWERS}, stdout=("would roll back dev from {head_dev_7} to {head_test_7} (newest known-good) with redeploy",)),
    case("git", "rollback-target-in-a-strangers-clone", "rollback --env dev --dry-run", None, code=0, box="waiting", where="stranger", files={"promote.toml": REVIEWERS}, stdout=("(newest known-good (from the API: no usable clone))",)),
    case("git", "no-repository-outside-a-clone", "status", error("no repository: set GITHUB_REPOSITORY=owner/name or repository in [tool.promote]"), where="plain", env={"GITHUB_REPOSITORY": None}),
    case("git", "no-env-commit-on-a-detached-head", "", None, code=0, where="detached", script="promote-no-env-commit"),
    case("git", "no-env-commit-outside-a-repository", "", "promote-no-env-commit: error: not a git repository: {dir}", where="plain", script="promote-no-env-commit"),
    case("git", "halt-hook-on-a-detached-head", "", None, code=0, where="detached", script="promote-halt", env={"PRE_COMMIT_REMOTE_NAME": "origin", "PRE_COMMIT_REMOTE_BRANCH": "refs/heads/feature/x", "PRE_COMMIT_TO_REF": "HEAD"}),
]  # fmt: skip

SNAPSHOT = {"snap.json": EXAMPLE.read_text()}
CLI = [
    case("cli", "watch-interval-a-word", "watch --interval abc", error("--interval expects a positive number of seconds, got 'abc'")),
    case("cli", "watch-interval-negative", "watch --interval -1", error("--interval expects a positive number of seconds, got '-1'")),
    case("cli", "watch-interval-zero", "watch --interval 0", error("--interval expects a positive number of seconds, got '0'")),
    case("cli", "watch-timeout-negative", "watch --timeout -5", error("--timeout expects a positive number of seconds, got '-5'")),
    case("cli", "gate-pr-a-word", "gate --pr abc", error("--pr expects a pull request number, got 'abc'")),
    case("cli", "gate-pr-unknown", "gate --pr 999", error("no pull request #999 in acme/shop")),
    case("cli", "gate-pr-merged", "gate --pr 1", error("pull request #1 is merged: only open PRs are gated"), box="waiting", files={"promote.toml": REVIEWERS}),
    case("cli", "rollback-without-env", "rollback", error("say which environment: --env NAME")),
    case("cli", "rollback-unknown-env", "rollback --env nope", error("unknown environment 'nope' (known: dev, test, main)")),
    case("cli", "rollback-unknown-strategy", "rollback --env test --strategy undo", error("unknown rollback strategy 'undo' (known: redeploy, reset, revert)")),
    case("cli", "rollback-reset-not-configured", "rollback --env test --strategy reset", error('rollback strategy reset is opt-in and test is configured for redeploy: set rollback = "reset" for test to allow it')),
    case("cli", "rollback-to-no-such-commit", "rollback --env test --to deadbeef", error("--to deadbeef: no such commit in acme/shop")),
    case("cli", "rollback-to-not-an-ancestor", "rollback --env test --to {head_dev}", error("--to {head_dev} is not an ancestor of test's head {head_test_7}"), box="waiting", files={"promote.toml": REVIEWERS}),
    case("cli", "rollback-to-the-head-itself", "rollback --env test --to {head_test}", error("--to {head_test} is the head of test itself: nothing to roll back"), box="waiting", files={"promote.toml": REVIEWERS}),
    case("cli", "approve-sha-too-short", "approve --env dev --sha abc", error("--sha abc is too short: give at least 7 characters of the sha you tested"), box="waiting", env={"GITHUB_TOKEN": "{token_rita}"}),
    case("cli", "approve-sha-wrong", "approve --env dev --sha 1234567", error("dev is at {head_dev_7}, not 1234567: decisions are bound to the exact sha"), box="waiting", env={"GITHUB_TOKEN": "{token_rita}"}),
    case("cli", "approve-not-a-reviewer", "approve --env dev", error("bob is not a designated reviewer of dev (reviewers: rita)"), box="waiting", env={"GITHUB_TOKEN": "{token_bob}"}),
    case("cli", "approve-own-change", "approve", error("alice wrote this change and cannot approve or reject it"), box="waiting", files={"promote.toml": MANUAL_DEV.replace('["rita"]', '["rita", "alice"]')}),
    case("cli", "approve-nothing-waiting", "approve --sha 1234567", error("test is not waiting for a manual test (it is promoted)")),
    case("cli", "reject-without-reason", "reject --env dev", error("say why: --reason TEXT"), box="waiting", env={"GITHUB_TOKEN": "{token_rita}"}),
    case("cli", "reject-reason-without-value", "reject --reason", "promote: error: --reason needs a value"),
    case("cli", "unknown-option", "next --bogus", "promote: error: unknown option --bogus (see promote help)"),
    case("cli", "snapshot-missing", "status --snapshot none.json", error("cannot read snapshot none.json: No such file or directory")),
    case("cli", "snapshot-not-json", "status --snapshot snap.json", error("snap.json: not JSON (Expecting property name enclosed in double quotes at line 1)"), files={"snap.json": "{oops"}),
    case("cli", "snapshot-wrong-format", "status --snapshot snap.json", error("snap.json: snapshot format 99 is not supported"), files={"snap.json": example(lambda d: d.update(format=99))}),
    case("cli", "snapshot-wrong-type", "next --snapshot snap.json", error('snap.json.environments[0].deployments[0].id: expected int, got "12"'), files={"snap.json": EXAMPLE.read_text().replace('"id": 12,', '"id": "12",')}),
    case("cli", "snapshot-missing-environment", "status --snapshot snap.json", error("snap.json: no facts for environment 'prod' of this pipeline"), files={**SNAPSHOT, "promote.toml": '[[environments]]\nname = "dev"\n[[environments]]\nname = "prod"\n'}),
    case("cli", "save-snapshot-nowhere", "status --save-snapshot {dir}/no/such/dir/s.json", error("cannot write snapshot {dir}/no/such/dir/s.json: No such file or directory")),
    case("cli", "save-snapshot-to-a-directory", "status --snapshot snap.json --save-snapshot {dir}", error("cannot write snapshot {dir}: Is a directory"), files=SNAPSHOT),
    case("cli", "demo-step-a-word", "demo --step-ms abc", error("--step-ms expects a positive whole number of milliseconds, got 'abc'")),
    case("cli", "demo-step-negative", "demo --step-ms -5", error("--step-ms expects a positive whole number of milliseconds, got '-5'")),
]  # fmt: skip

SUMMARY_DIR = {"summary/README": "a directory, not a file\n"}
OUTPUT = [
    case("output", "stdout-closed-status", "status --json", None, code=0, reader="closed"),
    case("output", "stdout-closed-next", "next --dry-run", None, code=0, reader="closed"),
    case("output", "stdout-closed-snapshot", "status --json --snapshot snap.json", None, code=0, reader="closed", files=SNAPSHOT),
    case("output", "reader-gone-after-one-byte", "config --json", None, code=0, reader="one-byte", files={"promote.toml": MANY_ENVS}),
    case("output", "summary-a-directory", "status", "promote: warning: cannot write the job summary to {dir}/summary: Is a directory", code=0, files=SUMMARY_DIR, env={"GITHUB_STEP_SUMMARY": "{dir}/summary"}, stdout=("acme/shop", "  main ")),
    case("output", "summary-unwritable", "status --json", "promote: warning: cannot write the job summary to /dev/full: ", code=0, env={"GITHUB_STEP_SUMMARY": "/dev/full"}, stdout=('"repository": "acme/shop"',)),
    case("output", "summary-a-directory-for-next", "next --dry-run", "promote: warning: cannot write the job summary to {dir}/summary: Is a directory", code=0, files=SUMMARY_DIR, env={"GITHUB_STEP_SUMMARY": "{dir}/summary"}, stdout=("nothing to do",)),
]  # fmt: skip

PLANS = [
    # One broken plan file stops nothing: status names it and exits 0, next goes on.
    *(case("plans", f"status-{name}", "status", None, code=0, box=f"plan-{name}", stdout=(f"  plan x: {PLAN_PROBLEMS[name]}",)) for name in BAD_PLANS),
    case("plans", "next-yaml", "next", None, code=0, box="plan-yaml-next", writes=GATE_WRITES),
    *(
        case("plans", f"lint-{name}", "plans/doing/x.md", PLAN_PROBLEMS[name], script="promote-plan-lint", files={"plans/doing/x.md": text})
        for name, text in BAD_PLANS.items()
    ),
]  # fmt: skip

ESCAPES = [
    case("escapes", "status", "status", None, code=0, box="evil", stdout=("plan add\\x1b[31mgreeting\\x202e",)),
    case("escapes", "status-json", "status --json", None, code=0, box="evil", stdout=('"add\\u001b[31mgreeting\\u202e"',)),
    case("escapes", "next-dry-run", "next --dry-run", None, code=0, box="evil", stdout=("R4 dev: deployed → validating",)),
    case("escapes", "gate", "gate --pr 3", None, code=0, box="evil", stdout=("#3 at ", "plan add\\x1b[31mgreeting\\x202e", ", already")),
    case("escapes", "gate-json", "gate --json", None, code=0, box="evil", stdout=('"description": "one plan at a time: plan add\\u001b[31mgreeting\\u202e',)),
    case("escapes", "rollback-dry-run", "rollback --env dev --dry-run", None, code=0, box="failed", stdout=("reason: dev is failed: promote/dev failure: deploy \\x1b[31mfailed\\x202e\\x0d",)),
    case("escapes", "rollback-dry-run-json", "rollback --env dev --dry-run --json", None, code=0, box="failed", stdout=('"reason": "dev is failed: promote/dev failure: deploy \\u001b[31mfailed\\u202e\\r"',)),
]  # fmt: skip

R4_WRITES = {"POST /repos/{owner}/{repo}/statuses/{sha}": 3, **Counter(LOCK_WRITES)}
PLUGINS_CASES = [
    plugin("fails-to-import", HOOK + "import no_such_module_xyz\n", "plugin {dir}/plugins/team.py failed to load: ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    plugin("syntax-error", "def (:\n", "plugin {dir}/plugins/team.py failed to load: SyntaxError: invalid syntax"),
    plugin("exits-on-import", "raise SystemExit(3)\n", "plugin {dir}/plugins/team.py failed to load: SystemExit: 3"),
    plugin("raises-a-base-exception-on-import", "raise BaseException('odd')\n", "plugin {dir}/plugins/team.py failed to load: BaseException: odd"),
    plugin("wrong-signature", HOOK + "@hookimpl\ndef register_validators(register, settings, colour):\n    pass\n", "plugin plugins/team.py: Plugin 'plugins/team.py' for hook 'register_validators'"),
    plugin("misspelt-hook", HOOK + "@hookimpl\ndef register_validator(register):\n    pass\n", "plugin plugins/team.py: unknown hook 'register_validator'"),
    plugin("register-raises", HOOK + "@hookimpl\ndef register_validators(register):\n    raise RuntimeError('no licence server')\n", "plugin plugins/team.py failed in register_validators: RuntimeError: no licence server"),
    plugin("register-exits", HOOK + "@hookimpl\ndef register_validators(register):\n    raise SystemExit('bye')\n", "plugin plugins/team.py failed in register_validators: SystemExit: bye"),
    plugin("registers-a-taken-name", HOOK + "class V:\n    name = 'http-health'\n    option_types = {}\n    def start(self, run):\n        pass\n    def check(self, run):\n        pass\n@hookimpl\ndef register_validators(register):\n    register(V())\n", "validator 'http-health' is registered twice: by validators and by plugins/team.py"),
    case("plugins", "transition-hook-raises", "next", error("plugin plugins/notify.py failed in promote_transition: ConnectionError: chat is down (R4 dev was taken all the same)"), box="notify", writes=R4_WRITES, statuses=(("head_dev", "promote/dev", "pending"),)),
    case("plugins", "check-raises-next", "next", None, code=3, box="boom-next", stdout=("R6 dev: validating → failed", "promote/dev/boom = error on {head_dev_7}"), writes=R4_WRITES, statuses=(("head_dev", "promote/dev/boom", "error"), ("head_dev", "promote/dev", "failure"))),
    case("plugins", "check-raises-status", "status", None, code=0, box="boom-status", stdout=("boom:✗", "  test  ", "  main  ", "R6: validating → failed")),
    case("plugins", "check-exits-status", "status", None, code=0, box="boom-exit", stdout=("boom:✗", "  test  ", "  main  ", "R6: validating → failed")),
]  # fmt: skip

BUSY = error("another promote run holds the lock (since 2026-01-01T00:00:00Z by " + HOLDER + "); it goes on from where that one stops")  # fmt: skip
LOCK = [
    case("lock", "next-leaves-the-work-to-the-holder", "next", BUSY.replace("promote: error: ", "promote: "), code=0, box="locked-next", writes=LOCK_TRIES),
    case("lock", "gate-leaves-the-work-to-the-holder", "gate --pr 1", BUSY.replace("promote: error: ", "promote: "), code=0, box="locked-gate", writes=LOCK_TRIES),
    case("lock", "approve-says-so", "approve --env dev", BUSY, box="waiting-locked", env={"GITHUB_TOKEN": "{token_rita}"}),
    case("lock", "reject-says-so", "reject --env dev --reason broken", BUSY, box="waiting-locked", env={"GITHUB_TOKEN": "{token_rita}"}),
]  # fmt: skip

FAMILIES = {
    "config": CONFIG, "environ": ENVIRON, "git": GIT, "cli": CLI, "output": OUTPUT,
    "plans": PLANS, "escapes": ESCAPES, "plugins": PLUGINS_CASES, "lock": LOCK,
}  # fmt: skip
CASES = [c for cases in FAMILIES.values() for c in cases]


# -- running them -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one case's run left behind, and where it ran."""

    done: subprocess.CompletedProcess[str]
    path: Path
    git_before: str | None
    git_after: str | None


@dataclasses.dataclass
class Started:
    """A box's running sandbox, its placeholders and its write counter before the cases."""

    sandbox: Sandbox
    api: Api
    context: dict[str, str]
    before: Counter[str]
    after: Counter[str] = dataclasses.field(default_factory=Counter)


def git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=path, capture_output=True, text=True, check=True)
    return done.stdout


def git_state(path: Path, fetches: bool) -> str | None:
    """The clone's refs, HEAD and status: what a run must leave as it found them."""
    if not (path / ".git").exists():
        return None
    refs = [
        line
        for line in git(path, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
        if not (fetches and line.startswith("refs/remotes/"))
    ]
    head = subprocess.run(
        ["git", "symbolic-ref", "-q", "HEAD"], cwd=path, capture_output=True, text=True, check=False
    ).stdout + git(path, "rev-parse", "HEAD")
    status = git(path, "status", "--porcelain", "--untracked-files=all", "--ignored")
    return "\n".join([*refs, head, status])


def workdir(case: Case, box: Box, started: Started, root: Path) -> Path:
    """The case's working directory, as ``where`` says, holding the box's and the case's files."""
    bare = str(started.sandbox.bare_path)
    path = root / "work"
    if case.where == "plain":
        path.mkdir()
        (path / "promote.toml").write_text(REVIEWERS)
    elif case.where == "shallow":
        git(root, "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{bare}", str(path))
    elif case.where == "stranger":
        path.mkdir()
        git(path, "init", "-q", "-b", "main")
        git(path, "commit", "-q", "--allow-empty", "-m", "another project")
        git(path, "remote", "add", "origin", str(root / "gone.git"))
    else:
        git(root, "clone", "-q", bare, str(path))
        if case.where == "detached":
            git(path, "checkout", "-q", "--detach", "HEAD")
    for name, content in {**box.files, **case.files}.items():
        target = path / name
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def environ(case: Case, started: Started, context: Mapping[str, str]) -> dict[str, str]:
    """The sandbox's environment and the case's, on top of console's clean one."""
    merged: dict[str, str | None] = {**started.sandbox.env(), "PROMOTE_DEBUG": "0"}
    merged.update({k: None if v is None else v.format_map(context) for k, v in case.env.items()})
    return console.clean_environ({k: v for k, v in merged.items() if v is not None})


def script(name: str) -> str:
    return str(Path(console.SCRIPT).with_name(name))


def launch(case: Case, path: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = [script(case.script), *args]
    if case.reader == "pipe":
        return subprocess.run(command, cwd=path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)  # fmt: skip
    read, write = os.pipe()
    if case.reader == "closed":
        os.close(read)  # the reader is gone before the first byte
    with subprocess.Popen(command, cwd=path, env=env, stdout=write, stderr=subprocess.PIPE, text=True) as process:  # fmt: skip
        os.close(write)
        if case.reader == "one-byte":
            with os.fdopen(read, "rb") as reader:
                first = reader.read(1)  # then gone, as `| head -c1`
            assert first, "the run printed nothing"
        try:
            _, stderr = process.communicate(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
        return subprocess.CompletedProcess(command, process.returncode, "", stderr)


def perform(case: Case, box: Box, started: Started, root: Path) -> Outcome:
    path = workdir(case, box, started, root)
    context = {**started.context, "dir": str(path)}
    args = [word.format_map(context) for word in shlex.split(case.args)]
    before = git_state(path, case.fetches)
    try:
        done = launch(case, path, environ(case, started, context), args)
    except subprocess.TimeoutExpired as e:
        done = subprocess.CompletedProcess(e.cmd, -9, "", f"(no answer within {TIMEOUT:g} s)")
    return Outcome(done, path, before, git_state(path, case.fetches))


class HtmlServer(http.server.BaseHTTPRequestHandler):
    """Answers every request with a sign-in page, as a proxy or a wrong host does."""

    def do_GET(self) -> None:
        body = b"<html><body>Please sign in</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def selected(request: pytest.FixtureRequest) -> list[Case]:
    """The cases of this module's tests that this session (or xdist worker) runs."""
    ids = {
        str(getattr(item.callspec.params["case"], "id", ""))
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.module is request.module
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    }
    return [c for c in CASES if c.id in ids]


@dataclasses.dataclass
class Catalogue:
    outcomes: dict[str, Outcome]
    boxes: dict[str, Started]
    context: dict[str, dict[str, str]]  # per case: its placeholders


@pytest.fixture(scope="module")
def catalogue(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Catalogue]:
    """Every selected case run (``-k`` runs only those, with only the sandboxes they need)."""
    chosen = selected(request)
    needed = {c.box for c in chosen}
    html = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlServer)
    threading.Thread(target=html.serve_forever, daemon=True).start()
    common = {"html": f"http://127.0.0.1:{html.server_port}", "closed": str(closed_port())}
    boxes: dict[str, Started] = {}
    try:
        for box in (b for b in BOXES if b.name in needed):
            sandbox = start(tmp_path_factory.mktemp(f"box-{box.name}"), scenario=box.scenario, step_ms=0)  # fmt: skip
            api = Api(sandbox, sandbox.author_token)
            boxes[box.name] = Started(sandbox, api, {}, Counter())
            for name, text in box.files.items():
                target = sandbox.clone_path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            if box.setup is not None:
                box.setup(sandbox, api)
            heads = {f"head_{env}": api.head(env) for env in ("dev", "test")}
            boxes[box.name].context = {
                **common, **heads, **{f"{k}_7": v[:7] for k, v in heads.items()},
                **{f"token_{login}": user["token"] for login, user in sandbox.users.items()},
            }  # fmt: skip
            boxes[box.name].before = api.writes()
        by_box = {box.name: box for box in BOXES}
        # The slow ones first: they wait for a lock (15 s) or write.
        order = sorted(chosen, key=lambda c: (c.box == "seeded", c.id))
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {
                c.id: pool.submit(
                    perform, c, by_box[c.box], boxes[c.box], tmp_path_factory.mktemp("case")
                )
                for c in order
            }
            outcomes = {name: future.result() for name, future in futures.items()}
        for started in boxes.values():
            started.after = started.api.writes()
        yield Catalogue(outcomes, boxes, {c.id: boxes[c.box].context for c in chosen})
    finally:
        html.shutdown()
        html.server_close()
        for started in boxes.values():
            started.sandbox.stop()


class TooManyLines(AssertionError):
    """stderr has more than the one line the promise allows (the check a known defect fails)."""


def tokens(catalogue: Catalogue, case: Case, context: Mapping[str, str]) -> list[str]:
    """Every token that must never be shown: all sandboxes' users', and the case's own."""
    found = [FAKE_TOKEN]
    for started in catalogue.boxes.values():
        found += [user["token"] for user in started.sandbox.users.values()]
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        given = (case.env.get(name) or "").format_map(context)
        found += [given, *given.split()]
    return [t for t in found if len(t) >= 8]


def judge(case: Case, catalogue: Catalogue) -> None:
    outcome = catalogue.outcomes[case.id]
    done = outcome.done
    context = {**catalogue.context[case.id], "dir": str(outcome.path)}
    started = catalogue.boxes[case.box]
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown, done.stderr
    assert done.returncode == case.code, (done.returncode, done.stdout[-2000:], done.stderr)
    for secret in tokens(catalogue, case, context):
        assert secret not in shown, f"a token is shown: {shown!r}"
    raw = CONTROL.search(shown)
    assert raw is None, f"a raw control character {raw.group()!r} is shown: {shown!r}"
    if case.code == 1:  # an error says only its line (3, 4 and 8 are outcomes, with output)
        assert done.stdout == "", done.stdout
    for fragment in case.stdout:
        assert fragment.format_map(context) in done.stdout, done.stdout
    wrote = started.after - started.before
    assert wrote == Counter(case.writes), f"GitHub writes in {case.box}: {dict(wrote)}"
    for head, context_name, state in case.statuses:
        latest = started.api.latest(context[head], context_name)
        assert latest is not None, f"no {context_name} on {head}"
        assert latest["state"] == state, latest
    assert outcome.git_before == outcome.git_after, "the clone's refs or status changed"
    lines = done.stderr.splitlines()
    if case.stderr is None:
        assert lines == [], done.stderr
        return
    expected = case.stderr.format_map(context)
    assert expected in done.stderr, done.stderr
    if len(lines) != 1:
        raise TooManyLines(f"{len(lines)} lines on stderr:\n{done.stderr}")
    assert expected in lines[0], lines[0]


def params() -> list[Any]:
    return [
        pytest.param(
            c,
            id=c.id,
            marks=[pytest.mark.xfail(raises=TooManyLines, reason=c.known)] if c.known else [],
        )
        for c in CASES
    ]


@pytest.mark.parametrize("case", params())
def test_bad_input(case: Case, catalogue: Catalogue) -> None:
    judge(case, catalogue)


def test_the_catalogue_covers_every_family() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES), "case ids are unique"
    assert all(len(cases) >= 3 for cases in FAMILIES.values()), {k: len(v) for k, v in FAMILIES.items()}  # fmt: skip
    boxes = {box.name for box in BOXES}
    assert {c.box for c in CASES} <= boxes
    writers = Counter(c.box for c in CASES if c.writes)
    sharers = Counter(c.box for c in CASES)
    assert all(sharers[box] == 1 for box in writers), "a case that writes has its box alone"
