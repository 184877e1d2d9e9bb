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
from promote_tasks.model import CompletePlans
from promote_tasks.model import Deployment
from promote_tasks.model import DeploymentStatus
from promote_tasks.model import DispatchDeploy
from promote_tasks.model import Effect
from promote_tasks.model import EnvFacts
from promote_tasks.model import FileFixPlan
from promote_tasks.model import OpenPromotion
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Result
from promote_tasks.model import RollBack
from promote_tasks.model import SetStatus
from promote_tasks.model import Snapshot
from promote_tasks.model import Verdict
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
            self.apply(effect)
        if action.transition:
            self.actions.append(action)
        if action.transition == "R6":  # a scripted validator failure fails once
            self.failures -= {
                (action.environment, v) for v in PIPELINE.get(action.environment or "").validators
            }
        self.clock += 1
        return action

    def apply(self, effect: Effect) -> None:
        """What GitHub and CI would make of one effect."""
        match effect:
            case SetStatus(sha=at, context=context, state=state):
                self.statuses.setdefault(at, []).append(
                    CommitStatus(next(self.ids), context, state)
                )
            case DispatchDeploy(environment=env, sha=at):
                self.envs[env].deployments.append(self._deployment(env, at, "queued"))
            case OpenPromotion(head=head, base=base, sha=at, plans=plans):
                body = "".join(f"Promote-Plan: {plan}\n" for plan in plans)
                self.envs[head].promotions.append(
                    PullRequest(next(self.ids), head, at, base, body=body)
                )
            case CompletePlans(plans=plans):
                moved = completion(tuple(self.plans), plans)
                self.plans = [
                    dataclasses.replace(p, status="done") if p.id in moved else p
                    for p in self.plans
                ]
            case RollBack(environment=env, failed_sha=failed, plan=plan):
                self.envs[env].deployments.append(self._deployment(
                    env, sha("h0"), "queued", task="deploy:rollback", rollback_of=failed, plan=plan))  # fmt: skip
            case FileFixPlan(plan_id=fix, failure=key, parent=parent, failed_plans=failed):
                self.plans.append(Plan(fix, "Fix", "doing", 0, parent, key, failed_plans=failed))
                self.pulls.append(PullRequest(next(self.ids), f"feature/{fix}", sha(fix), "dev"))
            case _:
                pass  # starting a validator, closing a checklist: nothing the world models

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
