"""Turn derived state and actions into JSON objects and compact text. Pure.

Text that came from GitHub (titles, descriptions, plan ids) goes through ``inert`` before
it reaches a terminal, so nobody can smuggle escape sequences into someone's screen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from promote_tasks.model import Action
from promote_tasks.model import EnvState
from promote_tasks.model import PipelineState
from promote_tasks.model import Result
from promote_tasks.model import State

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


_MARK = {Result.PASSED: "✓", Result.PENDING: "…", Result.FAILED: "✗", Result.ERROR: "✗ error"}


def inert(text: object) -> str:
    """Printable text: control characters (ESC, CR, bidi overrides ...) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _hint(env: EnvState, action: Action) -> str | None:
    hint = _next_step(env, action)
    if env.unknown and not env.violation:
        missing = f"plan {', '.join(env.unknown)} has no record in the plan store (not waited for)"
        return f"{hint}; {missing}" if hint else missing
    return hint


def _next_step(env: EnvState, action: Action) -> str | None:
    if action.environment == env.name and (action.transition or action.stop):
        return (
            action.stop
            or f"{action.transition}: {action.source.value if action.source else 'merge'} → {action.target.value if action.target else _beyond(action.transition)}"
        )
    if env.violation:
        return env.violation
    if env.state is None:
        return None
    if env.state is State.DEPLOYING:
        return f"wait for the deployment ({env.clock})" if env.clock else "wait for the deployment"
    if env.state is State.VALIDATING:
        pending = [v.validator for v in env.verdicts if v.result is Result.PENDING]
        if not pending:
            return "record the verdict"
        return "wait for " + ", ".join(pending) + (f" ({env.clock})" if env.clock else "")
    if env.state is State.FAILED:
        return f"fix plan {env.fix_plan}" if env.fix_plan else "roll back and file a fix plan"
    return None


def _beyond(transition: str | None) -> str:
    return "plan" if transition == "R9" else "merge"


def status_data(state: PipelineState, action: Action) -> dict[str, Any]:
    """The ``status --json`` object."""
    return {
        "repository": state.repository,
        "halted": state.halted,
        "fix_plan": state.fix_plan,
        "active_plan": state.active_plan,
        "active_plans": list(state.active_plans),
        "in_flight": [{"plan": plan, "environment": env} for plan, env in state.in_flight],
        "plan_problems": [{"plan": plan, "problem": why} for plan, why in state.plan_problems],
        "environments": [
            {
                "name": env.name,
                "branch": env.branch,
                "sha": env.sha,
                "plan": env.plan,
                "plans": list(env.plans),
                "state": env.state.value if env.state else None,
                "clock": env.clock,
                "validators": [
                    {
                        "name": v.validator,
                        "result": v.result.value,
                        "url": v.url,
                        "summary": v.summary,
                    }
                    for v in env.verdicts
                ],
                "evidence": [
                    {"kind": e.kind, "id": e.id, "url": e.url, "summary": e.summary}
                    for e in env.evidence
                ],
                "violation": env.violation,
                "violating": list(env.violating),
                "taken_out": list(env.taken_out),
                "unknown_plans": list(env.unknown),
                "rollback": None
                if env.rollback is None
                else {
                    "deployment": env.rollback.deployment_id,
                    "target": env.rollback.target,
                    "state": env.rollback.state,
                },
                "next": _hint(env, action),
            }
            for env in state.environments
        ],
    }


def did_data(did: Iterable[str]) -> list[dict[str, Any]]:
    """What a run did, for scripts: each write's kind, what it was about, its link, the text."""
    return [
        {
            "kind": getattr(line, "kind", "note"),
            "target": getattr(line, "target", ""),
            "url": getattr(line, "url", None),
            "text": str(line),
        }
        for line in did
    ]


def next_data(action: Action, did: tuple[str, ...]) -> dict[str, Any]:
    """The ``next --json`` object."""
    return {
        "transition": action.transition,
        "environment": action.environment,
        "from": action.source.value if action.source else None,
        "to": action.target.value if action.target else None,
        "did": did_data(did),
        "waiting_for": action.waiting_for,
        "stop": action.stop,
    }


