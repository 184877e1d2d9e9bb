"""The hooks through the real pre-commit framework, in temporary repositories, as a team uses them.

The hook repository is a snapshot of this working tree (tracked files and untracked ones git
does not ignore, so uncommitted work is what gets tested), committed in a temporary directory.
pre-commit clones it and builds its environment (a virtualenv with ``pip install .``) once, into
a session-wide ``PRE_COMMIT_HOME``; every test after that pays about a second per call.

``pre-commit try-repo`` cannot share that environment: it makes a fresh store in a temporary
directory on every call, whatever ``PRE_COMMIT_HOME`` says, so each call builds the environment
again (10-15 s). One test runs try-repo literally; the others run ``pre-commit run`` with the
configuration try-repo writes (the snapshot's path and commit), which reuses the build.

Without PyPI (or the machine's pip mirror) the environment cannot be built, and every test here
fails with pre-commit's own output; none is skipped.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
HOOK_IDS = ("promote-guard", "promote-halt", "promote-no-env-commit", "promote-plan-lint")
GITHUB_URL = "https://github.com/acme/shop.git"

# What a subprocess keeps from this process: enough for git, and for pip to reach its index.
KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"}
KEEP_PREFIXES = ("PIP_", "VIRTUALENV_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
PROXIES = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}


def clean_env(pre_commit_home: Path, gitconfig: Path) -> dict[str, str]:
    """PATH, HOME and pip's settings from this process; no GITHUB_*/GH_*, no GIT_* (a test run
    from inside a git hook inherits GIT_DIR and GIT_INDEX_FILE), no PRE_COMMIT_* refs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name in KEEP or name.startswith(KEEP_PREFIXES) or name.lower() in PROXIES
    }
    env.update(
        PRE_COMMIT_HOME=str(pre_commit_home),
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME="Ada Author",
        GIT_AUTHOR_EMAIL="ada@example.com",
        GIT_COMMITTER_NAME="Ada Author",
        GIT_COMMITTER_EMAIL="ada@example.com",
    )
    return env


