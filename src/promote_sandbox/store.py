"""The sandbox's GitHub-side state: users, pull requests, deployments, statuses, runs.

Everything that GitHub keeps outside git lives here, in memory, with ids that only increase
(the tool orders events by id, as it must on GitHub). One re-entrant lock guards the whole
world: requests and CI steps are short, and a single lock makes every endpoint atomic, as
GitHub's writes are from a client's point of view.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from promote_sandbox.gitrepo import ZERO_SHA
from promote_sandbox.gitrepo import GitRepo
from promote_sandbox.gitrepo import Ident
from promote_sandbox.scenario import Scenario

BOT_LOGIN = "github-actions[bot]"
BOT_ID = 41898282
WEB_FLOW = ("GitHub", "noreply@github.com")


def iso(epoch: float | None) -> str | None:
    """GitHub's timestamp format: UTC, second resolution, trailing Z."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class User:
    login: str
    id: int
    role: str
    token: str | None
    name: str | None
    email: str | None
    type: str = "User"
    created_at: float = 0.0


@dataclass
class Label:
    id: int
    name: str
    color: str
    description: str | None = None


@dataclass
class Pull:
    id: int
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    draft: bool = False
    maintainer_can_modify: bool = False
    merged_at: float | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    mergeable: bool | None = None
    mergeable_for: tuple[str, str] | None = None
    mergeable_asked: bool = False
    commits: list[str] = field(default_factory=list)  # frozen at merge time
    created_commits: list[str] = field(default_factory=list)  # what the merge wrote
    requested_reviewers: list[str] = field(default_factory=list)


@dataclass
class Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    created_at: float
    updated_at: float
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    closed_at: float | None = None
    closed_by: str | None = None
    locked: bool = False
    comments: list[int] = field(default_factory=list)
    pull: Pull | None = None


@dataclass
class Comment:
    id: int
    issue_number: int
    user: str
    body: str
    created_at: float
    updated_at: float


@dataclass
class Review:
    id: int
    number: int
    user: str
    body: str
    state: str
    commit_id: str
    submitted_at: float | None


@dataclass
class Deployment:
    id: int
    sha: str
    ref: str
    task: str
    payload: Any
    environment: str
    description: str | None
    creator: str
    created_at: float
    updated_at: float
    transient: bool = False
    production: bool = False
    by_actions: bool = False
    original_environment: str = ""
    statuses: list[int] = field(default_factory=list)


@dataclass
class DeploymentStatus:
    id: int
    deployment_id: int
    state: str
    creator: str
    description: str
    environment: str
    target_url: str
    log_url: str
    environment_url: str
    created_at: float
    by_actions: bool = False


@dataclass
class CommitStatus:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: float


@dataclass
class CheckSuite:
    id: int
    head_sha: str
    head_branch: str | None
    app: str
    created_at: float
    updated_at: float
    run_id: int | None = None


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    suite_id: int
    app: str
    status: str
    conclusion: str | None
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    title: str | None = None
    summary: str | None = None
    deployment_id: int | None = None
    details_url: str | None = None

    @classmethod
    def queued_job(
        cls, job_id: int, name: str, head_sha: str, suite_id: int, now: float, url: str
    ) -> CheckRun:
        """The check run GitHub Actions shows for a job just queued (same id as the job)."""
        return cls(
            id=job_id, name=name, head_sha=head_sha, suite_id=suite_id, app="actions",
            status="queued", conclusion=None, created_at=now, details_url=url,
        )  # fmt: skip


@dataclass
class Step:
    name: str
    number: int
    status: str = "queued"
    conclusion: str | None = None
    started_at: float | None = None
    completed_at: float | None = None


@dataclass
class Job:
    id: int
    run_id: int
    name: str
    head_sha: str
    head_branch: str | None
    workflow_name: str
    created_at: float
    status: str = "queued"
    conclusion: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    steps: list[Step] = field(default_factory=list)
    run_attempt: int = 1


@dataclass
class Workflow:
    id: int
    name: str
    path: str
    created_at: float
    dispatch_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Run:
    id: int
    workflow_id: int
    kind: str  # deploy | smoke
    name: str
    run_number: int
    event: str
    head_branch: str | None
    head_sha: str
    actor: str
    triggering_actor: str
    created_at: float
    updated_at: float
    suite_id: int
    display_title: str
    environment: str
    target_sha: str
    status: str = "queued"
    conclusion: str | None = None
    run_started_at: float | None = None
    run_attempt: int = 1
    job_ids: list[int] = field(default_factory=list)
    deployment_id: int | None = None
    phase: int = 0
    will_fail: bool = False
    will_hang: bool = False
    approvals: list[Approval] = field(default_factory=list)
    waiting_since: float | None = None
    needs_approval: bool = False
    timer_left: int = 0


