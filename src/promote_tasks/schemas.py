"""The JSON Schemas of every ``--json`` output (``promote schema NAME`` prints one). Pure.

Each output carries ``"schema": 1``; a change that breaks a script raises it.
"""

from __future__ import annotations

import json
from typing import Any

from promote_tasks.errors import PromoteError

_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}
_STRS = {"type": "array", "items": _STR}
_VERSION = {"const": 1, "description": "the version of this output's shape"}


def _object(
    properties: dict[str, Any], *, required: tuple[str, ...] | None = None
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


STATE = {"enum": ["deploying", "deployed", "validating", "failed", "promoted", "complete", None]}

_DID = _object(
    {
        "kind": {
            "type": "string",
            "description": "the effect (set-status, open-pr, ...), gate, lock or note",
        },
        "target": {
            "type": "string",
            "description": "what it was about: context@sha, env@sha, #PR, plans",
        },
        "url": {"type": ["string", "null"], "description": "where GitHub shows it"},
        "text": {"type": "string", "description": "the same, for people"},
    }
)

_ENVIRONMENT = _object(
    {
        "name": _STR,
        "branch": _STR,
        "sha": _NSTR,
        "plan": _NSTR,
        "plans": _STRS,
        "state": STATE,
        "clock": _NSTR,
        "validators": {
            "type": "array",
            "items": _object(
                {
                    "name": _STR,
                    "result": {"enum": ["pending", "passed", "failed", "error"]},
                    "url": _NSTR,
                    "summary": _STR,
                }
            ),
        },
        "evidence": {
            "type": "array",
            "items": _object(
                {
                    "kind": _STR,
                    "id": {"type": ["integer", "string", "null"]},
                    "url": _NSTR,
                    "summary": _STR,
                }
            ),
        },
        "violation": _NSTR,
        "violating": _STRS,
        "taken_out": _STRS,
        "unknown_plans": _STRS,
        "rollback": {
            "oneOf": [
                {"type": "null"},
                _object({"deployment": {"type": "integer"}, "target": _STR, "state": _STR}),
            ]
        },
        "next": _NSTR,
    }
)

_STEP = {
    "transition": {"enum": ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", None]},
    "environment": _NSTR,
    "from": STATE,
    "to": STATE,
    "did": {"type": "array", "items": _DID},
    "waiting_for": _NSTR,
    "stop": _NSTR,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "status": _object(
        {
            "schema": _VERSION,
            "repository": _STR,
            "halted": {"type": "boolean"},
            "fix_plan": _NSTR,
            "active_plan": _NSTR,
            "active_plans": _STRS,
            "in_flight": {
                "type": "array",
                "items": _object({"plan": _STR, "environment": _STR}),
            },
            "plan_problems": {
                "type": "array",
                "items": _object({"plan": _STR, "problem": _STR}),
            },
            "environments": {"type": "array", "items": _ENVIRONMENT},
            "requests": _object(
                {
                    "made": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "requests this run made of GitHub",
                    },
                    "remaining": {
                        "type": ["integer", "null"],
                        "description": "the last X-RateLimit-Remaining GitHub reported",
                    },
                }
            ),
        }
    ),
    "next": {
        "oneOf": [
            _object({"schema": _VERSION, **_STEP}),
            _object(
                {"schema": _VERSION, "steps": {"type": "array", "items": _object(_STEP)}}
            ),  # next --until-rest --json
        ]
    },
    "gate": _object(
        {
            "schema": _VERSION,
            "repository": _STR,
            "gates": {
                "type": "array",
                "items": _object(
                    {
                        "pull": {"type": "integer"},
                        "sha": _STR,
                        "state": {"enum": ["success", "failure"]},
                        "description": _STR,
                        "written": {"type": "boolean"},
                    }
                ),
            },
        }
    ),
    "rollback": _object(
        {
            "schema": _VERSION,
            "environment": _STR,
            "failed_sha": _STR,
            "target": _STR,
            "strategy": _STR,
            "reason": _STR,
            "did": {"type": "array", "items": _DID},
        },
        required=("schema", "environment", "failed_sha", "target", "strategy", "reason"),
    ),
    "doctor": _object(
        {
            "schema": _VERSION,
            "repository": _STR,
            "ok": {"type": "boolean"},
            "checks": {
                "type": "array",
                "items": _object(
                    {
                        "name": _STR,
                        "ok": {"type": "boolean"},
                        "detail": _STR,
                        "fix": _NSTR,
                        "required": {
                            "type": "boolean",
                            "description": "false: a warning, which does not fail the doctor",
                        },
                    }
                ),
            },
        }
    ),
}


def schema(name: str | None) -> dict[str, Any]:
    if name not in SCHEMAS:
        known = ", ".join(sorted(SCHEMAS))
        raise PromoteError(f"say which output: promote schema NAME ({known})" if not name
                           else f"no schema {name!r} (known: {known})")  # fmt: skip
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://promote-tasks.invalid/schemas/{name}.json",
        "title": f"promote {name} --json",
        **SCHEMAS[name],
    }


def schema_text(name: str | None) -> str:
    return json.dumps(schema(name), indent=2)
