"""GitHub's transport: connection, ghapi operations built on first use, retries, deadline, ETags,
pages, pacing, stats, and ``write_once``. Every error is a one-line ``GitHubError``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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

from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError

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
LOW_BUDGET = 50  #: rate limit left below which a run warns, once, and paces its requests
PACE = (
    1.0  #: seconds between requests (one at a time) while the rate limit left is below LOW_BUDGET
)
#: Requests in flight at once, each on a kept-alive connection of a pool this size: GitHub's
#: secondary limits punish many concurrent requests (a gate over 100 PRs opened 119).
POOL = 8
#: Requests in flight at once over HTTP/2 (https, where the server's ALPN chooses it): one
#: connection carries them all; GitHub allows 100 concurrent requests.
STREAMS = 64


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


class Client:
    """One client per process: the transport the reads and writes go through."""

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
        self._reset = ""  # the rate-limit window (X-RateLimit-Reset) that ``remaining`` is of
        self._next_turn = 0.0  # monotonic time of the next paced request's turn
        # request -> (ETag, data, Link): a 304 may come without the Link of the pages after it
        self._etags: dict[str, tuple[str, Any, str]] = {}
        self._inflight: dict[str, asyncio.Future[list[Any]]] = {}
        self._api: Operations | None = None
        self._ssl: Any = None
        self._slots: asyncio.Semaphore | None = None  # POOL requests at once, per event loop
        self._multiplexed = False  # HTTP/2 offered, and no answer said otherwise: STREAMS
        self._http1 = False  # an answer came over HTTP/1.1: the server's choice, for the process
        self._writes: asyncio.Semaphore | None = None  # writes at once (POOL), over HTTP/2 too
        # What the reads (read.py) remember for the process:
        self._repository_checked = False  # repos.get answered once: its 404 is named clearly
        self._login: str | None = None
        self._files: dict[str, tuple[str, ...]] = {}  # sha -> paths a commit changed
        self._workflow_paths: dict[Any, str] | None = None  # workflow id -> its file's path
        self._contents: dict[tuple[str, str], str | None] = {}  # (path, commit sha) -> text
        self._blobs: dict[str, str] = {}  # blob sha -> text
        self._git_commits: dict[str, dict[str, Any]] = {}  # commit sha -> git commit object

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
        pool = httpx2.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self._multiplexed = _http2(self.connection.api_url) and not self._http1
        connections = None
        if self._multiplexed and not _proxied(self.connection.api_url):
            from promote_tasks.github.multiplex import Multiplexed

            # HTTP/2 on a connection of our own; HTTP/1.1 (the server's choice) on httpcore2's
            fallback = httpx2.AsyncHTTPTransport(verify=self._ssl, limits=pool)
            connections = Multiplexed(httpx2.URL(self.connection.api_url), self._ssl, fallback)
        async with httpx2.AsyncClient(
            timeout=self.timeout,
            follow_redirects=True,
            verify=self._ssl,
            limits=pool,
            http2=self._multiplexed,
            transport=connections,
        ) as client:
            transport.client = client
            self._slots = asyncio.Semaphore(STREAMS if self._multiplexed else POOL)
            # GitHub asks for writes one after another; POOL of them at once at most, as ever
            self._writes = asyncio.Semaphore(POOL)
            try:
                return await coroutine
            finally:
                transport.client = None
                self._slots = self._writes = None
                self._inflight.clear()

    # -- transport -------------------------------------------------------------------------

    async def _op(
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
    ) -> tuple[Any, str]:
        """(JSON data, the answer's ``Link`` header); a 304 gives what the cached answer had."""
        op = self.api.op(operation)
        write = _metadata()[operation]["verb"] != "GET"
        key = operation + json.dumps(params, sort_keys=True, default=str)
        headers = {}
        cached = self._etags.get(key) if cache else None
        if cached:
            headers["If-None-Match"] = cached[0]
        if self._started is None:
            self._started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            if self.stats.remaining is not None and self.stats.remaining < LOW_BUDGET:
                await self._pace(attempt)
            if self._left() <= 0:
                raise self._out_of_time(attempt - 1)
            failure: Exception | None = None
            # A free slot first: this request's timeout runs from when it goes out.
            writes = self._writes if write else None
            async with writes or contextlib.nullcontext(), self._slots or contextlib.nullcontext():
                left = self._left()
                if left <= 0:  # the others in the pool took the time: GitHub did not answer
                    raise self._out_of_time(attempt)
                self.stats.requests += 1
                began = time.monotonic()
                try:
                    # in this task: wait_for would make a task of each request
                    async with asyncio.timeout(min(self.timeout, left)):
                        response = await op(**params, raw_=True, headers_=headers)
                except Exception as caught:  # ghapi raises APIError; httpx2 may leak through
                    failure = caught
            if failure is not None:
                e = failure
                status = getattr(e, "status_code", None)
                self._log(operation, getattr(e, "response", None), status or _kind(e), began)
                if status == 304 and cached:
                    self._budget(getattr(e, "response", None))
                    self.stats.not_modified += 1
                    return cached[1], cached[2]
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
            if self._multiplexed and getattr(response, "http_version", "") != "HTTP/2":
                # the server chose HTTP/1.1: one request a connection, POOL of them
                self._multiplexed = False
                self._http1 = True
                self._slots = asyncio.Semaphore(POOL)
            foreign = _not_github(response, self.connection.api_url)
            if foreign is not None:
                raise GitHubError(foreign, response.status_code)
            self._budget(response)
            self.stats.received += len(response.content)
            data = response.json() if response.content else None
            etag = response.headers.get("etag")
            link = str(response.headers.get("link") or "")
            if cache and etag and response.request.method == "GET":
                self._etags[key] = (etag, data, link)
            return data, link
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pace(self, attempt: int) -> None:
        """One request every PACE seconds, concurrent ones too: what is left of the hour's
        budget lasts longer (each request's turn is taken before it waits for it). The wait
        counts against the deadline: a turn that comes after it is not waited for."""
        now = time.monotonic()
        turn = max(now, self._next_turn)
        if turn - now >= self._left():
            raise GitHubError(
                f"GitHub's rate limit is nearly spent ({self.stats.remaining} requests left this"
                f" hour): at one request every {PACE:g} s the rest of the work does not fit in"
                f" {self.deadline:g} s (PROMOTE_DEADLINE; {attempt - 1} attempts of this request)"
            )
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
        # Answers to concurrent requests arrive in any order: within one window (the same
        # reset time) the lowest count is the latest; a new window starts afresh.
        reset = str(headers.get("x-ratelimit-reset") or "")
        same_window = reset == self._reset and self.stats.remaining is not None
        self._reset = reset
        self.stats.remaining = (
            min(self.stats.remaining or 0, int(left)) if same_window else int(left)
        )
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
                f"cannot reach GitHub at {self.connection.api_url} ({kind}: {message}; "
                f"{operation} on {repo})"
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

    async def _paged(
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
            # its failure is raised to whoever awaits it; one nobody awaits (they were
            # cancelled first) is not "never retrieved" noise on stderr
            shared.add_done_callback(lambda f: f.cancelled() or f.exception())
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
            data, link = await self._call(
                operation, cache=True, params={"per_page": 100, **params, "page": page}
            )
            chunk = (data or {}).get(key, []) if key else (data or [])
            items.extend(chunk)
            full = len(chunk) >= params.get("per_page", 100)
            if 'rel="next"' not in link or not full or page >= limit:
                return items
            page += 1

    async def _fresh(self, operation: str, **params: Any) -> Any:
        """A read that must not be served from the ETag cache of an earlier read."""
        return await self._op(operation, cache=False, **params)

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


def _ssl_context(api_url: str) -> Any:
    """TLS settings for the client: loading the CA store costs ~60-80 ms of CPU, so an
    ``http://`` API (the sandbox, a plain-HTTP GHES) gets a context that trusts nothing, which
    refuses any redirect to ``https://`` instead of paying for certificates it never uses."""
    import ssl

    import httpx2

    if api_url.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, and no CA is trusted
    return httpx2.create_ssl_context()


def _http2(api_url: str) -> bool:
    """Offer HTTP/2 (TLS's ALPN lets the server choose) on ``https://``; over plain HTTP there
    is no choosing, so a proxy or a GitHub Enterprise Server there gets HTTP/1.1."""
    import importlib.util

    return api_url.startswith("https://") and importlib.util.find_spec("h2") is not None


def _proxied(api_url: str) -> bool:
    """Whether the environment sends ``api_url`` through a proxy (``HTTPS_PROXY``,
    ``ALL_PROXY``, less ``NO_PROXY``): httpx2's own transports then, which know proxies."""
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    host = urllib.parse.urlsplit(api_url).hostname or ""
    wanted = proxies.get("https") or proxies.get("all")
    return bool(wanted) and not urllib.request.proxy_bypass(host)


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


def _clean(text: str) -> str:
    return " ".join(text.split())[:200]
