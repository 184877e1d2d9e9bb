"""The built-in plan stores against the sandbox: ``files`` (markdown under plans/ on dev,
changed by bookkeeping commits) and ``issues`` (labelled issues). Creating and completing are
idempotent, and completing a plan completes its parents once all their children are done."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from promote_sandbox import Scenario
from promote_tasks.model import Plan
from promote_tasks.model import State
from tests import console
from tests.e2e.conftest import BOOKKEEPING
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config
from tests.e2e.conftest import front_matter
from tests.e2e.conftest import one_env

MakeDriver = Callable[..., Driver]


def plan_file(plan_id: str, parent: str | None = None, priority: int = 2) -> str:
    extra = f"parent: {parent}\n" if parent else ""
    return (
        f"---\nid: {plan_id}\ntitle: {plan_id.title()}\npriority: {priority}\n{extra}---\n\nWork.\n"
    )


class Store:
    """The configured plan store, called the way the shell calls it."""

    def __init__(self, driver: Driver) -> None:
        self.run = driver.run
        self.store = driver.run.plan_store

    def plans(self) -> dict[str, Plan]:
        github = self.run.github
        return {p.id: p for p in github.run(self.store.plans(self.run.settings, github))}

    def complete(self, *plan_ids: str) -> tuple[str, ...]:
        github = self.run.github
        return github.run(self.store.complete(self.run.settings, github, plan_ids))

    def create(self, plan: Plan, body: str = "Why and what.") -> Plan:
        github = self.run.github
        return github.run(self.store.create(self.run.settings, github, plan, body))

    def complete_with(self, plan_id: str, fix: str) -> tuple[str, ...]:
        github = self.run.github
        return github.run(
            self.store.complete(self.run.settings, github, (plan_id,), {plan_id: fix})
        )

    def reopen(self, plan_id: str, reason: str) -> tuple[str, ...]:
        github = self.run.github
        return github.run(self.store.reopen(self.run.settings, github, (plan_id,), reason))


def statuses(store: Store) -> dict[str, str]:
    return {i: p.status for i, p in store.plans().items()}


# -- files -------------------------------------------------------------------------------


@pytest.fixture
def files(make_driver: MakeDriver) -> tuple[Driver, Store]:
    """A plan tree on dev: roadmap > epic > (add-greeting, copy-edit done); side > (other, later)."""
    driver = make_driver(Scenario())
    driver.api.commit(
        "dev",
        f"plans: a plan tree\n\n{BOOKKEEPING}true\n",
        {
            "plans/doing/add-greeting.md": plan_file("add-greeting", "epic"),
            "plans/doing/epic.md": plan_file("epic", "roadmap"),
            "plans/doing/roadmap.md": plan_file("roadmap", priority=1),
            "plans/done/copy-edit.md": plan_file("copy-edit", "epic"),
            "plans/doing/side.md": plan_file("side"),
            "plans/doing/other.md": plan_file("other", "side"),
            "plans/inbox/later.md": plan_file("later", "side"),
        },
    )
    return driver, Store(driver)


def test_files_completion_moves_each_parent_whose_children_are_all_done(
    files: tuple[Driver, Store],
) -> None:
    driver, store = files
    api = driver.api
    assert statuses(store) == {
        "add-greeting": "doing", "copy-edit": "done", "epic": "doing", "later": "inbox",
        "other": "doing", "roadmap": "doing", "side": "doing",
    }  # fmt: skip
    assert store.plans()["epic"].parent == "roadmap"
    setup = api.head("dev")
    runs = api.state()["runs"]

    assert store.complete("add-greeting") == ("add-greeting", "epic", "roadmap")
    commits = api.commits("dev", 3)
    assert commits[1]["sha"] == setup, "one commit for the whole move"
    message = commits[0]["commit"]["message"]
    assert message.startswith("plans: complete add-greeting, epic, roadmap")
    assert f"{BOOKKEEPING}{setup}" in message
    moved = api.get(f"/commits/{commits[0]['sha']}")["files"]
    assert sorted((f.get("previous_filename"), f["filename"]) for f in moved) == [
        (f"plans/doing/{i}.md", f"plans/done/{i}.md") for i in ("add-greeting", "epic", "roadmap")
    ]
    assert api.file("plans/done/epic.md", "dev") == plan_file("epic", "roadmap")

    # Again: nothing to move, nothing written.
    before = api.writes()
    assert store.complete("add-greeting") == ()
    assert store.complete("epic") == ()
    assert api.writes() == before
    assert api.head("dev") == commits[0]["sha"]

    # A parent with an unfinished child (later is still in the inbox) stays where it is.
    assert store.complete("other") == ("other",)
    assert statuses(store) == {
        "add-greeting": "done", "copy-edit": "done", "epic": "done", "later": "inbox",
        "other": "done", "roadmap": "done", "side": "doing",
    }  # fmt: skip

    # Plan bookkeeping deploys nothing.
    driver.sandbox.settle()
    assert api.state()["runs"] == runs


def test_files_create_is_idempotent_and_unknown_plans_are_skipped(
    files: tuple[Driver, Store],
) -> None:
    driver, store = files
    api = driver.api
    fix = Plan("fix-dev-1234567", "Fix dev", "inbox", 0, None, "dev@" + "1" * 40)
    assert store.create(fix).status == "inbox"
    text = api.file("plans/inbox/fix-dev-1234567.md", "dev")
    assert text is not None
    assert text.startswith("---\nid: fix-dev-1234567\ntitle: Fix dev\npriority: 0\n")
    assert f"fix_key: dev@{'1' * 40}\n" in text
    assert front_matter(text) == {
        "id": "fix-dev-1234567", "title": "Fix dev", "priority": 0, "fix_key": f"dev@{'1' * 40}",
    }  # fmt: skip
    (commit,) = api.commits("dev", 1)
    assert f"{BOOKKEEPING}{commit['parents'][0]['sha']}" in commit["commit"]["message"]
    before = api.writes()
    assert store.create(fix).id == fix.id
    assert api.writes() == before
    assert store.plans()[fix.id] == fix
    # A plan with no file is reported by status, never an error that stops every run.
    assert store.complete("nope") == ()
    assert api.writes() == before


# What YAML needs quoted: ': ', ' #', a leading '-' or quote, and text it would read otherwise.
HARD_TITLE = '- Fix dev: "it\'s" #12 — café, yes'
HARD_REASON = "rolled back: dev went back to 7654321 (revert #3)"


def test_files_store_writes_valid_yaml_and_reads_back_exactly_what_it_wrote(
    files: tuple[Driver, Store],
) -> None:
    driver, store = files
    api = driver.api
    fix = Plan("fix-dev-7654321", HARD_TITLE, "inbox", 0, "epic", "dev@" + "7" * 40,
               ("add-greeting", "other"))  # fmt: skip
    store.create(fix)
    text = api.file("plans/inbox/fix-dev-7654321.md", "dev") or ""
    assert front_matter(text) == {
        "id": fix.id, "title": HARD_TITLE, "priority": 0, "parent": "epic",
        "fix_key": fix.fix_key, "failed_plans": ["add-greeting", "other"],
    }  # fmt: skip
    assert store.plans()[fix.id] == fix, "the store reads back what it wrote"

    # Completing a failed plan with its fix and returning another keep the files valid YAML.
    assert store.complete_with("other", fix.id) == ("other",)
    done = api.file("plans/done/other.md", "dev") or ""
    assert front_matter(done) == {
        "id": "other", "title": "Other", "priority": 2, "parent": "side",
        "completed_with": fix.id,
    }  # fmt: skip
    assert store.reopen("add-greeting", HARD_REASON) == ("add-greeting",)
    back = api.file("plans/inbox/add-greeting.md", "dev") or ""
    assert front_matter(back)["returned"] == HARD_REASON
    assert store.plans()["add-greeting"].returned == HARD_REASON
    assert back.endswith("---\n\nWork.\n"), "the body is kept"

    # The fix plan moves on to done as it is, title and all.
    assert store.complete_with(fix.id, fix.id)[0] == fix.id
    moved = api.file(f"plans/done/{fix.id}.md", "dev") or ""
    assert front_matter(moved)["title"] == HARD_TITLE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"id: x\n", "plans/doing/x.md: plan files start with a '---' front-matter block"),
        (b"---\nid: x\ntitle: caf\xe9\npriority: 1\n---\n", "plans/doing/x.md: not UTF-8 text"),
        (
            b"---\nid: x\ntitle: Fix dev: it failed\npriority: 1\n---\n",
            "plans/doing/x.md:3: the front-matter is not valid YAML (mapping values are not "
            "allowed here; a value with ': ' in it needs quotes, e.g. title: 'Fix test: a failure')",
        ),
    ],
    ids=["malformed", "not-utf-8", "not-yaml"],
)
def test_a_bad_plan_file_is_reported_and_stops_nothing_else(
    files: tuple[Driver, Store], text: bytes, message: str
) -> None:
    driver, store = files
    api = driver.api
    blob = api.post(
        "/git/blobs", {"content": base64.b64encode(text).decode(), "encoding": "base64"}
    )
    parent = api.head("dev")
    tree = api.post(
        "/git/trees",
        {
            "base_tree": api.get(f"/git/commits/{parent}")["tree"]["sha"],
            "tree": [
                {"path": "plans/doing/x.md", "mode": "100644", "type": "blob", "sha": blob["sha"]}
            ],
        },
    )
    commit = api.post(
        "/git/commits",
        {"message": f"plans: x\n\n{BOOKKEEPING}true\n", "tree": tree["sha"], "parents": [parent]},
    )
    assert (
        api.call("PATCH", f"{api.repo_path}/git/refs/heads/dev", {"sha": commit["sha"]})[0] == 200
    )
    before = api.writes()
    # One broken file, even one nobody needs now, must not stop status or next (issue 10).
    broken = store.plans()["x"]
    assert (broken.status, broken.problem) == ("doing", message)
    state = driver.run.decide(driver.run.snapshot())[0]
    assert state.plan_problems == (("x", message),)
    done = console.promote("status", "--json", cwd=driver.clone, env=driver.run.environ)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["plan_problems"] == [{"plan": "x", "problem": message}]
    text_view = console.promote("status", cwd=driver.clone, env=driver.run.environ)
    assert f"  plan x: {message}" in text_view.stdout.splitlines()
    assert api.writes() == before, "status writes nothing"
    done = console.promote("next", cwd=driver.clone, env=driver.run.environ)
    assert (done.returncode, done.stderr) == (0, ""), "next goes on (here: the open PR's gate)"
    # What needs other plans goes on: add-greeting completes; the broken file stays put.
    assert store.complete("add-greeting")[0] == "add-greeting"  # (its parents come along)
    assert api.call("GET", f"{api.repo_path}/contents/plans/doing/x.md?ref=dev")[0] == 200


# -- issues ------------------------------------------------------------------------------


def labels(issue: dict[str, Any]) -> set[str]:
    return {label["name"] for label in issue["labels"]}


def test_issues_store_create_and_complete_are_idempotent(make_driver: MakeDriver) -> None:
    driver = make_driver(Scenario(), config(extra='plan_store = "issues"\n'))
    api, store = driver.api, Store(driver)
    epic = store.create(Plan("epic", "An epic", priority=1))
    store.create(Plan("part-a", "Part A", parent="epic"))
    store.create(Plan("part-b", "Part B", parent="epic"))
    before = api.writes()
    assert store.create(Plan("epic", "An epic", priority=1)) == epic
    assert api.writes() == before
    issues = {i["title"]: i for i in api.issues("plan")}
    assert sorted(issues) == ["An epic", "Part A", "Part B"]
    assert labels(issues["An epic"]) == {"plan", "plan:inbox", "priority:1"}
    assert "Parent: epic" in issues["Part A"]["body"]
    assert statuses(store) == {"epic": "inbox", "part-a": "inbox", "part-b": "inbox"}

    assert store.complete("part-a") == ("part-a",)
    issues = {i["title"]: i for i in api.issues("plan")}
    assert issues["Part A"]["state"] == "closed"
    assert labels(issues["Part A"]) == {"plan", "plan:done", "priority:2"}
    assert issues["An epic"]["state"] == "open"
    before = api.writes()
    assert store.complete("part-a") == ()
    assert api.writes() == before

    assert store.complete("part-b") == ("part-b", "epic")
    assert statuses(store) == {"epic": "done", "part-a": "done", "part-b": "done"}
    assert {i["state"] for i in api.issues("plan")} == {"closed"}
    before = api.writes()
    assert store.complete("nope") == ()
    assert api.writes() == before


def test_issues_store_reads_back_exactly_what_it_wrote(make_driver: MakeDriver) -> None:
    driver = make_driver(Scenario(), config(extra='plan_store = "issues"\n'))
    store = Store(driver)
    fix = Plan("fix-dev-7654321", HARD_TITLE, "inbox", 0, None, "dev@" + "7" * 40,
               ("add-greeting",))  # fmt: skip
    store.create(Plan("add-greeting", "Add a greeting: hello", priority=1))
    store.create(fix)
    assert store.plans()[fix.id] == fix
    assert store.complete_with("add-greeting", fix.id) == ("add-greeting",)
    assert store.plans()["add-greeting"].completed_with == fix.id
    assert store.reopen("add-greeting", HARD_REASON) == ("add-greeting",)
    assert store.plans()["add-greeting"] == Plan(
        "add-greeting", "Add a greeting: hello", "inbox", 1, completed_with=fix.id,
        returned=HARD_REASON,
    )  # fmt: skip


@pytest.mark.transition("R8")
def test_completion_in_production_closes_the_plan_issue(make_driver: MakeDriver) -> None:
    settings = one_env("main", ("health", "smoke"), 'plan_store = "issues"\n')
    driver = make_driver(Scenario(merge_bot=True, environments=("main",)), settings)
    store = Store(driver)
    store.create(Plan("add-greeting", "Add a greeting to the app"))
    driver.sandbox.settle()
    assert [s.action.transition for s in driver.until_rest()] == ["R4", "R5", "R8", None]
    assert driver.steps[-2].did == ("completed plan add-greeting",)
    (issue,) = driver.api.issues("plan")
    assert issue["state"] == "closed"
    assert "plan:done" in labels(issue)
    assert driver.run.decide(driver.steps[-1].snapshot)[0].env("main").state is State.COMPLETE
