"""What the command line shows: one line for every error, JSON or text, the job summary,
and options parsed into the numbers they must be. No tasks here; ``tasks.py`` uses these."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from invoke.exceptions import Exit

from promote_tasks import render
from promote_tasks.errors import PromoteError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(body: F) -> F:
    """Every failure is one line on stderr and exit status 1, never a bare traceback: a
    PromoteError as it is, anything unforeseen named as a bug (``PROMOTE_DEBUG=1`` shows the
    traceback). A reader that closes our output early (``| head``) ends the run quietly."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except Exit:
            raise
        except PromoteError as e:
            raise Exit(f"promote: error: {one_line(e)}", code=1) from None
        except BrokenPipeError:
            _quiet_stdout()
            raise Exit(code=0) from None
        except KeyboardInterrupt:
            raise Exit("promote: interrupted", code=130) from None
        except Exception as e:
            if os.environ.get("PROMOTE_DEBUG", "") not in ("", "0", "api"):
                raise
            raise Exit(
                f"promote: error: unexpected {type(e).__name__}: {one_line(e)} "
                "(a bug in promote: run with PROMOTE_DEBUG=1 for the traceback)",
                code=1,
            ) from None

    return wrapper  # type: ignore[return-value]


def seconds(option: str, value: object, default: float) -> float:
    """A positive number of seconds from a command-line option (default when not given)."""
    if value is None:
        return default
    try:
        number = float(str(value))
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise PromoteError(f"{option} expects a positive number of seconds, got {value!r}")
    return number


def milliseconds(option: str, value: object, default: int) -> int:
    """A positive whole number of milliseconds from a command-line option (default when not
    given): the sandbox's CI clock would never tick (0) or spin (negative) otherwise."""
    if value is None:
        return default
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise PromoteError(
            f"{option} expects a positive whole number of milliseconds, got {value!r}"
        )
    return int(text)


def one_line(error: object) -> str:
    """An error as one printable line, with any token from the environment masked."""
    text = " ".join(str(error).split())
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        token = os.environ.get(name, "").strip()
        if len(token) >= 8:
            text = text.replace(token, "***")
    return render.inert(text)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader is gone, and Python's last flush must not fail."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def emit(data: dict[str, Any] | None, text: str, as_json: bool) -> None:
    print(json.dumps(data, indent=2) if as_json else text, flush=True)


def summary(markdown: str) -> None:
    """Inside GitHub Actions, append to the job's Markdown summary."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(markdown + "\n")
        except OSError as e:  # the summary is a courtesy: the work is done, say so and go on
            print(
                f"promote: warning: cannot write the job summary to {path}: {e.strerror}",
                file=sys.stderr,
            )
