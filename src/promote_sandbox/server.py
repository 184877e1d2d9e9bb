"""HTTP for the sandbox: routing, auth, errors, pagination, ETags, rate-limit headers, faults.

Standard library only (``http.server``), HTTP/1.1 with ``Content-Length`` on every response and
header names in the canonical case GitHub uses over HTTP/1.1, so both ghapi lines and plain
``urllib`` clients read it the way they read api.github.com.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlencode
from urllib.parse import urlsplit

DOCS = "https://docs.github.com/rest"
FAULT_KINDS = ("502", "drop", "secondary_rate_limit", "429", "applied_then_dropped")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
RATE_LIMIT = 5000
_STAMP = re.compile(
    rb"\b[0-9a-f]{40}\b|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
)


class ApiError(Exception):
    """An error answer in GitHub's shape: message, documentation_url, status, maybe errors."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        errors: list[Any] | None = None,
        doc: str = DOCS,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.doc = doc
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            data["errors"] = self.errors
        data["documentation_url"] = self.doc
        data["status"] = str(self.status)
        return data


def not_found() -> ApiError:
    return ApiError(404, "Not Found")


def invalid(resource: str, field_name: str, code: str = "invalid", **extra: Any) -> ApiError:
    """422 Validation Failed with one GitHub-style ``errors`` entry."""
    entry: dict[str, Any] = {"resource": resource, "field": field_name, "code": code, **extra}
    return ApiError(422, "Validation Failed", errors=[entry])


def custom_invalid(resource: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Validation Failed",
        errors=[{"resource": resource, "code": "custom", "message": message}],
    )


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    login: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)

    def q(self, name: str, default: str | None = None) -> str | None:
        value = self.query.get(name)
        if value is None or value == "" or value == "None":
            return default
        return value

    def qbool(self, name: str, default: bool = False) -> bool:
        value = self.q(name)
        if value is None:
            return default
        return value.lower() in ("true", "1", "yes")

    def qint(self, name: str, default: int) -> int:
        value = self.q(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Reply]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    write: bool


def _compile(template: str) -> re.Pattern[str]:
    out = ""
    pos = 0
    for m in re.finditer(r"\{(\w+)(?::path)?\}", template):
        out += re.escape(template[pos : m.start()])
        kind = ".+" if m.group(0).endswith(":path}") else "[^/]+"
        out += f"(?P<{m.group(1)}>{kind})"
        pos = m.end()
    out += re.escape(template[pos:])
    return re.compile(f"^{out}$")


