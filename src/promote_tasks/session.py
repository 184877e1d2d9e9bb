"""One invocation: settings → plugins → snapshot (+ verdicts) → derive → decide, and the
step that then acts (``act.py``) under the repository's lock. Reads only, but for the lock."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import socket
import time
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from promote_tasks.act import act
from promote_tasks.act import write_baselines
from promote_tasks.act import write_gates
from promote_tasks.config import Settings
from promote_tasks.config import load_settings
from promote_tasks.errors import ConfigError
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.errors import SnapshotError
from promote_tasks.gate import Gate
from promote_tasks.gate import gates
from promote_tasks.gate import unknown_candidates
from promote_tasks.git import remote_repository
from promote_tasks.github import Connection
from promote_tasks.github import GitHub
from promote_tasks.ledger import GATE_CONTEXT
from promote_tasks.ledger import LOCK_REF
from promote_tasks.ledger import verdict_context
from promote_tasks.machine import baselines
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Action
from promote_tasks.model import Did
from promote_tasks.model import EnvFacts
from promote_tasks.model import Pipeline
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import Result
from promote_tasks.model import Snapshot
from promote_tasks.model import Verdict
from promote_tasks.model import dump_snapshot
from promote_tasks.model import load_snapshot
from promote_tasks.plans import parse_plan
from promote_tasks.plugins import collect
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.plugins import pipeline_from
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Registry
from promote_tasks.registry import ValidationRun
from promote_tasks.registry import Validator

LOCK_REF_NAME = "refs/promote/lock"
LOCK_SECONDS = 300  #: a lock not dropped by then (its run crashed) may be taken over
#: A lock held for less than this is dropped without a look at whether it is still ours:
#: another run takes over only after LOCK_SECONDS on its own clock, so only a clock more than
#: two minutes ahead of this one could have taken it meanwhile.
LOCK_SURELY_OURS = LOCK_SECONDS - 120
LOCK_WAIT = 15.0  #: seconds a run waits for another holder before it leaves the work to it
LOCK_POLL = 1.0


class PullClosed(PromoteError):
    """``promote gate --pr N`` for a PR that is merged or closed: nothing to gate."""


def event_pull(environ: Mapping[str, str]) -> int | None:
    """The number of the pull request whose event started this Actions job, if any."""
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        number = json.loads(Path(path).read_text(encoding="utf-8"))["pull_request"]["number"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return number if isinstance(number, int) else None


class LockBusy(PromoteError):
    """Another run holds the repository's lock: not an error, that run does the work."""


def lock_owner(command: str, environ: Mapping[str, str] | None) -> str:
    """Who takes the lock, for the one who finds it held: host, process, and the Actions run."""
    env = os.environ if environ is None else environ
    where = f"{socket.gethostname()}:{os.getpid()}"
    if env.get("GITHUB_RUN_ID"):
        where += f" (Actions run {env['GITHUB_RUN_ID']})"
    return f"promote {command} on {where}"


