"""Hook specifications, the whole plugin surface: four ``register_*`` hooks contribute named
objects and ``promote_transition`` hears every transition. Built-ins use the same hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from promote_tasks.config import Settings
    from promote_tasks.model import Action
    from promote_tasks.model import Environment
    from promote_tasks.registry import PlanStore
    from promote_tasks.registry import Register
    from promote_tasks.registry import RollbackStrategy
    from promote_tasks.registry import Validator

NAME = "promote_tasks"  #: pluggy project name and entry-point group

hookspec = pluggy.HookspecMarker(NAME)
hookimpl = pluggy.HookimplMarker(NAME)  #: decorator for plugin hook implementations


@hookspec
def register_environments(register: Register[Environment], settings: Settings) -> None:
    """Contribute the pipeline's environments.

    Called once per run, before anything is read from GitHub. Call ``register(env)`` with a
    ``promote_tasks.model.Environment`` for each stage; the pipeline is ordered by
    ``Environment.order`` and the production environment must be last. Names must be unique
    across all plugins.
    """


@hookspec
def register_validators(register: Register[Validator], settings: Settings) -> None:
    """Contribute validators that environments can name in their ``validators`` list.

    Called once per run. Call ``register(validator)`` for each; a validator has a ``name``
    (what ``use = "..."`` refers to), ``option_types``, ``start(run)`` and ``check(run)``
    returning a ``Verdict``. Names must be unique across all plugins.
    """


@hookspec
def register_rollback_strategies(register: Register[RollbackStrategy], settings: Settings) -> None:
    """Contribute rollback strategies (``redeploy``, ``revert``, ``reset`` are built in).

    Called once per run. A strategy has a ``name``, ``opt_in`` (True: only used when the
    configuration names it) and ``rollback(run)`` which must be idempotent.
    """


@hookspec
def register_plan_stores(register: Register[PlanStore], settings: Settings) -> None:
    """Contribute plan stores (``files`` and ``issues`` are built in).

    Called once per run. A store has a ``name`` and ``plans``, ``create``, ``complete``.
    """


@hookspec
def promote_transition(action: Action, did: tuple[str, ...], repository: str) -> None:
    """Told about every transition after the tool has performed it (chat, webhooks, audit).

    Called once per transition that ``next`` (and ``watch``, ``demo``) takes and once per
    ``rollback`` asked for by hand (as R9), after the writes; ``did`` lists them in words. A
    dry run tells nobody. ``approve`` and ``reject`` record a decision, not a transition: the
    R5 or R6 it leads to is told when ``next`` takes it. The return value is ignored, and an
    exception here is reported in one line naming the plugin, without undoing the transition.
    """
