"""The sandbox as one object: a bare repository, its GitHub state, CI, and the HTTP server."""

from __future__ import annotations

import atexit
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from promote_sandbox.actions import Actions
from promote_sandbox.api_ci import CiApi
from promote_sandbox.api_pulls import PullsApi
from promote_sandbox.api_repo import RepoApi
from promote_sandbox.ci import CI
from promote_sandbox.gitrepo import GitRepo
from promote_sandbox.gitrepo import git_env
from promote_sandbox.scenario import Scenario
from promote_sandbox.seed import History
from promote_sandbox.seed import author_ident
from promote_sandbox.seed import seed
from promote_sandbox.seed import seed_promoted
from promote_sandbox.seed import write_history
from promote_sandbox.server import ApiError
from promote_sandbox.server import App
from promote_sandbox.server import FaultPlan
from promote_sandbox.server import RateLimiter
from promote_sandbox.server import Reply
from promote_sandbox.server import Request
from promote_sandbox.server import Route
from promote_sandbox.server import Router
from promote_sandbox.server import SandboxHTTPServer
from promote_sandbox.server import Stats
from promote_sandbox.server import not_found
from promote_sandbox.shapes import Shapes
from promote_sandbox.store import Store

DEFAULT_STEP_MS = 25


class Sandbox(App):
    """A running local GitHub. Use :func:`start`; stop it with :meth:`stop` or ``with``."""

    def __init__(
        self,
        directory: Path,
        scenario: Scenario,
        *,
        port: int,
        latency_ms: int,
        fault_rate: float,
        seed_value: int,
        step_ms: int,
        retry_after: int,
        owns_directory: bool,
        actions: bool = False,
        seconds_per_minute: float = 60.0,
        steps_per_minute: int = 1,
    ) -> None:
        self.directory = directory
        self.scenario = scenario
        self.latency_ms = latency_ms
        self.retry_after = retry_after
        self.step_ms = step_ms
        self._owns_directory = owns_directory
        self.router = Router()
        self.stats = Stats()
        self.faults = FaultPlan(fault_rate, seed_value)
        self.limiter = RateLimiter()
        self.clone_path = directory / "clone"
        self.repo, history = _seeded_copy(directory, scenario)
        self._server = SandboxHTTPServer(self, port)
        self.store = Store(self.repo, scenario, f"http://127.0.0.1:{self._server.port}")
        self.shapes = Shapes(self.store)
        self.ci = CI(self.store, self.shapes)
        with self.store.lock:
            seed(self.store, self.ci, history)
        self.actions: Actions | None = None
        if actions:
            self.actions = Actions(
                self.store,
                self.shapes,
                self.ci,
                directory / "actions",
                seconds_per_minute=seconds_per_minute,
                steps_per_minute=steps_per_minute,
            )
            self.ci.actions = self.actions
        for group in (RepoApi, PullsApi, CiApi):
            group(self.store, self.shapes, self.ci).register(self.router)
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="sandbox-http",
                daemon=True,
            )
        ]
        if step_ms > 0:
            self._threads.append(
                threading.Thread(target=self._tick, name="sandbox-ci", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    # -- what callers use --------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.store.base_url

    @property
    def repository(self) -> str:
        return f"{self.scenario.owner}/{self.scenario.repo}"

    @property
    def bare_path(self) -> Path:
        return self.repo.path

    @property
    def users(self) -> dict[str, dict[str, str]]:
        return {
            u.login: {"token": u.token or "", "role": u.role}
            for u in self.store.users.values()
            if u.token is not None and u.type == "User"
        }

    def token(self, login: str) -> str:
        token = self.store.users[login].token
        if token is None:
            raise KeyError(login)
        return token

    @property
    def author_token(self) -> str:
        return self.token(self.scenario.author)

    @property
    def reviewer_token(self) -> str:
        return self.token(self.scenario.reviewer)

    def health_url(self, env: str) -> str:
        return self.ci.health_url(env)

    def env(self) -> dict[str, str]:
        """The ``KEY=VALUE`` lines ``promote sandbox serve`` prints."""
        return {
            "GITHUB_API_URL": self.api_url,
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_TOKEN": self.author_token,
            "PROMOTE_REVIEWER_TOKEN": self.reviewer_token,
            "PROMOTE_CLONE": str(self.clone_path),
            "PROMOTE_SANDBOX_BARE": str(self.bare_path),
            "PROMOTE_SANDBOX_CONTROL": f"{self.api_url}/_sandbox",
        }

    def advance(self) -> bool:
        """Run one CI step now; True if anything changed."""
        return self.ci.advance()

    def adopt(self, ref: str) -> str:
        """Adopt a setup commit (what ``promote init`` wrote, committed and pushed to ``ref``):
        every environment branch moves to it, recorded as deployed and validated there the
        way the seed records its first commit, so the pipeline starts from a known-good state
        that already holds the team's workflows. Nothing is triggered. Returns the sha."""
        store = self.store
        with store.lock:
            store.sync_refs()
            sha = store.branch_sha(ref.removeprefix("refs/heads/")) or store.repo.full_sha(
                ref, "commit"
            )
            if sha is None:
                raise ApiError(422, f"No commit found for {ref}")
            self.ci.quiet = True
            if self.actions is not None:
                self.actions.quiet = True
            try:
                for env in self.scenario.environments:
                    old = store.branch_sha(env)
                    if old is not None and not store.repo.is_ancestor(old, sha):
                        raise ApiError(422, f"{sha[:7]} does not contain the head of {env}")
                    store.move_ref(f"refs/heads/{env}", sha, old, self.scenario.author)
                    seed_promoted(store, self.ci, env, sha)
            finally:
                self.ci.quiet = False
                if self.actions is not None:
                    self.actions.quiet = False
            return sha

    def wait_for_actions(self, timeout: float = 60.0) -> None:
        """Wait until every emulated workflow run created so far has finished (runs the
        schedule creates meanwhile are not waited for)."""
        deadline = time.monotonic() + timeout
        with self.store.lock:
            upto = max(self.actions.runs, default=0) if self.actions is not None else 0
        while self.actions is not None:
            with self.store.lock:
                if not self.actions.busy(upto):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox Actions runs did not finish within {timeout} s")
            time.sleep(0.05)

    def settle(self, timeout: float = 10.0) -> None:
        """Advance until CI is idle (hung or approval-waiting runs count as idle)."""
        deadline = time.monotonic() + timeout
        while True:
            changed = self.ci.advance()
            if not changed and not self.ci.busy():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox CI did not settle within {timeout} s")

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.actions is not None:
            self.actions.stop()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._stopped.wait(self.step_ms / 1000):
            try:
                self.ci.advance()
            except Exception:  # pragma: no cover - keep the clock alive, report once
                import traceback

                traceback.print_exc()

    # -- App (the HTTP layer calls these) ----------------------------------------------------

    def base_url(self) -> str:
        return self.store.base_url

    def authenticate(self, token: str) -> str | None:
        return self.store.tokens.get(token)

    def dispatch(self, route: Route, req: Request) -> Reply:
        with self.store.lock:
            if "owner" in req.params and not _owner_matches(req, self.scenario):
                raise not_found()
            self.store.sync_refs()
            if route.write and not self.store.can_write(req.login):
                raise ApiError(403, "Resource not accessible by personal access token")
            return route.handler(req)

    def control(self, method: str, path: str, query: dict[str, str], body: Any) -> Reply:
        tail = path[len("/_sandbox/") :].strip("/")
        if method == "GET" and tail.startswith("health/"):
            with self.store.lock:
                status, data = self.ci.health(tail[len("health/") :])
            return Reply(status, data)
        if method == "POST" and tail == "advance":
            return Reply(200, {"changed": self.ci.advance(), "busy": self.ci.busy()})
        if method == "POST" and tail == "settle":
            timeout = _settle_timeout(query, body)
            try:
                self.settle(timeout)
            except TimeoutError as exc:
                return Reply(504, {"message": str(exc)})
            return Reply(200, {"settled": True})
        if method == "GET" and tail == "state":
            return Reply(200, self.state())
        if method == "GET" and tail == "stats":
            return Reply(200, self.stats.to_json())
        if method == "POST" and tail == "stats/reset":
            self.stats.reset()
            return Reply(200, self.stats.to_json())
        if tail == "faults":
            return self._faults_control(method, body)
        if method == "GET" and tail == "scenario":
            return Reply(200, self.scenario.to_json())
        if method == "GET" and tail == "env":
            return Reply(200, self.env())
        if method == "POST" and tail == "adopt":
            ref = str((body or {}).get("ref", "")) if isinstance(body, dict) else ""
            return Reply(200, {"sha": self.adopt(ref)})
        if method == "GET" and tail == "actions":
            if self.actions is None:
                raise ApiError(404, "this sandbox runs no Actions emulator (start it with actions)")
            with self.store.lock:
                return Reply(200, self.actions.overview())
        if method == "GET" and tail.startswith("logs/jobs/"):
            with self.store.lock:
                text = self.actions.log(_int(tail[len("logs/jobs/") :])) if self.actions else None
            if text is None:
                raise not_found()
            return Reply(200, text.encode(), {"Content-Type": "text/plain; charset=utf-8"})
        raise not_found()

    def _faults_control(self, method: str, body: Any) -> Reply:
        """``/_sandbox/faults``: GET lists the targeted rules, DELETE drops them, POST adds
        one: ``{"method": "POST", "pattern": "/issues$", "kind": "502", "times": 1}``
        (``"method": "*"`` with no pattern: every distinct write, once)."""
        if method == "DELETE":
            self.faults.clear()
        elif method == "POST":
            spec = body if isinstance(body, dict) else {}
            try:
                if spec.get("method") == "*":
                    self.faults.every_write_once(str(spec["kind"]))
                else:
                    self.faults.target(
                        str(spec["method"]),
                        str(spec.get("pattern", "")),
                        str(spec["kind"]),
                        times=int(spec.get("times", 1)),
                    )
            except (KeyError, ValueError, re.error) as e:
                raise ApiError(422, f"bad fault rule: {e}") from None
        elif method != "GET":
            raise not_found()
        with self.faults.lock:
            return Reply(200, {"rules": [t.to_json() for t in self.faults.targets]})

    def state(self) -> dict[str, Any]:
        """A compact picture for debugging: branch heads, runs, deployments, health."""
        store = self.store
        with store.lock:
            store.sync_refs()
            envs = {}
            for env in self.scenario.environments:
                code, health = self.ci.health(env)
                envs[env] = {
                    "head": store.branch_sha(env),
                    "health": health["status"],
                    "http": code,
                }
            runs = [
                {
                    "id": r.id,
                    "workflow": store.workflows[r.workflow_id].path,
                    "event": r.event,
                    "environment": r.environment,
                    "head_sha": r.head_sha,
                    "status": r.status,
                    "conclusion": r.conclusion,
                }
                for r in sorted(store.runs.values(), key=lambda r: r.id)
            ]
            deployments = []
            for d in sorted(store.deployments.values(), key=lambda d: d.id):
                latest = store.latest_deployment_status(d)
                deployments.append(
                    {
                        "id": d.id,
                        "environment": d.environment,
                        "sha": d.sha,
                        "task": d.task,
                        "state": latest.state if latest else None,
                    }
                )
            pulls = [
                {
                    "number": i.number,
                    "head": i.pull.head_ref,
                    "base": i.pull.base_ref,
                    "state": i.state,
                    "merged": i.pull.merged_at is not None,
                }
                for i in store.issues.values()
                if i.pull is not None
            ]
            return {
                "environments": envs,
                "runs": runs,
                "deployments": deployments,
                "pulls": pulls,
                "busy": self.ci.busy(),
            }


_TEMPLATES: dict[tuple[Any, ...], tuple[Path, History]] = {}
_TEMPLATE_LOCK = threading.Lock()


def _template_key(scenario: Scenario) -> tuple[Any, ...]:
    author = next(u for u in scenario.users if u.login == scenario.author)
    return (
        scenario.owner,
        scenario.repo,
        scenario.plan_id,
        scenario.environments,
        scenario.reviewer,
        author.login,
        author.name,
        author.email,
    )


def _build_template(root: Path, scenario: Scenario) -> History:
    bare = root / "remote" / scenario.owner / f"{scenario.repo}.git"
    repo = GitRepo.init_bare(bare, scenario.default_branch)
    history = write_history(repo, scenario, int(time.time()) - 3600)
    clone = root / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(bare), str(clone)],
        check=True,
        capture_output=True,
        env=git_env(),
    )
    ident = author_ident(scenario, 0)
    for key, value in (("user.name", ident.name), ("user.email", ident.email)):
        subprocess.run(
            ["git", "-C", str(clone), "config", key, value],
            check=True,
            capture_output=True,
            env=git_env(),
        )
    return history


