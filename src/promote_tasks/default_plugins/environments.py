"""Environments from the configuration: one branch per environment, in the order written."""

from __future__ import annotations

from promote_tasks.config import Settings
from promote_tasks.hookspecs import hookimpl
from promote_tasks.model import Environment
from promote_tasks.registry import Register


@hookimpl
def register_environments(register: Register[Environment], settings: Settings) -> None:
    for order, env in enumerate(settings.environments):
        register(
            Environment(
                name=env.name,
                branch=env.branch,
                order=order * 10,  # room for a plugin's environment in between
                production=env.production,
                validators=env.validators,
                rollback=env.rollback,
                url=env.url,
                deploy_timeout_seconds=env.deploy_timeout_seconds,
                validation_timeout_seconds=env.validation_timeout_seconds,
                approval_timeout_seconds=env.approval_timeout_seconds,
            )
        )
