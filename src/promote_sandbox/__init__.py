"""A local GitHub for tests, demos and rehearsals.

``start()`` seeds a bare git repository and serves the REST subset promote-tasks uses on
127.0.0.1, with a simulated CI (see :mod:`promote_sandbox.ci` for what it does) and
optional latency and fault injection. Nothing here talks to the real GitHub.
"""

from __future__ import annotations

from promote_sandbox.core import DEFAULT_STEP_MS
from promote_sandbox.core import Sandbox
from promote_sandbox.core import start
from promote_sandbox.scenario import FailRule
from promote_sandbox.scenario import Scenario
from promote_sandbox.scenario import ScenarioError
from promote_sandbox.scenario import UserSpec

__all__ = [
    "DEFAULT_STEP_MS",
    "FailRule",
    "Sandbox",
    "Scenario",
    "ScenarioError",
    "UserSpec",
    "start",
]
