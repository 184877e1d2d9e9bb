"""Pytest fixtures for a sandbox per test.

Use them with ``pytest_plugins = ["promote_sandbox.testing"]`` in the top-level
``conftest.py``, or (in a nested conftest, where pytest forbids ``pytest_plugins``) by binding
them: ``make_sandbox = testing.make_sandbox`` and ``sandbox = testing.sandbox``.

``sandbox`` is a seeded sandbox whose CI moves only when the test says so (``advance()`` /
``settle()``), so assertions about intermediate states are deterministic. ``make_sandbox``
builds more, with any :func:`promote_sandbox.start` argument (e.g. ``step_ms=20`` for a
wall clock, ``scenario=Scenario(...)``, ``fault_rate=0.3``).
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest

from promote_sandbox.core import Sandbox
from promote_sandbox.core import start


@pytest.fixture
def make_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Sandbox]]:
    """A factory; every sandbox it makes is stopped when the test ends."""
    made: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("step_ms", 0)
        directory = kwargs.pop("directory", None) or tmp_path_factory.mktemp("sandbox")
        sandbox = start(directory, **kwargs)
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    """A freshly seeded sandbox with a manual CI clock."""
    return make_sandbox()
