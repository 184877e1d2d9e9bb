"""The plugin manager factory (per run; nothing loads at import) and the Registry built from
``default_plugins``, ``promote_tasks`` entry points and the local plugins directory."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from promote_tasks import hookspecs
from promote_tasks.config import Settings
from promote_tasks.errors import ConfigError
from promote_tasks.errors import PluginError
from promote_tasks.errors import PromoteError
from promote_tasks.model import Action
from promote_tasks.model import Environment
from promote_tasks.model import Pipeline
from promote_tasks.registry import PlanStore
from promote_tasks.registry import Register
from promote_tasks.registry import Registry
from promote_tasks.registry import RollbackStrategy
from promote_tasks.registry import Validator

DEFAULT_PLUGINS = (
    "promote_tasks.default_plugins.environments",
    "promote_tasks.default_plugins.validators",
    "promote_tasks.default_plugins.manual_approval",
    "promote_tasks.default_plugins.rollback",
    "promote_tasks.default_plugins.plan_stores",
)


def make_plugin_manager(
    *, plugins_dir: Path | None = None, entry_points: bool = True
) -> pluggy.PluginManager:
    """A fresh plugin manager with the defaults, entry points and local plugins loaded."""
    pm = pluggy.PluginManager(hookspecs.NAME)
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name.rsplit(".", 1)[-1])
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(hookspecs.NAME)
        except pluggy.PluginValidationError as e:
            raise PluginError(f"plugin {pm.get_name(e.plugin) or '?'}: {_one_line(e)}") from None
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
            raise PluginError(
                f"an entry-point plugin of group {hookspecs.NAME} failed to load: "
                f"{type(e).__name__}: {_one_line(e)}"
            ) from None
    if plugins_dir is not None:
        for module in load_directory(plugins_dir):
            name = f"plugins/{Path(module.__file__ or '').name}"
            try:
                pm.register(module, name=name)
            except pluggy.PluginValidationError as e:  # a hook with the wrong arguments
                raise PluginError(f"plugin {name}: {_one_line(e)}") from None
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        raise PluginError(
            f"plugin {pm.get_name(e.plugin) or '?'}: {e} (misspelt hook name?)"
        ) from None
    return pm


def load_directory(directory: Path) -> list[ModuleType]:
    """Import every ``*.py`` in a team's plugins directory, by path, in name order."""
    if not directory.is_dir():
        raise ConfigError(f"plugins_dir {directory} is not a directory")
    modules = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        module_name = f"promote_tasks_local_plugins.{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
            raise PluginError(
                f"plugin {path} failed to load: {type(e).__name__}: {_one_line(e)}"
            ) from e
        sys.modules[module_name] = module
        modules.append(module)
    return modules


def _call_each(
    pm: pluggy.PluginManager, hook_name: str, register: Register[Any], settings: Settings
) -> None:
    """Call a register hook one implementation at a time, so errors name the plugin."""
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        register.plugin = impl.plugin_name
        kwargs: dict[str, Any] = {"register": register, "settings": settings}
        _guarded(impl, hook_name, **{name: kwargs[name] for name in impl.argnames})


def _guarded(impl: Any, hook_name: str, **kwargs: Any) -> None:
    """Call one hook implementation; what it raises becomes one line naming the plugin."""
    try:
        impl.function(**kwargs)
    except (PromoteError, KeyboardInterrupt):
        raise
    except BaseException as e:  # SystemExit too: a plugin does not end the run unheard
        raise PluginError(
            f"plugin {impl.plugin_name} failed in {hook_name}: {type(e).__name__}: {_one_line(e)}"
        ) from e


def notify(
    pm: pluggy.PluginManager, *, action: Action, did: tuple[str, ...], repository: str
) -> None:
    """Tell every plugin about a transition (``promote_transition``), one at a time: all are
    told even when one fails, and the first failure is reported naming its plugin and the
    transition, which was taken all the same (the run's own report of it is not printed)."""
    told = {"action": action, "did": did, "repository": repository}
    taken = " ".join(part for part in (action.transition, action.environment) if part)
    failed: PluginError | None = None
    for impl in pm.hook.promote_transition.get_hookimpls():
        try:
            _guarded(impl, "promote_transition", **{n: told[n] for n in impl.argnames})
        except PromoteError as e:
            failed = failed or PluginError(
                f"{e} ({taken or 'a transition'} was taken all the same)"
            )
    if failed is not None:
        raise failed


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]


def _register(kind: str, shape: type) -> Register[Any]:
    check: Callable[[Any], bool] = lambda item: isinstance(item, shape)  # noqa: E731
    return Register(kind, check)


def collect(pm: pluggy.PluginManager, settings: Settings) -> Registry:
    """Ask every plugin for its contributions, once, and check them against the settings."""
    registers = {
        "register_environments": _register("environment", Environment),
        "register_validators": _register("validator", Validator),
        "register_rollback_strategies": _register("rollback strategy", RollbackStrategy),
        "register_plan_stores": _register("plan store", PlanStore),
    }
    for hook_name, register in registers.items():
        _call_each(pm, hook_name, register, settings)
    owners = {
        f"{r.kind}:{name}": owner for r in registers.values() for name, owner in r.owners.items()
    }
    registry = Registry(
        environments=registers["register_environments"].items,
        validators=registers["register_validators"].items,
        rollback_strategies=registers["register_rollback_strategies"].items,
        plan_stores=registers["register_plan_stores"].items,
        owners=owners,
    )
    _check_settings(registry, settings)
    return registry


