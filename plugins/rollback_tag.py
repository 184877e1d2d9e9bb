"""A team's rollback strategy: redeploy the target from a tag ``rollback/<env>/<sha7>``.

The tag marks in the repository what each rollback went back to (release tooling can list
them); the rollback deployment names the tag as its ref, and the deploy workflow is dispatched
on the environment branch with the target sha, as ``next`` expects. Loaded by path when the configuration says ``plugins_dir = "plugins"``;
use it for an environment with::

    [[tool.promote.environments]]
    name = "test"
    rollback = "tag-redeploy"

Like every strategy it must be idempotent: each write below looks first for what it would
create, so a run that dies halfway is finished by the next one without doing anything twice.
"""

from __future__ import annotations

from promote_tasks import hookimpl
from promote_tasks.errors import PromoteError
from promote_tasks.registry import Register
from promote_tasks.registry import RollbackRun
from promote_tasks.registry import RollbackStrategy


class TagRedeploy:
    name = "tag-redeploy"
    opt_in = False

    def rollback(self, run: RollbackRun) -> str:
        github = run.github
        env = run.environment
        tag = f"rollback/{env.name}/{run.target[:7]}"
        tagged, _ = github.run(github.ensure_ref(f"tags/{tag}", run.target))
        if tagged != run.target:
            raise PromoteError(f"tag {tag} points to {tagged[:7]}, not {run.target[:7]}")
        record, created = github.run(
            github.rollback_deployment(
                env.name, tag, run.failed_sha, run.plan, f"roll back to {tag}"
            )
        )
        deploy = github.run(
            github.deploy_once(
                run.settings.deploy_workflow, env.branch, env.name, run.target, record
            )
        )
        verb = "created" if created else "found"
        return f"tagged {tag}; {verb} rollback deployment {record['id']}; {deploy}"


@hookimpl
def register_rollback_strategies(register: Register[RollbackStrategy]) -> None:
    register(TagRedeploy())
