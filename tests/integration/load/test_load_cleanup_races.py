"""A cleanup never gives back a locker another user of the same identity holds, whatever the order
the target serves their requests in, so a lost answer never becomes a false product defect.

Seen under load with 5 % dropped connections on an honest sandbox: a user's cleanup looked at a
locker while another user held it (or was being given it), took that user's reservation for one
left behind, and its release, served after that user's next reserve, took the new hold from under
it: "contend_release: 409 where the model predicts success". The users run in a child process
(``cleanup_races.py``: gevent stays out of pytest) against one virtual sandbox in a thread, each
interleaving staged request by request.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .child_cases import run_cases

pytestmark = pytest.mark.load

CHILD = Path(__file__).with_name("cleanup_races.py")
CASES = ("wait-then-look", "hold-during-look", "let-go-then-slot")


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Every case's outcome, by name, from one child process against one sandbox."""
    yield {case["case"]: case for case in run_cases(CHILD, tmp_path_factory.mktemp("cleanup-races"))}


@pytest.mark.parametrize("name", CASES)
def test_a_cleanup_never_takes_a_locker_from_another_user(cases: dict[str, dict[str, Any]], name: str) -> None:
    """The other user's every release is served as the model predicts: no violation, its holds
    all end with its own releases, and the locker is left free."""
    case = cases[name]
    assert case["finished"], case
    assert case["violations"] == [], case
    assert [line for line in case["requests"] if line.startswith("B contend_release")] == (
        ["B contend_release 200"] * case["requests"].count("B contend_reserve 201")
    ), case
    assert case["locker"] == "available" and case["held"] == {} and case["cleanup_failures"] == [], case