def git(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


@dataclasses.dataclass(frozen=True)
class Result:
    returncode: int
    output: str  # stdout then stderr

    def status(self, hook_name: str) -> str:
        """What pre-commit printed for a hook: Passed, Failed or Skipped."""
        found = re.findall(
            rf"^{re.escape(hook_name)}\.+(?:\([^)]*\))?(Passed|Failed|Skipped)$",
            self.output,
            re.MULTILINE,
        )
        assert len(found) == 1, f"no single result line for {hook_name!r} in:\n{self.output}"
        return str(found[0])


def pre_commit(cwd: Path, env: dict[str, str], *args: str) -> Result:
    done = subprocess.run(
        [str(PRE_COMMIT), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    return Result(done.returncode, done.stdout + done.stderr)


@dataclasses.dataclass(frozen=True)
class Hooks:
    """The snapshot of this repository as a hook repository, and how to run pre-commit."""

    repo: Path
    rev: str
    env: dict[str, str]
    names: dict[str, str]  # hook id -> the name pre-commit prints

    def config(self, *ids: str) -> str:
        hooks = [{"id": hook_id} for hook_id in ids]
        return yaml.safe_dump(
            {"repos": [{"repo": str(self.repo), "rev": self.rev, "hooks": hooks}]}
        )

    def run(self, cwd: Path, *args: str) -> Result:
        return pre_commit(cwd, self.env, *args)

    def run_hook(self, cwd: Path, hook_id: str, *args: str) -> Result:
        """``pre-commit run`` of one hook, with the configuration ``try-repo`` would write."""
        config = cwd.parent / f"{cwd.name}-pre-commit-config.yaml"
        config.write_text(self.config(hook_id))
        return self.run(cwd, "run", "--color", "never", "-c", str(config), hook_id, *args)

    def git(self, cwd: Path, *args: str) -> str:
        return git(cwd, *args, env=self.env)


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every subprocess here, with one ``PRE_COMMIT_HOME`` for the session."""
    assert PRE_COMMIT.is_file(), f"pre-commit is not installed next to {sys.executable}"
    base = tmp_path_factory.mktemp("pre-commit-env")
    (base / "gitconfig").write_text("")
    return clean_env(base / "pre-commit-home", base / "gitconfig")


@pytest.fixture(scope="session")
def hooks(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Hooks:
    """The snapshot, and pre-commit's environment for it, built once for the session."""
    base = tmp_path_factory.mktemp("pre-commit")
    snapshot = base / "promote-tasks"
    listed = git(ROOT, "ls-files", "-z", "-co", "--exclude-standard", env=env)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, snapshot / name, follow_symlinks=False)
    git(snapshot, "init", "-q", "-b", "main", env=env)
    git(snapshot, "add", "-A", env=env)
    git(snapshot, "commit", "-q", "-m", "snapshot of the working tree", env=env)
    manifest = yaml.safe_load((snapshot / ".pre-commit-hooks.yaml").read_text())
    names = {hook["id"]: hook["name"] for hook in manifest}
    assert set(HOOK_IDS) <= set(names), f"the manifest lacks hooks: {sorted(names)}"
    hooks = Hooks(snapshot, git(snapshot, "rev-parse", "HEAD", env=env), env, names)

    scratch = base / "scratch"
    scratch.mkdir()
    hooks.git(scratch, "init", "-q", "-b", "main")
    (scratch / ".pre-commit-config.yaml").write_text(hooks.config(*HOOK_IDS))
    built = hooks.run(scratch, "install-hooks")
    if built.returncode != 0:
        pytest.fail(
            "pre-commit could not build the hook environment (`pip install .` needs PyPI or "
            f"the machine's pip index):\n{built.output}",
            pytrace=False,
        )
    return hooks


def new_repo(hooks: Hooks, path: Path, branch: str = "dev") -> Path:
    """A repository with one commit on ``dev``, then ``branch`` checked out."""
    path.mkdir()
    hooks.git(path, "init", "-q", "-b", "dev")
    (path / "README.md").write_text("shop\n")
    hooks.git(path, "add", "README.md")
    hooks.git(path, "commit", "-q", "-m", "start")
    if branch != "dev":
        hooks.git(path, "switch", "-q", "-c", branch)
    return path


def push_args(remote_branch: str, remote_name: str = "origin", url: str = GITHUB_URL) -> list[str]:
    return [
        "--hook-stage", "pre-push",
        "--remote-branch", remote_branch,
        "--local-branch", "refs/heads/dev",
        "--remote-name", remote_name,
        "--remote-url", url,
        "--all-files",
    ]  # fmt: skip


def test_the_manifest_validates(env, tmp_path):
    done = pre_commit(ROOT, env, "validate-manifest", ".pre-commit-hooks.yaml")
    assert done.returncode == 0, done.output
    # and the check has teeth: a misspelt stage is refused
    broken = tmp_path / "hooks.yaml"
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "stages: [pre-push]" in text
    broken.write_text(text.replace("stages: [pre-push]", "stages: [prepush]", 1))
    assert pre_commit(tmp_path, env, "validate-manifest", str(broken)).returncode == 1


@pytest.mark.parametrize(
    ("branch", "code", "result", "said"),
    [
        ("test", 1, "Failed", "promotion PR `dev → test`"),
        ("feature/x", 0, "Passed", ""),
    ],
)
def test_try_repo_refuses_a_push_to_test_and_lets_a_feature_push_through(
    hooks, tmp_path, branch, code, result, said
):
    repo = new_repo(hooks, tmp_path / "shop")
    done = hooks.run(
        repo,
        "try-repo", "--color", "never", str(hooks.repo), "promote-guard",
        *push_args(f"refs/heads/{branch}"),
    )  # fmt: skip
    assert done.returncode == code, done.output
    assert done.status(hooks.names["promote-guard"]) == result
    assert said in done.output


def test_try_repo_refuses_a_commit_on_dev_and_a_bad_plan_file(hooks, tmp_path):
    """Every pre-commit stage hook of the repository at once, as a commit on ``dev`` runs them."""
    repo = new_repo(hooks, tmp_path / "shop")
    plan = repo / "plans" / "doing" / "add-greeting.md"
    plan.parent.mkdir(parents=True)
    plan.write_text("---\nid: add-greeting\ntitle: Add a greeting\n---\n")
    hooks.git(repo, "add", "plans")
    done = hooks.run(
        repo, "try-repo", "--color", "never", str(hooks.repo), "--hook-stage", "pre-commit"
    )
    assert done.returncode == 1, done.output
    assert done.status(hooks.names["promote-no-env-commit"]) == "Failed"
    assert done.status(hooks.names["promote-plan-lint"]) == "Failed"
    assert "a commit on `dev`, the branch of environment `dev`" in done.output
    assert "plans/doing/add-greeting.md: missing required key 'priority'" in done.output


@pytest.mark.parametrize(
    ("remote_branch", "route"),
    [
        ("refs/heads/dev", "through a PR from a `feature/<plan-id>` branch"),
        ("refs/heads/test", "the promotion PR `dev → test`"),
        ("refs/heads/main", "the promotion PR `test → main`"),
    ],
)
def test_guard_refuses_a_push_to_an_environment_branch(hooks, tmp_path, remote_branch, route):
    repo = new_repo(hooks, tmp_path / "shop")
    done = hooks.run_hook(repo, "promote-guard", *push_args(remote_branch))
    assert done.returncode == 1, done.output
    assert done.status(hooks.names["promote-guard"]) == "Failed"
    branch = remote_branch.removeprefix("refs/heads/")
    assert f"refused: do not push directly to `{branch}`" in done.output
    assert route in done.output


@pytest.mark.parametrize(
    ("remote_branch", "remote_name", "url"),
    [
        ("refs/heads/feature/x", "origin", GITHUB_URL),
        ("refs/tags/v1.0", "origin", GITHUB_URL),
        ("refs/heads/main", "heroku", "https://git.heroku.com/shop.git"),  # a deploy remote
    ],
)
def test_guard_lets_other_pushes_through(hooks, tmp_path, remote_branch, remote_name, url):
    repo = new_repo(hooks, tmp_path / "shop")
    done = hooks.run_hook(repo, "promote-guard", *push_args(remote_branch, remote_name, url))
    assert done.returncode == 0, done.output
    assert done.status(hooks.names["promote-guard"]) == "Passed"


def test_guard_reads_the_configuration_of_the_repository_it_runs_in(hooks, tmp_path):
    repo = new_repo(hooks, tmp_path / "shop")
    (repo / "promote.toml").write_text(
        "".join(
            f'[[environments]]\nname = "{name}"\nvalidators = []\n'
            for name in ("dev", "qa", "main")
        )
    )
    refused = hooks.run_hook(repo, "promote-guard", *push_args("refs/heads/qa"))
    assert refused.returncode == 1, refused.output
    assert "the promotion PR `dev → qa`" in refused.output
    passed = hooks.run_hook(repo, "promote-guard", *push_args("refs/heads/test"))
    assert passed.returncode == 0, passed.output  # `test` is no environment branch here


@pytest.mark.parametrize(
    ("branch", "refused"), [("dev", True), ("main", True), ("feature/x", False)]
)
def test_no_env_commit_refuses_a_commit_on_an_environment_branch(hooks, tmp_path, branch, refused):
    repo = new_repo(hooks, tmp_path / "shop", branch)
    done = hooks.run_hook(
        repo, "promote-no-env-commit", "--hook-stage", "pre-commit", "--all-files"
    )
    name = hooks.names["promote-no-env-commit"]
    if refused:
        assert done.returncode == 1, done.output
        assert done.status(name) == "Failed"
        assert f"refused: a commit on `{branch}`" in done.output
        assert "git switch -c feature/<plan-id>" in done.output
    else:
        assert done.returncode == 0, done.output
        assert done.status(name) == "Passed"


GOOD_PLAN = "---\nid: x\ntitle: Do the thing\npriority: 2\n---\n\nWhat and why.\n"


def lint_plan(hooks: Hooks, tmp_path: Path, text: str) -> Result:
    """``promote-plan-lint`` on ``plans/doing/x.md`` holding ``text``, as a commit would run it."""
    repo = new_repo(hooks, tmp_path / "shop", "feature/x")
    (repo / "plans" / "doing").mkdir(parents=True)
    (repo / "plans" / "doing" / "x.md").write_text(text)
    return hooks.run_hook(
        repo, "promote-plan-lint", "--hook-stage", "pre-commit", "--files", "plans/doing/x.md"
    )


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        (GOOD_PLAN.replace("priority: 2\n", ""), "missing required key 'priority'"),
        (GOOD_PLAN.replace("priority: 2", "priority: soon"), "priority must be a whole number"),
        (GOOD_PLAN.replace("priority: 2", "priority: 2\nowner: ada"), "unknown key 'owner'"),
        (GOOD_PLAN.replace("id: x", "id: y"), "id 'y' does not match the file name"),
    ],
    ids=["no-priority", "priority-not-a-number", "unknown-key", "id-not-the-file-name"],
)
def test_plan_lint_names_the_file_and_the_key(hooks, tmp_path, plan, problem):
    done = lint_plan(hooks, tmp_path, plan)
    assert done.returncode == 1, done.output
    assert done.status(hooks.names["promote-plan-lint"]) == "Failed"
    assert re.search(rf"plans/doing/x\.md\S*: {re.escape(problem)}", done.output), done.output


