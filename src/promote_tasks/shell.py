"""The imperative shell: settings → plugins → snapshot (+ verdicts) → act → tell plugins.

Tasks call this; it is the one place that turns a decided ``Action`` into writes. Every
write it performs looks first for what it would create (see ``github.py``), so running
``next`` again after a crash between two writes converges without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import socket
import time
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from promote_tasks import failures
from promote_tasks import ledger
from promote_tasks.config import Settings
from promote_tasks.config import load_settings
from promote_tasks.errors import ConfigError
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.gate import Gate
from promote_tasks.gate import gate_for
from promote_tasks.gate import gates
from promote_tasks.gate import unknown_candidates
from promote_tasks.git import remote_repository
from promote_tasks.github import Connection
from promote_tasks.github import GitHub
from promote_tasks.ledger import GATE_CONTEXT
from promote_tasks.ledger import verdict_context
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Action
from promote_tasks.model import Effect
from promote_tasks.model import EnvFacts
from promote_tasks.model import Pipeline
from promote_tasks.model import PipelineState
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Result
from promote_tasks.model import Snapshot
from promote_tasks.model import State
from promote_tasks.model import Verdict
from promote_tasks.model import split
from promote_tasks.plans import parse_plan
from promote_tasks.plugins import collect
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.plugins import notify
from promote_tasks.plugins import pipeline_from
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Registry
from promote_tasks.registry import ValidationRun

LOCK_REF_NAME = "refs/promote/lock"
LOCK_SECONDS = 300  #: a lock not dropped by then (its run crashed) may be taken over
LOCK_WAIT = 15.0  #: seconds a run waits for another holder before it leaves the work to it
LOCK_POLL = 1.0


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
        state = derive(snapshot, self.pipeline)
        envs = []
        for facts, env_state in zip(snapshot.environments, state.environments, strict=True):
            if env_state.state is State.VALIDATING and env_state.sha:
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
            verdict = self._validator(name).check(run)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
            return Verdict(name, Result.ERROR, None, f"{name} raised {type(e).__name__}: {e}"[:140])
        if not isinstance(verdict, Verdict):
            return Verdict(
                name, Result.ERROR, None, f"{name} returned {type(verdict).__name__}, not a Verdict"
            )
        return verdict

    def _validator(self, name: str) -> Any:
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
        )

    def decide(self, snapshot: Snapshot) -> tuple[PipelineState, Action]:
        state = derive(snapshot, self.pipeline)
        return state, decide(state, snapshot, self.pipeline)

    # -- acting --------------------------------------------------------------------------

    def act(self, action: Action, snapshot: Snapshot) -> tuple[str, ...]:
        """Perform the action's effects in order; the lines say what was done."""
        did = tuple(self._perform(effect, snapshot) for effect in action.effects)
        did += self.refresh_gates(snapshot)
        if action.transition:
            notify(self.pm, action=action, did=did, repository=snapshot.repository)
        return did

    def refresh_gates(self, snapshot: Snapshot) -> tuple[str, ...]:
        """Write ``promote/gate`` on every open PR into an environment branch, where it changed."""
        return tuple(
            f"gate of #{gate.pull}: {gate.state} ({gate.description})"
            for gate, written in self.write_gates(snapshot)
            if written
        )

    def gates_to_write(self, snapshot: Snapshot) -> tuple[Gate, ...]:
        """The gates whose ``promote/gate`` on GitHub is not what it should be (reads only)."""
        github = self.github
        wanted = list(
            {
                g.sha: g for g in gates(derive(snapshot, self.pipeline), snapshot, self.pipeline)
            }.values()
        )

        async def latest() -> list[dict[str, Any] | None]:
            return list(
                await asyncio.gather(*(github.latest_status(g.sha, GATE_CONTEXT) for g in wanted))
            )

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
        self, snapshot: Snapshot, command: str, *, required: bool = True
    ) -> Iterator[str | None]:
        """Hold the repository's lock while writing (DESIGN §3.6: one writer at a time): a
        ref that only one run can create, with an owner and an expiry so that a crashed
        holder is taken over. Waits ``LOCK_WAIT`` seconds for another holder, then raises
        :class:`LockBusy`. Yields a line when it took over a stale lock, else None.

        ``required=False``: a token that may not write refs (a reviewer's, the gate job's
        ``contents: read``) goes on without it; what it writes is looked for first anyway.
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
                mine, held = github.run(github.take_lock(tree, owner, stamp, until, stamp))
            except GitHubError as e:
                if not required and e.status in (403, 404):
                    yield None
                    return
                raise GitHubError(
                    f"cannot take promote's lock ({LOCK_REF_NAME}): {e}", e.status
                ) from None
            if mine is not None:
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
                github.run(github.drop_lock(mine))

    def _any_tree(self, snapshot: Snapshot) -> str:
        """A tree that exists in the repository, for the lock's commit (any will do)."""
        for facts in snapshot.environments:
            for commit in facts.history:
                if commit.tree:
                    return commit.tree
        head = next(f.head for f in snapshot.environments if f.head)
        github = self.github
        return str(github.run(github.git_commit(head))["tree"]["sha"])

    def write_gates(
        self, snapshot: Snapshot, only: int | None = None
    ) -> tuple[tuple[Gate, bool], ...]:
        """Each gate (of PR ``only``, or of every open PR into an environment branch) and
        whether it had to be written; statuses already right are left alone."""
        github = self.github
        chosen = [
            gate
            for gate in gates(derive(snapshot, self.pipeline), snapshot, self.pipeline)
            if only is None or gate.pull == only
        ]

        unique = list({gate.sha: gate for gate in chosen}.values())  # a status is per commit

        async def write_all() -> list[str]:
            return list(
                await asyncio.gather(
                    *(
                        github.set_status(gate.sha, GATE_CONTEXT, gate.state, gate.description)
                        for gate in unique
                    )
                )
            )

        lines = github.run(write_all()) if unique else []
        written = {
            gate.sha: "already" not in line for gate, line in zip(unique, lines, strict=True)
        }
        return tuple((gate, written[gate.sha]) for gate in chosen)

    def _perform(self, effect: Effect, snapshot: Snapshot) -> str:
        github = self.github
        args = dict(effect.args)
        if effect.kind == "set-status":
            return github.run(github.set_status(**args))
        if effect.kind == "start-validator":
            name, env = args["validator"], args["environment"]
            try:
                self._validator(name).start(self.validation_run(snapshot, env, name))
            except (PromoteError, KeyboardInterrupt):
                raise  # GitHub's own trouble: the run stops here and the next one starts again
            except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
                why = f"{name} raised {type(e).__name__} when started: {e}"[:140]
                context = verdict_context(env, name)
                github.run(github.set_status(args["sha"], context, "error", why))
                return f"{context} = error on {args['sha'][:7]} ({why})"
            return f"started {name} in {env}"
        if effect.kind == "dispatch-deploy":
            url = github.run(
                github.dispatch(
                    args["workflow"],
                    args["branch"],
                    {"environment": args["environment"], "sha": args["sha"]},
                )
            )
            return f"dispatched {args['workflow']} for {args['environment']} at {args['sha'][:7]}: {url}"
        if effect.kind == "close-checklist":
            try:
                github.run(github.close_issue(int(args["number"])))
            except GitHubError as e:  # tidying up: the decision itself is on record
                return f"could not close checklist issue #{args['number']}: {e}"
            return f"closed checklist issue #{args['number']} ({args['environment']} is decided)"
        if effect.kind == "open-pr":
            return self._open_promotion(args, snapshot)
        if effect.kind == "complete-plans":
            plans = split(args["plans"])
            notes = dict(pair.split("=", 1) for pair in split(args["completed_with"]))
            moved = github.run(self.plan_store.complete(self.settings, github, plans, notes))
            if not plans:
                return "no plan to complete"
            return (
                "completed plan " + ", ".join(moved)
                if moved
                else f"plan {', '.join(plans)} already done"
            )
        if effect.kind in ("rollback", "file-fix-plan"):
            return failures.perform(self, effect, snapshot)
        raise PromoteError(f"unknown effect {effect.kind!r}")  # a bug in decide

    def _open_promotion(self, args: Mapping[str, str], snapshot: Snapshot) -> str:
        facts = snapshot.env(args["environment"])
        state = derive(snapshot, self.pipeline).env(args["environment"])
        authors = facts.change_authors or ((facts.merged_pull.author,) if facts.merged_pull else ())
        plans = split(args["plans"])
        body = ledger.promotion_body(
            args["head"], args["base"], args["sha"], args["environment"],
            checks=(
                f"{v.validator}: {v.result.value}" + (f" ({v.url})" if v.url else "")
                for v in state.verdicts
            ),
            evidence=(f"{e.summary}" + (f" ({e.url})" if e.url else "") for e in state.evidence),
            plans=plans,
            authors=authors,
        )  # fmt: skip
        title = ledger.promotion_title(args["head"], args["base"], plans, args["sha"])
        github = self.github
        number, url, created = github.run(
            github.open_pull(args["head"], args["base"], title, body, args["sha"])
        )
        if number is None:  # the base already holds the head: it was promoted
            gate = gate_for(
                PullRequest(0, args["head"], args["sha"], args["base"], body=body),
                derive(snapshot, self.pipeline), self.pipeline,
            )  # fmt: skip
            github.run(github.set_status(args["sha"], GATE_CONTEXT, gate.state, gate.description))
            return f"{args['base']} already holds {args['head']} at {args['sha'][:7]}: promoted"
        # Gate the new PR now, not at the next run: where promote/gate is a required check,
        # the Merge machine can merge it at once (and a PR merged before a lost answer came
        # back gets the gate it was merged under).
        pull = PullRequest(number, args["head"], args["sha"], args["base"], body=body)
        opened = dataclasses.replace(snapshot, open_pulls=(*snapshot.open_pulls, pull))
        self.write_gates(opened, only=number)
        return f"{'opened' if created else 'found'} PR #{number} ({args['head']} → {args['base']}): {url}"
