"""Built-in plan stores: ``files`` (``plans/{inbox,doing,done}/<id>.md`` on the first
environment's branch, one bookkeeping commit per change) and ``issues`` (labelled issues)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from promote_tasks.config import Settings
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.hookspecs import hookimpl
from promote_tasks.model import Plan
from promote_tasks.plans import KEEP
from promote_tasks.plans import STATUS_DIRS
from promote_tasks.plans import PlanFile
from promote_tasks.plans import completion
from promote_tasks.plans import plan_or_problem
from promote_tasks.plans import render_plan
from promote_tasks.plans import with_front_matter
from promote_tasks.registry import GitHubPort
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Register


def _branch(settings: Settings) -> str:
    return settings.plans_branch


T = TypeVar("T")
RACE_TRIES = 3


async def _raced(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run a read-then-commit again when the branch moved between the two (another run, or a
    merge, committed first: "Update is not a fast forward"): the next read sees what it did."""
    for tries in range(1, RACE_TRIES + 1):
        try:
            return await attempt()
        except GitHubError as e:
            if e.status != 422 or "fast forward" not in str(e) or tries == RACE_TRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _text(github: GitHubPort, path: str, sha: str) -> str | PromoteError:
    """A plan file's text, or why it cannot be read as text (named, not raised)."""
    try:
        return str(await github.blob(sha, path))
    except PromoteError as e:
        if isinstance(e, GitHubError):
            raise  # GitHub's trouble is the read's, not this file's
        return e


DONE = "done"