@dataclass
class Approval:
    environment: str
    state: str
    user: str
    comment: str
    created_at: float


@dataclass
class Environment:
    id: int
    name: str
    created_at: float
    updated_at: float
    wait_timer: int = 0
    reviewers: list[str] = field(default_factory=list)
    prevent_self_review: bool = False
    branch_policy: dict[str, bool] | None = None
    rule_ids: tuple[int, int, int] = (0, 0, 0)


PushListener = Callable[[str, str | None, str, str], None]
StatusListener = Callable[["Deployment", "DeploymentStatus"], None]
EventListener = Callable[[str, str, dict[str, Any]], None]  # (event, actor, facts)


class Store:
    """All non-git state, and the operations that change git and state together."""

    def __init__(self, repo: GitRepo, scenario: Scenario, base_url: str = "") -> None:
        self.repo = repo
        self.scenario = scenario
        self.base_url = base_url
        self.owner = scenario.owner
        self.name = scenario.repo
        self.default_branch = scenario.default_branch
        self.lock = threading.RLock()
        self.repo_id = 700000001
        self.created_at = time.time()
        self._next_id = 1000
        self.users: dict[str, User] = {}
        self.tokens: dict[str, str] = {}
        self.labels: dict[str, Label] = {}
        self.issues: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self.reviews: dict[int, Review] = {}
        self.deployments: dict[int, Deployment] = {}
        self.deployment_statuses: dict[int, DeploymentStatus] = {}
        self.statuses: dict[int, CommitStatus] = {}
        self.suites: dict[int, CheckSuite] = {}
        self.check_runs: dict[int, CheckRun] = {}
        self.workflows: dict[int, Workflow] = {}
        self.runs: dict[int, Run] = {}
        self.jobs: dict[int, Job] = {}
        self.environments: dict[str, Environment] = {}
        self.rulesets: dict[int, dict[str, Any]] = {}  # id -> the ruleset as it was created
        self.known_refs: dict[str, str] = {}
        self.commit_pulls: dict[str, set[int]] = {}
        self.push_listeners: list[PushListener] = []
        self.status_listeners: list[StatusListener] = []
        self.event_listeners: list[EventListener] = []
        self.pushed_at = self.created_at
        self.now: Callable[[], float] = time.time
        # The GITHUB_TOKEN of the Actions emulator's jobs: the bot is who writes with it.
        self.bot_token = f"sbx_github-actions_{secrets.token_hex(12)}"
        self._add_user(
            BOT_LOGIN, "write", self.bot_token, "GitHub Actions", None, user_type="Bot", uid=BOT_ID
        )
        for spec in scenario.users:
            token = spec.token or f"sbx_{spec.login}_{secrets.token_hex(12)}"
            self._add_user(spec.login, spec.role, token, spec.name, spec.email)

    # -- identities and ids ------------------------------------------------------------------

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _add_user(
        self,
        login: str,
        role: str,
        token: str | None,
        name: str | None,
        email: str | None,
        *,
        user_type: str = "User",
        uid: int | None = None,
    ) -> User:
        user = User(
            login=login,
            id=uid if uid is not None else 5000 + len(self.users),
            role=role,
            token=token,
            name=name,
            email=email or f"{login}@users.noreply.example.com",
            type=user_type,
            created_at=self.created_at,
        )
        self.users[login] = user
        if token:
            self.tokens[token] = login
        return user

    def ident(self, login: str, when: float | None = None) -> Ident:
        user = self.users[login]
        return Ident(
            user.name or login, user.email or f"{login}@example.com", int(when or self.now())
        )

    def web_flow(self, when: float | None = None) -> Ident:
        return Ident(WEB_FLOW[0], WEB_FLOW[1], int(when or self.now()))

    def emit(self, event: str, actor: str, **facts: Any) -> None:
        """Tell the listeners (the Actions emulator) about a pull-request or comment event."""
        for listener in self.event_listeners:
            listener(event, actor, facts)

    def can_write(self, login: str) -> bool:
        return self.users[login].role in ("write", "maintain", "admin")

    # -- refs and pushes ---------------------------------------------------------------------

    def branch_sha(self, branch: str) -> str | None:
        return self.repo.ref(f"refs/heads/{branch}") if branch else None

    def complete_job(self, job: Job, conclusion: str, now: float) -> None:
        """A job and the check run it shows end with ``conclusion`` (started now if never)."""
        job.status, job.conclusion, job.completed_at = "completed", conclusion, now
        job.started_at = job.started_at or now
        check = self.check_runs[job.id]
        check.status, check.conclusion, check.completed_at = "completed", conclusion, now
        check.started_at = check.started_at or now
        check.title = f"{job.name} {'succeeded' if conclusion == 'success' else conclusion}"

    def move_ref(self, ref: str, new: str, old: str | None, actor: str) -> bool:
        """Compare-and-swap a ref and announce it as a push, as GitHub does after a write."""
        if not self.repo.set_ref(ref, new, old):
            return False
        self._announce(ref, old if old not in (None, ZERO_SHA) else None, new, actor)
        return True

    def _announce(self, ref: str, old: str | None, new: str, actor: str) -> None:
        self.known_refs[ref] = new
        self.pushed_at = self.now()
        if ref.startswith("refs/heads/"):
            branch = ref[len("refs/heads/") :]
            self._sync_pulls(branch, actor)
            for listener in self.push_listeners:
                listener(branch, old, new, actor)

    def sync_refs(self) -> None:
        """Notice pushes that did not come through the API (a client's ``git push``)."""
        current = self.repo.refs("refs/heads/")
        for ref, sha in current.items():
            if self.known_refs.get(ref) != sha:
                old = self.known_refs.get(ref)
                self._announce(ref, old, sha, self.scenario.author)
        for ref in [r for r in self.known_refs if r.startswith("refs/heads/") and r not in current]:
            del self.known_refs[ref]

    def _sync_pulls(self, branch: str, actor: str) -> None:
        for issue in self.issues.values():
            pull = issue.pull
            if pull is None or issue.state != "open":
                continue
            if branch not in (pull.head_ref, pull.base_ref):
                continue
            head = self.branch_sha(pull.head_ref)
            base = self.branch_sha(pull.base_ref)
            if head is None or base is None:
                continue
            before = self.pull_commits(pull)
            old_base = pull.base_sha
            if (pull.head_sha, pull.base_sha) != (head, base):
                pull.head_sha, pull.base_sha = head, base
                pull.mergeable = None
                pull.mergeable_asked = False
                issue.updated_at = self.now()
                self.repo.set_ref(f"refs/pull/{issue.number}/head", head)
                if branch == pull.head_ref:
                    self.emit("pull_request", actor, action="synchronize", issue=issue)
            if branch == pull.base_ref and self.repo.is_ancestor(head, base):
                # GitHub marks a pull request merged once its head is reachable from its base.
                pull.base_sha = old_base
                self._mark_merged(issue, base, actor, before)

    def _mark_merged(self, issue: Issue, merge_sha: str, actor: str, commits: list[str]) -> None:
        pull = issue.pull
        assert pull is not None
        now = self.now()
        pull.commits = commits
        pull.merged_at = now
        pull.merged_by = actor
        pull.merge_commit_sha = merge_sha
        pull.mergeable = None
        issue.state = "closed"
        issue.closed_at = now
        issue.closed_by = actor
        issue.updated_at = now
        for sha in [*commits, *pull.created_commits, merge_sha]:
            self.commit_pulls.setdefault(sha, set()).add(issue.number)
        self.emit("pull_request", actor, action="closed", issue=issue)

    def pull_commits(self, pull: Pull) -> list[str]:
        """The commits a pull request brings, oldest first (GitHub's order)."""
        if pull.commits:
            return pull.commits
        return self.repo.commits_between(pull.base_sha, pull.head_sha)[:250]

    # -- pull requests -----------------------------------------------------------------------

    def new_issue(self, title: str, body: str | None, user: str, pull: Pull | None = None) -> Issue:
        number = len(self.issues) + 1
        now = self.now()
        issue = Issue(number, self.new_id(), title, body, user, now, now, pull=pull)
        self.issues[number] = issue
        if pull is not None:
            self.repo.set_ref(f"refs/pull/{number}/head", pull.head_sha)
            for sha in self.pull_commits(pull):
                self.commit_pulls.setdefault(sha, set()).add(number)
            self.emit("pull_request", user, action="opened", issue=issue)
        return issue

    def compute_mergeable(self, issue: Issue) -> None:
        pull = issue.pull
        if pull is None or issue.state != "open":
            return
        key = (pull.head_sha, pull.base_sha)
        if pull.mergeable_for == key and pull.mergeable is not None:
            return
        tree = self.repo.merge_trees(pull.base_sha, pull.head_sha)
        pull.mergeable = tree is not None
        pull.mergeable_for = key
        if tree is not None:
            merge = self.repo.commit_tree(
                tree,
                [pull.base_sha, pull.head_sha],
                f"Merge {pull.head_sha} into {pull.base_sha}",
                self.web_flow(self.created_at),
                self.web_flow(self.created_at),
            )
            self.repo.set_ref(f"refs/pull/{issue.number}/merge", merge)
            if pull.merge_commit_sha is None or pull.merged_at is None:
                pull.merge_commit_sha = merge

    def merge_pull(
        self,
        issue: Issue,
        method: str,
        actor: str,
        title: str | None = None,
        message: str | None = None,
    ) -> str | None:
        """Merge as GitHub does; returns the new base head, or None on a conflict."""
        pull = issue.pull
        assert pull is not None
        base_tip = self.branch_sha(pull.base_ref)
        head = pull.head_sha
        if base_tip is None:
            return None
        commits = self.repo.rev_list("--reverse", f"{base_tip}..{head}")
        now = self.now()
        created: list[str] = []
        if method == "merge":
            tree = self.repo.merge_trees(base_tip, head)
            if tree is None:
                return None
            subject = (
                title or f"Merge pull request #{issue.number} from {self.owner}/{pull.head_ref}"
            )
            body = issue.title if message is None else message
            text = f"{subject}\n\n{body}\n" if body else f"{subject}\n"
            new = self.repo.commit_tree(
                tree, [base_tip, head], text, self.ident(actor, now), self.web_flow(now)
            )
            created = [new]
        elif method == "squash":
            tree = self.repo.merge_trees(base_tip, head)
            if tree is None:
                return None
            # GitHub's default: one commit (merges not counted) gives its own title and body;
            # more give the PR's title and every commit's message as a list.
            infos = [self.repo.commit(c) for c in commits]
            single = [i for i in infos if len(i.parents) < 2]
            if len(single) == 1:
                own_title, _, own_body = single[0].message.strip().partition("\n")
                subject = title or f"{own_title.strip()} (#{issue.number})"
                if message is None:
                    message = own_body.strip()
            else:
                subject = title or f"{issue.title} (#{issue.number})"
                if message is None:
                    message = "\n\n".join(f"* {i.message.strip()}" for i in infos)
            text = f"{subject}\n\n{message}\n" if message else f"{subject}\n"
            new = self.repo.commit_tree(
                tree, [base_tip], text, self.ident(issue.user, now), self.web_flow(now)
            )
            created = [new]
        else:
            onto = base_tip
            for sha in self.repo.rev_list("--reverse", "--no-merges", f"{base_tip}..{head}"):
                tree = self.repo.pick_tree(sha, onto)
                if tree is None:
                    return None
                info = self.repo.commit(sha)
                onto = self.repo.commit_tree(
                    tree, [onto], info.message, info.author, self.web_flow(now)
                )
                created.append(onto)
            new = onto
        ref = f"refs/heads/{pull.base_ref}"
        if not self.repo.set_ref(ref, new, base_tip):
            raise BaseMoved()
        pull.created_commits = created
        pull.base_sha = base_tip
        self._mark_merged(issue, new, actor, commits)
        self._announce(ref, base_tip, new, actor)
        return new

    # -- statuses, deployments, environments -------------------------------------------------

    def add_commit_status(
        self,
        sha: str,
        state: str,
        context: str,
        creator: str,
        description: str | None = None,
        target_url: str | None = None,
    ) -> CommitStatus:
        status = CommitStatus(
            self.new_id(), sha, state, context, description, target_url, creator, self.now()
        )
        self.statuses[status.id] = status
        return status

    def latest_status(self, sha: str, context: str) -> CommitStatus | None:
        """The newest status of ``context`` on ``sha`` (GitHub compares contexts without case)."""
        mine = [
            s
            for s in self.statuses.values()
            if s.sha == sha and s.context.lower() == context.lower()
        ]
        return max(mine, key=lambda s: s.id, default=None)

    def unmet_check(self, issue: Issue) -> str | None:
        """A required status check (scenario ``required_checks``) that is not ``success`` on a PR
        into an environment branch, with GitHub's words for it; None when the PR may merge."""
        pull = issue.pull
        if pull is None or pull.base_ref not in self.scenario.environments:
            return None
        for context in self.scenario.required_checks:
            latest = self.latest_status(pull.head_sha, context)
            if latest is None or latest.state == "pending":
                return f'Required status check "{context}" is expected.'
            if latest.state != "success":
                return f'Required status check "{context}" is {latest.state}.'
        return None

    def ensure_environment(self, name: str) -> Environment:
        env = self.environments.get(name)
        if env is None:
            now = self.now()
            env = Environment(self.new_id(), name, now, now)
            env.rule_ids = (self.new_id(), self.new_id(), self.new_id())
            self.environments[name] = env
        return env

    def add_deployment(
        self,
        sha: str,
        ref: str,
        environment: str,
        creator: str,
        *,
        task: str = "deploy",
        payload: Any = None,
        description: str | None = "",
        transient: bool = False,
        production: bool | None = None,
        by_actions: bool = False,
    ) -> Deployment:
        self.ensure_environment(environment)
        now = self.now()
        deployment = Deployment(
            id=self.new_id(),
            sha=sha,
            ref=ref,
            task=task,
            payload={} if payload is None else payload,
            environment=environment,
            description=description,
            creator=creator,
            created_at=now,
            updated_at=now,
            transient=transient,
            production=environment == "production" if production is None else production,
            by_actions=by_actions,
            original_environment=environment,
        )
        self.deployments[deployment.id] = deployment
        return deployment

    def latest_deployment_status(self, deployment: Deployment) -> DeploymentStatus | None:
        if not deployment.statuses:
            return None
        return self.deployment_statuses[max(deployment.statuses)]

    def add_deployment_status(
        self,
        deployment: Deployment,
        state: str,
        creator: str,
        *,
        description: str = "",
        environment: str | None = None,
        target_url: str = "",
        log_url: str = "",
        environment_url: str = "",
        auto_inactive: bool = True,
        by_actions: bool = False,
    ) -> DeploymentStatus:
        previous = self.latest_deployment_status(deployment)
        env = environment or (previous.environment if previous else deployment.environment)
        if env != deployment.environment:
            self.ensure_environment(env)
            deployment.environment = env
        status = self.record_deployment_status(
            deployment,
            state,
            creator,
            environment=env,
            description=description,
            url=log_url or target_url,
            environment_url=environment_url,
            by_actions=by_actions,
        )
        deployment.updated_at = status.created_at
        if state == "success" and auto_inactive:
            self._inactivate_before(deployment, creator, by_actions)
        for listener in self.status_listeners:
            listener(deployment, status)
        return status

    def _inactivate_before(self, current: Deployment, creator: str, by_actions: bool) -> None:
        """GitHub's ``auto_inactive``: older non-transient, non-production successes go inactive."""
        for other in sorted(self.deployments.values(), key=lambda d: d.id):
            if other.id >= current.id or other.environment != current.environment:
                continue
            if other.transient or other.production:
                continue
            states = [self.deployment_statuses[i].state for i in other.statuses]
            latest = self.latest_deployment_status(other)
            if "success" in states and latest is not None and latest.state != "inactive":
                inactive = self.record_deployment_status(
                    other,
                    "inactive",
                    creator,
                    environment=other.environment,
                    environment_url=latest.environment_url,
                    by_actions=by_actions,
                )
                other.updated_at = inactive.created_at

    def record_deployment_status(
        self,
        deployment: Deployment,
        state: str,
        creator: str,
        *,
        environment: str,
        description: str = "",
        url: str = "",
        environment_url: str = "",
        by_actions: bool = False,
    ) -> DeploymentStatus:
        """Append a status to ``deployment`` as it is, telling no listener (``target_url`` and
        ``log_url`` are one value, as GitHub keeps them)."""
        status = DeploymentStatus(
            id=self.new_id(),
            deployment_id=deployment.id,
            state=state,
            creator=creator,
            description=description,
            environment=environment,
            target_url=url,
            log_url=url,
            environment_url=environment_url,
            created_at=self.now(),
            by_actions=by_actions,
        )
        self.deployment_statuses[status.id] = status
        deployment.statuses.append(status.id)
        return status


class BaseMoved(Exception):
    """The base branch moved under a merge (GitHub answers 409 and the client retries)."""
