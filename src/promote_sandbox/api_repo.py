"""Repository, users, refs, commits, commit statuses, contents and the git data API."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import UTC
from datetime import datetime
from typing import Any

from promote_sandbox.apibase import HEX
from promote_sandbox.apibase import REPO
from promote_sandbox.apibase import Base
from promote_sandbox.gitrepo import ZERO_SHA
from promote_sandbox.gitrepo import Ident
from promote_sandbox.gitrepo import TreeEntry
from promote_sandbox.server import ApiError
from promote_sandbox.server import Reply
from promote_sandbox.server import Request
from promote_sandbox.server import Router
from promote_sandbox.server import invalid
from promote_sandbox.server import not_found
from promote_sandbox.server import paginate
from promote_sandbox.shapes import node_id
from promote_sandbox.shapes import wrap_base64
from promote_sandbox.store import BOT_LOGIN
from promote_sandbox.store import CommitStatus

STATUS_STATES = ("error", "failure", "pending", "success")
MODES = {"100644": "blob", "100755": "blob", "040000": "tree", "160000": "commit", "120000": "blob"}


TREE_LIMIT = 100_000  #: entries of a recursive tree before GitHub cuts it short (truncated)


class RepoApi(Base):
    def register(self, r: Router) -> None:
        r.add("GET", "/user", self.get_user)
        r.add("GET", "/users/{username}", self.get_public_user)
        r.add("GET", "/rate_limit", self.rate_limit)
        r.add("GET", REPO, self.get_repo)
        r.add("GET", f"{REPO}/branches", self.list_branches)
        r.add("GET", f"{REPO}/branches/{{branch:path}}", self.get_branch)
        r.add("GET", f"{REPO}/collaborators/{{username}}/permission", self.permission)
        r.add("POST", f"{REPO}/rulesets", self.create_ruleset)
        r.add("GET", f"{REPO}/rules/branches/{{branch:path}}", self.branch_rules)
        r.add("GET", f"{REPO}/git/ref/{{ref:path}}", self.get_ref)
        r.add("GET", f"{REPO}/git/matching-refs/", self.matching_refs)
        r.add("GET", f"{REPO}/git/matching-refs/{{ref:path}}", self.matching_refs)
        r.add("GET", f"{REPO}/git/refs", self.legacy_refs)
        r.add("GET", f"{REPO}/git/refs/{{ref:path}}", self.legacy_refs)
        r.add("POST", f"{REPO}/git/refs", self.create_ref)
        r.add("PATCH", f"{REPO}/git/refs/{{ref:path}}", self.update_ref)
        r.add("DELETE", f"{REPO}/git/refs/{{ref:path}}", self.delete_ref)
        r.add("POST", f"{REPO}/git/blobs", self.create_blob)
        r.add("GET", f"{REPO}/git/blobs/{{sha}}", self.get_blob)
        r.add("POST", f"{REPO}/git/trees", self.create_tree)
        r.add("GET", f"{REPO}/git/trees/{{sha}}", self.get_tree)
        r.add("POST", f"{REPO}/git/commits", self.create_git_commit)
        r.add("GET", f"{REPO}/git/commits/{{sha}}", self.get_git_commit)
        r.add("GET", f"{REPO}/commits", self.list_commits)
        r.add("GET", f"{REPO}/commits/{{ref:path}}/status", self.combined_status)
        r.add("GET", f"{REPO}/commits/{{ref:path}}/statuses", self.list_statuses)
        r.add("GET", f"{REPO}/commits/{{ref:path}}/pulls", self.commit_pulls)
        r.add("GET", f"{REPO}/commits/{{ref:path}}", self.get_commit)
        r.add("GET", f"{REPO}/compare/{{basehead:path}}", self.compare)
        r.add("POST", f"{REPO}/statuses/{{sha}}", self.create_status)
        r.add("GET", f"{REPO}/contents", self.get_contents)
        r.add("GET", f"{REPO}/contents/", self.get_contents)
        r.add("GET", f"{REPO}/contents/{{path:path}}", self.get_contents)
        r.add("PUT", f"{REPO}/contents/{{path:path}}", self.put_contents)
        r.add("DELETE", f"{REPO}/contents/{{path:path}}", self.delete_contents)

    # -- users and repository ----------------------------------------------------------------

    def get_user(self, req: Request) -> Reply:
        if req.login == BOT_LOGIN:  # a GITHUB_TOKEN is an installation token, not a user's
            raise ApiError(403, "Resource not accessible by integration")
        return Reply(200, self.shapes.private_user(req.login))

    def get_public_user(self, req: Request) -> Reply:
        login = req.params["username"]
        if login not in self.store.users:
            raise not_found()
        data = self.shapes.private_user(login)
        for key in (
            "private_gists",
            "total_private_repos",
            "owned_private_repos",
            "disk_usage",
            "collaborators",
            "two_factor_authentication",
            "plan",
            "notification_email",
        ):
            data.pop(key, None)
        return Reply(200, data)

    def rate_limit(self, req: Request) -> Reply:
        now = int(time.time())
        core = {"limit": 5000, "used": 0, "remaining": 5000, "reset": now + 3600}
        search = {"limit": 30, "used": 0, "remaining": 30, "reset": now + 60}
        graphql = {"limit": 5000, "used": 0, "remaining": 5000, "reset": now + 3600}
        return Reply(
            200, {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core}
        )

    def get_repo(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(200, self.shapes.full_repository(req.login))

    def list_branches(self, req: Request) -> Reply:
        self.check_repo(req)
        refs = self.store.repo.refs("refs/heads/")
        items = [
            self.shapes.short_branch(name[len("refs/heads/") :], sha)
            for name, sha in sorted(refs.items())
        ]
        if req.q("protected") is not None and req.qbool("protected"):
            items = []
        return paginate(req, items)

    def get_branch(self, req: Request) -> Reply:
        self.check_repo(req)
        name = req.params["branch"]
        sha = self.store.branch_sha(name)
        if sha is None:
            raise ApiError(404, "Branch not found")
        return Reply(200, self.shapes.branch(name, sha))

    def permission(self, req: Request) -> Reply:
        self.check_repo(req)
        login = req.params["username"]
        user = self.store.users.get(login)
        if user is None or user.type != "User":
            raise ApiError(404, f"{login} is not a user")
        role = user.role
        permission = {"maintain": "write", "triage": "read"}.get(role, role)
        collaborator = self.shapes.user(login)
        assert collaborator is not None
        collaborator["permissions"] = {
            "admin": role == "admin",
            "maintain": role in ("admin", "maintain"),
            "push": role in ("admin", "maintain", "write"),
            "triage": role != "read",
            "pull": True,
        }
        collaborator["role_name"] = role
        return Reply(200, {"permission": permission, "role_name": role, "user": collaborator})

    # -- rulesets (branch rules: a pull request required, required status checks) -----------

    RULE_TYPES = ("pull_request", "required_status_checks", "deletion", "non_fast_forward")

    def create_ruleset(self, req: Request) -> Reply:
        self.check_repo(req)
        if self.store.users[req.login].role != "admin":
            raise ApiError(403, "Must have admin rights to Repository.")
        body = self.body(req)
        name = self.text(req, "name", "Ruleset", required=True)
        include = ((body.get("conditions") or {}).get("ref_name") or {}).get("include")
        rules = body.get("rules") or []
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise invalid("Ruleset", "conditions", "invalid")
        if not isinstance(rules, list) or any(
            not isinstance(r, dict) or r.get("type") not in self.RULE_TYPES for r in rules
        ):
            raise invalid("Ruleset", "rules", "invalid")
        enforcement = body.get("enforcement", "disabled")
        if enforcement not in ("disabled", "active", "evaluate"):
            raise invalid("Ruleset", "enforcement", "invalid")
        with self.store.lock:
            ruleset_id = self.store.new_id()
            self.store.rulesets[ruleset_id] = {
                "id": ruleset_id, "name": name, "target": "branch", "enforcement": enforcement,
                "include": list(include), "rules": [dict(r) for r in rules],
            }  # fmt: skip
        return Reply(201, self._ruleset_json(self.store.rulesets[ruleset_id]))

    def _ruleset_json(self, ruleset: dict[str, Any]) -> dict[str, Any]:
        source = f"{self.store.owner}/{self.store.name}"
        return {
            "id": ruleset["id"], "name": ruleset["name"], "target": "branch",
            "source_type": "Repository", "source": source,
            "enforcement": ruleset["enforcement"], "bypass_actors": [],
            "conditions": {"ref_name": {"include": ruleset["include"], "exclude": []}},
            "rules": ruleset["rules"], "node_id": node_id("RRS", ruleset["id"]),
        }  # fmt: skip

    def _applies(self, ruleset: dict[str, Any], branch: str) -> bool:
        names = {f"refs/heads/{branch}", "~ALL"}
        if branch == self.store.default_branch:
            names.add("~DEFAULT_BRANCH")
        return ruleset["enforcement"] == "active" and bool(names & set(ruleset["include"]))

    def branch_rules(self, req: Request) -> Reply:
        """Every active rule that applies to the branch (which need not exist), as GitHub
        lists them: one entry per rule, naming the ruleset it came from."""
        self.check_repo(req)
        branch = req.params["branch"]
        found = []
        for ruleset in self.store.rulesets.values():
            if not self._applies(ruleset, branch):
                continue
            for rule in ruleset["rules"]:
                entry = {"type": rule["type"]}
                if rule["type"] == "pull_request":
                    entry["parameters"] = {
                        "dismiss_stale_reviews_on_push": False,
                        "require_code_owner_review": False,
                        "require_last_push_approval": False,
                        "required_approving_review_count": 0,
                        "required_review_thread_resolution": False,
                        **(rule.get("parameters") or {}),
                    }
                elif rule["type"] == "required_status_checks":
                    entry["parameters"] = {
                        "strict_required_status_checks_policy": False,
                        "required_status_checks": [],
                        **(rule.get("parameters") or {}),
                    }
                entry.update(
                    ruleset_source_type="Repository",
                    ruleset_source=f"{self.store.owner}/{self.store.name}",
                    ruleset_id=ruleset["id"],
                )
                found.append(entry)
        return paginate(req, found)

    # -- refs --------------------------------------------------------------------------------

    def _ref_json(self, ref: str, sha: str) -> dict[str, Any]:
        return self.shapes.git_ref(ref, sha)

    def _visible_refs(self, prefix: str) -> list[tuple[str, str]]:
        refs = self.store.repo.refs("refs/")
        return [
            (name, sha)
            for name, sha in sorted(refs.items())
            if name.startswith(prefix) and not name.startswith("refs/pull/")
        ]

    def get_ref(self, req: Request) -> Reply:
        self.check_repo(req)
        name = "refs/" + req.params["ref"].removeprefix("refs/")
        sha = self.store.repo.refs(name).get(name)
        if sha is None:
            raise not_found()
        return Reply(200, self._ref_json(name, sha))

    def matching_refs(self, req: Request) -> Reply:
        self.check_repo(req)
        prefix = "refs/" + req.params.get("ref", "").removeprefix("refs/")
        return paginate(req, [self._ref_json(n, s) for n, s in self._visible_refs(prefix)])

    def legacy_refs(self, req: Request) -> Reply:
        """``GET git/refs/{ref}``: the ref when it names one exactly, else the refs under it."""
        self.check_repo(req)
        tail = req.params.get("ref", "").removeprefix("refs/")
        name = f"refs/{tail}"
        found = self._visible_refs(name)
        exact = [pair for pair in found if pair[0] == name]
        if exact:
            return Reply(200, self._ref_json(*exact[0]))
        under = [pair for pair in found if pair[0].startswith(name.rstrip("/") + "/") or not tail]
        if not under:
            raise not_found()
        return paginate(req, [self._ref_json(n, s) for n, s in under])

    def create_ref(self, req: Request) -> Reply:
        self.check_repo(req)
        ref = self.text(req, "ref", "Reference", required=True) or ""
        sha = self.text(req, "sha", "Reference", required=True) or ""
        if not _valid_ref_name(ref):
            raise ApiError(422, f"{ref} is not a valid ref name.")
        full = self.store.repo.full_sha(sha, "object") if HEX.match(sha) else None
        if full is None:
            raise ApiError(422, "Object does not exist")
        if not self.store.move_ref(ref, full, ZERO_SHA, req.login):
            raise ApiError(422, "Reference already exists")
        reply = Reply(201, self._ref_json(ref, full))
        reply.headers["Location"] = f"{self.shapes.api}/git/{ref}"
        return reply

    def update_ref(self, req: Request) -> Reply:
        self.check_repo(req)
        name = "refs/" + req.params["ref"].removeprefix("refs/")
        sha = self.text(req, "sha", "Reference", required=True) or ""
        force = self.flag(req, "force", False)
        repo = self.store.repo
        current = repo.refs(name).get(name)
        if current is None:
            raise ApiError(422, "Reference does not exist")
        new = repo.full_sha(sha, "commit") if HEX.match(sha) else None
        if new is None:
            raise ApiError(422, "Object does not exist")
        if not force and current != new and not repo.is_ancestor(current, new):
            raise ApiError(422, "Update is not a fast forward")
        if current != new and not self.store.move_ref(name, new, current, req.login):
            raise ApiError(409, "Reference cannot be updated")
        return Reply(200, self._ref_json(name, new))

    def delete_ref(self, req: Request) -> Reply:
        self.check_repo(req)
        name = "refs/" + req.params["ref"].removeprefix("refs/")
        if self.store.repo.refs(name).get(name) is None or not self.store.repo.delete_ref(name):
            raise ApiError(422, "Reference does not exist")
        self.store.known_refs.pop(name, None)
        return Reply(204)

    # -- git data ----------------------------------------------------------------------------

    def create_blob(self, req: Request) -> Reply:
        self.check_repo(req)
        content = self.text(req, "content", "Blob", required=True) or ""
        encoding = self.text(req, "encoding", "Blob") or "utf-8"
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=False)
            except (binascii.Error, ValueError):
                raise invalid("Blob", "content") from None
        elif encoding in ("utf-8", "utf8"):
            data = content.encode()
        else:
            raise ApiError(422, f"encoding must be one of utf-8 or base64, not {encoding}")
        sha = self.store.repo.hash_blob(data)
        reply = Reply(201, {"sha": sha, "url": f"{self.shapes.api}/git/blobs/{sha}"})
        reply.headers["Location"] = f"{self.shapes.api}/git/blobs/{sha}"
        return reply

    def get_blob(self, req: Request) -> Reply:
        self.check_repo(req)
        sha = req.params["sha"]
        full = self.store.repo.full_sha(sha, "blob") if HEX.match(sha) else None
        if full is None:
            raise not_found()
        data = self.store.repo.read_blob(full)
        return Reply(
            200,
            {
                "sha": full,
                "node_id": node_id("B", int(full[:12], 16)),
                "size": len(data),
                "url": f"{self.shapes.api}/git/blobs/{full}",
                "content": wrap_base64(data),
                "encoding": "base64",
            },
        )

    def _tree_json(self, sha: str, *, recursive: bool) -> dict[str, Any]:
        api = self.shapes.api
        entries = self.store.repo.ls_tree(sha, recursive=recursive, with_trees=True)
        items = []
        for e in entries:
            item: dict[str, Any] = {"path": e.path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                item["size"] = e.size or 0
                item["url"] = f"{api}/git/blobs/{e.sha}"
            elif e.type == "tree":
                item["url"] = f"{api}/git/trees/{e.sha}"
            items.append(item)
        cut = recursive and len(items) > TREE_LIMIT  # GitHub's limit on a recursive tree
        return {
            "sha": sha,
            "url": f"{api}/git/trees/{sha}",
            "tree": items[:TREE_LIMIT] if cut else items,
            "truncated": cut,
        }

    def create_tree(self, req: Request) -> Reply:
        self.check_repo(req)
        body = self.body(req)
        entries = body.get("tree")
        if not isinstance(entries, list):
            raise invalid("Tree", "tree", "missing_field")
        repo = self.store.repo
        base_tree = body.get("base_tree")
        if base_tree is not None:
            base_sha = repo.full_sha(str(base_tree), "tree") if HEX.match(str(base_tree)) else None
            if base_sha is None:
                raise ApiError(422, "base_tree is not a valid tree oid")
            base_tree = base_sha
        edits: dict[str, TreeEntry | None] = {}
        for raw in entries:
            if not isinstance(raw, dict) or not isinstance(raw.get("path"), str):
                raise ApiError(422, "Must supply a valid tree.path")
            path = raw["path"].strip("/")
            mode = str(raw.get("mode", "100644"))
            kind = str(raw.get("type", MODES.get(mode, "blob")))
            if mode not in MODES or MODES[mode] != kind:
                raise ApiError(422, f"tree.mode {mode} is not valid for tree.type {kind}")
            if "content" in raw and raw["content"] is not None:
                if kind != "blob":
                    raise ApiError(422, "tree.content can only be used with blobs")
                sha = repo.hash_blob(str(raw["content"]).encode())
            elif "sha" in raw and raw["sha"] is None:
                edits[path] = None
                continue
            else:
                given = str(raw.get("sha") or "")
                sha = ""
                if kind == "commit":
                    sha = given if len(given) == 40 and HEX.match(given) else ""
                elif HEX.match(given):
                    sha = repo.full_sha(given, kind) or ""
                if not sha:
                    raise ApiError(422, f"tree.sha {given} is not a valid {kind}")
            edits[path] = TreeEntry(mode, kind, sha, None, path)
        if base_tree is None:
            tree = repo.build_tree(None, edits)
        else:
            tree = repo.build_tree(str(base_tree), edits)
        reply = Reply(201, self._tree_json(tree, recursive=False))
        reply.headers["Location"] = f"{self.shapes.api}/git/trees/{tree}"
        return reply

    def get_tree(self, req: Request) -> Reply:
        self.check_repo(req)
        given = req.params["sha"]
        repo = self.store.repo
        sha = repo.full_sha(given, "tree") if HEX.match(given) else None
        if sha is None:
            commit = self.resolve(given)
            sha = repo.commit(commit).tree if commit else None
        if sha is None:
            raise not_found()
        recursive = req.q("recursive") not in (None, "0", "false", "False")
        return Reply(200, self._tree_json(sha, recursive=recursive))

    def _ident(self, value: Any, fallback: Ident) -> Ident:
        if not isinstance(value, dict):
            return fallback
        when = fallback.when
        date = value.get("date")
        if isinstance(date, str) and date:
            try:
                parsed = datetime.fromisoformat(date.replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(422, f"date {date} is not a valid ISO 8601 timestamp") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            when = int(parsed.timestamp())
        name = str(value.get("name") or fallback.name)
        return Ident(name, str(value.get("email") or fallback.email), when)

    def create_git_commit(self, req: Request) -> Reply:
        self.check_repo(req)
        body = self.body(req)
        message = self.text(req, "message", "Commit", required=True) or ""
        tree = self.text(req, "tree", "Commit", required=True) or ""
        repo = self.store.repo
        tree_sha = repo.full_sha(tree, "tree") if HEX.match(tree) else None
        if tree_sha is None:
            raise ApiError(422, "Tree SHA does not exist")
        parents = body.get("parents") or []
        if not isinstance(parents, list):
            raise invalid("Commit", "parents")
        full_parents = []
        for parent in parents:
            sha = repo.full_sha(str(parent), "commit") if HEX.match(str(parent)) else None
            if sha is None:
                raise ApiError(422, "Parent SHA does not exist or is not a commit object")
            full_parents.append(sha)
        me = self.store.ident(req.login)
        author = self._ident(body.get("author"), me)
        committer = self._ident(body.get("committer"), author)
        sha = repo.commit_tree(tree_sha, full_parents, message, author, committer)
        reply = Reply(201, self.shapes.git_commit(repo.commit(sha)))
        reply.headers["Location"] = f"{self.shapes.api}/git/commits/{sha}"
        return reply

    def get_git_commit(self, req: Request) -> Reply:
        self.check_repo(req)
        given = req.params["sha"]
        sha = self.store.repo.full_sha(given, "commit") if HEX.match(given) else None
        if sha is None:
            raise not_found()
        return Reply(200, self.shapes.git_commit(self.store.repo.commit(sha)))

    # -- commits -----------------------------------------------------------------------------

    def list_commits(self, req: Request) -> Reply:
        self.check_repo(req)
        start = req.q("sha") or self.store.default_branch
        sha = self.resolve(start)
        if sha is None:
            raise ApiError(404, f"No commit found for SHA: {start}")
        shas = self.store.repo.history(sha, req.q("path") or None)
        per_page = min(max(req.qint("per_page", 30), 1), 100)
        page = max(req.qint("page", 1), 1)
        window = shas[(page - 1) * per_page : page * per_page]
        reply = paginate(req, shas)
        reply.body = [self.shapes.commit(self.store.repo.commit(s)) for s in window]
        return reply

    def get_commit(self, req: Request) -> Reply:
        self.check_repo(req)
        ref = req.params["ref"]
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        info = self.store.repo.commit(sha)
        files = self.store.repo.changed_files(info.parents[0] if info.parents else None, sha)
        return Reply(200, self.shapes.commit(info, files=files))

    def compare(self, req: Request) -> Reply:
        self.check_repo(req)
        basehead = req.params["basehead"]
        if "..." in basehead:
            base_ref, head_ref = basehead.split("...", 1)
        elif ".." in basehead:
            base_ref, head_ref = basehead.split("..", 1)
        else:
            raise not_found()
        base_ref = base_ref.split(":", 1)[-1]
        head_ref = head_ref.split(":", 1)[-1]
        base = self.resolve(base_ref)
        head = self.resolve(head_ref)
        if base is None or head is None:
            raise not_found()
        repo = self.store.repo
        merge_base = repo.merge_base(base, head)
        if merge_base is None:
            raise ApiError(404, f"No common ancestor between {base_ref} and {head_ref}.")
        ahead = repo.rev_list(f"{merge_base}..{head}")
        behind = repo.rev_list(f"{merge_base}..{base}")
        if base == head:
            status = "identical"
        elif not behind:
            status = "ahead"
        elif not ahead:
            status = "behind"
        else:
            status = "diverged"
        commits = list(reversed(ahead))
        if "per_page" in req.query or "page" in req.query:
            per_page = min(max(req.qint("per_page", 250), 1), 100)
            page = max(req.qint("page", 1), 1)
            shown = commits[(page - 1) * per_page : page * per_page]
            headers = paginate(req, commits).headers
        else:
            shown = commits[-250:]
            headers = {}
        files = repo.changed_files(merge_base, head)
        s = self.shapes
        a = s.api
        data = {
            "url": f"{a}/compare/{basehead}",
            "html_url": f"{s.html}/compare/{basehead}",
            "permalink_url": f"{s.html}/compare/{self.store.owner}:{base[:7]}...{self.store.owner}:{head[:7]}",
            "diff_url": f"{s.html}/compare/{basehead}.diff",
            "patch_url": f"{s.html}/compare/{basehead}.patch",
            "base_commit": s.commit(repo.commit(base)),
            "merge_base_commit": s.commit(repo.commit(merge_base)),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": len(behind),
            "total_commits": len(ahead),
            "commits": [s.commit(repo.commit(c)) for c in shown],
            "files": [s.diff_entry(head, f) for f in files],
        }
        return Reply(200, data, headers)

    def commit_pulls(self, req: Request) -> Reply:
        """The merged pull request that introduced a commit; off the default branch, open ones too."""
        self.check_repo(req)
        ref = req.params["ref"]
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        numbers = set(self.store.commit_pulls.get(sha, set()))
        for issue in self.store.issues.values():
            pull = issue.pull
            if pull is not None and issue.state == "open" and sha in self.store.pull_commits(pull):
                numbers.add(issue.number)
        default_tip = self.store.branch_sha(self.store.default_branch)
        on_default = default_tip is not None and self.store.repo.is_ancestor(sha, default_tip)
        result = []
        for number in sorted(numbers, reverse=True):
            issue = self.store.issues[number]
            assert issue.pull is not None
            merged = issue.pull.merged_at is not None
            if merged or (not on_default and issue.state == "open"):
                result.append(self.shapes.pull_simple(issue))
        return paginate(req, result)

    # -- commit statuses ---------------------------------------------------------------------

    def create_status(self, req: Request) -> Reply:
        self.check_repo(req)
        given = req.params["sha"]
        sha = self.store.repo.full_sha(given, "commit") if HEX.match(given) else None
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {given}")
        state = self.text(req, "state", "Status", required=True)
        if state not in STATUS_STATES:
            raise invalid("Status", "state", "custom", message="state is not included in the list")
        description = self.text(req, "description", "Status")
        if description is not None and len(description) > 140:
            raise invalid(
                "Status",
                "description",
                "custom",
                message="description is too long (maximum is 140 characters)",
            )
        context = self.text(req, "context", "Status") or "default"
        target = self.text(req, "target_url", "Status")
        status = self.store.add_commit_status(sha, state, context, req.login, description, target)
        reply = Reply(201, self.shapes.status(status))
        reply.headers["Location"] = f"{self.shapes.api}/statuses/{sha}"
        return reply

    def _statuses_for(self, ref: str) -> tuple[str, list[CommitStatus]]:
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        found = [s for s in self.store.statuses.values() if s.sha == sha]
        found.sort(key=lambda s: s.id, reverse=True)
        return sha, found

    def list_statuses(self, req: Request) -> Reply:
        self.check_repo(req)
        _, found = self._statuses_for(req.params["ref"])
        return paginate(req, [self.shapes.status(s) for s in found])

    def combined_status(self, req: Request) -> Reply:
        self.check_repo(req)
        sha, found = self._statuses_for(req.params["ref"])
        latest: dict[str, CommitStatus] = {}
        for status in found:
            latest.setdefault(status.context.lower(), status)
        statuses = sorted(latest.values(), key=lambda s: s.id, reverse=True)
        states = {s.state for s in statuses}
        if states & {"error", "failure"}:
            state = "failure"
        elif not statuses or "pending" in states:
            state = "pending"
        else:
            state = "success"
        return Reply(200, self.shapes.combined_status(sha, statuses, state))

    # -- contents ----------------------------------------------------------------------------

    def get_contents(self, req: Request) -> Reply:
        self.check_repo(req)
        path = req.params.get("path", "").strip("/")
        ref = req.q("ref") or self.store.default_branch
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        repo = self.store.repo
        entry = repo.tree_entry(sha, path)
        if entry is None:
            raise not_found()
        s = self.shapes
        if entry.type == "tree":
            items = []
            for child in repo.ls_tree(entry.sha):
                child_path = f"{path}/{child.path}" if path else child.path
                kind = {"tree": "dir", "commit": "submodule"}.get(child.type, "file")
                if child.mode == "120000":
                    kind = "symlink"
                items.append(s.content_item(child_path, kind, child.sha, child.size or 0, ref))
            return Reply(200, items)
        if entry.type != "blob":
            raise not_found()
        return Reply(200, s.content_file(path, entry.sha, repo.read_blob(entry.sha), ref))

    def _branch_for_write(self, req: Request) -> tuple[str, str]:
        branch = self.text(req, "branch", "Content") or self.store.default_branch
        tip = self.store.branch_sha(branch)
        if tip is None:
            raise ApiError(404, f"Branch {branch} not found")
        return branch, tip

    def _commit_change(
        self, req: Request, branch: str, tip: str, path: str, entry: TreeEntry | None, message: str
    ) -> str:
        repo = self.store.repo
        body = self.body(req)
        me = self.store.ident(req.login)
        committer = self._ident(body.get("committer"), me)
        author = self._ident(body.get("author"), committer)
        tree = repo.build_tree(repo.commit(tip).tree, {path: entry})
        sha = repo.commit_tree(tree, [tip], message, author, committer)
        if not self.store.move_ref(f"refs/heads/{branch}", sha, tip, req.login):
            raise ApiError(
                409, f"{branch} was updated while the file was being committed; try again"
            )
        return sha

    def put_contents(self, req: Request) -> Reply:
        self.check_repo(req)
        path = req.params["path"].strip("/")
        message = self.text(req, "message", "Content", required=True) or ""
        content = self.text(req, "content", "Content", required=True) or ""
        given_sha = self.text(req, "sha", "Content")
        branch, tip = self._branch_for_write(req)
        repo = self.store.repo
        existing = repo.tree_entry(tip, path)
        if existing is not None and existing.type == "tree":
            raise ApiError(422, f'Invalid request.\n\n"{path}" is a directory.')
        if existing is not None:
            if given_sha is None:
                raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
            if given_sha != existing.sha:
                raise ApiError(409, f"{path} does not match {given_sha}")
        try:
            data = base64.b64decode(content, validate=False)
        except (binascii.Error, ValueError):
            raise ApiError(422, "content is not valid Base64") from None
        blob = repo.hash_blob(data)
        sha = self._commit_change(
            req, branch, tip, path, TreeEntry("100644", "blob", blob, None, path), message
        )
        item = self.shapes.content_item(path, "file", blob, len(data), branch)
        return Reply(
            201 if existing is None else 200, self.shapes.file_commit(item, repo.commit(sha))
        )

    def delete_contents(self, req: Request) -> Reply:
        self.check_repo(req)
        path = req.params["path"].strip("/")
        message = self.text(req, "message", "Content", required=True) or ""
        given_sha = self.text(req, "sha", "Content", required=True) or ""
        branch, tip = self._branch_for_write(req)
        existing = self.store.repo.tree_entry(tip, path)
        if existing is None or existing.type != "blob":
            raise not_found()
        if given_sha != existing.sha:
            raise ApiError(409, f"{path} does not match {given_sha}")
        sha = self._commit_change(req, branch, tip, path, None, message)
        return Reply(200, self.shapes.file_commit(None, self.store.repo.commit(sha)))


def _valid_ref_name(ref: str) -> bool:
    """git's check-ref-format rules, plus GitHub's ``refs/<kind>/<name>`` shape."""
    if not ref.startswith("refs/") or ref.count("/") < 2:
        return False
    if any(c in ref for c in " ~^:?*[\\\x7f") or any(ord(c) < 32 for c in ref):
        return False
    if ".." in ref or "@{" in ref or "//" in ref or ref.endswith(("/", ".", ".lock")):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in ref.split("/"))
