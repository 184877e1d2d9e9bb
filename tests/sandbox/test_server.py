"""HTTP behaviour every endpoint shares: auth, errors, pagination, ETags, headers."""

from __future__ import annotations

import re

from promote_sandbox import Sandbox
from tests.sandbox.conftest import Client


def test_missing_and_bad_tokens_are_401_with_github_messages(gh: Client) -> None:
    missing = gh.repo("GET", "", token=None)
    assert missing.status == 401
    assert missing.json["message"] == "Requires authentication"
    bad = gh.repo("GET", "", token="sbx_nobody_0000")
    assert bad.status == 401
    assert bad.json == {
        "message": "Bad credentials",
        "documentation_url": "https://docs.github.com/rest",
        "status": "401",
    }


def test_tokens_never_look_like_real_github_tokens(sandbox: Sandbox) -> None:
    for user in sandbox.users.values():
        assert user["token"].startswith("sbx_")
        assert not user["token"].startswith(("ghp_", "github_pat_", "gho_", "ghs_"))
    assert sandbox.author_token != sandbox.reviewer_token


def test_unknown_repository_and_object_are_404(gh: Client) -> None:
    assert gh("GET", "/repos/acme/nope").status == 404
    assert gh("GET", "/repos/other/shop/pulls").json["message"] == "Not Found"
    assert gh.repo("GET", "/pulls/999").status == 404
    assert gh.repo("GET", "/deployments/424242").status == 404
    assert gh("GET", "/definitely/not/an/endpoint").status == 404


def test_read_only_collaborator_cannot_write(sandbox: Sandbox) -> None:
    bob = Client(sandbox, sandbox.users["bob"]["token"])
    assert bob.repo("GET", "/pulls").status == 200
    head = bob.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    denied = bob.repo("POST", f"/statuses/{head}", {"state": "success", "context": "x"})
    assert denied.status == 403


def test_every_response_has_rate_limit_headers_and_request_id_in_canonical_case(gh: Client) -> None:
    resp = gh.repo("GET", "")
    raw_names = [name for name, _ in resp.headers.items()]
    for name in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-RateLimit-Used",
        "X-RateLimit-Resource",
        "X-GitHub-Request-Id",
        "ETag",
        "Content-Type",
        "Content-Length",
    ):
        assert name in raw_names, name
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    before = int(resp.headers["X-RateLimit-Remaining"])
    after = int(gh.repo("GET", "").headers["X-RateLimit-Remaining"])
    assert after == before - 1
    error = gh.repo("GET", "/pulls/999")
    assert error.headers["X-GitHub-Request-Id"]
    assert error.headers["X-RateLimit-Remaining"]


