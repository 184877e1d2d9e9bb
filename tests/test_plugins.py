from __future__ import annotations

import sys
from pathlib import Path

import pytest

from promote_tasks.config import settings_from
from promote_tasks.errors import ConfigError
from promote_tasks.errors import PluginError
from promote_tasks.machine import decide
from promote_tasks.machine import derive
from promote_tasks.model import Result
from promote_tasks.model import WorkflowRun
from promote_tasks.plugins import collect
from promote_tasks.plugins import describe
from promote_tasks.plugins import make_plugin_manager
from promote_tasks.plugins import pipeline_from
from promote_tasks.registry import ValidationRun
from promote_tasks.session import Run
from tests.builders import PIPELINE
from tests.builders import check
from tests.builders import facts
from tests.builders import run
from tests.builders import sha
from tests.builders import snap

ROOT = Path(__file__).parent.parent


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)
    return directory


def test_defaults_register_through_the_hooks():
    pm = make_plugin_manager(entry_points=False)
    registry = collect(pm, settings_from({"reviewers": ["rita"]}))
    assert sorted(registry.validators) == ["http-health", "manual-approval", "monitor", "workflow"]
    assert sorted(registry.rollback_strategies) == ["redeploy", "reset", "revert"]
    assert registry.rollback_strategies["reset"].opt_in
    assert sorted(registry.plan_stores) == ["files", "issues"]
    assert registry.owners["validator:http-health"] == "validators"
    names = [name for name, _ in describe(pm)]
    assert names[:5] == ["environments", "validators", "manual_approval", "rollback", "plan_stores"]
    assert registry.owners["validator:manual-approval"] == "manual_approval"


def test_pipeline_orders_environments_and_makes_the_last_production():
    settings = settings_from({"reviewers": ["rita"]})
    pipeline = pipeline_from(collect(make_plugin_manager(entry_points=False), settings), settings)
    assert pipeline.names == ("dev", "test", "main")
    assert [e.production for e in pipeline.environments] == [False, False, True]


def test_team_plugin_in_the_repository_loads_by_path_and_validates():
    settings = settings_from(
        {
            "plugins_dir": "plugins",
            "validators": {"hours": {"use": "business-hours", "start": 9, "end": 17}},
            "environments": [
                {"name": "dev"},
                {"name": "main", "validators": ["hours"], "production": True},
            ],
        },
        root=ROOT,
    )
    pm = make_plugin_manager(plugins_dir=settings.plugins_path(), entry_points=False)
    registry = collect(pm, settings)
    assert registry.owners["validator:business-hours"] == "plugins/business_hours.py"
    pipeline = pipeline_from(registry, settings)
    validator = registry.validators["business-hours"]
    for taken_at, expected in (("2026-11-24T10:00:00Z", Result.PASSED), ("2026-11-24T20:00:00Z", Result.PENDING),
                               ("2026-11-28T10:00:00Z", Result.PENDING)):  # fmt: skip
        snapshot = snap(taken_at=taken_at)
        run = ValidationRun(
            "hours",
            pipeline.get("main"),
            "0" * 40,
            settings.validators["hours"].options,
            settings,
            snapshot,
        )
        assert validator.check(run).result is expected, taken_at
    assert decide(derive(snap(), pipeline), snap(), pipeline).transition is None


