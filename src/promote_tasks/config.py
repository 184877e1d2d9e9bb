"""Settings from ``promote.toml`` or ``[tool.promote]`` in ``pyproject.toml``.

Defaults give ``dev → test → main`` with a designated reviewer's manual test in ``test``.
Every unknown key and bad value is a ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from promote_tasks.errors import ConfigError

if TYPE_CHECKING:
    from promote_tasks.model import Pipeline

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

DEFAULT_VALIDATORS: dict[str, dict[str, Any]] = {
    "health": {"use": "http-health"},
    "smoke": {"use": "workflow", "workflows": ["smoke.yml"]},
    "monitor": {"use": "monitor", "checks": ["monitor"], "soak_seconds": 300},
    "manual": {"use": "manual-approval"},
}
DEFAULT_ENVIRONMENTS: list[dict[str, Any]] = [
    {"name": "dev", "validators": ["health", "smoke"]},
    {"name": "test", "validators": ["health", "smoke", "manual"]},
    {"name": "main", "validators": ["health", "smoke", "monitor"]},
]


@dataclasses.dataclass(frozen=True)
class ValidatorConfig:
    """A configured validator: ``name`` is used in status contexts, ``use`` names the plugin."""

    name: str
    use: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    branch: str
    production: bool
    validators: tuple[str, ...]
    rollback: str
    url: str | None = None
    deploy_timeout_seconds: int = 1800
    validation_timeout_seconds: int = 3600
    approval_timeout_seconds: int = 7 * 24 * 3600


TIMEOUTS = ("deploy_timeout_seconds", "validation_timeout_seconds", "approval_timeout_seconds")


@dataclasses.dataclass(frozen=True)
class HookSettings:
    """``[hooks]``: what ``promote-halt`` does when it cannot ask GitHub, and how long it asks."""

    offline: str = "warn"  # warn | refuse
    timeout: float = 5.0


@dataclasses.dataclass(frozen=True)
class Settings:
    source: str  # the file the settings came from, or "defaults"
    root: Path  # directory of that file (or where the search started)
    environments: tuple[EnvironmentConfig, ...]
    validators: Mapping[str, ValidatorConfig]
    repository: str | None = None
    reviewers: tuple[str, ...] = ()
    plans_dir: str = "plans"
    plugins_dir: str | None = None
    plan_store: str = "files"
    rollback: str = "redeploy"
    deploy_workflow: str | None = "deploy.yml"
    deploy_grace_seconds: int = 120
    checklist_template: str = ".github/promote/manual-test.md"
    hooks: HookSettings = HookSettings()
    prefix: str = ""  # how the source names its keys: "tool.promote." in pyproject.toml
    first_branch: str | None = None  # the pipeline's first branch, once plugins have built it

    @property
    def plans_branch(self) -> str:
        """The branch plan files live on: the pipeline's first environment (which a plugin may
        have contributed), else the first configured one."""
        return self.first_branch or self.environments[0].branch

    def plugins_path(self) -> Path | None:
        return None if self.plugins_dir is None else self.root / self.plugins_dir


# key -> (type, description used in errors)
_TOP: dict[str, tuple[type | tuple[type, ...], str]] = {
    "repository": (str, "a string like owner/name"),
    "reviewers": (list, "a list of GitHub logins"),
    "plans_dir": (str, "a directory path"),
    "plugins_dir": (str, "a directory path"),
    "plan_store": (str, "a plan store name"),
    "rollback": (str, "a rollback strategy name"),
    "deploy_workflow": (str, "a workflow file name, or empty to never dispatch"),
    "deploy_grace_seconds": (int, "a number of seconds"),
    "checklist_template": (str, "a path in the repository"),
    "environments": (list, "a list of [[environments]] tables"),
    "deploy_timeout_seconds": (int, "a number of seconds"),
    "validation_timeout_seconds": (int, "a number of seconds"),
    "approval_timeout_seconds": (int, "a number of seconds"),
    "validators": (dict, "a table of [validators.<name>] tables"),
    "hooks": (dict, "a [hooks] table"),
}
_HOOKS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "offline": (str, '"warn" or "refuse"'),
    "timeout": ((int, float), "a number of seconds"),
}
OFFLINE_CHOICES = ("warn", "refuse")
_ENV: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "an environment name"),
    "branch": (str, "a branch name"),
    "production": (bool, "true or false"),
    "validators": (list, "a list of validator names"),
    "rollback": (str, "a rollback strategy name"),
    "url": (str, "a URL"),
    "deploy_timeout_seconds": (int, "a number of seconds"),
    "validation_timeout_seconds": (int, "a number of seconds"),
    "approval_timeout_seconds": (int, "a number of seconds"),
}


def find_config(start: Path) -> Path | None:
    """The nearest ``promote.toml``, or ``pyproject.toml`` with ``[tool.promote]``, upwards.

    Both in one directory is an error (which would win is a guess), and so is a ``[tool.*]``
    table whose name is close to ``promote``: silently ignoring it would surprise.
    """
    for directory in (start, *start.parents):
        candidate = directory / "promote.toml"
        pyproject = directory / "pyproject.toml"
        in_pyproject = (
            pyproject.is_file() and _tool_promote(pyproject, _read(pyproject)) is not None
        )
        if candidate.is_file():
            if in_pyproject:
                raise ConfigError(
                    f"{candidate}: {pyproject} configures promote too ([tool.promote]): "
                    "keep the settings in one of the two files"
                )
            return candidate
        if in_pyproject:
            return pyproject
        if (directory / ".git").exists():
            break  # do not wander out of the repository
    return None


def load_settings(start: Path | None = None, *, path: Path | None = None) -> Settings:
    """Settings for the repository around ``start`` (default: the current directory)."""
    start = (start or Path.cwd()).resolve()
    path = path or find_config(start)
    if path is None:
        return settings_from({}, source="defaults", root=start)
    table = _read(path)
    if path.name == "pyproject.toml":
        promote = _tool_promote(path, table)
        promote = {} if promote is None else promote
        prefix = "tool.promote."
    else:
        promote, prefix = table, ""
    if not isinstance(promote, dict):  # only [tool.promote] can be: TOML's top is a table
        raise ConfigError(f"{path}: [tool.promote] must be a table, got {promote!r}")
    return settings_from(promote, source=str(path), root=path.parent, prefix=prefix)


# A [tool.<name>] table this close to one of these is a misspelt [tool.promote].
NEAR_NAMES = ("promote", "promote-tasks", "promote_tasks")


def _tool_promote(path: Path, table: Mapping[str, Any]) -> Any:
    """``[tool.promote]`` of a pyproject.toml (None without one); a table named nearly so is an
    error that says which one was meant."""
    tool = table.get("tool")
    if not isinstance(tool, dict):
        return None
    for name in tool:
        if name != "promote" and difflib.get_close_matches(name.lower(), NEAR_NAMES, 1, 0.8):
            raise ConfigError(
                f"{path}: [tool.{name}] is not read by promote: did you mean [tool.promote]?"
            )
    return tool.get("promote")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "TOML files are UTF-8"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None


def settings_from(
    data: Mapping[str, Any], *, source: str = "defaults", root: Path | None = None, prefix: str = ""
) -> Settings:
    """Validate a ``[tool.promote]`` table into Settings."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{source}: {prefix}{key}: {problem}")

    _check_keys(data, _TOP, "", fail)
    validators = _validators(data.get("validators", {}), fail)
    rollback = data.get("rollback", "redeploy")
    defaults = {
        key: _seconds(data, key, EnvironmentConfig.__dataclass_fields__[key].default, fail)
        for key in TIMEOUTS
    }
    envs_data = data.get("environments", DEFAULT_ENVIRONMENTS)
    if not envs_data:
        raise fail("environments", "needs at least one environment")
    environments = []
    for index, raw in enumerate(envs_data):
        where = f"environments[{index}]"
        if not isinstance(raw, dict):
            raise fail(where, "expected a table with at least name = ...")
        _check_keys(raw, _ENV, where + ".", fail)
        if "name" not in raw:
            raise fail(where + ".name", "is required")
        name = _name(raw["name"], where + ".name", fail)
        last = index == len(envs_data) - 1
        production = raw.get("production", last)
        if production and not last:
            raise fail(where + ".production", "only the last environment can be production")
        names = tuple(_strings(raw.get("validators", []), where + ".validators", fail))
        for vname in names:
            if vname not in validators:
                raise fail(
                    where + ".validators",
                    f"unknown validator {vname!r} (known: {', '.join(sorted(validators))}; "
                    f"a new one is configured under [{prefix}validators.{vname}])",
                )
        environments.append(
            EnvironmentConfig(
                name=name,
                branch=_name(raw.get("branch", name), where + ".branch", fail),
                production=production,
                validators=names,
                rollback=raw.get("rollback", rollback),
                url=raw.get("url"),
                **{key: _seconds(raw, key, defaults[key], fail, where + ".") for key in TIMEOUTS},
            )
        )
    seen: set[tuple[str, str]] = set()
    for env in environments:
        for key, value in (("name", env.name), ("branch", env.branch)):
            if (key, value) in seen:
                raise fail("environments", f"{key} {value!r} appears twice")
            seen.add((key, value))
    if "environments" in data:
        _whole_pipeline(envs_data, prefix, fail)
    repository = data.get("repository")
    if repository is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise fail("repository", f"expected owner/name, got {repository!r}")
    grace = data.get("deploy_grace_seconds", 120)
    if grace < 0:
        raise fail("deploy_grace_seconds", "must not be negative")
    return Settings(
        source=source,
        root=root or Path.cwd(),
        environments=tuple(environments),
        validators=validators,
        repository=repository,
        reviewers=tuple(_strings(data.get("reviewers", []), "reviewers", fail)),
        plans_dir=data.get("plans_dir", "plans"),
        plugins_dir=data.get("plugins_dir"),
        plan_store=data.get("plan_store", "files"),
        rollback=rollback,
        deploy_workflow=data.get("deploy_workflow", "deploy.yml") or None,
        deploy_grace_seconds=grace,
        checklist_template=data.get("checklist_template", ".github/promote/manual-test.md"),
        hooks=_hooks(data.get("hooks", {}), fail),
        prefix=prefix,
    )


