"""A tiny model of GitHub + CI + the Merge machine as plain data, to drive the pure machine.

Not a mock of GitHub for the shell (that is the sandbox): it applies the machine's own
effects to facts so tests can walk whole journeys and check invariants on every step.
"""

from __future__ import annotations

import dataclasses
import itertools

from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Action
from promote_tasks.model import CommitStatus
from promote_tasks.model import Deployment
from promote_tasks.model import DeploymentStatus
from promote_tasks.model import EnvFacts
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Result
from promote_tasks.model import Snapshot
from promote_tasks.model import Verdict
from promote_tasks.model import split
from promote_tasks.plans import completion
from tests.builders import PIPELINE
from tests.builders import sha


@dataclasses.dataclass
class Env:
    name: str
    head: str
    merged_pull: PullRequest | None = None
    deployments: list[Deployment] = dataclasses.field(default_factory=list)
    promotions: list[PullRequest] = dataclasses.field(default_factory=list)


class World:
    def __init__(self, failures: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.ids = itertools.count(1)
        self.failures = set(failures)  # (env, "deploy" | validator name), each fails once
        h0 = sha("h0")
        self.statuses: dict[str, list[CommitStatus]] = {h0: []}
        self.envs = {name: Env(name, h0) for name in PIPELINE.names}
        for env in self.envs.values():
            env.deployments.append(self._deployment(env.name, h0, "success"))
            self.statuses[h0].append(CommitStatus(next(self.ids), f"promote/{env.name}", "success"))
        self.plans = [Plan("add-greeting", "Add a greeting", "doing")]
        self.pulls = [PullRequest(next(self.ids), "feature/add-greeting", sha("feature"), "dev")]
        self.actions: list[Action] = []
        self.clock = 0

    def _deployment(self, env: str, at: str, *states: str, **kw: str) -> Deployment:
        return Deployment(next(self.ids), env, at, statuses=tuple(
            DeploymentStatus(next(self.ids), s) for s in states), **kw)  # type: ignore[arg-type]  # fmt: skip

    # -- facts ----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        envs = []
        for name, env in self.envs.items():
            following = PIPELINE.after(name)
            verdicts = tuple(
                self._verdict(name, env.head, v) for v in PIPELINE.get(name).validators
            )
            envs.append(
                EnvFacts(
                    name=name,
                    head=env.head,
                    merged_pull=env.merged_pull,
                    deployments=tuple(env.deployments),
                    statuses=tuple(self.statuses.get(env.head, ())),
                    promotions=tuple(env.promotions),
                    verdicts=verdicts,
                    next_contains_head=following is not None
                    and self.envs[following.name].head == env.head,
                )
            )
        stamp = f"2026-11-24T10:{self.clock // 60:02d}:{self.clock % 60:02d}Z"
        return Snapshot("acme/shop", stamp, tuple(envs), (), tuple(self.plans))

    def _verdict(self, env: str, head: str, validator: str) -> Verdict:
        started = any(
            s.context == f"promote/{env}/{validator}" for s in self.statuses.get(head, ())
        )
        if not started:
            return Verdict(validator, Result.PENDING)
        if (env, validator) in self.failures:
            return Verdict(validator, Result.FAILED, summary="scripted failure")
        return Verdict(validator, Result.PASSED)

    def state(self) -> PipelineState:
        return derive(self.snapshot(), PIPELINE)

    # -- the machine's effects ------------------------------------------------------------

    def next(self) -> Action:
        snapshot = self.snapshot()
        action = decide(derive(snapshot, PIPELINE), snapshot, PIPELINE)
        for effect in action.effects:
            getattr(self, "do_" + effect.kind.replace("-", "_"))(**dict(effect.args))
        if action.transition:
            self.actions.append(action)
        if action.transition == "R6":  # a scripted validator failure fails once
            self.failures -= {
                (action.environment, v) for v in PIPELINE.get(action.environment or "").validators
            }
        self.clock += 1
        return action

    def do_set_status(self, sha: str, context: str, state: str, **_: str) -> None:
        self.statuses.setdefault(sha, []).append(CommitStatus(next(self.ids), context, state))

    def do_start_validator(self, **_: str) -> None:
        pass

    def do_dispatch_deploy(self, environment: str, sha: str, **_: str) -> None:
        self.envs[environment].deployments.append(self._deployment(environment, sha, "queued"))

    def do_open_pr(self, head: str, base: str, sha: str, plans: str, **_: str) -> None:
        body = "".join(f"Promote-Plan: {plan}\n" for plan in split(plans))
        self.envs[head].promotions.append(PullRequest(next(self.ids), head, sha, base, body=body))

    def do_complete_plans(self, plans: str, completed_with: str) -> None:
        moved = completion(tuple(self.plans), split(plans))
        self.plans = [
            dataclasses.replace(p, status="done") if p.id in moved else p for p in self.plans
        ]

    def do_rollback(self, environment: str, failed_sha: str, plan: str, **_: str) -> None:
        good = sha("h0")
        self.envs[environment].deployments.append(self._deployment(
            environment, good, "queued", task="deploy:rollback", rollback_of=failed_sha, plan=plan))  # fmt: skip

    def do_file_fix_plan(
        self, id: str, key: str, parent: str = "", failed_plans: str = "", **_: str
    ) -> None:
        self.plans.append(
            Plan(id, "Fix", "doing", 0, parent or None, key, failed_plans=split(failed_plans))
        )
        self.pulls.append(PullRequest(next(self.ids), f"feature/{id}", sha(id), "dev"))

    # -- CI and the Merge machine ----------------------------------------------------------

    def tick(self) -> None:
        """Advance every deployment one status, then let the Merge machine merge one PR."""
        for env in self.envs.values():
            for i, d in enumerate(env.deployments):
                last = d.latest.state if d.latest else ""
                if last in ("queued", ""):
                    nxt = "in_progress"
                elif last == "in_progress":
                    failing = (env.name, "deploy") in self.failures and not d.is_rollback
                    nxt = "failure" if failing else "success"
                    if failing:
                        self.failures.discard((env.name, "deploy"))
                else:
                    continue
                env.deployments[i] = dataclasses.replace(
                    d, statuses=(*d.statuses, DeploymentStatus(next(self.ids), nxt)))  # fmt: skip
        self._merge_one()

    def _merge_one(self) -> None:
        state = self.state()
        for pull in list(self.pulls):
            if state.halted and not pull.head_ref.endswith(state.fix_plan or "\0"):
                continue
            self.pulls.remove(pull)
            self._land("dev", dataclasses.replace(pull, state="closed", merged=True))
            return
        for env in self.envs.values():
            for i, pull in enumerate(env.promotions):
                if pull.state == "open":
                    merged = dataclasses.replace(pull, state="closed", merged=True)
                    env.promotions[i] = merged
                    self._land(pull.base_ref, merged)
                    return

    def _land(self, env: str, pull: PullRequest) -> None:
        target = self.envs[env]
        target.head = pull.head_sha if pull.base_ref != "dev" else sha(f"merge-{pull.number}")
        target.merged_pull = pull
        target.deployments.append(self._deployment(env, target.head, "queued"))

    def idle(self) -> bool:
        """Nothing left for CI or the Merge machine to do."""
        busy = any(d.latest is None or d.latest.state in ("queued", "in_progress")
                   for env in self.envs.values() for d in env.deployments)  # fmt: skip
        promotions = any(p.state == "open" for env in self.envs.values() for p in env.promotions)
        return not (busy or promotions or self.pulls)
