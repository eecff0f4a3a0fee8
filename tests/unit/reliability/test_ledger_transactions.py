"""The ledger's multi-statement writes: a failed COMMIT or an SQLite-side rollback leaves the ledger writable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.ledger import EntryState, Ledger, LedgerEntry
from harness.ledger._store import Intent, Settlement

#: A row whose note is this makes the transaction's COMMIT fail (a deferred foreign key it breaks).
COMMIT_FAILS = "commit fails"
#: A row whose note is this makes SQLite roll the whole transaction back itself, mid-statement.
ROLLED_BACK = "rolled back"

_FAULTS = f"""
CREATE TABLE parent (id INTEGER PRIMARY KEY);
CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TRIGGER commit_fails AFTER UPDATE ON holds WHEN NEW.note = '{COMMIT_FAILS}'
BEGIN INSERT INTO child VALUES (-1); END;
CREATE TRIGGER rolled_back BEFORE UPDATE ON holds WHEN NEW.note = '{ROLLED_BACK}'
BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;
"""


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ledger]:
    """A ledger whose connection checks foreign keys, with triggers that fail a transaction on demand."""
    connect = sqlite3.connect

    def checking_foreign_keys(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA foreign_keys = ON")  # off by default: the deferred key would never be checked
        return db

    monkeypatch.setattr("harness.ledger._store.sqlite3.connect", checking_foreign_keys)
    with Ledger.open(tmp_path) as opened:
        with sqlite3.connect(opened.path) as setup:
            setup.executescript(_FAULTS)
        yield opened


def _intend(ledger: Ledger, locker_id: int) -> int:
    intent = Intent("run-1", "owner-1", "local", "http://127.0.0.1:9", None, "demo", "reservation", locker_id=locker_id)
    return ledger.intend(intent)


def _committed(ledger: Ledger) -> list[LedgerEntry]:
    """The rows another connection sees: what was committed."""
    with Ledger(ledger.path) as reader:
        return reader.entries()


def test_failed_commit_is_rolled_back_and_later_writes_commit(ledger: Ledger) -> None:
    """A COMMIT that fails raises, undoes the transaction, and the next writes (single and batched) commit."""
    first, second = _intend(ledger, 1401), _intend(ledger, 1402)
    failing = [Settlement(first, EntryState.CREATED), Settlement(second, EntryState.UNKNOWN, COMMIT_FAILS)]
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        ledger.settle(failing)
    assert [row.state for row in _committed(ledger)] == [EntryState.INTENT, EntryState.INTENT]

    third = _intend(ledger, 1403)
    ledger.settle([Settlement(first, EntryState.CREATED), Settlement(third, EntryState.REFUSED)])
    assert [(row.locker_id, row.state) for row in _committed(ledger)] == [
        (1401, EntryState.CREATED),
        (1402, EntryState.INTENT),
        (1403, EntryState.REFUSED),
    ]


def test_rollback_by_sqlite_raises_the_original_error(ledger: Ledger) -> None:
    """When SQLite already rolled the transaction back, its own error is raised, not a failed ROLLBACK's."""
    first, second = _intend(ledger, 1401), _intend(ledger, 1402)
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        ledger.settle([Settlement(first, EntryState.CREATED), Settlement(second, EntryState.UNKNOWN, ROLLED_BACK)])
    assert [row.state for row in _committed(ledger)] == [EntryState.INTENT, EntryState.INTENT]
    ledger.release([first, second], "given back")
    assert {row.state for row in _committed(ledger)} == {EntryState.RELEASED}
