"""``promote-no-env-commit`` (pre-commit): no commits made on an environment branch.

A commit on a local ``dev``, ``test`` or ``main`` can only reach GitHub as a direct push; the
work belongs on a ``feature/<plan-id>`` branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promote_tasks.errors import PromoteError
from promote_tasks.hooks import fail
from promote_tasks.hooks import parser
from promote_tasks.hooks import repository_settings
from promote_tasks.hooks import say

HOOK = "promote-no-env-commit"


def main(argv: Sequence[str] | None = None) -> int:
    made = parser(HOOK, __doc__)
    made.add_argument("filenames", nargs="*", help="ignored: the branch is what matters")
    made.parse_args(argv)
    try:
        settings = repository_settings()
        from promote_tasks.git import current_branch

        branch = current_branch(Path.cwd())
    except PromoteError as error:
        return fail(HOOK, error)
    env = next((e for e in settings.environments if e.branch == branch), None)
    if env is None:  # a feature branch, or a detached HEAD (a rebase in progress)
        return 0
    say(
        HOOK,
        f"refused: a commit on `{branch}`, the branch of environment `{env.name}` "
        "(environment branches change only through merged PRs).",
        "Take the work to a feature branch and commit there (staged changes come along):",
        "git switch -c feature/<plan-id>",
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
