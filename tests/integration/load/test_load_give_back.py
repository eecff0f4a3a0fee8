"""A load user gives back what it holds when a token refresh fails, never cleans up a locker it
did not reserve when the stop meets a pacer wait, and keeps its cleanup within the pacer's budget.

The users run in a child process (``give_back_points.py``: gevent stays out of pytest) against one
virtual sandbox in a thread. Faults and stops are planted at exact requests by a scripted client
and pacer, for every request of every flow.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .child_cases import run_cases

pytestmark = pytest.mark.load

CHILD = Path(__file__).with_name("give_back_points.py")
#: Each flow's requests after the token (as the child reports them when nothing gets in the way).
FLOW_STEPS = {
    "delivery": [
        "list_lockers", "reserve", "dropoff_token", "open_for_dropoff", "close_after_dropoff",
        "pickup_token", "open_for_pickup", "close_after_pickup",
    ],
    "delivery-no-doors": ["list_lockers", "reserve", "dropoff_token", "release", "release_declined"],
    "contention": ["contend_list", "contend_reserve", "contend_release"],
}  # fmt: skip
RESERVES = {"reserve", "contend_reserve"}
#: The child's pacing cases (seconds): a pacer of 0.2 s with a long grace, one of 5 s with a 0.3 s grace.
PACED_INTERVAL_S = 0.2
DEADLINE_INTERVAL_S = 5.0
DEADLINE_GRACE_S = 0.3


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """Every case's outcome, from one child process against one sandbox."""
    yield run_cases(CHILD, tmp_path_factory.mktemp("give-back"))


