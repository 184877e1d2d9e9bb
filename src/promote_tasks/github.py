"""The only module that talks to GitHub (through ghapi 2.x): read a Snapshot, perform writes.

Reads happen in two waves of concurrent requests: first what needs no head sha (branch
commits, deployments, PR lists), then what does (statuses, runs, checks, the PR that produced
the head, deployment statuses, compare). A wave-2 request goes out as soon as the wave-1
answers it needs are in, not when the slowest of the wave is: two latency rounds either way,
but the client's work on one wave's answers overlaps the other wave's waiting. We page
ourselves (ghapi's pager never stops on object-shaped lists), retry 5xx / connection errors /
rate limits with bounded backoff honouring ``Retry-After`` and ``X-RateLimit-Reset``, and keep
an ETag cache so a repeat read in one process costs 304s. Every error becomes a one-line
``GitHubError``; the token never leaves the Authorization header.

ghapi's operations are built one at a time, on first use (``Operations``), not all ~1,200 as
``GhApi()`` would; ``stats`` counts the requests, 304s, bytes and the rate limit left, and a
nearly spent limit is said once and slows the run down.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import itertools
import json
import os
import random
import re
import sys
import time
import urllib.parse
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import TypeVar

from promote_tasks import ledger
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.ledger import LOCK_REF
from promote_tasks.ledger import bookkeeping_trailer
from promote_tasks.ledger import claims_bookkeeping
from promote_tasks.ledger import is_bookkeeping
from promote_tasks.ledger import lock_holder
from promote_tasks.ledger import lock_message
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

DEFAULT_API_URL = "https://api.github.com"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
# Transport failures worth another attempt; the first three mean the request never left.
UNSENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout"})
TRANSIENT = UNSENT | {
    "ReadTimeout", "WriteTimeout", "ReadError", "WriteError", "RemoteProtocolError",
    "NetworkError", "TimeoutException",
}  # fmt: skip
DEFAULT_TIMEOUT = 30.0
DEFAULT_DEADLINE = 60.0
COMMITS_READ = 20  # enough to see past a run of plan bookkeeping commits on a branch
WALK_LIMIT = 50  #: first-parent commits walked below a head looking for a validated one
LOW_BUDGET = 50  #: rate limit left below which a run warns, once, and paces its requests
PACE = (
    1.0  #: seconds between requests (one at a time) while the rate limit left is below LOW_BUDGET
)
STATUS_CHECKS = 4  #: deployed commits below a head whose statuses are read on the way
CHAIN_READS = 3  #: further commit pages read when the chain leaves what was listed


@dataclasses.dataclass(frozen=True)
class Connection:
    """Where GitHub is and who we are there (DESIGN §4.1)."""

    repository: str
    token: str = dataclasses.field(repr=False)
    api_url: str = DEFAULT_API_URL
    timeout: float = DEFAULT_TIMEOUT  # seconds per request (PROMOTE_HTTP_TIMEOUT)
    token_name: str = "GITHUB_TOKEN"  # where the token came from, for error messages
    deadline: float = DEFAULT_DEADLINE  # seconds for all of a command's talk (PROMOTE_DEADLINE)

    @classmethod
    def from_environment(
        cls,
        repository: str | None = None,
        environ: Mapping[str, str] | None = None,
        origin: Callable[[], str | None] | None = None,
    ) -> Connection:
        """``GITHUB_REPOSITORY``, else the configured repository, else ``origin()`` (the git
        remote, asked only when needed); the token from ``GITHUB_TOKEN``, else ``GH_TOKEN``."""
        env = os.environ if environ is None else environ
        repo = env.get("GITHUB_REPOSITORY") or repository or (origin() if origin else None)
        if not repo:
            raise PromoteError(
                "no repository: set GITHUB_REPOSITORY=owner/name or repository in [tool.promote]"
            )
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise PromoteError(f"repository {repo!r} is not owner/name")
        name = "GITHUB_TOKEN" if env.get("GITHUB_TOKEN") else "GH_TOKEN"
        token = (env.get(name) or "").strip()  # a token read from a file often ends in "\n"
        if not token:
            raise PromoteError("no GitHub token: set GITHUB_TOKEN (or GH_TOKEN)")
        if not all("!" <= c <= "~" for c in token):
            # httpx would refuse the header and quote it, token and all, in its error
            raise PromoteError(f"{name} is malformed: it contains spaces or non-ASCII characters")
        timeout = _seconds(env, "PROMOTE_HTTP_TIMEOUT", DEFAULT_TIMEOUT)
        deadline = _seconds(env, "PROMOTE_DEADLINE", DEFAULT_DEADLINE)
        api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromoteError(
                f"GITHUB_API_URL={api_url!r} is not an http(s) URL "
                "(e.g. https://api.github.com, or https://HOST/api/v3 on GitHub Enterprise Server)"
            )
        return cls(repo, token, api_url, timeout, name, deadline)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise PromoteError(f"{name}={raw!r} is not a positive number of seconds")
    return value


class Operations:
    """ghapi's operations, each built from ghapi's metadata (``ghapi.gh_spec``) the first
    time it is called: ``GhApi()`` would build all ~1,200 of them (signatures, docs) and
    importing ``ghapi.core`` parses the whole spec, for the ~20 this tool calls.

    The operations are fastspec ``OpFunc``s, as in ``GhApi``, on a fasttransport
    ``AsyncTransport`` with ``GhApi``'s headers and owner/repo defaults; the tool always asks
    for the raw response (``raw_=True``), so ghapi's response decoding is not needed.
    """

    def __init__(self, *, owner: str, repo: str, token: str, api_url: str, timeout: float) -> None:
        import fasttransport.errors  # noqa: F401  (gives httpx2's errors .api_error: APIError)
        from fasttransport.core import AsyncTransport

        headers = {"Accept": "application/vnd.github.v3+json", "Authorization": "token " + token}
        # retries=0: we retry (and sleep through GitHub.sleep) ourselves
        self.transport = AsyncTransport(timeout=timeout, base_headers=headers, retries=0)
        self.api_url = api_url
        self.defaults = {"owner": owner, "repo": repo}
        self.built: dict[str, Any] = {}

    def op(self, operation: str) -> Any:
        """The operation ``group.name`` (``repos.list_deployments``), built on first use."""
        found = self.built.get(operation)
        if found is None:
            from fastspec.oapi import OpFunc
            from fastspec.spec import SpecParser

            metadata = _metadata().get(operation)
            if metadata is None:
                raise AttributeError(f"ghapi has no operation {operation}")
            spec = SpecParser.from_dict({"base_url": "", "ops": [metadata]}).ops[0]
            found = OpFunc(spec, self.transport, self.api_url, defaults=dict(self.defaults))
            self.built[operation] = found
        return found


_METADATA: dict[str, dict[str, Any]] = {}


def _metadata() -> dict[str, dict[str, Any]]:
    """ghapi's operation metadata by ``group.name`` (a plain dict literal: cheap to load)."""
    if not _METADATA:
        from ghapi.gh_spec import spec

        ops: list[dict[str, Any]] = spec["ops"]  # type: ignore[assignment]
        for o in ops:
            _METADATA.setdefault(f"{o['group']}.{o['name']}", o)
    return _METADATA