def _whole_pipeline(envs_data: list[dict[str, Any]], prefix: str, fail: Any) -> None:
    """An ``[[environments]]`` list is the whole pipeline. One that names only some of the
    default environments (``name = "test"`` alone, to change test) would silently drop the
    others, so it must say it is whole: ``production = true`` in its last entry."""
    names = [raw["name"] for raw in envs_data]
    defaults = [raw["name"] for raw in DEFAULT_ENVIRONMENTS]
    if not set(names) < set(defaults) or envs_data[-1].get("production") is True:
        return
    header = f"[[{prefix}environments]]"
    every = ", then ".join(f'"{name}"' for name in defaults)
    pipeline = " → ".join(names)
    raise fail(
        "environments",
        f"lists only {pipeline}, but a {header} list is the whole pipeline and replaces "
        f"{' → '.join(defaults)}, not one environment of it: list every environment in order "
        f"(name = {every}, each with its validators), or set production = true in the entry "
        f"of {names[-1]} if {pipeline} is the whole pipeline",
    )


def _seconds(data: Mapping[str, Any], key: str, default: Any, fail: Any, where: str = "") -> int:
    value = data.get(key, default)
    if value < 1:
        raise fail(where + key, f"expected a positive number of seconds, got {value!r}")
    return int(value)


