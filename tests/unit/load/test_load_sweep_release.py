"""The sweep through Harbor's API counts a locker released only when the answer reads available,
keeps within its deadline, and never raises.

Harbor's client is replaced by a stand-in that answers each release with a scripted status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Self

import pytest

import harness.api
from harness.config import Settings
from harness.load._sweep import sweep_leftovers

TOWER = "T-1"


@dataclass
class Script:
    """What the stand-in holds (locker -> status), what each release answers next, what was released."""

    held: dict[int, str] = field(default_factory=dict)
    answers: dict[int, list[str]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)


class FakeHarbor:
    """Harbor's client as far as the sweep uses it, answering from ``script``."""

    def __init__(self, script: Script) -> None:
        self.script = script

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def assigned_lockers(self) -> list[Any]:
        return [_locker(locker_id, status) for locker_id, status in self.script.held.items()]

    def release_locker(self, tower_id: str, locker_id: int) -> Any:
        self.script.released.append(locker_id)
        return _locker(locker_id, self.script.answers[locker_id].pop(0))


def _locker(locker_id: int, status: str) -> Any:
    return SimpleNamespace(tower_id=TOWER, id=locker_id, status=SimpleNamespace(wire_name=status))


@pytest.fixture
def harbor(monkeypatch: pytest.MonkeyPatch) -> Script:
    script = Script()
    monkeypatch.setattr(harness.api, "HarborClient", lambda settings: FakeHarbor(script))
    return script


def test_a_locker_left_declined_after_two_releases_is_not_counted_released(harbor: Script) -> None:
    """rented -> declined -> declined: still held, so not released, and the note says the status it is in."""
    harbor.held = {1401: "rented", 1402: "rented"}
    harbor.answers = {1401: ["declined", "available"], 1402: ["declined", "declined"]}
    sweep = sweep_leftovers(Settings(), control_plane=False)
    assert (sweep.checked, sweep.found, sweep.released) == (True, 2, 1)
    assert sweep.notes == [
        "locker 1401 was left rented: released",
        "locker 1402 was left rented: released twice, still declined",
    ]


def test_a_reserved_locker_is_released_once(harbor: Script) -> None:
    """reserved -> available at the first release: no second release is sent."""
    harbor.held = {1403: "reserved"}
    harbor.answers = {1403: ["available"]}
    sweep = sweep_leftovers(Settings(), control_plane=False)
    assert (sweep.found, sweep.released, harbor.released) == (1, 1, [1403])


def test_no_release_starts_after_the_deadline_but_the_look_still_counts(harbor: Script) -> None:
    """Past its deadline the sweep still looks (what is held is known) and releases nothing."""
    harbor.held = {1404: "reserved"}
    harbor.answers = {1404: ["available"]}
    sweep = sweep_leftovers(Settings(), control_plane=False, deadline=time.monotonic() - 1.0)
    assert (sweep.checked, sweep.found, sweep.released, harbor.released) == (True, 1, 0, [])
    assert sweep.notes == ["locker 1404 is still reserved: the time budget ran out first"]


def test_an_unexpected_error_is_a_note_not_an_exception(harbor: Script) -> None:
    """The sweep runs while the stage's own error may be on its way out: it never raises over it."""
    harbor.held = {1405: "reserved"}
    harbor.answers = {1405: []}  # the stand-in fails with an IndexError, none of the errors a look expects
    sweep = sweep_leftovers(Settings(), control_plane=False)
    assert (sweep.checked, sweep.found, sweep.released) == (True, 1, 0)
    assert sweep.notes == ["the sweep could not finish: IndexError: pop from empty list"]
