"""The README's first command: `promote demo` runs the whole journey from any directory."""

from __future__ import annotations

import re

from tests.console import promote


def test_promote_demo_runs_the_journey_with_a_failure_and_rollback_from_any_directory(tmp_path):
    result = promote("demo", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    journey = (
        "R4 dev:", "R5 dev:", "R7 dev:",  # the plan reaches test ...
        "R3 test: deploying → failed",  # ... whose first deploy fails
        "R9 test:", "rolled back test from", "R9 test:", "filed fix plan fix-test-",  # halt, rollback, fix plan
        "code machine: a fix on feature/fix-test-",
        "reviewer rita: approved test", "R5 test:", "R7 test:", "R5 main:", "R8 main:",
        "completed plan fix-test-", "the halt is lifted",
    )  # fmt: skip
    at = 0
    for line in journey:
        found = out.find(line, at)
        assert found >= at, f"{line!r} missing after position {at}:\n{out}"
        at = found + len(line)
    assert "sbx_" not in out + result.stderr, "tokens never reach the output"
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"


def test_promote_demo_actions_reaches_complete_with_nobody_running_next(tmp_path):
    """The hands-free rehearsal: `promote init`'s workflows run in the sandbox's Actions
    emulator; people only merge their own PRs and approve the manual test."""
    result = promote("demo", "--actions", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    people = (
        "promote init wrote", ".github/workflows/promote.yml",
        "developer alice: merges PR #1",
        "developer alice: a fix on feature/fix-test-",  # after the fix plan was filed
        "developer alice: the gate is green; merges PR #",
        "reviewer rita: approved test",
        "the halt is lifted", "nobody ran promote next",
    )  # fmt: skip
    at = 0
    for line in people:
        found = out.find(line, at)
        assert found >= at, f"{line!r} missing after position {at}:\n{out}"
        at = found + len(line)
    # What the workflow runs did (their lines interleave with people's as runs finish).
    runs = "\n".join(line for line in out.splitlines() if line.startswith("  actions: "))
    journey = (
        "R7 dev:", "R3 test: deploying → failed",
        "rolled back test from", "filed fix plan fix-test-",  # the halt's rollback and fix plan
        "R5 test:", "R7 test:", "R8 main:", "completed plan fix-test-",
    )  # fmt: skip
    at = 0
    for line in journey:
        found = runs.find(line, at)
        assert found >= at, f"{line!r} missing after position {at}:\n{out}"
        at = found + len(line)
    # alice's PR starts the gate workflow (pull_request_target); the bot's PRs start none. A
    # newer run of its group (cancel-in-progress) may take its place, depending on timing; a
    # merge before the job runs leaves it nothing to gate (success).
    gate_runs = re.findall(
        r"actions: promote-gate\.yml on pull_request_target \(by (\S+)\) (\w+)", out
    )
    assert {who for who, _ in gate_runs} == {"alice"}, gate_runs
    assert {state for _, state in gate_runs} <= {"success", "cancelled"}, gate_runs
    # Rita's approval comment starts a run; the bot's own writes never start one.
    assert out.index("on issue_comment (by rita)") > out.index("reviewer rita: approved")
    assert "on issue_comment (by github-actions[bot])" not in out
    assert "on pull_request (by github-actions[bot])" not in out
    assert "sbx_" not in out + result.stderr, "tokens never reach the output"
    assert list(tmp_path.iterdir()) == [], "the demo leaves nothing behind"