def _hooks(data: Mapping[str, Any], fail: Any) -> HookSettings:
    _check_keys(data, _HOOKS, "hooks.", fail)
    offline = data.get("offline", "warn")
    if offline not in OFFLINE_CHOICES:
        raise fail("hooks.offline", f'expected "warn" or "refuse", got {offline!r}')
    timeout = data.get("timeout", 5.0)
    if not 0 < timeout <= 120:
        raise fail("hooks.timeout", f"expected seconds between 0 and 120, got {timeout!r}")
    return HookSettings(offline=offline, timeout=float(timeout))


def _check_keys(
    data: Mapping[str, Any], schema: Mapping[str, tuple[Any, str]], where: str, fail: Any
) -> None:
    for key, value in data.items():
        if key not in schema:
            raise fail(where + key, f"unknown key (known: {', '.join(sorted(schema))})")
        expected, description = schema[key]
        # bool is an int in Python, but `production = 1` or `deploy_grace_seconds = true` is a typo.
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise fail(where + key, f"expected {description}, got {value!r}")


def _strings(value: list[Any], where: str, fail: Any) -> list[str]:
    for item in value:
        if not isinstance(item, str) or not item:
            raise fail(where, f"expected strings, got {item!r}")
    return value


def _name(value: Any, where: str, fail: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise fail(where, f"{value!r} is not a valid name")
    return value


def _validators(data: Mapping[str, Any], fail: Any) -> dict[str, ValidatorConfig]:
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in DEFAULT_VALIDATORS.items()}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise fail(f"validators.{name}", "expected a table")
        _name(name, f"validators.{name}", fail)
        if "use" in table and not isinstance(table["use"], str):
            raise fail(
                f"validators.{name}.use", f"expected a validator plugin name, got {table['use']!r}"
            )
        default = merged.get(name, {})
        # Options of a built-in default only carry over while it still uses the same plugin.
        base = default if table.get("use", default.get("use")) == default.get("use") else {}
        merged[name] = {**base, **table}
    return {
        name: ValidatorConfig(
            name, table.get("use", name), {k: v for k, v in table.items() if k != "use"}
        )
        for name, table in merged.items()
    }


