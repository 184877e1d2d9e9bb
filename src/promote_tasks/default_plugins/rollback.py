"""Built-in rollback strategies, registered through the same hook a team's plugin uses.

``redeploy`` (default) records a ``deploy:rollback`` deployment of the target and dispatches
the deploy workflow for it; ``revert`` opens and merges a PR whose commit restores the target's
tree on top of the failed head; ``reset`` forces the branch back and is used only where the
configuration names it. Every write looks first for what it would create, so a strategy called
again after a crash finishes the job without doing anything twice.
"""

from __future__ import annotations

from typing import Any

from promote_tasks import ledger
from promote_tasks.config import Settings
from promote_tasks.errors import PromoteError
from promote_tasks.gate import ROLLBACK_GATE
from promote_tasks.hookspecs import hookimpl
from promote_tasks.ledger import GATE_CONTEXT
from promote_tasks.ledger import rollback_marker_context
from promote_tasks.registry import Register
from promote_tasks.registry import RollbackRun
from promote_tasks.registry import RollbackStrategy

MERGE_METHODS = ("merge", "squash", "rebase")  #: tried in this order, as the repository allows


def describe(run: RollbackRun) -> str:
    return f"roll back {run.environment.name} from {run.failed_sha[:7]} to {run.target[:7]}"


class Redeploy:
    """Deploy the target again: a ``deploy:rollback`` deployment (found by ``rollback_of``)
    and a dispatch of the deploy workflow on the environment branch."""

    name = "redeploy"
    opt_in = False

    def rollback(self, run: RollbackRun) -> str:
        github = run.github
        env = run.environment
        record, created = github.run(
            github.rollback_deployment(
                env.name, run.target, run.failed_sha, run.plan, describe(run), carries=run.plans
            )
        )
        if record["sha"] != run.target:
            raise PromoteError(
                f"{env.name} at {run.failed_sha[:7]} was already rolled back to "
                f"{record['sha'][:7]} (deployment {record['id']}), not {run.target[:7]}"
            )
        deploy = github.run(
            github.deploy_once(
                run.settings.deploy_workflow, env.branch, env.name, run.target, record
            )
        )
        return f"{'created' if created else 'found'} rollback deployment {record['id']}; {deploy}"


class Revert:
    """Restore the target's tree with a PR into the environment branch, merged by the tool."""

    name = "revert"
    opt_in = False
    restores_branch = True  # the failed change leaves the branch, not only the environment

    def rollback(self, run: RollbackRun) -> str:
        return str(run.github.run(self._revert(run)))

    async def _revert(self, run: RollbackRun) -> str:
        github = run.github
        env = run.environment
        branch = ledger.revert_branch(env.name, run.failed_sha)
        pulls = await github.pulls_from(branch, env.branch)
        merged = next((p for p in pulls if p.get("merged_at")), None)
        if merged is not None:
            head = str(merged["merge_commit_sha"])
            did = f"found revert PR #{merged['number']} merged"
        else:
            opened = next((p for p in pulls if p["state"] == "open"), None)
            if opened is None and pulls:
                raise PromoteError(
                    f"revert PR #{pulls[0]['number']} for {run.key} was closed without merging: "
                    f"reopen and merge it, or roll {env.name} back by hand"
                )
            commit = await github.ref_sha(f"heads/{branch}")
            if commit is None:
                commit, _ = await github.ensure_ref(f"heads/{branch}", await self._commit(run))
            if opened is None:
                culprit = await github.merged_pull_of(run.failed_sha, env.branch)
                found, url, _ = await github.open_pull(
                    branch, env.branch, self._title(run, culprit), self._body(run, culprit)
                )
                if found is None:  # GitHub: no commits between them
                    raise PromoteError(
                        f"cannot revert {run.key}: {env.branch} already holds {branch}"
                    )
                number = found
            else:
                number, url = int(opened["number"]), str(opened["html_url"])
            # Where promote/gate is a required check, the merge needs it: this PR is the
            # rollback the gate lets through (machine.gate_for), so say so before merging.
            await github.set_status(commit, GATE_CONTEXT, "success", ROLLBACK_GATE)
            head = await github.merge_pull(number, commit, MERGE_METHODS)
            did = f"merged revert PR #{number} ({url})"
        deploy = await _deploy_head(run, head)
        return f"{did}; {env.branch} is at {head[:7]}; {deploy}"

    async def _commit(self, run: RollbackRun) -> str:
        """A commit on top of the branch head whose tree is the target's. On the plans branch
        the plan files stay as they are now: plan bookkeeping is not part of the failure."""
        github = run.github
        env = run.environment
        head = await _head_over(run, await github.ref_sha(f"heads/{env.branch}"))
        target = await github.git_commit(run.target)
        tree = str(target["tree"]["sha"])
        settings = run.settings
        if settings.plan_store == "files" and settings.plans_branch == env.branch:
            plans = settings.plans_dir.strip("/")
            now = _entry(await github.tree(head), plans)
            then = _entry(await github.tree(run.target), plans)
            if now != then:
                sha = now["sha"] if now else None
                tree = await github.create_tree(
                    [{"path": plans, "mode": "040000", "type": "tree", "sha": sha}], tree
                )
        message = ledger.revert_message(env.name, run.target, run.failed_sha, run.undo)
        return str(await github.create_commit(message, tree, [head]))

    @staticmethod
    def _title(run: RollbackRun, culprit: dict[str, Any] | None) -> str:
        number = int(culprit["number"]) if culprit else None
        return ledger.revert_title(run.environment.name, run.target, run.failed_sha, number)

    @staticmethod
    def _body(run: RollbackRun, culprit: dict[str, Any] | None) -> str:
        number = int(culprit["number"]) if culprit else None
        return ledger.revert_body(
            run.environment.name, run.target, run.failed_sha, run.plan, run.undo, number
        )


