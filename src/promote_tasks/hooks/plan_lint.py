"""``promote-plan-lint`` (pre-commit): plan files parse and carry the required front-matter.

Checks the files pre-commit passes that lie under the configured plans directory, as
``<plans_dir>/<inbox|doing|done>/<plan-id>.md``: the front-matter block is valid YAML with
``id``, ``title`` and a whole-number ``priority``, known keys only, the id equal to the file
name, each id once in the plans directory, and a ``parent`` that is a plan there. It accepts
exactly what the plan stores read and write. Other files are not its business.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from pathlib import PurePosixPath

from promote_tasks.errors import ConfigError
from promote_tasks.errors import PromoteError
from promote_tasks.hooks import fail
from promote_tasks.hooks import parser
from promote_tasks.hooks import repository_settings
from promote_tasks.hooks import say
from promote_tasks.plans import STATUS_DIRS
from promote_tasks.plans import PlanFile
from promote_tasks.plans import parse_plan

HOOK = "promote-plan-lint"


def main(argv: Sequence[str] | None = None) -> int:
    made = parser(HOOK, __doc__)
    made.add_argument("filenames", nargs="*", help="files to check (pre-commit passes them)")
    args = made.parse_args(argv)
    try:
        settings = repository_settings()
    except PromoteError as error:
        return fail(HOOK, error)
    plans_dir = PurePosixPath(settings.plans_dir.strip("/") or ".")
    problems: list[str] = []
    checked: list[PlanFile] = []
    for name in args.filenames:
        path = PurePosixPath(Path(name).as_posix())
        if not _under(path, plans_dir) or path.suffix != ".md" or not Path(name).is_file():
            continue
        inside = path.relative_to(plans_dir).parts
        if len(inside) == 1:
            continue  # plans/README.md and the like: not a plan
        if len(inside) != 2 or inside[0] not in STATUS_DIRS:
            where = ", ".join(f"{plans_dir}/{d}/" for d in STATUS_DIRS)
            problems.append(f"{path}: plan files live directly in one of {where}")
            continue
        try:
            plan_file = parse_plan(Path(name).read_text(encoding="utf-8"), str(path))
        except ConfigError as error:
            problems.append(str(error))
            continue
        except UnicodeDecodeError:
            problems.append(f"{path}: not UTF-8 text")
            continue
        if plan_file.plan.id != path.stem:
            problems.append(
                f"{path}: id {plan_file.plan.id!r} does not match the file name "
                f"(the file of plan {plan_file.plan.id!r} is {plan_file.plan.id}.md)"
            )
            continue
        checked.append(plan_file)
    if checked:
        problems += _against_the_others(checked, Path(plans_dir))
    if not problems:
        return 0
    for problem in problems:  # one line each, as every promote error: the file, the line, why
        say(HOOK, problem)
    return 1


def _under(path: PurePosixPath, directory: PurePosixPath) -> bool:
    return str(directory) == "." or path.is_relative_to(directory)


def _against_the_others(checked: list[PlanFile], plans_dir: Path) -> list[str]:
    """Ids once in the plans directory; parents are plans there (in any status)."""
    ids: dict[str, list[str]] = {}
    for status in STATUS_DIRS:
        for found in sorted((plans_dir / status).glob("*.md")):
            ids.setdefault(found.stem, []).append(found.as_posix())
    problems = []
    for plan_file in checked:
        plan = plan_file.plan
        elsewhere = [p for p in ids.get(plan.id, []) if p != plan_file.path]
        if elsewhere:
            problems.append(
                f"{plan_file.path}: plan {plan.id!r} is also {', '.join(elsewhere)} "
                "(a plan moves between directories; it is never copied)"
            )
        if plan.parent and plan.parent not in ids:
            problems.append(
                f"{plan_file.path}: parent {plan.parent!r} is not a plan in {plans_dir}/"
            )
    return problems


if __name__ == "__main__":
    raise SystemExit(main())