# -- what `promote config` shows ------------------------------------------------------------


def settings_data(settings: Settings, pipeline: Pipeline) -> dict[str, Any]:
    """The settings in force, as one JSON-ready object: where they came from, and the
    pipeline as resolved (every environment, a plugin's included, the last one production)."""
    return {
        "source": settings.source,
        "root": str(settings.root),
        "repository": settings.repository,
        "reviewers": list(settings.reviewers),
        "environments": [
            {
                "name": env.name,
                "branch": env.branch,
                "production": env.production,
                "validators": list(env.validators),
                "manual": list(env.manual),
                "rollback": env.rollback,
                "url": env.url,
                **{key: getattr(env, key) for key in TIMEOUTS},
            }
            for env in pipeline.environments
        ],
        "validators": {
            name: {"use": v.use, "options": _plain(dict(v.options))}
            for name, v in settings.validators.items()
        },
        "plans_dir": settings.plans_dir,
        "plan_store": settings.plan_store,
        "plugins_dir": settings.plugins_dir,
        "rollback": settings.rollback,
        "deploy_workflow": settings.deploy_workflow,
        "deploy_grace_seconds": settings.deploy_grace_seconds,
        "checklist_template": settings.checklist_template,
        "hooks": {"offline": settings.hooks.offline, "timeout": settings.hooks.timeout},
    }


def settings_text(data: Mapping[str, Any]) -> str:
    """``settings_data`` for a person: one line a setting, one line an environment."""
    envs = data["environments"]
    width = max(len(name) for name in (*data["validators"], *(e["name"] for e in envs)))
    repository = (
        f"{data['repository']} (unless GITHUB_REPOSITORY is set)"
        if data["repository"]
        else "GITHUB_REPOSITORY, else the origin remote"
    )
    lines = [
        f"settings from {data['source']}",
        f"repository: {repository}",
        f"reviewers: {', '.join(data['reviewers']) or 'none'}",
        "environments: " + " → ".join(e["name"] for e in envs),
    ]
    for env in envs:
        validators = [f"{v} (waits for a person)" if v in env["manual"] else v
                      for v in env["validators"]]  # fmt: skip
        lines.append(
            f"  {env['name']:<{width}}  branch {env['branch']}"
            + (", production" if env["production"] else "")
            + f"; validators {', '.join(validators) or 'none'}; rollback {env['rollback']}"
            + (f"; url {env['url']}" if env["url"] else "")
            + f"; times out: deploy {env['deploy_timeout_seconds']} s, validation "
            f"{env['validation_timeout_seconds']} s, approval {env['approval_timeout_seconds']} s"
        )
    lines.append("validators:")
    for name, validator in data["validators"].items():
        options = ", ".join(
            f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in validator["options"].items()
        )
        lines.append(f"  {name:<{width}}  {validator['use']}" + (f": {options}" if options else ""))
    workflow = data["deploy_workflow"]
    dispatch = (
        f"{workflow} (dispatched {data['deploy_grace_seconds']} s after a merge that started "
        "no deploy)" if workflow else "none (never dispatched)"
    )  # fmt: skip
    lines += [
        f"plans: {data['plans_dir']}/ (plan store {data['plan_store']})",
        f"plugins_dir: {data['plugins_dir'] or 'none'}",
        f"rollback: {data['rollback']}",
        f"deploy_workflow: {dispatch}",
        f"checklist_template: {data['checklist_template']}",
        f"hooks: offline = {data['hooks']['offline']}, timeout = {data['hooks']['timeout']:g} s",
    ]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """A TOML value as JSON can hold it (dates and times as ISO 8601 text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    return value
