"""Scenarios: what the sandbox's CI and merge bot do, read from a small JSON file.

A scenario is data, so a test, ``promote demo`` and a rehearsal can all say "the first deploy to
test fails" the same way, and a driver can read it back from ``GET /_sandbox/scenario``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

STAGES = ("deploy", "smoke", "health", "monitor", "manual")
MERGE_METHODS = ("merge", "squash", "rebase")
ROLES = ("read", "triage", "write", "maintain", "admin")
# owner, repo and plan_id become URL path parts and file names: no slashes, no "..".
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ScenarioError(ValueError):
    """The scenario file is malformed; the message names the key."""


@dataclass(frozen=True)
class FailRule:
    """Fail ``stage`` in ``env`` the first ``times`` times (every time when ``times`` is None)."""

    env: str
    stage: str
    times: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "stage": self.stage, "times": self.times}


@dataclass(frozen=True)
class UserSpec:
    """A person (or bot) who can call the sandbox, with a repository role."""

    login: str
    role: str = "write"
    name: str | None = None
    email: str | None = None
    token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"login": self.login, "role": self.role, "name": self.name, "email": self.email}


def _default_users() -> tuple[UserSpec, ...]:
    return (
        UserSpec("alice", "write", "Alice Author", "alice@example.com"),
        UserSpec("rita", "write", "Rita Reviewer", "rita@example.com"),
        UserSpec("bob", "read", "Bob Reader", "bob@example.com"),
    )


@dataclass(frozen=True)
class Scenario:
    """Everything that varies between sandbox runs."""

    fail: tuple[FailRule, ...] = ()
    hang: tuple[FailRule, ...] = ()
    merge_bot: bool = False
    # With the merge bot on: leave every PR whose head is not an environment branch (a
    # developer's feature or fix PR) for a person to merge; the bot merges promotions only.
    people_merge: bool = False
    merge_method: str = "merge"
    users: tuple[UserSpec, ...] = field(default_factory=_default_users)
    author: str = "alice"
    reviewer: str = "rita"
    owner: str = "acme"
    repo: str = "shop"
    plan_id: str = "add-greeting"
    environments: tuple[str, ...] = ("dev", "test", "main")
    required_reviewers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Commit status contexts a PR into an environment branch needs at `success` on its head
    # before it merges (a ruleset's "Require status checks to pass"), e.g. ["promote/gate"].
    required_checks: tuple[str, ...] = ()
    # Answer as GitHub Enterprise Server does where it differs: workflow runs without "path".
    enterprise: bool = False

    def __post_init__(self) -> None:
        logins = [u.login for u in self.users]
        for key in ("owner", "repo", "plan_id"):
            value = getattr(self, key)
            if not isinstance(value, str) or not SAFE_NAME.match(value) or ".." in value:
                raise ScenarioError(
                    f"scenario: {key} {value!r} must be letters, digits, '.', '_' or '-'"
                )
        for rule in (*self.fail, *self.hang):
            if rule.stage not in STAGES:
                raise ScenarioError(f"scenario: fail.stage {rule.stage!r} is not one of {STAGES}")
            if rule.env not in self.environments:
                raise ScenarioError(f"scenario: fail.env {rule.env!r} is not an environment")
            if rule.times is not None and rule.times < 0:
                raise ScenarioError("scenario: fail.times must be a non-negative integer")
        if self.merge_method not in MERGE_METHODS:
            raise ScenarioError(
                f"scenario: merge_method {self.merge_method!r} is not one of {MERGE_METHODS}"
            )
        for user in self.users:
            if user.role not in ROLES:
                raise ScenarioError(f"scenario: users.{user.login}.role {user.role!r} is unknown")
        if self.author not in logins:
            raise ScenarioError(f"scenario: author {self.author!r} is not among users")
        if self.reviewer not in logins or self.reviewer == self.author:
            raise ScenarioError("scenario: reviewer must be a user distinct from the author")
        if not self.environments or len(set(self.environments)) != len(self.environments):
            raise ScenarioError("scenario: environments must be a non-empty list of distinct names")
        for env, reviewers in self.required_reviewers.items():
            if env not in self.environments or any(r not in logins for r in reviewers):
                raise ScenarioError(
                    f"scenario: required_reviewers.{env} names an unknown env or user"
                )

    @property
    def production(self) -> str:
        return self.environments[-1]

    @property
    def default_branch(self) -> str:
        return "main" if "main" in self.environments else self.environments[-1]

    def failures(self, env: str, stage: str) -> int | None:
        """How many leading attempts of ``stage`` in ``env`` fail (None: all of them)."""
        return _leading(self.fail, env, stage)

    def hangs(self, env: str, stage: str) -> int | None:
        """How many leading attempts of ``stage`` in ``env`` hang (None: all of them)."""
        return _leading(self.hang, env, stage)

    def to_json(self) -> dict[str, Any]:
        return {
            "fail": [r.to_json() for r in self.fail],
            "hang": [r.to_json() for r in self.hang],
            "merge_bot": self.merge_bot,
            "people_merge": self.people_merge,
            "merge_method": self.merge_method,
            "users": [u.to_json() for u in self.users],
            "author": self.author,
            "reviewer": self.reviewer,
            "owner": self.owner,
            "repo": self.repo,
            "plan_id": self.plan_id,
            "environments": list(self.environments),
            "required_reviewers": {k: list(v) for k, v in self.required_reviewers.items()},
            "required_checks": list(self.required_checks),
            "enterprise": self.enterprise,
        }

    @classmethod
    def from_json(cls, data: Any) -> Scenario:
        if not isinstance(data, dict):
            raise ScenarioError("scenario: the top level must be a JSON object")
        known = {
            "fail",
            "hang",
            "merge_bot",
            "people_merge",
            "merge_method",
            "users",
            "author",
            "reviewer",
            "owner",
            "repo",
            "plan_id",
            "environments",
            "required_reviewers",
            "required_checks",
            "enterprise",
            "description",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ScenarioError(f"scenario: unknown key {unknown[0]!r}")
        kwargs: dict[str, Any] = {}
        for key in ("fail", "hang"):
            if key in data:
                kwargs[key] = tuple(_rule(key, item) for item in _list(data, key))
        for key in ("merge_bot", "people_merge", "enterprise"):
            if key in data:
                if not isinstance(data[key], bool):
                    raise ScenarioError(f"scenario: {key} must be true or false")
                kwargs[key] = data[key]
        for key in ("merge_method", "author", "reviewer", "owner", "repo", "plan_id"):
            if key in data:
                if not isinstance(data[key], str) or not data[key]:
                    raise ScenarioError(f"scenario: {key} must be a non-empty string")
                kwargs[key] = data[key]
        if "users" in data:
            kwargs["users"] = tuple(_user(item) for item in _list(data, "users"))
        if "environments" in data:
            envs = _list(data, "environments")
            if not all(isinstance(e, str) and _branch_name(e) for e in envs):
                raise ScenarioError("scenario: environments must be branch names")
            kwargs["environments"] = tuple(envs)
        if "required_reviewers" in data:
            raw = data["required_reviewers"]
            if not isinstance(raw, dict) or not all(
                isinstance(v, list) and all(isinstance(r, str) for r in v) for v in raw.values()
            ):
                raise ScenarioError("scenario: required_reviewers must map env -> [logins]")
            kwargs["required_reviewers"] = {str(k): tuple(v) for k, v in raw.items()}
        if "required_checks" in data:
            checks = _list(data, "required_checks")
            if not all(isinstance(c, str) and c for c in checks):
                raise ScenarioError("scenario: required_checks must be status context names")
            kwargs["required_checks"] = tuple(checks)
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ScenarioError(f"scenario: cannot read {path}: {exc}") from exc
        return cls.from_json(data)


def _leading(rules: tuple[FailRule, ...], env: str, stage: str) -> int | None:
    """The sum of the rules' ``times`` for ``env`` and ``stage``; None when one has no limit."""
    total = 0
    for rule in rules:
        if rule.env == env and rule.stage == stage:
            if rule.times is None:
                return None
            total += rule.times
    return total


