"""The ``promote`` invoke collection: status, next, plugins (and more as they land).

The module is ``tasks`` so that ``from promote_tasks import promote`` always means the
collection (a submodule named ``promote`` would shadow it once imported).

Tasks are thin: settings → plugins → snapshot → derive → decide → render. A user's
``tasks.py`` adds the collection in two lines::

    from invoke import Collection
    from promote_tasks import promote

    ns = Collection(promote)
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from promote_tasks import render
from promote_tasks.config import Settings
from promote_tasks.config import load_settings
from promote_tasks.errors import PromoteError
from promote_tasks.errors import SnapshotError
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Pipeline
from promote_tasks.model import Snapshot
from promote_tasks.model import dump_snapshot
from promote_tasks.model import load_snapshot
from promote_tasks.plugins import collect
from promote_tasks.plugins import describe
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.plugins import pipeline_from
from promote_tasks.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(body: F) -> F:
    """Turn a PromoteError into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except PromoteError as e:
            raise Exit(f"promote: error: {render.inert(e)}", code=1) from None

    return wrapper  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Session:
    """Settings and plugin contributions for one run."""

    settings: Settings
    registry: Registry
    pipeline: Pipeline

    @classmethod
    def load(cls, start: Path | None = None) -> Session:
        settings = load_settings(start)
        pm = make_plugin_manager(plugins_dir=settings.plugins_path())
        registry = collect(pm, settings)
        return cls(settings, registry, pipeline_from(registry, settings))


def read_snapshot_file(path: str) -> Snapshot:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot {path}: {e.strerror}") from None
    return load_snapshot(text, path)


def write_snapshot_file(path: str, snapshot: Snapshot) -> None:
    try:
        Path(path).write_text(dump_snapshot(snapshot), encoding="utf-8")
    except OSError as e:
        raise SnapshotError(f"cannot write snapshot {path}: {e.strerror}") from None


def _snapshot(session: Session, path: str | None) -> Snapshot:
    if path:
        snapshot = read_snapshot_file(path)
        missing = [
            n for n in session.pipeline.names if n not in {e.name for e in snapshot.environments}
        ]
        if missing:
            raise SnapshotError(f"{path}: no facts for environment {missing[0]!r} of this pipeline")
        return snapshot
    raise PromoteError("reading GitHub is not built yet: pass --snapshot FILE")


def _emit(data: dict[str, Any] | None, text: str, as_json: bool) -> None:
    print(json.dumps(data, indent=2) if as_json else text)


@task(
    name="status",
    help={
        "json": "print one JSON object instead of the pipeline view",
        "snapshot": "derive from a saved snapshot file instead of GitHub",
        "save-snapshot": "also write the facts read to this file (attach it to bug reports)",
    },
)
@reports_errors
def status(
    c: Context, json_: bool = False, snapshot: str | None = None, save_snapshot: str | None = None
) -> None:
    """Show each environment's state, derived from GitHub."""
    session = Session.load()
    facts = _snapshot(session, snapshot)
    if save_snapshot:
        write_snapshot_file(save_snapshot, facts)
    state = derive(facts, session.pipeline)
    action = decide(state, facts, session.pipeline)
    _emit(render.status_data(state, action), render.status_text(state, action), json_)


@task(
    name="next",
    help={
        "json": "print one JSON object describing the step",
        "dry-run": "say what the next step would be, write nothing",
        "snapshot": "decide from a saved snapshot file (implies --dry-run)",
    },
)
@reports_errors
def next_(
    c: Context, json_: bool = False, dry_run: bool = False, snapshot: str | None = None
) -> None:
    """Take exactly one step of the Promote machine and say what it did."""
    session = Session.load()
    facts = _snapshot(session, snapshot)
    action = decide(derive(facts, session.pipeline), facts, session.pipeline)
    did = tuple(f"would {e.describe()}" for e in action.effects)
    _emit(render.next_data(action, did), render.next_text(action, did), json_)
    if action.stop:
        raise Exit(code=1)


@task(name="plugins", help={"json": "print one JSON object"})
@reports_errors
def plugins_(c: Context, json_: bool = False) -> None:
    """List the loaded plugins and what each contributes."""
    settings = load_settings()
    pm = make_plugin_manager(plugins_dir=settings.plugins_path())
    registry = collect(pm, settings)
    contributed: dict[str, list[str]] = {}
    for key, owner in registry.owners.items():
        contributed.setdefault(owner, []).append(key)
    data = {
        "plugins": [
            {"name": name, "hooks": list(hooks), "contributes": sorted(contributed.get(name, []))}
            for name, hooks in describe(pm)
        ]
    }
    text = "\n".join(
        f"{p['name']}: {', '.join(p['contributes']) or ', '.join(p['hooks'])}"
        for p in data["plugins"]
    )
    _emit(data, text, json_)


promote = Collection("promote", status, next_, plugins_)
