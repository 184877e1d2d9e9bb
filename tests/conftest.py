from __future__ import annotations

import os

import pytest

# The sandbox GitHub's fixtures (`sandbox`, `make_sandbox`) for every test that wants one.
pytest_plugins = ["promote_tasks.sandbox.testing"]

# Git in tests must not depend on the machine's global config.
os.environ.setdefault("GIT_AUTHOR_NAME", "Test Author")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "author@example.com")
os.environ.setdefault("GIT_COMMITTER_NAME", "Test Committer")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "committer@example.com")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "transition(*ids): the machine transitions a test exercises")