class Router:
    """Path templates in GitHub's own spelling; ``{name:path}`` may span slashes."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, template: str, handler: Handler, *, write: bool | None = None
    ) -> None:
        is_write = method in WRITE_METHODS if write is None else write
        self.routes.append(
            Route(method, template.replace(":path}", "}"), _compile(template), handler, is_write)
        )
        # The most literal template wins, so ``commits/{ref}/status`` beats ``commits/{ref}``.
        self.routes.sort(key=lambda r: -len(re.sub(r"\{[^}]*\}", "", r.template)))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(path)
            if m:
                return route, {k: unquote(v) for k, v in m.groupdict().items()}
        return None


def paginate(req: Request, items: list[Any], key: str | None = None) -> Reply:
    """One page of a list, with GitHub's ``Link`` header; ``key`` wraps it with total_count."""
    per_page = min(max(req.qint("per_page", 30), 1), 100)
    page = max(req.qint("page", 1), 1)
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    last = max(1, -(-len(items) // per_page))
    links = []

    def url_for(number: int) -> str:
        query = dict(req.query)
        query["page"] = str(number)
        if "per_page" in req.query:
            query["per_page"] = str(per_page)
        return f"{req.url}?{urlencode(query, quote_via=quote)}"

    if page < last:
        links.append(f'<{url_for(page + 1)}>; rel="next"')
        links.append(f'<{url_for(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{url_for(1)}>; rel="first"')
        links.append(f'<{url_for(min(page - 1, last))}>; rel="prev"')
    headers = {"Link": ", ".join(links)} if links else {}
    body: Any = {"total_count": len(items), key: chunk} if key else chunk
    return Reply(200, body, headers)


@dataclass
class FaultPlan:
    """Seeded, so a run with the same seed and the same request order sees the same faults."""

    rate: float
    seed: int
    rng: random.Random = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    targets: list[Target] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    killer: tuple[int, int] | None = None

    def target(self, method: str, pattern: str, kind: str, *, times: int = 1) -> Target:
        """Answer the next ``times`` requests ``METHOD path`` matching ``pattern`` (a regular
        expression searched in the path) with fault ``kind``: a targeted, deterministic fault."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        rule = Target(method.upper(), re.compile(pattern), kind, times)
        with self.lock:
            self.targets.append(rule)
        return rule

    def every_write_once(self, kind: str) -> Target:
        """Answer the first attempt of every distinct write (method, path and body) with
        ``kind``; the same request sent again is served (a client's retry, or a later run's)."""
        return self.target("*", "", kind, times=-1)

    def kill_after(self, writes: int, pid: int) -> None:
        """Kill process ``pid`` (SIGKILL) once ``writes`` more writes have been applied, before
        the last one is answered: a client that dies right after its write reached GitHub."""
        with self.lock:
            self.killer = (writes, pid)

    def applied_write(self) -> int | None:
        """Count one applied write; the pid to kill now, if this was the fatal one."""
        with self.lock:
            if self.killer is None:
                return None
            left, pid = self.killer
            self.killer = (left - 1, pid) if left > 1 else None
            return pid if left <= 1 else None

    def clear(self) -> None:
        with self.lock:
            self.targets.clear()
            self.seen.clear()

    def draw(self, method: str, path: str = "", body: bytes = b"") -> str | None:
        targeted = self._targeted(method, path, body)
        if targeted is not None:
            return targeted
        if self.rate <= 0:
            return None
        with self.lock:
            if self.rng.random() >= self.rate:
                return None
            kinds = FAULT_KINDS if method in WRITE_METHODS else FAULT_KINDS[:-1]
            return self.rng.choice(kinds)

    def _targeted(self, method: str, path: str, body: bytes) -> str | None:
        return _targeted(self, method, path, body)


@dataclass
class Target:
    """One targeted fault rule: ``times`` left (-1: each distinct write, once)."""

    method: str
    pattern: re.Pattern[str]
    kind: str
    times: int
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method == "*":
            return method in WRITE_METHODS
        return self.method == method and self.pattern.search(path) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "pattern": self.pattern.pattern,
            "kind": self.kind,
            "times": self.times,
            "hits": self.hits,
        }


def _targeted(plan: FaultPlan, method: str, path: str, body: bytes) -> str | None:
    """The first live targeted rule that takes this request (and uses it up), or None."""
    with plan.lock:
        for rule in plan.targets:
            if rule.times == 0 or not rule.matches(method, path):
                continue
            if rule.kind == "applied_then_dropped" and method not in WRITE_METHODS:
                continue
            if rule.times < 0:
                # Timestamps and shas aside: a run's lock (a new commit each try) is the same write.
                same = _STAMP.sub(b"", body)
                key = f"{method} {path} {hashlib.sha256(same).hexdigest()}"
                if key in plan.seen:
                    continue
                plan.seen.add(key)
            else:
                rule.times -= 1
            rule.hits += 1
            return rule.kind
    return None


class Stats:
    """Request counts by method and path template (for the tool's request-budget tests), and
    the API's connections (not the control endpoints'): how many were opened and the most
    open at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0  # connections open now: not reset, they outlive a reset
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.by_route: Counter[str] = Counter()
            self.bytes_by_route: Counter[str] = Counter()  # bytes of the JSON bodies of 200s
            self.by_status: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.faulted: Counter[str] = Counter()  # by method and path: no route is matched
            self.total = 0
            self.connections = 0
            self.max_open = self.open

    def connected(self, change: int) -> None:
        with self.lock:
            self.open += change
            if change > 0:
                self.connections += 1
                self.max_open = max(self.max_open, self.open)

    def record(self, route: str, status: int | str, sent: int = 0) -> None:
        with self.lock:
            self.total += 1
            self.by_route[route] += 1
            self.bytes_by_route[route] += sent
            self.by_status[str(status)] += 1

    def fault(self, kind: str, request: str) -> None:
        with self.lock:
            self.faults[kind] += 1
            self.faulted[request] += 1

    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total": self.total,
                "requests": dict(sorted(self.by_route.items())),
                "bytes": dict(sorted(self.bytes_by_route.items())),
                "statuses": dict(sorted(self.by_status.items())),
                "faults": dict(sorted(self.faults.items())),
                "faulted": dict(sorted(self.faulted.items())),
                "connections": {"opened": self.connections, "most_open": self.max_open},
            }


class RateLimiter:
    """Primary rate-limit bookkeeping per user, reported in headers (never enforced)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.used: Counter[str] = Counter()
        self.window = int(time.time())

    def charge(self, login: str, cost: int) -> dict[str, str]:
        with self.lock:
            now = int(time.time())
            if now >= self.window + 3600:
                self.window = now
                self.used.clear()
            self.used[login] += cost
            used = self.used[login]
            return {
                "X-RateLimit-Limit": str(RATE_LIMIT),
                "X-RateLimit-Remaining": str(max(RATE_LIMIT - used, 0)),
                "X-RateLimit-Reset": str(self.window + 3600),
                "X-RateLimit-Used": str(used),
                "X-RateLimit-Resource": "core",
            }


class App:
    """What the HTTP layer needs from the sandbox."""

    router: Router
    stats: Stats
    faults: FaultPlan
    limiter: RateLimiter
    latency_ms: int
    retry_after: int

    def authenticate(self, token: str) -> str | None:
        raise NotImplementedError

    def dispatch(self, route: Route, req: Request) -> Reply:
        raise NotImplementedError

    def control(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        raise NotImplementedError

    def base_url(self) -> str:
        raise NotImplementedError


def request_id() -> str:
    """GitHub's ``XXXX:XXXX:XXXXXX:XXXXXX:XXXXXXXX`` (one draw of randomness, not five)."""
    h = secrets.token_hex(14).upper()
    return f"{h[:4]}:{h[4:8]}:{h[8:14]}:{h[14:20]}:{h[20:]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY: the body is written after the headers, and without it that second write on
    # a kept-alive connection waits for the client's delayed ACK (40 ms on Linux), a stall
    # GitHub does not have (it made every reused connection's answer ~40 ms late).
    disable_nagle_algorithm = True
    server_version = "GitHub.com"
    sys_version = ""
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        self.counted = False  # an API connection (its first request was not /_sandbox/)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self.counted:
                self.server.app.stats.connected(-1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return "GitHub.com"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        app = self.server.app
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if path.startswith("/_sandbox/"):
            try:
                reply = app.control(self.command, path, query, _json_or_none(raw_body))
            except ApiError as exc:
                reply = Reply(exc.status, exc.body())
            self._send(reply, {})
            return
        if not self.counted:
            self.counted = True
            app.stats.connected(+1)
        if path.startswith("/api/v3/"):
            path = path[len("/api/v3") :]
        if app.latency_ms:
            time.sleep(app.latency_ms / 1000)
        fault = app.faults.draw(self.command, path, raw_body)
        if fault is not None and fault != "applied_then_dropped":
            app.stats.fault(fault, f"{self.command} {path}")
            self._fault(fault)
            return
        reply, template, login = self._api(path, query, raw_body)
        sent = len(reply.body) if isinstance(reply.body, bytes) else 0  # a GET's 200
        app.stats.record(f"{self.command} {template}", reply.status, sent)
        if self.command in WRITE_METHODS and reply.status < 400:
            victim = app.faults.applied_write()
            if victim is not None:
                os.kill(victim, signal.SIGKILL)
                self.close_connection = True
                return
        if fault == "applied_then_dropped":
            app.stats.fault(fault, f"{self.command} {path}")
            self.close_connection = True
            return
        limits = app.limiter.charge(login or "anonymous", 0 if reply.status == 304 else 1)
        self._send(reply, limits)

    def _api(
        self, path: str, query: dict[str, str], raw_body: bytes
    ) -> tuple[Reply, str, str | None]:
        app = self.server.app
        auth = self.headers.get("Authorization") or ""
        scheme, _, token = auth.partition(" ")
        login: str | None = None
        template = "(unmatched)"
        try:
            if not auth:
                raise ApiError(401, "Requires authentication")
            if scheme.lower() not in ("token", "bearer"):
                raise ApiError(401, "Bad credentials")
            login = app.authenticate(token.strip())
            if login is None:
                raise ApiError(401, "Bad credentials")
            found = app.router.match(self.command, path)
            if found is None:
                raise not_found()
            route, params = found
            template = route.template
            try:
                body = json.loads(raw_body) if raw_body.strip() else None
            except ValueError:
                raise ApiError(400, "Problems parsing JSON") from None
            req = Request(
                method=self.command,
                path=path,
                params=params,
                query=query,
                body=body,
                login=login,
                url=f"{app.base_url()}{path}",
                headers={k.lower(): v for k, v in self.headers.items()},
            )
            reply = app.dispatch(route, req)
        except ApiError as exc:
            reply = Reply(exc.status, exc.body(), dict(exc.headers))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = Reply(
                500, {"message": "Server Error", "documentation_url": DOCS, "status": "500"}
            )
        if self.command == "GET" and reply.status == 200:
            reply = self._conditional(reply, auth)
        return reply, template, login

    def _conditional(self, reply: Reply, auth: str) -> Reply:
        text = _dump(reply.body)
        accept = self.headers.get("Accept") or ""
        digest = hashlib.sha256(f"{accept}\n{auth}\n".encode() + text).hexdigest()
        etag = f'W/"{digest}"'
        reply.headers["ETag"] = etag
        reply.headers.setdefault("Cache-Control", "private, max-age=60, s-maxage=60")
        reply.headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
        wanted = self.headers.get("If-None-Match")
        if wanted and etag in [t.strip() for t in wanted.split(",")]:
            return Reply(304, None, {k: v for k, v in reply.headers.items() if k != "Link"})
        reply.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return Reply(reply.status, text, reply.headers)  # serialised once: sent as hashed

    def _fault(self, kind: str) -> None:
        app = self.server.app
        if kind == "drop":
            self.close_connection = True
            return
        rid = request_id()
        if kind == "502":
            page = b"<html><body><h1>502 Bad Gateway</h1>Unicorn! Please try again.</body></html>"
            headers = {
                "Content-Type": "text/html; charset=utf-8",
                **app.limiter.charge("anonymous", 0),
            }
            self._raw(502, page, headers, rid)
            return
        if kind == "secondary_rate_limit":
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again. If you reach out to GitHub Support for help, please include the "
                f"request ID {rid}."
            )
            self._rate_limited(403, message, "#about-secondary-rate-limits", 1000, rid)
            return
        message = (
            "API rate limit exceeded for user. If you reach out to GitHub Support for help, "
            f"please include the request ID {rid}."
        )
        self._rate_limited(429, message, "#about-the-primary-rate-limit", RATE_LIMIT, rid)

    def _rate_limited(self, status: int, message: str, anchor: str, used: int, rid: str) -> None:
        retry_after = self.server.app.retry_after
        body = {
            "message": message,
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            + anchor,
            "status": str(status),
        }
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(RATE_LIMIT - used),
            "X-RateLimit-Reset": str(int(time.time()) + retry_after),
            "X-RateLimit-Used": str(used),
            "X-RateLimit-Resource": "core",
        }
        self._raw(status, _dump(body), headers, rid)

    def _send(self, reply: Reply, limits: dict[str, str]) -> None:
        headers = dict(limits)
        headers.update(reply.headers)
        if reply.status in (204, 304) or reply.body is None:
            payload = b""
        elif isinstance(reply.body, bytes):
            payload = reply.body
        else:
            payload = _dump(reply.body)
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        if reply.status != 304 and reply.body is not None:
            headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        self._raw(reply.status, payload, headers, request_id())

    def _raw(self, status: int, payload: bytes, headers: dict[str, str], rid: str) -> None:
        try:
            self.send_response(status)
            self.send_header("X-GitHub-Api-Version-Selected", "2022-11-28")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("X-GitHub-Request-Id", rid)
            if status != 304:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and status not in (204, 304):
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _dump(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json_or_none(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return None


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1 that hands every request to an :class:`App`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 makes bursts of connects wait for SYN retries

    def __init__(self, app: App, port: int = 0) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is normal (timeouts, fault tests); anything else is a bug.
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)
