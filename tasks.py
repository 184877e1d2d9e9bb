"""This repository's own tasks, beside the promote collection it ships."""

from __future__ import annotations

from invoke import Collection
from invoke import Context
from invoke import task

from promote_tasks import promote


@task
def test(c: Context) -> None:
    """Run the test suite."""
    c.run("python -m pytest -q", pty=False)


@task
def lint(c: Context) -> None:
    """Run ruff (lint and format check) and mypy."""
    c.run("ruff check src tests plugins bench tasks.py")
    c.run("ruff format --check src tests plugins bench tasks.py")
    c.run("mypy")


ns = Collection(test, lint)
ns.add_collection(promote)
