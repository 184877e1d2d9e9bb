"""The hooks' ``main`` functions, called in real git repositories made in tmp_path.

``tests/test_precommit_hooks.py`` runs the same hooks through the real pre-commit; here each
rule and each message is pinned down, in both ways a push is described to a pre-push hook
(pre-commit's variables, and git's own arguments and standard input).
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from promote_tasks.hooks import guard
from promote_tasks.hooks import halt
from promote_tasks.hooks import no_env_commit
from promote_tasks.hooks import plan_lint
from promote_tasks.hooks import read_push
from promote_tasks.model import Plan
from promote_tasks.plans import render_plan

ZERO = "0" * 40
SHA = "a" * 40


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, git_env: None) -> Path:
    """A git repository with one commit on ``dev``, as the current directory (no GitHub)."""
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "work"
    path.mkdir()
    git(path, "init", "-q", "-b", "dev")
    git(path, "commit", "-q", "--allow-empty", "-m", "start")
    monkeypatch.chdir(path)
    return path


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def pre_commit_push(
    branch: str, remote: str = "origin", url: str = "/srv/shop.git"
) -> dict[str, str]:
    """The variables pre-commit gives a pre-push hook for one ref."""
    return {
        "PRE_COMMIT_REMOTE_BRANCH": f"refs/heads/{branch}",
        "PRE_COMMIT_LOCAL_BRANCH": "refs/heads/work",
        "PRE_COMMIT_REMOTE_NAME": remote,
        "PRE_COMMIT_REMOTE_URL": url,
        "PRE_COMMIT_FROM_REF": ZERO,
        "PRE_COMMIT_TO_REF": SHA,
    }


def git_push(*lines: str) -> io.StringIO:
    """git's pre-push standard input: ``<local ref> <local sha> <remote ref> <remote sha>``."""
    return io.StringIO("".join(line + "\n" for line in lines))


# -- how a push is read --------------------------------------------------------------------


def test_a_push_is_read_from_pre_commits_variables() -> None:
    push = read_push([], pre_commit_push("test"), None)
    assert (push.remote_name, push.remote_url) == ("origin", "/srv/shop.git")
    assert [(r.branch, r.local_sha) for r in push.refs] == [("test", SHA)]


def test_a_push_is_read_from_gits_arguments_and_standard_input() -> None:
    stdin = git_push(
        f"refs/heads/work {SHA} refs/heads/feature/x {ZERO}",
        f"(delete) {ZERO} refs/heads/main {SHA}",
        f"refs/tags/v1 {SHA} refs/tags/v1 {ZERO}",
        "garbage",
    )
    push = read_push(["origin", "git@github.com:acme/shop.git"], {}, stdin)
    assert push.remote_url == "git@github.com:acme/shop.git"
    assert [(r.remote_ref, r.branch, r.local_sha) for r in push.refs] == [
        ("refs/heads/feature/x", "feature/x", SHA),
        ("refs/heads/main", "main", None),
        ("refs/tags/v1", None, SHA),
    ]


# -- promote-guard -------------------------------------------------------------------------


@pytest.mark.usefixtures("repo")
@pytest.mark.parametrize(
    ("branch", "route"),
    [
        ("test", "Code reaches `test` only through the promotion PR `dev → test`, which "
                 "`promote next` opens once `dev` is promoted."),
        ("main", "Code reaches `main` only through the promotion PR `test → main`"),
        ("dev", "Code reaches `dev` through a PR from a `feature/<plan-id>` branch: "
                "`git push origin HEAD:feature/<plan-id>`, then open a PR into `dev`."),
    ],
)  # fmt: skip
def test_the_guard_refuses_a_push_to_an_environment_branch_and_names_the_route(
    branch: str, route: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert guard.main([], pre_commit_push(branch)) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"promote-guard: refused: do not push directly to `{branch}`, the branch of "
        f"environment `{branch}` (environment branches change only through merged PRs).\n"
    )
    assert route in err