@dataclasses.dataclass
class Run:
    """Settings, plugins and (lazily) GitHub for one invocation."""

    settings: Settings
    pm: pluggy.PluginManager
    registry: Registry
    pipeline: Pipeline
    environ: Mapping[str, str] | None = None
    client_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    _github: GitHub | None = None

    @classmethod
    def load(
        cls,
        start: Path | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        settings: Settings | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> Run:
        """Settings (read from ``start`` unless given), plugins and the pipeline; GitHub is
        connected on first use, with ``client_options`` for :class:`GitHub` (timeout, attempts)."""
        settings = settings or load_settings(start)
        pm = make_plugin_manager(plugins_dir=settings.plugins_path())
        registry = collect(pm, settings)
        pipeline = pipeline_from(registry, settings)
        first = pipeline.environments[0].branch
        settings = dataclasses.replace(settings, first_branch=first)  # plugins read it from here
        return cls(settings, pm, registry, pipeline, environ, dict(client_options or {}))

    @property
    def github(self) -> GitHub:
        if self._github is None:
            root = self.settings.root
            self._github = GitHub(
                Connection.from_environment(
                    self.settings.repository, self.environ, origin=lambda: remote_repository(root)
                ),
                **self.client_options,
            )
        return self._github

    def requests(self) -> dict[str, int | None]:
        """The requests this run made of GitHub, and the rate limit GitHub last said was left
        (None before any answer)."""
        stats = self._github.stats if self._github is not None else None
        return {
            "made": stats.requests if stats else 0,
            "remaining": stats.remaining if stats else None,
        }

    def new_deadline(self) -> None:
        """One more command's worth of time for talking to GitHub (``PROMOTE_DEADLINE``)."""
        if self._github is not None:
            self._github.new_deadline()

    @property
    def plan_store(self) -> PlanStore:
        return self.registry.plan_stores[self.settings.plan_store]

    # -- reading -------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Facts from GitHub, with fresh verdicts for every instance being validated."""
        return self.with_verdicts(self.facts())

    def facts(self) -> Snapshot:
        """Facts from GitHub alone: no validator is asked (what the gate needs)."""
        github = self.github

        async def read() -> Snapshot:
            snapshot = await github.read_snapshot(
                self.pipeline, lambda: self.plan_store.plans(self.settings, github)
            )
            return await self._proposed(snapshot)

        return github.run(read())

    async def _proposed(self, snapshot: Snapshot) -> Snapshot:
        """The plans that open PRs into the first environment bring in their own files, when
        the gate must choose among them and the plan store does not know them yet (a plan's
        PR usually adds ``plans/doing/<id>.md``): their priorities decide who goes first."""
        wanted = unknown_candidates(snapshot, self.pipeline)
        if not wanted or self.pipeline.bookkeeping_dir is None:
            return snapshot
        github = self.github
        root = self.pipeline.bookkeeping_dir.strip("/")

        async def plan_file(plan: str, ref: str) -> Plan | None:
            for folder in ("doing", "inbox"):
                path = f"{root}/{folder}/{plan}.md"
                text = await github.read_file(path, ref)
                if text is not None:
                    try:
                        return parse_plan(text, path).plan
                    except ConfigError:
                        return None  # the plan-lint hook names it; the gate uses the default
            return None

        found = await asyncio.gather(*(plan_file(plan, ref) for plan, ref in wanted))
        proposed = tuple(p for p in found if p is not None)
        return dataclasses.replace(snapshot, proposed=proposed) if proposed else snapshot

    def with_verdicts(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot with each validator's fresh verdict where an instance is validating
        (``promote/<env>`` pending on its head); the machine derives from it once."""
        envs = []
        for facts in snapshot.environments:
            if facts.head and validating(facts):
                verdicts = tuple(
                    self._check(name, self.validation_run(snapshot, facts.name, name))
                    for name in self.pipeline.get(facts.name).validators
                )
                facts = dataclasses.replace(facts, verdicts=verdicts)
            envs.append(facts)
        return dataclasses.replace(snapshot, environments=tuple(envs))

    def _check(self, name: str, run: ValidationRun) -> Verdict:
        """A validator's verdict; one that raises gets the verdict *error*, which fails the
        instance like any failure, and the other environments are read all the same."""
        try:
            verdict: object = self.validator(name).check(run)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
            return Verdict(name, Result.ERROR, None, f"{name} raised {type(e).__name__}: {e}"[:140])
        if not isinstance(verdict, Verdict):  # a plugin's mistake, not ours
            return Verdict(
                name, Result.ERROR, None, f"{name} returned {type(verdict).__name__}, not a Verdict"
            )
        return verdict

    def validator(self, name: str) -> Validator:
        """The validator plugin a configured validator name uses."""
        return self.registry.validators[self.settings.validators[name].use]

    def validation_run(self, snapshot: Snapshot, env: str, name: str) -> ValidationRun:
        facts: EnvFacts = snapshot.env(env)
        assert facts.head is not None
        return ValidationRun(
            name=name,
            environment=self.pipeline.get(env),
            sha=facts.head,
            options=self.settings.validators[name].options,
            settings=self.settings,
            snapshot=snapshot,
            github=self._github,
            pipeline=self.pipeline,
        )

    def decide(self, snapshot: Snapshot) -> tuple[PipelineState, Action]:
        state = derive(snapshot, self.pipeline)
        return state, decide(state, snapshot, self.pipeline)

    def gates_to_write(self, snapshot: Snapshot, state: PipelineState) -> tuple[Gate, ...]:
        """The gates whose ``promote/gate`` on GitHub is not what it should be (reads only)."""
        github = self.github
        wanted = list({g.sha: g for g in gates(state, snapshot, self.pipeline)}.values())
        # A promotion's head is an environment's head: the snapshot just read its statuses.
        known = {f.head: f.statuses for f in snapshot.environments if f.head}

        async def look(sha: str) -> dict[str, Any] | None:
            if sha not in known:
                return await github.latest_status(sha, GATE_CONTEXT)
            mine = [s for s in known[sha] if s.context == GATE_CONTEXT]
            newest = max(mine, key=lambda s: s.id, default=None)
            return None if newest is None else dataclasses.asdict(newest)

        async def latest() -> list[dict[str, Any] | None]:
            return list(await asyncio.gather(*(look(g.sha) for g in wanted)))

        found = github.run(latest()) if wanted else []
        return tuple(
            gate
            for gate, status in zip(wanted, found, strict=True)
            if status is None
            or status["state"] != gate.state
            or (status.get("description") or "") != gate.description
        )

    @contextlib.contextmanager
    def locked(
        self, snapshot: Snapshot, command: str, *, required: bool = True, look: bool = True
    ) -> Iterator[str | None]:
        """Hold the repository's lock while writing (DESIGN §3.6: one writer at a time): a
        ref that only one run can create, with an owner and an expiry so that a crashed
        holder is taken over. Waits ``LOCK_WAIT`` seconds for another holder, then raises
        :class:`LockBusy`. Yields a line when it took over a stale lock, else None.

        ``required=False``: a token that may not write refs (a reviewer's, the gate job's
        ``contents: read``) goes on without it; what it writes is looked for first anyway.

        ``look=False``: the first try creates the lock without looking at it first (`next`
        and `gate`, which run on every event: a free lock costs a request less, a busy one
        a lock commit nothing points to); the tries after it look. A command that fails
        when the lock is busy looks first, so it writes nothing then.
        """
        github = self.github
        tree = self._any_tree(snapshot)
        owner = lock_owner(command, self.environ)
        waited_until = time.monotonic() + LOCK_WAIT
        while True:
            now = datetime.datetime.now(datetime.UTC)
            stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
            until = (now + datetime.timedelta(seconds=LOCK_SECONDS)).strftime("%Y-%m-%dT%H:%M:%SZ")
            try:
                mine, held = github.run(
                    github.take_lock(tree, owner, stamp, until, stamp, look=look)
                )
                look = True
            except GitHubError as e:
                if not required and e.status in (403, 404):
                    yield None
                    return
                raise GitHubError(
                    f"cannot take promote's lock ({LOCK_REF_NAME}): {e}", e.status
                ) from None
            if mine is not None:
                taken = time.monotonic()
                break
            if time.monotonic() >= waited_until:
                who = f" by {held[0]}" if held[0] else ""
                raise LockBusy(
                    f"another promote run holds the lock (since {held[1] or 'a moment ago'}{who}); "
                    "it goes on from where that one stops"
                )
            time.sleep(LOCK_POLL)
        note = None
        if held[0] or held[1]:
            note = (
                f"took over a stale lock ({held[0] or 'an unknown run'}, since {held[1] or '?'}, "
                f"expired {held[2] or 'long ago'})"
            )
        try:
            yield note
        finally:
            with contextlib.suppress(GitHubError):  # it expires anyway
                look = time.monotonic() - taken >= LOCK_SURELY_OURS
                github.run(github.drop_lock(mine, look=look))

    def _any_tree(self, snapshot: Snapshot) -> str:
        """A tree that exists in the repository, for the lock's commit (any will do)."""
        for facts in snapshot.environments:
            for commit in facts.history:
                if commit.tree:
                    return commit.tree
        head = next(f.head for f in snapshot.environments if f.head)
        github = self.github
        return str(github.run(github.git_commit(head))["tree"]["sha"])

    # -- one next --------------------------------------------------------------------------

    def step(self, *, dry_run: bool = False, snapshot_file: str | None = None) -> Step:
        """One ``next``: read, derive, decide, and act (unless dry) under the lock; a run with
        nothing to write takes no lock. Raises :class:`LockBusy` when another run holds it."""
        self.new_deadline()  # each next of a watch has the whole budget for talking to GitHub
        facts = self.snapshot() if not snapshot_file else self.snapshot_from(snapshot_file)
        state, action = self.decide(facts)
        if dry_run or snapshot_file:
            return Step(
                facts, state, action, tuple(f"would {e.describe()}" for e in action.effects)
            )
        if not action.effects and not self.gates_to_write(facts, state):
            return Step(facts, state, action, ())
        with self.locked(facts, "next", look=False) as note:
            # Read again as the only writer: another run may have acted since the first read.
            facts = self.snapshot()
            state, action = self.decide(facts)
            did = act(self, action, facts, state, read_under_lock=True)
        took = (Did(note, "lock", f"refs/{LOCK_REF}"),) if note else ()
        return Step(facts, state, action, took + did)

    # -- a person's decision, a PR's gate ----------------------------------------------------

    def record_decision(
        self, env_name: str | None, sha: str | None, approve: bool, reason: str
    ) -> str:
        """Record a designated reviewer's decision on the exact sha under test, through the
        environment's manual validator (any validator with ``waiting`` and ``record``)."""
        deciders = {
            e.name: [v for v in e.validators if hasattr(self.validator(v), "record")]
            for e in self.pipeline.environments
        }
        if not env_name:
            manual = [name for name, found in deciders.items() if found]
            if len(manual) != 1:
                raise PromoteError("say which environment: --env NAME")
            env_name = manual[0]
        env = self.pipeline.get(env_name)
        if not deciders[env.name]:
            raise PromoteError(f"{env.name} has no manual-approval validator")
        name = deciders[env.name][0]
        plugin: Any = self.validator(name)
        snapshot = self.facts()  # the state is enough: the validators' own checks are not needed
        state = derive(snapshot, self.pipeline).env(env.name)
        if state.sha is None or not plugin.waiting(
            self.validation_run(snapshot, env.name, name), state.state
        ):
            label = state.state.value if state.state else "not deployed"
            raise PromoteError(f"{env.name} is not waiting for a manual test (it is {label})")
        if sha and len(sha) < 7:
            raise PromoteError(
                f"--sha {sha} is too short: give at least 7 characters of the sha you tested"
            )
        if sha and not state.sha.startswith(sha.lower()):
            raise PromoteError(
                f"{env.name} is at {state.sha[:7]}, not {sha}: decisions are bound to the exact sha"
            )
        run = self.validation_run(snapshot, env.name, name)
        user = plugin.decider(run)  # refused before anything is written, the lock included
        with self.locked(snapshot, "approve" if approve else "reject", required=False):
            return str(plugin.record(run, user, approve, reason))

    def adopt(self, only: str | None, *, dry_run: bool = False) -> list[str]:
        """Record each environment promote never validated as known-good at its head (the
        baseline a team starts from); one line per environment."""
        if only is not None:
            self.pipeline.get(only)  # an unknown environment: a one-line error, nothing written
        facts = self.facts()
        found = baselines(facts, self.pipeline, only)
        chosen = [b for b in found if b.why is None]
        lines = [f"{b.environment}: not adopted, {b.why}" for b in found if b.why is not None]
        if dry_run or not chosen:
            verb = "would adopt" if dry_run else "adopted"
            return [*(f"{b.environment}: {verb} {b.sha[:7]}" for b in chosen if b.sha), *lines]
        environ = os.environ if self.environ is None else self.environ
        who = environ.get("GITHUB_ACTOR") or environ.get("USER") or "a person"
        with self.locked(facts, "adopt"):
            written = write_baselines(self, chosen, who)
        return [*(f"{b.environment}: {w}" for b, w in zip(chosen, written, strict=True)), *lines]

    def gate(self, facts: Snapshot, number: int | None = None) -> tuple[tuple[Gate, bool], ...]:
        """Write the gates (of PR ``number``, or of every open PR into an environment
        branch) that are not what they should be, under the lock when there are any; each
        gate and whether it was written."""
        state = derive(facts, self.pipeline)
        heads = {p.head_sha for p in facts.open_pulls if number is None or p.number == number}
        pending = [g for g in self.gates_to_write(facts, state) if g.sha in heads]
        locked = (
            self.locked(facts, "gate", required=False, look=False)
            if pending
            else contextlib.nullcontext()
        )
        with locked:
            return write_gates(self, facts, state, only=number)

    def gateable(self, facts: Snapshot, number: int) -> None:
        """PR ``number`` is open and targets an environment branch; else a one-line error."""
        found = next((p for p in facts.open_pulls if p.number == number), None)
        if found is not None:
            base = found.base_ref
        else:
            github = self.github
            try:
                pull = github.run(github.pull(number))
            except GitHubError as e:
                if e.status == 404:
                    raise PromoteError(f"no pull request #{number} in {facts.repository}") from None
                raise
            if pull.get("merged_at") or pull.get("state") != "open":
                state = "merged" if pull.get("merged_at") else "closed"
                raise PullClosed(f"pull request #{number} is {state}: only open PRs are gated")
            base = pull["base"]["ref"]
        branches = [e.branch for e in self.pipeline.environments]
        if base not in branches:
            raise PromoteError(
                f"pull request #{number} targets {base!r}, not an environment branch "
                f"({', '.join(branches)}): the gate does not apply"
            )

    def snapshot_from(self, path: str) -> Snapshot:
        """A saved snapshot, which must cover this pipeline's environments."""
        snapshot = read_snapshot_file(path)
        have = {e.name for e in snapshot.environments}
        missing = [n for n in self.pipeline.names if n not in have]
        if missing:
            raise SnapshotError(f"{path}: no facts for environment {missing[0]!r} of this pipeline")
        return snapshot


@dataclasses.dataclass(frozen=True)
class Step:
    """What one ``next`` read, derived, decided and did."""

    snapshot: Snapshot
    state: PipelineState
    action: Action
    did: tuple[str, ...]


def validating(facts: EnvFacts) -> bool:
    """Is the head's ``promote/<env>`` verdict pending (its validators are asked then)?"""
    mine = [s for s in facts.statuses if s.context == verdict_context(facts.name)]
    return bool(mine) and max(mine, key=lambda s: s.id).state == "pending"


def read_snapshot_file(path: str) -> Snapshot:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SnapshotError(f"cannot read snapshot {path}: not UTF-8 text") from None
    return load_snapshot(text, path)


def write_snapshot_file(path: str, snapshot: Snapshot) -> None:
    try:
        Path(path).write_text(dump_snapshot(snapshot), encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot write snapshot {path}: {e.strerror}") from None
