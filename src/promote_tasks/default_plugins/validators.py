"""Built-in validators: http-health, workflow, monitor (manual-approval has its own module).

Each ``check`` answers from facts already in the snapshot where it can, so ``next`` never
blocks; only ``http-health`` makes a request of its own (bounded retries and timeout).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import ClassVar

from promote_tasks.config import Settings
from promote_tasks.hookspecs import hookimpl
from promote_tasks.model import CheckRun
from promote_tasks.model import Result
from promote_tasks.model import Verdict
from promote_tasks.model import WorkflowRun
from promote_tasks.model import seconds_between
from promote_tasks.registry import Register
from promote_tasks.registry import ValidationRun
from promote_tasks.registry import Validator

OK_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
BACKENDS = ("issue", "environment")


def _names(value: Any) -> bool:
    return all(isinstance(item, str) and item.strip() for item in value)


def _seconds(value: float, *, zero: bool = False) -> bool:
    """A finite number of seconds, above 0 (or 0 or more)."""
    return (value >= 0 if zero else value > 0) and value != float("inf")


DEFAULT_CHECKLIST = "- [ ] The change works as the plan describes\n- [ ] Nothing else broke\n"


class HttpHealth:
    """GET the environment's URL and expect a status (and optionally some text in the body)."""

    name = "http-health"
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "url": str,
        "expect_status": int,
        "expect_body": str,
        "retries": int,
        "timeout": (int, float),
    }

    def option_problem(self, option: str, value: Any) -> str | None:
        if option == "url" and not value.startswith(("http://", "https://")):
            return "expected an http(s) URL"
        if option == "expect_status" and not 100 <= value <= 599:
            return "expected an HTTP status, 100 to 599"
        if option == "retries" and value < 0:
            return "expected a whole number, 0 or more"
        if option == "timeout" and not _seconds(value):
            return "expected a positive number of seconds"
        return None

    def start(self, run: ValidationRun) -> None:
        return None

    def url(self, run: ValidationRun) -> str | None:
        if "url" in run.options:
            return str(run.options["url"])
        if run.environment.url:
            return run.environment.url
        # The URL the deployment reported for this sha, newest first.
        for deployment in sorted(run.facts.deployments, key=lambda d: -d.id):
            if (
                deployment.sha == run.sha
                and deployment.latest
                and deployment.latest.environment_url
            ):
                return deployment.latest.environment_url
        return None

    def check(self, run: ValidationRun) -> Verdict:
        url = self.url(run)
        if url is None:
            return Verdict(
                run.name, Result.FAILED, None, "no URL: set url in the environment or validator"
            )
        expect = int(run.options.get("expect_status", 200))
        body_text = run.options.get("expect_body")
        attempts = 1 + int(run.options.get("retries", 2))
        timeout = float(run.options.get("timeout", 5))
        problem = ""
        for _ in range(attempts):
            status, body, problem = _get(url, timeout)
            if status == expect and (body_text is None or body_text in body):
                return Verdict(run.name, Result.PASSED, url, f"GET {url}: {status}")
            if status is not None:
                problem = f"GET {url}: {status}" + (
                    f", body lacks {body_text!r}" if status == expect else f", expected {expect}"
                )
        return Verdict(run.name, Result.FAILED, url, problem)


def _get(url: str, timeout: float) -> tuple[int | None, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(65536).decode("utf-8", "replace"), ""
    except urllib.error.HTTPError as e:
        return e.code, e.read(65536).decode("utf-8", "replace"), ""
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        return None, "", f"GET {url}: {reason}"


class Workflow:
    """Named workflow runs or check runs for the head sha concluded successfully."""

    name = "workflow"
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "workflows": list,
        "checks": list,
    }

    def option_problem(self, option: str, value: Any) -> str | None:
        return None if _names(value) else "expected a list of names"

    def start(self, run: ValidationRun) -> None:
        return None

    def check(self, run: ValidationRun) -> Verdict:
        workflows = [str(w) for w in run.options.get("workflows", [])]
        checks = [str(c) for c in run.options.get("checks", [])]
        if not workflows and not checks:
            return Verdict(
                run.name, Result.FAILED, None, "configure workflows or checks to wait for"
            )
        mine: list[tuple[str, Sequence[WorkflowRun | CheckRun]]] = [
            (w, [r for r in run.facts.runs if r.head_sha == run.sha and r.path.rsplit("/", 1)[-1] == w])
            for w in workflows
        ] + [
            (c, [r for r in run.facts.checks if r.head_sha == run.sha and r.name == c])
            for c in checks
        ]  # fmt: skip
        results: list[tuple[str, str | None, str | None, str]] = []  # name, status, conclusion, url
        for name, found in mine:
            latest = max(found, key=lambda r: r.id, default=None)
            results.append(
                (name, latest.status, latest.conclusion, latest.url) if latest else (name, None, None, "")
            )  # fmt: skip
        for name, status, conclusion, url in results:
            if status == "completed" and conclusion not in OK_CONCLUSIONS:
                return Verdict(run.name, Result.FAILED, url or None, f"{name} {conclusion}")
        waiting = [name for name, status, _, _ in results if status != "completed"]
        if waiting:
            return Verdict(run.name, Result.PENDING, None, "waiting for " + ", ".join(waiting))
        return Verdict(run.name, Result.PASSED, results[0][3] or None, "all passed")


class Monitor:
    """Named check runs stay free of failures for a soak window after validation started.

    The window starts at the ``promote/<env>/<name>`` pending status the tool wrote at R4,
    so the clock lives on GitHub and any machine's ``next`` reads the same one.
    """

    name = "monitor"
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "checks": list,
        "soak_seconds": int,
    }

    def option_problem(self, option: str, value: Any) -> str | None:
        if option == "checks" and not _names(value):
            return "expected a list of check names"
        if option == "soak_seconds" and not _seconds(value, zero=True):
            return "expected a whole number of seconds, 0 or more"
        return None

    def start(self, run: ValidationRun) -> None:
        return None

    def check(self, run: ValidationRun) -> Verdict:
        names = [str(c) for c in run.options.get("checks", ["monitor"])]
        soak = int(run.options.get("soak_seconds", 300))
        for check in run.facts.checks:
            if (
                check.head_sha == run.sha
                and check.name in names
                and check.conclusion not in (None, *OK_CONCLUSIONS)
            ):
                return Verdict(
                    run.name, Result.FAILED, check.url or None, f"{check.name} {check.conclusion}"
                )
        context = f"promote/{run.environment.name}/{run.name}"
        started = [
            s.created_at for s in run.facts.statuses if s.context == context and s.created_at
        ]
        if not started:
            return Verdict(run.name, Result.PENDING, None, f"soak of {soak}s not started")
        elapsed = seconds_between(min(started), run.snapshot.taken_at)
        if elapsed >= soak:
            return Verdict(run.name, Result.PASSED, None, f"green for {int(elapsed)}s")
        return Verdict(run.name, Result.PENDING, None, f"green for {int(elapsed)}s of {soak}s")


@hookimpl
def register_validators(register: Register[Validator], settings: Settings) -> None:
    register(HttpHealth())
    register(Workflow())
    register(Monitor())
