from __future__ import annotations

import pytest

from promote_tasks.config import find_config
from promote_tasks.config import load_settings
from promote_tasks.config import settings_from
from promote_tasks.errors import ConfigError


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
