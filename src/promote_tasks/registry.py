"""What plugins contribute, and the registers they contribute it through.

Plugins register named objects; the core never asks pluggy while deciding. This module
defines the shapes (``Protocol``s) and imports neither pluggy nor any I/O library.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar
from typing import Generic
from typing import Protocol
from typing import TypeVar
from typing import runtime_checkable

from promote_tasks.errors import PluginError

if TYPE_CHECKING:
    from promote_tasks.config import Settings
    from promote_tasks.model import EnvFacts
    from promote_tasks.model import Environment
    from promote_tasks.model import Pipeline
    from promote_tasks.model import Plan
    from promote_tasks.model import Snapshot
    from promote_tasks.model import Verdict


@dataclasses.dataclass(frozen=True)
class ValidationRun:
    """What a validator is told about the instance it validates."""

    name: str  # the configured name, used in the status context promote/<env>/<name>
    environment: Environment
    sha: str
    options: Mapping[str, Any]
    settings: Settings
    snapshot: Snapshot
    github: Any = None  # the GitHub adapter, for validators that read or write GitHub
    pipeline: Pipeline | None = None  # the environments the plugins built

    @property
    def facts(self) -> EnvFacts:
        return self.snapshot.env(self.environment.name)

    @property
    def first_branch(self) -> str:
        """The first environment's branch, where plans' feature PRs merge."""
        if self.pipeline is not None:
            return self.pipeline.environments[0].branch
        return self.settings.environments[0].branch


@runtime_checkable
class Validator(Protocol):
    """Checks one instance after its deployment. ``check`` must not block.

    Optionally also ``option_problem(option, value) -> str | None``: what is wrong with a
    configured value of the right type ("expected a positive number of seconds"), or None.
    The settings are refused naming the key, before anything is read or written: a value
    that can only fail the check (a negative timeout) would turn a typo into an incident.
    """

    name: str  # the name configuration refers to with ``use = "<name>"``
    #: option name -> expected type; configured options are checked against it
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]]

    def start(self, run: ValidationRun) -> None:
        """Kick off whatever runs the validation (idempotent; may do nothing)."""

    def check(self, run: ValidationRun) -> Verdict:
        """Return pending, passed or failed, with a link to the evidence."""


@dataclasses.dataclass(frozen=True)
class RollbackRun:
    environment: Environment
    failed_sha: str
    target: str
    plan: str  # the fix plan's id, recorded in the rollback's payload
    settings: Settings
    github: Any = None
    repo_path: str | None = None  # the local clone, for strategies that need git
    plans: tuple[str, ...] = ()  # the plans the failed head carried, to record with it
    undo: bool = False  # taking a violation back out (no failure): not a failure's rollback

    @property
    def key(self) -> str:
        """The failure rolled back, ``env@sha``: what ``Promote-Rollback-Of:`` records."""
        from promote_tasks.ledger import key

        return key(self.environment.name, self.failed_sha)


@runtime_checkable
class RollbackStrategy(Protocol):
    """Returns an environment to its known-good commit."""

    name: str
    opt_in: bool  # True: only used when the configuration names it explicitly

    def rollback(self, run: RollbackRun) -> str:
        """Perform the rollback idempotently; return a one-line description of what it did."""


@runtime_checkable
class PlanStore(Protocol):
    """Owns plan files (or issues): listing, filing fix plans, completing plans.

    The methods are coroutines, so that reading plans joins the snapshot's concurrent waves.
    """

    name: str

    async def plans(self, settings: Settings, github: Any) -> tuple[Plan, ...]:
        """Every plan the store knows, with its status."""

    async def create(self, settings: Settings, github: Any, plan: Plan, body: str) -> Plan:
        """File a new plan, unless one with the same id exists (then return that one)."""

    async def complete(
        self,
        settings: Settings,
        github: Any,
        plan_ids: tuple[str, ...],
        completed_with: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """Mark plans done, and their parents when all their children are; return the ids
        moved (none twice; ids the store does not know are skipped). ``completed_with``: for
        a failed plan completed by its fix plan's journey, the fix plan's id, to record."""

    async def reopen(
        self, settings: Settings, github: Any, plan_ids: tuple[str, ...], reason: str
    ) -> tuple[str, ...]:
        """Return plans to the inbox with ``reason`` recorded (a rollback took their code out
        of every environment); return the ids moved."""


T = TypeVar("T")


class Register(Generic[T]):
    """Collects named objects of one kind; a second object with the same name is an error."""

    def __init__(self, kind: str, check: Callable[[Any], bool]) -> None:
        self.kind = kind
        self.items: dict[str, T] = {}
        self.owners: dict[str, str] = {}
        self.plugin = "?"  # set by the plugin manager before each hook implementation runs
        self._check = check

    def __call__(self, item: T) -> None:
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {self.plugin} registered a {self.kind} without a name")
        if not self._check(item):
            raise PluginError(
                f"plugin {self.plugin} registered {self.kind} {name!r} of the wrong shape"
            )
        if name in self.items:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {self.owners[name]} and by {self.plugin}"
            )
        self.items[name] = item
        self.owners[name] = self.plugin


@dataclasses.dataclass(frozen=True)
class Registry:
    """Everything the plugins contributed for one run."""

    environments: Mapping[str, Environment]
    validators: Mapping[str, Validator]
    rollback_strategies: Mapping[str, RollbackStrategy]
    plan_stores: Mapping[str, PlanStore]
    owners: Mapping[str, str]  # "validator:http-health" -> plugin name


class Runner(Protocol):
    """What acting on a decision needs of one invocation (``session.Run`` is one): settings,
    plugins, the pipeline and GitHub. Typed structurally, so ``act`` needs no ``session``."""

    settings: Settings
    registry: Registry
    pipeline: Pipeline
    pm: Any  # the pluggy PluginManager

    @property
    def github(self) -> Any: ...

    @property
    def plan_store(self) -> PlanStore: ...

    def validator(self, name: str) -> Validator: ...

    def snapshot(self) -> Snapshot: ...

    def validation_run(self, snapshot: Snapshot, env: str, name: str) -> ValidationRun: ...
