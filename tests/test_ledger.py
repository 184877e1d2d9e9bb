"""Every word the tool writes on GitHub is read back by its own parser (ledger.py)."""

from __future__ import annotations

import pytest

from promote_tasks import ledger
from promote_tasks.model import Commit

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def test_the_instance_key_round_trips():
    assert ledger.parse_key(ledger.key("test", SHA)) == ("test", SHA)
    for bad in ("test", f"test@{SHA[:7]}", f"@{SHA}", None, f"a b@{SHA}"):
        assert ledger.parse_key(bad) is None


def test_contexts_and_the_reset_marker():
    assert ledger.verdict_context("dev") == "promote/dev"
    assert ledger.verdict_context("dev", "smoke") == "promote/dev/smoke"
    assert ledger.rollback_marker_context("dev") == "promote/dev/rollback"
    failure = ledger.key("dev", SHA)
    assert ledger.reset_of(ledger.reset_marker(failure)) == failure
    assert ledger.reset_of("rolled back nothing") is None


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (ledger.plan_lines(("x", "y", "x")), lambda body: ledger.plans_listed(body) == ("x", "y")),
        (
            ledger.trailer(ledger.ROLLBACK_OF, f"dev@{SHA}"),
            lambda b: ledger.rollback_of(b) == f"dev@{SHA}",
        ),
        (ledger.undo_line(f"dev@{SHA}"), lambda b: ledger.undone(b) == f"dev@{SHA}"),
        (ledger.culprit_line(12), lambda b: ledger.culprit(b) == 12),
        (ledger.trailer(ledger.AUTHOR, "alice"), lambda b: ledger.authors(b) == ("alice",)),
        (
            ledger.trailer(ledger.KEY, f"test@{SHA}"),
            lambda b: ledger.checklist_key(b) == f"test@{SHA}",
        ),
        (ledger.decision_line(True, SHA), lambda b: ledger.decisions(b) == ((True, SHA, ""),)),
        (
            ledger.decision_line(False, SHA, "checkout broke"),
            lambda b: ledger.decisions(b) == ((False, SHA, "checkout broke"),),
        ),
    ],
    ids=["plan", "rollback-of", "undo-of", "culprit", "author", "key", "approve", "reject"],
)
def test_every_promote_trailer_round_trips(written, read):
    assert written.startswith("Promote-")
    assert written.endswith("\n")
    # Surrounded by the prose of a body, as GitHub keeps it.
    assert read(f"Some words.\n\n{written}More words.\n")


def test_a_trailer_is_a_whole_line_not_a_substring():
    assert ledger.plans_listed("say Promote-Plan: x in a sentence") == ()
    assert ledger.rollback_of("Promote-Rollback-Of: dev@short") is None


def test_the_bookkeeping_trailer_names_the_commits_own_parent():
    message = f"plans: complete x\n\n{ledger.bookkeeping_trailer(SHA)}\n"
    assert ledger.claims_bookkeeping(message, (SHA,))
    assert not ledger.claims_bookkeeping(message, (OTHER,)), "copied by a squash elsewhere"
    plans_only = Commit(OTHER, (SHA,), message, files=("plans/done/x.md",))
    assert ledger.is_bookkeeping(plans_only, "plans")
    assert not ledger.is_bookkeeping(Commit(OTHER, (SHA,), message, files=("app.txt",)), "plans")
    assert not ledger.is_bookkeeping(plans_only, None), "a store that writes no commits"


def test_the_checklist_issue_says_how_to_decide_and_carries_its_key():
    body = ledger.checklist_body("- [ ] it works\n", "test", SHA)
    assert ledger.checklist_key(body) == f"test@{SHA}"
    assert "promote approve --env test" in body
    assert ledger.checklist_title("test", SHA) == f"Manual test: test at {SHA[:7]}"


def test_the_promotion_body_carries_every_plan_and_author():
    body = ledger.promotion_body(
        "dev", "test", SHA, "dev", ["smoke: passed"], ["deployment 4 succeeded"], ("x", "y"),
        ["alice", "bob"],
    )  # fmt: skip
    assert ledger.plans_listed(body) == ("x", "y")
    assert ledger.authors(body) == ("alice", "bob")
    assert ledger.promotion_title("dev", "test", ("x", "y"), SHA) == "Promote x, y: dev → test"


@pytest.mark.parametrize("undo", [False, True])
def test_the_revert_names_what_it_takes_out(undo):
    body = ledger.revert_body("test", OTHER, SHA, "fix-test-0123456", undo, 7)
    message = ledger.revert_message("test", OTHER, SHA, undo)
    read = ledger.undone if undo else ledger.rollback_of
    assert read(body) == read(message) == f"test@{SHA}"
    assert ledger.culprit(body) == 7
    assert ("Fix plan:" in body) is not undo


def test_the_fix_plan_id_follows_from_its_failure():
    assert ledger.fix_plan_id(f"test@{SHA}") == "fix-test-0123456"
    assert ledger.fix_plan_title("test", SHA, ("x",)) == "Fix test: plan x failed at 0123456"


def test_the_lock_commit_names_its_holder():
    message = ledger.lock_message(
        "promote next on host:1", "2026-12-02T10:00:00Z", "2026-12-02T10:05:00Z"
    )
    assert ledger.lock_holder(message) == (
        "promote next on host:1",
        "2026-12-02T10:00:00Z",
        "2026-12-02T10:05:00Z",
    )
    assert ledger.lock_holder("a commit that says nothing") == ("", "", "")
