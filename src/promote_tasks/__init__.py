"""promote-tasks: carry merged pull requests safely through environment branches."""

from __future__ import annotations
