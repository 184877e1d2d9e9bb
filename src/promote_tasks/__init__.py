"""promote-tasks: carry merged pull requests safely through environment branches.

``from promote_tasks import promote`` gives the invoke collection; ``hookimpl`` marks plugin
hook implementations. Nothing is loaded at import time beyond what is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from invoke.collection import Collection

    from promote_tasks.hookspecs import hookimpl

    promote: Collection

__all__ = ["__version__", "hookimpl", "promote"]


def __getattr__(name: str) -> Any:
    # Lazy, so that hooks and the core import neither invoke nor pluggy unless they need them.
    if name == "promote":
        from promote_tasks.tasks import promote

        return promote
    if name == "hookimpl":
        from promote_tasks.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(name)
