"""What the command line shows: one line for every error, JSON or text, the job summary,
and options parsed into the numbers they must be. No tasks here; ``tasks.py`` uses these."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any
from typing import TextIO
from typing import TypeVar

from invoke.exceptions import Exit

from promote_tasks import render
from promote_tasks.errors import PromoteError
from promote_tasks.model import PipelineState
from promote_tasks.model import State

# Exit statuses a script can use (README: "Exit status").
OK = 0  #: done, or nothing to do: the pipeline rests
ERROR = 1  #: an error, said in one line on stderr
HALTED = 3  #: a failure is unresolved (status --exit-status, watch, a next that recorded one)
BUDGET = 4  #: next --until-rest's --budget, or watch's --timeout, ran out
PERSON = 8  #: waiting for a person: a manual test, a violation to resolve
SCHEMA = 1  #: the version of every --json output's shape (promote schema NAME)

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
    """One JSON object (with its ``schema`` version) or the text for people."""
    if as_json:
        print(json.dumps({"schema": SCHEMA, **(data or {})}, indent=2), flush=True)
    else:
        print(text, flush=True)


def number(option: str, value: object, default: float, *, whole: bool = True) -> float:
    """A non-negative number from a command-line option (default when not given)."""
    if value is None:
        return default
    try:
        found = int(str(value)) if whole else float(str(value))
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise PromoteError(f"{option} expects {kind}, got {value!r}") from None
    if found < 0:
        raise PromoteError(f"{option} must not be negative, got {value!r}")
    return found


_ASCII = {"✓": "ok", "✗": "x", "…": "...", "↳": "->", "→": "->", "—": "-", "⚠": "!"}
_COLOURS = {"✓": "32", "✗": "31", "HALTED": "1;31", "↳": "2"}


def show(text: str, stream: TextIO | None = None) -> str:
    """Text for the terminal it goes to: symbols only where the console can encode them,
    colour only on a terminal and without ``NO_COLOR``. Data never holds colour codes."""
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        for symbol, plain in _ASCII.items():
            text = text.replace(symbol, plain)
        text = text.encode(encoding, "replace").decode(encoding)
    if _colour(stream):
        for word, code in _COLOURS.items():
            text = text.replace(word, f"\x1b[{code}m{word}\x1b[0m")
    return text


def _colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("GITHUB_ACTIONS") == "true":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Waiting:
    """The wait line of ``watch``: on a terminal one live line, rewritten; elsewhere (CI) a
    line only when what it waits for changes, and then at most one a minute."""

    EVERY = 60.0

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.last = ""
        self.at = 0.0

    def line(self, text: str) -> None:
        text = show(text, self.stream)
        if self.live:
            print(f"\r\x1b[K{text}", end="", file=self.stream, flush=True)
            return
        now = time.monotonic()
        if self.last and (text == self.last or now - self.at < self.EVERY):
            return
        print(text, file=self.stream, flush=True)
        self.last, self.at = text, now

    def clear(self) -> None:
        if self.live:
            print("\r\x1b[K", end="", file=self.stream, flush=True)


def announce(state: PipelineState) -> None:
    """Inside GitHub Actions, annotations for what people must see in the run's summary:
    an error for a failed environment, a warning for a violation."""
    if os.environ.get("GITHUB_ACTIONS") != "true":
        return
    for env in state.environments:
        if env.state is State.FAILED:
            why = next((e.summary for e in env.evidence if e.kind != "pull_request"), "failed")
            print(f"::error title=promote: {env.name} failed::{_escaped(why)}", flush=True)
        if env.violation:
            print(f"::warning title=promote: {env.name}::{_escaped(env.violation)}", flush=True)


def _escaped(text: str) -> str:
    """A workflow command's data: % CR LF are escaped, as the runner reads them."""
    return render.inert(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def server_url() -> str:
    """Where people see the repository: ``$GITHUB_SERVER_URL`` inside Actions (Enterprise too)."""
    return os.environ.get("GITHUB_SERVER_URL") or "https://github.com"


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