def test_the_workflow_validator_waits_for_the_newest_run_and_check_run_of_each_name():
    head = sha("head")
    settings = settings_from(
        {
            "reviewers": ["rita"],
            "validators": {
                "ci": {"use": "workflow", "workflows": ["smoke.yml"], "checks": ["lint"]}
            },
        }
    )
    validator = collect(make_plugin_manager(entry_points=False), settings).validators["workflow"]

    def verdict(*found):
        runs = tuple(f for f in found if isinstance(f, WorkflowRun))
        checks = tuple(f for f in found if not isinstance(f, WorkflowRun))
        snapshot = snap(facts("dev", head, runs=runs, checks=checks))
        env = PIPELINE.get("dev")
        ci = ValidationRun("ci", env, head, settings.validators["ci"].options, settings, snapshot)
        v = validator.check(ci)
        return v.result, v.summary

    smoke_failed = run(1, head, "completed", "failure", workflow="smoke.yml")
    smoke_passed = run(3, head, "completed", "success", workflow="smoke.yml")
    lint_running = check(2, "lint", head, "in_progress")
    lint_passed = check(4, "lint", head, "completed", "success")
    elsewhere = check(5, "lint", sha("other"), "completed", "failure")
    assert verdict() == (Result.PENDING, "waiting for smoke.yml, lint")
    assert verdict(smoke_passed, lint_running) == (Result.PENDING, "waiting for lint")
    assert verdict(smoke_failed, lint_passed) == (Result.FAILED, "smoke.yml failure")
    # The newest of each name counts (a re-run that passed), and only at the head.
    assert verdict(smoke_failed, smoke_passed, lint_running, lint_passed, elsewhere) == (
        Result.PASSED,
        "all passed",
    )


def test_duplicate_names_name_both_plugins(tmp_path):
    plugins = write(tmp_path / "plugins", "mine.py", (
        "from promote_tasks import hookimpl\n"
        "class V:\n    name = 'workflow'\n    option_types = {}\n"
        "    def start(self, run): pass\n    def check(self, run): pass\n"
        "@hookimpl\ndef register_validators(register):\n    register(V())\n"))  # fmt: skip
    pm = make_plugin_manager(plugins_dir=plugins, entry_points=False)
    with pytest.raises(
        PluginError,
        match=r"validator 'workflow' is registered twice: by validators and by plugins/mine\.py",
    ):
        collect(pm, settings_from({"reviewers": ["rita"]}))


def test_a_misspelt_hook_is_an_error_at_start_up(tmp_path):
    plugins = write(tmp_path / "plugins", "typo.py", (
        "from promote_tasks import hookimpl\n@hookimpl\ndef register_validator(register):\n    pass\n"))  # fmt: skip
    with pytest.raises(PluginError, match=r"register_validator.*misspelt hook name"):
        make_plugin_manager(plugins_dir=plugins, entry_points=False)


def test_a_plugin_that_fails_to_import_is_named(tmp_path):
    plugins = write(tmp_path / "plugins", "broken.py", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match=r"broken\.py failed to load: RuntimeError: boom"):
        make_plugin_manager(plugins_dir=plugins, entry_points=False)


def test_wrong_shape_is_refused(tmp_path):
    plugins = write(tmp_path / "plugins", "shape.py", (
        "from promote_tasks import hookimpl\nclass S:\n    name = 'odd'\n"
        "@hookimpl\ndef register_rollback_strategies(register):\n    register(S())\n"))  # fmt: skip
    with pytest.raises(PluginError, match="registered rollback strategy 'odd' of the wrong shape"):
        collect(
            make_plugin_manager(plugins_dir=plugins, entry_points=False),
            settings_from({"reviewers": ["rita"]}),
        )


def test_entry_point_plugins_load(tmp_path, monkeypatch):
    package = tmp_path / "acme_promote"
    write(package, "__init__.py", (
        "from promote_tasks import hookimpl\nfrom promote_tasks.model import Environment\n"
        "@hookimpl\ndef register_environments(register):\n"
        "    register(Environment('preview', 'preview', order=5))\n"))  # fmt: skip
    dist = tmp_path / "acme_promote-1.0.dist-info"
    write(dist, "METADATA", "Metadata-Version: 2.1\nName: acme-promote\nVersion: 1.0\n")
    write(dist, "entry_points.txt", "[promote_tasks]\nacme = acme_promote\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = settings_from({"reviewers": ["rita"]})
    pipeline = pipeline_from(collect(make_plugin_manager(), settings), settings)
    assert pipeline.names == ("dev", "preview", "test", "main")
    sys.modules.pop("acme_promote", None)


CONFIG_ERRORS = {
    "unknown validator plugin": ({"validators": {"x": {"use": "nope"}}}, "validators.x.use: no validator plugin 'nope'"),
    "unknown option": ({"validators": {"health": {"timout": 3}}}, "validators.health.timout: unknown option for http-health"),
    "bad option value": ({"validators": {"health": {"retries": "many"}}}, "validators.health.retries: bad value 'many'"),
    "unknown rollback": ({"rollback": "undo"}, "no rollback strategy 'undo'"),
    "unknown plan store": ({"plan_store": "jira"}, "plan_store: no plan store 'jira'"),
}  # fmt: skip


@pytest.mark.parametrize(("data", "message"), CONFIG_ERRORS.values(), ids=CONFIG_ERRORS.keys())
def test_settings_are_checked_against_what_plugins_offer(data, message):
    settings = settings_from(data, source="promote.toml")
    with pytest.raises(ConfigError, match="^promote.toml: .*" + message.replace(".", r"\.")):
        collect(make_plugin_manager(entry_points=False), settings)


def test_plugins_dir_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="is not a directory"):
        make_plugin_manager(plugins_dir=tmp_path / "missing", entry_points=False)


