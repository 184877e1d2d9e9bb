"""Pull requests, merges with the three methods, reviews, issues and comments."""

from __future__ import annotations

import pytest

from promote_sandbox import Sandbox
from tests.sandbox.conftest import Client
from tests.sandbox.conftest import bare


def add_commits(gh: Client, branch: str, base: str, files: dict[str, str]) -> list[str]:
    """Create ``branch`` from ``base`` with one commit per file, through the contents API."""
    import base64

    sha = gh.repo("GET", f"/git/ref/heads/{base}").json["object"]["sha"]
    assert gh.repo("POST", "/git/refs", {"ref": f"refs/heads/{branch}", "sha": sha}).status == 201
    made = []
    for path, text in files.items():
        body = {
            "message": f"Change {path}",
            "content": base64.b64encode(text.encode()).decode(),
            "branch": branch,
        }
        existing = gh.repo("GET", f"/contents/{path}?ref={branch}")
        if existing.status == 200:
            body["sha"] = existing.json["sha"]
        resp = gh.repo("PUT", f"/contents/{path}", body)
        assert resp.status in (200, 201), resp.text
        made.append(resp.json["commit"]["sha"])
    return made


def test_seeded_pull_request_is_open_from_feature_to_dev(gh: Client) -> None:
    pulls = gh.repo("GET", "/pulls").json
    assert [(p["number"], p["head"]["ref"], p["base"]["ref"], p["state"]) for p in pulls] == [
        (1, "feature/add-greeting", "dev", "open")
    ]
    assert pulls[0]["user"]["login"] == "alice"
    assert pulls[0]["head"]["label"] == "acme:feature/add-greeting"


def test_second_open_pr_for_same_head_and_base_is_422(gh: Client) -> None:
    resp = gh.repo(
        "POST", "/pulls", {"title": "again", "head": "feature/add-greeting", "base": "dev"}
    )
    assert resp.status == 422
    assert (
        resp.json["errors"][0]["message"]
        == "A pull request already exists for acme:feature/add-greeting."
    )
    same_owner = gh.repo(
        "POST", "/pulls", {"title": "again", "head": "acme:feature/add-greeting", "base": "dev"}
    )
    assert same_owner.status == 422
    assert gh.repo("POST", "/pulls", {"title": "x", "head": "nope", "base": "dev"}).status == 422
    assert (
        gh.repo(
            "POST", "/pulls", {"title": "x", "head": "feature/add-greeting", "base": "nope"}
        ).status
        == 422
    )


def test_pr_without_commits_is_422(gh: Client) -> None:
    resp = gh.repo("POST", "/pulls", {"title": "nothing", "head": "dev", "base": "test"})
    assert resp.status == 422
    assert resp.json["errors"][0]["message"] == "No commits between test and dev"


def test_head_filter_needs_owner_prefix_and_bare_branch_is_ignored(gh: Client) -> None:
    add_commits(gh, "feature/two", "dev", {"two.txt": "2\n"})
    assert (
        gh.repo("POST", "/pulls", {"title": "Two", "head": "feature/two", "base": "dev"}).status
        == 201
    )
    everything = gh.repo("GET", "/pulls?head=feature/two").json
    assert len(everything) == 2
    only = gh.repo("GET", "/pulls?head=acme:feature/two").json
    assert [p["head"]["ref"] for p in only] == ["feature/two"]
    assert gh.repo("GET", "/pulls?head=other:feature/two").json == []
    assert [p["number"] for p in gh.repo("GET", "/pulls").json] == [2, 1]
    assert [p["number"] for p in gh.repo("GET", "/pulls?direction=asc").json] == [1, 2]
    assert gh.repo("GET", "/pulls?base=test").json == []


def test_mergeable_is_null_until_github_has_computed_it(gh: Client) -> None:
    first = gh.repo("GET", "/pulls/1").json
    assert first["mergeable"] is None
    assert first["mergeable_state"] == "unknown"
    second = gh.repo("GET", "/pulls/1").json
    assert second["mergeable"] is True
    assert second["mergeable_state"] == "clean"
    assert second["merge_commit_sha"]  # the test merge commit


