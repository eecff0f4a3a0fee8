"""The cleanup ledger as the load users write it: each hold before its call, answers settled with the
owner's next write, a delivery's rows closed in one statement, four commits a delivery."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import Hold, HoldAction, HoldKind
from harness.config import Settings, Target
from harness.ledger import EntryState, Ledger, LedgerHolds
from harness.redaction import Secret

TOWER = "0100000000000014"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.open(tmp_path / "state") as opened:
        yield opened


@pytest.fixture
def holds(ledger: Ledger) -> LedgerHolds:
    settings = Settings(
        target=Target.local().running_at("http://127.0.0.1:9"), client_id="demo-provider", client_secret=Secret("x")
    )
    return LedgerHolds(ledger, settings, run_id="load", lazy=True)


class Commits:
    """Counts the commits a connection makes: autocommit writes, and explicit transactions."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.count = 0
        self._in_transaction = False
        db.set_trace_callback(self._see)

    def _see(self, statement: str) -> None:
        word = statement.lstrip().split(None, 1)[0].upper()
        if word == "BEGIN":
            self._in_transaction = True
        elif word == "COMMIT":
            self._in_transaction = False
            self.count += 1
        elif word in ("INSERT", "UPDATE", "DELETE") and not self._in_transaction:
            self.count += 1


def _create(kind: HoldKind, locker_id: int) -> Hold:
    return Hold(HoldAction.CREATE, kind, TOWER, locker_id, duration=300)


def _deliver(holds: LedgerHolds, locker_id: int, reservation_id: int) -> None:
    for kind in (HoldKind.RESERVATION, HoldKind.DROPOFF_TOKEN, HoldKind.PICKUP_TOKEN):
        hold = _create(kind, locker_id)
        holds.before(hold)
        holds.after(hold, {"id": reservation_id, "towerId": TOWER, "lockerId": locker_id}, None)
    holds.returned(locker_id)


def test_each_hold_is_written_before_its_call_and_its_answer_with_the_next_write(
    ledger: Ledger, holds: LedgerHolds
) -> None:
    """The intent is on disk before the call (crash safety); the answer's outcome waits for the
    owner's next write and lands in the same commit."""
    reserve, token = _create(HoldKind.RESERVATION, 1401), _create(HoldKind.DROPOFF_TOKEN, 1401)
    holds.before(reserve)
    assert [row.state for row in ledger.entries()] == [EntryState.INTENT]
    holds.after(reserve, {"id": 7, "towerId": TOWER, "lockerId": 1401}, None)
    assert [row.state for row in ledger.entries()] == [EntryState.INTENT]  # not yet written
    holds.before(token)
    first, second = ledger.entries()
    assert (first.state, first.resource_id, second.state) == (EntryState.CREATED, 7, EntryState.INTENT)


def test_a_delivery_takes_four_commits_and_ends_with_every_row_closed(ledger: Ledger, holds: LedgerHolds) -> None:
    """Three holds written before their calls, then one commit settles the last answer and closes the
    delivery's rows: four commits, not seven."""
    commits = Commits(ledger._db)
    _deliver(holds, 1401, 1)
    assert commits.count == 4
    assert {row.state for row in ledger.entries()} == {EntryState.RELEASED}


def test_flush_writes_what_waits_when_the_user_stops(ledger: Ledger, holds: LedgerHolds) -> None:
    """A refused reserve's outcome waits for a next write that never comes: the stop flushes it."""
    reserve = _create(HoldKind.RESERVATION, 1402)
    holds.before(reserve)
    holds.refused(reserve, "409: another user holds it")
    holds.flush()
    (row,) = ledger.entries()
    assert (row.state, row.note) == (EntryState.REFUSED, "409: another user holds it")


def test_closing_a_delivery_looks_at_open_rows_only(ledger: Ledger, holds: LedgerHolds) -> None:
    """The close searches the owner's open rows of the locker through a partial index, so it does not
    grow slower with every delivery of a long run."""
    for reservation_id in range(50):
        _deliver(holds, 1401, reservation_id)
    statements: list[str] = []
    ledger._db.set_trace_callback(statements.append)
    _deliver(holds, 1401, 50)
    ledger._db.set_trace_callback(None)
    (close,) = [statement for statement in statements if "SET state = 'released'" in statement]
    plan = ledger._db.execute(f"EXPLAIN QUERY PLAN {close}").fetchall()
    assert "holds_open_by_owner" in str(plan)
    assert {row.state for row in ledger.entries()} == {EntryState.RELEASED}
