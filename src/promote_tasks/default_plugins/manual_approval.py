"""The built-in manual test: a designated reviewer, never the change's author, approves or
rejects the exact sha under test, on a checklist issue or through GitHub's environment
reviews. ``promote approve`` / ``reject`` reach it through its ``waiting`` and ``record``
capabilities, which any team's manual validator can offer too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from promote_tasks import ledger
from promote_tasks.config import Settings
from promote_tasks.errors import GitHubError
from promote_tasks.errors import PromoteError
from promote_tasks.hookspecs import hookimpl
from promote_tasks.machine import FEATURE_PREFIX
from promote_tasks.machine import plan_of
from promote_tasks.model import Approval
from promote_tasks.model import EnvFacts
from promote_tasks.model import Result
from promote_tasks.model import State
from promote_tasks.model import Verdict
from promote_tasks.registry import GitHubPort
from promote_tasks.registry import Register
from promote_tasks.registry import ValidationRun
from promote_tasks.registry import Validator

BACKENDS = ("issue", "environment")
DEFAULT_CHECKLIST = "- [ ] The change works as the plan describes\n- [ ] Nothing else broke\n"


def _names(value: Any) -> bool:
    return all(isinstance(item, str) and item.strip() for item in value)


class ManualApproval:
    """A designated reviewer, not an author of the change, approves this exact sha.

    Two backends. ``issue`` (default): a checklist issue from the repository's template,
    assigned to the reviewers; ``promote approve`` / ``reject`` post the decision there.
    ``environment``: GitHub's own required reviewers on the environment hold the deploy job
    (a ``waiting`` run); ``promote approve`` reviews the run's pending deployment, and the
    verdict reads the run's approvals.
    """

    name = "manual-approval"
    manual = True  # waits for a person: the approval timeout applies, not the validation one
    option_types: ClassVar[Mapping[str, type | tuple[type, ...]]] = {
        "reviewers": list,
        "template": str,
        "backend": str,
    }

    def option_problem(self, option: str, value: Any) -> str | None:
        if option == "reviewers" and not _names(value):  # an empty list: _check_reviewers
            return "expected a list of GitHub logins"
        if option == "template" and not value.strip():
            return "expected a path in the repository"
        if option == "backend" and value not in BACKENDS:
            return 'expected "issue" or "environment"'
        return None

    def start(self, run: ValidationRun) -> None:
        """Open the checklist issue for this exact sha, assigned to the reviewers (once)."""
        github = run.github
        if github is None or run.options.get("backend", "issue") == "environment":
            return
        env, sha = run.environment.name, run.sha
        template = str(run.options.get("template", run.settings.checklist_template))
        text = github.run(github.read_file(template, sha)) or DEFAULT_CHECKLIST
        github.run(
            github.checklist_issue(
                ledger.key(env, sha),
                ledger.checklist_title(env, sha),
                ledger.checklist_body(text, env, sha),
                reviewers(run),
            )
        )

    def check(self, run: ValidationRun) -> Verdict:
        allowed = {r.lower() for r in reviewers(run)}
        if not allowed:
            return Verdict(run.name, Result.FAILED, None, "no designated reviewers are configured")
        authors = change_authors(run.github, run.first_branch, run.facts)
        recorded = run.facts.approvals
        if run.options.get("backend", "issue") == "environment":
            recorded = environment_decisions(run)
        decisions = [
            a
            for a in recorded
            if a.sha == run.sha and a.user.lower() in allowed and a.user.lower() not in authors
        ]
        if not decisions:
            deciders = sorted(allowed - authors)  # an author never decides on their own change
            if not deciders:
                return Verdict(
                    run.name, Result.PENDING, None,
                    "waiting for a designated reviewer who did not write the change",
                )  # fmt: skip
            return Verdict(run.name, Result.PENDING, None, "waiting for " + " or ".join(deciders))
        # A rejection stands: a later approval of the same sha does not undo it.
        rejected = next((a for a in decisions if a.state != "approved"), None)
        if rejected is not None:
            return Verdict(
                run.name,
                Result.FAILED,
                rejected.url or None,
                f"rejected by {rejected.user}: {rejected.reason}",
            )
        last = decisions[-1]
        return Verdict(run.name, Result.PASSED, last.url or None, f"approved by {last.user}")

    # -- what promote approve / reject call ----------------------------------------------

    def waiting(self, run: ValidationRun, state: State | None) -> bool:
        """Is this instance waiting for a person's decision? The checklist issue says a
        manual test is asked for, even when the run that opened it died before it recorded
        the instance as validating; the environment backend holds the deploy itself."""
        if run.options.get("backend", "issue") == "environment":
            return state is State.DEPLOYING
        opened = run.facts.checklist is not None
        return state is State.VALIDATING or (opened and state is State.DEPLOYED)

    def decider(self, run: ValidationRun) -> str:
        """Who the token belongs to, if they may decide (reads only): a designated reviewer
        who did not write the change."""
        github = _github(run)
        user = str(github.run(github.user()))
        allowed = reviewers(run)
        if user.lower() not in {r.lower() for r in allowed}:
            raise PromoteError(
                f"{user} is not a designated reviewer of {run.environment.name} "
                f"(reviewers: {', '.join(allowed) or 'none'})"
            )
        if user.lower() in change_authors(github, run.first_branch, run.facts):
            raise PromoteError(f"{user} wrote this change and cannot approve or reject it")
        return user

    def record(self, run: ValidationRun, user: str, approve: bool, reason: str) -> str:
        """Record ``user``'s decision (see :meth:`decider`), bound to ``run.sha``."""
        github = _github(run)
        env, sha = run.environment.name, run.sha
        allowed = reviewers(run)
        verb = "approved" if approve else "rejected"
        if run.options.get("backend", "issue") == "environment":
            url = _review_pending_deployment(run, verb, reason)
        else:
            number, url, _ = github.run(
                github.checklist_issue(
                    ledger.key(env, sha),
                    ledger.checklist_title(env, sha),
                    ledger.checklist_body(DEFAULT_CHECKLIST, env, sha),
                    allowed,
                )
            )
            github.run(github.comment(number, ledger.decision_line(approve, sha, reason)))
            # The comment is the record; a reviewer with read access may not close the issue.
            with contextlib.suppress(GitHubError):
                github.run(github.close_issue(number))
        return f"{verb} {env} at {sha[:7]} as {user}: {url}"


