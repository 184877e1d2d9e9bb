"""Keep the docs, the table and the layering honest."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from promote_tasks import hookspecs
from promote_tasks.machine import TRANSITIONS

ROOT = Path(__file__).parent.parent
CORE = ("model", "machine", "gate", "ledger", "config", "errors", "plans", "render", "registry")
FORBIDDEN = ("invoke", "pluggy", "ghapi", "git", "fastcore", "fasttransport", "httpx", "httpx2")


def row_cells(t):
    target = t.target.value if t.target else ("(Plan)" if t.id == "R9" else "(Merge)")
    return [t.id, t.source.value if t.source else "(Merge)", target, t.trigger, t.effect]


def test_readme_table_is_the_transition_table():
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in (ROOT / "README.md").read_text().splitlines()
        if re.match(r"^\| R\d \|", line)
    ]
    assert rows == [row_cells(t) for t in TRANSITIONS]


def test_every_transition_row_is_exercised_by_a_test():
    marked = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        marked |= set(re.findall(r'mark\.transition\("(R\d)"\)', path.read_text()))
    missing = [t.id for t in TRANSITIONS if t.id not in marked]
    assert not missing, f"no test marked for {missing}"


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io_library(module):
    tree = ast.parse((ROOT / "src" / "promote_tasks" / f"{module}.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & set(FORBIDDEN)


def test_importing_the_core_loads_no_io_library():
    modules = ", ".join(f"promote_tasks.{m}" for m in CORE)
    code = f"import sys, {modules}; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not {m.split(".")[0] for m in loaded} & set(FORBIDDEN)


def test_every_hookspec_is_documented_in_code_and_readme():
    readme = (ROOT / "README.md").read_text()
    specs = [
        name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "promote_tasks_spec")
    ]
    assert len(specs) == 5
    for name in specs:
        assert getattr(hookspecs, name).__doc__, name
        assert f"`{name}(" in readme, name


def test_manifest_hook_ids_are_console_scripts_and_documented():
    import importlib
    import tomllib

    import yaml  # from pre-commit's dependencies

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text()) or []
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    readme = (ROOT / "README.md").read_text()
    assert {h["id"]: h["stages"] for h in hooks} == {
        "promote-guard": ["pre-push"],
        "promote-halt": ["pre-push"],
        "promote-no-env-commit": ["pre-commit"],
        "promote-plan-lint": ["pre-commit"],
    }
    modules = set()
    for hook in hooks:
        assert hook["id"] == hook["entry"]
        assert hook["id"] in scripts
        assert f"`{hook['id']}`" in readme
        module, _, function = scripts[hook["id"]].partition(":")
        assert (module.rsplit(".", 1)[0], function) == ("promote_tasks.hooks", "main")
        assert callable(getattr(importlib.import_module(module), function))
        modules.add(module)
    assert len(modules) == len(hooks), "one module per hook"
