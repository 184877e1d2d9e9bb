"""Fixtures for the sandbox's own tests: the shared sandbox fixtures plus a plain HTTP client."""

from __future__ import annotations

import http.client
import json
import subprocess
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import testing

# The shared fixtures (pytest_plugins is only allowed in the top-level conftest).
make_sandbox = testing.make_sandbox
sandbox = testing.sandbox


def bare(sandbox: Sandbox, *args: str) -> str:
    """Run git on the sandbox's bare repository; its output without the trailing newline."""
    return subprocess.run(
        ["git", "--git-dir", str(sandbox.bare_path), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@dataclass
class Resp:
    status: int
    headers: http.client.HTTPMessage
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text) if self.text else None


class Client:
    """A deliberately naive client: one connection per request, no retries."""

    def __init__(self, sandbox: Sandbox, token: str | None) -> None:
        self.sandbox = sandbox
        self.token = token

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Resp:
        url = urlsplit(self.sandbox.api_url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
        sent = {"Accept": "application/vnd.github+json", **(headers or {})}
        tok = self.token if token == "default" else token
        if tok is not None:
            sent["Authorization"] = f"token {tok}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            return Resp(resp.status, resp.headers, resp.read().decode())
        finally:
            conn.close()

    def repo(self, method: str, tail: str, body: Any = None, **kw: Any) -> Resp:
        return self(method, f"/repos/{self.sandbox.repository}{tail}", body, **kw)


@pytest.fixture
def gh(sandbox: Sandbox) -> Client:
    """The author's client for the default ``sandbox``."""
    return Client(sandbox, sandbox.author_token)


@pytest.fixture
def rita(sandbox: Sandbox) -> Client:
    return Client(sandbox, sandbox.reviewer_token)
