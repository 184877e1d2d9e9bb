"""``promote doctor``: read-only checks that a repository is ready for the pipeline, each with
the fix in one line. Nothing here writes to GitHub or git."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import yaml

from promote_tasks.errors import GitHubError
from promote_tasks.session import Run

WRITE_ROLES = ("admin", "maintain", "write")
PROMOTE_WORKFLOW = ".github/workflows/promote.yml"
LOW_BUDGET = 100  #: fewer requests left than this in the hour is a warning


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: ``ok`` False fails the doctor, ``required`` False only warns."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    required: bool = True

    def data(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "required": self.required,
        }


def examine(run: Run) -> tuple[Check, ...]:
    """Every check, in the order a person would fix them."""
    github = run.github
    return tuple(github.run(_examine(run)))


async def _examine(run: Run) -> list[Check]:
    github = run.github
    branches = [env.branch for env in run.pipeline.environments]
    repo = await github.repository()
    checks = [_token(repo)]
    found = await asyncio.gather(*(_branch_exists(run, b) for b in branches))
    checks += found
    present = [b for b, c in zip(branches, found, strict=True) if c.ok]
    checks += await asyncio.gather(
        *(_ordered(run, later, earlier) for earlier, later in itertools.pairwise(branches))
        if len(present) == len(branches)
        else ()
    )
    first = branches[0] if branches[0] in present else str(repo.get("default_branch", "main"))
    checks += await asyncio.gather(
        _deploy_workflow(run, first),
        *_validator_workflows(run, first),
        _checklist(run, first),
        _promote_workflow(run, str(repo.get("default_branch") or first)),
        _rate_limit(run),
    )
    checks += [_manual_reviewers(run)]
    checks += await asyncio.gather(*(_reviewer(run, login) for login in run.settings.reviewers))
    checks += await asyncio.gather(*(_ruleset(run, b) for b in present))
    return checks


def _token(repo: dict[str, Any]) -> Check:
    allowed = repo.get("permissions") or {}
    if allowed.get("push") or allowed.get("admin") or allowed.get("maintain"):
        return Check("token", True, "the token can write to the repository")
    if not allowed:  # an installation token is not told its permissions here; writes will say
        return Check("token", True, "the token reads the repository")
    return Check(
        "token", False, "the token cannot write (statuses, PRs, contents, issues need it)",
        "use a token with contents, pull-requests, statuses, deployments, issues, actions: write",
    )  # fmt: skip


async def _absent(read: Awaitable[Any]) -> Any:
    """The answer, or None for a 404."""
    try:
        return await read
    except GitHubError as e:
        if e.status == 404:
            return None
        raise


async def _branch_exists(run: Run, branch: str) -> Check:
    found = await _absent(run.github.branch(branch))
    if found is None:
        return Check(
            f"branch {branch}", False, f"the environment branch {branch} does not exist",
            f"create it from the next environment's branch: git push origin main:{branch}",
        )  # fmt: skip
    return Check(f"branch {branch}", True, f"{branch} exists")


async def _ordered(run: Run, later: str, earlier: str) -> Check:
    """Everything in ``later`` (closer to production) must already be in ``earlier``."""
    compared = await run.github.compare(later, earlier)
    status = compared.get("status")
    name = f"order {later} ⊆ {earlier}"
    if status in ("ahead", "identical"):
        return Check(name, True, f"{earlier} contains everything in {later}")
    behind = compared.get("behind_by", "some")
    return Check(
        name, False, f"{later} has {behind} commit(s) that {earlier} does not",
        f"merge {later} into {earlier} through a PR, so each environment holds the next",
    )  # fmt: skip


def _on(workflow: Any) -> dict[str, Any]:
    """A workflow's triggers as a mapping (YAML 1.1 reads a bare ``on`` key as True)."""
    if not isinstance(workflow, dict):
        return {}
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {str(event): None for event in on}
    return on if isinstance(on, dict) else {}


async def _workflow(run: Run, path: str, ref: str) -> tuple[str | None, Any]:
    text = await run.github.read_file(path, ref)
    if text is None:
        return None, None
    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError:
        return text, None


async def _deploy_workflow(run: Run, ref: str) -> Check:
    name = run.settings.deploy_workflow
    if not name:
        return Check("deploy workflow", True, "deploy_workflow is empty: deploys are not started")
    path = f".github/workflows/{name}"
    text, workflow = await _workflow(run, path, ref)
    if text is None:
        return Check(
            "deploy workflow", False, f"{path} does not exist on {ref}",
            f"add {path} (see the example `promote init` writes) or set deploy_workflow",
        )  # fmt: skip
    triggers = _on(workflow)
    dispatch = triggers.get("workflow_dispatch")
    inputs = (dispatch.get("inputs") if isinstance(dispatch, dict) else None) or {}
    missing = [i for i in ("environment", "sha") if i not in inputs]
    if "workflow_dispatch" not in triggers or missing:
        return Check(
            "deploy workflow", False,
            f"{path} does not accept workflow_dispatch with inputs "
            + ", ".join(missing or ("environment", "sha")),
            "add on: workflow_dispatch: inputs: environment and sha (strings, required)",
        )  # fmt: skip
    return Check("deploy workflow", True, f"{path} accepts workflow_dispatch(environment, sha)")


