"""The snapshot read (two waves of concurrent requests, a third for upstream checks), the
other reads, and the JSON -> model parsers."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import json
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from promote_tasks import ledger
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.github.client import Client
from promote_tasks.ledger import claims_bookkeeping
from promote_tasks.ledger import is_bookkeeping
from promote_tasks.machine import contained
from promote_tasks.machine import newest_validated
from promote_tasks.model import ROLLBACK_TASK
from promote_tasks.model import Approval
from promote_tasks.model import Checklist
from promote_tasks.model import CheckRun
from promote_tasks.model import Commit
from promote_tasks.model import CommitStatus
from promote_tasks.model import Deployment
from promote_tasks.model import DeploymentStatus
from promote_tasks.model import EnvFacts
from promote_tasks.model import Pipeline
from promote_tasks.model import Plan
from promote_tasks.model import PullRequest
from promote_tasks.model import Snapshot
from promote_tasks.model import WorkflowRun

T = TypeVar("T")
SHA = re.compile(r"[0-9a-f]{40}")  #: a full commit sha: what it names never changes

COMMITS_READ = 20  # enough to see past a run of plan bookkeeping commits on a branch
WALK_LIMIT = 50  #: first-parent commits walked below a head looking for a validated one
STATUS_CHECKS = 4  #: deployed commits below a head whose statuses are read on the way
CHAIN_READS = 3  #: further commit pages read when the chain leaves what was listed
# One small page of each list that grows with history, newest first, so a read's bytes do not:
DEPLOYMENTS_READ = 20  #: an environment's newest deployments (its head's, its rollbacks')
DEPLOYMENTS_SHOWN = 5  #: of them, enough in a shared page (see ``_deployments``)
PROMOTIONS_READ = 10  #: a pair's newest promotion PRs (the open one, the one merged at the head)
CHECKLISTS_READ = 20  #: the newest checklist issues (the head's is among them)


@dataclasses.dataclass(frozen=True)
class HeadFacts:
    """One environment's wave-2 answers (all empty: the branch does not exist)."""

    head: str | None = None
    branch_head: str | None = None
    history: tuple[Commit, ...] = ()
    arrivals: tuple[PullRequest, ...] = ()
    merged_pull: PullRequest | None = None
    statuses: tuple[CommitStatus, ...] = ()
    runs: tuple[WorkflowRun, ...] = ()
    checks: tuple[CheckRun, ...] = ()
    #: deployment id -> its statuses as GitHub answered (parsed with the deployment)
    deployment_statuses: Mapping[int, list[Any]] = dataclasses.field(default_factory=dict)
    next_contains_head: bool | None = None
    approvals: tuple[Approval, ...] = ()
    change_authors: tuple[str, ...] = ()
    checklist: Checklist | None = None


