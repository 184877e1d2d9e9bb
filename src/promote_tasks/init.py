"""``promote init``: the files a repository needs to run promote on GitHub Actions (DESIGN
§3.7), written from the templates shipped in this package. Nothing is overwritten without
``force``; a file already as it would be written is left alone, so a second run changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from importlib import resources
from pathlib import Path

from promote_tasks.errors import ConfigError
from promote_tasks.git import open_repo
from promote_tasks.plans import STATUS_DIRS

CONFIG = """\
# promote-tasks settings (written by `promote init`; `promote config` shows what is in force).
# The default pipeline is dev -> test -> main; see the README for [[environments]].
plans_dir = "plans"
deploy_workflow = "deploy.yml"  # dispatched with inputs environment and sha
# Required: the GitHub logins who may approve the manual test (promote fails until set).
# reviewers = ["a-login"]
"""

LEFT_FOR_A_PERSON = (
    "a deploy workflow named Deploy that meets the contract in deploy.example.yml "
    "(promote init does not write it)",
    "rulesets on dev, test and main: changes only through pull requests, "
    "the promote/gate status required",
    "reviewers = [...] in the settings: who may approve a manual test "
    "(promote config says what is missing until then)",
    "the token: GITHUB_TOKEN works but its promotion PRs start no workflows; "
    "for that, a GitHub App and its secrets (actions/create-github-app-token)",
    "commit these files on dev, move test and main to that commit, then promote adopt: "
    "each environment's known-good baseline",
)


@dataclass(frozen=True)
class Item:
    """One file ``init`` would write and what it found there."""

    path: str  # relative to the repository root
    content: str
    outcome: str  # "write", "overwrite", "unchanged" or "kept" (differs; --force to overwrite)


def template(name: str) -> str:
    """A template shipped in ``promote_tasks/templates``."""
    return resources.files("promote_tasks").joinpath("templates", name).read_text("utf-8")


PLACEHOLDER_SOURCE = "https://github.com/promote-tasks/promote-tasks"
PLACEHOLDER_COMMIT = "0" * 40


def installed_from() -> tuple[str, str] | None:
    """The git repository and commit this copy was installed from (pip's direct_url.json,
    PEP 610), so the workflows install the very same tool; None for any other install."""
    try:
        text = metadata.distribution("promote-tasks").read_text("direct_url.json")
        found = json.loads(text or "null")
    except (metadata.PackageNotFoundError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    vcs = found.get("vcs_info") or {}
    url, commit = str(found.get("url", "")), str(vcs.get("commit_id", ""))
    if vcs.get("vcs") != "git" or not url.startswith("https://") or len(commit) != 40:
        return None
    return url.removesuffix(".git"), commit


def workflow(name: str, source: tuple[str, str] | None) -> str:
    """A workflow template, installing the tool from ``source`` (repository, commit)."""
    text = template(f"workflows/{name}")
    if source is None:
        return text
    return text.replace(PLACEHOLDER_SOURCE, source[0]).replace(PLACEHOLDER_COMMIT, source[1])


def repository_root(start: Path) -> Path:
    """The root of the git repository at or above ``start`` (one-line error if none)."""
    repo = open_repo(start)
    try:
        if repo.working_tree_dir is None:
            raise ConfigError(f"{start}: a bare repository has no files to write")
        return Path(repo.working_tree_dir)
    finally:
        repo.close()


def plan(root: Path, *, force: bool = False) -> list[Item]:
    """What ``init`` would write under ``root``, each with what it found there."""
    source = installed_from()
    wanted = {
        ".github/workflows/promote.yml": workflow("promote.yml", source),
        ".github/workflows/promote-gate.yml": workflow("promote-gate.yml", source),
        ".github/promote/manual-test.md": template("manual-test.md"),
        **{f"plans/{status}/.gitkeep": "" for status in STATUS_DIRS},
    }
    items = [_item(root, path, content, force) for path, content in wanted.items()]
    items.append(_config_item(root))
    items.append(_precommit_item(root, source, force))
    return items


PRECOMMIT = ".pre-commit-config.yaml"
HOOK_IDS = ("promote-guard", "promote-halt", "promote-no-env-commit", "promote-plan-lint")


def precommit_entry(source: tuple[str, str] | None, indent: str = "  ") -> str:
    """The ``repos:`` entry for promote's hooks, pinned to the commit this copy came from."""
    url, commit = source or (PLACEHOLDER_SOURCE, PLACEHOLDER_COMMIT)
    lines = [
        f"- repo: {url}",
        f'  rev: "{commit}"  # a commit of promote-tasks, never a branch',
        "  hooks:",
        *(f"    - id: {hook}" for hook in HOOK_IDS),
    ]
    return "".join(f"{indent}{line}\n" for line in lines)


