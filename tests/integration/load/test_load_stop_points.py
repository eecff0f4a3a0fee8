"""A load user stopped at every point of its flows gives back everything it holds.

The users run in a child process (``stop_points.py``: gevent stays out of pytest) against one
virtual sandbox in a thread. The stop is planted at an exact request by a scripted client, so
every case is reached on every run, without timing luck: a cooperative stop arriving while each
request is on the wire, a kill after each request landed, a kill before each was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .child_cases import run_cases

pytestmark = pytest.mark.load

CHILD = Path(__file__).with_name("stop_points.py")
#: Requests of each flow from a fresh process: the token, then the flow's own steps.
FLOW_STEPS = {
    "delivery": [
        "authenticate", "list_lockers", "reserve", "dropoff_token", "open_for_dropoff",
        "close_after_dropoff", "pickup_token", "open_for_pickup", "close_after_pickup",
    ],
    "delivery-no-doors": ["authenticate", "list_lockers", "reserve", "dropoff_token", "release", "release_declined"],
    "contention": ["authenticate", "contend_list", "contend_reserve", "contend_release"],
}  # fmt: skip
MODES = ("stop", "kill", "kill-unsent")


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """Every case's outcome, from one child process against one sandbox."""
    yield run_cases(CHILD, tmp_path_factory.mktemp("stop-points"))


def test_each_flow_runs_whole_when_nobody_stops_it(cases: list[dict[str, Any]]) -> None:
    """Without a stop, each flow sends its steps in order and ends with nothing held."""
    whole = {case["flow"]: case for case in cases if case["mode"] is None}
    assert {flow: case["steps"] for flow, case in whole.items()} == FLOW_STEPS
    assert whole["delivery"]["flows"]["completed"] == 1
    assert whole["delivery-no-doors"]["flows"]["completed"] == 1
    assert all(case["held"] == [] and case["open_rows"] == [] for case in whole.values())


def test_every_stop_point_was_reached(cases: list[dict[str, Any]]) -> None:
    """One case per flow, request and kind of stop: no point of any flow is left untried."""
    tried = {(case["flow"], case["mode"], case["at"]) for case in cases if case["mode"] is not None}
    wanted = {
        (flow, mode, at) for flow, steps in FLOW_STEPS.items() for mode in MODES for at in range(1, len(steps) + 1)
    }
    assert tried == wanted


def test_a_user_stopped_anywhere_leaves_nothing_held(cases: list[dict[str, Any]]) -> None:
    """Wherever the stop meets a flow, the sandbox shows no locker held by the identity and no door
    open, the ledger keeps no open row, no oracle fires and no cleanup fails."""
    failed = [
        f"{case['flow']} {case['mode']} at request {case['at']} ({FLOW_STEPS[case['flow']][case['at'] - 1]}): "
        f"held {case['held']}, open rows {case['open_rows']}, violations {case['violations']}, "
        f"cleanup failures {case['cleanup_failures']}"
        for case in cases
        if case["mode"] is not None
        and (case["held"] or case["open_rows"] or case["violations"] or case["cleanup_failures"])
    ]
    assert failed == []


def test_a_stopped_flow_sends_nothing_more_of_its_own(cases: list[dict[str, Any]]) -> None:
    """A stop that arrives while a request is on the wire ends the flow at its next step: after the
    answer only the cleanup's own requests follow, so no request of the flow can land unread."""
    late = [
        f"{case['flow']} at request {case['at']}: {case['flow_requests_after_stop']}"
        for case in cases
        if case["mode"] == "stop" and case["flow_requests_after_stop"]
    ]
    assert late == []
