"""Frozen facts and results: what GitHub said (a Snapshot, kept close to its API objects) and
what we made of it. Pure data: standard library only."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import types
import typing
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from promote_tasks import ledger
from promote_tasks.errors import SnapshotError


class _Named(typing.Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def _named(items: tuple[N, ...], name: str, missing: str) -> N:
    """The item called ``name``; a SnapshotError saying ``missing`` when there is none."""
    found = next((item for item in items if item.name == name), None)
    if found is None:
        raise SnapshotError(missing)
    return found


SNAPSHOT_FORMAT = 1

#: Deployment states that mean "finished"; anything else (``waiting``, or a state GitHub
#: invents tomorrow) means "not finished yet".
DEPLOY_SUCCESS = frozenset({"success"})
DEPLOY_FAILED = frozenset({"failure", "error"})
DEPLOY_SUPERSEDED = frozenset({"inactive"})
#: Workflow-run conclusions that mean the deploy did not happen.
RUN_FAILED = frozenset({"failure", "timed_out", "cancelled", "startup_failure", "action_required"})
ROLLBACK_TASK = "deploy:rollback"  # the task of the tool's rollback deployments


class State(enum.Enum):
    """The six states of one instance ``(environment, head sha)``."""

    DEPLOYING = "deploying"
    DEPLOYED = "deployed"
    VALIDATING = "validating"
    FAILED = "failed"
    PROMOTED = "promoted"
    COMPLETE = "complete"


class Result(enum.Enum):
    """A validator's verdict."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # the validator itself broke (it raised): the instance fails all the same

    @property
    def bad(self) -> bool:
        return self in (Result.FAILED, Result.ERROR)


# -- facts ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeploymentStatus:
    id: int
    state: str
    environment_url: str = ""
    url: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Deployment:
    """A GitHub deployment with all its statuses (in any order: we sort by id)."""

    id: int
    environment: str
    sha: str
    task: str = "deploy"
    url: str = ""
    rollback_of: str | None = None  # payload["promote"]["rollback_of"]
    plan: str | None = None  # payload["promote"]["plan"]
    reset_of: str | None = None  # payload["promote"]["reset_of"]: a reset rollback's deploy
    carries: tuple[str, ...] = ()  # payload["promote"]["carries"]: the failed head's plans
    statuses: tuple[DeploymentStatus, ...] = ()
    created_at: str = ""  # ISO 8601; when the deploy started, for the deploy timeout

    @property
    def latest(self) -> DeploymentStatus | None:
        return max(self.statuses, key=lambda s: s.id, default=None)

    @property
    def is_rollback(self) -> bool:
        return self.task == ROLLBACK_TASK


@dataclasses.dataclass(frozen=True)
class CommitStatus:
    """One commit status; a context may appear many times (its whole history)."""

    id: int
    context: str
    state: str  # pending | success | failure | error
    description: str = ""
    target_url: str | None = None
    created_at: str = ""
    creator: str = ""


@dataclasses.dataclass(frozen=True)
class WorkflowRun:
    id: int
    name: str
    path: str  # ".github/workflows/deploy.yml"
    head_sha: str
    status: str  # queued | in_progress | completed | waiting | ...
    conclusion: str | None = None
    event: str = "push"
    url: str = ""
    created_at: str = ""
    head_branch: str = ""  # the branch pushed or dispatched on: which environment it deploys


@dataclasses.dataclass(frozen=True)
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None = None
    url: str = ""


@dataclasses.dataclass(frozen=True)
class PullRequest:
    number: int
    head_ref: str
    head_sha: str
    base_ref: str
    state: str = "open"  # open | closed
    merged: bool = False
    merge_commit_sha: str | None = None
    title: str = ""
    body: str = ""
    author: str = ""
    url: str = ""
    merged_at: str | None = None  # ISO 8601, GitHub's format


