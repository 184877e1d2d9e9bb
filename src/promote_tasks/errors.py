"""Errors. Every message names what went wrong and where, in one line."""

from __future__ import annotations


class PromoteError(Exception):
    """Base for every error the tool reports to a person (one line, exit status 1)."""


class ConfigError(PromoteError):
    """The configuration file or an option is wrong."""


class PluginError(PromoteError):
    """A plugin is missing, misspelt, or registers a name twice."""


class SnapshotError(PromoteError):
    """The facts read from GitHub or from a snapshot file are unusable."""


class GitHubError(PromoteError):
    """GitHub answered with an error (``status``: its HTTP status), or could not be reached
    (``status`` None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitError(PromoteError):
    """The local git repository cannot answer the question asked of it."""