def test_merge_commit_method(gh: Client, sandbox: Sandbox) -> None:
    dev = bare(sandbox, "rev-parse", "dev")
    head = bare(sandbox, "rev-parse", "feature/add-greeting")
    assert gh.repo("PUT", "/pulls/1/merge", {"sha": "0" * 40}).status == 409
    resp = gh.repo("PUT", "/pulls/1/merge", {"merge_method": "merge"})
    assert resp.status == 200
    assert resp.json["merged"] is True
    assert resp.json["message"] == "Pull Request successfully merged"
    new = bare(sandbox, "rev-parse", "dev")
    assert resp.json["sha"] == new
    assert bare(sandbox, "rev-parse", f"{new}^1") == dev
    assert bare(sandbox, "rev-parse", f"{new}^2") == head
    assert (
        bare(sandbox, "log", "-1", "--format=%s", new)
        == "Merge pull request #1 from acme/feature/add-greeting"
    )
    assert bare(sandbox, "log", "-1", "--format=%cn <%ce>", new) == "GitHub <noreply@github.com>"
    pr = gh.repo("GET", "/pulls/1").json
    assert (pr["state"], pr["merged"], pr["merge_commit_sha"]) == ("closed", True, new)
    assert pr["merged_by"]["login"] == "alice"
    assert gh.repo("GET", "/pulls/1/merge").status == 204
    assert gh.repo("PUT", "/pulls/1/merge", {}).status == 405
    assert gh.repo("GET", "/pulls?state=open").json == []
    closed = gh.repo("GET", "/pulls?state=closed").json
    assert closed[0]["merged_at"] is not None


def test_squash_method(gh: Client, sandbox: Sandbox) -> None:
    dev = bare(sandbox, "rev-parse", "dev")
    resp = gh.repo("PUT", "/pulls/1/merge", {"merge_method": "squash"})
    assert resp.status == 200
    new = bare(sandbox, "rev-parse", "dev")
    assert bare(sandbox, "rev-list", "--parents", "-1", new).split() == [new, dev]
    assert bare(sandbox, "log", "-1", "--format=%s", new) == "Add a greeting to the app (#1)"
    assert bare(sandbox, "show", f"{new}:app.txt") == "shop v1\nHello, shopper!"
    assert gh.repo("GET", "/pulls/1").json["merge_commit_sha"] == new


def test_squash_of_one_commit_takes_its_title_and_body(gh: Client, sandbox: Sandbox) -> None:
    """GitHub's default squash message for a single-commit PR: the commit's own title with the
    PR number, and the commit's body (not the PR's title, not a list)."""
    gh.repo("POST", "/git/refs", {"ref": "refs/heads/feature/one", "sha": head_of(gh, "dev")})
    commit_on(gh, "feature/one", "Tune the price\n\nCheaper by a cent.\n\nSee #12.\n")
    number = gh.repo(
        "POST", "/pulls", {"title": "A different title", "head": "feature/one", "base": "dev"}
    ).json["number"]
    assert gh.repo("PUT", f"/pulls/{number}/merge", {"merge_method": "squash"}).status == 200
    assert bare(sandbox, "log", "-1", "--format=%B", "dev") == (
        f"Tune the price (#{number})\n\nCheaper by a cent.\n\nSee #12."
    )


def test_squash_of_several_commits_lists_every_message(gh: Client, sandbox: Sandbox) -> None:
    """More than one commit: the PR's title with its number, then each commit's full message
    as a ``* `` item, blank lines between; a merge commit is listed but not counted."""
    gh.repo("POST", "/git/refs", {"ref": "refs/heads/feature/two", "sha": head_of(gh, "dev")})
    commit_on(gh, "feature/two", "Add a footer\n\nOn every page.\n")
    commit_on(gh, "feature/two", "plans: complete x\n\nPromote-Bookkeeping: true\n")
    number = gh.repo(
        "POST", "/pulls", {"title": "Promote two", "head": "feature/two", "base": "dev"}
    ).json["number"]
    assert gh.repo("PUT", f"/pulls/{number}/merge", {"merge_method": "squash"}).status == 200
    assert bare(sandbox, "log", "-1", "--format=%B", "dev") == (
        f"Promote two (#{number})\n\n* Add a footer\n\nOn every page.\n\n"
        "* plans: complete x\n\nPromote-Bookkeeping: true"
    )

    # One commit besides a merge commit counts as one: its own title and body.
    gh.repo("POST", "/git/refs", {"ref": "refs/heads/feature/three", "sha": head_of(gh, "dev")})
    commit_on(gh, "feature/three", "Add a header\n\nAt the top.\n")
    tip = commit_on(gh, "feature/three", "Merge dev\n", parents_extra=[head_of(gh, "main")])
    assert len(gh.repo("GET", f"/git/commits/{tip}").json["parents"]) == 2
    number = gh.repo(
        "POST", "/pulls", {"title": "Header", "head": "feature/three", "base": "dev"}
    ).json["number"]
    assert gh.repo("PUT", f"/pulls/{number}/merge", {"merge_method": "squash"}).status == 200
    assert bare(sandbox, "log", "-1", "--format=%B", "dev") == (
        f"Add a header (#{number})\n\nAt the top."
    )


def head_of(gh: Client, branch: str) -> str:
    return str(gh.repo("GET", f"/git/ref/heads/{branch}").json["object"]["sha"])