@dataclasses.dataclass(frozen=True)
class Plan:
    """A plan as the plan store sees it. ``fix_key`` is ``env@sha`` for fix plans."""

    id: str
    title: str = ""
    status: str = "doing"  # inbox | doing | done
    priority: int = 2
    parent: str | None = None
    fix_key: str | None = None
    failed_plans: tuple[str, ...] = ()  # a fix plan carries the plans whose failure it fixes
    completed_with: str | None = None  # a failed plan completed by its fix plan's journey
    returned: str | None = None  # why a rollback sent the plan back to the inbox
    problem: str | None = None  # its file does not parse: reported, and only it is affected

    @property
    def done(self) -> bool:
        return self.status == "done"


@dataclasses.dataclass(frozen=True)
class Commit:
    """One commit of an environment branch's first-parent chain, as far as the read went."""

    sha: str
    parents: tuple[str, ...] = ()
    message: str = ""
    committer: str = ""  # "name <email> date": the commits of one merge operation share it
    files: tuple[str, ...] | None = None  # paths changed from the first parent, where read
    validated: bool | None = None  # promote/<env> success and never failure (None: not read)
    pulls: tuple[int, ...] = ()  # merged PRs into this branch that GitHub ties to the commit
    tree: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a validator's ``check()`` said about one instance."""

    validator: str
    result: Result
    url: str | None = None
    summary: str = ""


@dataclasses.dataclass(frozen=True)
class Approval:
    """A recorded manual decision: who said what about which sha."""

    user: str
    sha: str
    state: str  # approved | rejected
    url: str = ""
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Checklist:
    """The manual test's checklist issue for one ``env@sha``."""

    number: int
    state: str = "open"  # open | closed
    url: str = ""


@dataclasses.dataclass(frozen=True)
class EnvFacts:
    """Everything GitHub says about one environment and its current head."""

    name: str
    head: str | None  # None: the branch does not exist
    branch_head: str | None = (
        None  # the branch tip, when plan bookkeeping commits sit above ``head``
    )
    merged_pull: PullRequest | None = None  # the PR whose merge produced ``head``
    deployments: tuple[Deployment, ...] = ()  # every deployment of this environment read
    statuses: tuple[CommitStatus, ...] = ()  # commit statuses on ``head``
    runs: tuple[WorkflowRun, ...] = ()  # workflow runs for ``head``
    checks: tuple[CheckRun, ...] = ()  # check runs on ``head``
    verdicts: tuple[Verdict, ...] = ()  # validator results gathered by the shell
    promotions: tuple[PullRequest, ...] = ()  # PRs to the next env: the open one, the merged one
    next_contains_head: bool | None = None  # does the next env branch already hold ``head``?
    known_good: tuple[str, ...] = ()  # older heads validated here (rollback targets)
    approvals: tuple[Approval, ...] = ()  # manual decisions recorded for this environment
    change_authors: tuple[str, ...] = ()  # who wrote the change now at ``head``
    # The first-parent chain from the branch tip down to the newest validated commit below
    # ``head`` (or as far as the read went), and the merged PRs its commits came from.
    history: tuple[Commit, ...] = ()
    arrivals: tuple[PullRequest, ...] = ()
    # Shas the shell found contained in the previous environment's newest validated head.
    upstream_contains: tuple[str, ...] = ()
    checklist: Checklist | None = None  # the checklist issue of ``head``, if one was opened


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """All facts for one decision, read at one moment."""

    repository: str
    taken_at: str  # ISO 8601 UTC, "2026-11-24T10:00:00Z"
    environments: tuple[EnvFacts, ...]
    open_pulls: tuple[PullRequest, ...] = ()  # open PRs whose base is an env branch
    plans: tuple[Plan, ...] = ()
    format: int = SNAPSHOT_FORMAT
    proposed: tuple[Plan, ...] = ()  # plans only the open PRs into the first env hold so far

    def env(self, name: str) -> EnvFacts:
        return _named(self.environments, name, f"snapshot has no facts for environment {name!r}")


