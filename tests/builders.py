"""Small builders for snapshots, so each test states only the facts it is about."""

from __future__ import annotations

import hashlib

from promote_tasks.model import CheckRun
from promote_tasks.model import CommitStatus
from promote_tasks.model import Deployment
from promote_tasks.model import DeploymentStatus
from promote_tasks.model import EnvFacts
from promote_tasks.model import Environment
from promote_tasks.model import Pipeline
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Snapshot
from promote_tasks.model import WorkflowRun

NOW = "2026-11-24T10:00:00Z"
EARLIER = "2026-11-24T09:00:00Z"


def sha(label: str) -> str:
    return hashlib.sha1(label.encode()).hexdigest()


PIPELINE = Pipeline(
    (
        Environment("dev", "dev", 0, validators=("health", "smoke")),
        Environment(
            "test", "test", 10, validators=("health", "smoke", "manual"), manual=("manual",)
        ),
        Environment("main", "main", 20, production=True, validators=("health", "smoke", "monitor")),
    )
)


def pr(
    number: int,
    head_ref: str,
    head_sha: str,
    base: str,
    *,
    merged: bool = True,
    body: str = "",
    merged_at: str | None = EARLIER,
    author: str = "alice",
) -> PullRequest:
    return PullRequest(
        number=number,
        head_ref=head_ref,
        head_sha=head_sha,
        base_ref=base,
        state="closed" if merged else "open",
        merged=merged,
        merge_commit_sha=None,
        title=f"PR {number}",
        body=body,
        author=author,
        url=f"https://github.example/acme/shop/pull/{number}",
        merged_at=merged_at if merged else None,
    )


def dep(
    id: int,
    env: str,
    at: str,
    *states: str,
    task: str = "deploy",
    rollback_of: str | None = None,
    plan: str | None = None,
) -> Deployment:
    return Deployment(
        id=id,
        environment=env,
        sha=at,
        task=task,
        url=f"https://api.github.example/deployments/{id}",
        rollback_of=rollback_of,
        plan=plan,
        statuses=tuple(
            DeploymentStatus(id * 100 + i, state, environment_url=f"http://{env}.example/health")
            for i, state in enumerate(states, 1)
        ),
    )


RECENTLY = "2026-11-24T09:50:00Z"  # inside every timeout of the default configuration


def st(
    id: int, context: str, state: str, created_at: str = RECENTLY, creator: str = "alice"
) -> CommitStatus:
    return CommitStatus(
        id, context, state, description=state, created_at=created_at, creator=creator
    )


def run(
    id: int, at: str, status: str, conclusion: str | None = None, workflow: str = "deploy.yml"
) -> WorkflowRun:
    name = workflow.removesuffix(".yml")
    return WorkflowRun(id, name, f".github/workflows/{workflow}", at, status, conclusion)


def check(id: int, name: str, at: str, status: str, conclusion: str | None = None) -> CheckRun:
    return CheckRun(id, name, at, status, conclusion)


def validated(env: str, at: str, first_id: int = 1) -> tuple[CommitStatus, ...]:
    return (st(first_id, f"promote/{env}", "success"),)


def facts(name: str, head: str | None, **kw: object) -> EnvFacts:
    return EnvFacts(name=name, head=head, **kw)  # type: ignore[arg-type]


def settled_world() -> dict[str, EnvFacts]:
    """All three branches at one validated commit, as after an earlier promotion."""
    h0 = sha("h0")
    return {
        name: facts(
            name,
            h0,
            deployments=(dep(i, name, h0, "queued", "in_progress", "success"),),
            statuses=validated(name, h0, i * 10),
            next_contains_head=True if name != "main" else None,
        )
        for i, name in enumerate(("dev", "test", "main"), 1)
    }


def snap(
    *envs: EnvFacts,
    plans: tuple[Plan, ...] = (),
    open_pulls: tuple[PullRequest, ...] = (),
    taken_at: str = NOW,
) -> Snapshot:
    world = settled_world()
    for env in envs:
        world[env.name] = env
    return Snapshot("acme/shop", taken_at, tuple(world.values()), open_pulls, plans)
