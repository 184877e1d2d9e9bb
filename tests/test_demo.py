"""The README's first command: `promote demo` runs the whole journey from any directory."""

from __future__ import annotations

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
