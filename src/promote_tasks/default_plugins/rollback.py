"""Built-in rollback strategies. Each delegates its writes to the GitHub adapter.

``redeploy`` (default) deploys the target again; ``revert`` opens and merges a PR restoring
the target's tree; ``reset`` forces the branch back and is used only when configured.
"""

from __future__ import annotations

from promote_tasks.config import Settings
from promote_tasks.hookspecs import hookimpl
from promote_tasks.registry import Register
from promote_tasks.registry import RollbackRun
from promote_tasks.registry import RollbackStrategy


class Redeploy:
    name = "redeploy"
    opt_in = False

    def rollback(self, run: RollbackRun) -> str:
        return str(run.github.redeploy(run))


class Revert:
    name = "revert"
    opt_in = False

    def rollback(self, run: RollbackRun) -> str:
        return str(run.github.revert_to(run))


class Reset:
    name = "reset"
    opt_in = True

    def rollback(self, run: RollbackRun) -> str:
        return str(run.github.reset_branch(run))


@hookimpl
def register_rollback_strategies(register: Register[RollbackStrategy], settings: Settings) -> None:
    register(Redeploy())
    register(Revert())
    register(Reset())