class Reader(Client):
    """Reads: the snapshot, and the single reads the writes and the plugins look with."""

    async def read_snapshot(
        self, pipeline: Pipeline, plans: Callable[[], Awaitable[tuple[Plan, ...]]] | None = None
    ) -> Snapshot:
        """All facts for one decision: two waves of concurrent requests (plans alongside)."""
        plan_task = asyncio.ensure_future(plans()) if plans else None
        try:
            facts, open_pulls = await self._read_environments(pipeline)
        except BaseException:
            if plan_task is not None:  # its own failure is not the one to report
                plan_task.cancel()
                await asyncio.gather(plan_task, return_exceptions=True)
            raise
        plan_facts = await plan_task if plan_task else ()
        return Snapshot(self.connection.repository, _now(), facts, open_pulls, plan_facts)

    async def _read_environments(
        self, pipeline: Pipeline
    ) -> tuple[tuple[EnvFacts, ...], tuple[PullRequest, ...]]:
        envs = pipeline.environments
        n = len(envs)
        memo: dict[str, asyncio.Future[list[Any]]] = {}
        verdicts: dict[str, tuple[CommitStatus, ...]] = {}  # per sha: environments share heads

        def listing(
            operation: str, key: str | None = None, pages: int = 10, **params: Any
        ) -> Awaitable[list[Any]]:
            return self._shared(memo, operation, key, pages, params, forget=False)

        async def launch(read: Awaitable[T]) -> asyncio.Future[T]:
            """Start one read and give the loop a turn: the request goes on the wire now, not
            after every other request of the wave has been prepared (~1 ms of CPU each)."""
            task = asyncio.ensure_future(read)
            await asyncio.sleep(0)
            return task

        # Wave 1, what wave 2 waits for: deployments, heads. The environments share one page
        # of the repository's newest deployments; it goes first, as its answer sets off the
        # most of wave 2 (every environment's deployment statuses).
        size = min(100, n * DEPLOYMENTS_READ)
        newest = await launch(listing("repos.list_deployments", pages=1, per_page=size))
        commits = [await launch(self._commits(env.branch)) for env in envs]
        deployments = [
            await launch(self._deployments(env.name, newest, size, listing)) for env in envs
        ]
        open_pulls_read = await launch(listing("pulls.list", state="open"))
        # An environment's newest deployment is almost always its head's: its statuses are
        # asked for as soon as the deployments are in, not once the head is (shared below).
        foreseen = [asyncio.ensure_future(_newest_statuses(d, listing)) for d in deployments]
        for early in foreseen:  # a failure is the read's that wanted the answer, if one did
            early.add_done_callback(lambda f: f.cancelled() or f.exception())
        # Wave 2, per environment, each request as soon as what it needs is in.
        second = [
            asyncio.ensure_future(
                self._head_facts(
                    env,
                    pipeline.after(env.name),
                    commits[i],
                    commits[i + 1] if i + 1 < n else None,
                    deployments[i],
                    listing,
                    pipeline.bookkeeping_dir,
                    verdicts,
                )
            )
            for i, env in enumerate(envs)
        ]
        # Wave 1 is waited for to its end, and its first failure in this order is the one
        # reported; a 404 is looked at again: a repository that is not there is named.
        first: list[asyncio.Future[Any]] = [*commits, *deployments, open_pulls_read]
        await asyncio.wait(first)
        errors = [f.exception() for f in first]  # each one asked for: none goes unretrieved
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            for task in [*second, *foreseen]:
                task.cancel()
            await asyncio.gather(*second, *foreseen, return_exceptions=True)
            if isinstance(failed, GitHubError) and failed.status == 404:
                await self._check_repository()
            raise failed
        extras = await asyncio.gather(*second)
        await asyncio.gather(*foreseen, return_exceptions=True)  # one not wanted, too: in full
        branches = {env.branch for env in envs}
        listed = [p for p in open_pulls_read.result() if p["base"]["ref"] in branches]
        promotions = await self._promotions(envs, extras, listed, listing)
        facts = []
        for i, (env, extra) in enumerate(zip(envs, extras, strict=True)):
            facts.append(
                EnvFacts(
                    name=env.name,
                    head=extra.head,
                    branch_head=extra.branch_head,
                    history=extra.history,
                    arrivals=extra.arrivals,
                    merged_pull=extra.merged_pull,
                    deployments=tuple(
                        _deployment(d, extra.deployment_statuses.get(d["id"], ()))
                        for d in deployments[i].result()
                    ),
                    statuses=extra.statuses,
                    runs=extra.runs,
                    checks=extra.checks,
                    promotions=promotions[i],
                    next_contains_head=extra.next_contains_head,
                    approvals=extra.approvals,
                    change_authors=extra.change_authors,
                    checklist=extra.checklist,
                )
            )
        open_pulls = tuple(_pull(p) for p in listed)
        return await self._upstream_checks(pipeline, facts), open_pulls

    async def _deployments(
        self,
        name: str,
        newest: Awaitable[list[Any]],
        size: int,
        listing: Callable[..., Awaitable[list[Any]]],
    ) -> list[Any]:
        """Environment ``name``'s newest deployments: from the shared page, unless that page
        is full and shows fewer than ``DEPLOYMENTS_SHOWN`` of them (then on their own)."""
        page = await newest
        mine = [d for d in page if d.get("environment") == name]
        if len(page) < size or len(mine) >= DEPLOYMENTS_SHOWN:
            return mine
        return await listing(
            "repos.list_deployments", pages=1, per_page=DEPLOYMENTS_READ, environment=name
        )

    async def _promotions(
        self,
        envs: tuple[Any, ...],
        extras: list[HeadFacts],
        open_pulls: list[dict[str, Any]],
        listing: Callable[..., Awaitable[list[Any]]],
    ) -> list[tuple[PullRequest, ...]]:
        """Each pair's promotion PRs the decision looks at: the open one (from the open PRs)
        and the one merged at the head. That one is the next branch's newest arrival, or the
        next branch holds the head (a merge commit); only when neither tells, for a validated
        head after a squash or rebase, is the pair's list read (a third, rare round)."""
        found: list[tuple[PullRequest, ...]] = []
        wanted: dict[int, Awaitable[list[Any]]] = {}
        for i, (env, extra) in enumerate(zip(envs, extras, strict=False)):
            if i + 1 == len(envs):
                found.append(())
                continue
            following, arrived = envs[i + 1], extras[i + 1].merged_pull
            mine = [
                _pull(p)
                for p in open_pulls
                if p["head"].get("label") == f"{self.owner}:{env.branch}"
                and p["base"]["ref"] == following.branch
            ]
            if arrived is not None and arrived.head_ref == env.branch:
                mine.append(arrived)
            found.append(tuple(mine))
            upper = {c.sha for c in extra.history[: _index(extra.history, extra.head) + 1]}
            if (
                extra.head is not None
                and extras[i + 1].head is not None  # no next branch, no promotion into it
                and _validated_model(extra.statuses, env.name)
                and extra.next_contains_head is not True
                and not any(p.merged and p.head_sha in upper for p in mine)
            ):
                wanted[i] = listing(
                    "pulls.list",
                    pages=1,
                    per_page=PROMOTIONS_READ,
                    state="all",
                    head=f"{self.owner}:{env.branch}",
                    base=following.branch,
                )
        read = await asyncio.gather(*wanted.values())
        for i, pulls in zip(wanted, read, strict=True):
            found[i] = tuple(_pull(p) for p in pulls)
        return found

    async def _upstream_checks(
        self, pipeline: Pipeline, facts: list[EnvFacts]
    ) -> tuple[EnvFacts, ...]:
        """For each environment after the first, the commits and merged heads whose way in the
        chain read cannot tell: is each in the previous environment's newest validated head?
        (A third, rare round: a direct push, or a PR merged at an older head.)"""
        wanted: list[tuple[int, str, str]] = []
        for i in range(1, len(facts)):
            here, before = facts[i], facts[i - 1]
            good = newest_validated(before)
            if good is None:
                continue
            source = pipeline.environments[i - 1].branch
            shas = {p.head_sha for p in here.arrivals if p.head_ref == source}
            shas |= {
                c.sha
                for c in here.history
                if not c.pulls and not is_bookkeeping(c, pipeline.bookkeeping_dir)
            }
            wanted += [
                (i, good, sha) for sha in sorted(shas) if contained(sha, before, pipeline) is None
            ]
        if not wanted:
            return tuple(facts)

        async def inside(good: str, sha: str) -> bool:
            try:
                found = await self._op(
                    "repos.compare_commits", basehead=f"{good}...{sha}", per_page=1
                )
            except GitHubError as e:
                if e.status == 404:
                    return False
                raise
            return bool(found and found.get("status") in ("behind", "identical"))

        answers = await asyncio.gather(*(inside(good, sha) for _, good, sha in wanted))
        out = list(facts)
        for (i, _, sha), yes in zip(wanted, answers, strict=True):
            if yes:
                out[i] = dataclasses.replace(
                    out[i], upstream_contains=(*out[i].upstream_contains, sha)
                )
        return tuple(out)

    async def _check_repository(self) -> None:
        """``repos.get``, asked only after a 404 (once per client): its 404 says the
        repository is not there, or the token cannot see it."""
        if not self._repository_checked:
            await self.repository()
            self._repository_checked = True

    async def _commits(self, branch: str) -> list[dict[str, Any]]:
        try:
            return list(await self._op("repos.list_commits", sha=branch, per_page=COMMITS_READ))
        except GitHubError as e:
            if e.status in (404, 409):
                return []  # the branch does not exist (or the repository is empty)
            raise

    async def _commits_from(self, sha: str) -> list[dict[str, Any]]:
        return list(await self._op("repos.list_commits", sha=sha, per_page=COMMITS_READ) or [])

    async def _head_facts(
        self,
        env: Any,
        following: Any,
        commits: Awaitable[list[dict[str, Any]]],
        following_commits: Awaitable[list[dict[str, Any]]] | None,
        deployments: Awaitable[list[dict[str, Any]]],
        listing: Callable[..., Awaitable[list[Any]]],
        bookkeeping_dir: str | None,
        verdicts: dict[str, tuple[CommitStatus, ...]],
    ) -> HeadFacts:
        """One environment's wave 2. Each request waits only for the answers it needs: the
        head (statuses, PRs), the deployments (their statuses), the next branch's commits
        (compare); and the walk down the branch's first-parent chain to its newest validated
        commit. What only a head still on its way needs waits for the head's statuses: its
        check runs, workflow runs and checklist (see ``settled``)."""
        chain = _Chain(self._commits_from, await commits)
        tip = chain.tip
        if tip is None:
            return HeadFacts()
        # The head: the newest commit that is not plan bookkeeping (what a commit does, not
        # what its message says: a claim is checked against the files it changed).
        above: list[Commit] = []
        current: dict[str, Any] | None = chain.known[tip]
        while current is not None:
            commit = await self._commit_fact(current, bookkeeping_dir)
            if not is_bookkeeping(commit, bookkeeping_dir):
                break
            above.append(commit)
            current = await chain.parent(current)
        if current is None:  # nothing but bookkeeping in reach: the oldest read stands
            current = chain.known[above[-1].sha]
            above.pop()
        sha = str(current["sha"])
        walk = asyncio.ensure_future(
            self._walk_below(env, chain, current, deployments, bookkeeping_dir, listing)
        )

        async def deployment_statuses() -> dict[int, list[Any]]:
            found = await deployments
            records = [d for d in found if _payload(d).get("rollback_of") == sha]
            # A rollback's state follows the deploy it set off: deployments of its target after it.
            follows = {d["sha"]: d["id"] for d in sorted(records, key=lambda d: -d["id"])}
            wanted = [
                d
                for d in found
                if d["sha"] == sha or d in records or d["id"] > follows.get(d["sha"], d["id"])
            ]
            read = await asyncio.gather(
                *(listing("repos.list_deployment_statuses", deployment_id=d["id"]) for d in wanted)
            )
            return {d["id"]: s for d, s in zip(wanted, read, strict=True)}

        async def contains() -> bool | None:
            if following is None or following_commits is None:
                return None
            recent = {c["sha"] for c in await following_commits}
            return await self._contains(following.branch, sha, recent)

        statuses_read = asyncio.ensure_future(
            listing("repos.list_commit_statuses_for_ref", ref=sha)
        )

        async def settled() -> bool:
            """Is ``promote/<env>`` success on the head (the newest of them, as the machine
            judges)? Then no validator is asked, no checklist is open (it is closed before the
            verdict is written) and, where the environment records deploys as deployments,
            their statuses watch the deploy: its check runs, workflow runs and checklist
            issues are not read. A head still on its way reads them a round later."""
            newest = newest_status(await statuses_read, f"promote/{env.name}")
            return newest is not None and newest["state"] == "success"

        async def workflow_runs() -> list[Any]:
            recorded = any(
                d["sha"] == sha and d.get("task") != ROLLBACK_TASK for d in await deployments
            )
            if recorded and await settled():
                return []
            return await listing(
                "actions.list_workflow_runs_for_repo", "workflow_runs", head_sha=sha
            )

        async def check_runs() -> list[Any]:
            if await settled():
                return []
            return await listing("checks.list_for_ref", "check_runs", ref=sha)

        async def comments() -> tuple[Checklist | None, list[Any]]:
            if not env.manual or await settled():
                return None, []
            checklists = await listing(
                "issues.list_for_repo",
                pages=1,
                per_page=CHECKLISTS_READ,
                labels=ledger.CHECKLIST_LABEL,
                state="all",
            )
            key = ledger.key(env.name, sha)
            found = next((i for i in checklists if _key_of(i) == key), None)
            if found is None:
                return None, []
            issue = Checklist(
                found["number"], found.get("state") or "open", found.get("html_url") or ""
            )
            return issue, await listing("issues.list_comments", issue_number=found["number"])

        try:
            reads: list[Any] = await asyncio.gather(
                statuses_read,
                workflow_runs(),
                check_runs(),
                listing("repos.list_pull_requests_associated_with_commit", commit_sha=sha),
                deployment_statuses(),
                contains(),
                comments(),
            )
            below, below_pulls = await walk
        except BaseException:
            walk.cancel()
            await asyncio.gather(walk, return_exceptions=True)
            raise
        statuses, runs, checks, pulls, by_deployment, contained, (checklist, decisions) = reads
        if any(not r.get("path") for r in runs):  # GitHub Enterprise Server leaves it out
            runs = await self._with_paths(runs)
        merged = _merged_into(pulls, env.branch)
        merged_pull = _pull(max(merged, key=lambda p: p["merged_at"])) if merged else None
        authors: list[str] = []
        for pull in (_pull(p) for p in [*merged, *below_pulls]):
            carried = list(ledger.authors(pull.body))
            authors.extend(carried if carried else [pull.author])
        head_fact = dataclasses.replace(
            await self._commit_fact(current, bookkeeping_dir),
            validated=_validated(statuses, env.name),
            pulls=tuple(p["number"] for p in merged),
        )
        arrivals = {p["number"]: _pull(p) for p in [*merged, *below_pulls]}
        if sha not in verdicts:
            verdicts[sha] = tuple(_status(s) for s in statuses)
        return HeadFacts(
            head=sha,
            branch_head=tip,
            history=(*above, head_fact, *below),
            arrivals=tuple(arrivals[n] for n in sorted(arrivals)),
            merged_pull=merged_pull,
            statuses=verdicts[sha],
            runs=tuple(_run(r) for r in runs),
            checks=tuple(_check(c) for c in checks),
            deployment_statuses=by_deployment,
            next_contains_head=contained,
            approvals=tuple(a for c in decisions for a in _decisions(c)),
            change_authors=tuple(dict.fromkeys(a for a in authors if a)),
            checklist=checklist,
        )

    async def _with_paths(self, runs: list[Any]) -> list[dict[str, Any]]:
        """Workflow runs with their workflow file's ``path``, by ``workflow_id`` where the run
        does not say (GitHub Enterprise Server): runs are told apart by their workflow file."""
        if self._workflow_paths is None:
            data = await self._op("actions.list_repo_workflows", per_page=100)
            self._workflow_paths = {
                w["id"]: str(w.get("path") or "") for w in (data or {}).get("workflows", [])
            }
        known = self._workflow_paths
        return [{**r, "path": r.get("path") or known.get(r.get("workflow_id"), "")} for r in runs]

    async def _commit_fact(self, data: Mapping[str, Any], bookkeeping_dir: str | None) -> Commit:
        """A commit of the chain; the files it changed are read only for a bookkeeping claim."""
        fact = _commit(data)
        if bookkeeping_dir is not None and claims_bookkeeping(fact.message, fact.parents):
            files = self._files.get(fact.sha)
            if files is None:  # content-addressed: once per process
                full = await self._op("repos.get_commit", ref=fact.sha)
                files = tuple(str(f["filename"]) for f in (full or {}).get("files") or [])
                self._files[fact.sha] = files
            fact = dataclasses.replace(fact, files=files)
        return fact

    async def _walk_below(
        self,
        env: Any,
        chain: _Chain,
        head: Mapping[str, Any],
        deployments: Awaitable[list[dict[str, Any]]],
        bookkeeping_dir: str | None,
        listing: Callable[..., Awaitable[list[Any]]],
    ) -> tuple[list[Commit], list[dict[str, Any]]]:
        """The first-parent chain below the head down to its newest validated commit, and the
        merged PRs (into this branch) the commits on the way came from. Only a deployed commit
        can be validated, so only those have their statuses read; bounded on both counts."""
        deployed = {d["sha"] for d in await deployments if d.get("task") != ROLLBACK_TASK}
        found: list[Commit] = []
        pulls: list[dict[str, Any]] = []
        checked = 0
        current = await chain.parent(head)
        while current is not None and len(found) < WALK_LIMIT:
            commit = await self._commit_fact(current, bookkeeping_dir)
            sha = commit.sha
            if sha in deployed and checked < STATUS_CHECKS:
                checked += 1
                statuses = await listing("repos.list_commit_statuses_for_ref", ref=sha)
                if _validated(statuses, env.name):
                    found.append(dataclasses.replace(commit, validated=True))
                    return found, pulls
                commit = dataclasses.replace(commit, validated=False)
            if not is_bookkeeping(commit, bookkeeping_dir):
                mine = _merged_into(
                    await listing(
                        "repos.list_pull_requests_associated_with_commit", commit_sha=sha
                    ),
                    env.branch,
                )
                pulls.extend(mine)
                commit = dataclasses.replace(commit, pulls=tuple(p["number"] for p in mine))
            found.append(commit)
            current = await chain.parent(current)
        return found, pulls

    async def _contains(self, branch: str, sha: str, recent: set[str]) -> bool | None:
        """Whether ``branch`` contains ``sha``; among its recent commits needs no request."""
        if sha in recent:
            return True
        try:
            data = await self._op("repos.compare_commits", basehead=f"{branch}...{sha}", per_page=1)
        except GitHubError:
            return None
        return bool(data and data.get("status") in ("behind", "identical"))

    # -- single reads ---------------------------------------------------------------------

    async def repository(self) -> dict[str, Any]:
        """The repository's settings (its 404 is named as a repository not found)."""
        return dict(await self._op("repos.get"))

    async def branch(self, name: str) -> dict[str, Any]:
        return dict(await self._op("repos.get_branch", branch=name))

    async def branch_rules(self, branch: str) -> list[dict[str, Any]]:
        """The rules in force on ``branch`` (rulesets)."""
        return [dict(r) for r in await self._op("repos.get_branch_rules", branch=branch) or []]

    async def permission(self, login: str) -> dict[str, Any]:
        """``login``'s permission level on the repository (``permission``, ``role_name``)."""
        found = await self._op("repos.get_collaborator_permission_level", username=login)
        return dict(found or {})

    async def rate_limit(self) -> dict[str, Any]:
        """The rate limits left, read fresh."""
        return dict(await self._op("rate_limit.get", cache=False) or {})

    async def commit(self, ref: str) -> dict[str, Any]:
        """The commit ``ref`` names (a sha, a short sha, a branch), with the files it changed."""
        return dict(await self._op("repos.get_commit", ref=ref))

    async def issues(self, label: str) -> list[dict[str, Any]]:
        """Every issue labelled ``label``, open or closed (all pages)."""
        return [
            dict(i) for i in await self._paged("issues.list_for_repo", labels=label, state="all")
        ]

    async def deployments(self, environment: str) -> list[dict[str, Any]]:
        """``environment``'s deployments, newest first (all pages: the snapshot has one)."""
        return [
            dict(d) for d in await self._paged("repos.list_deployments", environment=environment)
        ]

    async def workflow_runs(self, workflow: str, head_sha: str) -> list[dict[str, Any]]:
        """The runs of ``workflow`` at ``head_sha``, read fresh."""
        data = await self._fresh(
            "actions.list_workflow_runs", workflow_id=workflow, head_sha=head_sha, per_page=100
        )
        return [dict(r) for r in (data or {}).get("workflow_runs", [])]

    async def latest_status(self, sha: str, context: str) -> dict[str, Any] | None:
        """The newest ``context`` status on ``sha``. Conditional: GitHub answers 304 (free of
        the rate limit) only when the statuses did not change, so it is never stale; the gates
        of every open PR are looked at on every ``next``."""
        statuses = await self._op("repos.list_commit_statuses_for_ref", ref=sha, per_page=100)
        return newest_status(statuses, context)

    async def user(self) -> str:
        """Who the token belongs to (asked once per client: ``approve`` and its comment both
        need it)."""
        if self._login is None:
            self._login = str((await self._op("users.get_authenticated"))["login"])
        return self._login

    async def read_file(self, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``, None when there is no such file. At a commit sha
        (a PR head's plan file, every ``next``) it cannot change: asked once per process."""
        if SHA.fullmatch(ref) and (path, ref) in self._contents:
            return self._contents[path, ref]
        try:
            data = await self._op("repos.get_content", path=path, ref=ref)
        except GitHubError as e:
            if e.status != 404:
                raise
            data = None
        text = None
        if isinstance(data, dict) and data.get("type") == "file":
            text = _text(data["content"], path)
        if SHA.fullmatch(ref):
            self._contents[path, ref] = text
        return text

    async def tree(
        self, ref: str, *, conditional: bool = False, within: str | None = None
    ) -> list[dict[str, Any]]:
        """The recursive tree at ``ref``; ``conditional``: sent with the ETag of this process's
        last answer, so an unchanged tree costs a 304 (GitHub still decides: never stale).

        GitHub cuts a recursive tree of more than 100,000 entries short (``truncated``); then
        the part under the directory ``within`` is read on its own, one level at a time down
        to it, and whole below it (paths as from the root)."""
        data = await self._op("git.get_tree", cache=conditional, tree_sha=ref, recursive="1")
        if not data.get("truncated") or not within:
            return list(data.get("tree", []))
        sha, prefix = ref, ""
        for part in within.strip("/").split("/"):
            level = await self._op("git.get_tree", cache=conditional, tree_sha=sha)
            found = next(
                (e for e in level.get("tree", []) if e["path"] == part and e["type"] == "tree"),
                None,
            )
            if found is None:
                return []
            sha, prefix = found["sha"], f"{prefix}{part}/"
        below = await self._op("git.get_tree", tree_sha=sha, recursive="1")
        if below.get("truncated"):
            raise PromoteError(f"{prefix} at {ref} has more entries than GitHub lists in a tree")
        return [{**e, "path": prefix + e["path"]} for e in below.get("tree", [])]

    async def blob(self, sha: str, path: str) -> str:
        """The text of blob ``sha``, the file at ``path`` (named if it is not UTF-8)."""
        text = self._blobs.get(sha)
        if text is None:  # content-addressed: asked once per process, not even for a 304
            data = await self._op("git.get_blob", file_sha=sha)
            text = self._blobs[sha] = _text(data["content"], path)
        return text

    async def ref_sha(self, ref: str) -> str | None:
        """The sha ``heads/<b>`` or ``tags/<t>`` points to, or None when there is no such ref."""
        try:
            data = await self._fresh("git.get_ref", ref=ref)
        except GitHubError as e:
            if e.status == 404:
                return None
            raise
        return str(data["object"]["sha"])

    async def git_commit(self, sha: str) -> dict[str, Any]:
        """A commit object (tree, parents, author): content-addressed, so cached."""
        found = self._git_commits.get(sha)
        if found is None:
            found = self._git_commits[sha] = dict(await self._op("git.get_commit", commit_sha=sha))
        return dict(found)

    async def pull(self, number: int) -> dict[str, Any]:
        return dict(await self._fresh("pulls.get", pull_number=number))

    async def pulls_from(self, head: str, base: str) -> list[dict[str, Any]]:
        """Every PR ``head → base`` in any state, newest first."""
        found = await self._fresh(
            "pulls.list", state="all", head=f"{self.owner}:{head}", base=base, per_page=100
        )
        return sorted((dict(p) for p in found or []), key=lambda p: -p["number"])

    async def pull_commits(self, number: int) -> list[dict[str, Any]]:
        """The commits of PR ``number``, oldest first."""
        return [dict(c) for c in await self._paged("pulls.list_commits", pull_number=number)]

    async def pending_deployments(self, run_id: int) -> list[dict[str, Any]]:
        """The deployments a workflow run waits on (environment protection rules)."""
        found = await self._fresh("actions.get_pending_deployments_for_run", run_id=run_id)
        return [dict(p) for p in found or []]

    async def reviews_for_run(self, run_id: int) -> list[dict[str, Any]]:
        """The environment reviews given on a workflow run."""
        return [dict(r) for r in await self._op("actions.get_reviews_for_run", run_id=run_id) or []]

    async def merged_pull_of(self, sha: str, base: str) -> dict[str, Any] | None:
        """The PR merged into ``base`` that produced ``sha``, if any."""
        pulls = await self._op(
            "repos.list_pull_requests_associated_with_commit", commit_sha=sha, per_page=100
        )
        merged = [p for p in pulls or [] if p["base"]["ref"] == base and p.get("merged_at")]
        return dict(max(merged, key=lambda p: p["merged_at"])) if merged else None

    async def statuses_of(self, sha: str) -> list[dict[str, Any]]:
        """Every commit status on ``sha`` (all pages), read fresh."""
        return [dict(s) for s in await self._paged("repos.list_commit_statuses_for_ref", ref=sha)]

    async def compare(self, base: str, head: str) -> dict[str, Any]:
        return dict(
            await self._op("repos.compare_commits", basehead=f"{base}...{head}", per_page=1)
        )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(content: str, path: str) -> str:
    """A file's base64 ``content`` as text; a file that is not UTF-8 is named, in one line."""
    try:
        return base64.b64decode(content).decode("utf-8")
    except UnicodeDecodeError:
        raise PromoteError(f"{path}: not UTF-8 text") from None


def _key_of(issue: Mapping[str, Any]) -> str | None:
    return ledger.checklist_key(issue.get("body"))


def _payload(deployment: Mapping[str, Any]) -> dict[str, Any]:
    payload = deployment.get("payload")
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload else {}
        except json.JSONDecodeError:
            payload = {}
    promote = payload.get("promote") if isinstance(payload, dict) else None
    return promote if isinstance(promote, dict) else {}


async def _newest_statuses(
    deployments: Awaitable[list[Any]], listing: Callable[..., Awaitable[list[Any]]]
) -> None:
    """Ask for the statuses of the newest of ``deployments`` (the read that wants them
    shares the answer through ``listing``)."""
    found = await deployments
    if found:
        await listing("repos.list_deployment_statuses", deployment_id=max(d["id"] for d in found))


def _deployment(d: Mapping[str, Any], statuses: Any) -> Deployment:
    payload = _payload(d)
    carries = payload.get("carries")
    return Deployment(
        id=d["id"],
        environment=d["environment"],
        sha=d["sha"],
        task=d.get("task") or "deploy",
        url=d.get("url") or "",
        rollback_of=payload.get("rollback_of"),
        plan=payload.get("plan"),
        reset_of=payload.get("reset_of"),
        carries=tuple(str(p) for p in carries) if isinstance(carries, list) else (),
        created_at=d.get("created_at") or "",
        statuses=tuple(
            DeploymentStatus(
                s["id"], s["state"], s.get("environment_url") or "", s.get("log_url") or s.get("target_url") or "",
                s.get("description") or "",
            )
            for s in statuses
        ),
    )  # fmt: skip


def newest_status(statuses: Iterable[Mapping[str, Any]], context: str) -> dict[str, Any] | None:
    """The newest status in ``context`` of a commit's statuses as GitHub gives them."""
    mine = [s for s in statuses if s.get("context") == context]
    return dict(max(mine, key=lambda s: s["id"])) if mine else None


def _status(s: Mapping[str, Any]) -> CommitStatus:
    return CommitStatus(
        id=s["id"], context=s["context"], state=s["state"], description=s.get("description") or "",
        target_url=s.get("target_url"), created_at=s.get("created_at") or "",
        creator=(s.get("creator") or {}).get("login", ""),
    )  # fmt: skip


def _run(r: Mapping[str, Any]) -> WorkflowRun:
    return WorkflowRun(
        id=r["id"], name=r.get("name") or "", path=r.get("path") or "", head_sha=r["head_sha"],
        status=r.get("status") or "", conclusion=r.get("conclusion"), event=r.get("event") or "",
        url=r.get("html_url") or "", created_at=r.get("created_at") or "",
        head_branch=r.get("head_branch") or "",
    )  # fmt: skip


def _check(c: Mapping[str, Any]) -> CheckRun:
    return CheckRun(
        c["id"],
        c["name"],
        c["head_sha"],
        c.get("status") or "",
        c.get("conclusion"),
        c.get("html_url") or "",
    )


def _pull(p: Mapping[str, Any]) -> PullRequest:
    return PullRequest(
        number=p["number"], head_ref=p["head"]["ref"], head_sha=p["head"]["sha"], base_ref=p["base"]["ref"],
        state=p.get("state") or "open", merged=bool(p.get("merged_at")),
        merge_commit_sha=p.get("merge_commit_sha"), title=p.get("title") or "", body=p.get("body") or "",
        author=(p.get("user") or {}).get("login", ""), url=p.get("html_url") or "", merged_at=p.get("merged_at"),
    )  # fmt: skip


def _decisions(comment: Mapping[str, Any]) -> list[Approval]:
    user = (comment.get("user") or {}).get("login", "")
    return [
        Approval(user, sha, "approved" if ok else "rejected", comment.get("html_url") or "", why)
        for ok, sha, why in ledger.decisions(comment.get("body"))
    ]


def _commit(c: Mapping[str, Any]) -> Commit:
    """A commit of the REST commits endpoints (list, get, compare) as a chain fact."""
    detail = c.get("commit") or {}
    who = detail.get("committer") or {}
    return Commit(
        sha=c["sha"],
        parents=tuple(p["sha"] for p in c.get("parents") or ()),
        message=detail.get("message") or "",
        committer=f"{who.get('name') or ''} <{who.get('email') or ''}> {who.get('date') or ''}",
        tree=str((detail.get("tree") or {}).get("sha") or ""),
    )


def _merged_into(pulls: list[Any], branch: str) -> list[dict[str, Any]]:
    return [dict(p) for p in pulls if p["base"]["ref"] == branch and p.get("merged_at")]


def _index(history: tuple[Commit, ...], sha: str | None) -> int:
    return next((i for i, c in enumerate(history) if c.sha == sha), -1)


def _validated_model(statuses: tuple[CommitStatus, ...], env: str) -> bool:
    return _validated([{"context": s.context, "state": s.state} for s in statuses], env)


def _validated(statuses: Any, env: str) -> bool:
    """``promote/<env>`` is success on the commit, and was never failure or error there."""
    states = {s["state"] for s in statuses if s["context"] == f"promote/{env}"}
    return "success" in states and not states & {"failure", "error"}


class _Chain:
    """A branch's commits as read, newest first, and more of them on demand."""

    def __init__(
        self, more: Callable[[str], Awaitable[list[dict[str, Any]]]], first: list[dict[str, Any]]
    ) -> None:
        self.more = more  # the commits from a sha down, one page
        self.known: dict[str, dict[str, Any]] = {c["sha"]: c for c in first}
        self.tip: str | None = first[0]["sha"] if first else None
        self.reads = 0

    async def parent(self, commit: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first parent, read with its own ancestors when it is not known yet."""
        parents = commit.get("parents") or []
        if not parents:
            return None
        sha = str(parents[0]["sha"])
        if sha not in self.known and self.reads < CHAIN_READS:
            self.reads += 1
            self.known.update((c["sha"], c) for c in await self.more(sha))
        return self.known.get(sha)