def test_plan_lint_passes_a_good_plan(hooks, tmp_path):
    done = lint_plan(hooks, tmp_path, GOOD_PLAN)
    assert done.returncode == 0, done.output
    assert done.status(hooks.names["promote-plan-lint"]) == "Passed"  # checked, not skipped


def origin_and_clone(hooks: Hooks, tmp_path: Path, *branches: str) -> tuple[Path, str]:
    """A bare ``origin`` with ``branches`` at one commit, and a clone of it on ``dev``."""
    origin = tmp_path / "origin.git"
    hooks.git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = new_repo(hooks, tmp_path / "seed")
    for branch in branches:
        hooks.git(seed, "push", "-q", str(origin), f"HEAD:refs/heads/{branch}")
    hooks.git(tmp_path, "clone", "-q", "-b", "dev", str(origin), "clone")
    return tmp_path / "clone", hooks.git(seed, "rev-parse", "HEAD")


def git_run(hooks: Hooks, cwd: Path, *args: str) -> Result:
    """A git command that may fail (a refused commit or push), with what it and its hooks said."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=hooks.env, capture_output=True, text=True, check=False
    )
    return Result(done.returncode, done.stdout + done.stderr)


def remote_sha(hooks: Hooks, clone: Path, branch: str) -> str | None:
    listed = hooks.git(clone, "ls-remote", "origin", f"refs/heads/{branch}")
    return listed.split()[0] if listed else None


def test_installed_in_a_fresh_repository_a_push_to_test_is_refused_and_a_feature_push_passes(
    hooks, tmp_path
):
    """Issue 6's Done-when, literally."""
    clone, start = origin_and_clone(hooks, tmp_path, "main", "test", "dev")
    (clone / ".pre-commit-config.yaml").write_text(
        hooks.config("promote-guard", "promote-no-env-commit")
    )
    installed = hooks.run(clone, "install", "--hook-type", "pre-push", "--hook-type", "pre-commit")
    assert installed.returncode == 0, installed.output

    # a commit on `dev` is refused by the pre-commit hook, and no commit is made
    hooks.git(clone, "add", ".pre-commit-config.yaml")
    on_dev = git_run(hooks, clone, "commit", "-m", "hooks")
    assert on_dev.returncode != 0, on_dev.output
    assert "refused: a commit on `dev`" in on_dev.output
    assert hooks.git(clone, "rev-parse", "HEAD") == start

    hooks.git(clone, "switch", "-q", "-c", "feature/x")
    hooks.git(clone, "commit", "-q", "-m", "hooks")  # the pre-commit hook lets this one through
    head = hooks.git(clone, "rev-parse", "HEAD")

    to_test = git_run(hooks, clone, "push", "origin", "HEAD:test")
    assert to_test.returncode != 0, to_test.output
    assert to_test.status(hooks.names["promote-guard"]) == "Failed"
    assert "refused: do not push directly to `test`" in to_test.output
    assert "the promotion PR `dev → test`" in to_test.output
    assert remote_sha(hooks, clone, "test") == start

    to_feature = git_run(hooks, clone, "push", "origin", "HEAD:feature/x")
    assert to_feature.returncode == 0, to_feature.output
    assert to_feature.status(hooks.names["promote-guard"]) == "Passed"
    assert remote_sha(hooks, clone, "feature/x") == head


