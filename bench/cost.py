"""What running the tool costs, side by side in one run, as counts and ratios (issue 12).

Run: ``.venv/bin/python bench/cost.py`` (a few minutes; ``--quick`` skips the 30-environment
and 100,000-commit cases). Prints, with the machine's load average:

1. **what each request of a cold read is for**: the 3-environment ``status`` read by a fresh
   client, method + route as the sandbox counted them;
2. **requests and bytes per cold read** at 3, 10 and 30 environments, freshly seeded, after 1
   and after 10 whole journeys, with 0, 20 and 100 open PRs into the first environment;
3. **the share of 304s in steady-state polling**: ``next`` again and again in one process
   (as ``watch`` does) once the pipeline rests, with 0, 20 and 100 open PRs (``next`` also
   looks at, and where needed writes, the gate of every open PR);
4. **requests per whole journey** (the default dev → test → main one, a feature PR to
   production with one approval), driven as the e2e tests drive it: in one process (a
   ``watch``: its ETag cache makes most answers 304s) and one process per ``next
   --until-rest`` (as Actions runs it: every read is cold); with the most connections the
   sandbox saw open at once;
5. **process CPU before the first request** against ``python -c pass`` and ``import ghapi``,
   and of ``promote --help``;
6. **read wall time against the round trip** at 100 ms of injected latency, the sandbox in its
   own process, for 3, 10 and 30 environments;
7. **rollback target against ``git rev-list --first-parent``** on 10,000 and 100,000 commits
   (the known-good commit is the root: the whole chain is walked).

Numbers are medians of a few runs where time is measured; nothing is asserted.
Set ``PYTHONPATH`` to another checkout's ``src`` to measure that one the same way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from promote_sandbox import Sandbox
from promote_sandbox import Scenario
from promote_sandbox import start
from promote_sandbox.seed import plan_text
from promote_tasks.errors import PromoteError
from promote_tasks.model import State
from promote_tasks.session import Run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.e2e's Driver, as the journey tests drive it
from hook_latency import fast_import_stream  # noqa: E402
from snapshot import OwnProcess  # noqa: E402
from snapshot import names  # noqa: E402
from snapshot import process_cpu  # noqa: E402
from snapshot import read  # noqa: E402
from snapshot import settings  # noqa: E402

from tests.e2e.conftest import Api  # noqa: E402
from tests.e2e.conftest import Driver  # noqa: E402
from tests.e2e.conftest import config  # noqa: E402

PROCESSES = 7
LATENCY_MS = 100
POLLS = 3

#: The CPU of a fresh interpreter once ``code`` has run: user + system of this process.
CPU = "\nimport time; print(time.process_time())"  # ns resolution, not 10 ms ticks

#: What a ``promote status`` process does before its first request, up to the client and the
#: operation of that request built (``op`` on this client; ghapi attributes on a ``GhApi()``).
FIRST_REQUEST = """
from pathlib import Path
from promote_tasks.session import Run
run = Run.load(Path({clone!r}), environ={environ!r})
api = run.github.api
op = api.op("repos.list_commits") if hasattr(api, "op") else api.repos.list_commits
"""

HELP = """
import contextlib, io
from promote_tasks.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(["--help"])
    except SystemExit:
        pass
