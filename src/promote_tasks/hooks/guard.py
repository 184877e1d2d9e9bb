"""``promote-guard`` (pre-push): no direct pushes to environment branches.

Code reaches an environment branch only by a merged PR: ``feature/<plan-id>`` into the first
environment, each environment into the next. Local only: it reads the configuration and the
refs being pushed, and never walks history or asks GitHub.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TextIO

from promote_tasks.config import EnvironmentConfig
from promote_tasks.errors import PromoteError
from promote_tasks.hooks import fail
from promote_tasks.hooks import parser
from promote_tasks.hooks import say
from promote_tasks.hooks import start_push_hook

HOOK = "promote-guard"


def route(environments: Sequence[EnvironmentConfig], index: int) -> str:
    """How code is meant to reach environment ``index``."""
    env = environments[index]
    if index == 0:
        return (
            f"Code reaches `{env.branch}` through a PR from a `feature/<plan-id>` branch: "
            f"`git push origin HEAD:feature/<plan-id>`, then open a PR into `{env.branch}`."
        )
    source = environments[index - 1]
    return (
        f"Code reaches `{env.branch}` only through the promotion PR `{source.branch} → "
        f"{env.branch}`, which `promote next` opens once `{source.name}` is promoted."
    )


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> int:
    try:
        hook = start_push_hook(parser(HOOK, __doc__, push=True), argv, environ, stdin)
    except PromoteError as error:
        return fail(HOOK, error)
    if not hook.ours:
        return 0
    settings, push = hook.settings, hook.push
    envs = settings.environments
    index = {env.branch: i for i, env in enumerate(envs)}
    refused = [ref for ref in push.refs if ref.branch in index]
    for ref in refused:
        assert ref.branch is not None
        i = index[ref.branch]
        verb = "delete" if ref.local_sha is None else "push directly to"
        say(
            HOOK,
            f"refused: do not {verb} `{ref.branch}`, the branch of environment "
            f"`{envs[i].name}` (environment branches change only through merged PRs).",
            route(envs, i),
        )
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
