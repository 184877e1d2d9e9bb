"""What a push hook costs: ``promote-guard`` against the floor of any gitpython hook.

Run: ``.venv/bin/python bench/hook_latency.py [--runs 15] [--commits 10000]``. About 30 s.

Builds once, in a temporary directory, a repository of 10,000 linear commits with
``git fast-import`` (``main``, ``test`` and ``dev`` ten commits apart near the tip,
``feature/x`` checked out at the tip, ``origin/*`` tracking the three), then times whole processes, cwd = that repository,
started as pre-commit starts a hook (``PRE_COMMIT_REMOTE_NAME=origin``,
``PRE_COMMIT_REMOTE_URL``, ``PRE_COMMIT_LOCAL_BRANCH``, ``PRE_COMMIT_REMOTE_BRANCH``,
``PRE_COMMIT_FROM_REF`` and ``PRE_COMMIT_TO_REF`` as shas, stdin empty):

- ``promote-guard`` pushing to ``test`` (refused, exit 1) and to ``feature/x`` (exit 0), the
  console script of the venv of ``sys.executable``;
- ``python -c "import git"``: the floor for a hook written with gitpython; issue 6 wants
  guard / floor ≤ 1.5. ``python -c pass`` for the interpreter alone;
- ``promote-no-env-commit`` (it imports gitpython to read the branch), for information;
- end to end, the ``.git/hooks/pre-push`` that ``pre-commit install`` writes, run as git runs
  it (remote name and URL as arguments, one ref line on stdin), with the guard as a local
  ``language: system`` hook: pre-commit's own cost plus the guard's, without the one-off
  environment build a ``language: python`` hook needs.

Every case runs ``--runs`` times, interleaved round by round after one warm-up round; it prints
medians (and the spread) and ratios, and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BIN = Path(sys.executable).parent
URL = "https://github.com/acme/shop.git"
FILES = 50


def fast_import_stream(commits: int) -> bytes:
    """``commits`` linear commits on ``main``, each rewriting one of ``FILES`` files."""
    out: list[bytes] = []
    for n in range(1, commits + 1):
        message = f"change {n}\n".encode()
        content = f"line {n}\n".encode() * 20
        out.append(b"commit refs/heads/main\n")
        out.append(f"mark :{n}\n".encode())
        out.append(f"committer Bench <bench@example.com> {1_700_000_000 + n * 60} +0000\n".encode())
        out.append(f"data {len(message)}\n".encode() + message)
        if n > 1:
            out.append(f"from :{n - 1}\n".encode())
        out.append(f"M 644 inline src/file{n % FILES:02d}.txt\n".encode())
        out.append(f"data {len(content)}\n".encode() + content + b"\n")
    return b"".join(out)


def git(repo: Path, *args: str, env: dict[str, str], stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, input=stdin, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def build(repo: Path, commits: int, env: dict[str, str]) -> dict[str, str]:
    """The repository, with the guard installed through pre-commit; the branches' shas."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main", env=env)
    git(repo, "fast-import", "--quiet", env=env, stdin=fast_import_stream(commits))
    git(repo, "branch", "feature/x", "main", env=env)
    git(repo, "branch", "dev", "main~10", env=env)
    git(repo, "branch", "test", "main~20", env=env)
    git(repo, "checkout", "-q", "feature/x", env=env)
    git(repo, "branch", "-f", "main", "main~30", env=env)
    for branch in ("main", "test", "dev"):  # a clone's view of origin
        git(repo, "update-ref", f"refs/remotes/origin/{branch}", branch, env=env)
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        "  - repo: local\n"
        "    hooks:\n"
        "      - id: promote-guard\n"
        "        name: promote-guard\n"
        f"        entry: {BIN / 'promote-guard'}\n"
        "        language: system\n"
        "        stages: [pre-push]\n"
        "        always_run: true\n"
        "        pass_filenames: false\n"
    )
    git(repo, "add", ".pre-commit-config.yaml", env=env)
    git(repo, "commit", "-q", "-m", "pre-commit config", env=env)
    subprocess.run(
        [str(BIN / "pre-commit"), "install", "--hook-type", "pre-push"],
        cwd=repo,
        env=env,
        capture_output=True,
        check=True,
    )
    return {
        b: git(repo, "rev-parse", f"refs/heads/{b}", env=env)
        for b in ("main", "test", "dev", "feature/x")
    }


