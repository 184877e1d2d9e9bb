"""The writes: each looks before it writes (``write_once``), so any may be called again."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from promote_tasks import ledger
from promote_tasks.errors import GitHubError
from promote_tasks.github.client import UncertainWrite
from promote_tasks.github.read import Reader
from promote_tasks.github.read import _key_of
from promote_tasks.github.read import _payload
from promote_tasks.github.read import newest_status
from promote_tasks.ledger import LOCK_REF
from promote_tasks.ledger import bookkeeping_trailer
from promote_tasks.ledger import lock_holder
from promote_tasks.ledger import lock_message
from promote_tasks.model import ROLLBACK_TASK


class GitHub(Reader):
    """One client per process; every method is safe to call again (writes look first)."""

    async def set_status(
        self,
        sha: str,
        context: str,
        state: str,
        description: str = "",
        target_url: str = "",
        *,
        seen: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """Set a commit status unless its newest in ``context`` already says the same.
        ``seen``: the statuses of ``sha`` as read under the lock (this run is the only writer),
        for the first look; a look after a failed or lost write asks GitHub."""
        body: dict[str, Any] = {
            "state": state,
            "context": context,
            "description": description[:140],
        }
        if target_url:
            body["target_url"] = target_url

        first = seen

        async def look() -> dict[str, Any] | None:
            nonlocal first
            if first is not None:
                latest, first = newest_status(first, context), None
            else:
                latest = await self.latest_status(sha, context)
            if latest is None or latest["state"] != state:
                return None
            return latest if (latest.get("description") or "") == body["description"] else None

        async def write() -> dict[str, Any]:
            return dict(
                await self._op("repos.create_commit_status", idempotent=False, sha=sha, **body)
            )

        _, written = await self.write_once(look, write)
        return (
            f"{context} = {state} on {sha[:7]}"
            if written
            else f"{context} already {state} on {sha[:7]}"
        )

    async def open_pull(
        self, head: str, base: str, title: str, body: str, sha: str | None = None
    ) -> tuple[int | None, str, bool]:
        """Find the PR ``head → base`` or create it; (number, url, created).

        The look finds an open PR, or one already merged at ``sha`` (its answer was lost and
        the Merge machine merged it before this run). GitHub's "No commits between" means the
        base already holds the head: (None, "", False).
        """

        async def look() -> dict[str, Any] | None:
            found = await self._fresh(
                "pulls.list", state="all", head=f"{self.owner}:{head}", base=base, per_page=30
            )
            for pull in found or []:
                if pull["state"] == "open":
                    return dict(pull)
            landed = [
                p for p in found or [] if p.get("merged_at") and sha and p["head"]["sha"] == sha
            ]
            return dict(landed[0]) if landed else None

        async def write() -> dict[str, Any]:
            return dict(
                await self._op(
                    "pulls.create", idempotent=False, head=head, base=base, title=title, body=body
                )
            )

        try:
            pull, created = await self.write_once(look, write)
        except GitHubError as e:
            if e.status == 422 and "no commits between" in str(e).lower():
                return None, "", False
            raise
        return pull["number"], pull["html_url"], created

    async def dispatch(self, workflow: str, ref: str, inputs: Mapping[str, str]) -> str:
        data = await self._op(  # never resent: a lost answer may hide a started run
            "actions.create_workflow_dispatch",
            idempotent=False,
            workflow_id=workflow,
            ref=ref,
            inputs=dict(inputs),
            return_run_details=True,
        )
        return str((data or {}).get("html_url") or f"{workflow} dispatched on {ref}")

    async def checklist_issue(
        self, key: str, title: str, body: str, assignees: list[str]
    ) -> tuple[int, str, bool]:
        """Find the checklist issue for ``env@sha`` or open it; (number, url, created)."""

        async def look() -> dict[str, Any] | None:
            issues = await self._fresh(
                "issues.list_for_repo", labels=ledger.CHECKLIST_LABEL, state="all", per_page=100
            )
            return next((dict(i) for i in issues if _key_of(i) == key), None)

        async def write() -> dict[str, Any]:
            return dict(
                await self._op(
                    "issues.create",
                    idempotent=False,
                    title=title,
                    body=body,
                    labels=[ledger.CHECKLIST_LABEL],
                    assignees=assignees,
                )
            )

        issue, created = await self.write_once(look, write)
        return issue["number"], issue["html_url"], created

    async def comment(self, number: int, body: str) -> str:
        """Post ``body`` on issue ``number`` unless this user already posted exactly that."""
        me = await self.user()

        async def look() -> dict[str, Any] | None:
            comments = await self._fresh("issues.list_comments", issue_number=number, per_page=100)
            mine = (
                c
                for c in comments
                if c.get("body") == body and (c.get("user") or {}).get("login") == me
            )
            return next((dict(c) for c in mine), None)

        async def write() -> dict[str, Any]:
            return dict(
                await self._op(
                    "issues.create_comment", idempotent=False, issue_number=number, body=body
                )
            )

        created, _ = await self.write_once(look, write)
        return str(created["html_url"])

    async def close_issue(self, number: int) -> None:
        await self.update_issue(number, state="closed")

    async def create_issue(self, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        """Open an issue; sent once (a lost answer is for the caller's look to find)."""
        return dict(
            await self._op("issues.create", idempotent=False, title=title, body=body, labels=labels)
        )

    async def update_issue(
        self,
        number: int,
        *,
        state: str | None = None,
        labels: list[str] | None = None,
        body: str | None = None,
    ) -> None:
        """Set what is given of issue ``number``'s state, labels and body."""
        given: dict[str, Any] = {"state": state, "labels": labels, "body": body}
        fields = {name: value for name, value in given.items() if value is not None}
        await self._op("issues.update", issue_number=number, **fields)

    async def commit_changes(
        self, branch: str, message: str, changes: Mapping[str, str | None]
    ) -> str:
        """One commit on ``branch``: path -> new text, or None to delete. Returns the new sha."""
        ref = await self._fresh("git.get_ref", ref=f"heads/{branch}")
        parent = ref["object"]["sha"]
        commit = await self._op("git.get_commit", commit_sha=parent)
        entries = []
        for path, text in changes.items():
            if text is None:
                entries.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
            else:
                entries.append({"path": path, "mode": "100644", "type": "blob", "content": text})
        tree = await self._op("git.create_tree", tree=entries, base_tree=commit["tree"]["sha"])
        new = await self._op(
            "git.create_commit",
            message=f"{message}\n\n{bookkeeping_trailer(parent)}\n",
            tree=tree["sha"],
            parents=[parent],
        )
        await self._op("git.update_ref", ref=f"heads/{branch}", sha=new["sha"], force=False)
        return str(new["sha"])

    # -- failures: rollback records, dispatches, refs, reverts (each look before it writes) ---

    async def rollback_deployment(
        self,
        environment: str,
        ref: str,
        failed_sha: str,
        plan: str,
        description: str = "",
        *,
        task: str = ROLLBACK_TASK,
        key: str = "rollback_of",
        carries: tuple[str, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """Find the rollback deployment of ``failed_sha`` in ``environment`` or create it at
        ``ref``; (deployment, created). Never two for one failed sha: found by ``task`` and the
        payload's ``promote.<key>``. ``carries``: the failed head's plans, on the record."""

        async def look() -> dict[str, Any] | None:
            found = await self._fresh(
                "repos.list_deployments", environment=environment, task=task, per_page=100
            )
            mine = [d for d in found or [] if _payload(d).get(key) == failed_sha]
            return dict(min(mine, key=lambda d: d["id"])) if mine else None

        async def write() -> dict[str, Any]:
            return dict(
                await self._op(
                    "repos.create_deployment",
                    idempotent=False,
                    ref=ref,
                    environment=environment,
                    task=task,
                    auto_merge=False,
                    required_contexts=[],
                    payload={"promote": {key: failed_sha, "plan": plan, "carries": list(carries)}},
                    description=description[:140],
                )
            )

        return await self.write_once(look, write)

    async def deploy_set_off(
        self, workflow: str | None, ref: str, environment: str, sha: str, anchor: Mapping[str, Any]
    ) -> bool:
        """Has a deploy of ``sha`` to ``environment`` been set off since the ``anchor``
        deployment was created? A newer deployment at ``sha`` says so, and so does a dispatched
        run of ``workflow`` on ``ref`` still in flight (it has not created its deployment yet)."""
        deployments = await self._fresh(
            "repos.list_deployments", environment=environment, sha=sha, per_page=100
        )
        if any(
            d["id"] > anchor["id"] and d.get("task") != ROLLBACK_TASK for d in deployments or []
        ):
            return True
        if workflow is None:
            return False
        data = await self._fresh(
            "actions.list_workflow_runs",
            workflow_id=workflow,
            event="workflow_dispatch",
            branch=ref,
            created=f">={anchor['created_at']}",
            per_page=100,
        )
        runs = (data or {}).get("workflow_runs", [])
        return any(r.get("status") != "completed" for r in runs)

    async def deploy_once(
        self, workflow: str | None, ref: str, environment: str, sha: str, anchor: Mapping[str, Any]
    ) -> str:
        """Dispatch ``workflow`` on ``ref`` to deploy ``sha``, unless that happened since ``anchor``."""
        if workflow is None:
            return "no deploy workflow configured: the deployment itself must start the deploy"
        if await self.deploy_set_off(workflow, ref, environment, sha, anchor):
            return f"deploy of {sha[:7]} to {environment} already set off"
        try:
            url = await self.dispatch(workflow, ref, {"environment": environment, "sha": sha})
        except UncertainWrite:
            # Never sent again blindly; but a look that finds the run means it was applied.
            if not await self.deploy_set_off(workflow, ref, environment, sha, anchor):
                raise
            url = "its answer was lost, the run is there"
        return f"dispatched {workflow} on {ref} for {environment} at {sha[:7]}: {url}"

    async def ensure_ref(self, ref: str, sha: str) -> tuple[str, bool]:
        """Create ``refs/<ref>`` at ``sha`` unless it exists; (the sha it points to, created)."""

        async def write() -> str:
            await self._op("git.create_ref", idempotent=False, ref=f"refs/{ref}", sha=sha)
            return sha

        return await self.write_once(lambda: self.ref_sha(ref), write)

    async def take_lock(
        self, tree: str, owner: str, since: str, until: str, now: str, *, look: bool = True
    ) -> tuple[str | None, tuple[str, str, str]]:
        """Try once to take the repository's lock: (our lock commit, a holder's owner, since,
        until). The commit is None when another run holds it and its time has not run out (the
        holder is that run); else the holder is the one whose stale lock was taken over, or
        empty when the lock was free.

        Taking a free lock is creating ``refs/promote/lock``, which fails if it exists. Taking
        over an expired one is a fast-forward of the ref to a commit whose parent is the
        expired lock: of two runs that try at once, the second's update is no fast-forward.
        ``look=False``: the creation is tried without a look at the ref first (the lock is
        free far more often than not); a held lock then costs this try its lock commit, which
        nothing points to.
        """
        holder = await self.ref_sha(LOCK_REF) if look else None
        held = ("", "", "")
        if holder is not None:
            held = lock_holder(str((await self.git_commit(holder)).get("message") or ""))
            if held[2] and held[2] > now:
                return None, held
        message = lock_message(owner, since, until)
        mine = await self.create_commit(message, tree, [holder] if holder else [])
        attempt = 0
        while True:  # a takeover starts the attempts again, once: then a holder is known
            attempt += 1
            try:
                if holder is None:
                    await self._op(
                        "git.create_ref", idempotent=False, ref=f"refs/{LOCK_REF}", sha=mine
                    )
                else:
                    await self._op(
                        "git.update_ref", idempotent=False, ref=LOCK_REF, sha=mine, force=False
                    )
            except GitHubError as e:
                if not isinstance(e, UncertainWrite) and e.status not in (409, 422):
                    raise
                # Someone was quicker, or the answer was lost: whoever holds it now, says the ref.
                now_held = await self.ref_sha(LOCK_REF)
                if now_held == mine:
                    return mine, held
                if isinstance(e, UncertainWrite) and now_held == holder:
                    if attempt >= self.attempts:  # it never landed: an error, nobody's lock
                        raise e.cause from None
                    await self.sleep(min(self.max_wait, 0.2 * 2 ** (attempt - 1)))
                    continue  # it did not land: sending it again makes no second lock
                if now_held is None:
                    return None, ("", "", "")
                found = lock_holder(str((await self.git_commit(now_held)).get("message") or ""))
                if holder is not None or (found[2] and found[2] > now):
                    return None, found  # held, and not over its time (or taken over first)
                # Held past its time: taken over by a commit on top of the expired one.
                holder, held = now_held, found
                mine = await self.create_commit(message, tree, [holder])
                attempt = 0
                continue
            return mine, held

    async def drop_lock(self, mine: str, *, look: bool = True) -> bool:
        """Delete the lock ref if it is still ours (a holder that outlived its time may have
        been taken over: that lock is not ours to drop). ``look=False``: the holder knows it
        is still within its time, and nobody can have taken it over; the ref is not read."""
        if look and await self.ref_sha(LOCK_REF) != mine:
            return False
        try:
            await self._op("git.delete_ref", ref=LOCK_REF)
        except GitHubError as e:
            if e.status in (404, 422):
                return False
            raise
        return True

    async def force_branch(self, branch: str, sha: str) -> bool:
        """Point ``branch`` at ``sha``, forcing it; False when it already pointed there."""
        if await self.ref_sha(f"heads/{branch}") == sha:
            return False
        await self._op("git.update_ref", ref=f"heads/{branch}", sha=sha, force=True)
        return True

    async def create_commit(self, message: str, tree: str, parents: list[str]) -> str:
        data = await self._op("git.create_commit", message=message, tree=tree, parents=parents)
        return str(data["sha"])

    async def create_tree(self, entries: list[dict[str, Any]], base_tree: str | None) -> str:
        params: dict[str, Any] = {"tree": entries}
        if base_tree:
            params["base_tree"] = base_tree
        return str((await self._op("git.create_tree", **params))["sha"])

    async def review_deployments(
        self, run_id: int, environment_ids: list[int], state: str, comment: str
    ) -> None:
        """Approve or reject a run's pending deployments (as a required reviewer)."""
        await self._op(
            "actions.review_pending_deployments_for_run", run_id=run_id,
            environment_ids=environment_ids, state=state, comment=comment,
        )  # fmt: skip

    async def merge_pull(self, number: int, sha: str, methods: tuple[str, ...]) -> str:
        """Merge PR ``number`` at head ``sha`` with the first of ``methods`` the repository
        allows; the new base sha. A PR already merged (by us, before a crash) is not merged again."""
        pull = await self.pull(number)
        if pull.get("merged_at"):
            return str(pull["merge_commit_sha"])
        settings = await self.repository()
        flags = {"merge": "allow_merge_commit", "squash": "allow_squash_merge"}
        allowed = [m for m in methods if settings.get(flags.get(m, "allow_rebase_merge"), True)]
        try:
            data = await self._op(
                "pulls.merge",
                idempotent=False,
                pull_number=number,
                sha=sha,
                merge_method=(allowed or list(methods))[0],  # none allowed: GitHub says why
            )
        except GitHubError:
            pull = await self.pull(number)
            if pull.get("merged_at"):
                return str(pull["merge_commit_sha"])
            raise
        return str(data["sha"])