def _seeded_copy(directory: Path, scenario: Scenario) -> tuple[GitRepo, History]:
    """Copy a per-process template of the seeded git history (seeding it once is the slow part)."""
    key = _template_key(scenario)
    with _TEMPLATE_LOCK:
        found = _TEMPLATES.get(key)
        if found is None:
            root = Path(tempfile.mkdtemp(prefix="promote-sandbox-template-"))
            atexit.register(shutil.rmtree, root, True)
            found = (root, _build_template(root, scenario))
            _TEMPLATES[key] = found
    root, history = found
    shutil.copytree(root / "remote", directory / "remote", symlinks=True)
    shutil.copytree(root / "clone", directory / "clone", symlinks=True)
    bare = directory / "remote" / scenario.owner / f"{scenario.repo}.git"
    config = directory / "clone" / ".git" / "config"
    text = config.read_text(encoding="utf-8")
    old = str(root / "remote" / scenario.owner / f"{scenario.repo}.git")
    config.write_text(text.replace(old, str(bare)), encoding="utf-8")
    return GitRepo(bare), history


def _settle_timeout(query: dict[str, str], body: Any) -> float:
    """``POST /_sandbox/settle``'s ``timeout`` (query or JSON body; 10 s when absent)."""
    raw = query.get("timeout") or (body.get("timeout") if isinstance(body, dict) else None)
    try:
        timeout = float(10 if raw is None else raw)
    except (TypeError, ValueError):
        timeout = math.nan
    if not math.isfinite(timeout):
        raise ApiError(422, f"timeout must be a number of seconds, not {raw!r}")
    return timeout


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


