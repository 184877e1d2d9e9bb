"""A team's validator plugin: promote to production only inside business hours.

Loaded by path when the configuration says ``plugins_dir = "plugins"``. Use it with::

    [tool.promote.validators.business-hours]
    start = 9        # hour of day, UTC
    end = 17
    weekdays_only = true

and add ``"business-hours"`` to an environment's ``validators`` list.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import ClassVar

from promote_tasks import hookimpl
from promote_tasks.model import Result
from promote_tasks.model import Verdict
from promote_tasks.registry import Register
from promote_tasks.registry import ValidationRun
from promote_tasks.registry import Validator


class BusinessHours:
    name = "business-hours"
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "start": int,
        "end": int,
        "weekdays_only": bool,
    }

    def start(self, run: ValidationRun) -> None:
        return None  # nothing to kick off: the clock is in the snapshot

    def check(self, run: ValidationRun) -> Verdict:
        now = datetime.datetime.fromisoformat(run.snapshot.taken_at.replace("Z", "+00:00"))
        start, end = int(run.options.get("start", 9)), int(run.options.get("end", 17))
        if run.options.get("weekdays_only", True) and now.weekday() >= 5:
            return Verdict(run.name, Result.PENDING, None, "waiting for a weekday")
        if not start <= now.hour < end:
            return Verdict(
                run.name, Result.PENDING, None, f"waiting for {start:02d}:00–{end:02d}:00 UTC"
            )
        return Verdict(run.name, Result.PASSED, None, f"{now:%H:%M} UTC is inside business hours")


@hookimpl
def register_validators(register: Register[Validator]) -> None:
    register(BusinessHours())