# -- configuration shapes the core needs --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Environment:
    """One stage of the pipeline. Contributed by environment plugins."""

    name: str
    branch: str
    order: int
    production: bool = False
    validators: tuple[str, ...] = ()
    rollback: str = "redeploy"
    url: str | None = None
    deploy_timeout_seconds: int = 1800
    validation_timeout_seconds: int = 3600
    approval_timeout_seconds: int = 7 * 24 * 3600
    manual: tuple[str, ...] = ()  # validators that wait for a person (approval timeout)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Environments in promotion order; the last is production."""

    environments: tuple[Environment, ...]
    deploy_workflow: str | None = "deploy.yml"
    deploy_grace_seconds: int = 120
    # Where the plan store writes its bookkeeping commits; None when it writes none.
    bookkeeping_dir: str | None = "plans"
    # Strategies that move the branch back (revert, reset): a rollback with one takes the
    # failed change out of the branch, not only out of the running environment.
    restoring: tuple[str, ...] = ("revert", "reset")

    def __post_init__(self) -> None:
        names = [e.name for e in self.environments]
        if not names:
            raise SnapshotError("a pipeline needs at least one environment")
        if len(set(names)) != len(names):
            raise SnapshotError(f"environment names repeat: {', '.join(names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.environments)

    def get(self, name: str) -> Environment:
        known = ", ".join(self.names)
        return _named(self.environments, name, f"unknown environment {name!r} (known: {known})")

    def before(self, name: str) -> Environment | None:
        index = self.names.index(name)
        return self.environments[index - 1] if index else None

    def after(self, name: str) -> Environment | None:
        envs = self.environments
        index = self.names.index(name)
        return envs[index + 1] if index + 1 < len(envs) else None


# -- what we derived -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The GitHub object a conclusion rests on, so ``status`` can explain itself."""

    kind: str  # deployment | deployment_status | commit_status | workflow_run | pull_request ...
    id: int | str | None
    url: str | None
    summary: str


@dataclasses.dataclass(frozen=True)
class Rollback:
    """A rollback recorded for a failed instance, and how far it got."""

    deployment_id: int
    target: str
    state: str  # latest status of the rollback deployment, "" when none yet
    plan: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.state in DEPLOY_SUCCESS

    @property
    def failed(self) -> bool:
        return self.state in DEPLOY_FAILED


@dataclasses.dataclass(frozen=True)
class EnvState:
    """The derived state of one instance ``(environment, sha)``."""

    name: str
    branch: str
    sha: str | None
    state: State | None  # None: nothing was ever deployed here
    plan: str | None = None  # the first of ``plans``
    production: bool = False
    evidence: tuple[Evidence, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    violation: str | None = None
    rollback: Rollback | None = None
    fix_plan: str | None = None  # id of the fix plan filed for this failure
    restores: str | None = None  # this head is a revert/reset rollback of the failed ``env@sha``
    restores_fix: str | None = None  # the fix plan filed for that failure
    plans: tuple[str, ...] = ()  # every plan this instance carries (see machine.lineage)
    taken_out: tuple[str, ...] = ()  # plans a rollback of this branch took back out of it
    branch_head: str | None = None  # the branch tip (bookkeeping commits may sit above ``sha``)
    violating: tuple[str, ...] = ()  # the commits behind ``violation``
    last_validated: str | None = None  # the newest validated commit below ``sha``
    clock: str | None = None  # "deploying for 4 min, times out in 26 min", while it runs
    unknown: tuple[str, ...] = ()  # carried plans the plan store has no record of

    @property
    def key(self) -> str:
        return ledger.key(self.name, self.sha or "")


@dataclasses.dataclass(frozen=True)
class PipelineState:
    repository: str
    environments: tuple[EnvState, ...]
    halted: bool
    fix_plan: str | None  # the unfinished fix plan that holds the halt
    active_plan: str | None  # the first of ``active_plans``
    active_plans: tuple[str, ...] = ()  # the plans of the instance furthest along: they move
    in_flight: tuple[tuple[str, str], ...] = ()  # (plan, environment) for unfinished plans
    plan_problems: tuple[tuple[str, str], ...] = ()  # (plan, why its record does not parse)

    def env(self, name: str) -> EnvState:
        return _named(self.environments, name, f"unknown environment {name!r}")


# -- what to do next -------------------------------------------------------------------------


class _Describes:
    """What every effect shares: a ``kind`` for people and a one-line description."""

    kind: typing.ClassVar[str]

    def describe(self) -> str:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]
        shown = (f"{f.name}={_shown(getattr(self, f.name))}" for f in fields if f.repr)
        return " ".join((self.kind, *shown))


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_shown(v) for v in value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class SetStatus(_Describes):
    """A commit status: a verdict ``promote/<env>[/<validator>]`` (or a gate)."""

    kind: typing.ClassVar[str] = "set-status"
    sha: str
    context: str
    state: str
    description: str = ""
    target_url: str = ""


@dataclasses.dataclass(frozen=True)
class StartValidator(_Describes):
    kind: typing.ClassVar[str] = "start-validator"
    environment: str
    sha: str
    validator: str


@dataclasses.dataclass(frozen=True)
class DispatchDeploy(_Describes):
    """R1 when nothing started: dispatch the deploy workflow on the branch for the sha."""

    kind: typing.ClassVar[str] = "dispatch-deploy"
    environment: str
    branch: str
    sha: str
    workflow: str


@dataclasses.dataclass(frozen=True)
class OpenPromotion(_Describes):
    """R7: the PR ``head → base``, with what was validated and what it carries."""

    kind: typing.ClassVar[str] = "open-pr"
    environment: str
    head: str
    base: str
    sha: str
    plans: tuple[str, ...] = ()
    checks: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    evidence: tuple[str, ...] = dataclasses.field(default=(), repr=False)
    authors: tuple[str, ...] = dataclasses.field(default=(), repr=False)


@dataclasses.dataclass(frozen=True)
class CompletePlans(_Describes):
    """R8: the plans a validated production head carries, recorded done."""

    kind: typing.ClassVar[str] = "complete-plans"
    plans: tuple[str, ...]
    completed_with: tuple[tuple[str, str], ...] = ()  # (failed plan, the fix it completed with)


@dataclasses.dataclass(frozen=True)
class RollBack(_Describes):
    """R9's first half: roll the environment back from the failed sha."""

    kind: typing.ClassVar[str] = "rollback"
    environment: str
    failed_sha: str
    strategy: str
    plan: str  # the fix plan's id, recorded with the rollback
    carries: tuple[str, ...] = ()  # the plans the failed head carried


@dataclasses.dataclass(frozen=True)
class FileFixPlan(_Describes):
    """R9's second half: file the fix plan, with everything a person needs to start."""

    kind: typing.ClassVar[str] = "file-fix-plan"
    plan_id: str
    failure: str  # env@sha
    environment: str
    failed_sha: str
    rollback_target: str
    rollback_state: str
    rollback_detail: str = dataclasses.field(default="", repr=False)
    culprit: int | None = None
    culprit_text: str | None = dataclasses.field(default=None, repr=False)
    parent: str | None = None
    failed_plans: tuple[str, ...] = ()  # they travel on with the fix
    returned: tuple[str, ...] = ()  # a rollback took their code out of every environment
    # The failing checks, where the facts hold them; None: read them from the failed sha.
    failing: tuple[tuple[str, str | None], ...] | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class CloseChecklist(_Describes):
    """The checklist issue of a decided instance, closed (a run may have died before)."""

    kind: typing.ClassVar[str] = "close-checklist"
    number: int
    environment: str


Effect = (
    SetStatus
    | StartValidator
    | DispatchDeploy
    | OpenPromotion
    | CompletePlans
    | RollBack
    | FileFixPlan
    | CloseChecklist
)


def duration(seconds: float) -> str:
    """``42 s``, ``4 min``, ``3 h 5 min``, ``6 d 23 h``: a length of time for people."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one GitHub timestamp (``2026-11-24T10:00:00Z``) to another."""

    def parse(text: str) -> datetime.datetime:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(later) - parse(earlier)).total_seconds()