def commit_on(
    gh: Client, branch: str, message: str, *, parents_extra: list[str] | None = None
) -> str:
    """One commit on ``branch`` (a new file named after the message) through the git data API."""
    parent = head_of(gh, branch)
    tree = gh.repo("GET", f"/git/commits/{parent}").json["tree"]["sha"]
    name = message.split("\n", 1)[0].replace(" ", "-").replace(":", "") + ".txt"
    entry = {"path": name, "mode": "100644", "type": "blob", "content": message}
    new_tree = gh.repo("POST", "/git/trees", {"base_tree": tree, "tree": [entry]}).json["sha"]
    body = {"message": message, "tree": new_tree, "parents": [parent, *(parents_extra or [])]}
    sha = str(gh.repo("POST", "/git/commits", body).json["sha"])
    assert gh.repo("PATCH", f"/git/refs/heads/{branch}", {"sha": sha}).status == 200
    return sha


def test_rebase_method_recreates_each_commit(gh: Client, sandbox: Sandbox) -> None:
    originals = add_commits(gh, "feature/many", "dev", {"a.txt": "a\n", "b.txt": "b\n"})
    # move dev on so the rebase really re-creates the commits
    assert gh.repo("PUT", "/pulls/1/merge", {"merge_method": "merge"}).status == 200
    number = gh.repo(
        "POST", "/pulls", {"title": "Many", "head": "feature/many", "base": "dev"}
    ).json["number"]
    before = bare(sandbox, "rev-parse", "dev")
    resp = gh.repo("PUT", f"/pulls/{number}/merge", {"merge_method": "rebase"})
    assert resp.status == 200
    new = bare(sandbox, "rev-list", f"{before}..dev").split()
    assert len(new) == 2
    assert not set(new) & set(originals)
    assert bare(sandbox, "rev-parse", "dev~2") == before
    assert [bare(sandbox, "log", "-1", "--format=%s", s) for s in reversed(new)] == [
        "Change a.txt",
        "Change b.txt",
    ]
    assert gh.repo("GET", f"/pulls/{number}").json["merge_commit_sha"] == new[0]
    pulls = gh.repo("GET", f"/commits/{new[0]}/pulls").json
    assert [p["number"] for p in pulls] == [number]


def test_conflicting_pr_cannot_be_merged(gh: Client, sandbox: Sandbox) -> None:
    add_commits(gh, "feature/clash", "dev", {"app.txt": "something else\n"})
    number = gh.repo(
        "POST", "/pulls", {"title": "Clash", "head": "feature/clash", "base": "dev"}
    ).json["number"]
    assert gh.repo("PUT", "/pulls/1/merge", {}).status == 200
    gh.repo("GET", f"/pulls/{number}")
    pr = gh.repo("GET", f"/pulls/{number}").json
    assert pr["mergeable"] is False
    assert pr["mergeable_state"] == "dirty"
    resp = gh.repo("PUT", f"/pulls/{number}/merge", {})
    assert resp.status == 405
    assert resp.json["message"] == "Pull Request is not mergeable"


def test_commit_pulls_returns_the_merged_pr_and_open_ones_off_default(
    gh: Client, sandbox: Sandbox
) -> None:
    feature = bare(sandbox, "rev-parse", "feature/add-greeting")
    assert [p["number"] for p in gh.repo("GET", f"/commits/{feature}/pulls").json] == [1]
    gh.repo("PUT", "/pulls/1/merge", {})
    merge = bare(sandbox, "rev-parse", "dev")
    for sha in (feature, merge):
        found = gh.repo("GET", f"/commits/{sha}/pulls").json
        assert [(p["number"], p["merged_at"] is not None) for p in found] == [(1, True)]
    assert gh.repo("GET", "/commits/dev/pulls").json[0]["number"] == 1


def test_pushing_the_head_into_the_base_marks_the_pr_merged(gh: Client, sandbox: Sandbox) -> None:
    feature = bare(sandbox, "rev-parse", "feature/add-greeting")
    assert gh.repo("PATCH", "/git/refs/heads/dev", {"sha": feature}).status == 200
    pr = gh.repo("GET", "/pulls/1").json
    assert pr["state"] == "closed"
    assert pr["merged"] is True
    assert pr["merge_commit_sha"] == feature