def _owner_matches(req: Request, scenario: Scenario) -> bool:
    return (
        req.params.get("owner", "").lower() == scenario.owner.lower()
        and req.params.get("repo", "").lower() == scenario.repo.lower()
    )


def start(
    directory: str | Path | None = None,
    *,
    scenario: Scenario | None = None,
    port: int = 0,
    latency_ms: int = 0,
    fault_rate: float = 0.0,
    seed: int = 0,
    step_ms: int = DEFAULT_STEP_MS,
    retry_after: int = 1,
    actions: bool = False,
    seconds_per_minute: float = 60.0,
    steps_per_minute: int = 1,
) -> Sandbox:
    """Seed a repository in ``directory`` (a temporary one if None) and start serving it.

    ``step_ms=0`` turns the wall clock off: CI then moves only on :meth:`Sandbox.advance`,
    :meth:`Sandbox.settle` or ``POST /_sandbox/advance``. ``actions=True`` also runs the
    repository's own workflow files (:mod:`promote_sandbox.actions`); ``seconds_per_minute``
    is how long a minute of ``timeout-minutes`` lasts there, and ``steps_per_minute`` how many
    CI steps make a minute of the clock ``schedule`` reads.
    """
    owns = directory is None
    path = (
        Path(tempfile.mkdtemp(prefix="promote-sandbox-"))
        if directory is None
        else Path(directory).resolve()
    )
    path.mkdir(parents=True, exist_ok=True)
    if (path / "remote").exists() or (path / "clone").exists():
        raise FileExistsError(f"{path} already holds a sandbox; give an empty directory")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    return Sandbox(
        path,
        scenario or Scenario(),
        port=port,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        seed_value=seed,
        step_ms=step_ms,
        retry_after=retry_after,
        owns_directory=owns,
        actions=actions,
        seconds_per_minute=seconds_per_minute,
        steps_per_minute=steps_per_minute,
    )