def _validator_workflows(run: Run, ref: str) -> list[Awaitable[Check]]:
    used = {v for env in run.pipeline.environments for v in env.validators}
    files = sorted(
        {
            str(w)
            for name, config in run.settings.validators.items()
            if name in used and config.use == "workflow"
            for w in config.options.get("workflows", [])
        }
    )

    async def one(file: str) -> Check:
        path = f".github/workflows/{file}"
        text, _ = await _workflow(run, path, ref)
        if text is None:
            return Check(
                f"workflow {file}", False, f"{path} does not exist on {ref}",
                f"add {path}, or change the validator's workflows",
            )  # fmt: skip
        return Check(f"workflow {file}", True, f"{path} exists")

    return [one(f) for f in files]


async def _checklist(run: Run, ref: str) -> Check:
    manual = any(env.manual for env in run.pipeline.environments)
    path = run.settings.checklist_template
    if await run.github.read_file(path, ref) is None:
        return Check(
            "checklist template", not manual, f"{path} does not exist on {ref}",
            "run promote init, or write the manual test's checklist there",
            required=manual,
        )  # fmt: skip
    return Check("checklist template", True, f"{path} exists")


async def _promote_workflow(run: Run, ref: str) -> Check:
    text, workflow = await _workflow(run, PROMOTE_WORKFLOW, ref)
    if text is None:
        return Check(
            "promote workflow", False, f"{PROMOTE_WORKFLOW} does not exist on {ref}",
            "run promote init and commit the workflows",
        )  # fmt: skip
    if not isinstance(workflow, dict) or not workflow.get("concurrency"):
        return Check(
            "promote workflow", False, f"{PROMOTE_WORKFLOW} has no concurrency group",
            "add concurrency: {group: promote-${{ github.repository }}, cancel-in-progress: false}",
        )  # fmt: skip
    return Check("promote workflow", True, f"{PROMOTE_WORKFLOW} runs in one concurrency group")


async def _rate_limit(run: Run) -> Check:
    limits = await _absent(run.github.rate_limit())
    core = ((limits or {}).get("resources") or {}).get("core") or {}
    left, limit = core.get("remaining"), core.get("limit")
    if left is None:
        return Check("rate limit", True, "GitHub does not report a rate limit", required=False)
    if left < LOW_BUDGET:
        return Check(
            "rate limit", False, f"{left} of {limit} requests left this hour",
            "wait for the reset, or use a GitHub App token (its own budget)", required=False,
        )  # fmt: skip
    return Check("rate limit", True, f"{left} of {limit} requests left this hour")


def _manual_reviewers(run: Run) -> Check:
    manual = [env.name for env in run.pipeline.environments if env.manual]
    if not manual:
        return Check("reviewers", True, "no environment waits for a manual test")
    if not run.settings.reviewers:  # configuration loading refuses this; kept for plugins
        return Check(
            "reviewers", False, f"{', '.join(manual)} waits for a manual test and nobody may decide",
            "set reviewers = [\"login\"] in the configuration",
        )  # fmt: skip
    who = ", ".join(run.settings.reviewers)
    return Check("reviewers", True, f"{who} decide(s) the manual test in {', '.join(manual)}")


async def _reviewer(run: Run, login: str) -> Check:
    found = await _absent(run.github.permission(login))
    role = (found or {}).get("role_name") or (found or {}).get("permission")
    if role in WRITE_ROLES:
        return Check(f"reviewer {login}", True, f"{login} has {role} access")
    return Check(
        f"reviewer {login}", False,
        f"{login} is not a collaborator with write access" + (f" (has {role})" if role else ""),
        f"give {login} write access, or take them out of reviewers",
    )  # fmt: skip


async def _ruleset(run: Run, branch: str) -> Check:
    """Rules in force on the branch: a PR required and ``promote/gate`` a required check.
    Only a warning: GitHub Free private repositories have no rulesets, and the tool still
    reports what skipped the way in."""
    rules = await _absent(run.github.branch_rules(branch))
    kinds = {str(r.get("type")) for r in rules or []}
    contexts = {
        str(c.get("context"))
        for r in rules or []
        if r.get("type") == "required_status_checks"
        for c in (r.get("parameters") or {}).get("required_status_checks", [])
    }
    missing = [
        what
        for what, ok in (
            ("a pull request", "pull_request" in kinds),
            ("the promote/gate check", "promote/gate" in contexts),
        )
        if not ok
    ]
    if missing:
        return Check(
            f"ruleset {branch}", False, f"no rule on {branch} requires {' or '.join(missing)}",
            f"add a ruleset on {branch}: require a pull request and the status check promote/gate",
            required=False,
        )  # fmt: skip
    return Check(f"ruleset {branch}", True, f"{branch} requires a PR and promote/gate")


def report(checks: tuple[Check, ...], ascii_only: Callable[[str], str] = str) -> str:
    """One line a check: ✓ or ✗ (! for a warning), the detail, and the fix after an arrow."""
    lines = []
    for check in checks:
        mark = "✓" if check.ok else ("✗" if check.required else "!")
        fix = f"\n    → {check.fix}" if check.fix and not check.ok else ""
        lines.append(f"{mark} {check.name}: {check.detail}{fix}")
    return "\n".join(lines)


def healthy(checks: tuple[Check, ...]) -> bool:
    return all(c.ok or not c.required for c in checks)
