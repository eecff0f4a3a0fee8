"""The sweep after a load run: it gives back what the run left held, and only that.

An earlier stage's leftover, or another client of the same identity on a shared sandbox, is held
before the users start: the sweep leaves it as it was and does not count it against the users.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.api import HarborClient
from harness.load._sweep import HeldLocker, held_lockers, sweep_leftovers
from harness.testing import LOCAL_TOWER, LocalTarget, local_target

pytestmark = pytest.mark.load


@pytest.fixture(scope="module")
def target() -> Iterator[LocalTarget]:
    with local_target() as running:
        yield running


def _status(target: LocalTarget, locker_id: int) -> str:
    return next(str(locker["status"]) for locker in target.control.state()["lockers"] if locker["id"] == locker_id)


def test_the_sweep_gives_back_what_the_run_left_and_leaves_what_was_held_before(target: LocalTarget) -> None:
    """A locker held before the run stays held and counts as held before; one the run left is forced
    available and counts as found."""
    target.control.reset()
    with HarborClient(target.settings) as api:
        api.reserve(LOCAL_TOWER, 1401)
        before = held_lockers(target.settings, control_plane=True)
        assert {(held.locker_id, held.status) for held in before} == {(1401, "reserved")}
        api.reserve(LOCAL_TOWER, 1402)  # what the "run" leaves behind
    sweep = sweep_leftovers(target.settings, control_plane=True, before=before)
    assert (sweep.checked, sweep.found, sweep.released, sweep.held_before) == (True, 1, 1, 1)
    assert sweep.notes == ["locker 1402 was left reserved: forced available"]
    assert (_status(target, 1401), _status(target, 1402)) == ("reserved", "available")


def test_a_locker_held_before_that_the_run_changed_is_the_runs(target: LocalTarget) -> None:
    """Held before, but rented since (a new token in the run): the run touched it, so it is the run's to give back."""
    target.control.reset()
    with HarborClient(target.settings) as api:
        api.reserve(LOCAL_TOWER, 1403)
        before = held_lockers(target.settings, control_plane=True)
        api.create_dropoff_token(LOCAL_TOWER, 1403)
    sweep = sweep_leftovers(target.settings, control_plane=True, before=before)
    assert (sweep.found, sweep.released, sweep.held_before) == (1, 1, 0)
    assert _status(target, 1403) == "available"


def test_through_the_api_a_held_locker_is_keyed_without_the_sandbox_s_epoch(target: LocalTarget) -> None:
    """Without a control plane (Harbor's sandbox) the look is the identity's assigned lockers."""
    target.control.reset()
    with HarborClient(target.settings) as api:
        api.reserve(LOCAL_TOWER, 1404)
    assert held_lockers(target.settings, control_plane=False) == {HeldLocker(LOCAL_TOWER, 1404, "reserved")}
    sweep = sweep_leftovers(target.settings, control_plane=False)
    assert (sweep.found, sweep.released) == (1, 1) and _status(target, 1404) == "available"
