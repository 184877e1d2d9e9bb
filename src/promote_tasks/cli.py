"""The ``promote`` console script: the same tasks as ``invoke promote.<task>``, in a program
that shows only the product's options, runs one task at a time, and says every mistake in
one line (with a "did you mean" for a misspelt task)."""

from __future__ import annotations

import difflib
import inspect
import os
import re
import sys
from typing import Any

from invoke.exceptions import ParseError
from invoke.parser.argument import Argument
from invoke.program import Program

from promote_tasks import __version__

PRODUCT_OPTIONS = (
    ("-h, --help [TASK]", "show this help, or a task's (also: promote help TASK)"),
    ("-V, --version", "print promote's version"),
    ("-R, --repo OWNER/NAME", "the repository (instead of GITHUB_REPOSITORY or the origin remote)"),
    ("-v, --verbose", "log each request to GitHub on stderr (as PROMOTE_DEBUG=api does)"),
)
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")


class PromoteProgram(Program):
    """invoke's Program with the product's surface: invoke's own core flags (sudo, pty,
    echo ...) are neither shown nor given short names, so a short flag means one thing."""

    def core_args(self) -> list[Argument]:
        kept = []
        for arg in super().core_args():
            names = tuple(n for n in arg.names if len(n) > 1)  # no short core flags but -h, -V
            if "help" in names:
                names = ("help", "h")
            if "version" in names:
                names = ("version", "V")
            arg.names = names
            kept.append(arg)
        return kept

    def parse_core(self, argv: list[str] | None) -> None:
        _friendly(lambda: super(PromoteProgram, self).parse_core(argv), self)

    def parse_tasks(self) -> None:
        _friendly(super().parse_tasks, self)
        if len(self.tasks) > 1:
            names = ", ".join(str(t.name) for t in self.tasks)
            raise ParseError(
                f"promote: error: promote runs one task at a time, not {names}: "
                "run them one after the other"
            )

    def parse_cleanup(self) -> None:
        _friendly(super().parse_cleanup, self)

    def print_help(self) -> None:
        print("Usage: promote [OPTIONS] TASK [TASK OPTIONS]")
        print()
        print("Carry merged pull requests safely through environment branches (dev → test → main).")
        print()
        print("Options:")
        _columns(PRODUCT_OPTIONS)
        print()
        print("Tasks:")
        _columns(
            (name, _first_line(self.collection[name]))
            for name in sorted(
                n for n in (self.collection.task_names if self.collection else ()) if n
            )
        )
        print()
        print("Examples:")
        for line in (
            "promote demo                  # the whole journey on a local sandbox",
            "promote status                # where each environment is",
            "promote next --dry-run        # what the next step would do",
            "promote help next             # a task's options and examples",
        ):
            print(f"  {line}")

    def print_task_help(self, name: str) -> None:
        ctx = self.parser.contexts[name]
        doc = inspect.getdoc(self.collection[name]) or ""
        summary, _, rest = doc.partition("\n")
        described, _, examples = rest.partition("Examples:")
        print(f"Usage: promote {name} [OPTIONS]")
        print()
        print(summary)
        if described.strip():
            print()
            print(described.strip())
        print()
        print("Options:")
        tuples = ctx.help_tuples()
        _columns(tuples) if tuples else print("  (none)")
        if examples.strip():
            print()
            print("Examples:")
            for line in examples.strip("\n").splitlines():
                print(f"  {line.strip()}")


def _friendly(step: Any, program: PromoteProgram) -> None:
    """invoke's parse errors in promote's one-line form, with a guess for a misspelt task."""
    try:
        step()
    except ParseError as e:
        text = str(e)
        if text.startswith("promote: error:"):
            raise
        raise ParseError(f"promote: error: {_reworded(text, program)}") from None


def _reworded(text: str, program: PromoteProgram) -> str:
    unknown = re.fullmatch(r"No idea what '(.*)' is!", text)
    if unknown:
        word = unknown.group(1)
        if word.startswith("-"):
            return f"unknown option {word} (see promote help)"
        names = sorted(program.collection.task_names) if program.collection else []
        close = difflib.get_close_matches(word, names, n=1)
        guess = f": did you mean {close[0]}?" if close else f" (tasks: {', '.join(names)})"
        return f"unknown task {word!r}{guess}"
    positional = re.fullmatch(r"'(\w+)' did not receive required positional arguments: (.*)", text)
    if positional:
        wanted = positional.group(2).replace("'", "")
        return f"{positional.group(1)} needs {wanted} (see promote help {positional.group(1)})"
    needs = re.fullmatch(r"Flag <Argument: ([\w-]+).*> needed value and was not given one!", text)
    if needs:
        return f"--{needs.group(1)} needs a value"
    return " ".join(text.split())


def _columns(rows: Any) -> None:
    """Aligned ``left  right`` lines."""
    rows = list(rows)
    width = max((len(left) for left, _ in rows), default=0)
    for left, right in rows:
        print(f"  {left:<{width}}  {right or ''}".rstrip())


def _first_line(task: Any) -> str:
    return (inspect.getdoc(task) or "").partition("\n")[0]


def _product_argv(args: list[str]) -> list[str]:
    """``help [TASK]``, ``--repo`` and ``--verbose`` are the product's; the rest is invoke's."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-R", "--repo") or arg.startswith("--repo="):
            value = (
                arg.partition("=")[2] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            )
            i += 1 if "=" in arg else 2
            if not _REPO.match(value):
                raise SystemExit(
                    f"promote: error: --repo expects OWNER/NAME, got {value!r}" if value
                    else "promote: error: --repo needs OWNER/NAME"
                )  # fmt: skip
            os.environ["GITHUB_REPOSITORY"] = value
            continue
        if arg in ("-v", "--verbose"):
            os.environ["PROMOTE_DEBUG"] = "api"
            i += 1
            continue
        out.append(arg)
        i += 1
    if out[:1] == ["help"]:
        out = ["--help", *out[1:2]]
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        args = _product_argv(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as e:
        print(e.code, file=sys.stderr)
        return 1
    from promote_tasks.tasks import promote

    program = PromoteProgram(
        namespace=promote, name="promote", binary="promote", version=__version__
    )
    try:
        program.run(["promote", *args])
        sys.stdout.flush()
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BrokenPipeError:
        # The reader left (`promote --help | head -1`): say nothing more, and
        # keep Python from complaining about the closed pipe at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