def test_reviews_author_cannot_approve_and_reviewer_can(
    gh: Client, rita: Client, sandbox: Sandbox
) -> None:
    own = gh.repo("POST", "/pulls/1/reviews", {"event": "APPROVE"})
    assert own.status == 422
    assert "approve your own pull request" in own.json["errors"][0]
    head = bare(sandbox, "rev-parse", "feature/add-greeting")
    approved = rita.repo("POST", "/pulls/1/reviews", {"event": "APPROVE", "body": "lgtm"})
    assert approved.status == 200
    assert (approved.json["state"], approved.json["commit_id"]) == ("APPROVED", head)
    commented = gh.repo("POST", "/pulls/1/reviews", {"event": "COMMENT", "body": "thanks"})
    assert commented.json["state"] == "COMMENTED"
    pending = rita.repo("POST", "/pulls/1/reviews", {"body": "draft"})
    assert pending.json["state"] == "PENDING"
    assert [r["state"] for r in gh.repo("GET", "/pulls/1/reviews").json] == [
        "APPROVED",
        "COMMENTED",
    ]
    assert [r["state"] for r in rita.repo("GET", "/pulls/1/reviews").json] == [
        "APPROVED",
        "COMMENTED",
        "PENDING",
    ]


def test_requested_reviewers(gh: Client) -> None:
    resp = gh.repo("POST", "/pulls/1/requested_reviewers", {"reviewers": ["rita"]})
    assert resp.status == 201
    assert [u["login"] for u in gh.repo("GET", "/pulls/1/requested_reviewers").json["users"]] == [
        "rita"
    ]
    assert gh.repo("POST", "/pulls/1/requested_reviewers", {"reviewers": ["alice"]}).status == 422
    assert gh.repo("POST", "/pulls/1/requested_reviewers", {"reviewers": ["mallory"]}).status == 422


def test_issues_list_includes_prs_and_filters_labels_state_assignee(
    gh: Client, rita: Client
) -> None:
    issue = gh.repo(
        "POST",
        "/issues",
        {
            "title": "Manual test: test@abc",
            "body": "- [ ] one",
            "labels": ["promote", "manual-test"],
            "assignees": ["rita"],
        },
    )
    assert issue.status == 201
    number = issue.json["number"]
    assert number == 2  # issues and pull requests share numbers
    listed = gh.repo("GET", "/issues").json
    assert [i["number"] for i in listed] == [2, 1]
    assert "pull_request" in listed[1]
    assert "pull_request" not in listed[0]
    assert [i["number"] for i in gh.repo("GET", "/issues?labels=promote,manual-test").json] == [2]
    assert gh.repo("GET", "/issues?labels=promote,nope").json == []
    assert [i["number"] for i in gh.repo("GET", "/issues?assignee=rita").json] == [2]
    assert [i["number"] for i in gh.repo("GET", "/issues?assignee=none").json] == [1]
    comment = rita.repo("POST", f"/issues/{number}/comments", {"body": "approve"})
    assert comment.status == 201
    assert comment.json["user"]["login"] == "rita"
    assert [c["body"] for c in gh.repo("GET", f"/issues/{number}/comments").json] == ["approve"]
    closed = gh.repo("PATCH", f"/issues/{number}", {"state": "closed"})
    assert closed.json["state"] == "closed"
    assert closed.json["closed_by"]["login"] == "alice"
    assert [i["number"] for i in gh.repo("GET", "/issues?state=closed").json] == [2]
    assert gh.repo("GET", f"/issues/{number}").json["comments"] == 1


def test_labels_on_issues(gh: Client) -> None:
    added = gh.repo("POST", "/issues/1/labels", {"labels": ["promote:fix"]})
    assert [lbl["name"] for lbl in added.json] == ["promote:fix"]
    replaced = gh.repo("PUT", "/issues/1/labels", {"labels": ["a", "b"]})
    assert [lbl["name"] for lbl in replaced.json] == ["a", "b"]
    assert [lbl["name"] for lbl in gh.repo("DELETE", "/issues/1/labels/a").json] == ["b"]
    assert gh.repo("DELETE", "/issues/1/labels/a").status == 404
    assert [p["labels"][0]["name"] for p in gh.repo("GET", "/pulls").json] == ["b"]


def test_read_user_may_open_issues_but_labels_are_dropped(sandbox: Sandbox) -> None:
    bob = Client(sandbox, sandbox.users["bob"]["token"])
    resp = bob.repo("POST", "/issues", {"title": "hi", "labels": ["x"]})
    assert resp.status == 201
    assert resp.json["labels"] == []


@pytest.mark.parametrize("method", ["merge", "squash", "rebase"])
def test_merged_pr_closes_and_reports_merge_commit_sha(
    gh: Client, sandbox: Sandbox, method: str
) -> None:
    assert gh.repo("PUT", "/pulls/1/merge", {"merge_method": method}).status == 200
    pr = gh.repo("GET", "/pulls/1").json
    assert pr["state"] == "closed"
    assert pr["merged"]
    assert pr["merge_commit_sha"] == bare(sandbox, "rev-parse", "dev")
    issue = gh.repo("GET", "/issues/1").json
    assert issue["state"] == "closed"
    assert issue["pull_request"]["merged_at"] == pr["merged_at"]
