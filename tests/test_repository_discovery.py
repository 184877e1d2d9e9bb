"""The repository comes from GITHUB_REPOSITORY, the configuration, or the origin remote."""

from __future__ import annotations

import subprocess

import pytest

from promote_tasks.errors import PromoteError
from promote_tasks.git import remote_repository
from promote_tasks.github import Connection


def repo_with_origin(tmp_path, url):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    if url:
        subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", url], check=True)
    return tmp_path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/shop.git", "acme/shop"),
        ("https://github.com/acme/shop", "acme/shop"),
        ("git@github.com:acme/shop.git", "acme/shop"),
        ("ssh://git@github.example.com:2222/acme/shop.git", "acme/shop"),
        ("https://token@ghe.example.com/acme/my.repo.git", "acme/my.repo"),
        ("/srv/git/acme/shop.git", None),  # a local path names no GitHub repository
        ("https://github.com/acme/shop/extra", None),
        (None, None),
    ],
)
def test_remote_repository(tmp_path, url, expected):
    assert remote_repository(repo_with_origin(tmp_path, url)) == expected


def test_not_a_repository_has_no_remote(tmp_path):
    assert remote_repository(tmp_path) is None


def test_origin_is_asked_only_when_nothing_else_names_the_repository(tmp_path):
    asked = []

    def origin():
        asked.append(True)
        return "acme/shop"

    env = {"GITHUB_TOKEN": "t0ken"}
    assert Connection.from_environment(None, env, origin=origin).repository == "acme/shop"
    assert Connection.from_environment("acme/other", env, origin=origin).repository == "acme/other"
    assert (
        Connection.from_environment(
            None, {**env, "GITHUB_REPOSITORY": "o/r"}, origin=origin
        ).repository
        == "o/r"
    )
    assert len(asked) == 1
    with pytest.raises(PromoteError, match="no repository: set GITHUB_REPOSITORY"):
        Connection.from_environment(None, env, origin=lambda: None)


def test_the_token_source_is_named():
    assert Connection.from_environment("o/r", {"GH_TOKEN": "x"}).token_name == "GH_TOKEN"
    assert (
        Connection.from_environment("o/r", {"GITHUB_TOKEN": "x", "GH_TOKEN": "y"}).token_name
        == "GITHUB_TOKEN"
    )