def test_pagination_link_header_follows_to_the_last_page(gh: Client, sandbox: Sandbox) -> None:
    head = gh.repo("GET", "/git/ref/heads/main").json["object"]["sha"]
    for i in range(7):
        assert (
            gh.repo("POST", f"/statuses/{head}", {"state": "success", "context": f"c{i}"}).status
            == 201
        )
    total = len(gh.repo("GET", f"/commits/{head}/statuses?per_page=100").json)
    seen = []
    url = f"/repos/{sandbox.repository}/commits/{head}/statuses?per_page=3"
    pages = 0
    while url:
        resp = gh("GET", url)
        pages += 1
        seen += [s["id"] for s in resp.json]
        link = resp.headers.get("Link") or ""
        m = re.search(r'<([^>]+)>; rel="next"', link)
        url = m.group(1).replace(sandbox.api_url, "") if m else ""
        if m:
            assert 'rel="last"' in link
            assert "per_page=3" in link
    assert pages == -(-total // 3)
    assert len(seen) == total == len(set(seen))
    assert seen == sorted(seen, reverse=True)


def test_wrapped_lists_carry_total_count_and_page_with_links(gh: Client) -> None:
    resp = gh.repo("GET", "/actions/runs?per_page=2")
    body = resp.json
    assert set(body) == {"total_count", "workflow_runs"}
    assert body["total_count"] >= 6
    assert len(body["workflow_runs"]) == 2
    assert 'rel="next"' in resp.headers["Link"]
    last = gh.repo("GET", f"/actions/runs?per_page=2&page={-(-body['total_count'] // 2)}")
    assert "Link" in last.headers
    assert 'rel="next"' not in last.headers["Link"]


def test_etag_and_if_none_match_give_304_that_costs_no_rate_limit(gh: Client) -> None:
    first = gh.repo("GET", "/pulls")
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    again = gh.repo("GET", "/pulls", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.text == ""
    assert again.headers["ETag"] == etag
    remaining = int(again.headers["X-RateLimit-Remaining"])
    third = gh.repo("GET", "/pulls", headers={"If-None-Match": etag})
    assert int(third.headers["X-RateLimit-Remaining"]) == remaining
    # a change to the resource changes the tag
    issues = gh.repo("GET", "/issues")
    assert (
        gh.repo("GET", "/issues", headers={"If-None-Match": issues.headers["ETag"]}).status == 304
    )
    gh.repo("POST", "/issues", {"title": "another"})
    assert (
        gh.repo("GET", "/issues", headers={"If-None-Match": issues.headers["ETag"]}).status == 200
    )


def test_etag_depends_on_the_token(sandbox: Sandbox) -> None:
    alice = Client(sandbox, sandbox.author_token)
    rita = Client(sandbox, sandbox.reviewer_token)
    etag = alice.repo("GET", "/branches").headers["ETag"]
    assert rita.repo("GET", "/branches", headers={"If-None-Match": etag}).status == 200


def test_malformed_json_body_is_400(gh: Client, sandbox: Sandbox) -> None:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(sandbox.api_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port)
    conn.request(
        "POST",
        f"/repos/{sandbox.repository}/issues",
        body=b"{not json",
        headers={"Authorization": f"token {sandbox.author_token}"},
    )
    resp = conn.getresponse()
    assert resp.status == 400
    conn.close()


def test_validation_errors_have_githubs_shape(gh: Client) -> None:
    resp = gh.repo("POST", "/pulls", {"head": "feature/add-greeting", "base": "dev"})
    assert resp.status == 422
    body = resp.json
    assert body["message"] == "Validation Failed"
    assert body["errors"][0]["field"] == "title"
    assert body["documentation_url"].startswith("https://docs.github.com/")
    assert body["status"] == "422"


def test_stats_count_requests_by_path_template(gh: Client, sandbox: Sandbox) -> None:
    control = Client(sandbox, None)
    control("POST", "/_sandbox/stats/reset", token=None)
    gh.repo("GET", "/pulls/1")
    gh.repo("GET", "/pulls/1")
    gh.repo("GET", "/git/ref/heads/dev")
    stats = control("GET", "/_sandbox/stats", token=None).json
    assert stats["requests"]["GET /repos/{owner}/{repo}/pulls/{number}"] == 2
    assert stats["requests"]["GET /repos/{owner}/{repo}/git/ref/{ref}"] == 1
    assert stats["total"] == 3


def test_control_endpoints_need_no_token_and_live_outside_github_paths(sandbox: Sandbox) -> None:
    control = Client(sandbox, None)
    state = control("GET", "/_sandbox/state", token=None)
    assert state.status == 200
    assert set(state.json["environments"]) == {"dev", "test", "main"}
    scenario = control("GET", "/_sandbox/scenario", token=None).json
    assert scenario["fail"] == []
    assert scenario["reviewer"] == "rita"
    assert control("POST", "/_sandbox/advance", token=None).status == 200
    assert control("GET", "/_sandbox/nope", token=None).status == 404


def test_settle_with_a_bad_timeout_is_a_422_not_a_dropped_connection(sandbox: Sandbox) -> None:
    control = Client(sandbox, None)
    for path, body in (
        ("/_sandbox/settle?timeout=soon", None),
        ("/_sandbox/settle", {"timeout": "x"}),
        ("/_sandbox/settle?timeout=inf", None),
    ):
        resp = control("POST", path, body, token=None)
        assert resp.status == 422, (path, body)
        assert "timeout must be a number of seconds" in resp.json["message"]
    assert control("POST", "/_sandbox/settle", [1], token=None).json == {"settled": True}
    assert control("POST", "/_sandbox/settle?timeout=5", token=None).status == 200
