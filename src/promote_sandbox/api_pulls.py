"""Pull requests, reviews, issues, comments and labels (a pull request is also an issue)."""

from __future__ import annotations

from typing import Any

from promote_sandbox.apibase import REPO
from promote_sandbox.apibase import Base
from promote_sandbox.apibase import by_id
from promote_sandbox.server import ApiError
from promote_sandbox.server import Reply
from promote_sandbox.server import Request
from promote_sandbox.server import Router
from promote_sandbox.server import custom_invalid
from promote_sandbox.server import invalid
from promote_sandbox.server import not_found
from promote_sandbox.server import paginate
from promote_sandbox.store import BaseMoved
from promote_sandbox.store import Comment
from promote_sandbox.store import Issue
from promote_sandbox.store import Label
from promote_sandbox.store import Pull
from promote_sandbox.store import Review

REVIEW_EVENTS = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}
LABEL_COLORS = ("d73a4a", "0075ca", "a2eeef", "7057ff", "008672", "e4e669", "d876e3", "cfd3d7")


class PullsApi(Base):
    def register(self, r: Router) -> None:
        r.add("GET", f"{REPO}/pulls", self.list_pulls)
        r.add("POST", f"{REPO}/pulls", self.create_pull)
        r.add("GET", f"{REPO}/pulls/{{number}}", self.get_pull)
        r.add("PATCH", f"{REPO}/pulls/{{number}}", self.update_pull)
        r.add("GET", f"{REPO}/pulls/{{number}}/commits", self.pull_commits)
        r.add("GET", f"{REPO}/pulls/{{number}}/files", self.pull_files)
        r.add("GET", f"{REPO}/pulls/{{number}}/merge", self.check_merged)
        r.add("PUT", f"{REPO}/pulls/{{number}}/merge", self.merge)
        r.add("GET", f"{REPO}/pulls/{{number}}/reviews", self.list_reviews)
        r.add("POST", f"{REPO}/pulls/{{number}}/reviews", self.create_review, write=False)
        r.add("GET", f"{REPO}/pulls/{{number}}/requested_reviewers", self.list_requested)
        r.add("POST", f"{REPO}/pulls/{{number}}/requested_reviewers", self.request_reviewers)
        r.add("DELETE", f"{REPO}/pulls/{{number}}/requested_reviewers", self.remove_requested)
        r.add("GET", f"{REPO}/issues", self.list_issues)
        r.add("POST", f"{REPO}/issues", self.create_issue, write=False)
        r.add("GET", f"{REPO}/issues/comments/{{comment_id}}", self.get_comment)
        r.add("PATCH", f"{REPO}/issues/comments/{{comment_id}}", self.update_comment, write=False)
        r.add("GET", f"{REPO}/issues/{{number}}", self.get_issue)
        r.add("PATCH", f"{REPO}/issues/{{number}}", self.update_issue, write=False)
        r.add("GET", f"{REPO}/issues/{{number}}/comments", self.list_comments)
        r.add("POST", f"{REPO}/issues/{{number}}/comments", self.create_comment, write=False)
        r.add("GET", f"{REPO}/issues/{{number}}/labels", self.list_issue_labels)
        r.add("POST", f"{REPO}/issues/{{number}}/labels", self.add_labels)
        r.add("PUT", f"{REPO}/issues/{{number}}/labels", self.set_labels)
        r.add("DELETE", f"{REPO}/issues/{{number}}/labels/{{name:path}}", self.remove_label)
        r.add("GET", f"{REPO}/labels", self.list_labels)
        r.add("POST", f"{REPO}/labels", self.create_label)

    # -- pull requests -----------------------------------------------------------------------

    def _head_branch(self, head: str) -> str | None:
        """``owner:branch`` or a bare branch; None when the owner is someone else."""
        if ":" in head:
            owner, _, branch = head.partition(":")
            if owner.lower() != self.store.owner.lower():
                return None
            return branch
        return head

    def _open_pull(self, head_ref: str, base_ref: str) -> Issue | None:
        for issue in self.store.issues.values():
            pull = issue.pull
            if (
                pull
                and issue.state == "open"
                and (pull.head_ref, pull.base_ref) == (head_ref, base_ref)
            ):
                return issue
        return None

    def create_pull(self, req: Request) -> Reply:
        self.check_repo(req)
        title = self.text(req, "title", "PullRequest")
        head = self.text(req, "head", "PullRequest", required=True) or ""
        base = self.text(req, "base", "PullRequest", required=True) or ""
        body = self.text(req, "body", "PullRequest")
        if not title:
            raise invalid("PullRequest", "title", "missing_field")
        head_ref = self._head_branch(head)
        head_sha = self.store.branch_sha(head_ref) if head_ref else None
        if head_ref is None or head_sha is None:
            raise invalid("PullRequest", "head")
        base_sha = self.store.branch_sha(base)
        if base_sha is None:
            raise invalid("PullRequest", "base")
        if self._open_pull(head_ref, base):
            raise custom_invalid(
                "PullRequest", f"A pull request already exists for {self.store.owner}:{head_ref}."
            )
        if not self.store.repo.rev_list(f"{base_sha}..{head_sha}"):
            raise custom_invalid("PullRequest", f"No commits between {base} and {head_ref}")
        pull = Pull(
            id=self.store.new_id(),
            head_ref=head_ref,
            head_sha=head_sha,
            base_ref=base,
            base_sha=base_sha,
            draft=self.flag(req, "draft", False),
            maintainer_can_modify=False,
        )
        issue = self.store.new_issue(title, body, req.login, pull)
        reply = Reply(201, self.shapes.pull(issue))
        reply.headers["Location"] = f"{self.shapes.api}/pulls/{issue.number}"
        return reply

    def list_pulls(self, req: Request) -> Reply:
        self.check_repo(req)
        state = req.q("state", "open")
        if state not in ("open", "closed", "all"):
            raise invalid("PullRequest", "state")
        head = req.q("head")
        head_ref: str | None = None
        if head and ":" in head:
            # A bare branch name is silently ignored by GitHub; only owner:branch filters.
            head_ref = self._head_branch(head) or "\0no-such-branch"
        base = req.q("base")
        found = []
        for issue in self.store.issues.values():
            pull = issue.pull
            if pull is None:
                continue
            if state != "all" and issue.state != state:
                continue
            if head_ref is not None and pull.head_ref != head_ref:
                continue
            if base is not None and pull.base_ref != base:
                continue
            found.append(issue)
        sort = req.q("sort", "created")
        direction = req.q("direction", "desc" if sort == "created" else "asc")
        key = {
            "created": lambda i: (i.created_at, i.number),
            "updated": lambda i: (i.updated_at, i.number),
            "popularity": lambda i: (len(i.comments), i.number),
            "long-running": lambda i: (i.created_at, i.number),
        }.get(sort or "created", lambda i: (i.created_at, i.number))
        found.sort(key=key, reverse=direction == "desc")
        return paginate(req, [self.shapes.pull_simple(i) for i in found])

    def get_pull(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        if issue.state == "open" and pull.mergeable is None:
            # GitHub computes mergeability in the background: the first read starts the job.
            if pull.mergeable_asked:
                self.store.compute_mergeable(issue)
            else:
                pull.mergeable_asked = True
        return Reply(200, self.shapes.pull(issue))

    def update_pull(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        title = self.text(req, "title", "PullRequest")
        body = self.text(req, "body", "PullRequest")
        state = self.text(req, "state", "PullRequest")
        base = self.text(req, "base", "PullRequest")
        now = self.store.now()
        if title is not None:
            issue.title = title
        if "body" in self.body(req):
            issue.body = body
        if base is not None and base != pull.base_ref:
            if pull.merged_at is not None or issue.state != "open":
                raise custom_invalid(
                    "PullRequest", "Cannot change the base branch of a closed pull request."
                )
            base_sha = self.store.branch_sha(base)
            if base_sha is None:
                raise invalid("PullRequest", "base")
            if self._open_pull(pull.head_ref, base):
                raise custom_invalid(
                    "PullRequest",
                    f"A pull request already exists for base branch '{base}' and head branch '{pull.head_ref}'",
                )
            pull.base_ref, pull.base_sha = base, base_sha
            pull.mergeable = None
        if state is not None:
            if state not in ("open", "closed"):
                raise invalid("PullRequest", "state")
            if state == "closed" and issue.state == "open":
                issue.state = "closed"
                issue.closed_at = now
                issue.closed_by = req.login
                self.store.emit("pull_request", req.login, action="closed", issue=issue)
            elif state == "open" and issue.state == "closed":
                if pull.merged_at is not None:
                    raise custom_invalid(
                        "PullRequest", "state cannot be changed. The pull request has been merged."
                    )
                if self._open_pull(pull.head_ref, pull.base_ref):
                    raise custom_invalid(
                        "PullRequest",
                        f"A pull request already exists for {self.store.owner}:{pull.head_ref}.",
                    )
                head_sha = self.store.branch_sha(pull.head_ref)
                if head_sha is None:
                    raise custom_invalid(
                        "PullRequest", "state cannot be changed. The head branch was deleted."
                    )
                issue.state = "open"
                issue.closed_at = None
                issue.closed_by = None
                pull.head_sha = head_sha
                pull.base_sha = self.store.branch_sha(pull.base_ref) or pull.base_sha
                pull.mergeable = None
        issue.updated_at = now
        return Reply(200, self.shapes.pull(issue))

    def pull_commits(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        assert issue.pull is not None
        shas = self.store.pull_commits(issue.pull)
        reply = paginate(req, shas)
        reply.body = [self.shapes.commit(self.store.repo.commit(s)) for s in reply.body]
        return reply

    def pull_files(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        repo = self.store.repo
        commits = self.store.pull_commits(pull)
        if not commits:
            return paginate(req, [])
        start = repo.commit(commits[0]).parents[0] if repo.commit(commits[0]).parents else None
        end = commits[-1] if pull.merged_at is not None else pull.head_sha
        if pull.merged_at is None:
            start = repo.merge_base(pull.base_sha, pull.head_sha)
        files = repo.changed_files(start, end)
        return paginate(req, [self.shapes.diff_entry(end, f) for f in files])

    def check_merged(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        assert issue.pull is not None
        if issue.pull.merged_at is None:
            raise not_found()
        return Reply(204)

    def merge(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        method = self.text(req, "merge_method", "PullRequest") or "merge"
        if method not in ("merge", "squash", "rebase"):
            raise invalid("PullRequest", "merge_method")
        if issue.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if pull.draft:
            raise ApiError(405, "Pull Request is still a draft")
        expected = self.text(req, "sha", "PullRequest")
        if expected is not None and expected != pull.head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        unmet = self.store.unmet_check(issue)
        if unmet is not None:
            raise ApiError(405, unmet)
        try:
            new = self.store.merge_pull(
                issue,
                method,
                req.login,
                self.text(req, "commit_title", "PullRequest"),
                self.text(req, "commit_message", "PullRequest"),
            )
        except BaseMoved:
            raise ApiError(
                409, "Base branch was modified. Review and try the merge again."
            ) from None
        if new is None:
            message = (
                "This branch can't be rebased"
                if method == "rebase"
                else "Pull Request is not mergeable"
            )
            raise ApiError(405, message)
        return Reply(
            200, {"sha": new, "merged": True, "message": "Pull Request successfully merged"}
        )

    # -- reviews -----------------------------------------------------------------------------

    def _visible_reviews(self, number: int, viewer: str) -> list[Review]:
        found = [r for r in self.store.reviews.values() if r.number == number]
        found = [r for r in found if r.state != "PENDING" or r.user == viewer]
        return sorted(found, key=lambda r: r.id)

    def list_reviews(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        reviews = self._visible_reviews(issue.number, req.login)
        return paginate(req, [self.shapes.review(r) for r in reviews])

    def create_review(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        event = self.text(req, "event", "PullRequestReview")
        body = self.text(req, "body", "PullRequestReview") or ""
        commit_id = self.text(req, "commit_id", "PullRequestReview") or pull.head_sha
        if self.store.repo.full_sha(commit_id, "commit") is None:
            raise ApiError(422, "Unprocessable Entity", errors=["Commit could not be found"])
        if event is not None and event not in REVIEW_EVENTS:
            raise ApiError(422, "Unprocessable Entity", errors=[f"Event {event} is not valid"])
        own = req.login == issue.user
        if event == "APPROVE" and own:
            raise ApiError(
                422, "Unprocessable Entity", errors=["Review Can not approve your own pull request"]
            )
        if event == "REQUEST_CHANGES" and own:
            raise ApiError(
                422,
                "Unprocessable Entity",
                errors=["Review Can not request changes on your own pull request"],
            )
        if event in ("REQUEST_CHANGES", "COMMENT") and not body:
            raise ApiError(
                422,
                "Unprocessable Entity",
                errors=[f"Review body is required when using the {event} event"],
            )
        if issue.state != "open" and event in ("APPROVE", "REQUEST_CHANGES"):
            raise ApiError(422, "Unprocessable Entity", errors=["Review Pull request is closed"])
        state = REVIEW_EVENTS[event] if event else "PENDING"
        if state == "PENDING" and any(
            r.user == req.login and r.state == "PENDING"
            for r in self._visible_reviews(issue.number, req.login)
        ):
            raise ApiError(
                422,
                "Unprocessable Entity",
                errors=["User can only have one pending review per pull request"],
            )
        review = Review(
            id=self.store.new_id(),
            number=issue.number,
            user=req.login,
            body=body,
            state=state,
            commit_id=commit_id,
            submitted_at=None if state == "PENDING" else self.store.now(),
        )
        self.store.reviews[review.id] = review
        if state != "PENDING" and req.login in pull.requested_reviewers:
            pull.requested_reviewers.remove(req.login)
        return Reply(200, self.shapes.review(review))

    def list_requested(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        assert issue.pull is not None
        return Reply(
            200,
            {"users": [self.shapes.user(x) for x in issue.pull.requested_reviewers], "teams": []},
        )

    def _reviewer_list(self, req: Request) -> list[str]:
        value = self.body(req).get("reviewers") or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid("PullRequest", "reviewers")
        return list(value)

    def request_reviewers(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        for login in self._reviewer_list(req):
            user = self.store.users.get(login)
            if user is None or user.type != "User":
                raise ApiError(
                    422,
                    "Reviews may only be requested from collaborators. One or more of the users or "
                    "teams you specified is not a collaborator of the "
                    f"{self.store.owner}/{self.store.name} repository.",
                )
            if login == issue.user:
                raise ApiError(422, "Review cannot be requested from pull request author.")
            if login not in pull.requested_reviewers:
                pull.requested_reviewers.append(login)
        issue.updated_at = self.store.now()
        return Reply(201, self.shapes.pull_simple(issue))

    def remove_requested(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.pull(req)
        pull = issue.pull
        assert pull is not None
        for login in self._reviewer_list(req):
            if login in pull.requested_reviewers:
                pull.requested_reviewers.remove(login)
        return Reply(200, self.shapes.pull_simple(issue))

    # -- issues ------------------------------------------------------------------------------

    def _label(self, name: str) -> Label:
        label = self.store.labels.get(name)
        if label is None:
            color = LABEL_COLORS[len(self.store.labels) % len(LABEL_COLORS)]
            label = Label(self.store.new_id(), name, color)
            self.store.labels[name] = label
        return label

    def _label_names(self, value: Any) -> list[str]:
        if isinstance(value, dict):
            value = value.get("labels")
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid("Label", "labels")
        names = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name:
                raise invalid("Label", "name")
            names.append(name)
        return names

    def _assignees(self, value: Any) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise invalid("Issue", "assignees")
        for login in value:
            user = self.store.users.get(login)
            if user is None or user.type != "User":
                raise invalid("Issue", "assignees", value=login)
        return list(dict.fromkeys(value))

    def create_issue(self, req: Request) -> Reply:
        self.check_repo(req)
        title = self.text(req, "title", "Issue")
        if not title:
            raise invalid("Issue", "title", "missing_field")
        body = self.text(req, "body", "Issue")
        issue = self.store.new_issue(title, body, req.login)
        if self.store.can_write(req.login):
            # GitHub silently drops labels and assignees from people without push access.
            issue.labels = [
                self._label(n).name for n in self._label_names(self.body(req).get("labels"))
            ]
            assignees = self.body(req).get("assignees")
            if assignees is None and self.body(req).get("assignee"):
                assignees = [self.body(req)["assignee"]]
            issue.assignees = self._assignees(assignees)
        reply = Reply(201, self.shapes.issue(issue))
        reply.headers["Location"] = f"{self.shapes.api}/issues/{issue.number}"
        return reply

    def list_issues(self, req: Request) -> Reply:
        self.check_repo(req)
        state = req.q("state", "open")
        labels = [x.strip() for x in (req.q("labels") or "").split(",") if x.strip()]
        assignee = req.q("assignee")
        creator = req.q("creator")
        found = []
        for issue in self.store.issues.values():
            if state != "all" and issue.state != state:
                continue
            if labels and not all(lbl in issue.labels for lbl in labels):
                continue
            if assignee == "none" and issue.assignees:
                continue
            if assignee == "*" and not issue.assignees:
                continue
            if assignee not in (None, "none", "*") and assignee not in issue.assignees:
                continue
            if creator is not None and issue.user != creator:
                continue
            found.append(issue)
        sort = req.q("sort", "created")
        direction = req.q("direction", "desc")
        key = {
            "created": lambda i: (i.created_at, i.number),
            "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comments), i.number),
        }.get(sort or "created", lambda i: (i.created_at, i.number))
        found.sort(key=key, reverse=direction != "asc")
        return paginate(req, [self.shapes.issue(i) for i in found])

    def get_issue(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(200, self.shapes.issue(self.issue(req)))

    def update_issue(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        body = self.body(req)
        writer = self.store.can_write(req.login)
        if not writer and req.login != issue.user:
            raise ApiError(403, "Must have admin rights to Repository.")
        now = self.store.now()
        title = self.text(req, "title", "Issue")
        if title is not None:
            issue.title = title
        if "body" in body:
            issue.body = self.text(req, "body", "Issue")
        state = self.text(req, "state", "Issue")
        if state is not None:
            if state not in ("open", "closed"):
                raise invalid("Issue", "state")
            if issue.pull is not None and issue.pull.merged_at is not None and state == "open":
                raise custom_invalid(
                    "Issue", "state cannot be changed. The pull request has been merged."
                )
            if state == "closed" and issue.state == "open":
                issue.state = "closed"
                issue.closed_at = now
                issue.closed_by = req.login
                issue.state_reason = self.text(req, "state_reason", "Issue") or "completed"
            elif state == "open" and issue.state == "closed":
                issue.state = "open"
                issue.closed_at = None
                issue.closed_by = None
                issue.state_reason = "reopened"
        if writer and "labels" in body:
            issue.labels = [self._label(n).name for n in self._label_names(body.get("labels"))]
        if writer and ("assignees" in body or "assignee" in body):
            value = body.get("assignees") if "assignees" in body else body.get("assignee")
            issue.assignees = self._assignees(value)
        issue.updated_at = now
        return Reply(200, self.shapes.issue(issue))

    def list_comments(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        comments = [self.store.comments[c] for c in issue.comments]
        return paginate(req, [self.shapes.comment(c) for c in comments])

    def create_comment(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        text = self.text(req, "body", "IssueComment", required=True)
        if not text:
            raise invalid("IssueComment", "body", "missing_field")
        if issue.locked and not self.store.can_write(req.login):
            raise ApiError(403, "Unable to create comment because issue is locked.")
        now = self.store.now()
        comment = Comment(self.store.new_id(), issue.number, req.login, text, now, now)
        self.store.comments[comment.id] = comment
        issue.comments.append(comment.id)
        issue.updated_at = now
        self.store.emit("issue_comment", req.login, issue=issue, comment=comment)
        reply = Reply(201, self.shapes.comment(comment))
        reply.headers["Location"] = f"{self.shapes.api}/issues/comments/{comment.id}"
        return reply

    def _comment(self, req: Request) -> Comment:
        return by_id(self.store.comments, req, "comment_id")

    def get_comment(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(200, self.shapes.comment(self._comment(req)))

    def update_comment(self, req: Request) -> Reply:
        self.check_repo(req)
        comment = self._comment(req)
        if comment.user != req.login and not self.store.can_write(req.login):
            raise ApiError(403, "Must have admin rights to Repository.")
        text = self.text(req, "body", "IssueComment", required=True) or ""
        comment.body = text
        comment.updated_at = self.store.now()
        return Reply(200, self.shapes.comment(comment))

    # -- labels ------------------------------------------------------------------------------

    def list_issue_labels(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        return paginate(req, [self.shapes.label(self.store.labels[n]) for n in issue.labels])

    def add_labels(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        for name in self._label_names(req.body):
            if name not in issue.labels:
                issue.labels.append(self._label(name).name)
        issue.updated_at = self.store.now()
        return Reply(200, [self.shapes.label(self.store.labels[n]) for n in issue.labels])

    def set_labels(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        issue.labels = [self._label(n).name for n in dict.fromkeys(self._label_names(req.body))]
        issue.updated_at = self.store.now()
        return Reply(200, [self.shapes.label(self.store.labels[n]) for n in issue.labels])

    def remove_label(self, req: Request) -> Reply:
        self.check_repo(req)
        issue = self.issue(req)
        name = req.params["name"]
        if name not in issue.labels:
            raise ApiError(404, "Label does not exist")
        issue.labels.remove(name)
        issue.updated_at = self.store.now()
        return Reply(200, [self.shapes.label(self.store.labels[n]) for n in issue.labels])

    def list_labels(self, req: Request) -> Reply:
        self.check_repo(req)
        labels = sorted(self.store.labels.values(), key=lambda lbl: lbl.id)
        return paginate(req, [self.shapes.label(lbl) for lbl in labels])

    def create_label(self, req: Request) -> Reply:
        self.check_repo(req)
        name = self.text(req, "name", "Label", required=True) or ""
        if name in self.store.labels:
            raise invalid("Label", "name", "already_exists")
        label = self._label(name)
        color = self.text(req, "color", "Label")
        if color:
            label.color = color.lstrip("#")
        label.description = self.text(req, "description", "Label")
        return Reply(201, self.shapes.label(label))
