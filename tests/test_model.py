"""model.py: the snapshot's JSON round trip (what `--save-snapshot` writes, `--snapshot` reads)
and the one-line errors that name the exact field when a file is off."""

from __future__ import annotations

import json

import pytest

from promote_tasks.errors import SnapshotError
from promote_tasks.machine import derive
from promote_tasks.model import Did
from promote_tasks.model import dump_snapshot
from promote_tasks.model import load_snapshot
from tests.builders import PIPELINE
from tests.builders import dep
from tests.builders import facts
from tests.builders import pr
from tests.builders import sha
from tests.builders import snap


def a_busy_snapshot():
    head = sha("d1")
    return snap(
        facts(
            "dev",
            head,
            deployments=(dep(7, "dev", head, "queued", "in_progress"),),
            merged_pull=pr(3, "feature/a", sha("a1"), "dev"),
        ),
        open_pulls=(pr(4, "feature/b", sha("b1"), "dev", merged=False),),
    )


def test_a_snapshot_survives_its_own_file_unchanged() -> None:
    snapshot = a_busy_snapshot()
    again = load_snapshot(dump_snapshot(snapshot))
    assert again == snapshot
    assert derive(again, PIPELINE) == derive(snapshot, PIPELINE)


def test_the_file_is_plain_json_with_tuples_as_lists_and_enums_as_values() -> None:
    data = json.loads(dump_snapshot(a_busy_snapshot()))
    assert data["repository"] == "acme/shop"
    assert isinstance(data["environments"], list)
    assert data["environments"][0]["name"] == "dev"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("repository"), "snapshot: missing key 'repository'"),
        (lambda d: d.update(extra=1), "snapshot: unknown key 'extra'"),
        (
            lambda d: d["environments"][0].update(head=5),
            "snapshot.environments[0].head: expected str, got 5",
        ),
        (lambda d: d.update(environments={}), "snapshot.environments: expected a list, got dict"),
    ],
)
def test_a_wrong_field_is_named_exactly(change, message) -> None:
    data = json.loads(dump_snapshot(a_busy_snapshot()))
    change(data)
    with pytest.raises(SnapshotError) as caught:
        load_snapshot(json.dumps(data))
    assert str(caught.value) == message


def test_a_file_that_is_not_json_says_where() -> None:
    with pytest.raises(SnapshotError, match=r"^saved\.json: not JSON \(.* at line 1\)$"):
        load_snapshot("{nope", "saved.json")


def test_a_did_is_its_text_and_knows_its_link() -> None:
    did = Did("opened PR #7 (https://github.com/acme/shop/pull/7).", "open-pr", "dev→test")
    assert did == "opened PR #7 (https://github.com/acme/shop/pull/7)."
    assert (did.kind, did.target, did.url) == (
        "open-pr",
        "dev→test",
        "https://github.com/acme/shop/pull/7",
    )
    assert Did("nothing to link").url is None