@pytest.mark.usefixtures("repo")
@pytest.mark.parametrize("branch", ["feature/add-greeting", "docs", "testing", "dev2"])
def test_the_guard_lets_other_branches_through(
    branch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert guard.main([], pre_commit_push(branch)) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("repo")
def test_as_gits_own_hook_the_guard_sees_every_ref_deletions_included(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdin = git_push(
        f"refs/heads/work {SHA} refs/heads/feature/x {ZERO}",
        f"(delete) {ZERO} refs/heads/main {SHA}",
    )
    assert guard.main(["origin", "/srv/shop.git"], {}, stdin) == 1
    err = capsys.readouterr().err
    assert "do not delete `main`" in err
    assert "feature/x" not in err
    fine = git_push(f"refs/heads/work {SHA} refs/heads/feature/x {ZERO}")
    assert guard.main(["origin", "/srv/shop.git"], {}, fine) == 0


@pytest.mark.usefixtures("repo")
def test_the_guard_keeps_to_the_pipelines_repository() -> None:
    heroku = pre_commit_push("main", remote="heroku", url="https://git.heroku.com/shop.git")
    assert guard.main([], heroku) == 0, "a deploy remote is not the pipeline's repository"
    fork = pre_commit_push("test", remote="fork", url="git@github.com:me/shop.git")
    assert guard.main([], {**fork, "GITHUB_REPOSITORY": "acme/shop"}) == 0
    upstream = pre_commit_push("test", remote="upstream", url="https://github.com/Acme/shop.git")
    assert guard.main([], {**upstream, "GITHUB_REPOSITORY": "acme/shop"}) == 1


def test_another_name_for_origin_is_no_way_around_the_guard(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "git@github.com:acme/shop.git")
    same_url = pre_commit_push("test", remote="gh", url="git@github.com:acme/shop.git")
    assert guard.main([], same_url) == 1
    same_repo = pre_commit_push("test", remote="gh", url="https://github.com/acme/shop")
    assert guard.main([], same_repo) == 1
    url_as_remote = pre_commit_push(
        "test", remote="https://github.com/acme/shop.git", url="https://github.com/acme/shop.git"
    )
    assert guard.main([], url_as_remote) == 1
    fork = pre_commit_push("test", remote="gh", url="https://github.com/me/shop")
    assert guard.main([], fork) == 0


def test_the_guard_reads_the_configured_environments(repo: Path) -> None:
    (repo / "promote.toml").write_text(
        '[[environments]]\nname = "qa"\n\n[[environments]]\nname = "prod"\nbranch = "release"\n'
    )
    assert guard.main([], pre_commit_push("release")) == 1
    assert guard.main([], pre_commit_push("test")) == 0, "test is not an environment here"


def test_the_guard_reports_a_broken_configuration_in_one_line(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "promote.toml").write_text("enviroments = []\n")
    assert guard.main([], pre_commit_push("feature/x")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("promote-guard: error: ")
    assert "promote.toml: enviroments: unknown key" in line


def test_the_guard_never_imports_gitpython(repo: Path) -> None:
    code = (
        "import sys; from promote_tasks.hooks.guard import main; "
        "code = main([], {'PRE_COMMIT_REMOTE_BRANCH': 'refs/heads/test'}); "
        "print(code, sorted(m for m in ('git', 'pluggy', 'invoke', 'ghapi') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[0] == "1 []"


# -- promote-no-env-commit -----------------------------------------------------------------


def test_no_commit_on_an_environment_branch(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert no_env_commit.main([]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "promote-no-env-commit: refused: a commit on `dev`, the branch of environment `dev` "
        "(environment branches change only through merged PRs).",
        "  Take the work to a feature branch and commit there (staged changes come along):",
        "  git switch -c feature/<plan-id>",
    ]
    git(repo, "switch", "-q", "-c", "feature/x")
    assert no_env_commit.main([]) == 0
    git(repo, "checkout", "-q", "--detach")
    assert no_env_commit.main([]) == 0, "a detached HEAD (a rebase under way) is not a branch"


def test_no_env_commit_outside_a_repository_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    assert no_env_commit.main([]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"promote-no-env-commit: error: not a git repository: {outside}"


# -- promote-plan-lint ---------------------------------------------------------------------

GOOD = "---\nid: add-greeting\ntitle: Add a greeting\npriority: 2\n---\n\nSay hello.\n"


def plan(root: Path, path: str, text: str) -> str:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    return path


def test_a_good_plan_passes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_lint.main([plan(repo, "plans/doing/add-greeting.md", GOOD)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("path", "text", "problem"),
    [
        ("plans/doing/add-greeting.md", GOOD.replace("priority: 2\n", ""),
         "plans/doing/add-greeting.md: missing required key 'priority'"),
        ("plans/doing/add-greeting.md", GOOD.replace("priority: 2", "priority: high"),
         "plans/doing/add-greeting.md:4: priority must be a whole number, got 'high'"),
        ("plans/doing/add-greeting.md", GOOD.replace("Add a greeting", "Greet: hello"),
         "plans/doing/add-greeting.md:3: the front-matter is not valid YAML (mapping values are "
         "not allowed here; a value with ': ' in it needs quotes, e.g. title: 'Fix test: a "
         "failure')"),
        ("plans/doing/add-greeting.md", GOOD.replace("Add a greeting", "2024"),
         "plans/doing/add-greeting.md:3: title must be text, got 2024, which YAML reads as a "
         "number (quote it: title: '2024')"),
        ("plans/doing/add-greeting.md", GOOD.replace("title:", "titel:"),
         "plans/doing/add-greeting.md:3: unknown key 'titel'"),
        ("plans/doing/add-greeting.md", "Say hello.\n",
         "plans/doing/add-greeting.md: plan files start with a '---' front-matter block"),
        ("plans/doing/greeting.md", GOOD,
         "plans/doing/greeting.md: id 'add-greeting' does not match the file name"),
        ("plans/later/add-greeting.md", GOOD,
         "plans/later/add-greeting.md: plan files live directly in one of plans/inbox/, "
         "plans/doing/, plans/done/"),
        ("plans/doing/add-greeting.md", GOOD.replace("priority: 2", "priority: 2\nparent: epic"),
         "plans/doing/add-greeting.md: parent 'epic' is not a plan in plans/"),
    ],
)  # fmt: skip
def test_a_bad_plan_is_refused_naming_the_file_and_the_problem(
    repo: Path, path: str, text: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan_lint.main([plan(repo, path, text)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"promote-plan-lint: {problem}")
    assert err.count("\n") == 1, "one line: the file, the line, why"


def test_plan_lint_accepts_what_the_tool_writes(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    epic = plan(repo, "plans/doing/epic.md", GOOD.replace("add-greeting", "epic"))
    fix = Plan(
        "fix-test-1234567", "Fix test: plan add-greeting failed at 1234567 (#12, 'quoted')",
        "inbox", 0, "epic", "test@" + "1" * 40, ("add-greeting",), "fix-dev-7654321",
        "rolled back: test went back to 7654321",
    )  # fmt: skip
    written = plan(repo, "plans/inbox/fix-test-1234567.md", render_plan(fix, "Why and what."))
    assert plan_lint.main([epic, written]) == 0
    assert capsys.readouterr().err == ""


def test_a_plan_file_that_is_not_text_is_named(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = repo / "plans" / "doing" / "add-greeting.md"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"---\nid: \xff\xfe\n---\n")
    assert plan_lint.main(["plans/doing/add-greeting.md"]) == 1
    assert (
        capsys.readouterr().err
        == "promote-plan-lint: plans/doing/add-greeting.md: not UTF-8 text\n"
    )


def test_a_plan_lives_in_one_place_and_its_parent_may_be_anywhere(repo: Path) -> None:
    epic = plan(repo, "plans/done/epic.md", GOOD.replace("add-greeting", "epic"))
    child = plan(repo, "plans/doing/add-greeting.md", GOOD.replace("priority: 2", "priority: 2\nparent: epic"))  # fmt: skip
    assert plan_lint.main([epic, child]) == 0
    copy = plan(repo, "plans/inbox/add-greeting.md", GOOD)
    assert plan_lint.main([copy]) == 1


def test_plan_lint_minds_only_plan_files(repo: Path) -> None:
    others = [
        plan(repo, "README.md", "no front-matter"),
        plan(repo, "plans/README.md", "how we plan"),
        plan(repo, "docs/plans/doing/x.md", "not under plans/"),
        plan(repo, "plans/doing/notes.txt", "not markdown"),
    ]
    assert plan_lint.main([*others, "plans/doing/deleted.md"]) == 0


def test_plan_lint_follows_the_configured_plans_directory(repo: Path) -> None:
    (repo / "promote.toml").write_text('plans_dir = "work/plans"\n')
    bad = plan(repo, "work/plans/doing/add-greeting.md", "nope\n")
    ignored = plan(repo, "plans/doing/add-greeting.md", "nope\n")
    assert plan_lint.main([ignored]) == 0
    assert plan_lint.main([bad]) == 1


# -- promote-halt, without GitHub (with GitHub: tests/e2e/test_gate_and_halt.py) -----------

REVIEWERS = 'reviewers = ["rita"]\n'  # the default manual test's reviewer: promote refuses none


def test_halt_without_a_token_warns_and_lets_the_push_through(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "promote.toml").write_text(REVIEWERS)
    environ = {**pre_commit_push("feature/x"), "GITHUB_REPOSITORY": "acme/shop"}
    assert halt.main([], environ) == 0
    assert capsys.readouterr().err == (
        "promote-halt: warning: cannot tell whether work is halted (no GitHub token: set "
        "GITHUB_TOKEN (or GH_TOKEN)); pushing anyway\n"
    )


def test_halt_offline_can_refuse_by_configuration_or_argument(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "promote.toml").write_text(REVIEWERS)
    environ = {**pre_commit_push("feature/x"), "GITHUB_REPOSITORY": "acme/shop"}
    assert halt.main(["--offline", "refuse"], environ) == 1
    assert capsys.readouterr().err.startswith(
        "promote-halt: refused: cannot tell whether work is halted: no GitHub token"
    )
    (repo / "promote.toml").write_text(REVIEWERS + '[hooks]\noffline = "refuse"\n')
    assert halt.main([], environ) == 1
    assert halt.main(["--offline", "warn"], environ) == 0, "the argument wins"


@pytest.mark.usefixtures("repo")
def test_halt_has_nothing_to_ask_for_a_deletion_or_an_empty_push() -> None:
    deletion = git_push(f"(delete) {ZERO} refs/heads/feature/x {SHA}")
    assert halt.main(["origin", "/srv/shop.git", "--offline", "refuse"], {}, deletion) == 0
    assert halt.main(["origin", "/srv/shop.git", "--offline", "refuse"], {}, io.StringIO()) == 0


@pytest.mark.parametrize(
    ("toml", "problem"),
    [
        ('[hooks]\noffline = "maybe"\n', 'hooks.offline: expected "warn" or "refuse", got \'maybe\''),
        ("[hooks]\ntimeout = true\n", "hooks.timeout: expected a number of seconds, got True"),
        ("[hooks]\ntimeout = 0\n", "hooks.timeout: expected seconds between 0 and 120, got 0"),
        ("[hooks]\nofline = 1\n", "hooks.ofline: unknown key (known: offline, timeout)"),
    ],
)  # fmt: skip
def test_a_bad_hooks_table_is_an_error_naming_the_key(
    repo: Path, toml: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "promote.toml").write_text(toml)
    assert halt.main([], pre_commit_push("feature/x")) == 1
    assert capsys.readouterr().err == f"promote-halt: error: {repo / 'promote.toml'}: {problem}\n"