def test_pre_commit_checks_one_ref_and_no_deletion_where_gits_own_hook_checks_all(hooks, tmp_path):
    """What the README says of push hooks: through pre-commit, a second ref in a push and a
    deletion go unchecked; ``exec promote-guard "$@"`` as git's own hook refuses both."""
    clone, start = origin_and_clone(hooks, tmp_path, "main", "test", "dev", "feature/a")
    hooks.git(clone, "switch", "-q", "-c", "feature/a", "origin/feature/a")
    (clone / "work.txt").write_text("work\n")
    hooks.git(clone, "add", "work.txt")
    hooks.git(clone, "commit", "-q", "-m", "work")
    head = hooks.git(clone, "rev-parse", "HEAD")

    # git's own hook, the README's way to check every ref
    guard = Path(sys.executable).parent / "promote-guard"
    pre_push = clone / ".git" / "hooks" / "pre-push"
    pre_push.write_text(f'#!/bin/sh\nexec "{guard}" "$@"\n')
    pre_push.chmod(0o755)
    both = git_run(hooks, clone, "push", "origin", "HEAD:feature/a", "HEAD:test")
    assert both.returncode != 0, both.output
    assert "refused: do not push directly to `test`" in both.output
    deletion = git_run(hooks, clone, "push", "origin", ":test")
    assert deletion.returncode != 0, deletion.output
    assert "refused: do not delete `test`" in deletion.output
    assert remote_sha(hooks, clone, "test") == start

    # pre-commit's hook in its place: git lists refs the remote has first (feature/a, then
    # test); pre-commit checks only the first with something to push, and skips deletions
    (clone / ".pre-commit-config.yaml").write_text(hooks.config("promote-guard"))
    installed = hooks.run(clone, "install", "--overwrite", "--hook-type", "pre-push")
    assert installed.returncode == 0, installed.output
    both = git_run(hooks, clone, "push", "origin", "HEAD:feature/a", "HEAD:test")
    assert both.returncode == 0, both.output
    assert both.status(hooks.names["promote-guard"]) == "Passed"
    assert remote_sha(hooks, clone, "test") == head
    deletion = git_run(hooks, clone, "push", "origin", ":test")
    assert deletion.returncode == 0, deletion.output
    assert hooks.names["promote-guard"] not in deletion.output  # the hook never ran
    assert remote_sha(hooks, clone, "test") is None
