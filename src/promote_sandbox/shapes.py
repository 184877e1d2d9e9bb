"""JSON shapes of GitHub's REST objects, built from sandbox state.

Each function returns exactly the keys GitHub's published model has (the fidelity tests compare
key sets), with URLs rooted at the sandbox's own base URL.
"""

from __future__ import annotations

import base64
from typing import Any

from promote_sandbox.gitrepo import CommitInfo
from promote_sandbox.gitrepo import FileChange
from promote_sandbox.gitrepo import Ident
from promote_sandbox.store import CheckRun
from promote_sandbox.store import CheckSuite
from promote_sandbox.store import Comment
from promote_sandbox.store import CommitStatus
from promote_sandbox.store import Deployment
from promote_sandbox.store import DeploymentStatus
from promote_sandbox.store import Environment
from promote_sandbox.store import Issue
from promote_sandbox.store import Job
from promote_sandbox.store import Label
from promote_sandbox.store import Review
from promote_sandbox.store import Run
from promote_sandbox.store import Store
from promote_sandbox.store import User
from promote_sandbox.store import Workflow
from promote_sandbox.store import iso

JSON = dict[str, Any]

ACTIONS_APP_ID = 15368
MONITOR_APP_ID = 900001


def node_id(prefix: str, number: int) -> str:
    """An opaque global id in GitHub's style (prefix, underscore, base64 of the database id)."""
    raw = base64.b64encode(f"0:{number}".encode()).decode().rstrip("=")
    return f"{prefix}_kw{raw}"


