"""The only package that imports ghapi: ``client`` (transport), ``read``, ``write``."""

from __future__ import annotations

from promote_tasks.github.client import DEFAULT_API_URL
from promote_tasks.github.client import LOW_BUDGET
from promote_tasks.github.client import PACE
from promote_tasks.github.client import Client
from promote_tasks.github.client import Connection
from promote_tasks.github.client import Operations
from promote_tasks.github.client import Stats
from promote_tasks.github.client import UncertainWrite
from promote_tasks.github.read import Reader
from promote_tasks.github.write import GitHub

__all__ = [
    "DEFAULT_API_URL",
    "LOW_BUDGET",
    "PACE",
    "Client",
    "Connection",
    "GitHub",
    "Operations",
    "Reader",
    "Stats",
    "UncertainWrite",
]
