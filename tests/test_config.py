from __future__ import annotations

from collections.abc import Iterator

import pytest

from promote_sandbox import Sandbox
from promote_sandbox import start
from promote_tasks.config import find_config
from promote_tasks.config import load_settings
from promote_tasks.config import settings_from
from promote_tasks.errors import ConfigError
from promote_tasks.plugins import collect
from promote_tasks.plugins import make_plugin_manager
from tests import console
from tests.e2e.conftest import Api


def test_defaults_are_dev_test_main_with_manual_testing_in_test(tmp_path):
    settings = load_settings(tmp_path)
    assert settings.source == "defaults"
    assert [(e.name, e.branch, e.production) for e in settings.environments] == [
        ("dev", "dev", False),
        ("test", "test", False),
        ("main", "main", True),
    ]
    assert "manual" in settings.environments[1].validators
    assert settings.validators["manual"].use == "manual-approval"


def test_pyproject_tool_promote(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.promote]\nreviewers = ["rita"]\nplugins_dir = "plugins"\n'
        '[[tool.promote.environments]]\nname = "staging"\nvalidators = ["health"]\n'
        '[[tool.promote.environments]]\nname = "prod"\nbranch = "main"\nrollback = "reset"\n'
    )
    settings = load_settings(tmp_path)
    assert settings.reviewers == ("rita",)
    assert [(e.name, e.branch, e.production, e.rollback) for e in settings.environments] == [
        ("staging", "staging", False, "redeploy"),
        ("prod", "main", True, "reset"),
    ]
    assert settings.plugins_path() == tmp_path / "plugins"


def test_the_nearest_configuration_is_found_from_a_subdirectory(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.promote]\nreviewers = ["bob"]\n')
    (tmp_path / "docs").mkdir()
    (tmp_path / "app" / "src").mkdir(parents=True)
    (tmp_path / "app" / "promote.toml").write_text('reviewers = ["rita"]\n')
    assert find_config(tmp_path / "docs") == tmp_path / "pyproject.toml"
    assert find_config(tmp_path / "app" / "src") == tmp_path / "app" / "promote.toml"
    assert load_settings(tmp_path / "app" / "src").reviewers == ("rita",)


def test_validator_options_merge_with_the_builtin_defaults():
    settings = settings_from(
        {
            "validators": {
                "monitor": {"soak_seconds": 60},
                "lint": {"use": "workflow", "checks": ["lint"]},
            }
        }
    )
    assert settings.validators["monitor"].options == {"checks": ["monitor"], "soak_seconds": 60}
    assert settings.validators["lint"].options == {"checks": ["lint"]}


BAD = {
    "unknown top-level key": ({"reviewer": ["rita"]}, "tool.promote.reviewer: unknown key"),
    "bad type": (
        {"deploy_grace_seconds": "soon"},
        "tool.promote.deploy_grace_seconds: expected a number of seconds",
    ),
    "bool is not a number": ({"deploy_grace_seconds": True}, "tool.promote.deploy_grace_seconds"),
    "unknown environment key": (
        {"environments": [{"name": "dev", "brnach": "x"}]},
        "tool.promote.environments[0].brnach: unknown key",
    ),
    "environment without name": (
        {"environments": [{"branch": "dev"}]},
        "tool.promote.environments[0].name: is required",
    ),
    "bad environment name": (
        {"environments": [{"name": "a b"}]},
        "tool.promote.environments[0].name: 'a b' is not a valid name",
    ),
    "unknown validator": (
        {"environments": [{"name": "dev", "validators": ["helth"]}]},
        "unknown validator 'helth'",
    ),
    "production not last": (
        {"environments": [{"name": "a", "production": True}, {"name": "b"}]},
        "only the last environment can be production",
    ),
    "same branch twice": (
        {"environments": [{"name": "a", "branch": "x"}, {"name": "b", "branch": "x"}]},
        "branch 'x' appears twice",
    ),
    "no environments": ({"environments": []}, "needs at least one environment"),
    "bad repository": ({"repository": "just-a-name"}, "expected owner/name"),
    "validator not a table": (
        {"validators": {"x": 3}},
        "tool.promote.validators.x: expected a table",
    ),
}