class Reset:
    """Force the environment branch back to the target (opt-in: history is rewritten).

    In order, each step found first on a re-run: the marker status ``promote/<env>/rollback``
    on the target (so the failure is remembered once the failed sha is no longer the head); a
    ``deploy`` deployment of the target with ``promote.reset_of`` in its payload (until the
    deploy reports on a newer one, the restored head counts as not deployed yet) and a
    dispatch of the deploy workflow; then the forced ref update.
    """

    name = "reset"
    opt_in = True
    restores_branch = True

    def rollback(self, run: RollbackRun) -> str:
        return str(run.github.run(self._reset(run)))

    async def _reset(self, run: RollbackRun) -> str:
        github = run.github
        env = run.environment
        head = await github.ref_sha(f"heads/{env.branch}")
        if head != run.target:
            await _head_over(run, head)
        marker = await github.set_status(
            run.target, rollback_marker_context(env.name), "success", ledger.reset_marker(run.key)
        )
        record, created = await github.rollback_deployment(
            env.name, run.target, run.failed_sha, run.plan, describe(run),
            task="deploy", key="reset_of", carries=run.plans,
        )  # fmt: skip
        deploy = await github.deploy_once(
            run.settings.deploy_workflow, env.branch, env.name, run.target, record
        )
        moved = await github.force_branch(env.branch, run.target)
        reset = f"reset {env.branch} to {run.target[:7]}" if moved else "branch already reset"
        verb = "created" if created else "found"
        return f"{marker}; {verb} deployment {record['id']}; {deploy}; {reset}"


async def _head_over(run: RollbackRun, head: str | None) -> str:
    """The environment branch's ``head`` (None: no branch), which must still hold the failed
    sha (plan bookkeeping commits may sit on top of it); anything else means someone moved
    the branch meanwhile."""
    github = run.github
    env = run.environment
    if head is None:
        raise PromoteError(f"cannot roll back {env.name}: branch {env.branch} is gone")
    if (
        head != run.failed_sha
        and (await github.compare(run.failed_sha, head)).get("status") != "ahead"
    ):
        raise PromoteError(
            f"cannot roll back {env.name}: {env.branch} is at {head[:7]}, which does not hold "
            f"the failed {run.failed_sha[:7]} (moved by hand?)"
        )
    return str(head)


async def _deploy_head(run: RollbackRun, head: str) -> str:
    """Deploy a head the rollback moved the branch to, unless a deploy of it already started
    (a merge by a GitHub App or PAT token starts the push workflow; ``GITHUB_TOKEN``'s does not)."""
    github = run.github
    env = run.environment
    anchor = {"id": 0, "created_at": "1970-01-01T00:00:00Z"}
    workflow = run.settings.deploy_workflow
    if workflow is not None and await github.workflow_runs(workflow, head):
        return f"deploy of {head[:7]} already started"
    return str(await github.deploy_once(workflow, env.branch, env.name, head, anchor))


def _entry(tree: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    return next((e for e in tree if e["path"] == path and e["type"] == "tree"), None)


@hookimpl
def register_rollback_strategies(register: Register[RollbackStrategy], settings: Settings) -> None:
    register(Redeploy())
    register(Revert())
    register(Reset())