class Shapes:
    """Renders store objects; one instance per sandbox (it knows the base URL)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def base(self) -> str:
        return self.store.base_url

    @property
    def api(self) -> str:
        return f"{self.base}/repos/{self.store.owner}/{self.store.name}"

    @property
    def html(self) -> str:
        return f"{self.base}/{self.store.owner}/{self.store.name}"

    # -- people and apps ---------------------------------------------------------------------

    def user(self, login: str | None) -> JSON | None:
        if login is None:
            return None
        u = self.store.users.get(login)
        if u is None:
            return None
        return self._user_fields(u)

    def _user_fields(self, u: User) -> JSON:
        bot = u.type != "User"
        b = self.base
        html = f"{b}/apps/github-actions" if bot else f"{b}/{u.login}"
        return self._account(u.login, u.id, "BOT" if bot else "U", html, u.type)

    def _account(self, login: str, uid: int, prefix: str, html_url: str, kind: str) -> JSON:
        """GitHub's ``simple-user`` model, for a person, a bot or an organization."""
        b = self.base
        return {
            "login": login,
            "id": uid,
            "node_id": node_id(prefix, uid),
            "avatar_url": f"{b}/avatars/u/{uid}?v=4",
            "gravatar_id": "",
            "url": f"{b}/users/{login}",
            "html_url": html_url,
            "followers_url": f"{b}/users/{login}/followers",
            "following_url": f"{b}/users/{login}/following{{/other_user}}",
            "gists_url": f"{b}/users/{login}/gists{{/gist_id}}",
            "starred_url": f"{b}/users/{login}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{b}/users/{login}/subscriptions",
            "organizations_url": f"{b}/users/{login}/orgs",
            "repos_url": f"{b}/users/{login}/repos",
            "events_url": f"{b}/users/{login}/events{{/privacy}}",
            "received_events_url": f"{b}/users/{login}/received_events",
            "type": kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def owner(self) -> JSON:
        login = self.store.owner
        return self._account(login, 4000001, "O", f"{self.base}/{login}", "Organization")

    def private_user(self, login: str) -> JSON:
        u = self.store.users[login]
        data = self._user_fields(u)
        created = iso(u.created_at)
        data.update(
            {
                "name": u.name,
                "company": None,
                "blog": "",
                "location": None,
                "email": u.email,
                "hireable": None,
                "bio": None,
                "twitter_username": None,
                "notification_email": u.email,
                "public_repos": 0,
                "public_gists": 0,
                "followers": 0,
                "following": 0,
                "created_at": created,
                "updated_at": created,
                "private_gists": 0,
                "total_private_repos": 1,
                "owned_private_repos": 0,
                "disk_usage": 0,
                "collaborators": 0,
                "two_factor_authentication": True,
                "plan": {
                    "name": "free",
                    "space": 976562499,
                    "collaborators": 0,
                    "private_repos": 10000,
                },
            }
        )
        return data

    def app(self, which: str) -> JSON:
        b = self.base
        if which == "actions":
            return {
                "id": ACTIONS_APP_ID,
                "slug": "github-actions",
                "node_id": node_id("A", ACTIONS_APP_ID),
                "owner": self._github_org(),
                "name": "GitHub Actions",
                "description": "Automate your workflow from idea to production",
                "external_url": f"{b}/features/actions",
                "html_url": f"{b}/apps/github-actions",
                "created_at": "2018-07-30T09:30:17Z",
                "updated_at": "2024-04-10T20:33:16Z",
                "permissions": {
                    "actions": "write",
                    "checks": "write",
                    "contents": "write",
                    "deployments": "write",
                    "issues": "write",
                    "metadata": "read",
                    "pull_requests": "write",
                    "statuses": "write",
                },
                "events": ["check_run", "check_suite", "deployment", "push", "workflow_dispatch"],
            }
        return {
            "id": MONITOR_APP_ID,
            "slug": "sandbox-monitor",
            "node_id": node_id("A", MONITOR_APP_ID),
            "owner": self.owner(),
            "name": "Sandbox Monitor",
            "description": "Production monitors of the sandbox's simulated environments",
            "external_url": f"{b}/_sandbox/monitor",
            "html_url": f"{b}/apps/sandbox-monitor",
            "created_at": iso(self.store.created_at),
            "updated_at": iso(self.store.created_at),
            "permissions": {"checks": "write", "metadata": "read"},
            "events": ["deployment_status"],
        }

    def _github_org(self) -> JSON:
        return self._account("github", 9919, "O", f"{self.base}/github", "Organization")

    # -- repository --------------------------------------------------------------------------

    def _repo_urls(self) -> JSON:
        a = self.api
        return {
            "archive_url": f"{a}/{{archive_format}}{{/ref}}",
            "assignees_url": f"{a}/assignees{{/user}}",
            "blobs_url": f"{a}/git/blobs{{/sha}}",
            "branches_url": f"{a}/branches{{/branch}}",
            "collaborators_url": f"{a}/collaborators{{/collaborator}}",
            "comments_url": f"{a}/comments{{/number}}",
            "commits_url": f"{a}/commits{{/sha}}",
            "compare_url": f"{a}/compare/{{base}}...{{head}}",
            "contents_url": f"{a}/contents/{{+path}}",
            "contributors_url": f"{a}/contributors",
            "deployments_url": f"{a}/deployments",
            "downloads_url": f"{a}/downloads",
            "events_url": f"{a}/events",
            "forks_url": f"{a}/forks",
            "git_commits_url": f"{a}/git/commits{{/sha}}",
            "git_refs_url": f"{a}/git/refs{{/sha}}",
            "git_tags_url": f"{a}/git/tags{{/sha}}",
            "issue_comment_url": f"{a}/issues/comments{{/number}}",
            "issue_events_url": f"{a}/issues/events{{/number}}",
            "issues_url": f"{a}/issues{{/number}}",
            "keys_url": f"{a}/keys{{/key_id}}",
            "labels_url": f"{a}/labels{{/name}}",
            "languages_url": f"{a}/languages",
            "merges_url": f"{a}/merges",
            "milestones_url": f"{a}/milestones{{/number}}",
            "notifications_url": f"{a}/notifications{{?since,all,participating}}",
            "pulls_url": f"{a}/pulls{{/number}}",
            "releases_url": f"{a}/releases{{/id}}",
            "stargazers_url": f"{a}/stargazers",
            "statuses_url": f"{a}/statuses/{{sha}}",
            "subscribers_url": f"{a}/subscribers",
            "subscription_url": f"{a}/subscription",
            "tags_url": f"{a}/tags",
            "teams_url": f"{a}/teams",
            "trees_url": f"{a}/git/trees{{/sha}}",
            "hooks_url": f"{a}/hooks",
        }

    def _repo_core(self) -> JSON:
        s = self.store
        return {
            "id": s.repo_id,
            "node_id": node_id("R", s.repo_id),
            "name": s.name,
            "full_name": f"{s.owner}/{s.name}",
            "owner": self.owner(),
            "private": True,
            "html_url": self.html,
            "description": "A shop, as seen by the promote-tasks sandbox",
            "fork": False,
            "url": self.api,
        }

    def _open_issues(self) -> int:
        return sum(1 for i in self.store.issues.values() if i.state == "open")

    def repository(self) -> JSON:
        """The ``repository`` object (GitHub's ``Repository`` model) used inside pulls."""
        s = self.store
        data = self._repo_core()
        data.update(self._repo_urls())
        n = self._open_issues()
        data.update(
            {
                "git_url": f"{self.base.replace('http', 'git', 1)}/{s.owner}/{s.name}.git",
                "ssh_url": f"git@127.0.0.1:{s.owner}/{s.name}.git",
                "clone_url": f"{self.html}.git",
                "svn_url": self.html,
                "mirror_url": None,
                "homepage": None,
                "language": None,
                "forks_count": 0,
                "forks": 0,
                "stargazers_count": 0,
                "watchers_count": 0,
                "watchers": 0,
                "size": 1,
                "default_branch": s.default_branch,
                "open_issues_count": n,
                "open_issues": n,
                "is_template": False,
                "topics": [],
                "has_issues": True,
                "has_projects": False,
                "has_wiki": False,
                "has_pages": False,
                "has_downloads": True,
                "has_discussions": False,
                "archived": False,
                "disabled": False,
                "visibility": "private",
                "pushed_at": iso(s.pushed_at),
                "created_at": iso(s.created_at),
                "updated_at": iso(s.pushed_at),
                "allow_forking": False,
                "web_commit_signoff_required": False,
                "license": None,
            }
        )
        return data

    def minimal_repository(self) -> JSON:
        data = self._repo_core()
        data.update(self._repo_urls())
        return data

    def full_repository(self, login: str) -> JSON:
        data = self.repository()
        role = self.store.users[login].role
        data.update(
            {
                "permissions": {
                    "admin": role == "admin",
                    "maintain": role in ("admin", "maintain"),
                    "push": role in ("admin", "maintain", "write"),
                    "triage": role != "read",
                    "pull": True,
                },
                "allow_rebase_merge": True,
                "allow_squash_merge": True,
                "allow_merge_commit": True,
                "allow_auto_merge": False,
                "delete_branch_on_merge": False,
                "allow_update_branch": False,
                "use_squash_pr_title_as_default": False,
                "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
                "squash_merge_commit_message": "COMMIT_MESSAGES",
                "merge_commit_title": "MERGE_MESSAGE",
                "merge_commit_message": "PR_TITLE",
                "network_count": 0,
                "subscribers_count": 1,
            }
        )
        return data

    # -- git ---------------------------------------------------------------------------------

    def git_ref(self, ref: str, sha: str) -> JSON:
        kind = self.store.repo.object_type(sha) or "commit"
        return {
            "ref": ref,
            "node_id": node_id("REF", abs(hash(ref)) % 10**9),
            "url": f"{self.api}/git/{ref}",
            "object": {"sha": sha, "type": kind, "url": f"{self.api}/git/{kind}s/{sha}"},
        }

    def _git_user(self, ident: Ident) -> JSON:
        return {"name": ident.name, "email": ident.email, "date": iso(ident.when)}

    def _login_for(self, ident: Ident) -> str | None:
        for u in self.store.users.values():
            if u.email == ident.email:
                return u.login
        return None

    def commit(self, info: CommitInfo, *, files: list[FileChange] | None = None) -> JSON:
        """The ``Commit`` model (REST commits endpoints)."""
        a = self.api
        data: JSON = {
            "sha": info.sha,
            "node_id": node_id("C", int(info.sha[:12], 16)),
            "commit": {
                "author": self._git_user(info.author),
                "committer": self._git_user(info.committer),
                "message": info.message.rstrip("\n"),
                "tree": {"sha": info.tree, "url": f"{a}/git/trees/{info.tree}"},
                "url": f"{a}/git/commits/{info.sha}",
                "comment_count": 0,
                "verification": _unsigned(),
            },
            "url": f"{a}/commits/{info.sha}",
            "html_url": f"{self.html}/commit/{info.sha}",
            "comments_url": f"{a}/commits/{info.sha}/comments",
            "author": self.user(self._login_for(info.author)),
            "committer": self.user(self._login_for(info.committer)),
            "parents": [
                {"sha": p, "url": f"{a}/commits/{p}", "html_url": f"{self.html}/commit/{p}"}
                for p in info.parents
            ],
        }
        if files is not None:
            adds = sum(f.additions for f in files)
            dels = sum(f.deletions for f in files)
            data["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
            data["files"] = [self.diff_entry(info.sha, f) for f in files]
        return data

    def diff_entry(self, sha: str, f: FileChange) -> JSON:
        data: JSON = {
            "sha": f.blob_sha,
            "filename": f.path,
            "status": f.status,
            "additions": f.additions,
            "deletions": f.deletions,
            "changes": f.additions + f.deletions,
            "blob_url": f"{self.html}/blob/{sha}/{f.path}",
            "raw_url": f"{self.html}/raw/{sha}/{f.path}",
            "contents_url": f"{self.api}/contents/{f.path}?ref={sha}",
        }
        if f.previous_path:
            data["previous_filename"] = f.previous_path
        return data

    def git_commit(self, info: CommitInfo) -> JSON:
        """The ``GitCommit`` model (git data API)."""
        a = self.api
        return {
            "sha": info.sha,
            "node_id": node_id("C", int(info.sha[:12], 16)),
            "url": f"{a}/git/commits/{info.sha}",
            "html_url": f"{self.html}/commit/{info.sha}",
            "author": self._git_user(info.author),
            "committer": self._git_user(info.committer),
            "tree": {"sha": info.tree, "url": f"{a}/git/trees/{info.tree}"},
            "message": info.message.rstrip("\n"),
            "parents": [
                {"sha": p, "url": f"{a}/git/commits/{p}", "html_url": f"{self.html}/commit/{p}"}
                for p in info.parents
            ],
            "verification": _unsigned(),
        }

    def simple_commit(self, info: CommitInfo) -> JSON:
        return {
            "id": info.sha,
            "tree_id": info.tree,
            "message": info.message.rstrip("\n"),
            "timestamp": iso(info.committer.when),
            "author": {"name": info.author.name, "email": info.author.email},
            "committer": {"name": info.committer.name, "email": info.committer.email},
        }

    def short_branch(self, name: str, sha: str) -> JSON:
        return {
            "name": name,
            "commit": {"sha": sha, "url": f"{self.api}/commits/{sha}"},
            "protected": False,
        }

    def branch(self, name: str, sha: str) -> JSON:
        info = self.store.repo.commit(sha)
        return {
            "name": name,
            "commit": self.commit(info),
            "_links": {"self": f"{self.api}/branches/{name}", "html": f"{self.html}/tree/{name}"},
            "protected": False,
            "protection": {
                "enabled": False,
                "required_status_checks": {
                    "enforcement_level": "off",
                    "contexts": [],
                    "checks": [],
                },
            },
            "protection_url": f"{self.api}/branches/{name}/protection",
        }

    # -- pull requests and issues ------------------------------------------------------------

    def label(self, label: Label, *, embedded: bool = False) -> JSON:
        """A label; labels inside issues and pulls lack ``archived_at``."""
        data: JSON = {
            "id": label.id,
            "node_id": node_id("LA", label.id),
            "url": f"{self.api}/labels/{label.name}",
            "name": label.name,
            "description": label.description,
            "color": label.color,
            "default": False,
        }
        if not embedded:
            data["archived_at"] = None
        data["archived_by"] = None
        return data

    def _labels(self, issue: Issue) -> list[JSON]:
        return [self.label(self.store.labels[name], embedded=True) for name in issue.labels]

    def _pull_links(self, n: int) -> JSON:
        a = self.api
        return {
            "self": {"href": f"{a}/pulls/{n}"},
            "html": {"href": f"{self.html}/pull/{n}"},
            "issue": {"href": f"{a}/issues/{n}"},
            "comments": {"href": f"{a}/issues/{n}/comments"},
            "review_comments": {"href": f"{a}/pulls/{n}/comments"},
            "review_comment": {"href": f"{a}/pulls/comments{{/number}}"},
            "commits": {"href": f"{a}/pulls/{n}/commits"},
            "statuses": {"href": f"{a}/statuses/{{sha}}"},
        }

    def _association(self, login: str) -> str:
        user = self.store.users.get(login)
        if user is None or user.type != "User":
            return "NONE"
        return "COLLABORATOR" if user.role != "admin" else "OWNER"

    def pull_simple(self, issue: Issue) -> JSON:
        pull = issue.pull
        assert pull is not None
        n = issue.number
        a = self.api
        owner = self.store.owner
        assignee = issue.assignees[0] if issue.assignees else None
        head_sha = pull.head_sha
        return {
            "url": f"{a}/pulls/{n}",
            "id": pull.id,
            "node_id": node_id("PR", pull.id),
            "html_url": f"{self.html}/pull/{n}",
            "diff_url": f"{self.html}/pull/{n}.diff",
            "patch_url": f"{self.html}/pull/{n}.patch",
            "issue_url": f"{a}/issues/{n}",
            "commits_url": f"{a}/pulls/{n}/commits",
            "review_comments_url": f"{a}/pulls/{n}/comments",
            "review_comment_url": f"{a}/pulls/comments{{/number}}",
            "comments_url": f"{a}/issues/{n}/comments",
            "statuses_url": f"{a}/statuses/{head_sha}",
            "number": n,
            "state": issue.state,
            "locked": issue.locked,
            "title": issue.title,
            "user": self.user(issue.user),
            "body": issue.body,
            "labels": self._labels(issue),
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": self.user(assignee),
            "assignees": [self.user(x) for x in issue.assignees],
            "requested_reviewers": [self.user(x) for x in pull.requested_reviewers],
            "requested_teams": [],
            "head": {
                "label": f"{owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": head_sha,
                "user": self.owner(),
                "repo": self.repository(),
            },
            "base": {
                "label": f"{owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": pull.base_sha,
                "user": self.owner(),
                "repo": self.repository(),
            },
            "_links": self._pull_links(n),
            "author_association": self._association(issue.user),
            "auto_merge": None,
            "draft": pull.draft,
        }

    def pull(self, issue: Issue) -> JSON:
        pull = issue.pull
        assert pull is not None
        data = self.pull_simple(issue)
        commits = self.store.pull_commits(pull)
        repo = self.store.repo
        files = repo.changed_files(repo.merge_base(pull.base_sha, pull.head_sha), pull.head_sha)
        merged = pull.merged_at is not None
        mergeable = None if merged or issue.state == "closed" else pull.mergeable
        mergeable_state = "unknown" if mergeable is None else "clean" if mergeable else "dirty"
        data.update(
            {
                "merged": merged,
                "mergeable": mergeable,
                "rebaseable": mergeable,
                "mergeable_state": mergeable_state,
                "merged_by": self.user(pull.merged_by),
                "comments": len(issue.comments),
                "review_comments": 0,
                "maintainer_can_modify": pull.maintainer_can_modify,
                "commits": len(commits),
                "additions": sum(f.additions for f in files),
                "deletions": sum(f.deletions for f in files),
                "changed_files": len(files),
            }
        )
        return data

    def pull_minimal(self, issue: Issue) -> JSON:
        pull = issue.pull
        assert pull is not None
        repo = {"id": self.store.repo_id, "url": self.api, "name": self.store.name}
        return {
            "id": pull.id,
            "number": issue.number,
            "url": f"{self.api}/pulls/{issue.number}",
            "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": repo},
            "base": {"ref": pull.base_ref, "sha": pull.base_sha, "repo": repo},
        }

    def review(self, review: Review) -> JSON:
        n = review.number
        data: JSON = {
            "id": review.id,
            "node_id": node_id("PRR", review.id),
            "user": self.user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": f"{self.html}/pull/{n}#pullrequestreview-{review.id}",
            "pull_request_url": f"{self.api}/pulls/{n}",
            "_links": {
                "html": {"href": f"{self.html}/pull/{n}#pullrequestreview-{review.id}"},
                "pull_request": {"href": f"{self.api}/pulls/{n}"},
            },
            "commit_id": review.commit_id,
            "author_association": self._association(review.user),
        }
        if review.submitted_at is not None:
            data["submitted_at"] = iso(review.submitted_at)
        return data

    def issue(self, issue: Issue) -> JSON:
        n = issue.number
        a = self.api
        assignee = issue.assignees[0] if issue.assignees else None
        data: JSON = {
            "id": issue.id,
            "node_id": node_id("I", issue.id),
            "url": f"{a}/issues/{n}",
            "repository_url": a,
            "labels_url": f"{a}/issues/{n}/labels{{/name}}",
            "comments_url": f"{a}/issues/{n}/comments",
            "events_url": f"{a}/issues/{n}/events",
            "html_url": f"{self.html}/{'pull' if issue.pull else 'issues'}/{n}",
            "number": n,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self.user(issue.user),
            "labels": self._labels(issue),
            "assignee": self.user(assignee),
            "assignees": [self.user(x) for x in issue.assignees],
            "milestone": None,
            "locked": issue.locked,
            "active_lock_reason": None,
            "comments": len(issue.comments),
            "closed_at": iso(issue.closed_at),
            "created_at": iso(issue.created_at),
            "updated_at": iso(issue.updated_at),
            "closed_by": self.user(issue.closed_by),
            "author_association": self._association(issue.user),
            "timeline_url": f"{a}/issues/{n}/timeline",
            "performed_via_github_app": None,
            "reactions": self._reactions(f"{a}/issues/{n}/reactions"),
        }
        if issue.pull is not None:
            data["draft"] = issue.pull.draft
            data["pull_request"] = {
                "url": f"{a}/pulls/{n}",
                "html_url": f"{self.html}/pull/{n}",
                "diff_url": f"{self.html}/pull/{n}.diff",
                "patch_url": f"{self.html}/pull/{n}.patch",
                "merged_at": iso(issue.pull.merged_at),
            }
        return data

    def _reactions(self, url: str) -> JSON:
        return {
            "url": url,
            "total_count": 0,
            "+1": 0,
            "-1": 0,
            "laugh": 0,
            "hooray": 0,
            "confused": 0,
            "heart": 0,
            "rocket": 0,
            "eyes": 0,
        }

    def comment(self, comment: Comment) -> JSON:
        a = self.api
        issue = self.store.issues[comment.issue_number]
        kind = "pull" if issue.pull else "issues"
        return {
            "id": comment.id,
            "node_id": node_id("IC", comment.id),
            "url": f"{a}/issues/comments/{comment.id}",
            "html_url": f"{self.html}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self.user(comment.user),
            "created_at": iso(comment.created_at),
            "updated_at": iso(comment.updated_at),
            "issue_url": f"{a}/issues/{comment.issue_number}",
            "author_association": self._association(comment.user),
            "performed_via_github_app": None,
            "reactions": self._reactions(f"{a}/issues/comments/{comment.id}/reactions"),
        }

    # -- deployments and statuses ------------------------------------------------------------

    def deployment(self, d: Deployment, *, simple: bool = False) -> JSON:
        a = self.api
        data: JSON = {
            "url": f"{a}/deployments/{d.id}",
            "id": d.id,
            "node_id": node_id("DE", d.id),
            "task": d.task,
            "original_environment": d.original_environment or d.environment,
            "environment": d.environment,
            "description": d.description,
            "created_at": iso(d.created_at),
            "updated_at": iso(d.updated_at),
            "statuses_url": f"{a}/deployments/{d.id}/statuses",
            "repository_url": a,
            "transient_environment": d.transient,
            "production_environment": d.production,
            "performed_via_github_app": self.app("actions") if d.by_actions else None,
        }
        if not simple:
            data["sha"] = d.sha
            data["ref"] = d.ref
            data["payload"] = d.payload
            data["creator"] = self.user(d.creator)
        return data

    def deployment_status(self, st: DeploymentStatus) -> JSON:
        a = self.api
        return {
            "url": f"{a}/deployments/{st.deployment_id}/statuses/{st.id}",
            "id": st.id,
            "node_id": node_id("DES", st.id),
            "state": st.state,
            "creator": self.user(st.creator),
            "description": st.description,
            "environment": st.environment,
            "target_url": st.target_url,
            "created_at": iso(st.created_at),
            "updated_at": iso(st.created_at),
            "deployment_url": f"{a}/deployments/{st.deployment_id}",
            "repository_url": a,
            "environment_url": st.environment_url,
            "log_url": st.log_url,
            "performed_via_github_app": self.app("actions") if st.by_actions else None,
        }

    def status(self, st: CommitStatus, *, simple: bool = False) -> JSON:
        creator = self.store.users.get(st.creator)
        data: JSON = {
            "url": f"{self.api}/statuses/{st.sha}",
            "avatar_url": f"{self.base}/avatars/u/{creator.id if creator else 0}?v=4",
            "id": st.id,
            "node_id": node_id("SC", st.id),
            "state": st.state,
            "description": st.description,
            "target_url": st.target_url,
            "context": st.context,
            "created_at": iso(st.created_at),
            "updated_at": iso(st.created_at),
        }
        if not simple:
            data["creator"] = self.user(st.creator)
        return data

    def combined_status(self, sha: str, statuses: list[CommitStatus], state: str) -> JSON:
        return {
            "state": state,
            "statuses": [self.status(s, simple=True) for s in statuses],
            "sha": sha,
            "total_count": len(statuses),
            "repository": self.minimal_repository(),
            "commit_url": f"{self.api}/commits/{sha}",
            "url": f"{self.api}/commits/{sha}/status",
        }

    # -- checks and actions ------------------------------------------------------------------

    def check_run(self, cr: CheckRun) -> JSON:
        a = self.api
        suite = self.store.suites[cr.suite_id]
        pulls = self._pulls_for_run_sha(cr.head_sha, suite.head_branch)
        data: JSON = {
            "id": cr.id,
            "name": cr.name,
            "node_id": node_id("CR", cr.id),
            "head_sha": cr.head_sha,
            "external_id": "" if cr.app == "actions" else str(cr.id),
            "url": f"{a}/check-runs/{cr.id}",
            "html_url": cr.details_url or f"{self.html}/runs/{cr.id}",
            "details_url": cr.details_url or f"{self.html}/runs/{cr.id}",
            "status": cr.status,
            "conclusion": cr.conclusion,
            "started_at": iso(cr.started_at or cr.created_at),
            "completed_at": iso(cr.completed_at),
            "output": {
                "title": cr.title,
                "summary": cr.summary,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{a}/check-runs/{cr.id}/annotations",
            },
            "check_suite": {"id": cr.suite_id},
            "app": self.app(cr.app),
            "pull_requests": pulls,
        }
        if cr.deployment_id is not None:
            data["deployment"] = self.deployment(
                self.store.deployments[cr.deployment_id], simple=True
            )
        return data

    def _pulls_for_run_sha(self, sha: str, branch: str | None) -> list[JSON]:
        result = []
        for issue in self.store.issues.values():
            pull = issue.pull
            if pull and issue.state == "open" and pull.head_sha == sha and pull.head_ref == branch:
                result.append(self.pull_minimal(issue))
        return result

    def check_suite(self, suite: CheckSuite) -> JSON:
        runs = [c for c in self.store.check_runs.values() if c.suite_id == suite.id]
        status, conclusion = suite_state(runs)
        info = self.store.repo.commit(suite.head_sha)
        return {
            "id": suite.id,
            "node_id": node_id("CS", suite.id),
            "head_branch": suite.head_branch,
            "head_sha": suite.head_sha,
            "status": status,
            "conclusion": conclusion,
            "url": f"{self.api}/check-suites/{suite.id}",
            "before": info.parents[0] if info.parents else "0" * 40,
            "after": suite.head_sha,
            "pull_requests": self._pulls_for_run_sha(suite.head_sha, suite.head_branch),
            "app": self.app(suite.app),
            "repository": self.minimal_repository(),
            "created_at": iso(suite.created_at),
            "updated_at": iso(suite.updated_at),
            "head_commit": self.simple_commit(info),
            "latest_check_runs_count": len(runs),
            "check_runs_url": f"{self.api}/check-suites/{suite.id}/check-runs",
            "rerequestable": True,
            "runs_rerequestable": True,
        }

    def workflow(self, wf: Workflow) -> JSON:
        return {
            "id": wf.id,
            "node_id": node_id("W", wf.id),
            "name": wf.name,
            "path": wf.path,
            "state": "active",
            "created_at": iso(wf.created_at),
            "updated_at": iso(wf.created_at),
            "url": f"{self.api}/actions/workflows/{wf.id}",
            "html_url": f"{self.html}/blob/{self.store.default_branch}/{wf.path}",
            "badge_url": f"{self.html}/workflows/{wf.name}/badge.svg",
        }

    def run(self, run: Run, *, exclude_pull_requests: bool = False) -> JSON:
        a = self.api
        wf = self.store.workflows[run.workflow_id]
        info = self.store.repo.commit(run.head_sha)
        pulls = (
            [] if exclude_pull_requests else self._pulls_for_run_sha(run.head_sha, run.head_branch)
        )
        data: JSON = {
            "id": run.id,
            "name": run.name,
            "node_id": node_id("WFR", run.id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": wf.path,  # GitHub Enterprise Server leaves it out (scenario "enterprise")
            "display_title": run.display_title,
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": wf.id,
            "check_suite_id": run.suite_id,
            "check_suite_node_id": node_id("CS", run.suite_id),
            "url": f"{a}/actions/runs/{run.id}",
            "html_url": f"{self.html}/actions/runs/{run.id}",
            "pull_requests": pulls,
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "actor": self.user(run.actor),
            "run_attempt": run.run_attempt,
            "referenced_workflows": [],
            "run_started_at": iso(run.run_started_at or run.created_at),
            "triggering_actor": self.user(run.triggering_actor),
            "jobs_url": f"{a}/actions/runs/{run.id}/jobs",
            "logs_url": f"{a}/actions/runs/{run.id}/logs",
            "check_suite_url": f"{a}/check-suites/{run.suite_id}",
            "artifacts_url": f"{a}/actions/runs/{run.id}/artifacts",
            "cancel_url": f"{a}/actions/runs/{run.id}/cancel",
            "rerun_url": f"{a}/actions/runs/{run.id}/rerun",
            "previous_attempt_url": (
                f"{a}/actions/runs/{run.id}/attempts/{run.run_attempt - 1}"
                if run.run_attempt > 1
                else None
            ),
            "workflow_url": f"{a}/actions/workflows/{wf.id}",
            "head_commit": self.simple_commit(info),
            "repository": self.minimal_repository(),
            "head_repository": self.minimal_repository(),
        }
        if self.store.scenario.enterprise:
            del data["path"]
        return data

    def job(self, job: Job) -> JSON:
        a = self.api
        return {
            "id": job.id,
            "run_id": job.run_id,
            "workflow_name": job.workflow_name,
            "head_branch": job.head_branch,
            "run_url": f"{a}/actions/runs/{job.run_id}",
            "run_attempt": job.run_attempt,
            "node_id": node_id("CR", job.id),
            "head_sha": job.head_sha,
            "url": f"{a}/actions/jobs/{job.id}",
            "html_url": f"{self.html}/actions/runs/{job.run_id}/job/{job.id}",
            "status": job.status,
            "conclusion": job.conclusion,
            "created_at": iso(job.created_at),
            "started_at": iso(job.started_at or job.created_at),
            "completed_at": iso(job.completed_at),
            "name": job.name,
            "steps": [
                {
                    "name": s.name,
                    "status": s.status,
                    "conclusion": s.conclusion,
                    "number": s.number,
                    "started_at": iso(s.started_at),
                    "completed_at": iso(s.completed_at),
                }
                for s in job.steps
            ],
            "check_run_url": f"{a}/check-runs/{job.id}",
            "labels": ["ubuntu-latest"],
            "runner_id": 1 if job.started_at else None,
            "runner_name": "GitHub Actions 1" if job.started_at else None,
            "runner_group_id": 1 if job.started_at else None,
            "runner_group_name": "GitHub Actions" if job.started_at else None,
        }

    def environment(self, env: Environment) -> JSON:
        rules: list[JSON] = []
        r_wait, r_rev, r_branch = env.rule_ids
        if env.wait_timer:
            rules.append(
                {
                    "id": r_wait,
                    "node_id": node_id("GA", r_wait),
                    "type": "wait_timer",
                    "wait_timer": env.wait_timer,
                }
            )
        if env.reviewers:
            rules.append(
                {
                    "id": r_rev,
                    "node_id": node_id("GA", r_rev),
                    "prevent_self_review": env.prevent_self_review,
                    "type": "required_reviewers",
                    "reviewers": [
                        {"type": "User", "reviewer": self.user(x)} for x in env.reviewers
                    ],
                }
            )
        if env.branch_policy is not None:
            rules.append(
                {"id": r_branch, "node_id": node_id("GA", r_branch), "type": "branch_policy"}
            )
        return {
            "id": env.id,
            "node_id": node_id("EN", env.id),
            "name": env.name,
            "url": f"{self.api}/environments/{env.name}",
            "html_url": f"{self.html}/deployments/activity_log?environments_filter={env.name}",
            "created_at": iso(env.created_at),
            "updated_at": iso(env.updated_at),
            "protection_rules": rules,
            "deployment_branch_policy": env.branch_policy,
        }

    def environment_ref(self, env: Environment) -> JSON:
        return {
            "id": env.id,
            "node_id": node_id("EN", env.id),
            "name": env.name,
            "url": f"{self.api}/environments/{env.name}",
            "html_url": f"{self.html}/deployments/activity_log?environments_filter={env.name}",
        }

    # -- contents ----------------------------------------------------------------------------

    def content_item(self, path: str, kind: str, sha: str, size: int, ref: str) -> JSON:
        a = self.api
        git_kind = "trees" if kind == "dir" else "blobs"
        view = "tree" if kind == "dir" else "blob"
        return {
            "type": kind,
            "size": size,
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{a}/contents/{path}?ref={ref}",
            "git_url": f"{a}/git/{git_kind}/{sha}",
            "html_url": f"{self.html}/{view}/{ref}/{path}",
            "download_url": f"{self.html}/raw/{ref}/{path}" if kind == "file" else None,
            "_links": {
                "self": f"{a}/contents/{path}?ref={ref}",
                "git": f"{a}/git/{git_kind}/{sha}",
                "html": f"{self.html}/{view}/{ref}/{path}",
            },
        }

    def content_file(self, path: str, sha: str, data: bytes, ref: str) -> JSON:
        item = self.content_item(path, "file", sha, len(data), ref)
        item["content"] = wrap_base64(data)
        item["encoding"] = "base64"
        return item

    def file_commit(self, content: JSON | None, info: CommitInfo) -> JSON:
        return {"content": content, "commit": self.git_commit(info)}


def _unsigned() -> JSON:
    """A commit's ``verification``: the sandbox never signs."""
    return {
        "verified": False,
        "reason": "unsigned",
        "signature": None,
        "payload": None,
        "verified_at": None,
    }


def wrap_base64(data: bytes) -> str:
    """Base64 in 60-character lines, each ending in a newline, as GitHub sends file contents."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


def suite_state(runs: list[CheckRun]) -> tuple[str, str | None]:
    """A check suite's status/conclusion from its runs (worst conclusion wins)."""
    if not runs or any(r.status != "completed" for r in runs):
        waiting = any(r.status == "waiting" for r in runs)
        return ("waiting" if waiting else "in_progress" if runs else "queued"), None
    order = [
        "action_required",
        "cancelled",
        "timed_out",
        "failure",
        "neutral",
        "skipped",
        "success",
    ]
    conclusions = [r.conclusion or "success" for r in runs]
    for c in order:
        if c in conclusions:
            return "completed", c
    return "completed", "success"
