from __future__ import annotations

import os

import pytest

from tests.builders import COVERED

# Git in tests must not depend on the machine's global config.
os.environ.setdefault("GIT_AUTHOR_NAME", "Test Author")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "author@example.com")
os.environ.setdefault("GIT_COMMITTER_NAME", "Test Committer")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "committer@example.com")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "transition(*ids): the machine transitions a test exercises")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("transition"):
            COVERED.update(mark.args)