"""

#: What each route of a read is asked for (DESIGN §3.1).
PURPOSE = {
    "GET /repos/{owner}/{repo}": "the repository exists and the token sees it (once per client)",
    "GET /repos/{owner}/{repo}/commits": "each branch's newest commits: its head, the chain below",
    "GET /repos/{owner}/{repo}/deployments": (
        "newest deployments: one page for all (one each for those it shows too few of)"
    ),
    "GET /repos/{owner}/{repo}/deployments/{deployment_id}/statuses": (
        "the statuses of the deployments that decide (at the head, rollbacks)"
    ),
    "GET /repos/{owner}/{repo}/pulls": (
        "the open PRs (a pair's promotions only when they do not tell)"
    ),
    "GET /repos/{owner}/{repo}/issues": (
        "the checklist issues (manual approval; a head not yet validated in such an environment)"
    ),
    "GET /repos/{owner}/{repo}/commits/{ref}/statuses": "commit statuses of a head (verdicts)",
    "GET /repos/{owner}/{repo}/commits/{ref}/status": "combined status of a head (verdicts)",
    "GET /repos/{owner}/{repo}/actions/runs": (
        "workflow runs of a head not yet validated, or whose deploys leave no deployment"
    ),
    "GET /repos/{owner}/{repo}/commits/{ref}/check-runs": "check runs of a head not yet validated",
    "GET /repos/{owner}/{repo}/commits/{ref}/pulls": "the merged PR that produced a head",
    "GET /repos/{owner}/{repo}/compare/{basehead}": "does the next branch hold this head",
    "GET /repos/{owner}/{repo}/git/trees/{sha}": "the plan store's files (plans/)",
    "GET /repos/{owner}/{repo}/git/blobs/{sha}": "a plan file",
    "GET /repos/{owner}/{repo}/contents/{path}": "a proposed plan's file on its PR branch",
    "GET /repos/{owner}/{repo}/issues/{number}/comments": "approvals on a checklist issue",
    "GET /repos/{owner}/{repo}/commits/{ref}": "files of a commit that claims to be bookkeeping",
}


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} ({os.cpu_count()} cores)"


def cpu(code: str) -> float:
    """Median CPU seconds of a fresh interpreter running ``code``."""
    found = []
    for _ in range(PROCESSES):
        done = subprocess.run(
            [sys.executable, "-c", code + CPU], capture_output=True, text=True, check=True
        )
        found.append(float(done.stdout.split()[-1]))
    return statistics.median(found)


# -- building history ------------------------------------------------------------------------


def pipeline_config(envs: tuple[str, ...]) -> str:
    """The default settings for the default 3 environments (manual approval in test), the
    bench's automated ones for more."""
    return config() if envs == ("dev", "test", "main") else settings(envs)


def finished(plan: str) -> Callable[[Driver, Any], bool]:
    def done(driver: Driver, rest: Any) -> bool:
        state = driver.run.decide(rest.snapshot)[0]
        main = state.environments[-1]
        return main.state is State.COMPLETE and any(
            p.id == plan and p.done for p in rest.snapshot.plans
        )

    return done


def feature_pr(api: Api, first: str, plan: str, *, with_plan: bool = True) -> dict[str, Any]:
    """A feature branch off the first environment with one commit (and its plan file), and
    its open PR into that environment."""
    api.post("/git/refs", {"ref": f"refs/heads/feature/{plan}", "sha": api.head(first)})
    changes = {"app.txt": f"shop v1\n{plan}\n"}
    if with_plan:
        changes[f"plans/doing/{plan}.md"] = plan_text(plan, plan.replace("-", " "))
    api.commit(f"feature/{plan}", f"{plan}\n", changes)
    return dict(api.post("/pulls", {"title": plan, "head": f"feature/{plan}", "base": first}))


def fresh_budget(sandbox: Sandbox) -> None:
    """A new hour of rate limit: a bench's many journeys would spend one and then be paced."""
    sandbox.limiter.used.clear()


def journeys(driver: Driver, count: int, start_at: int = 0) -> None:
    """``count`` whole journeys: the seeded plan first, then a new plan's feature PR each."""
    envs = driver.run.pipeline.names
    reviewer = "rita" if envs == ("dev", "test", "main") else None
    for k in range(start_at, start_at + count):
        fresh_budget(driver.sandbox)
        plan = driver.sandbox.scenario.plan_id
        if k:
            plan = f"journey-{k}"
            feature_pr(driver.api, driver.run.pipeline.environments[0].branch, plan)
        driver.drive(finished(plan), reviewer=reviewer, tick=300, limit=60 + 10 * len(envs))


class Unmetered(Driver):
    """A driver whose every ``next`` has a fresh hour of rate limit: one journey through 30
    environments spends more than an hour's 5,000 requests, and would then be paced."""

    def next(self) -> Any:
        fresh_budget(self.sandbox)
        return super().next()


class Fleet:
    """Sandboxes for one pipeline size at growing history: seeded, after 1 and 10 journeys."""

    def __init__(self, count: int, directory: Path) -> None:
        self.envs = names(count)
        scenario = Scenario(environments=self.envs, merge_bot=True)
        self.sandbox = start(directory, scenario=scenario, step_ms=0)
        self.driver = Unmetered(self.sandbox, pipeline_config(self.envs))
        self.done = 0

    def grow_to(self, journeys_done: int) -> None:
        journeys(self.driver, journeys_done - self.done, self.done)
        self.done = journeys_done

    def stop(self) -> None:
        self.sandbox.stop()


def open_prs(driver: Driver, count: int, tag: str) -> list[dict[str, Any]]:
    first = driver.run.pipeline.environments[0].branch
    return [feature_pr(driver.api, first, f"open-{tag}-{i}") for i in range(count)]


def close(driver: Driver, pulls: list[dict[str, Any]]) -> None:
    for pull in pulls:
        status, _ = driver.api.call(
            "PATCH", f"{driver.api.repo_path}/pulls/{pull['number']}", {"state": "closed"}
        )
        assert status == 200, status


