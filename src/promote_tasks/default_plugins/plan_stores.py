"""Built-in plan stores: ``files`` (markdown under plans/) and ``issues`` (labelled issues).

``files`` keeps ``plans/{inbox,doing,done}/<id>.md`` on the first environment's branch and
changes them through the git data API, one bookkeeping commit per change (commits carrying
``Promote-Bookkeeping: true`` never start an instance). ``issues`` keeps each plan as an issue
labelled ``plan`` and ``plan:<status>``, with the front-matter keys as ``Key: value`` lines.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from promote_tasks.config import Settings
from promote_tasks.errors import PromoteError
from promote_tasks.hookspecs import hookimpl
from promote_tasks.model import Plan
from promote_tasks.plans import STATUS_DIRS
from promote_tasks.plans import completion
from promote_tasks.plans import parse_plan
from promote_tasks.plans import render_plan
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Register


def _branch(settings: Settings) -> str:
    return settings.environments[0].branch


class Files:
    name = "files"

    async def _paths(self, settings: Settings, github: Any) -> dict[str, tuple[str, str]]:
        """plan id -> (path, blob sha) for every plan file on the plans branch."""
        prefix = settings.plans_dir.strip("/") + "/"
        found: dict[str, tuple[str, str]] = {}
        for entry in await github.tree(_branch(settings)):
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

    async def plans(self, settings: Settings, github: Any) -> tuple[Plan, ...]:
        paths = await self._paths(settings, github)
        # Done plans are known by their path alone; only open ones are read (they are few).
        open_ids = [i for i, (path, _) in paths.items() if "/done/" not in path]
        texts = await asyncio.gather(*(github.blob(paths[i][1], paths[i][0]) for i in open_ids))
        read = {i: parse_plan(t, paths[i][0]).plan for i, t in zip(open_ids, texts, strict=True)}
        return tuple(read.get(i) or Plan(i, status="done") for i in sorted(paths))

    async def create(self, settings: Settings, github: Any, plan: Plan, body: str) -> Plan:
        paths = await self._paths(settings, github)
        if plan.id in paths:
            return plan
        path = f"{settings.plans_dir.strip('/')}/inbox/{plan.id}.md"
        await github.commit_changes(
            _branch(settings), f"plans: file {plan.id}", {path: render_plan(plan, body)}
        )
        return Plan(plan.id, plan.title, "inbox", plan.priority, plan.parent, plan.fix_key)

    async def complete(self, settings: Settings, github: Any, plan_id: str) -> tuple[str, ...]:
        paths = await self._paths(settings, github)
        if plan_id not in paths:
            raise PromoteError(
                f"plan {plan_id} has no file under {settings.plans_dir}/ on {_branch(settings)}"
            )
        texts = await asyncio.gather(*(github.blob(sha, path) for path, sha in paths.values()))
        files = {i: parse_plan(t, paths[i][0]) for i, t in zip(paths, texts, strict=True)}
        moved = completion(tuple(f.plan for f in files.values()), plan_id)
        if not moved:
            return ()
        text_of = dict(zip(paths, texts, strict=True))
        changes: dict[str, str | None] = {}
        for moved_id in moved:
            changes[files[moved_id].path] = None
            changes[f"{settings.plans_dir.strip('/')}/done/{moved_id}.md"] = text_of[moved_id]
        await github.commit_changes(
            _branch(settings), "plans: complete " + ", ".join(moved), changes
        )
        return moved


ISSUE_KEY = re.compile(r"^(Plan-Id|Priority|Parent|Fix-Key):\s*(.*)$", re.MULTILINE)


class Issues:
    name = "issues"

    async def _issues(self, github: Any) -> list[dict[str, Any]]:
        return list(await github.pages("issues.list_for_repo", labels="plan", state="all"))

    @staticmethod
    def _plan(issue: dict[str, Any]) -> Plan:
        fields = dict(ISSUE_KEY.findall(issue.get("body") or ""))
        labels = {label["name"] for label in issue.get("labels", [])}
        status = next((s for s in ("done", "doing", "inbox") if f"plan:{s}" in labels), "inbox")
        if issue.get("state") == "closed":
            status = "done"
        return Plan(
            fields.get("Plan-Id", str(issue["number"])).strip(),
            issue.get("title") or "",
            status,
            int(fields.get("Priority", "2").strip() or 2),
            fields.get("Parent", "").strip() or None,
            fields.get("Fix-Key", "").strip() or None,
        )

    async def plans(self, settings: Settings, github: Any) -> tuple[Plan, ...]:
        return tuple(self._plan(i) for i in await self._issues(github))

    async def create(self, settings: Settings, github: Any, plan: Plan, body: str) -> Plan:
        async def look() -> Plan | None:
            found = (self._plan(issue) for issue in await self._issues(github))
            return next((p for p in found if p.id == plan.id), None)

        async def write() -> Plan:
            lines = [f"Plan-Id: {plan.id}", f"Priority: {plan.priority}"]
            lines += [f"Parent: {plan.parent}"] if plan.parent else []
            lines += [f"Fix-Key: {plan.fix_key}"] if plan.fix_key else []
            await github.call(
                "issues.create", idempotent=False, title=plan.title or plan.id,
                body=body + "\n\n" + "\n".join(lines) + "\n",
                labels=["plan", "plan:inbox", f"priority:{plan.priority}"],
            )  # fmt: skip
            return Plan(plan.id, plan.title, "inbox", plan.priority, plan.parent, plan.fix_key)

        # Never sent twice: an answer lost after GitHub made the issue is found by a look.
        created: Plan = (await github.write_once(look, write))[0]
        return created

    async def complete(self, settings: Settings, github: Any, plan_id: str) -> tuple[str, ...]:
        issues = await self._issues(github)
        by_id = {self._plan(i).id: i for i in issues}
        if plan_id not in by_id:
            raise PromoteError(f"plan {plan_id} has no issue labelled 'plan'")
        moved = completion(tuple(self._plan(i) for i in issues), plan_id)
        for moved_id in moved:
            issue = by_id[moved_id]
            labels = [
                label["name"]
                for label in issue.get("labels", [])
                if not label["name"].startswith("plan:")
            ]
            await github.call(
                "issues.update",
                issue_number=issue["number"],
                state="closed",
                labels=[*labels, "plan:done"],
            )
        return moved


@hookimpl
def register_plan_stores(register: Register[PlanStore], settings: Settings) -> None:
    register(Files())
    register(Issues())