def requests_text(requests: Mapping[str, int | None]) -> str:
    """The status view's last line: what this run cost of GitHub's rate limit (none from a
    saved snapshot)."""
    made, left = requests.get("made") or 0, requests.get("remaining")
    if not made:
        return ""
    budget = f", {left} left this hour" if left is not None else ""
    return f"\n  GitHub: {made} request{'s' if made != 1 else ''}{budget}"


def requests_markdown(requests: Mapping[str, int | None]) -> str:
    """The same for the job summary: a paragraph of its own after the table."""
    line = requests_text(requests).strip()
    return f"\n\n{line}" if line else ""


def status_text(state: PipelineState, action: Action) -> str:
    lines = [
        f"{inert(state.repository)}"
        + (
            "  HALTED" + (f" (fix plan {inert(state.fix_plan)})" if state.fix_plan else "")
            if state.halted
            else ""
        )
    ]
    width = max(len(e.name) for e in state.environments)
    for env in state.environments:
        sha = env.sha[:7] if env.sha else "-------"
        label = env.state.value if env.state else "—"
        plan = f"  plan {inert(', '.join(env.plans))}" if env.plans else ""
        checks = " ".join(
            f"{inert(v.validator)}:{'✓' if v.result is Result.PASSED else '✗' if v.result.bad else '…'}"
            for v in env.verdicts
        )
        lines.append(f"  {env.name:<{width}}  {sha}  {label:<10}{plan}  {checks}".rstrip())
        hint = _hint(env, action)
        if hint:
            lines.append(f"  {'':<{width}}  ↳ {inert(hint)}")
    lines.extend(f"  plan {inert(plan)}: {inert(why)}" for plan, why in state.plan_problems)
    return "\n".join(lines)


def next_text(action: Action, did: tuple[str, ...]) -> str:
    if action.stop:
        return f"STOP: {inert(action.stop)}"
    if action.transition is None:
        lines = [
            f"waiting for {inert(action.waiting_for)}" if action.waiting_for else "nothing to do"
        ]
    else:
        source = action.source.value if action.source else "merge"
        target = action.target.value if action.target else _beyond(action.transition)
        lines = [f"{action.transition} {action.environment}: {source} → {target}"]
    lines.extend(f"  - {inert(d)}" for d in did)
    return "\n".join(lines)


def _md(text: object) -> str:
    return inert(text).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def _link(text: str, url: str | None) -> str:
    """A Markdown link when there is somewhere to go (http(s) only), else the text."""
    if url and url.startswith(("https://", "http://")):
        return f"[{text}]({url.replace(')', '%29').replace(' ', '%20')})"
    return text


def status_markdown(state: PipelineState, action: Action, web: str = "https://github.com") -> str:
    """The pipeline as a Markdown table, for ``$GITHUB_STEP_SUMMARY``: each sha links to its
    commit, each validator to what it rests on (``web`` is ``$GITHUB_SERVER_URL``)."""
    title = f"### promote: {_md(state.repository)}" + (" — **halted**" if state.halted else "")
    rows = [
        "| environment | sha | state | plans | checks | next |",
        "|---|---|---|---|---|---|",
    ]
    for env in state.environments:
        sha = "-"
        if env.sha:
            sha = _link(
                f"`{env.sha[:7]}`", f"{web.rstrip('/')}/{state.repository}/commit/{env.sha}"
            )
        checks = " ".join(
            _link(f"{_md(v.validator)} {_MARK[v.result]}", v.url) for v in env.verdicts
        )
        rows.append(
            f"| {env.name} | {sha} | {env.state.value if env.state else '—'} "
            f"| {_md(', '.join(env.plans))} | {checks} | {_md(_hint(env, action) or '')} |"
        )
    return "\n".join([title, "", *rows])


def next_markdown(action: Action, did: tuple[str, ...]) -> str:
    """What one ``next`` did, as a table of its writes with links to each on GitHub."""
    lines = ["### promote next", "", _md(next_text(action, ()))]
    if did:
        lines += ["", "| what | about | written |", "|---|---|---|"]
        for d in did:
            kind = getattr(d, "kind", "note")
            lines.append(
                f"| {_md(kind)} | {_md(getattr(d, 'target', ''))} | {_link(_md(d), getattr(d, 'url', None))} |"
            )
    return "\n".join(lines)