# -- 1, 2: cold reads ------------------------------------------------------------------------


Routes = dict[str, tuple[int, int]]  #: route -> (requests, bytes of answer bodies)


def cold_read(sandbox: Sandbox, clone: Path) -> tuple[int, int, Routes]:
    """(requests, bytes, by route) of one ``status`` read by a fresh client."""
    run = Run.load(clone, environ=sandbox.env())
    fresh_budget(sandbox)
    sandbox.stats.reset()
    run.facts()
    data = sandbox.stats.to_json()
    routes = {r: (n, data["bytes"].get(r, 0)) for r, n in data["requests"].items()}
    return run.github.stats.requests, run.github.stats.received, routes


def show(routes: Routes) -> None:
    for route, (n, sent) in sorted(routes.items(), key=lambda kv: (-kv[1][0], kv[0])):
        print(f"  {n:3d} {sent / 1024:7.1f} KiB  {route:<62} {PURPOSE.get(route, '')}")


def reads_table(plan: dict[int, tuple[int, ...]], directory: Path) -> None:
    """Cold reads for each pipeline size at each history in ``plan`` (journeys driven)."""
    opens = (0, 20, 100)
    histories = sorted({h for done in plan.values() for h in done})
    grown: Routes = {}
    print("\n2. Cold read (a fresh client, `status`): requests / KiB of answer bodies")
    print(f"  {'journeys:':>9}" + "".join(f"  {h:>8} {'':>25}" for h in histories))
    print(f"  {'open PRs:':>9}" + "".join(f"  {o:>10}" for _ in histories for o in opens))
    for count, done in plan.items():
        fleet = Fleet(count, directory / f"reads-{count}")
        clone = fleet.driver.clone
        cells = []
        try:
            cold_read(fleet.sandbox, clone)  # warm: the sandbox's caches, the imports
            for history in histories:
                if history not in done:
                    cells += ["(not run)"] * len(opens)
                    continue
                fleet.grow_to(history)
                for opened in opens:
                    fresh_budget(fleet.sandbox)
                    made = open_prs(fleet.driver, opened, f"{history}-{opened}")
                    requests, received, routes = cold_read(fleet.sandbox, clone)
                    cells.append(f"{requests}/{received / 1024:.0f}")
                    if count == 3 and history == max(done) and not opened:
                        grown = routes
                    close(fleet.driver, made)
        except (AssertionError, PromoteError) as e:  # a journey that did not finish: say so
            cells.append(f"(stopped: {str(e)[:80]})")
        finally:
            fleet.stop()
        print(f"  {count:>4} env" + "".join(f"  {c:>10}" for c in cells), flush=True)
    if grown:
        print(f"  the 3-environment read after {max(plan[3])} journeys, by route:")
        show(grown)


def breakdown(directory: Path) -> int:
    sandbox = start(directory, step_ms=0)
    try:
        clone = Path(sandbox.env()["PROMOTE_CLONE"])
        cold_read(sandbox, clone)
        requests, received, routes = cold_read(sandbox, clone)
    finally:
        sandbox.stop()
    print(
        f"\n1. What a cold 3-environment read asks for (seeded): {requests} requests,"
        f" {received / 1024:.1f} KiB"
    )
    show(routes)
    return requests


# -- 3: polling -------------------------------------------------------------------------------


def polling(directory: Path) -> dict[int, float]:
    """The 304 share of ``next`` polls in one process once the pipeline rests."""
    print(
        f"\n3. Steady-state polling: {POLLS} `next` in one process after it rests (3 environments)"
    )
    shares = {}
    for opened in (0, 20, 100):
        sandbox = start(directory / f"poll-{opened}", scenario=Scenario(), step_ms=0)
        try:
            driver = Driver(sandbox, config())
            open_prs(driver, opened, "poll")
            fresh_budget(sandbox)
            driver.until_rest()  # the gates written, the seeded PR's plan admitted
            stats = driver.run.github.stats
            before = (stats.requests, stats.not_modified, stats.received)
            sandbox.stats.reset()
            for _ in range(POLLS):
                driver.next()
            requests = stats.requests - before[0]
            fresh = stats.not_modified - before[1]
            share = fresh / requests if requests else 0.0
            shares[opened] = share
            counted = requests - fresh
            print(
                f"  {opened:3d} open PRs: {requests / POLLS:5.1f} requests a poll, {share:4.0%} 304"
                f" ({counted / POLLS:.1f} counted against the rate limit a poll,"
                f" {(stats.received - before[2]) / POLLS / 1024:.1f} KiB)"
                f"  {'meets' if share >= 0.9 else 'misses'} the 90 % target"
            )
        finally:
            sandbox.stop()
    return shares


