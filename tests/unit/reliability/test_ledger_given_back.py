"""``LedgerHolds.given_back``: a suite that freed everything at once closes its owner's rows, but those still held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import Hold, HoldAction, HoldKind
from harness.config import Settings, Target
from harness.ledger import EntryState, Ledger, LedgerHolds
from harness.redaction import Secret

TOWER = "0100000000000014"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        target=Target.local().running_at("http://127.0.0.1:9"),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        state_dir=tmp_path / "state",
    )


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with Ledger.open(settings.state_dir) as opened:
        yield opened


def _reserve(locker_id: int) -> Hold:
    return Hold(HoldAction.CREATE, HoldKind.RESERVATION, TOWER, locker_id, duration=300)


def _hold_three(holds: LedgerHolds) -> None:
    """A created reservation (1401), one whose answer never came (1402), a drop-off request naming no locker."""
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), {"id": 1, "towerId": TOWER, "lockerId": 1401}, None)
    holds.before(_reserve(1402))
    holds.unanswered(_reserve(1402))
    request = Hold(HoldAction.CREATE, HoldKind.DROPOFF_REQUEST, location_id=3)
    holds.before(request)
    holds.unanswered(request)


def test_given_back_closes_every_open_row_of_its_owner_only(ledger: Ledger, settings: Settings) -> None:
    """Created, unknown and locker-less rows of the owner are released; another owner's row stays open."""
    mine = LedgerHolds(ledger, settings, run_id="suite")
    other = LedgerHolds(ledger, settings, run_id="suite")
    _hold_three(mine)
    other.before(_reserve(1403))
    mine.given_back(note="sandbox seeded again")
    states = [(row.owner == mine.owner, row.state, row.note) for row in ledger.entries()]
    assert states == [
        (True, EntryState.RELEASED, "sandbox seeded again"),
        (True, EntryState.RELEASED, "sandbox seeded again"),
        (True, EntryState.RELEASED, "sandbox seeded again"),
        (False, EntryState.INTENT, ""),
    ]


def test_given_back_keeps_the_rows_of_lockers_still_held(ledger: Ledger, settings: Settings) -> None:
    """Rows of a locker still held stay open, and so do rows naming no locker (they may be that locker's)."""
    holds = LedgerHolds(ledger, settings, run_id="suite")
    _hold_three(holds)
    holds.given_back(still_held=[1402])
    assert [(row.locker_id, row.state) for row in ledger.entries()] == [
        (1401, EntryState.RELEASED),
        (1402, EntryState.UNKNOWN),
        (None, EntryState.UNKNOWN),
    ]


def test_lazy_outcomes_are_written_before_the_rows_close(ledger: Ledger, settings: Settings) -> None:
    """A lazy owner's waiting outcome goes out with the close: the row ends released with the id it was given."""
    holds = LedgerHolds(ledger, settings, run_id="suite", lazy=True)
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), {"id": 7, "towerId": TOWER, "lockerId": 1401}, None)
    holds.given_back()
    ((state, resource_id),) = [(row.state, row.resource_id) for row in ledger.entries()]
    assert (state, resource_id) == (EntryState.RELEASED, 7)


def test_an_answer_with_ids_sqlite_cannot_store_is_still_recorded(ledger: Ledger, settings: Settings) -> None:
    """A target's answer with an id past SQLite's integers or a tower id that is not text the file can hold (a
    contract suite hands in any answer) marks the row created without them, instead of failing its write."""
    holds = LedgerHolds(ledger, settings, run_id="suite")
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), {"id": 2**70, "towerId": "\ud800", "lockerId": 1401}, None)
    (row,) = ledger.entries()
    assert (row.state, row.resource_id, row.tower_id, row.locker_id) == (EntryState.CREATED, None, TOWER, 1401)
    assert holds.failed_writes == 0
