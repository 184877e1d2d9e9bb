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
CORE = (
    "model",
    "machine",
    "gate",
    "ledger",
    "graph",
    "config",
    "errors",
    "plans",
    "render",
    "registry",
)
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


def _imports(root: Path) -> dict[str, set[str]]:
    """Which src modules each module imports (package re-exports aside)."""
    modules, packages = {}, set()
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        if path.name == "__init__.py":
            packages.add(name)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name and m not in packages}
    return graph


def test_no_import_circle_among_src_modules():
    """The flow runs one way (DESIGN §4): a circle is control climbing back up."""
    graph = _imports(Path(__file__).parent.parent / "src")
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError(" -> ".join([*path[path.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_tasks_holds_only_tasks():
    import invoke

    from promote_tasks import tasks

    source = ast.parse(Path(tasks.__file__).read_text(encoding="utf-8"))
    functions = [n.name for n in source.body if isinstance(n, ast.FunctionDef)]
    assert functions
    for name in functions:
        assert isinstance(getattr(tasks, name), invoke.Task), f"tasks.{name} is not a task"


def test_one_next_derives_once_per_read(monkeypatch, make_sandbox):
    """The state is derived from each read once (an idle next reads once; a next that
    writes reads again under the lock), never again to act or to gate."""
    from promote_sandbox import Scenario
    from promote_tasks import machine
    from promote_tasks import session

    sandbox = make_sandbox(scenario=Scenario(merge_bot=True))
    sandbox.settle()
    run = session.Run.load(sandbox.clone_path, environ=sandbox.env())
    calls: list[int] = []
    real = machine.derive

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    reads: list[int] = []
    real_snapshot = run.snapshot

    def read():
        reads.append(1)
        return real_snapshot()

    monkeypatch.setattr(session, "derive", counted)
    monkeypatch.setattr(run, "snapshot", read)
    seen = []
    for _ in range(6):
        sandbox.settle()
        calls.clear()
        reads.clear()
        taken = run.step()
        seen.append((taken.action.transition, len(reads), len(calls)))
    assert all(derived == read for _, read, derived in seen), seen
    assert {(t is not None, r) for t, r, _ in seen} >= {(True, 2)}, seen  # a transition rereads


def _top_level_imports(path: Path) -> set[str]:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    return imported


def test_the_sandbox_never_imports_the_tool():
    """The sandbox is GitHub: it may not learn anything from the code it stands in for."""
    offenders = [
        path.name
        for path in (ROOT / "src" / "promote_sandbox").rglob("*.py")
        if "promote_tasks" in _top_level_imports(path)
    ]
    assert offenders == []


def test_the_tool_reaches_the_sandbox_only_from_its_demo_and_tasks():
    users = sorted(
        path.relative_to(ROOT / "src" / "promote_tasks").as_posix()
        for path in (ROOT / "src" / "promote_tasks").rglob("*.py")
        if "promote_sandbox" in _top_level_imports(path)
    )
    assert set(users) <= {"demo.py", "tasks.py"}, users


def test_only_the_github_package_imports_ghapi():
    """DESIGN §4: ``github/`` is the only package that talks to GitHub's client libraries."""
    client = {"ghapi", "fastspec", "fasttransport", "httpx2"}
    users = sorted(
        path.relative_to(ROOT / "src" / "promote_tasks").as_posix()
        for path in (ROOT / "src" / "promote_tasks").rglob("*.py")
        if _top_level_imports(path) & client
    )
    assert users
    assert all(u.startswith("github/") for u in users), users
