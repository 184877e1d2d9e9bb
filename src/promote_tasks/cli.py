"""The ``promote`` console script: the same tasks as ``invoke promote.<task>``."""

from __future__ import annotations

import sys

from invoke.program import Program

from promote_tasks import __version__


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["sandbox"]:
        from promote_tasks.sandbox.cli import main as sandbox_main

        return sandbox_main(args[1:])
    from promote_tasks.tasks import promote

    program = Program(namespace=promote, name="promote", binary="promote", version=__version__)
    try:
        program.run(["promote", *args])
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