class Did(str):
    """One line of what a run did (the text people read) and, for scripts, what kind of
    write it was, what it was about, and where GitHub shows it (``--json``'s ``did``)."""

    kind: str
    target: str
    url: str | None

    def __new__(
        cls, text: str, kind: str = "note", target: str = "", url: str | None = None
    ) -> Did:
        made = super().__new__(cls, text)
        made.kind, made.target = kind, target
        made.url = url if url is not None else _first_url(text)
        return made


def _first_url(text: str) -> str | None:
    for word in text.replace("(", " ").replace(")", " ").split():
        if word.startswith(("http://", "https://")):
            return word.rstrip(".,;:")
    return None


@dataclasses.dataclass(frozen=True)
class Action:
    """Exactly one next step for the whole pipeline: a transition with its effects, or a wait."""

    transition: str | None  # "R1".."R9", or None when there is nothing to do or we must wait
    environment: str | None = None
    source: State | None = None
    target: State | None = None
    effects: tuple[Effect, ...] = ()
    waiting_for: str | None = None
    plan: str | None = None
    stop: str | None = None  # set when a person must act (failed rollback, violation)


# -- JSON round trip ---------------------------------------------------------------------

T = TypeVar("T")


def to_json_data(value: Any) -> Any:
    """Plain JSON-able data for a dataclass tree (enums by value, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_json_data(v) for v in value]
    return value


def from_json_data(cls: type[T], data: Any, where: str = "snapshot") -> T:
    """Build ``cls`` from JSON data, naming the exact field when something is off."""
    return typing.cast(T, _convert(cls, data, where))


def _convert(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, data, where)
            except SnapshotError as e:
                errors.append(str(e))
        raise SnapshotError(errors[0] if errors else f"{where}: unexpected null")
    if origin is tuple:
        if not isinstance(data, list):
            raise SnapshotError(f"{where}: expected a list, got {type(data).__name__}")
        (item,) = typing.get_args(tp)[:1]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(data))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise SnapshotError(f"{where}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp) if f.init}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SnapshotError(f"{where}: unknown key {unknown[0]!r}")
        kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in data.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:
            missing = [f.name for f in dataclasses.fields(tp) if f.name not in data]
            raise SnapshotError(
                f"{where}: missing key {missing[0]!r}" if missing else f"{where}: {e}"
            ) from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise SnapshotError(f"{where}: {data!r} is not a {tp.__name__.lower()}") from None
    if tp is Any:
        return data
    if tp in (int, str, bool):
        # bool is an int in Python; JSON true must not pass for a number, nor 1 for a bool.
        if type(data) is not tp:
            raise SnapshotError(f"{where}: expected {tp.__name__}, got {json.dumps(data)}")
        return data
    if tp is type(None):
        if data is not None:
            raise SnapshotError(f"{where}: expected null")
        return None
    raise SnapshotError(f"{where}: cannot read type {tp!r}")  # pragma: no cover - a bug


def load_snapshot(text: str, source: str = "snapshot") -> Snapshot:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{source}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise SnapshotError(f"{source}: expected a JSON object")
    if data.get("format", SNAPSHOT_FORMAT) != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{source}: snapshot format {data.get('format')!r} is not supported")
    return from_json_data(Snapshot, data, source)


def dump_snapshot(snapshot: Snapshot) -> str:
    return json.dumps(to_json_data(snapshot), indent=2, sort_keys=False) + "\n"