# -- 4: a whole journey ------------------------------------------------------------------------


class Cold(Driver):
    """A driver that starts a new process's worth of client for every ``next --until-rest``,
    as Actions does (one job per event): no ETag cache survives from one to the next."""

    def until_rest(self, limit: int = 20, replays: int = 0) -> list[Any]:
        ahead = self.run.ahead
        self.run = self.as_user(self.sandbox.scenario.author)
        self.run.ahead = ahead
        return super().until_rest(limit, replays)


def journey_cost(directory: Path) -> dict[str, int]:
    print(
        "\n4. One whole journey (dev → test → main, one approval), every request the sandbox"
        " served; the target is on those GitHub counts against the rate limit (a 304 is free)"
    )
    found = {}
    for label, kind in (("one process (watch)", Driver), ("a process per next (Actions)", Cold)):
        sandbox = start(directory / label.split()[0], scenario=Scenario(merge_bot=True), step_ms=0)
        try:
            driver = kind(sandbox, config())
            sandbox.stats.reset()
            journeys(driver, 1)
            data = sandbox.stats.to_json()
            total = int(data["total"])
            fresh = int(data["statuses"].get("304", 0))
            writes = sum(
                n
                for r, n in data["requests"].items()
                if r.startswith(("POST", "PATCH", "PUT", "DELETE"))
            )
            found[label] = total
            print(
                f"  {label:<30} {total:4d} requests ({fresh} of them 304, {total - fresh} counted;"
                f" {writes} writes), {len(driver.steps)} next,"
                f" at most {data['connections']['most_open']} connections open at once"
                f" ({data['connections']['opened']} opened)"
                f"  {'meets' if total - fresh <= 250 else 'misses'} ≤ 250 counted"
            )
        finally:
            sandbox.stop()
    return found


# -- 5: CPU -------------------------------------------------------------------------------------


def startup(directory: Path) -> None:
    sandbox = start(directory, step_ms=0)
    try:
        env = sandbox.env()
        first = cpu(FIRST_REQUEST.format(clone=env["PROMOTE_CLONE"], environ=env))
    finally:
        sandbox.stop()
    bare = max(cpu("pass"), 1e-3)
    ghapi = cpu("import ghapi.all")
    ghapi_built = cpu("from ghapi.all import GhApi; GhApi(token='x', gh_host='http://x')")
    helped = cpu(HELP)
    where = os.environ.get("PYTHONPATH") or "installed"
    print(f"\n5. Process CPU, user + system (median of {PROCESSES} processes; {where})")
    print(f"  python -c pass:                     {bare:.3f} s")
    print(f"  import ghapi.all:                   {ghapi:.3f} s  ({ghapi / bare:.1f}x pass)")
    print(
        f"  ... and GhApi():                    {ghapi_built:.3f} s  ({ghapi_built / bare:.1f}x pass)"
    )
    print(
        f"  promote status, to its 1st request: {first:.3f} s  ({first / bare:.1f}x pass,"
        f" {first / ghapi:.2f}x import ghapi.all)  {'meets' if first <= 0.5 else 'misses'} ≤ 0.5 s"
    )
    print(
        f"  promote --help:                     {helped:.3f} s  ({helped / bare:.1f}x pass)"
        f"  {'meets' if helped <= 0.25 else 'misses'} ≤ 0.25 s"
    )


# -- 6: wall against the round trip --------------------------------------------------------------