def timed(argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes, expect: int) -> float:
    begin = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True)
    elapsed = time.perf_counter() - begin
    if done.returncode != expect:
        raise SystemExit(
            f"{' '.join(argv)} exited {done.returncode}, expected {expect}:\n"
            f"{done.stdout.decode()}{done.stderr.decode()}"
        )
    return elapsed


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=15)
    options.add_argument("--commits", type=int, default=10_000)
    args = options.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "gitconfig").write_text("")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "GH_", "GIT_", "PRE_COMMIT_"))
        }
        env |= {
            "GIT_CONFIG_GLOBAL": str(base / "gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "Bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
            "PRE_COMMIT_HOME": str(base / "pre-commit-home"),
        }
        repo = base / "shop"
        begin = time.perf_counter()
        sha = build(repo, args.commits, env)
        built = time.perf_counter() - begin
        count = git(repo, "rev-list", "--count", "HEAD", env=env)

        def push(branch: str) -> dict[str, str]:
            """The variables pre-commit sets for a push of feature/x to ``branch``."""
            return env | {
                "PRE_COMMIT_REMOTE_NAME": "origin",
                "PRE_COMMIT_REMOTE_URL": URL,
                "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/feature/x",
                "PRE_COMMIT_REMOTE_BRANCH": f"refs/heads/{branch}",
                "PRE_COMMIT_FROM_REF": sha.get(branch, sha["main"]),
                "PRE_COMMIT_TO_REF": sha["feature/x"],
            }

        def ref_line(branch: str) -> bytes:
            remote = sha.get(branch, "0" * 40)
            return (
                f"refs/heads/feature/x {sha['feature/x']} refs/heads/{branch} {remote}\n".encode()
            )

        python = [sys.executable]
        guard = [str(BIN / "promote-guard")]
        pre_push = [str(repo / ".git" / "hooks" / "pre-push"), "origin", URL]
        cases: dict[str, Callable[[], float]] = {
            'python -c "import git" (floor)': lambda: timed(
                [*python, "-c", "import git"], repo, env, b"", 0
            ),
            "python -c pass": lambda: timed([*python, "-c", "pass"], repo, env, b"", 0),
            "promote-guard, push to test (refused)": lambda: timed(
                guard, repo, push("test"), b"", 1
            ),
            "promote-guard, push to feature/x": lambda: timed(
                guard, repo, push("feature/x"), b"", 0
            ),
            "promote-no-env-commit (on feature/x)": lambda: timed(
                [str(BIN / "promote-no-env-commit")], repo, env, b"", 0
            ),
            "pre-commit pre-push hook, push to test": lambda: timed(
                pre_push, repo, env, ref_line("test"), 1
            ),
            "pre-commit pre-push hook, push to feature/y": lambda: timed(
                pre_push, repo, env, ref_line("feature/y"), 0
            ),
        }
        for case in cases.values():  # warm-up: page cache, .pyc files
            case()
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, case in cases.items():
                times[name].append(case())

    median = {name: statistics.median(values) for name, values in times.items()}
    floor = median['python -c "import git" (floor)']
    print(
        f"repository: {int(count):,} commits on feature/x, built with git fast-import "
        f"(and pre-commit install) in {built:.1f} s"
    )
    print(f"wall time per process, median of {args.runs} interleaved runs after one warm-up:")
    width = max(map(len, median))
    for name, value in median.items():
        spread = f"{min(times[name]) * 1000:.0f}-{max(times[name]) * 1000:.0f} ms"
        print(f"  {name:<{width}}  {value * 1000:6.1f} ms  ({spread})  {value / floor:.2f}x floor")
    for name in ("promote-guard, push to test (refused)", "promote-guard, push to feature/x"):
        print(f"{name}: guard / floor = {median[name] / floor:.2f} (issue 6 wants ≤ 1.5)")
    hook = median["pre-commit pre-push hook, push to test"]
    print(
        f"pre-commit's own share of the end-to-end pre-push hook: "
        f"{(hook - median['promote-guard, push to test (refused)']) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