def _branch_name(name: str) -> bool:
    """Whether git accepts ``name`` as a branch (``git check-ref-format --branch``'s rules)."""
    if not name or name in ("@", "HEAD") or name.startswith(("-", "/", ".")):
        return False
    if name.endswith(("/", ".", ".lock")) or any(
        bad in name for bad in ("..", "//", "@{", "/.", ".lock/")
    ):
        return False
    return not any(c in " ~^:?*[\\" or ord(c) < 32 or ord(c) == 127 for c in name)


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise ScenarioError(f"scenario: {key} must be a list")
    return value


def _rule(key: str, item: Any) -> FailRule:
    if not isinstance(item, dict) or not {"env", "stage"} <= set(item):
        raise ScenarioError(f"scenario: each {key} entry needs env and stage")
    extra = set(item) - {"env", "stage", "times"}
    if extra:
        raise ScenarioError(f"scenario: {key} entry has unknown key {sorted(extra)[0]!r}")
    times = item.get("times")
    if times is not None and (not isinstance(times, int) or isinstance(times, bool)):
        raise ScenarioError(f"scenario: {key}.times must be an integer")
    return FailRule(str(item["env"]), str(item["stage"]), times)


def _user(item: Any) -> UserSpec:
    if not isinstance(item, dict) or "login" not in item:
        raise ScenarioError("scenario: each user needs a login")
    extra = set(item) - {"login", "role", "name", "email", "token"}
    if extra:
        raise ScenarioError(f"scenario: user has unknown key {sorted(extra)[0]!r}")
    for key in ("name", "email", "token"):
        if item.get(key) is not None and not isinstance(item[key], str):
            raise ScenarioError(f"scenario: users.{item['login']}.{key} must be a string")
    token = item.get("token")
    if token is not None and token.startswith(("ghp_", "github_pat_", "gho_", "ghs_", "ghu_")):
        raise ScenarioError("scenario: user tokens must not look like real GitHub tokens")
    return UserSpec(
        login=str(item["login"]),
        role=str(item.get("role", "write")),
        name=item.get("name"),
        email=item.get("email"),
        token=token,
    )