def walls(counts: tuple[int, ...], directory: Path) -> None:
    import trustme

    from promote_tasks.github import client

    pools = (client.POOL, 100)  # the tool's pool, and httpx's default (what it had before)
    print(
        f"\n6. `status` read wall time at {LATENCY_MS} ms a request (sandbox in its own process),"
        f" over HTTP/1.1 with the tool's pool of {pools[0]} connections and with {pools[1]}, and"
        " over HTTP/2 (TLS, as api.github.com: the sandbox's HTTP/2 front, in its own process)"
    )
    authority = trustme.CA()  # the front's certificate, trusted through SSL_CERT_FILE
    authority.cert_pem.write_to_path(str(directory / "ca.pem"))
    issued = authority.issue_cert("127.0.0.1")
    issued.private_key_and_cert_chain_pem.write_to_path(str(directory / "front.pem"))
    os.environ["SSL_CERT_FILE"] = str(directory / "ca.pem")
    front = directory / "front.pem"
    for count in counts:
        envs = names(count)
        found: dict[str, list[Any]] = {}
        for label in ("http/1.1", "http/2"):
            server: Any = OwnProcess(
                directory / f"wall-{count}-{label[-1]}", Scenario(environments=envs), LATENCY_MS
            )
            if label == "http/2":
                server = FrontProcess(server, front)
            try:
                clone = Path(server.env()["PROMOTE_CLONE"])
                # the seeded branches (dev, stage1, …, main), not the default dev, test, main
                (clone / "promote.toml").write_text(settings(envs), encoding="utf-8")
                read(server, clone)  # warm
                for pool in pools if label == "http/1.1" else pools[:1]:
                    client.POOL = pool
                    mode = (
                        f"{label}, pool {pool}" if label == "http/1.1" else "http/2, one connection"
                    )
                    found[mode] = [read(server, clone) for _ in range(3)]
            finally:
                client.POOL = pools[0]
                server.stop()
        line = []
        for mode, reads in found.items():
            wall = statistics.median(r.wall for r in reads)
            rtt = wall / (LATENCY_MS / 1000)
            cpu_used = statistics.median(r.client_cpu for r in reads)
            served = statistics.median(r.sandbox_cpu for r in reads)
            line.append(
                f"{mode}: {wall:.3f} s = {rtt:.1f} RTT (client CPU {cpu_used:.3f} s,"
                f" servers' {served:.3f} s)"
                f" {'meets' if rtt <= 2.5 else 'misses'} ≤ 2.5 RTT"
            )
        requests = next(iter(found.values()))[0].requests
        print(f"  {count:3d} envs, {requests:3d} requests:\n    " + "\n    ".join(line))


class FrontProcess:
    """The sandbox behind its HTTP/2 front, the front in a process of its own."""

    def __init__(self, sandbox: OwnProcess, pem: Path) -> None:
        self.sandbox = sandbox
        port = sandbox.env()["GITHUB_API_URL"].rsplit(":", 1)[1]
        command = [sys.executable, "-m", "promote_sandbox.h2front", port, str(pem)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip().partition("=")[2]

    def env(self) -> dict[str, str]:
        return self.sandbox.env() | {"GITHUB_API_URL": self.url}

    def cpu(self) -> float:
        """The sandbox's CPU and its front's: the servers', on the client's cores."""
        return self.sandbox.cpu() + process_cpu(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.sandbox.stop()


# -- 7: rollback target -------------------------------------------------------------------------


def timed(action: Callable[[], object], runs: int = 3) -> float:
    """Median wall seconds of ``action``."""
    found = []
    for _ in range(runs):
        begin = time.perf_counter()
        action()
        found.append(time.perf_counter() - begin)
    return statistics.median(found)


def rollback_case(size: int, repo: Path) -> tuple[float, float]:
    """(rollback_target, git rev-list --first-parent) seconds on ``size`` linear commits."""
    from promote_tasks.git import rollback_target

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    stream = fast_import_stream(size)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=stream, check=True, env=env)

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
        return done.stdout

    tip = git("rev-parse", "main").strip()
    root = git("rev-list", "--max-parents=0", "main").strip()
    ours = timed(lambda: rollback_target(repo, tip, [root]))
    return ours, timed(lambda: git("rev-list", "--first-parent", "main"))


def rollback(sizes: tuple[int, ...], directory: Path) -> None:
    print("\n7. Rollback target (known-good = the root) against git rev-list --first-parent")
    for size in sizes:
        ours, floor = rollback_case(size, directory / f"history-{size}")
        print(
            f"  {size:7,d} commits: rollback_target {ours:.3f} s, git rev-list {floor:.3f} s:"
            f" {ours / floor:.2f}x  {'meets' if ours / floor <= 1.5 else 'misses'} ≤ 1.5x"
        )


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--quick", action="store_true", help="no 30 envs, no 100k commits")
    args = options.parse_args()
    counts = (3, 10) if args.quick else (3, 10, 30)
    began = time.perf_counter()
    print(f"bench/cost.py on {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="promote-cost-") as tmp:
        base = Path(tmp)
        breakdown(base / "breakdown")
        polling(base)
        journey_cost(base)
        startup(base / "startup")
        walls(counts, base)
        rollback((10_000,) if args.quick else (10_000, 100_000), base)
        print(f"\n(so far: {load()})", flush=True)
        # the slowest last: journeys driven through 10 and 30 environments
        reads_table(
            {3: (0, 1, 10, 20, 30), 10: (0, 1, 10)} | ({} if args.quick else {30: (0, 1)}), base
        )
    print(f"\n{load()}; the whole run took {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