def _precommit_item(root: Path, source: tuple[str, str] | None, force: bool) -> Item:
    """A whole ``.pre-commit-config.yaml``, or promote's entry added to the team's own. A
    configuration that already names promote-tasks is the team's: left as it is."""
    import yaml

    target = root / PRECOMMIT
    whole = (
        "# pre-commit hooks (written by `promote init`); install both kinds:\n"
        "#   pre-commit install --hook-type pre-commit --hook-type pre-push\n"
        "repos:\n" + precommit_entry(source)
    )
    if not target.exists():
        return Item(PRECOMMIT, whole, "write")
    if target.is_dir():
        raise ConfigError(f"{PRECOMMIT}: a directory is in the way of a file promote init writes")
    text = target.read_text("utf-8", errors="replace")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{PRECOMMIT}: not valid YAML: {' '.join(str(e).split())}") from None
    repos = data.get("repos") if isinstance(data, dict) else None
    if isinstance(repos, list) and any(
        isinstance(r, dict) and str(r.get("repo", "")).rstrip("/").endswith("promote-tasks")
        for r in repos
    ):
        return Item(PRECOMMIT, text, "unchanged")
    found = re.search(r"^([ \t]*)- repo:", text, re.MULTILINE)
    added = text.rstrip("\n") + "\n" + precommit_entry(source, found.group(1) if found else "  ")
    try:
        again = yaml.safe_load(added)
    except yaml.YAMLError:
        again = None
    if (
        isinstance(repos, list)
        and isinstance(again, dict)
        and again.get("repos", [])[:-1] == repos
        and len(again.get("repos", [])) == len(repos) + 1
    ):
        return Item(PRECOMMIT, added, "append")
    return Item(PRECOMMIT, whole, "overwrite" if force else "kept")


def _item(root: Path, path: str, content: str, force: bool) -> Item:
    target = root / path
    if not target.exists():
        return Item(path, content, "write")
    if target.is_file() and target.read_text("utf-8", errors="replace") == content:
        return Item(path, content, "unchanged")
    if target.is_dir():
        raise ConfigError(f"{path}: a directory is in the way of a file promote init writes")
    return Item(path, content, "overwrite" if force else "kept")


def _config_item(root: Path) -> Item:
    """Settings go into ``[tool.promote]`` of an existing pyproject.toml, else into
    promote.toml. Settings already there are the team's: never rewritten, even with force."""
    pyproject, own = root / "pyproject.toml", root / "promote.toml"
    if own.is_file():
        return Item("promote.toml", "", "unchanged")
    if pyproject.is_file():
        text = pyproject.read_text("utf-8")
        try:
            configured = "promote" in tomllib.loads(text).get("tool", {})
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"pyproject.toml: not valid TOML: {e}") from None
        if configured:
            return Item("pyproject.toml", text, "unchanged")
        section = CONFIG.replace("\nplans_dir", "\n[tool.promote]\nplans_dir", 1)
        return Item("pyproject.toml", text.rstrip("\n") + "\n\n" + section, "append")
    return Item("promote.toml", CONFIG, "write")


def write(root: Path, items: list[Item]) -> None:
    """Write the items that are to be written (``write``, ``overwrite``, ``append``)."""
    for item in items:
        if item.outcome in ("write", "overwrite", "append"):
            target = root / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".promote-init")
            tmp.write_text(item.content, encoding="utf-8")
            os.replace(tmp, target)


def report(items: list[Item], *, dry_run: bool) -> str:
    """What was (or would be) done to each file, then what is left for a person."""
    said = {
        "write": "would write" if dry_run else "wrote",
        "overwrite": "would overwrite" if dry_run else "overwrote",
        "append": "would add [tool.promote] to" if dry_run else "added [tool.promote] to",
        "unchanged": "unchanged",
        "kept": "kept (it differs; --force to overwrite)",
    }
    hooks = "would add promote's hooks to" if dry_run else "added promote's hooks to"
    lines = [
        f"{hooks if (item.outcome, item.path) == ('append', PRECOMMIT) else said[item.outcome]}: "
        f"{item.path}"
        for item in items
    ]
    lines.append("left for a person:")
    if installed_from() is None:
        lines.append(
            "  - set PROMOTE_SOURCE and PROMOTE_COMMIT in both workflows, and repo/rev of"
            " promote-tasks in .pre-commit-config.yaml, to the promote-tasks repository and a"
            " commit of it (this copy was not installed from git)"
        )
    lines.extend(f"  - {todo}" for todo in LEFT_FOR_A_PERSON)
    return "\n".join(lines)
