"""``promote_transition`` is really called: once per transition ``next`` takes and once per
rollback asked for by hand, after the writes, with what was done; a plugin that raises there
is named in one line and the transition stands."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from promote_sandbox import Scenario
from promote_tasks.act import perform_request
from promote_tasks.errors import PromoteError
from promote_tasks.targets import request_rollback
from tests.e2e.conftest import Driver
from tests.e2e.conftest import config

TOLD = """\
import json
from pathlib import Path
from promote_tasks import hookimpl

@hookimpl
def promote_transition(action, did, repository):
    with open(Path(__file__).parent / "told.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps([action.transition, action.environment, repository, list(did)]) + "\\n")
"""
RAISES = """\
from promote_tasks import hookimpl

@hookimpl
def promote_transition(action, did, repository):
    raise ConnectionError("chat is down")
"""


def with_plugin(make_driver: Callable[..., Driver], source: str) -> Driver:
    driver = make_driver(Scenario(merge_bot=True), config())
    (driver.clone / "plugins").mkdir()
    (driver.clone / "plugins" / "notify.py").write_text(source, encoding="utf-8")
    settings = config(extra='plugins_dir = "plugins"\n')
    (driver.clone / "promote.toml").write_text(settings, encoding="utf-8")
    driver.run = driver.as_user(driver.sandbox.scenario.author)  # load the plugin
    driver.sandbox.settle()
    return driver


def told(driver: Driver) -> list[list[object]]:
    path = driver.clone / "plugins" / "told.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.transition("R4")
def test_next_tells_plugins_each_transition_it_took(make_driver: Callable[..., Driver]) -> None:
    driver = with_plugin(make_driver, TOLD)
    step = driver.next()
    assert step.action.transition == "R4"
    ((transition, env, repository, did),) = told(driver)
    assert (transition, env, repository) == ("R4", "dev", "acme/shop")
    assert did == list(step.did)
    again = driver.next()
    assert [t[0] for t in told(driver)] == ["R4", again.action.transition]


def test_a_dry_run_tells_no_plugin(make_driver: Callable[..., Driver]) -> None:
    driver = with_plugin(make_driver, TOLD)
    assert driver.run.step(dry_run=True).action.transition == "R4"
    assert told(driver) == []


def test_a_rollback_by_hand_tells_plugins_it_as_r9(make_driver: Callable[..., Driver]) -> None:
    driver = with_plugin(make_driver, TOLD)
    request, snapshot = request_rollback(driver.run, "dev", None, None)
    did = perform_request(driver.run, request, snapshot)
    ((transition, env, _, lines),) = told(driver)
    assert (transition, env) == ("R9", "dev")
    assert lines == list(did)


def test_a_plugin_raising_on_a_transition_is_named_and_the_transition_stands(
    make_driver: Callable[..., Driver],
) -> None:
    driver = with_plugin(make_driver, RAISES)
    dev = driver.api.head("dev")
    with pytest.raises(PromoteError) as caught:
        driver.next()
    assert str(caught.value) == (
        "plugin plugins/notify.py failed in promote_transition: ConnectionError: chat is down"
        " (R4 dev was taken all the same)"
    )
    assert "\n" not in str(caught.value)
    assert driver.api.latest(dev, "promote/dev")["state"] == "pending"
