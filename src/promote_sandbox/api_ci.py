"""Deployments, deployment statuses, check runs, Actions and environments."""

from __future__ import annotations

import json
from typing import Any

from promote_sandbox.apibase import REPO
from promote_sandbox.apibase import Base
from promote_sandbox.apibase import by_id
from promote_sandbox.server import ApiError
from promote_sandbox.server import Reply
from promote_sandbox.server import Request
from promote_sandbox.server import Router
from promote_sandbox.server import invalid
from promote_sandbox.server import not_found
from promote_sandbox.server import paginate
from promote_sandbox.store import CheckRun
from promote_sandbox.store import Deployment
from promote_sandbox.store import Run
from promote_sandbox.store import Workflow
from promote_sandbox.store import iso

DEPLOYMENT_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
RUN_STATUSES = (
    "requested",
    "in_progress",
    "completed",
    "queued",
    "pending",
    "waiting",
    "action_required",
)
RUN_CONCLUSIONS = ("cancelled", "failure", "neutral", "skipped", "stale", "success", "timed_out")


class CiApi(Base):
    def register(self, r: Router) -> None:
        r.add("GET", f"{REPO}/deployments", self.list_deployments)
        r.add("POST", f"{REPO}/deployments", self.create_deployment)
        r.add("GET", f"{REPO}/deployments/{{deployment_id}}", self.get_deployment)
        r.add("DELETE", f"{REPO}/deployments/{{deployment_id}}", self.delete_deployment)
        r.add(
            "GET", f"{REPO}/deployments/{{deployment_id}}/statuses", self.list_deployment_statuses
        )
        r.add(
            "POST", f"{REPO}/deployments/{{deployment_id}}/statuses", self.create_deployment_status
        )
        r.add(
            "GET",
            f"{REPO}/deployments/{{deployment_id}}/statuses/{{status_id}}",
            self.get_deployment_status,
        )
        r.add("GET", f"{REPO}/commits/{{ref:path}}/check-runs", self.list_check_runs)
        r.add("GET", f"{REPO}/commits/{{ref:path}}/check-suites", self.list_check_suites)
        r.add("GET", f"{REPO}/check-runs/{{check_run_id}}", self.get_check_run)
        r.add("POST", f"{REPO}/check-runs", self.create_check_run)
        r.add("GET", f"{REPO}/actions/workflows", self.list_workflows)
        r.add("GET", f"{REPO}/actions/workflows/{{workflow_id}}", self.get_workflow)
        r.add("GET", f"{REPO}/actions/workflows/{{workflow_id}}/runs", self.list_workflow_runs)
        r.add("POST", f"{REPO}/actions/workflows/{{workflow_id}}/dispatches", self.dispatch)
        r.add("GET", f"{REPO}/actions/runs", self.list_runs)
        r.add("GET", f"{REPO}/actions/runs/{{run_id}}", self.get_run)
        r.add("GET", f"{REPO}/actions/runs/{{run_id}}/jobs", self.list_jobs)
        r.add("GET", f"{REPO}/actions/jobs/{{job_id}}", self.get_job)
        r.add("GET", f"{REPO}/actions/jobs/{{job_id}}/logs", self.job_logs)
        r.add("POST", f"{REPO}/actions/runs/{{run_id}}/cancel", self.cancel_run)
        r.add(
            "GET", f"{REPO}/actions/runs/{{run_id}}/pending_deployments", self.pending_deployments
        )
        r.add(
            "POST",
            f"{REPO}/actions/runs/{{run_id}}/pending_deployments",
            self.review_deployments,
            write=False,
        )
        r.add("GET", f"{REPO}/actions/runs/{{run_id}}/approvals", self.approvals)
        r.add("GET", f"{REPO}/environments", self.list_environments)
        r.add("GET", f"{REPO}/environments/{{environment_name:path}}", self.get_environment)
        r.add("PUT", f"{REPO}/environments/{{environment_name:path}}", self.put_environment)

    # -- deployments -------------------------------------------------------------------------

    def _deployment(self, req: Request) -> Deployment:
        return by_id(self.store.deployments, req, "deployment_id")

    def _contexts(self, sha: str) -> dict[str, str]:
        """Latest state per commit-status context and per check-run name on a commit."""
        states: dict[str, tuple[int, str]] = {}
        for status in self.store.statuses.values():
            if status.sha == sha:
                key = status.context
                if key not in states or status.id > states[key][0]:
                    states[key] = (status.id, status.state)
        for check in self.store.check_runs.values():
            if check.head_sha == sha:
                key = check.name
                state = check.conclusion if check.status == "completed" else "pending"
                if key not in states or check.id > states[key][0]:
                    states[key] = (check.id, state or "pending")
        return {k: v[1] for k, v in states.items()}

    def create_deployment(self, req: Request) -> Reply:
        self.check_repo(req)
        body = self.body(req)
        ref = self.text(req, "ref", "Deployment", required=True) or ""
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No ref found for: {ref}")
        task = self.text(req, "task", "Deployment") or "deploy"
        environment = self.text(req, "environment", "Deployment") or "production"
        description = body.get("description", "")
        if description is not None and not isinstance(description, str):
            raise invalid("Deployment", "description")
        payload: Any = body.get("payload", {})
        if isinstance(payload, str):
            try:
                parsed = json.loads(payload) if payload else {}
                payload = parsed if isinstance(parsed, dict) else payload
            except ValueError:
                pass
        elif not isinstance(payload, dict):
            raise invalid("Deployment", "payload")
        auto_merge = self.flag(req, "auto_merge", True)
        if auto_merge:
            merged = self._auto_merge(ref, sha, req.login)
            if merged is not None:
                return merged
        required = body.get("required_contexts")
        contexts = self._contexts(sha)
        if required is None:
            required = list(contexts)
        if not isinstance(required, list):
            raise invalid("Deployment", "required_contexts")
        failed = [c for c in required if contexts.get(c) != "success"]
        if failed:
            raise ApiError(
                409,
                f"Conflict: Commit status checks failed for {ref}.",
                errors=[
                    {
                        "contexts": [
                            {"context": c, "state": contexts.get(c, "missing")}
                            for c in sorted(required)
                        ],
                        "resource": "Deployment",
                        "field": "required_contexts",
                        "code": "invalid",
                    }
                ],
            )
        transient = self.flag(req, "transient_environment", False)
        production = body.get("production_environment")
        deployment = self.store.add_deployment(
            sha,
            ref,
            environment,
            req.login,
            task=task,
            payload=payload,
            description=description,
            transient=transient,
            production=production if isinstance(production, bool) else None,
        )
        reply = Reply(201, self.shapes.deployment(deployment))
        reply.headers["Location"] = f"{self.shapes.api}/deployments/{deployment.id}"
        return reply

    def _auto_merge(self, ref: str, sha: str, login: str) -> Reply | None:
        """``auto_merge`` (default true): merge the default branch into a ref that is behind it."""
        store = self.store
        default = store.default_branch
        default_sha = store.branch_sha(default)
        if default_sha is None or store.repo.is_ancestor(default_sha, sha):
            return None
        branch = ref.removeprefix("refs/heads/").removeprefix("heads/")
        if store.branch_sha(branch) != sha:
            raise ApiError(409, f"Conflict merging {default} into {ref}.")
        tree = store.repo.merge_trees(sha, default_sha)
        if tree is None:
            raise ApiError(409, f"Conflict merging {default} into {branch}.")
        now = store.now()
        merge = store.repo.commit_tree(
            tree,
            [sha, default_sha],
            f"Merge branch '{default}' into {branch}\n",
            store.ident(login, now),
            store.web_flow(now),
        )
        if not store.move_ref(f"refs/heads/{branch}", merge, sha, login):
            raise ApiError(409, f"Conflict merging {default} into {branch}.")
        return Reply(202, {"message": f"Auto-merged {default} into {branch} on deployment."})

    def list_deployments(self, req: Request) -> Reply:
        self.check_repo(req)
        found = sorted(self.store.deployments.values(), key=lambda d: d.id, reverse=True)
        sha, ref, task, env = req.q("sha"), req.q("ref"), req.q("task"), req.q("environment")
        if sha is not None:
            found = [d for d in found if d.sha == sha]
        if ref is not None:
            found = [d for d in found if d.ref == ref]
        if task is not None:
            found = [d for d in found if d.task == task]
        if env is not None:
            found = [d for d in found if d.environment == env]
        return paginate(req, [self.shapes.deployment(d) for d in found])

    def get_deployment(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(200, self.shapes.deployment(self._deployment(req)))

    def delete_deployment(self, req: Request) -> Reply:
        self.check_repo(req)
        deployment = self._deployment(req)
        latest = self.store.latest_deployment_status(deployment)
        others = [
            d for d in self.store.deployments.values() if d.environment == deployment.environment
        ]
        if len(others) > 1 and (latest is None or latest.state != "inactive"):
            raise ApiError(
                422,
                "We cannot delete an active deployment unless it is the only deployment in a given "
                "environment.",
            )
        for sid in deployment.statuses:
            self.store.deployment_statuses.pop(sid, None)
        del self.store.deployments[deployment.id]
        return Reply(204)

    def create_deployment_status(self, req: Request) -> Reply:
        self.check_repo(req)
        deployment = self._deployment(req)
        state = self.text(req, "state", "DeploymentStatus", required=True)
        if state not in DEPLOYMENT_STATES:
            raise invalid(
                "DeploymentStatus", "state", "custom", message="state is not included in the list"
            )
        description = self.text(req, "description", "DeploymentStatus") or ""
        if len(description) > 140:
            raise invalid(
                "DeploymentStatus",
                "description",
                "custom",
                message="description is too long (maximum is 140 characters)",
            )
        status = self.store.add_deployment_status(
            deployment,
            state,
            req.login,
            description=description,
            environment=self.text(req, "environment", "DeploymentStatus"),
            target_url=self.text(req, "target_url", "DeploymentStatus") or "",
            log_url=self.text(req, "log_url", "DeploymentStatus") or "",
            environment_url=self.text(req, "environment_url", "DeploymentStatus") or "",
            auto_inactive=self.flag(req, "auto_inactive", True),
        )
        reply = Reply(201, self.shapes.deployment_status(status))
        reply.headers["Location"] = (
            f"{self.shapes.api}/deployments/{deployment.id}/statuses/{status.id}"
        )
        return reply

    def list_deployment_statuses(self, req: Request) -> Reply:
        self.check_repo(req)
        deployment = self._deployment(req)
        statuses = [
            self.store.deployment_statuses[i] for i in sorted(deployment.statuses, reverse=True)
        ]
        return paginate(req, [self.shapes.deployment_status(s) for s in statuses])

    def get_deployment_status(self, req: Request) -> Reply:
        self.check_repo(req)
        deployment = self._deployment(req)
        try:
            sid = int(req.params["status_id"])
        except ValueError:
            raise not_found() from None
        if sid not in deployment.statuses:
            raise not_found()
        return Reply(200, self.shapes.deployment_status(self.store.deployment_statuses[sid]))

    # -- checks ------------------------------------------------------------------------------

    def list_check_runs(self, req: Request) -> Reply:
        self.check_repo(req)
        ref = req.params["ref"]
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        runs = sorted(
            (c for c in self.store.check_runs.values() if c.head_sha == sha),
            key=lambda c: c.id,
            reverse=True,
        )
        if (req.q("filter") or "latest") == "latest":
            latest: dict[tuple[str, str], CheckRun] = {}
            for check in runs:
                latest.setdefault((check.app, check.name), check)
            runs = [c for c in runs if latest[(c.app, c.name)] is c]
        name = req.q("check_name")
        if name is not None:
            runs = [c for c in runs if c.name == name]
        status = req.q("status")
        if status is not None:
            runs = [c for c in runs if c.status == status]
        return paginate(req, [self.shapes.check_run(c) for c in runs], key="check_runs")

    def list_check_suites(self, req: Request) -> Reply:
        self.check_repo(req)
        ref = req.params["ref"]
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        suites = sorted(
            (s for s in self.store.suites.values() if s.head_sha == sha), key=lambda s: s.id
        )
        name = req.q("check_name")
        if name is not None:
            suites = [
                s
                for s in suites
                if any(
                    c.suite_id == s.id and c.name == name for c in self.store.check_runs.values()
                )
            ]
        return paginate(req, [self.shapes.check_suite(s) for s in suites], key="check_suites")

    def get_check_run(self, req: Request) -> Reply:
        self.check_repo(req)
        check = by_id(self.store.check_runs, req, "check_run_id")
        return Reply(200, self.shapes.check_run(check))

    def create_check_run(self, req: Request) -> Reply:
        self.check_repo(req)
        raise ApiError(403, "You must authenticate via a GitHub App.")

    # -- actions -----------------------------------------------------------------------------

    def _workflow(self, req: Request) -> Workflow:
        if self.ci.actions is not None:
            self.ci.actions.refresh()
        key = req.params["workflow_id"]
        for wf in self.store.workflows.values():
            if key in (str(wf.id), wf.path.rsplit("/", 1)[-1], wf.path):
                return wf
        raise not_found()

    def _run(self, req: Request) -> Run:
        return by_id(self.store.runs, req, "run_id")

    def list_workflows(self, req: Request) -> Reply:
        self.check_repo(req)
        if self.ci.actions is not None:
            self.ci.actions.refresh()
        wfs = sorted(self.store.workflows.values(), key=lambda w: w.id)
        return paginate(req, [self.shapes.workflow(w) for w in wfs], key="workflows")

    def get_workflow(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(200, self.shapes.workflow(self._workflow(req)))

    def _filtered_runs(self, req: Request, workflow: Workflow | None) -> Reply:
        runs = sorted(self.store.runs.values(), key=lambda r: r.id, reverse=True)
        if workflow is not None:
            runs = [r for r in runs if r.workflow_id == workflow.id]
        actor, branch, event = req.q("actor"), req.q("branch"), req.q("event")
        status, head_sha, suite = req.q("status"), req.q("head_sha"), req.q("check_suite_id")
        created = req.q("created")
        if actor is not None:
            runs = [r for r in runs if r.actor == actor]
        if branch is not None:
            runs = [r for r in runs if r.head_branch == branch]
        if event is not None:
            runs = [r for r in runs if r.event == event]
        if head_sha is not None:
            runs = [r for r in runs if r.head_sha == head_sha]
        if suite is not None:
            runs = [r for r in runs if str(r.suite_id) == suite]
        if status is not None:
            if status == "action_required":  # a status or a conclusion, as GitHub has both
                runs = [r for r in runs if status in (r.status, r.conclusion)]
            elif status in RUN_CONCLUSIONS:
                runs = [r for r in runs if r.conclusion == status]
            elif status in RUN_STATUSES:
                runs = [r for r in runs if r.status == status]
            else:
                raise invalid("WorkflowRun", "status")
        if created is not None:
            runs = [r for r in runs if _created_matches(iso(r.created_at) or "", created)]
        exclude = req.qbool("exclude_pull_requests")
        return paginate(
            req,
            [self.shapes.run(r, exclude_pull_requests=exclude) for r in runs],
            key="workflow_runs",
        )

    def list_runs(self, req: Request) -> Reply:
        self.check_repo(req)
        return self._filtered_runs(req, None)

    def list_workflow_runs(self, req: Request) -> Reply:
        self.check_repo(req)
        return self._filtered_runs(req, self._workflow(req))

    def get_run(self, req: Request) -> Reply:
        self.check_repo(req)
        return Reply(
            200,
            self.shapes.run(
                self._run(req), exclude_pull_requests=req.qbool("exclude_pull_requests")
            ),
        )

    def list_jobs(self, req: Request) -> Reply:
        self.check_repo(req)
        run = self._run(req)
        jobs = [self.store.jobs[j] for j in run.job_ids]
        return paginate(req, [self.shapes.job(j) for j in jobs], key="jobs")

    def get_job(self, req: Request) -> Reply:
        self.check_repo(req)
        job = by_id(self.store.jobs, req, "job_id")
        return Reply(200, self.shapes.job(job))

    def job_logs(self, req: Request) -> Reply:
        """GitHub answers ``302 Found`` to a short-lived plain-text download; so does this."""
        self.check_repo(req)
        job = by_id(self.store.jobs, req, "job_id")
        location = f"{self.store.base_url}/_sandbox/logs/jobs/{job.id}"
        return Reply(302, None, {"Location": location})

    def cancel_run(self, req: Request) -> Reply:
        self.check_repo(req)
        self.ci.cancel(self._run(req))
        return Reply(202, {})

    def dispatch(self, req: Request) -> Reply:
        self.check_repo(req)
        workflow = self._workflow(req)
        ref = self.text(req, "ref", "WorkflowDispatch", required=True) or ""
        run = self.ci.dispatch(workflow, ref, self.body(req).get("inputs"), req.login)
        if self.flag(req, "return_run_details", False):
            return Reply(
                200,
                {
                    "workflow_run_id": run.id,
                    "run_url": f"{self.shapes.api}/actions/runs/{run.id}",
                    "html_url": f"{self.shapes.html}/actions/runs/{run.id}",
                },
            )
        return Reply(204)

    def pending_deployments(self, req: Request) -> Reply:
        self.check_repo(req)
        run = self._run(req)
        items = []
        for env_name, reviewers in self.ci.pending(run):
            env = self.store.environments[env_name]
            can = req.login in reviewers and not (
                env.prevent_self_review and req.login == run.triggering_actor
            )
            items.append(
                {
                    "environment": self.shapes.environment_ref(env),
                    "wait_timer": env.wait_timer,
                    "wait_timer_started_at": iso(run.waiting_since) if env.wait_timer else None,
                    "current_user_can_approve": can,
                    "reviewers": [
                        {"type": "User", "reviewer": self.shapes.user(x)} for x in reviewers
                    ],
                }
            )
        return Reply(200, items)

    def review_deployments(self, req: Request) -> Reply:
        self.check_repo(req)
        run = self._run(req)
        body = self.body(req)
        env_ids = body.get("environment_ids")
        state = body.get("state")
        comment = body.get("comment")
        if not isinstance(env_ids, list) or not all(isinstance(i, int) for i in env_ids):
            raise invalid("PendingDeployment", "environment_ids", "missing_field")
        if state not in ("approved", "rejected"):
            raise invalid("PendingDeployment", "state")
        if not isinstance(comment, str):
            raise invalid("PendingDeployment", "comment", "missing_field")
        deployments = self.ci.review(run, env_ids, state, comment, req.login)
        return Reply(200, [self.shapes.deployment(d) for d in deployments])

    def approvals(self, req: Request) -> Reply:
        self.check_repo(req)
        run = self._run(req)
        items = []
        for approval in run.approvals:
            env = self.store.environments[approval.environment]
            ref = self.shapes.environment_ref(env)
            ref["created_at"] = iso(env.created_at)
            ref["updated_at"] = iso(env.updated_at)
            items.append(
                {
                    "environments": [ref],
                    "state": approval.state,
                    "user": self.shapes.user(approval.user),
                    "comment": approval.comment,
                }
            )
        return Reply(200, items)

    # -- environments ------------------------------------------------------------------------

    def list_environments(self, req: Request) -> Reply:
        self.check_repo(req)
        envs = sorted(self.store.environments.values(), key=lambda e: e.name)
        return paginate(req, [self.shapes.environment(e) for e in envs], key="environments")

    def get_environment(self, req: Request) -> Reply:
        self.check_repo(req)
        env = self.store.environments.get(req.params["environment_name"])
        if env is None:
            raise not_found()
        return Reply(200, self.shapes.environment(env))

    def put_environment(self, req: Request) -> Reply:
        self.check_repo(req)
        if self.store.users[req.login].role != "admin" and not self.store.can_write(req.login):
            raise ApiError(403, "Must have admin rights to Repository.")
        name = req.params["environment_name"]
        body = self.body(req)
        wait_timer = body.get("wait_timer", None)
        if wait_timer is not None and (
            not isinstance(wait_timer, int) or not 0 <= wait_timer <= 43200
        ):
            raise ApiError(422, "wait_timer must be an integer between 0 and 43200")
        reviewers = body.get("reviewers")
        logins: list[str] | None = None
        if reviewers is not None:
            if not isinstance(reviewers, list) or len(reviewers) > 6:
                raise ApiError(422, "reviewers must be a list of at most six users or teams")
            logins = []
            by_id = {u.id: u.login for u in self.store.users.values() if u.type == "User"}
            for item in reviewers:
                if (
                    not isinstance(item, dict)
                    or item.get("type") != "User"
                    or item.get("id") not in by_id
                ):
                    raise ApiError(422, "reviewers must name users of this repository by id")
                logins.append(by_id[item["id"]])
        policy = body.get("deployment_branch_policy", "unset")
        if policy not in ("unset", None) and (
            not isinstance(policy, dict)
            or not isinstance(policy.get("protected_branches"), bool)
            or not isinstance(policy.get("custom_branch_policies"), bool)
            or policy["protected_branches"] == policy["custom_branch_policies"]
        ):
            raise ApiError(
                422,
                "Failed to create the environment protection rule: protected_branches and "
                "custom_branch_policies cannot have the same value.",
            )
        env = self.store.ensure_environment(name)
        if wait_timer is not None:
            env.wait_timer = wait_timer
        if logins is not None:
            env.reviewers = logins
        if "prevent_self_review" in body:
            env.prevent_self_review = bool(body["prevent_self_review"])
        if policy != "unset":
            env.branch_policy = (
                None
                if policy is None
                else {
                    "protected_branches": policy["protected_branches"],
                    "custom_branch_policies": policy["custom_branch_policies"],
                }
            )
        env.updated_at = self.store.now()
        return Reply(200, self.shapes.environment(env))


def _created_matches(created: str, query: str) -> bool:
    """GitHub's search-syntax date filter, for the forms a tool uses: >=, <=, >, <, a..b, exact."""
    for op in (">=", "<=", ">", "<"):
        if query.startswith(op):
            value = query[len(op) :]
            cmp = {
                ">=": created >= value,
                "<=": created <= value,
                ">": created > value,
                "<": created < value,
            }
            return _normalise_cmp(created, value, op, cmp)
    if ".." in query:
        low, _, high = query.partition("..")
        return (low in ("*", "") or created >= low) and (
            high in ("*", "") or created[: len(high)] <= high
        )
    return created.startswith(query)


def _normalise_cmp(created: str, value: str, op: str, cmp: dict[str, bool]) -> bool:
    # A bare date compares against the day, a full timestamp against the second.
    if len(value) == 10:
        day = created[:10]
        return {">=": day >= value, "<=": day <= value, ">": day > value, "<": day < value}[op]
    return cmp[op]