@pytest.mark.parametrize(("data", "message"), BAD.values(), ids=BAD.keys())
def test_bad_values_name_the_file_and_key(tmp_path, data, message):
    with pytest.raises(ConfigError) as caught:
        settings_from(data, source=str(tmp_path / "pyproject.toml"), prefix="tool.promote.")
    text = str(caught.value)
    assert text.startswith(str(tmp_path / "pyproject.toml") + ": ")
    assert message in text
    assert "\n" not in text


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "promote.toml").write_text("reviewers = [\n")
    with pytest.raises(ConfigError, match=r"promote\.toml: not valid TOML"):
        load_settings(tmp_path)


def test_a_config_file_that_is_not_utf8_names_the_file(tmp_path):
    (tmp_path / "promote.toml").write_bytes(b'reviewers = ["ren\xe9"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'promote.toml'}: not UTF-8 text (byte 0xe9 at offset 17); TOML files are UTF-8"
    )


def test_promote_toml_and_tool_promote_in_one_directory_is_an_error_naming_both(tmp_path):
    (tmp_path / "promote.toml").write_text('reviewers = ["rita"]\n')
    (tmp_path / "pyproject.toml").write_text('[tool.promote]\nreviewers = ["bob"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'promote.toml'}: {tmp_path / 'pyproject.toml'} configures promote too "
        "([tool.promote]): keep the settings in one of the two files"
    )


def test_a_pyproject_without_tool_promote_beside_promote_toml_is_fine(tmp_path):
    (tmp_path / "promote.toml").write_text('reviewers = ["rita"]\n')
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.ruff]\nline-length = 99\n'
    )
    assert load_settings(tmp_path).source == str(tmp_path / "promote.toml")


@pytest.mark.parametrize("name", ["promot", "promote-tasks", "promote_tasks", "Promote", "promte", "PROMOTE-TASK"])  # fmt: skip
def test_a_tool_table_named_nearly_promote_is_an_error(tmp_path, name):
    (tmp_path / "pyproject.toml").write_text(f'[tool.{name}]\nreviewers = ["rita"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'pyproject.toml'}: [tool.{name}] is not read by promote: "
        "did you mean [tool.promote]?"
    )


def test_a_near_miss_beside_tool_promote_is_an_error_too(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.promote]\nreviewers = ["rita"]\n[tool.promote-tasks]\nplans_dir = "work"\n'
    )
    with pytest.raises(ConfigError, match=r"\[tool\.promote-tasks\] is not read by promote"):
        load_settings(tmp_path)


@pytest.mark.parametrize("name", ["prompt", "poetry", "pytest", "promotion", "pyright", "ruff"])
def test_other_tools_tables_are_not_mistaken_for_promote(tmp_path, name):
    (tmp_path / "pyproject.toml").write_text(f"[tool.{name}]\nx = 1\n")
    assert load_settings(tmp_path).source == "defaults"


# -- the environment list is the whole pipeline ------------------------------------------------

