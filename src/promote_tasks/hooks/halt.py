"""``promote-halt`` (pre-push): while a failure is unresolved, only the fix plan's branch moves.

It asks GitHub (the token from ``GITHUB_TOKEN`` or ``GH_TOKEN``, as the tasks do) whether the
pipeline is halted, within a short timeout. Without a token or an answer it warns and lets the
push through, or refuses it with ``offline = "refuse"`` in ``[hooks]`` (or ``--offline refuse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import TextIO

from promote_tasks.config import OFFLINE_CHOICES
from promote_tasks.config import Settings
from promote_tasks.errors import PromoteError
from promote_tasks.hooks import Ref
from promote_tasks.hooks import fail
from promote_tasks.hooks import parser
from promote_tasks.hooks import say
from promote_tasks.hooks import start_push_hook
from promote_tasks.machine import FEATURE_PREFIX
from promote_tasks.machine import derive

HOOK = "promote-halt"


def halted_by(settings: Settings, environ: Mapping[str, str], timeout: float) -> str | None:
    """The fix plan holding a halt ("" while it is not filed yet), or None when not halted.

    One snapshot read (one attempt per request, the whole read bounded by ``timeout``); a
    ``PromoteError`` when GitHub cannot be asked or does not answer in time.
    """
    from promote_tasks.session import Run  # pluggy and ghapi: only when GitHub is asked

    options = {"timeout": timeout, "attempts": 1, "deadline": timeout}
    run = Run.load(environ=environ, settings=settings, client_options=options)
    snapshot = run.facts()
    state = derive(snapshot, run.pipeline)
    if not state.halted:
        return None
    return state.fix_plan or ""


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
) -> int:
    made = parser(HOOK, __doc__, push=True)
    made.add_argument(
        "--offline",
        choices=OFFLINE_CHOICES,
        help="without a token or an answer from GitHub: warn (default) or refuse the push",
    )
    made.add_argument("--timeout", type=float, help="seconds to wait for GitHub (default 5)")
    try:
        hook = start_push_hook(made, argv, environ, stdin)
    except PromoteError as error:
        return fail(HOOK, error)
    args, settings, environ = hook.args, hook.settings, hook.environ
    pushed = [ref for ref in hook.push.refs if ref.local_sha is not None]  # deleting is not work
    if not pushed or not hook.ours:
        return 0
    offline = args.offline or settings.hooks.offline
    timeout = args.timeout if args.timeout and args.timeout > 0 else settings.hooks.timeout
    try:
        fix_plan = halted_by(settings, environ, timeout)
    except PromoteError as error:
        if offline == "refuse":
            say(
                HOOK,
                f"refused: cannot tell whether work is halted: {error}",
                "Set GITHUB_TOKEN (or GH_TOKEN) and try again, or run `promote status`.",
            )
            return 1
        say(HOOK, f"warning: cannot tell whether work is halted ({error}); pushing anyway")
        return 0
    if fix_plan is None:
        return 0
    if not fix_plan:
        say(
            HOOK,
            "refused: work is halted: a failure has no fix plan filed yet.",
            "`promote next` rolls back and files it; `promote status` shows the failure.",
        )
        return 1
    allowed = f"{FEATURE_PREFIX}{fix_plan}"
    refused = [ref for ref in pushed if ref.branch != allowed]
    for ref in refused:
        say(
            HOOK,
            f"refused: work is halted until fix plan `{fix_plan}` completes; "
            f"only `{allowed}` may be pushed, not {_what(ref)}.",
            "`promote status` shows the failure; push the fix to "
            f"`{allowed}` and open a PR into `{settings.environments[0].branch}`.",
        )
    return 1 if refused else 0


def _what(ref: Ref) -> str:
    return f"`{ref.branch}`" if ref.branch else f"`{ref.remote_ref}`"


if __name__ == "__main__":
    raise SystemExit(main())
