"""Built-in plan stores: ``files`` (markdown under plans/) and ``issues`` (labelled issues)."""

from __future__ import annotations

from typing import Any

from promote_tasks.config import Settings
from promote_tasks.hookspecs import hookimpl
from promote_tasks.model import Plan
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Register


class Files:
    name = "files"

    def plans(self, settings: Settings, github: Any) -> tuple[Plan, ...]:
        return tuple(github.plan_files(settings))

    def create(self, settings: Settings, github: Any, plan: Plan, body: str) -> Plan:
        return github.create_plan_file(settings, plan, body)  # type: ignore[no-any-return]

    def complete(self, settings: Settings, github: Any, plan_id: str) -> tuple[str, ...]:
        return tuple(github.complete_plan_files(settings, plan_id))


class Issues:
    name = "issues"

    def plans(self, settings: Settings, github: Any) -> tuple[Plan, ...]:
        return tuple(github.plan_issues(settings))

    def create(self, settings: Settings, github: Any, plan: Plan, body: str) -> Plan:
        return github.create_plan_issue(settings, plan, body)  # type: ignore[no-any-return]

    def complete(self, settings: Settings, github: Any, plan_id: str) -> tuple[str, ...]:
        return tuple(github.complete_plan_issues(settings, plan_id))


@hookimpl
def register_plan_stores(register: Register[PlanStore], settings: Settings) -> None:
    register(Files())
    register(Issues())