def _of(cases: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [case for case in cases if case["case"] == kind]


def _name(case: dict[str, Any]) -> str:
    step = FLOW_STEPS[case["flow"]][case["at"] - 1]
    return f"{case['flow']} {case['case']} {case.get('status', '')} before request {case['at']} ({step})"


def _leftovers(case: dict[str, Any]) -> bool:
    """Anything the user left behind: a locker held, a ledger row open, a hold, a finding."""
    return bool(
        case["held"] or case["open_rows"] or case["hold_left"] or case["violations"] or case["cleanup_failures"]
    )


def test_every_request_of_every_flow_was_tried(cases: list[dict[str, Any]]) -> None:
    """The flows ran whole as expected, and each request met a 503 and a 401 refresh and a stop in its slot."""
    assert {case["flow"]: case["steps"] for case in _of(cases, "whole")} == FLOW_STEPS
    tried = {(case["flow"], case["at"], case["status"]) for case in _of(cases, "token")}
    tried |= {(case["flow"], case["at"], None) for case in _of(cases, "slot")}
    wanted = {
        (flow, at, status)
        for flow, steps in FLOW_STEPS.items()
        for at in range(1, len(steps) + 1)
        for status in (503, 401, None)
    }
    assert tried == wanted


def test_a_token_endpoint_without_a_token_fails_the_step_and_gives_back(cases: list[dict[str, Any]]) -> None:
    """A 503 on a token refresh fails the step waiting for it (nothing escapes the flow; the error
    is counted once, the token request's), the flow is aborted and the locker it held is given back."""
    failed = [
        f"{_name(case)}: raised {case['raised']}, held {case['held']}, open rows {case['open_rows']}, "
        f"hold left {case['hold_left']}, cleanup failures {case['cleanup_failures']}, flows {case['flows']}"
        for case in _of(cases, "token")
        if case["status"] == 503
        and (
            case["raised"] is not None
            or _leftovers(case)
            or (case["flow"] != "contention" and not case["flows"]["aborted"])
        )
    ]
    assert failed == []
    miscounted = [
        f"{_name(case)}: {case['errors']}"
        for case in _of(cases, "token")
        if case["status"] == 503 and case["errors"] != {"authenticate: 503": 1}
    ]
    assert miscounted == []  # once, as the token request's error: the step it blocked sent nothing


def test_a_refused_token_still_ends_the_run_but_gives_back_first(cases: list[dict[str, Any]]) -> None:
    """A 401 on a token refresh still reaches the user (it ends the run), but only once the flow
    gave back what it held."""
    failed = [
        f"{_name(case)}: raised {case['raised']}, held {case['held']}, open rows {case['open_rows']}, "
        f"hold left {case['hold_left']}, cleanup failures {case['cleanup_failures']}"
        for case in _of(cases, "token")
        if case["status"] == 401 and (case["raised"] != "TokenRefused" or _leftovers(case))
    ]
    assert failed == []


def test_a_stop_while_a_request_waits_for_its_slot_leaves_nothing_held(cases: list[dict[str, Any]]) -> None:
    """A stop that meets a request in its pacer wait sends nothing more of the flow, and leaves
    nothing held, no open ledger row and no finding."""
    failed = [
        f"{_name(case)}: steps {case['steps']}, held {case['held']}, open rows {case['open_rows']}, "
        f"hold left {case['hold_left']}, cleanup failures {case['cleanup_failures']}"
        for case in _of(cases, "slot")
        if _leftovers(case)
        or [step for step in case["steps"] if not step.startswith("cleanup_")]
        != ["authenticate", *FLOW_STEPS[case["flow"]][: case["at"] - 1]]
    ]
    assert failed == []


def test_a_request_never_sent_leaves_no_cleanup_and_no_ledger_row(cases: list[dict[str, Any]]) -> None:
    """A reserve stopped in its pacer wait or kept from its token holds nothing: no cleanup request
    is sent for it; and the ledger has a row only for each create request that went out."""
    unreserved = [
        _name(case)
        for case in _of(cases, "token") + _of(cases, "slot")
        if not RESERVES & set(case["steps"]) and any(step.startswith("cleanup_") for step in case["steps"])
    ]
    assert unreserved == []
    stray_rows = [
        f"{_name(case)}: rows {case['rows']} for {case['creates_sent']} create requests sent"
        for case in _of(cases, "token") + _of(cases, "slot")
        if len(case["rows"]) != case["creates_sent"]
    ]
    assert stray_rows == []


def test_a_second_reserve_gives_the_held_locker_back_first(cases: list[dict[str, Any]]) -> None:
    """A reserve while the user holds a locker gives that one back before taking the next, so no
    hold is ever overwritten and lost."""
    (case,) = _of(cases, "guard")
    assert case["reserved"] == [True, True]
    assert case["statuses_between"] == {str(case["first"]): "available", str(case["second"]): "reserved"}
    assert case["holding"] == case["second"] and case["held_map"] == {str(case["second"]): 1}
    assert case["steps"][:5] == ["authenticate", "reserve", "cleanup_status", "cleanup_release", "cleanup_status"]
    assert not _leftovers(case) and case["cleanup"] == {"released": 2, "failed": 0}


def test_a_stopping_users_cleanup_keeps_to_the_pacer(cases: list[dict[str, Any]]) -> None:
    """Once the run stops, the cleanup's requests still go one pacer interval apart, in the slots
    the flows' abandoned requests left free rather than behind them."""
    (case,) = [case for case in _of(cases, "paced") if case["interval_s"] == PACED_INTERVAL_S]
    sent = case["cleanup_at"]
    assert case["queued"] == 30 and len(sent) == 3 and not _leftovers(case)
    assert all(later - earlier >= 0.8 * PACED_INTERVAL_S for earlier, later in itertools.pairwise(sent))
    assert sent[-1] < 10 * PACED_INTERVAL_S  # behind the 30 abandoned slots it would be past 6 s


def test_a_stopping_users_cleanup_waits_no_longer_than_the_grace(cases: list[dict[str, Any]]) -> None:
    """A cleanup whose pacer slots lie past the stop's grace waits for its slot until the grace
    ends, then sends at once, so the user still stops in time."""
    (case,) = [case for case in _of(cases, "paced") if case["interval_s"] == DEADLINE_INTERVAL_S]
    sent = case["cleanup_at"]
    assert len(sent) == 3 and not _leftovers(case)
    assert sent[0] >= 0.8 * DEADLINE_GRACE_S  # it waited for the budget while the grace lasted
    assert sent[-1] < DEADLINE_INTERVAL_S / 2  # paced, its slots were 5 s and 10 s on