class Files:
    name = "files"
    writes_commits = True  # its bookkeeping commits under plans_dir start no instance

    async def _paths(self, settings: Settings, github: GitHubPort) -> dict[str, tuple[str, str]]:
        """plan id -> (path, blob sha) for every plan file on the plans branch."""
        prefix = settings.plans_dir.strip("/") + "/"
        found: dict[str, tuple[str, str]] = {}
        listed = await github.tree(_branch(settings), conditional=True, within=prefix)
        for entry in listed:
            path = entry["path"]
            parts = path[len(prefix) :].split("/")
            if (
                entry["type"] == "blob"
                and path.startswith(prefix)
                and path.endswith(".md")
                and len(parts) == 2
                and parts[0] in STATUS_DIRS
            ):
                found[parts[1][:-3]] = (path, entry["sha"])
        return found

    async def plans(self, settings: Settings, github: GitHubPort) -> tuple[Plan, ...]:
        paths = await self._paths(settings, github)
        # Done plans are known by their path alone; only open ones are read (they are few).
        open_ids = [i for i, (path, _) in paths.items() if f"/{DONE}/" not in path]
        texts = await asyncio.gather(*(_text(github, *paths[i]) for i in open_ids))
        read = {i: plan_or_problem(t, paths[i][0], i) for i, t in zip(open_ids, texts, strict=True)}
        return tuple(read.get(i) or Plan(i, status="done") for i in sorted(paths))

    async def create(self, settings: Settings, github: GitHubPort, plan: Plan, body: str) -> Plan:
        return await _raced(lambda: self._create(settings, github, plan, body))

    async def _create(self, settings: Settings, github: GitHubPort, plan: Plan, body: str) -> Plan:
        paths = await self._paths(settings, github)
        if plan.id in paths:
            return plan
        path = f"{settings.plans_dir.strip('/')}/inbox/{plan.id}.md"
        await github.commit_changes(
            _branch(settings), f"plans: file {plan.id}", {path: render_plan(plan, body)}
        )
        return Plan(plan.id, plan.title, "inbox", plan.priority, plan.parent, plan.fix_key)

    async def complete(
        self,
        settings: Settings,
        github: GitHubPort,
        plan_ids: tuple[str, ...],
        completed_with: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        notes = completed_with or {}
        return await self._move(
            settings, github, plan_ids, "done", "complete",
            lambda ids: completion(tuple(f.plan for f in ids.values()), plan_ids),
            lambda plan_id: {"completed_with": notes[plan_id]} if plan_id in notes else {},
        )  # fmt: skip

    async def reopen(
        self, settings: Settings, github: GitHubPort, plan_ids: tuple[str, ...], reason: str
    ) -> tuple[str, ...]:
        return await self._move(
            settings, github, plan_ids, "inbox", "return",
            lambda ids: tuple(i for i in plan_ids if i in ids and ids[i].plan.status != "inbox"),
            lambda plan_id: {"returned": reason},
        )  # fmt: skip

    async def _move(
        self,
        settings: Settings,
        github: GitHubPort,
        plan_ids: tuple[str, ...],
        status: str,
        verb: str,
        choose: Callable[[dict[str, PlanFile]], tuple[str, ...]],
        changes: Callable[[str], dict[str, str]],
    ) -> tuple[str, ...]:
        """Move the chosen plan files to ``<plans_dir>/<status>/`` in one bookkeeping commit
        (again from the top if the branch moved under it: then the move may be done already)."""
        return await _raced(
            lambda: self._move_once(settings, github, plan_ids, status, verb, choose, changes)
        )

    async def _move_once(
        self,
        settings: Settings,
        github: GitHubPort,
        plan_ids: tuple[str, ...],
        status: str,
        verb: str,
        choose: Callable[[dict[str, PlanFile]], tuple[str, ...]],
        changes: Callable[[str], dict[str, str]],
    ) -> tuple[str, ...]:
        """One try of :meth:`_move`.

        A folder a plan leaves keeps a ``.gitkeep``: were its last file to move, git would
        see the folder renamed, and an open PR adding a plan there would no longer merge.
        """
        root = settings.plans_dir.strip("/")
        paths = await self._paths(settings, github)
        # Done plans are known by their path alone: only the open ones are read.
        open_ids = [i for i, (path, _) in paths.items() if f"/{DONE}/" not in path]
        texts = await asyncio.gather(*(_text(github, *paths[i]) for i in open_ids))
        text_of = dict(zip(open_ids, texts, strict=True))
        files = {
            i: PlanFile(
                paths[i][0],
                plan_or_problem(text_of[i], paths[i][0], i)
                if i in text_of
                else Plan(i, status=DONE),
                "",
            )
            for i in paths
        }
        moved = tuple(i for i in choose(files) if i in text_of)
        if not moved:
            return ()
        listed = await github.tree(_branch(settings), within=settings.plans_dir)
        blobs = {e["path"] for e in listed if e["type"] == "blob"}
        updates: dict[str, str | None] = {}
        for moved_id in moved:
            old = files[moved_id].path
            text = text_of[moved_id]
            if isinstance(text, PromoteError):
                continue  # not readable as text: leave it where it is, status names it
            updates[old] = None
            if changes(moved_id) and files[moved_id].plan.problem is None:
                text = with_front_matter(text, old, **changes(moved_id))
            updates[f"{root}/{status}/{moved_id}.md"] = text
        for folder in {files[i].path.rsplit("/", 1)[0] for i in moved}:
            left = {b for b in blobs if b.startswith(folder + "/")} - set(updates)
            if not left:
                updates[f"{folder}/{KEEP}"] = ""
        await github.commit_changes(
            _branch(settings), f"plans: {verb} " + ", ".join(moved), updates
        )
        return moved


# An issue plan is labelled ``plan`` and ``plan:<status>``; its keys are ``Key: value`` lines.
ISSUE_KEY = re.compile(
    r"^(Plan-Id|Priority|Parent|Fix-Key|Failed-Plans|Completed-With|Returned):\s*(.*)$",
    re.MULTILINE,
)


class Issues:
    name = "issues"

    async def _issues(self, github: GitHubPort) -> list[dict[str, Any]]:
        return list(await github.issues("plan"))

    @staticmethod
    def _plan(issue: dict[str, Any]) -> Plan:
        fields = dict(ISSUE_KEY.findall(issue.get("body") or ""))
        labels = {label["name"] for label in issue.get("labels", [])}
        status = next((s for s in ("done", "doing", "inbox") if f"plan:{s}" in labels), "inbox")
        if issue.get("state") == "closed":
            status = "done"
        failed = fields.get("Failed-Plans", "")
        priority = fields.get("Priority", "").strip() or "2"
        problem = None
        if not re.fullmatch(r"-?[0-9]+", priority):
            problem = f"plan issue #{issue['number']}: Priority: {priority!r} is not a whole number"
            priority = "2"
        return Plan(
            fields.get("Plan-Id", str(issue["number"])).strip(),
            issue.get("title") or "",
            status,
            int(priority),
            fields.get("Parent", "").strip() or None,
            fields.get("Fix-Key", "").strip() or None,
            tuple(p.strip() for p in failed.split(",") if p.strip()),
            fields.get("Completed-With", "").strip() or None,
            fields.get("Returned", "").strip() or None,
            problem,
        )

    async def plans(self, settings: Settings, github: GitHubPort) -> tuple[Plan, ...]:
        return tuple(self._plan(i) for i in await self._issues(github))

    async def create(self, settings: Settings, github: GitHubPort, plan: Plan, body: str) -> Plan:
        async def look() -> Plan | None:
            found = (self._plan(issue) for issue in await self._issues(github))
            return next((p for p in found if p.id == plan.id), None)

        async def write() -> Plan:
            lines = [f"Plan-Id: {plan.id}", f"Priority: {plan.priority}"]
            lines += [f"Parent: {plan.parent}"] if plan.parent else []
            lines += [f"Fix-Key: {plan.fix_key}"] if plan.fix_key else []
            lines += [f"Failed-Plans: {', '.join(plan.failed_plans)}"] if plan.failed_plans else []
            await github.create_issue(
                plan.title or plan.id,
                body + "\n\n" + "\n".join(lines) + "\n",
                ["plan", "plan:inbox", f"priority:{plan.priority}"],
            )
            return Plan(plan.id, plan.title, "inbox", plan.priority, plan.parent, plan.fix_key)

        # Never sent twice: an answer lost after GitHub made the issue is found by a look.
        created: Plan = (await github.write_once(look, write))[0]
        return created

    async def complete(
        self,
        settings: Settings,
        github: GitHubPort,
        plan_ids: tuple[str, ...],
        completed_with: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        issues = await self._issues(github)
        by_id = {self._plan(i).id: i for i in issues}
        moved = completion(tuple(self._plan(i) for i in issues), plan_ids)
        notes = completed_with or {}
        for moved_id in moved:
            extra = f"Completed-With: {notes[moved_id]}" if moved_id in notes else None
            await self._relabel(github, by_id[moved_id], "done", "closed", extra)
        return moved

    async def reopen(
        self, settings: Settings, github: GitHubPort, plan_ids: tuple[str, ...], reason: str
    ) -> tuple[str, ...]:
        issues = await self._issues(github)
        by_id = {self._plan(i).id: i for i in issues}
        moved = tuple(i for i in plan_ids if i in by_id and self._plan(by_id[i]).status != "inbox")
        for moved_id in moved:
            await self._relabel(github, by_id[moved_id], "inbox", "open", f"Returned: {reason}")
        return moved

    @staticmethod
    async def _relabel(
        github: GitHubPort, issue: dict[str, Any], status: str, state: str, line: str | None
    ) -> None:
        labels = [
            label["name"]
            for label in issue.get("labels", [])
            if not label["name"].startswith("plan:")
        ]
        body = None
        if line is not None and line not in (issue.get("body") or ""):
            body = (issue.get("body") or "").rstrip("\n") + f"\n{line}\n"
        await github.update_issue(
            issue["number"], state=state, labels=[*labels, f"plan:{status}"], body=body
        )


@hookimpl
def register_plan_stores(register: Register[PlanStore], settings: Settings) -> None:
    register(Files())
    register(Issues())