def _review_pending_deployment(run: ValidationRun, verb: str, reason: str) -> str:
    """Review the deploy run's pending deployment of this environment (the environment
    backend: GitHub's own required reviewers hold the deploy job)."""
    github = _github(run)
    env, sha = run.environment.name, run.sha
    workflow = run.settings.deploy_workflow
    waiting = [
        r for r in run.facts.runs
        if r.head_sha == sha and r.status == "waiting" and r.path.rsplit("/", 1)[-1] == workflow
    ]  # fmt: skip
    for deploy in sorted(waiting, key=lambda r: -r.id):
        pending = github.run(github.pending_deployments(deploy.id))
        ids = [p["environment"]["id"] for p in pending or [] if p["environment"].get("name") == env]
        if ids:
            comment = reason or f"{verb} through promote"
            github.run(github.review_deployments(deploy.id, ids, verb, comment))
            return deploy.url
    raise PromoteError(f"no deploy run of {env} at {sha[:7]} is waiting for a review")


def _github(run: ValidationRun) -> GitHubPort:
    if run.github is None:
        raise PromoteError(f"{run.name}: a decision is recorded on GitHub, and none is connected")
    return run.github


def change_authors(github: GitHubPort | None, first_branch: str, facts: EnvFacts) -> set[str]:
    """Who wrote the change at this head: the PR authors carried along, and, when GitHub can be
    asked, everyone who authored or committed a commit of the plan's merged feature PR."""
    authors = {a.lower() for a in facts.change_authors}
    plan = plan_of(facts.merged_pull)
    if github is None or plan is None:
        return authors
    pulls = github.run(github.pulls_from(f"{FEATURE_PREFIX}{plan}", first_branch))
    for pull in pulls:
        if not pull.get("merged_at"):
            continue
        authors.add(pull["user"]["login"].lower())
        for commit in github.run(github.pull_commits(pull["number"])):
            for who in (commit.get("author"), commit.get("committer")):
                login = (who or {}).get("login") or ""
                if login and login != "web-flow" and not login.endswith("[bot]"):
                    authors.add(login.lower())
    return authors


def reviewers(run: ValidationRun) -> list[str]:
    return [str(r) for r in run.options.get("reviewers", run.settings.reviewers)]


def environment_decisions(run: ValidationRun) -> tuple[Approval, ...]:
    """Reviews of this environment on the deploy runs of this sha (GitHub's required reviewers)."""
    github = run.github
    if github is None:
        return ()
    workflow = run.settings.deploy_workflow
    runs = [
        r for r in run.facts.runs if r.head_sha == run.sha and r.path.rsplit("/", 1)[-1] == workflow
    ]
    out: list[Approval] = []
    for deploy in sorted(runs, key=lambda r: r.id):
        for review in github.run(github.reviews_for_run(deploy.id)) or []:
            if any(e.get("name") == run.environment.name for e in review.get("environments", [])):
                login = (review.get("user") or {}).get("login", "")
                out.append(
                    Approval(
                        login, run.sha, review["state"], deploy.url, review.get("comment") or ""
                    )
                )
    return tuple(out)


@hookimpl
def register_validators(register: Register[Validator], settings: Settings) -> None:
    register(ManualApproval())
