"""Refs, commits, compare, contents and the git data API, all backed by a real bare repository."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from promote_sandbox import Sandbox
from tests.sandbox.conftest import Client
from tests.sandbox.conftest import bare


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_seeded_repository_has_env_branches_plan_and_feature(sandbox: Sandbox) -> None:
    heads = {b: bare(sandbox, "rev-parse", f"refs/heads/{b}") for b in ("main", "test", "dev")}
    assert len(set(heads.values())) == 1
    files = bare(sandbox, "ls-tree", "-r", "--name-only", "main").splitlines()
    for path in (
        "README.md",
        "app.txt",
        "promote.toml",
        ".github/workflows/deploy.yml",
        ".github/workflows/smoke.yml",
        ".github/promote/manual-test.md",
        "plans/doing/add-greeting.md",
    ):
        assert path in files
    plan = bare(sandbox, "show", "main:plans/doing/add-greeting.md")
    assert plan.startswith(
        "---\nid: add-greeting\ntitle: Add a greeting to the app\npriority: 2\n---\n"
    )
    assert 'reviewers = ["rita"]' in bare(sandbox, "show", "main:promote.toml")
    assert "- [ ]" in bare(sandbox, "show", "main:.github/promote/manual-test.md")
    feature = bare(sandbox, "rev-parse", "refs/heads/feature/add-greeting")
    assert bare(sandbox, "rev-parse", f"{feature}^") == heads["dev"]
    assert bare(sandbox, "diff", "--name-only", heads["dev"], feature) == "app.txt"


def test_clone_is_a_normal_checkout_with_origin(sandbox: Sandbox) -> None:
    clone = sandbox.clone_path
    assert git(clone, "remote", "get-url", "origin") == str(sandbox.bare_path)
    assert git(clone, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert (clone / "app.txt").read_text() == "shop v1\n"
    branches = git(clone, "branch", "-r")
    assert "origin/dev" in branches
    assert "origin/feature/add-greeting" in branches
    assert git(clone, "config", "user.name") == "Alice Author"


def test_get_ref_singular_accepts_raw_and_encoded_slashes(gh: Client, sandbox: Sandbox) -> None:
    raw = gh.repo("GET", "/git/ref/heads/feature/add-greeting")
    encoded = gh.repo("GET", "/git/ref/heads%2Ffeature%2Fadd-greeting")
    assert raw.status == encoded.status == 200
    assert raw.json == encoded.json
    assert raw.json["ref"] == "refs/heads/feature/add-greeting"
    assert raw.json["object"]["type"] == "commit"
    assert raw.json["object"]["sha"] == bare(sandbox, "rev-parse", "feature/add-greeting")
    assert gh.repo("GET", "/git/ref/heads/nope").status == 404


def test_matching_refs_and_legacy_refs(gh: Client) -> None:
    names = [r["ref"] for r in gh.repo("GET", "/git/matching-refs/heads/").json]
    assert names == sorted(names)
    assert {
        "refs/heads/dev",
        "refs/heads/test",
        "refs/heads/main",
        "refs/heads/feature/add-greeting",
    } <= set(names)
    assert not any(n.startswith("refs/pull/") for n in names)
    assert gh.repo("GET", "/git/matching-refs/heads/nomatch").json == []
    exact = gh.repo("GET", "/git/refs/heads/dev").json
    assert isinstance(exact, dict)
    assert exact["ref"] == "refs/heads/dev"
    under = gh.repo("GET", "/git/refs/heads/feature").json
    assert isinstance(under, list)
    assert under[0]["ref"] == "refs/heads/feature/add-greeting"


def test_create_ref_twice_is_422_reference_already_exists(gh: Client) -> None:
    sha = gh.repo("GET", "/git/ref/heads/main").json["object"]["sha"]
    created = gh.repo("POST", "/git/refs", {"ref": "refs/promote/locks/dev@abc", "sha": sha})
    assert created.status == 201
    assert created.json["ref"] == "refs/promote/locks/dev@abc"
    again = gh.repo("POST", "/git/refs", {"ref": "refs/promote/locks/dev@abc", "sha": sha})
    assert again.status == 422
    assert again.json["message"] == "Reference already exists"
    assert gh.repo("POST", "/git/refs", {"ref": "heads/x", "sha": sha}).status == 422
    for bad in ("refs/heads/a b", "refs/heads/a..b", "refs/heads/x.lock", "refs/heads/", "refs/x"):
        assert (
            gh.repo("POST", "/git/refs", {"ref": bad, "sha": sha}).json["message"]
            == f"{bad} is not a valid ref name."
        )
    assert gh.repo("POST", "/git/refs", {"ref": "refs/heads/x", "sha": "0" * 40}).status == 422
    assert gh.repo("DELETE", "/git/refs/promote/locks/dev@abc").status == 204
    assert gh.repo("DELETE", "/git/refs/promote/locks/dev@abc").status == 422


def test_update_ref_requires_fast_forward_unless_forced(gh: Client, sandbox: Sandbox) -> None:
    main = gh.repo("GET", "/git/ref/heads/main").json["object"]["sha"]
    feature = gh.repo("GET", "/git/ref/heads/feature/add-greeting").json["object"]["sha"]
    gh.repo("POST", "/git/refs", {"ref": "refs/heads/scratch", "sha": feature})
    back = gh.repo("PATCH", "/git/refs/heads/scratch", {"sha": main})
    assert back.status == 422
    assert back.json["message"] == "Update is not a fast forward"
    forced = gh.repo("PATCH", "/git/refs/heads%2Fscratch", {"sha": main, "force": True})
    assert forced.status == 200
    assert forced.json["object"]["sha"] == main
    forward = gh.repo("PATCH", "/git/refs/heads/scratch", {"sha": feature, "force": False})
    assert forward.status == 200
    assert bare(sandbox, "rev-parse", "refs/heads/scratch") == feature
    assert (
        gh.repo("PATCH", "/git/refs/heads/nope", {"sha": main}).json["message"]
        == "Reference does not exist"
    )


def test_commit_and_compare(gh: Client, sandbox: Sandbox) -> None:
    feature = bare(sandbox, "rev-parse", "feature/add-greeting")
    commit = gh.repo("GET", f"/commits/{feature}").json
    assert commit["sha"] == feature
    assert commit["files"][0]["filename"] == "app.txt"
    assert commit["files"][0]["status"] == "modified"
    assert commit["stats"] == {"total": 1, "additions": 1, "deletions": 0}
    assert commit["author"]["login"] == "alice"
    by_branch = gh.repo("GET", "/commits/feature/add-greeting").json
    assert by_branch["sha"] == feature
    ahead = gh.repo("GET", "/compare/dev...feature/add-greeting").json
    assert (ahead["status"], ahead["ahead_by"], ahead["behind_by"]) == ("ahead", 1, 0)
    assert [c["sha"] for c in ahead["commits"]] == [feature]
    behind = gh.repo("GET", "/compare/feature/add-greeting...dev").json
    assert (behind["status"], behind["ahead_by"], behind["behind_by"]) == ("behind", 0, 1)
    same = gh.repo("GET", "/compare/dev...main").json
    assert same["status"] == "identical"
    assert same["total_commits"] == 0
    assert gh.repo("GET", "/compare/dev...nope").status == 404
    listed = gh.repo("GET", "/commits?sha=feature/add-greeting").json
    assert [c["sha"] for c in listed][:1] == [feature]
    assert len(listed) == 2


def test_git_data_api_builds_commits_with_base_tree_and_deletions(
    gh: Client, sandbox: Sandbox
) -> None:
    dev = gh.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    base_tree = gh.repo("GET", f"/git/commits/{dev}").json["tree"]["sha"]
    blob = gh.repo(
        "POST", "/git/blobs", {"content": "---\nid: add-greeting\n---\n", "encoding": "utf-8"}
    )
    assert blob.status == 201
    got = gh.repo("GET", f"/git/blobs/{blob.json['sha']}").json
    assert base64.b64decode(got["content"]) == b"---\nid: add-greeting\n---\n"
    tree = gh.repo(
        "POST",
        "/git/trees",
        {
            "base_tree": base_tree,
            "tree": [
                {
                    "path": "plans/done/add-greeting.md",
                    "mode": "100644",
                    "type": "blob",
                    "sha": blob.json["sha"],
                },
                {
                    "path": "plans/doing/add-greeting.md",
                    "mode": "100644",
                    "type": "blob",
                    "sha": None,
                },
            ],
        },
    )
    assert tree.status == 201
    commit = gh.repo(
        "POST",
        "/git/commits",
        {"message": "Complete plan add-greeting", "tree": tree.json["sha"], "parents": [dev]},
    )
    assert commit.status == 201
    assert commit.json["author"]["name"] == "Alice Author"
    assert gh.repo("PATCH", "/git/refs/heads/dev", {"sha": commit.json["sha"]}).status == 200
    files = bare(sandbox, "ls-tree", "-r", "--name-only", "dev").splitlines()
    assert "plans/done/add-greeting.md" in files
    assert "plans/doing/add-greeting.md" not in files
    assert "app.txt" in files
    recursive = gh.repo("GET", f"/git/trees/{tree.json['sha']}?recursive=1").json
    assert any(e["path"] == "plans/done/add-greeting.md" for e in recursive["tree"])
    flat = gh.repo("GET", f"/git/trees/{tree.json['sha']}").json
    assert all("/" not in e["path"] for e in flat["tree"])


def test_contents_get_put_delete_with_sha_conflicts(gh: Client, sandbox: Sandbox) -> None:
    got = gh.repo("GET", "/contents/plans/doing/add-greeting.md?ref=dev").json
    assert got["type"] == "file"
    assert got["encoding"] == "base64"
    assert base64.b64decode(got["content"]).startswith(b"---\nid: add-greeting")
    listing = gh.repo("GET", "/contents/plans/doing").json
    assert [e["name"] for e in listing] == ["add-greeting.md"]
    root = gh.repo("GET", "/contents/").json
    assert {"README.md", "plans", ".github"} <= {e["name"] for e in root}
    assert gh.repo("GET", "/contents/nope.md").status == 404
    new = base64.b64encode(b"---\nid: fix-dev\ntitle: Fix dev\npriority: 0\n---\n").decode()
    created = gh.repo(
        "PUT",
        "/contents/plans/inbox/fix-dev.md",
        {"message": "Add fix plan", "content": new, "branch": "dev"},
    )
    assert created.status == 201
    assert created.json["content"]["path"] == "plans/inbox/fix-dev.md"
    assert bare(sandbox, "show", "dev:plans/inbox/fix-dev.md").startswith("---\nid: fix-dev")
    no_sha = gh.repo(
        "PUT", "/contents/plans/inbox/fix-dev.md", {"message": "x", "content": new, "branch": "dev"}
    )
    assert no_sha.status == 422
    wrong = gh.repo(
        "PUT",
        "/contents/plans/inbox/fix-dev.md",
        {"message": "x", "content": new, "branch": "dev", "sha": got["sha"]},
    )
    assert wrong.status == 409
    sha = created.json["content"]["sha"]
    updated = gh.repo(
        "PUT",
        "/contents/plans/inbox/fix-dev.md",
        {"message": "Edit", "content": new + "eA==", "branch": "dev", "sha": sha},
    )
    assert updated.status in (200, 409, 422)
    gone = gh.repo(
        "DELETE",
        "/contents/plans/inbox/fix-dev.md",
        {"message": "Drop", "sha": sha, "branch": "dev"},
    )
    assert gone.status == 200
    assert gone.json["content"] is None
    assert "plans/inbox/fix-dev.md" not in bare(sandbox, "ls-tree", "-r", "--name-only", "dev")
    assert (
        gh.repo(
            "DELETE",
            "/contents/plans/inbox/fix-dev.md",
            {"message": "Drop", "sha": sha, "branch": "dev"},
        ).status
        == 404
    )


def test_a_push_from_the_clone_is_seen_by_the_api(gh: Client, sandbox: Sandbox) -> None:
    clone = sandbox.clone_path
    git(clone, "checkout", "-q", "-b", "feature/other", "origin/dev")
    (clone / "other.txt").write_text("other\n")
    git(clone, "add", "other.txt")
    git(clone, "commit", "-q", "-m", "Other change")
    git(clone, "push", "-q", "origin", "feature/other")
    sha = git(clone, "rev-parse", "HEAD")
    assert gh.repo("GET", "/git/ref/heads/feature/other").json["object"]["sha"] == sha
    assert gh.repo("GET", "/branches/feature/other").json["commit"]["sha"] == sha


def test_combined_status_is_pending_with_no_statuses_and_latest_per_context(
    gh: Client, sandbox: Sandbox
) -> None:
    feature = bare(sandbox, "rev-parse", "feature/add-greeting")
    empty = gh.repo("GET", f"/commits/{feature}/status").json
    assert (empty["state"], empty["total_count"], empty["statuses"]) == ("pending", 0, [])
    gh.repo("POST", f"/statuses/{feature}", {"state": "failure", "context": "promote/gate"})
    gh.repo("POST", f"/statuses/{feature}", {"state": "success", "context": "Promote/Gate"})
    combined = gh.repo("GET", "/commits/feature/add-greeting/status").json
    assert combined["state"] == "success"
    assert [s["context"] for s in combined["statuses"]] == ["Promote/Gate"]
    assert len(gh.repo("GET", f"/commits/{feature}/statuses").json) == 2
    assert gh.repo("POST", "/statuses/dev", {"state": "success"}).status == 422
    assert gh.repo("POST", f"/statuses/{feature}", {"state": "done"}).status == 422
    too_long = gh.repo(
        "POST", f"/statuses/{feature}", {"state": "success", "description": "x" * 141}
    )
    assert too_long.status == 422


def test_git_commit_takes_author_and_date(gh: Client) -> None:
    dev = gh.repo("GET", "/git/ref/heads/dev").json["object"]["sha"]
    tree = gh.repo("GET", f"/git/commits/{dev}").json["tree"]["sha"]
    made = gh.repo(
        "POST",
        "/git/commits",
        {
            "message": "Dated",
            "tree": tree,
            "parents": [dev],
            "author": {
                "name": "Promote Bot",
                "email": "bot@example.com",
                "date": "2026-01-02T03:04:05Z",
            },
        },
    ).json
    assert made["author"] == {
        "name": "Promote Bot",
        "email": "bot@example.com",
        "date": "2026-01-02T03:04:05Z",
    }
    assert made["committer"]["name"] == "Promote Bot"
    bad = gh.repo(
        "POST", "/git/commits", {"message": "x", "tree": tree, "author": {"date": "yesterday"}}
    )
    assert bad.status == 422
    assert gh.repo("POST", "/git/commits", {"message": "x", "tree": "f" * 40}).status == 422