def _check_settings(registry: Registry, settings: Settings) -> None:
    """Every name the settings use is one a plugin offers (with the ones that are offered),
    and every manual test in use has designated reviewers."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{settings.source}: {settings.prefix}{key}: {problem}")

    for name, config in settings.validators.items():
        validator = registry.validators.get(config.use)
        if validator is None:
            known = ", ".join(sorted(registry.validators))
            raise fail(
                f"validators.{name}.use", f"no validator plugin {config.use!r} (known: {known})"
            )
        for option, value in config.options.items():
            expected = validator.option_types.get(option)
            if expected is None:
                known = ", ".join(sorted(validator.option_types)) or "none"
                raise fail(
                    f"validators.{name}.{option}",
                    f"unknown option for {config.use} (known: {known})",
                )
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise fail(f"validators.{name}.{option}", f"bad value {value!r}")
            problem = _option_problem(registry, config.use, validator, option, value)
            if problem:
                raise fail(f"validators.{name}.{option}", f"bad value {value!r} ({problem})")
    strategies = ", ".join(sorted(registry.rollback_strategies))
    if settings.rollback not in registry.rollback_strategies:
        raise fail("rollback", f"no rollback strategy {settings.rollback!r} (known: {strategies})")
    for env in registry.environments.values():
        where = _environment_key(registry, settings, env.name)
        if env.rollback not in registry.rollback_strategies:
            raise fail(
                f"{where}.rollback", f"no rollback strategy {env.rollback!r} (known: {strategies})"
            )
        for vname in env.validators:
            if vname not in settings.validators:
                known = ", ".join(sorted(settings.validators))
                raise fail(f"{where}.validators", f"unknown validator {vname!r} (known: {known})")
    if settings.plan_store not in registry.plan_stores:
        known = ", ".join(sorted(registry.plan_stores))
        raise fail("plan_store", f"no plan store {settings.plan_store!r} (known: {known})")
    _check_reviewers(registry, settings)


def _option_problem(
    registry: Registry, use: str, validator: Validator, option: str, value: Any
) -> str | None:
    """The validator's own word on a configured value (``option_problem``, if it has one)."""
    judge = getattr(validator, "option_problem", None)
    if judge is None:
        return None
    try:
        problem = judge(option, value)
    except Exception as e:
        owner = registry.owners.get(f"validator:{use}", "?")
        raise PluginError(
            f"plugin {owner} failed in option_problem of {use}: {type(e).__name__}: {_one_line(e)}"
        ) from e
    return str(problem) if problem else None


def _environment_key(registry: Registry, settings: Settings, name: str) -> str:
    """How an error names an environment: its configuration entry, or the plugin it came from."""
    index = next((i for i, e in enumerate(settings.environments) if e.name == name), None)
    if index is not None and settings.source != "defaults":
        return f"environments[{index}]"
    return f"environments.{name} (from plugin {registry.owners.get(f'environment:{name}', '?')})"


def _check_reviewers(registry: Registry, settings: Settings) -> None:
    """A manual test in use needs designated reviewers: without any, its first instance would
    fail (rollback, fix plan, halt), a configuration mistake turned into an incident."""
    for name, config in sorted(settings.validators.items()):
        if config.use != "manual-approval":
            continue
        used_in = [e.name for e in registry.environments.values() if name in e.validators]
        if not used_in or config.options.get("reviewers", settings.reviewers):
            continue
        test = f"the manual test in {', '.join(used_in)} (validator {name}, {config.use})"
        if "reviewers" in config.options:
            raise ConfigError(
                f"{settings.source}: {settings.prefix}validators.{name}.reviewers: is empty, "
                f'so {test} has no designated reviewers: list them, reviewers = ["login"]'
            )
        if settings.source == "defaults":
            raise ConfigError(
                f"no promote.toml or [tool.promote] in pyproject.toml: reviewers: {test} "
                'has no designated reviewers: add reviewers = ["login"] to [tool.promote] '
                "in pyproject.toml, or to a promote.toml"
            )
        where = (
            f"under [tool.promote] or [tool.promote.validators.{name}]" if settings.prefix
            else f"at the top of promote.toml or under [validators.{name}]"
        )  # fmt: skip
        raise ConfigError(
            f"{settings.source}: {settings.prefix}reviewers: {test} has no designated reviewers: "
            f'set reviewers = ["login"] {where}'
        )


def pipeline_from(registry: Registry, settings: Settings) -> Pipeline:
    """The ordered pipeline the plugins contributed; the last environment is production."""
    envs = sorted(registry.environments.values(), key=lambda e: (e.order, e.name))
    if not envs:
        raise PluginError("no environments were registered")
    for env in envs[:-1]:
        if env.production:
            raise PluginError(f"environment {env.name} is production but is not the last one")
    envs[-1] = dataclasses.replace(envs[-1], production=True)

    def waits_for_person(name: str) -> bool:
        config = settings.validators.get(name)
        plugin = registry.validators.get(config.use) if config is not None else None
        return bool(getattr(plugin, "manual", False))

    envs = [
        dataclasses.replace(env, manual=tuple(v for v in env.validators if waits_for_person(v)))
        for env in envs
    ]
    store = registry.plan_stores.get(settings.plan_store)
    return Pipeline(
        tuple(envs),
        settings.deploy_workflow,
        settings.deploy_grace_seconds,
        bookkeeping_dir=settings.plans_dir if getattr(store, "writes_commits", False) else None,
        restoring=tuple(
            name
            for name, strategy in sorted(registry.rollback_strategies.items())
            if getattr(strategy, "restores_branch", False)
        ),
    )


def describe(pm: pluggy.PluginManager) -> list[tuple[str, tuple[str, ...]]]:
    """Each registered plugin's name and the hooks it implements, for ``promote plugins``."""
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = tuple(sorted(h.name for h in pm.get_hookcallers(plugin) or ()))
        out.append((name, hooks))
    return out
