"""Fault and latency injection as a naive client meets them."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from collections.abc import Callable

from promote_sandbox import Sandbox
from tests.sandbox.conftest import Client


def _attempt(
    sandbox: Sandbox, method: str, path: str, body: object | None
) -> tuple[str, http.client.HTTPResponse | None]:
    port = int(sandbox.api_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {
        "Authorization": f"token {sandbox.author_token}",
        "Accept": "application/vnd.github+json",
    }
    data = json.dumps(body).encode() if body is not None else None
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return "answered", resp
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.BadStatusLine):
        return "dropped", None
    finally:
        conn.close()


def test_each_fault_kind_appears_and_only_applied_then_dropped_applies_writes(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(fault_rate=0.3, seed=7, retry_after=2)
    control = Client(sandbox, None)
    seen: Counter[str] = Counter()
    repo = f"/repos/{sandbox.repository}"
    for i in range(400):
        write = i % 2 == 0
        title = f"probe {i}"
        outcome, resp = _attempt(
            sandbox,
            "POST" if write else "GET",
            f"{repo}/issues",
            {"title": title} if write else None,
        )
        with sandbox.store.lock:
            applied = any(issue.title == title for issue in sandbox.store.issues.values())
        if outcome == "dropped":
            kind = "applied_then_dropped" if applied else "drop"
        else:
            assert resp is not None
            assert resp.headers["X-GitHub-Request-Id"]
            assert resp.headers["X-RateLimit-Limit"]
            if resp.status == 502:
                kind = "502"
            elif resp.status == 403:
                assert resp.headers["Retry-After"] == "2"
                kind = "secondary_rate_limit"
            elif resp.status == 429:
                assert resp.headers["Retry-After"] == "2"
                assert resp.headers["X-RateLimit-Remaining"] == "0"
                assert int(resp.headers["X-RateLimit-Reset"]) >= int(time.time())
                kind = "429"
            else:
                assert resp.status == (201 if write else 200)
                kind = "ok"
        if kind not in ("ok", "applied_then_dropped") and write:
            assert not applied, f"a {kind} fault applied the write"
        if kind == "applied_then_dropped":
            assert write, "reads are never 'applied then dropped'"
        seen[kind] += 1
        if all(
            seen[k] for k in ("502", "drop", "secondary_rate_limit", "429", "applied_then_dropped")
        ):
            break
    assert all(
        seen[k] for k in ("502", "drop", "secondary_rate_limit", "429", "applied_then_dropped")
    ), seen
    faults = control("GET", "/_sandbox/stats", token=None).json["faults"]
    assert sum(faults.values()) == sum(v for k, v in seen.items() if k != "ok")
    # control endpoints and health are never faulted
    for _ in range(30):
        assert control("GET", "/_sandbox/health/dev", token=None).status == 200


def test_faults_are_deterministic_for_a_seed(make_sandbox: Callable[..., Sandbox]) -> None:
    def pattern(seed: int) -> list[int | None]:
        sandbox = make_sandbox(fault_rate=0.5, seed=seed)
        out: list[int | None] = []
        for _ in range(30):
            _, resp = _attempt(sandbox, "GET", f"/repos/{sandbox.repository}", None)
            out.append(resp.status if resp else None)
        return out

    assert pattern(3) == pattern(3)
    assert pattern(3) != pattern(4)


def test_latency_delays_every_api_response(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(latency_ms=150)
    gh = Client(sandbox, sandbox.author_token)
    for path in ("", "/pulls/999"):
        start = time.perf_counter()
        gh.repo("GET", path)
        assert time.perf_counter() - start >= 0.15  # a lower bound: the server sleeps first


def _issue_titles(sandbox: Sandbox) -> list[str]:
    with sandbox.store.lock:
        return sorted(issue.title for issue in sandbox.store.issues.values())


def test_a_targeted_fault_takes_only_the_next_matching_request(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    control = Client(sandbox, None)
    repo = f"/repos/{sandbox.repository}"
    added = control(
        "POST", "/_sandbox/faults", {"method": "POST", "pattern": "/issues$", "kind": "502"}
    )
    assert added.json["rules"][0]["times"] == 1
    assert _attempt(sandbox, "GET", f"{repo}/issues", None)[1].status == 200  # type: ignore[union-attr]
    assert _attempt(sandbox, "POST", f"{repo}/issues", {"title": "a"})[1].status == 502  # type: ignore[union-attr]
    assert "a" not in _issue_titles(sandbox)
    assert _attempt(sandbox, "POST", f"{repo}/issues", {"title": "b"})[1].status == 201  # type: ignore[union-attr]
    assert control("GET", "/_sandbox/faults", token=None).json["rules"][0]["hits"] == 1


def test_applied_then_dropped_applies_the_write_and_hangs_up(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    sandbox.faults.target("POST", "/issues$", "applied_then_dropped")
    outcome, _ = _attempt(sandbox, "POST", f"/repos/{sandbox.repository}/issues", {"title": "x"})
    assert outcome == "dropped"
    assert "x" in _issue_titles(sandbox)


def test_every_write_once_faults_each_distinct_write_the_first_time_only(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(retry_after=0)
    sandbox.faults.every_write_once("secondary_rate_limit")
    repo = f"/repos/{sandbox.repository}"
    first = [_attempt(sandbox, "POST", f"{repo}/issues", {"title": t})[1] for t in "aab"]
    assert [r.status for r in first if r] == [403, 201, 403]
    assert first[0] is not None
    assert first[0].headers["Retry-After"] == "0"
    assert _attempt(sandbox, "GET", f"{repo}/issues", None)[1].status == 200  # type: ignore[union-attr]
    assert _issue_titles(sandbox).count("a") == 1
    assert "b" not in _issue_titles(sandbox)


def test_a_bad_fault_rule_is_refused(make_sandbox: Callable[..., Sandbox]) -> None:
    control = Client(make_sandbox(), None)
    assert control("POST", "/_sandbox/faults", {"method": "POST", "kind": "nope"}).status == 422
    assert control("DELETE", "/_sandbox/faults", token=None).json == {"rules": []}