class UncertainWrite(GitHubError):
    """A write failed in a way that may have applied it (lost answer, 5xx, read timeout);
    ``cause`` is the failure itself, for when a look has shown it was not applied."""

    def __init__(self, cause: GitHubError) -> None:
        super().__init__(f"{cause} (it may have been applied)", cause.status)
        self.cause = cause


@dataclasses.dataclass
class Stats:
    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    received: int = 0  #: bytes of the answers' bodies (a 304 has none)
    remaining: int | None = None  #: the last ``X-RateLimit-Remaining`` GitHub answered with


class GitHub:
    """One client per process; every method is safe to call again (writes look first)."""

    def __init__(
        self,
        connection: Connection,
        *,
        timeout: float | None = None,
        attempts: int = 5,
        max_wait: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        deadline: float | None = None,
    ) -> None:
        self.connection = connection
        self.owner, self.repo = connection.repository.split("/")
        self.timeout = connection.timeout if timeout is None else timeout
        self.deadline = connection.deadline if deadline is None else deadline
        self._started: float | None = None  # the first request: the deadline runs from it
        self.debug = os.environ.get("PROMOTE_DEBUG", "") in ("api", "all")
        self.attempts = attempts
        self.max_wait = max_wait
        self.sleep = sleep
        self.stats = Stats()
        self._warned = False  # the low rate limit was said (once per client)
        self._next_turn = 0.0  # monotonic time of the next paced request's turn
        self._etags: dict[str, tuple[str, Any]] = {}
        self._inflight: dict[str, asyncio.Future[list[Any]]] = {}
        self._api: Operations | None = None
        self._ssl: Any = None
        self._repository_checked = False  # repos.get answered once: its 404 is named clearly
        self._login: str | None = None
        self._files: dict[str, tuple[str, ...]] = {}  # sha -> paths a commit changed
        self._workflow_paths: dict[Any, str] | None = None  # workflow id -> its file's path

    @property
    def api(self) -> Operations:
        if self._api is None:
            self._api = Operations(
                owner=self.owner,
                repo=self.repo,
                token=self.connection.token,
                api_url=self.connection.api_url,
                timeout=self.timeout,
            )
        return self._api

    def run(self, coroutine: Awaitable[T]) -> T:
        """Run one async read or write from synchronous code, on one shared HTTP client.

        ghapi opens a new HTTP client per request unless given one; each new client builds an
        SSL context (~80 ms of CPU), which would serialise a wave of concurrent requests. The
        context is built once per process, not once per call: ``next`` makes many calls.

        The result is handed out through a list, not as the main task's result: on the main
        thread ``asyncio.run`` puts its SIGINT handler back at the end, and Python 3.11's
        ``signal.signal`` formats the replaced handler, the finished task and so its result
        (a whole Snapshot: ~7 ms for 10 environments) into an error message it throws away.
        """
        result: list[T] = []

        async def main() -> None:
            result.append(await self._with_client(coroutine))

        asyncio.run(main())
        return result[0]

    async def _with_client(self, coroutine: Awaitable[T]) -> T:
        import httpx2

        if self._ssl is None:
            self._ssl = _ssl_context(self.connection.api_url)
        transport = self.api.transport
        async with httpx2.AsyncClient(
            timeout=self.timeout, follow_redirects=True, verify=self._ssl
        ) as client:
            transport.client = client
            try:
                return await coroutine
            finally:
                transport.client = None
                self._inflight.clear()

    # -- transport -------------------------------------------------------------------------

    async def call(
        self, operation: str, *, cache: bool = True, idempotent: bool = True, **params: Any
    ) -> Any:
        """One API operation ("group.name") with retries; JSON data, or None for 204.

        ``idempotent=False`` marks a write that must not be sent twice: after a failure that
        may have happened once GitHub applied it (5xx, lost response, read timeout) it is not
        retried; the caller looks for what it wrote instead.
        """
        data, _ = await self._call(operation, cache=cache, params=params, idempotent=idempotent)
        return data

    async def _call(
        self, operation: str, *, cache: bool, params: dict[str, Any], idempotent: bool = True
    ) -> tuple[Any, Any]:
        op = self.api.op(operation)
        key = operation + json.dumps(params, sort_keys=True, default=str)
        headers = {}
        cached = self._etags.get(key) if cache else None
        if cached:
            headers["If-None-Match"] = cached[0]
        if self._started is None:
            self._started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            left = self._left()
            if left <= 0:
                raise self._out_of_time(attempt - 1)
            if self.stats.remaining is not None and self.stats.remaining < LOW_BUDGET:
                await self._pace()
            self.stats.requests += 1
            began = time.monotonic()
            try:
                response = await asyncio.wait_for(
                    op(**params, raw_=True, headers_=headers), min(self.timeout, left)
                )
            except Exception as e:  # ghapi raises APIError; httpx2 errors may leak through
                status = getattr(e, "status_code", None)
                self._log(operation, getattr(e, "response", None), status or _kind(e), began)
                if status == 304 and cached:
                    self._budget(getattr(e, "response", None))
                    self.stats.not_modified += 1
                    return cached[1], getattr(e, "response", None)
                foreign = _not_github(getattr(e, "response", None), self.connection.api_url)
                if foreign is not None and (status is None or status < 500):
                    raise GitHubError(foreign, status) from None
                wait = self._retry_after(e, attempt, idempotent)
                if wait is not None and wait >= self._left():
                    raise self._out_of_time(attempt) from None
                if wait is None:
                    if isinstance(e, TimeoutError) and self._left() <= 0 and idempotent:
                        raise self._out_of_time(attempt) from None
                    error = self._error(e, operation, params, attempt)
                    if not idempotent and _uncertain(e):
                        raise UncertainWrite(error) from None
                    raise error from None
                self.stats.retries += 1
                await self.sleep(wait)
                continue
            self._log(operation, response, response.status_code, began)
            foreign = _not_github(response, self.connection.api_url)
            if foreign is not None:
                raise GitHubError(foreign, response.status_code)
            self._budget(response)
            self.stats.received += len(response.content)
            data = response.json() if response.content else None
            etag = response.headers.get("etag")
            if cache and etag and response.request.method == "GET":
                self._etags[key] = (etag, data)
            return data, response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pace(self) -> None:
        """One request every PACE seconds, concurrent ones too: what is left of the hour's
        budget lasts longer (each request's turn is taken before it waits for it)."""
        now = time.monotonic()
        turn = max(now, self._next_turn)
        self._next_turn = turn + PACE
        if turn > now:
            await self.sleep(turn - now)

    def _budget(self, response: Any) -> None:
        """Note the rate limit left that an answer (2xx or 304) reports; below LOW_BUDGET,
        say so once on stderr (and ``_call`` paces the requests that follow)."""
        headers = getattr(response, "headers", None) or {}
        left = str(headers.get("x-ratelimit-remaining") or "")
        if not left.isdigit():
            return
        self.stats.remaining = int(left)
        if self.stats.remaining < LOW_BUDGET and not self._warned:
            self._warned = True
            print(
                f"promote: warning: GitHub's rate limit is nearly spent ({left} requests left"
                f" this hour): slowing to one request every {PACE:g} s",
                file=sys.stderr,
                flush=True,
            )

    def _log(self, operation: str, response: Any, status: object, began: float) -> None:
        """``PROMOTE_DEBUG=api``: one stderr line per request (method, path, status, the rate
        limit left, time). The token is in a header, never in the path: nothing to hide."""
        if not self.debug:
            return
        request = getattr(response, "request", None)
        method = getattr(request, "method", "?")
        url = getattr(request, "url", None)
        path = getattr(url, "raw_path", b"").decode("ascii", "replace") if url else operation
        headers = getattr(response, "headers", {}) or {}
        left = headers.get("x-ratelimit-remaining", "?")
        took = (time.monotonic() - began) * 1000
        line = f"promote: api: {method} {path} {status} ({left} left, {took:.0f} ms)"
        print(line.replace(self.connection.token, "***"), file=sys.stderr, flush=True)

    def new_deadline(self) -> None:
        """Start the deadline again: one ``next`` of a ``watch`` is one command's worth."""
        self._started = None

    def _left(self) -> float:
        """Seconds left of the command's deadline for talking to GitHub."""
        started = self._started if self._started is not None else time.monotonic()
        return self.deadline - (time.monotonic() - started)

    def _out_of_time(self, attempts: int) -> GitHubError:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return GitHubError(
            f"GitHub at {self.connection.api_url} did not answer within {self.deadline:g} s "
            f"({tries})"
        )

    def _retry_after(self, error: Exception, attempt: int, idempotent: bool = True) -> float | None:
        """Seconds to wait before trying again, or None when this error is final."""
        if attempt >= self.attempts:
            return None
        status = getattr(error, "status_code", None)
        response = getattr(error, "response", None)
        headers: Mapping[str, str] = response.headers if response is not None else {}
        backoff = min(self.max_wait, 0.2 * float(2 ** (attempt - 1))) * (0.5 + random.random() / 2)
        if status is None:
            kind = _kind(error)
            retry = kind in TRANSIENT if idempotent else kind in UNSENT
            return backoff if retry else None
        if status in RETRY_STATUSES:
            return backoff if idempotent else None
        message = str(getattr(error, "message", "")).lower()
        # A 403 with Retry-After is a secondary limit (abuse detection) whatever it says.
        limited = status == 429 or (
            status == 403
            and (
                "rate limit" in message
                or headers.get("x-ratelimit-remaining") == "0"
                or "retry-after" in headers
            )
        )
        if not limited:
            return None
        if headers.get("retry-after", "").isdigit():
            wait = float(headers["retry-after"])
        elif (
            headers.get("x-ratelimit-remaining") == "0"
            and headers.get("x-ratelimit-reset", "").isdigit()
        ):
            wait = max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
        else:
            wait = max(backoff, 1.0)
        return wait if wait <= self.max_wait else None

    def _error(
        self, error: Exception, operation: str, params: Mapping[str, Any], attempt: int = 1
    ) -> GitHubError:
        status = getattr(error, "status_code", None)
        message = str(getattr(error, "message", "") or type(error).__name__)
        message = _clean(message.replace(self.connection.token, "***"))
        repo = self.connection.repository
        if status is None:
            kind = _kind(error)
            if "Timeout" in kind:
                tries = f"{attempt} attempt{'s' if attempt != 1 else ''}"
                return GitHubError(
                    f"GitHub at {self.connection.api_url} did not answer within "
                    f"{self.timeout:g} s ({tries} of {operation}; PROMOTE_HTTP_TIMEOUT per request)"
                )
            return GitHubError(
                f"cannot reach GitHub at {self.connection.api_url} ({kind}: {message})"
            )
        status = int(status)
        if status == 401:
            return GitHubError(
                f"GitHub rejected the token (401 Bad credentials): check {self.connection.token_name}",
                status,
            )
        if status == 404 and operation in ("repos.get", "repos.list_commits"):
            return GitHubError(
                f"repository {repo} not found, or the token cannot see it (404)", status
            )
        if status in (403, 429):
            return GitHubError(
                f"GitHub refused {operation} on {repo} ({status}: {message})", status
            )
        if status >= 500:  # the body is an HTML error page, not a message
            return GitHubError(
                f"GitHub answered {status} to {operation} on {repo}: server error", status
            )
        details = _details(getattr(error, "response", None))
        if details:
            message = _clean(f"{message}: {details}".replace(self.connection.token, "***"))
        return GitHubError(f"GitHub answered {status} to {operation} on {repo}: {message}", status)

    async def pages(
        self, operation: str, key: str | None = None, *, limit: int = 10, **params: Any
    ) -> list[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` (bounded).

        Identical reads in flight at once share one request.
        """
        return await self._shared(self._inflight, operation, key, limit, params, forget=True)

    async def _shared(
        self,
        memo: dict[str, asyncio.Future[list[Any]]],
        operation: str,
        key: str | None,
        limit: int,
        params: dict[str, Any],
        *,
        forget: bool,
    ) -> list[Any]:
        """``pages``, shared through ``memo``: while in flight, or (``forget=False``) for as
        long as ``memo`` lives: one snapshot read, where environments at one sha ask the same
        questions at different moments."""
        wanted = json.dumps([operation, key, limit, params], sort_keys=True, default=str)
        shared = memo.get(wanted)
        if shared is None:
            shared = asyncio.ensure_future(self._pages(operation, key, limit, params))
            memo[wanted] = shared
            if forget:
                shared.add_done_callback(lambda _: memo.pop(wanted, None))
        return list(await asyncio.shield(shared))

    async def _pages(
        self, operation: str, key: str | None, limit: int, params: dict[str, Any]
    ) -> list[Any]:
        items: list[Any] = []
        page = 1
        while True:
            data, response = await self._call(
                operation, cache=True, params={**params, "per_page": 100, "page": page}
            )
            chunk = (data or {}).get(key, []) if key else (data or [])
            items.extend(chunk)
            link = response.headers.get("link", "") if response is not None else ""
            if 'rel="next"' not in link or len(chunk) < 100 or page >= limit:
                return items
            page += 1

    # -- reading the snapshot ------------------------------------------------------------

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

        def listing(operation: str, key: str | None = None, **params: Any) -> Awaitable[list[Any]]:
            return self._shared(memo, operation, key, 10, params, forget=False)

        async def launch(read: Awaitable[T]) -> asyncio.Future[T]:
            """Start one read and give the loop a turn: the request goes on the wire now, not
            after every other request of the wave has been prepared (~1 ms of CPU each)."""
            task = asyncio.ensure_future(read)
            await asyncio.sleep(0)
            return task

        # Wave 1, what wave 2 waits for first: heads, deployments, checklists.
        commits = [await launch(self._commits(env.branch)) for env in envs]
        deployments = [
            await launch(listing("repos.list_deployments", environment=env.name)) for env in envs
        ]
        checklists = await launch(
            listing("issues.list_for_repo", labels=ledger.CHECKLIST_LABEL, state="all")
        )
        repository = await launch(self._check_repository())  # it only names a 404 clearly
        promotions = [
            await launch(
                listing(
                    "pulls.list",
                    state="all",
                    head=f"{self.owner}:{env.branch}",
                    base=following.branch,
                )
            )
            for env, following in itertools.pairwise(envs)
        ]
        open_pulls_read = await launch(listing("pulls.list", state="open"))
        # Wave 2, per environment, each request as soon as what it needs is in.
        second = [
            asyncio.ensure_future(
                self._head_facts(
                    env,
                    pipeline.after(env.name),
                    commits[i],
                    commits[i + 1] if i + 1 < n else None,
                    deployments[i],
                    checklists,
                    listing,
                    pipeline.bookkeeping_dir,
                )
            )
            for i, env in enumerate(envs)
        ]
        # Wave 1 is waited for to its end, and its first failure in this order is the one
        # reported (the repository check first: its 404 names the repository).
        first: list[asyncio.Future[Any]] = [
            repository, *commits, *deployments, *promotions, open_pulls_read, checklists,
        ]  # fmt: skip
        await asyncio.wait(first)
        errors = [f.exception() for f in first]  # each one asked for: none goes unretrieved
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            for task in second:
                task.cancel()
            await asyncio.gather(*second, return_exceptions=True)
            raise failed
        extras = await asyncio.gather(*second)
        branches = {env.branch for env in envs}
        facts = []
        for i, (env, extra) in enumerate(zip(envs, extras, strict=True)):
            promos = promotions[i].result() if i < n - 1 else []
            facts.append(
                EnvFacts(
                    name=env.name,
                    head=extra["head"],
                    branch_head=extra["branch_head"],
                    history=extra["history"],
                    arrivals=extra["arrivals"],
                    merged_pull=extra["merged_pull"],
                    deployments=tuple(
                        _deployment(d, extra["deployment_statuses"].get(d["id"], ()))
                        for d in deployments[i].result()
                    ),
                    statuses=extra["statuses"],
                    runs=extra["runs"],
                    checks=extra["checks"],
                    promotions=tuple(_pull(p) for p in promos),
                    next_contains_head=extra["next_contains_head"],
                    approvals=extra["approvals"],
                    change_authors=extra["change_authors"],
                    checklist=extra["checklist"],
                )
            )
        open_pulls = tuple(
            _pull(p) for p in open_pulls_read.result() if p["base"]["ref"] in branches
        )
        return await self._upstream_checks(pipeline, facts), open_pulls

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
                found = await self.call(
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
        if not self._repository_checked:
            await self.call("repos.get")
            self._repository_checked = True

    async def _commits(self, branch: str) -> list[dict[str, Any]]:
        try:
            return list(await self.call("repos.list_commits", sha=branch, per_page=COMMITS_READ))
        except GitHubError as e:
            if e.status in (404, 409):
                return []  # the branch does not exist (or the repository is empty)
            raise

    async def _head_facts(
        self,
        env: Any,
        following: Any,
        commits: Awaitable[list[dict[str, Any]]],
        following_commits: Awaitable[list[dict[str, Any]]] | None,
        deployments: Awaitable[list[dict[str, Any]]],
        checklists: Awaitable[list[dict[str, Any]]],
        listing: Callable[..., Awaitable[list[Any]]],
        bookkeeping_dir: str | None,
    ) -> dict[str, Any]:
        """One environment's wave 2. Each request waits only for the wave-1 answers it needs:
        the head (statuses, runs, checks, PRs), the deployments (their statuses), the next
        branch's commits (compare), the checklist issues (approval comments); and the walk
        down the branch's first-parent chain to its newest validated commit."""
        chain = _Chain(self, await commits)
        tip = chain.tip
        empty: dict[str, Any] = {
            "head": None, "branch_head": None, "merged_pull": None, "statuses": (), "runs": (),
            "checks": (), "deployment_statuses": {}, "next_contains_head": None, "approvals": (),
            "change_authors": (), "history": (), "arrivals": (), "checklist": None,
        }  # fmt: skip
        if tip is None:
            return empty
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

        async def deployment_statuses() -> dict[Any, list[Any]]:
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

        async def comments() -> tuple[Checklist | None, list[Any]]:
            key = ledger.key(env.name, sha)
            found = next((i for i in await checklists if _key_of(i) == key), None)
            if found is None:
                return None, []
            issue = Checklist(
                found["number"], found.get("state") or "open", found.get("html_url") or ""
            )
            return issue, await listing("issues.list_comments", issue_number=found["number"])

        try:
            reads: list[Any] = await asyncio.gather(
                listing("repos.list_commit_statuses_for_ref", ref=sha),
                listing("actions.list_workflow_runs_for_repo", "workflow_runs", head_sha=sha),
                listing("checks.list_for_ref", "check_runs", ref=sha),
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
        return {
            "head": sha,
            "branch_head": tip,
            "history": (*above, head_fact, *below),
            "arrivals": tuple(arrivals[n] for n in sorted(arrivals)),
            "merged_pull": merged_pull,
            "statuses": tuple(_status(s) for s in statuses),
            "runs": tuple(_run(r) for r in runs),
            "checks": tuple(_check(c) for c in checks),
            "deployment_statuses": by_deployment,
            "next_contains_head": contained,
            "approvals": tuple(a for c in decisions for a in _decisions(c)),
            "change_authors": tuple(dict.fromkeys(a for a in authors if a)),
            "checklist": checklist,
        }

    async def _with_paths(self, runs: list[Any]) -> list[dict[str, Any]]:
        """Workflow runs with their workflow file's ``path``, by ``workflow_id`` where the run
        does not say (GitHub Enterprise Server): runs are told apart by their workflow file."""
        if self._workflow_paths is None:
            data = await self.call("actions.list_repo_workflows", per_page=100)
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
                full = await self.call("repos.get_commit", ref=fact.sha)
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
            data = await self.call(
                "repos.compare_commits", basehead=f"{branch}...{sha}", per_page=1
            )
        except GitHubError:
            return None
        return bool(data and data.get("status") in ("behind", "identical"))

    # -- writes (each looks before it writes) ------------------------------------------------

    async def write_once(
        self, look: Callable[[], Awaitable[T | None]], write: Callable[[], Awaitable[T]]
    ) -> tuple[T, bool]:
        """Look, write, and after a failure look again; (result, written by this call).

        A write whose answer was lost (``UncertainWrite``) is sent again only after a look
        shows it did not land, so a flaky network never makes two; one that another run made
        meanwhile (GitHub then refuses ours, e.g. 422 for a second open PR) is found by a look.
        """
        for attempt in range(1, self.attempts + 1):
            found = await look()
            if found is not None:
                return found, False
            try:
                return await write(), True
            except UncertainWrite:
                if attempt == self.attempts:
                    raise
            except GitHubError:
                found = await look()
                if found is not None:
                    return found, False
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def set_status(
        self, sha: str, context: str, state: str, description: str = "", target_url: str = ""
    ) -> str:
        body: dict[str, Any] = {
            "state": state,
            "context": context,
            "description": description[:140],
        }
        if target_url:
            body["target_url"] = target_url

        async def look() -> dict[str, Any] | None:
            latest = await self.latest_status(sha, context)
            if latest is None or latest["state"] != state:
                return None
            return latest if (latest.get("description") or "") == body["description"] else None

        async def write() -> dict[str, Any]:
            return dict(
                await self.call("repos.create_commit_status", idempotent=False, sha=sha, **body)
            )

        _, written = await self.write_once(look, write)
        return (
            f"{context} = {state} on {sha[:7]}"
            if written
            else f"{context} already {state} on {sha[:7]}"
        )

    async def latest_status(self, sha: str, context: str) -> dict[str, Any] | None:
        statuses = await self._fresh("repos.list_commit_statuses_for_ref", ref=sha, per_page=100)
        mine = [s for s in statuses if s["context"] == context]
        return max(mine, key=lambda s: s["id"]) if mine else None

    async def _fresh(self, operation: str, **params: Any) -> Any:
        """A read that must not be served from the ETag cache of an earlier read."""
        return await self.call(operation, cache=False, **params)

    async def open_pull(
        self, head: str, base: str, title: str, body: str, sha: str | None = None
    ) -> tuple[int | None, str, bool]:
        """Find the PR ``head → base`` or create it; (number, url, created).

        The look finds an open PR, or one already merged at ``sha`` (its answer was lost and
        the Merge machine merged it before this run). GitHub's "No commits between" means the
        base already holds the head: (None, "", False).
        """

        async def look() -> dict[str, Any] | None:
            found = await self._fresh(
                "pulls.list", state="all", head=f"{self.owner}:{head}", base=base, per_page=30
            )
            for pull in found or []:
                if pull["state"] == "open":
                    return dict(pull)
            landed = [
                p for p in found or [] if p.get("merged_at") and sha and p["head"]["sha"] == sha
            ]
            return dict(landed[0]) if landed else None

        async def write() -> dict[str, Any]:
            return dict(
                await self.call(
                    "pulls.create", idempotent=False, head=head, base=base, title=title, body=body
                )
            )

        try:
            pull, created = await self.write_once(look, write)
        except GitHubError as e:
            if e.status == 422 and "no commits between" in str(e).lower():
                return None, "", False
            raise
        return pull["number"], pull["html_url"], created

    async def dispatch(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> str:
        data = await self.call(  # never resent: a lost answer may hide a started run
            "actions.create_workflow_dispatch",
            idempotent=False,
            workflow_id=workflow,
            ref=ref,
            inputs=dict(inputs),
            return_run_details=True,
        )
        return str((data or {}).get("html_url") or f"{workflow} dispatched on {ref}")

    async def checklist_issue(
        self, key: str, title: str, body: str, assignees: list[str]
    ) -> tuple[int, str, bool]:
        """Find the checklist issue for ``env@sha`` or open it; (number, url, created)."""

        async def look() -> dict[str, Any] | None:
            issues = await self._fresh(
                "issues.list_for_repo", labels=ledger.CHECKLIST_LABEL, state="all", per_page=100
            )
            return next((dict(i) for i in issues if _key_of(i) == key), None)

        async def write() -> dict[str, Any]:
            return dict(
                await self.call(
                    "issues.create",
                    idempotent=False,
                    title=title,
                    body=body,
                    labels=[ledger.CHECKLIST_LABEL],
                    assignees=assignees,
                )
            )

        issue, created = await self.write_once(look, write)
        return issue["number"], issue["html_url"], created

    async def comment(self, number: int, body: str) -> str:
        """Post ``body`` on issue ``number`` unless this user already posted exactly that."""
        me = await self.user()

        async def look() -> dict[str, Any] | None:
            comments = await self._fresh("issues.list_comments", issue_number=number, per_page=100)
            mine = (
                c
                for c in comments
                if c.get("body") == body and (c.get("user") or {}).get("login") == me
            )
            return next((dict(c) for c in mine), None)

        async def write() -> dict[str, Any]:
            return dict(
                await self.call(
                    "issues.create_comment", idempotent=False, issue_number=number, body=body
                )
            )

        created, _ = await self.write_once(look, write)
        return str(created["html_url"])

    async def close_issue(self, number: int) -> None:
        await self.call("issues.update", issue_number=number, state="closed")

    async def user(self) -> str:
        """Who the token belongs to (asked once per client: ``approve`` and its comment both
        need it)."""
        if self._login is None:
            self._login = str((await self.call("users.get_authenticated"))["login"])
        return self._login

    async def read_file(self, path: str, ref: str) -> str | None:
        try:
            data = await self.call("repos.get_content", path=path, ref=ref)
        except GitHubError as e:
            if e.status == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        return _text(data["content"], path)

    async def tree(self, ref: str, *, conditional: bool = False) -> list[dict[str, Any]]:
        """The recursive tree at ``ref``; ``conditional``: sent with the ETag of this process's
        last answer, so an unchanged tree costs a 304 (GitHub still decides: never stale)."""
        data = await self.call("git.get_tree", cache=conditional, tree_sha=ref, recursive="1")
        return list(data.get("tree", []))

    async def blob(self, sha: str, path: str) -> str:
        """The text of blob ``sha``, the file at ``path`` (named if it is not UTF-8)."""
        data = await self.call("git.get_blob", file_sha=sha)  # content-addressed: cache forever
        return _text(data["content"], path)

    async def commit_changes(
        self, branch: str, message: str, changes: Mapping[str, str | None]
    ) -> str:
        """One commit on ``branch``: path -> new text, or None to delete. Returns the new sha."""
        ref = await self._fresh("git.get_ref", ref=f"heads/{branch}")
        parent = ref["object"]["sha"]
        commit = await self.call("git.get_commit", commit_sha=parent)
        entries = []
        for path, text in changes.items():
            if text is None:
                entries.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
            else:
                entries.append({"path": path, "mode": "100644", "type": "blob", "content": text})
        tree = await self.call("git.create_tree", tree=entries, base_tree=commit["tree"]["sha"])
        new = await self.call(
            "git.create_commit",
            message=f"{message}\n\n{bookkeeping_trailer(parent)}\n",
            tree=tree["sha"],
            parents=[parent],
        )
        await self.call("git.update_ref", ref=f"heads/{branch}", sha=new["sha"], force=False)
        return str(new["sha"])

    # -- failures: rollback records, dispatches, refs, reverts (each look before it writes) ---

    async def rollback_deployment(
        self,
        environment: str,
        ref: str,
        failed_sha: str,
        plan: str,
        description: str = "",
        *,
        task: str = ROLLBACK_TASK,
        key: str = "rollback_of",
        carries: tuple[str, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """Find the rollback deployment of ``failed_sha`` in ``environment`` or create it at
        ``ref``; (deployment, created). Never two for one failed sha: found by ``task`` and the
        payload's ``promote.<key>``. ``carries``: the failed head's plans, on the record."""

        async def look() -> dict[str, Any] | None:
            found = await self._fresh(
                "repos.list_deployments", environment=environment, task=task, per_page=100
            )
            mine = [d for d in found or [] if _payload(d).get(key) == failed_sha]
            return dict(min(mine, key=lambda d: d["id"])) if mine else None

        async def write() -> dict[str, Any]:
            return dict(
                await self.call(
                    "repos.create_deployment",
                    idempotent=False,
                    ref=ref,
                    environment=environment,
                    task=task,
                    auto_merge=False,
                    required_contexts=[],
                    payload={"promote": {key: failed_sha, "plan": plan, "carries": list(carries)}},
                    description=description[:140],
                )
            )

        return await self.write_once(look, write)

    async def deploy_set_off(
        self, workflow: str | None, ref: str, environment: str, sha: str, anchor: Mapping[str, Any]
    ) -> bool:
        """Has a deploy of ``sha`` to ``environment`` been set off since the ``anchor``
        deployment was created? A newer deployment at ``sha`` says so, and so does a dispatched
        run of ``workflow`` on ``ref`` still in flight (it has not created its deployment yet)."""
        deployments = await self._fresh(
            "repos.list_deployments", environment=environment, sha=sha, per_page=100
        )
        if any(
            d["id"] > anchor["id"] and d.get("task") != ROLLBACK_TASK for d in deployments or []
        ):
            return True
        if workflow is None:
            return False
        data = await self._fresh(
            "actions.list_workflow_runs",
            workflow_id=workflow,
            event="workflow_dispatch",
            branch=ref,
            created=f">={anchor['created_at']}",
            per_page=100,
        )
        runs = (data or {}).get("workflow_runs", [])
        return any(r.get("status") != "completed" for r in runs)

    async def deploy_once(
        self, workflow: str | None, ref: str, environment: str, sha: str, anchor: Mapping[str, Any]
    ) -> str:
        """Dispatch ``workflow`` on ``ref`` to deploy ``sha``, unless that happened since ``anchor``."""
        if workflow is None:
            return "no deploy workflow configured: the deployment itself must start the deploy"
        if await self.deploy_set_off(workflow, ref, environment, sha, anchor):
            return f"deploy of {sha[:7]} to {environment} already set off"
        url = await self.dispatch(workflow, ref, {"environment": environment, "sha": sha})
        return f"dispatched {workflow} on {ref} for {environment} at {sha[:7]}: {url}"

    async def ref_sha(self, ref: str) -> str | None:
        """The sha ``heads/<b>`` or ``tags/<t>`` points to, or None when there is no such ref."""
        try:
            data = await self._fresh("git.get_ref", ref=ref)
        except GitHubError as e:
            if e.status == 404:
                return None
            raise
        return str(data["object"]["sha"])

    async def ensure_ref(self, ref: str, sha: str) -> tuple[str, bool]:
        """Create ``refs/<ref>`` at ``sha`` unless it exists; (the sha it points to, created)."""

        async def write() -> str:
            await self.call("git.create_ref", idempotent=False, ref=f"refs/{ref}", sha=sha)
            return sha

        return await self.write_once(lambda: self.ref_sha(ref), write)

    async def take_lock(
        self, tree: str, owner: str, since: str, until: str, now: str
    ) -> tuple[str | None, tuple[str, str, str]]:
        """Try once to take the repository's lock: (our lock commit, a holder's owner, since,
        until). The commit is None when another run holds it and its time has not run out (the
        holder is that run); else the holder is the one whose stale lock was taken over, or
        empty when the lock was free.

        Taking a free lock is creating ``refs/promote/lock``, which fails if it exists. Taking
        over an expired one is a fast-forward of the ref to a commit whose parent is the
        expired lock: of two runs that try at once, the second's update is no fast-forward.
        """
        ref = f"refs/{LOCK_REF}"
        holder = await self.ref_sha(LOCK_REF)
        parents = [] if holder is None else [holder]
        held = ("", "", "")
        if holder is not None:
            data = await self.git_commit(holder)
            held = lock_holder(str(data.get("message") or ""))
            if held[2] and held[2] > now:
                return None, held
        mine = await self.create_commit(lock_message(owner, since, until), tree, parents)
        for attempt in range(1, self.attempts + 1):
            try:
                if holder is None:
                    await self.call("git.create_ref", idempotent=False, ref=ref, sha=mine)
                else:
                    await self.call(
                        "git.update_ref", idempotent=False, ref=LOCK_REF, sha=mine, force=False
                    )
            except GitHubError as e:
                if not isinstance(e, UncertainWrite) and e.status not in (409, 422):
                    raise
                # Someone was quicker, or the answer was lost: whoever holds it now, says the ref.
                now_held = await self.ref_sha(LOCK_REF)
                if now_held == mine:
                    return mine, held
                if isinstance(e, UncertainWrite) and now_held == holder:
                    if attempt == self.attempts:  # it never landed: an error, nobody's lock
                        raise e.cause from None
                    await self.sleep(min(self.max_wait, 0.2 * 2 ** (attempt - 1)))
                    continue  # it did not land: sending it again makes no second lock
                if now_held is None:
                    return None, ("", "", "")
                message = str((await self.git_commit(now_held)).get("message") or "")
                return None, lock_holder(message)
            return mine, held
        raise AssertionError("unreachable")  # pragma: no cover

    async def drop_lock(self, mine: str) -> bool:
        """Delete the lock ref if it is still ours (a holder that outlived its time may have
        been taken over: that lock is not ours to drop)."""
        if await self.ref_sha(LOCK_REF) != mine:
            return False
        try:
            await self.call("git.delete_ref", ref=LOCK_REF)
        except GitHubError as e:
            if e.status in (404, 422):
                return False
            raise
        return True

    async def force_branch(self, branch: str, sha: str) -> bool:
        """Point ``branch`` at ``sha``, forcing it; False when it already pointed there."""
        if await self.ref_sha(f"heads/{branch}") == sha:
            return False
        await self.call("git.update_ref", ref=f"heads/{branch}", sha=sha, force=True)
        return True

    async def git_commit(self, sha: str) -> dict[str, Any]:
        """A commit object (tree, parents, author): content-addressed, so cached."""
        return dict(await self.call("git.get_commit", commit_sha=sha))

    async def create_commit(self, message: str, tree: str, parents: list[str]) -> str:
        data = await self.call("git.create_commit", message=message, tree=tree, parents=parents)
        return str(data["sha"])

    async def create_tree(self, entries: list[dict[str, Any]], base_tree: str | None) -> str:
        params: dict[str, Any] = {"tree": entries}
        if base_tree:
            params["base_tree"] = base_tree
        return str((await self.call("git.create_tree", **params))["sha"])

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
        return [dict(c) for c in await self.pages("pulls.list_commits", pull_number=number)]

    async def pending_deployments(self, run_id: int) -> list[dict[str, Any]]:
        """The deployments a workflow run waits on (environment protection rules)."""
        found = await self._fresh("actions.get_pending_deployments_for_run", run_id=run_id)
        return [dict(p) for p in found or []]

    async def review_deployments(
        self, run_id: int, environment_ids: list[int], state: str, comment: str
    ) -> None:
        """Approve or reject a run's pending deployments (as a required reviewer)."""
        await self.call(
            "actions.review_pending_deployments_for_run", run_id=run_id,
            environment_ids=environment_ids, state=state, comment=comment,
        )  # fmt: skip

    async def reviews_for_run(self, run_id: int) -> list[dict[str, Any]]:
        """The environment reviews given on a workflow run."""
        return [
            dict(r) for r in await self.call("actions.get_reviews_for_run", run_id=run_id) or []
        ]

    async def merged_pull_of(self, sha: str, base: str) -> dict[str, Any] | None:
        """The PR merged into ``base`` that produced ``sha``, if any."""
        pulls = await self.call(
            "repos.list_pull_requests_associated_with_commit", commit_sha=sha, per_page=100
        )
        merged = [p for p in pulls or [] if p["base"]["ref"] == base and p.get("merged_at")]
        return dict(max(merged, key=lambda p: p["merged_at"])) if merged else None

    async def merge_pull(self, number: int, sha: str, methods: tuple[str, ...]) -> str:
        """Merge PR ``number`` at head ``sha`` with the first of ``methods`` the repository
        allows; the new base sha. A PR already merged (by us, before a crash) is not merged again."""
        pull = await self.pull(number)
        if pull.get("merged_at"):
            return str(pull["merge_commit_sha"])
        settings = await self.call("repos.get")
        flags = {"merge": "allow_merge_commit", "squash": "allow_squash_merge"}
        allowed = [m for m in methods if settings.get(flags.get(m, "allow_rebase_merge"), True)]
        try:
            data = await self.call(
                "pulls.merge",
                idempotent=False,
                pull_number=number,
                sha=sha,
                merge_method=(allowed or list(methods))[0],  # none allowed: GitHub says why
            )
        except GitHubError:
            pull = await self.pull(number)
            if pull.get("merged_at"):
                return str(pull["merge_commit_sha"])
            raise
        return str(data["sha"])

    async def statuses_of(self, sha: str) -> list[dict[str, Any]]:
        """Every commit status on ``sha`` (all pages), read fresh."""
        return [dict(s) for s in await self.pages("repos.list_commit_statuses_for_ref", ref=sha)]

    async def compare(self, base: str, head: str) -> dict[str, Any]:
        return dict(
            await self.call("repos.compare_commits", basehead=f"{base}...{head}", per_page=1)
        )


def _ssl_context(api_url: str) -> Any:
    """TLS settings for the client: loading the CA store costs ~60-80 ms of CPU, so an
    ``http://`` API (the sandbox, a plain-HTTP GHES) gets a context that trusts nothing, which
    refuses any redirect to ``https://`` instead of paying for certificates it never uses."""
    import ssl

    import httpx2

    if api_url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and no CA is trusted
    return httpx2.create_ssl_context()


def _kind(error: Exception) -> str:
    """The transport failure's name (``ReadTimeout``, ``ConnectError`` ...)."""
    if isinstance(error, TimeoutError):
        return "ReadTimeout"  # our own per-request bound: the answer may still be on its way
    return str(getattr(error, "error_type", "") or type(error).__name__)


def _uncertain(error: Exception) -> bool:
    """Whether a failed write may have reached GitHub and been applied."""
    status = getattr(error, "status_code", None)
    if status is None:
        return _kind(error) in TRANSIENT - UNSENT
    return int(status) >= 500


def _not_github(response: Any, api_url: str) -> str | None:
    """Why an answer is not GitHub's API (a proxy's error page, a wrong host), or None."""
    if response is None or not getattr(response, "content", b""):
        return None
    kind = str(response.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return None
    status = getattr(response, "status_code", "?")
    return f"{api_url} answered {kind or 'without a content type'} ({status}), not GitHub's API: check GITHUB_API_URL"


def _details(response: Any) -> str:
    """GitHub's ``errors[]`` of a 4xx answer, in its own words (why a PR could not be made)."""
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return ""
    found = body.get("errors") if isinstance(body, dict) else None
    words = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, str):
            words.append(item)
        elif isinstance(item, dict):
            text = item.get("message") or " ".join(
                str(item[k]) for k in ("resource", "field", "code") if item.get(k)
            )
            words.append(str(text))
    return "; ".join(w for w in words if w)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(content: str, path: str) -> str:
    """A file's base64 ``content`` as text; a file that is not UTF-8 is named, in one line."""
    try:
        return base64.b64decode(content).decode("utf-8")
    except UnicodeDecodeError:
        raise PromoteError(f"{path}: not UTF-8 text") from None


def _clean(text: str) -> str:
    return " ".join(text.split())[:200]


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


def _validated(statuses: Any, env: str) -> bool:
    """``promote/<env>`` is success on the commit, and was never failure or error there."""
    states = {s["state"] for s in statuses if s["context"] == f"promote/{env}"}
    return "success" in states and not states & {"failure", "error"}


class _Chain:
    """A branch's commits as read, newest first, and more of them on demand."""

    def __init__(self, github: GitHub, first: list[dict[str, Any]]) -> None:
        self.github = github
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
            page = await self.github.call("repos.list_commits", sha=sha, per_page=COMMITS_READ)
            self.known.update((c["sha"], c) for c in page or [])
        return self.known.get(sha)