def test_the_notification_hook_is_callable_by_plugins(tmp_path):
    plugins = write(tmp_path / "plugins", "chat.py", (
        "from promote_tasks import hookimpl\nSEEN = []\n"
        "@hookimpl\ndef promote_transition(action, did, repository):\n    SEEN.append((action, did, repository))\n"))  # fmt: skip
    pm = make_plugin_manager(plugins_dir=plugins, entry_points=False)
    pm.hook.promote_transition(action="R4", did=("x",), repository="acme/shop")
    assert sys.modules["promote_tasks_local_plugins.chat"].SEEN == [("R4", ("x",), "acme/shop")]


def test_plugins_find_the_plans_branch_on_the_pipeline_a_plugin_built(tmp_path):
    """An environment plugin may put a stage before the configured first one: plan files then
    live on that stage's branch, for the plan stores and the rollback strategies alike."""
    plugins = tmp_path / "plugins"
    write(plugins, "intake.py", (
        "from promote_tasks import hookimpl\nfrom promote_tasks.model import Environment\n"
        "@hookimpl\ndef register_environments(register):\n"
        "    register(Environment('intake', 'intake', order=-1))\n"))  # fmt: skip
    (tmp_path / "promote.toml").write_text('reviewers = ["rita"]\nplugins_dir = "plugins"\n')
    run = Run.load(tmp_path, environ={})
    assert run.pipeline.names[:2] == ("intake", "dev")
    assert run.settings.plans_branch == "intake"
    assert run.settings.environments[0].branch == "dev"  # what was configured is unchanged


def test_github_has_every_method_of_the_port_with_its_parameters():
    """``GitHub`` satisfies ``GitHubPort`` structurally (mypy checks it too, where a
    ``GitHub`` is handed to plugins): each method is there, async where the port's is."""
    import inspect

    from promote_tasks.github import GitHub
    from promote_tasks.registry import GitHubPort

    methods = [
        name
        for name, value in vars(GitHubPort).items()
        if inspect.isfunction(value) and not name.startswith("_")
    ]
    assert "set_status" in methods
    assert "rollback_deployment" in methods
    for name in methods:
        port, real = getattr(GitHubPort, name), getattr(GitHub, name)
        assert inspect.iscoroutinefunction(real) == inspect.iscoroutinefunction(port), name
        wanted = list(inspect.signature(port).parameters)
        assert list(inspect.signature(real).parameters) == wanted, name


def test_mypy_refuses_a_plugin_that_calls_what_the_port_lacks(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    plugin = tmp_path / "reaching.py"
    plugin.write_text(
        "from __future__ import annotations\n\n"
        "from promote_tasks.registry import RollbackRun\n\n\n"
        "def rollback(run: RollbackRun) -> str:\n"
        "    return str(run.github.run(run.github.take_lock('t', 'me', '', '', '')))\n"
    )
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--follow-imports=silent", str(plugin)]
    )
    assert status == 1, out
    assert '"GitHubPort" has no attribute "take_lock"' in out
