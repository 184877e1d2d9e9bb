"""Shared helpers for the REST handlers: resolving refs, finding objects, reading bodies."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from promote_sandbox.server import ApiError
from promote_sandbox.server import Request
from promote_sandbox.server import Router
from promote_sandbox.server import invalid
from promote_sandbox.server import not_found
from promote_sandbox.shapes import Shapes
from promote_sandbox.store import Issue
from promote_sandbox.store import Store

if TYPE_CHECKING:
    from promote_sandbox.ci import CI

HEX = re.compile(r"^[0-9a-f]{4,40}$")
REPO = "/repos/{owner}/{repo}"


T = TypeVar("T")


def by_id(table: dict[int, T], req: Request, param: str) -> T:
    """The row of ``table`` that path parameter ``param`` names; 404 when none does."""
    try:
        found = table.get(int(req.params[param]))
    except ValueError:
        found = None
    if found is None:
        raise not_found()
    return found


class Base:
    """State every handler group shares."""

    def __init__(self, store: Store, shapes: Shapes, ci: CI) -> None:
        self.store = store
        self.shapes = shapes
        self.ci = ci

    def register(self, router: Router) -> None:
        raise NotImplementedError

    # -- lookups -----------------------------------------------------------------------------

    def check_repo(self, req: Request) -> None:
        owner = req.params.get("owner", "")
        repo = req.params.get("repo", "")
        if owner.lower() != self.store.owner.lower() or repo.lower() != self.store.name.lower():
            raise not_found()

    def resolve(self, ref: str) -> str | None:
        """A commit sha for a branch, tag, ``heads/x``, ``refs/heads/x`` or (short) sha."""
        repo = self.store.repo
        ref = ref.strip()
        if not ref:
            return None
        if ref.startswith("refs/"):
            candidates = [ref]
        elif ref.startswith(("heads/", "tags/")):
            candidates = [f"refs/{ref}"]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
            if HEX.match(ref):
                candidates.append(ref)
        for candidate in candidates:
            if candidate == ref and HEX.match(ref):
                sha = repo.full_sha(ref, "commit")
            else:
                found = repo.ref(candidate)
                sha = repo.full_sha(found, "commit") if found else None
            if sha:
                return sha
        return None

    def issue(self, req: Request, name: str = "number") -> Issue:
        try:
            number = int(req.params[name])
        except ValueError:
            raise not_found() from None
        issue = self.store.issues.get(number)
        if issue is None:
            raise not_found()
        return issue

    def pull(self, req: Request) -> Issue:
        issue = self.issue(req)
        if issue.pull is None:
            raise not_found()
        return issue

    # -- bodies ------------------------------------------------------------------------------

    def body(self, req: Request) -> dict[str, Any]:
        if req.body is None:
            return {}
        if not isinstance(req.body, dict):
            raise ApiError(400, "Problems parsing JSON")
        return req.body

    def text(self, req: Request, name: str, resource: str, *, required: bool = False) -> str | None:
        value = self.body(req).get(name)
        if value is None:
            if required:
                raise invalid(resource, name, "missing_field")
            return None
        if not isinstance(value, str):
            raise ApiError(
                422,
                f"Invalid request.\n\nFor 'properties/{name}', {_json_kind(value)} is not a string.",
            )
        return value

    def flag(self, req: Request, name: str, default: bool) -> bool:
        value = self.body(req).get(name, default)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ApiError(
            422,
            f"Invalid request.\n\nFor 'properties/{name}', {_json_kind(value)} is not a boolean.",
        )


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return f'"{value}"'