PARTIAL = {
    "one entry to change test": (
        [{"name": "test", "validators": ["health"]}],
        "lists only test, but a [[tool.promote.environments]] list is the whole pipeline and "
        "replaces dev → test → main, not one environment of it: list every environment in order "
        '(name = "dev", then "test", then "main", each with its validators), or set production '
        "= true in the entry of test if test is the whole pipeline",
    ),
    "main alone, to change its rollback": (
        [{"name": "main", "rollback": "revert"}],
        "lists only main, but a [[tool.promote.environments]] list",
    ),
    "two of the three": (
        [{"name": "dev"}, {"name": "main", "validators": ["monitor"]}],
        "lists only dev → main, but a [[tool.promote.environments]] list is the whole pipeline "
        "and replaces dev → test → main, not one environment of it: list every environment in "
        'order (name = "dev", then "test", then "main", each with its validators), or set '
        "production = true in the entry of main if dev → main is the whole pipeline",
    ),
    "production = false is no answer": (
        [{"name": "dev"}, {"name": "test", "production": False}],
        "lists only dev → test",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("envs", "message"), PARTIAL.values(), ids=PARTIAL.keys())
def test_a_list_of_only_some_default_environments_is_refused(tmp_path, envs, message):
    source = str(tmp_path / "pyproject.toml")
    with pytest.raises(ConfigError) as caught:
        settings_from({"environments": envs}, source=source, prefix="tool.promote.")
    assert str(caught.value).startswith(f"{source}: tool.promote.environments: {message}")


def test_in_promote_toml_the_message_names_its_own_tables(tmp_path):
    (tmp_path / "promote.toml").write_text(
        'reviewers = ["rita"]\n[[environments]]\nname = "test"\n'
    )
    with pytest.raises(ConfigError, match=r": environments: lists only test, but a \[\[environments\]\] list"):  # fmt: skip
        load_settings(tmp_path)


DELIBERATE = {
    "every default, in order": ([{"name": "dev"}, {"name": "test"}, {"name": "main"}], ["dev", "test", "main"]),
    "a pipeline of its own": ([{"name": "staging"}, {"name": "prod", "branch": "main"}], ["staging", "prod"]),
    "a new stage among the defaults": ([{"name": "dev"}, {"name": "qa"}, {"name": "main"}], ["dev", "qa", "main"]),
    "test alone, saying so": ([{"name": "test", "production": True}], ["test"]),
    "dev → main, saying so": ([{"name": "dev"}, {"name": "main", "production": True}], ["dev", "main"]),
}  # fmt: skip


@pytest.mark.parametrize(("envs", "names"), DELIBERATE.values(), ids=DELIBERATE.keys())
def test_a_deliberate_pipeline_is_taken_as_written(envs, names):
    settings = settings_from({"environments": envs})
    assert [e.name for e in settings.environments] == names
    assert [e.production for e in settings.environments] == [False] * (len(names) - 1) + [True]


# -- names the plugins must offer, and reviewers for every manual test in use --------------------


def checked(tmp_path, text, name="promote.toml"):
    """Load ``text`` as ``name`` in tmp_path, and check it against the built-in plugins."""
    (tmp_path / name).write_text(text)
    settings = load_settings(tmp_path)
    return collect(make_plugin_manager(entry_points=False), settings)


KNOWN_VALIDATORS = "known: health, manual, monitor, smoke"
KNOWN_STRATEGIES = "known: redeploy, reset, revert"
ENVS = '[[environments]]\nname = "dev"\n[[environments]]\nname = "test"\n[[environments]]\nname = "main"\n'  # fmt: skip

NAMES = {
    "an environment's unknown validator": (
        'reviewers = ["rita"]\n[[environments]]\nname = "qa"\nvalidators = ["helth"]\n',
        f"environments[0].validators: unknown validator 'helth' ({KNOWN_VALIDATORS}; a new one "
        "is configured under [validators.helth])",
    ),
    "a validator's unknown plugin": (
        'reviewers = ["rita"]\n[validators.smoke]\nuse = "workflows"\n',
        "validators.smoke.use: no validator plugin 'workflows' (known: http-health, "
        "manual-approval, monitor, workflow)",
    ),
    "an unknown default rollback": (
        'reviewers = ["rita"]\nrollback = "redploy"\n',
        f"rollback: no rollback strategy 'redploy' ({KNOWN_STRATEGIES})",
    ),
    "an environment's unknown rollback": (
        'reviewers = ["rita"]\n' + ENVS.replace('"test"\n', '"test"\nrollback = "undo"\n'),
        f"environments[1].rollback: no rollback strategy 'undo' ({KNOWN_STRATEGIES})",
    ),
    "an unknown plan store": (
        'reviewers = ["rita"]\nplan_store = "jira"\n',
        "plan_store: no plan store 'jira' (known: files, issues)",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("text", "message"), NAMES.values(), ids=NAMES.keys())
def test_every_name_is_one_a_plugin_offers_and_the_error_lists_them(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        checked(tmp_path, text)
    assert str(caught.value) == f"{tmp_path / 'promote.toml'}: {message}"


MANUAL = "the manual test in test (validator manual, manual-approval) has no designated reviewers"
REVIEWERS = {
    "promote.toml without reviewers": (
        "promote.toml", "",
        f'reviewers: {MANUAL}: set reviewers = ["login"] at the top of promote.toml or under '
        "[validators.manual]",
    ),
    "[tool.promote] with an empty list": (
        "pyproject.toml", "[tool.promote]\nreviewers = []\n",
        f'tool.promote.reviewers: {MANUAL}: set reviewers = ["login"] under [tool.promote] or '
        "[tool.promote.validators.manual]",
    ),
    "the validator's own list empty": (
        "pyproject.toml", '[tool.promote]\nreviewers = ["rita"]\n[tool.promote.validators.manual]\nreviewers = []\n',
        "tool.promote.validators.manual.reviewers: is empty, so the manual test in test "
        '(validator manual, manual-approval) has no designated reviewers: list them, reviewers = ["login"]',
    ),
    "a manual test of its own": (
        "promote.toml",
        'reviewers = []\n[validators.signoff]\nuse = "manual-approval"\n' + ENVS.replace('"main"\n', '"main"\nvalidators = ["signoff"]\n'),
        "reviewers: the manual test in main (validator signoff, manual-approval) has no designated "
        'reviewers: set reviewers = ["login"] at the top of promote.toml or under [validators.signoff]',
    ),
}  # fmt: skip


@pytest.mark.parametrize(("name", "text", "message"), REVIEWERS.values(), ids=REVIEWERS.keys())
def test_a_manual_test_in_use_needs_designated_reviewers(tmp_path, name, text, message):
    with pytest.raises(ConfigError) as caught:
        checked(tmp_path, text, name)
    assert str(caught.value) == f"{tmp_path / name}: {message}"


def test_without_any_configuration_the_default_manual_test_needs_reviewers(tmp_path):
    (tmp_path / ".git").mkdir()
    with pytest.raises(ConfigError) as caught:
        collect(make_plugin_manager(entry_points=False), load_settings(tmp_path))
    assert str(caught.value) == (
        f"no promote.toml or [tool.promote] in pyproject.toml: reviewers: {MANUAL}: add "
        'reviewers = ["login"] to [tool.promote] in pyproject.toml, or to a promote.toml'
    )


@pytest.mark.parametrize(
    "text",
    [
        'reviewers = ["rita"]\n',
        '[validators.manual]\nreviewers = ["rita"]\n',
        'reviewers = []\n[validators.manual]\nreviewers = ["rita"]\n',
        # No environment uses the manual test: no one needs to be named for it.
        ENVS,
        'reviewers = []\n[validators.signoff]\nuse = "manual-approval"\n'
        '[[environments]]\nname = "staging"\n[[environments]]\nname = "prod"\n',
    ],
    ids=["top-level", "its own", "its own over an empty top-level", "unused", "unused, own name"],
)
def test_reviewers_where_a_manual_test_is_used_and_nowhere_else(tmp_path, text):
    assert checked(tmp_path, text).validators["manual-approval"]


# -- through the console script, against a sandbox: one line, exit 1, nothing asked or written --


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One sandbox for the module: a refused configuration never reaches it."""
    sandbox = start(tmp_path_factory.mktemp("sandbox"), step_ms=0)
    yield sandbox
    sandbox.stop()


def _requests(sandbox: Sandbox) -> dict[str, int]:
    return dict(Api(sandbox, sandbox.author_token).control("stats")["requests"])


REFUSED = {
    "no reviewers for the manual test": (
        {"promote.toml": "# reviewers forgotten\n"},
        "{clone}/promote.toml: reviewers: " + MANUAL + ': set reviewers = ["login"] at the '
        "top of promote.toml or under [validators.manual]",
    ),
    "no configuration at all": (
        {"promote.toml": None},
        "no promote.toml or [tool.promote] in pyproject.toml: reviewers: " + MANUAL,
    ),
    "only test listed": (
        {"promote.toml": 'reviewers = ["rita"]\n[[environments]]\nname = "test"\n'},
        "{clone}/promote.toml: environments: lists only test, but a [[environments]] list",
    ),
    "an unknown validator": (
        {"promote.toml": 'reviewers = ["rita"]\n' + ENVS.replace('"dev"\n', '"dev"\nvalidators = ["helth"]\n')},
        "{clone}/promote.toml: environments[0].validators: unknown validator 'helth' (known: ",
    ),
    "an unknown rollback": (
        {"promote.toml": 'reviewers = ["rita"]\nrollback = "redploy"\n'},
        "{clone}/promote.toml: rollback: no rollback strategy 'redploy' (known: ",
    ),
    "an environment's unknown rollback": (
        {"promote.toml": 'reviewers = ["rita"]\n' + ENVS.replace('"main"\n', '"main"\nrollback = "undo"\n')},
        "{clone}/promote.toml: environments[2].rollback: no rollback strategy 'undo' (known: ",
    ),
    "the manual test's own reviewers empty": (
        {"promote.toml": 'reviewers = ["rita"]\n[validators.manual]\nreviewers = []\n'},
        "{clone}/promote.toml: validators.manual.reviewers: is empty, so the manual test in test",
    ),
    "a misspelt tool table": (
        {"promote.toml": None, "pyproject.toml": '[tool.promote-tasks]\nreviewers = ["rita"]\n'},
        "{clone}/pyproject.toml: [tool.promote-tasks] is not read by promote: did you mean [tool.promote]?",
    ),
    "two configurations": (
        {"pyproject.toml": '[tool.promote]\nreviewers = ["rita"]\n'},
        "{clone}/promote.toml: {clone}/pyproject.toml configures promote too ([tool.promote])",
    ),
    "not UTF-8": (
        {"promote.toml": b'reviewers = ["ren\xe9"]\n'},
        "{clone}/promote.toml: not UTF-8 text (byte 0xe9 at offset 17)",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("files", "message"), REFUSED.values(), ids=REFUSED.keys())
@pytest.mark.parametrize("command", ["next", "status", "config"])
def test_a_refused_configuration_is_one_line_exit_1_and_nothing_is_written(
    shop: Sandbox, files: dict[str, str | bytes | None], message: str, command: str
) -> None:
    clone = shop.clone_path
    seeded = (clone / "promote.toml").read_bytes()
    before = _requests(shop)
    try:
        for name, content in files.items():
            if content is None:
                (clone / name).unlink()
            else:
                (clone / name).write_bytes(
                    content if isinstance(content, bytes) else content.encode()
                )
        tree = sorted(p.name for p in clone.iterdir())
        done = console.promote(command, cwd=clone, env=shop.env())
        assert sorted(p.name for p in clone.iterdir()) == tree, "no file written"
    finally:
        (clone / "pyproject.toml").unlink(missing_ok=True)
        (clone / "promote.toml").write_bytes(seeded)
    assert (done.returncode, done.stdout) == (1, "")
    (line,) = done.stderr.splitlines()
    assert line.startswith("promote: error: " + message.replace("{clone}", str(clone)))
    assert "Traceback" not in done.stderr
    assert _requests(shop) == before, "GitHub was not asked, so nothing was written there"
