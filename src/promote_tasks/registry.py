"""What plugins contribute (``Protocol``s), the registers they contribute it through, and the
typed ``GitHubPort`` they may call. Imports neither pluggy nor any I/O library."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
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


T = TypeVar("T")


class GitHubPort(Protocol):
    """What validators, rollback strategies and plan stores may call on GitHub
    (``promote_tasks.github.GitHub`` is one). The methods are coroutines, run with ``run``
    from synchronous code; every write looks first, so each is safe to call again."""

    def run(self, coroutine: Awaitable[T]) -> T: ...

    async def write_once(
        self, look: Callable[[], Awaitable[T | None]], write: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """Look, write, and after a failure look again; (result, written by this call)."""

    # -- reads --

    async def user(self) -> str:
        """Who the token belongs to."""

    async def read_file(self, path: str, ref: str) -> str | None:
        """A text file at ``ref``, or None when there is none."""

    async def tree(
        self, ref: str, *, conditional: bool = False, within: str | None = None
    ) -> list[dict[str, Any]]:
        """The recursive tree at ``ref`` (all of ``within`` when GitHub cuts the tree short)."""

    async def blob(self, sha: str, path: str) -> str:
        """The text of blob ``sha`` (the file at ``path``)."""

    async def ref_sha(self, ref: str) -> str | None:
        """The sha ``heads/<b>`` or ``tags/<t>`` points to, or None."""

    async def git_commit(self, sha: str) -> dict[str, Any]:
        """A git commit object (tree, parents, author)."""

    async def commit(self, ref: str) -> dict[str, Any]:
        """The commit ``ref`` names (a sha, a short sha, a branch), with its files."""

    async def compare(self, base: str, head: str) -> dict[str, Any]: ...

    async def statuses_of(self, sha: str) -> list[dict[str, Any]]:
        """Every commit status on ``sha``."""

    async def pull(self, number: int) -> dict[str, Any]: ...

    async def pulls_from(self, head: str, base: str) -> list[dict[str, Any]]:
        """Every PR ``head -> base`` in any state, newest first."""

    async def pull_commits(self, number: int) -> list[dict[str, Any]]:
        """The commits of PR ``number``, oldest first."""

    async def merged_pull_of(self, sha: str, base: str) -> dict[str, Any] | None:
        """The PR merged into ``base`` that produced ``sha``, if any."""

    async def issues(self, label: str) -> list[dict[str, Any]]:
        """Every issue labelled ``label``, open or closed."""

    async def deployments(self, environment: str) -> list[dict[str, Any]]:
        """``environment``'s deployments, newest first."""

    async def workflow_runs(self, workflow: str, head_sha: str) -> list[dict[str, Any]]:
        """The runs of ``workflow`` at ``head_sha``."""

    async def pending_deployments(self, run_id: int) -> list[dict[str, Any]]:
        """The deployments a workflow run waits on."""

    async def reviews_for_run(self, run_id: int) -> list[dict[str, Any]]:
        """The environment reviews given on a workflow run."""

    # -- writes --

    async def set_status(
        self,
        sha: str,
        context: str,
        state: str,
        description: str = "",
        target_url: str = "",
        *,
        seen: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """Set a commit status unless it already says that; one line. ``seen``: the sha's
        statuses as just read under the lock, looked at instead of asking GitHub first."""

    async def open_pull(
        self, head: str, base: str, title: str, body: str, sha: str | None = None
    ) -> tuple[int | None, str, bool]:
        """Find the PR ``head -> base`` or create it; (number, url, created)."""

    async def merge_pull(self, number: int, sha: str, methods: tuple[str, ...]) -> str:
        """Merge PR ``number`` at ``sha``; the new base sha."""

    async def checklist_issue(
        self, key: str, title: str, body: str, assignees: list[str]
    ) -> tuple[int, str, bool]:
        """Find the checklist issue of ``key`` (``env@sha``) or open it."""

    async def comment(self, number: int, body: str) -> str:
        """Post ``body`` on issue ``number`` once; its URL."""

    async def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        """Open an issue (sent once: look first with ``write_once``)."""

    async def update_issue(
        self,
        number: int,
        *,
        state: str | None = None,
        labels: list[str] | None = None,
        body: str | None = None,
    ) -> None:
        """Set what is given of an issue's state, labels and body."""

    async def close_issue(self, number: int) -> None: ...

    async def commit_changes(
        self, branch: str, message: str, changes: Mapping[str, str | None]
    ) -> str:
        """One commit on ``branch``: path -> new text, or None to delete; the new sha."""

    async def create_tree(self, entries: list[dict[str, Any]], base_tree: str | None) -> str: ...

    async def create_commit(self, message: str, tree: str, parents: list[str]) -> str: ...

    async def ensure_ref(self, ref: str, sha: str) -> tuple[str, bool]:
        """Create ``refs/<ref>`` at ``sha`` unless it exists; (its sha, created)."""

    async def force_branch(self, branch: str, sha: str) -> bool:
        """Point ``branch`` at ``sha``, forcing it; False when it already pointed there."""

    async def rollback_deployment(
        self,
        environment: str,
        ref: str,
        failed_sha: str,
        plan: str,
        description: str = "",
        *,
        task: str = ...,
        key: str = ...,
        carries: tuple[str, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """Find or create the rollback deployment of ``failed_sha``; (deployment, created)."""

    async def dispatch(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> str:
        """Dispatch ``workflow`` on ``ref`` (never sent twice); the run's URL."""

    async def deploy_once(
        self, workflow: str | None, ref: str, environment: str, sha: str, anchor: Mapping[str, Any]
    ) -> str:
        """Dispatch a deploy of ``sha`` unless one was set off since ``anchor``; one line."""

    async def review_deployments(
        self, run_id: int, environment_ids: list[int], state: str, comment: str
    ) -> None:
        """Approve or reject a run's pending deployments."""


@dataclasses.dataclass(frozen=True)
class ValidationRun:
    """What a validator is told about the instance it validates."""

    name: str  # the configured name, used in the status context promote/<env>/<name>
    environment: Environment
    sha: str
    options: Mapping[str, Any]
    settings: Settings
    snapshot: Snapshot
    github: GitHubPort | None = None  # for validators that read or write GitHub
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
    github: GitHubPort
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

    async def plans(self, settings: Settings, github: GitHubPort) -> tuple[Plan, ...]:
        """Every plan the store knows, with its status."""

    async def create(self, settings: Settings, github: GitHubPort, plan: Plan, body: str) -> Plan:
        """File a new plan, unless one with the same id exists (then return that one)."""

    async def complete(
        self,
        settings: Settings,
        github: GitHubPort,
        plan_ids: tuple[str, ...],
        completed_with: Mapping[str, str] | None = None,
    ) -> tuple[str, ...]:
        """Mark plans done, and their parents when all their children are; return the ids
        moved (none twice; ids the store does not know are skipped). ``completed_with``: for
        a failed plan completed by its fix plan's journey, the fix plan's id, to record."""

    async def reopen(
        self, settings: Settings, github: GitHubPort, plan_ids: tuple[str, ...], reason: str
    ) -> tuple[str, ...]:
        """Return plans to the inbox with ``reason`` recorded (a rollback took their code out
        of every environment); return the ids moved."""


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
    def github(self) -> GitHubPort: ...

    @property
    def plan_store(self) -> PlanStore: ...

    def validator(self, name: str) -> Validator: ...

    def snapshot(self) -> Snapshot: ...

    def validation_run(self, snapshot: Snapshot, env: str, name: str) -> ValidationRun: ...
