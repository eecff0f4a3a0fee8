"""The ledger's SQLite file: one row per thing the harness asked a target to hold.

A row is written *before* the call (state ``intent``), so a process killed mid-call still leaves
a trace, and is updated after it: ``created`` (the target holds it), ``unknown`` (the call failed
in a way that may or may not have created it: a timeout, a 5xx, an interrupt), ``refused``
(a 4xx answer: nothing was created) and finally ``released``. Rows in ``intent``, ``created``
or ``unknown`` are *open*: what ``locker-harness cleanup`` looks at once their process is gone.

WAL mode and a busy timeout make it safe for several processes at once (Locust workers, a
pytest child, the CLI); one connection per ``Ledger``, guarded by a lock, for threads and
greenlets of one process. Nothing secret is stored: ids, statuses and notes only.

A commit is what a write costs (the statements themselves are cached, prepared once): a single
statement commits on its own, and the outcomes of answered calls (``Settlement``) may ride along
with the next write in one transaction, so a load user's delivery takes four commits, not seven.
"""

from __future__ import annotations

import enum
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import psutil

from harness.errors import UsageError
from harness.model import TowerId

__all__ = ["LEDGER_FILE", "OPEN_STATES", "EntryState", "Ledger", "LedgerEntry", "ProcessStamp", "Settlement"]

LEDGER_FILE: Final = "ledger.sqlite"
_SCHEMA_VERSION: Final = 1
#: Seconds a writer waits for another process's transaction before giving up.
_BUSY_TIMEOUT_S: Final = 15.0
#: Closed rows older than this are deleted by ``prune`` (what was released needs no memory).
PRUNE_AFTER_S: Final = 7 * 86_400.0
#: The states of ``OPEN_STATES``, spelled out for SQL: a partial index is used only by a query that
#: names its condition literally.
_OPEN: Final = ("intent", "created", "unknown")
_OPEN_SQL: Final = "(" + ", ".join(f"'{state}'" for state in _OPEN) + ")"

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS holds (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    pid           INTEGER NOT NULL,
    pid_started   REAL    NOT NULL,
    target        TEXT    NOT NULL,
    api_url       TEXT,
    token_url     TEXT,
    client_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    tower_id      TEXT,
    locker_id     INTEGER,
    location_id   INTEGER,
    resource_id   INTEGER,
    duration      INTEGER,
    state         TEXT    NOT NULL,
    note          TEXT    NOT NULL DEFAULT '',
    created_at    REAL    NOT NULL,
    updated_at    REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS holds_open ON holds (state, target);
-- Closing a delivery's rows looks at the owner's open rows for the locker only: an index of all
-- rows grew with every delivery of a long run, and so did each close.
DROP INDEX IF EXISTS holds_by_owner;
CREATE INDEX IF NOT EXISTS holds_open_by_owner ON holds (owner, locker_id) WHERE state IN {_OPEN_SQL};
"""


class EntryState(enum.StrEnum):
    INTENT = "intent"  # written before the call; a crash mid-call leaves it here
    CREATED = "created"  # the target said yes: it holds something for us
    UNKNOWN = "unknown"  # the call failed without a clear no (timeout, 5xx, interrupt)
    REFUSED = "refused"  # a clear no (4xx): nothing was created
    RELEASED = "released"  # given back (cancel, release, pickup) or found not held any more


#: States that may still hold a locker on the target.
OPEN_STATES: Final = frozenset(EntryState(state) for state in _OPEN)


@dataclass(frozen=True, slots=True)
class ProcessStamp:
    """Which process wrote a row: host, pid and the pid's start time (pids are reused)."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> ProcessStamp:
        return cls(socket.gethostname(), os.getpid(), _started(os.getpid()) or 0.0)

    @property
    def local(self) -> bool:
        """Whether the process ran on this host (only then can ``alive`` look at it)."""
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether that very process still runs (another host's processes are assumed alive)."""
        if not self.local:
            return True
        started = _started(self.pid)
        return started is not None and abs(started - self.started) < 1.0


def _started(pid: int) -> float | None:
    """When process ``pid`` started; ``None`` if it is gone or a zombie (killed, not yet reaped: an
    orphan whose new parent never waits for it still has a process table entry)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return float(process.create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of the ledger."""

    id: int
    run_id: str
    owner: str
    process: ProcessStamp
    target: str
    api_url: str | None
    token_url: str | None
    client_id: str
    kind: str
    tower_id: TowerId | None
    locker_id: int | None
    location_id: int | None
    resource_id: int | None
    duration: int | None
    state: EntryState
    note: str
    created_at: float
    updated_at: float

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


_COLUMNS: Final = (
    "id, run_id, owner, host, pid, pid_started, target, api_url, token_url, client_id, kind, tower_id, "
    "locker_id, location_id, resource_id, duration, state, note, created_at, updated_at"
)


def _entry(row: Sequence[object]) -> LedgerEntry:
    (id_, run_id, owner, host, pid, pid_started, target, api_url, token_url, client_id, kind, tower_id,
     locker_id, location_id, resource_id, duration, state, note, created_at, updated_at) = row  # fmt: skip
    return LedgerEntry(
        id=int(id_),  # type: ignore[call-overload]
        run_id=str(run_id),
        owner=str(owner),
        process=ProcessStamp(str(host), int(pid), float(pid_started)),  # type: ignore[call-overload, arg-type]
        target=str(target),
        api_url=None if api_url is None else str(api_url),
        token_url=None if token_url is None else str(token_url),
        client_id=str(client_id),
        kind=str(kind),
        tower_id=TowerId.or_none(tower_id),
        locker_id=None if locker_id is None else int(locker_id),  # type: ignore[call-overload]
        location_id=None if location_id is None else int(location_id),  # type: ignore[call-overload]
        resource_id=None if resource_id is None else int(resource_id),  # type: ignore[call-overload]
        duration=None if duration is None else int(duration),  # type: ignore[call-overload]
        state=EntryState(str(state)),
        note=str(note),
        created_at=float(created_at),  # type: ignore[arg-type]
        updated_at=float(updated_at),  # type: ignore[arg-type]
    )


@dataclass(frozen=True, slots=True)
class Intent:
    """What a row says before the call: where, who, what."""

    run_id: str
    owner: str
    target: str
    api_url: str | None
    token_url: str | None
    client_id: str
    kind: str
    tower_id: str | None = None
    locker_id: int | None = None
    location_id: int | None = None
    duration: int | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What an answered call's row says now (``Ledger.mark``'s arguments), to write with the next write."""

    row_id: int
    state: EntryState
    note: str = ""
    resource_id: int | None = None
    tower_id: str | None = None
    locker_id: int | None = None


_MARK: Final = (
    "UPDATE holds SET state = ?, note = ?, resource_id = COALESCE(?, resource_id), "
    "tower_id = COALESCE(?, tower_id), locker_id = COALESCE(?, locker_id), updated_at = ? WHERE id = ?"
)


class Ledger:
    """The ledger file; ``Ledger.open(state_dir)``, safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connect()

    def _connect(self) -> None:
        # Rows carry the writing process; a forked child (Locust's --processes) reconnects and
        # restamps, since an SQLite connection must never cross a fork.
        self._process = ProcessStamp.current()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open the cleanup ledger {self.path}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        """The connection of this process (call with the lock held)."""
        if self._process.pid != os.getpid():
            self._connect()
        return self._db

    @classmethod
    def open(cls, state_dir: Path) -> Ledger:
        """The ledger under ``state_dir`` (``.locker-harness/ledger.sqlite`` by default)."""
        return cls(state_dir / LEDGER_FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self, *, transaction: bool = False) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock. One statement commits on its own (the connection is in
        autocommit mode); ``transaction`` wraps several in one ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
        with self._lock:
            db = self._connection()
            if db.in_transaction:
                # A transaction left open by a failure (a rollback that failed too): while it stays,
                # every statement would join it uncommitted and every BEGIN would fail.
                db.execute("ROLLBACK")
            if not transaction:
                yield db
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                # A COMMIT can fail too (a full disk, a deferred constraint) and leave the
                # transaction open: it is rolled back like a failed statement.
                db.execute("COMMIT")
            except BaseException as exc:
                # SQLite may have rolled back already (RAISE(ROLLBACK), some I/O errors): a ROLLBACK
                # then would fail and hide the error that matters.
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error as failed:
                        exc.add_note(f"the rollback failed too: {failed}")
                raise

    @staticmethod
    def _settle(db: sqlite3.Connection, settlements: Sequence[Settlement]) -> None:
        now = time.time()
        db.executemany(
            _MARK,
            [(s.state.value, s.note, s.resource_id, s.tower_id, s.locker_id, now, s.row_id) for s in settlements],
        )

    # -- writing --------------------------------------------------------------------------------

    def intend(self, intent: Intent, *, settle: Sequence[Settlement] = ()) -> int:
        """Record a call about to be made (and earlier calls' outcomes, in the same commit); its row id."""
        now = time.time()
        with self._write(transaction=bool(settle)) as db:
            if settle:
                self._settle(db, settle)
            stamp = self._process  # after _write: a forked child has restamped by now
            cursor = db.execute(
                "INSERT INTO holds (run_id, owner, host, pid, pid_started, target, api_url, token_url, client_id, "
                "kind, tower_id, locker_id, location_id, resource_id, duration, state, note, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, '', ?, ?)",
                (
                    intent.run_id, intent.owner, stamp.host, stamp.pid, stamp.started, intent.target,
                    intent.api_url, intent.token_url, intent.client_id, intent.kind, intent.tower_id,
                    intent.locker_id, intent.location_id, intent.duration, EntryState.INTENT.value, now, now,
                ),
            )  # fmt: skip
            row_id = cursor.lastrowid
        assert row_id is not None
        return row_id

    def mark(
        self,
        row_id: int,
        state: EntryState,
        *,
        note: str = "",
        resource_id: int | None = None,
        tower_id: str | None = None,
        locker_id: int | None = None,
    ) -> None:
        """Move one row to ``state``; ids learnt from the answer fill the gaps the intent left."""
        self.settle([Settlement(row_id, state, note, resource_id, tower_id, locker_id)])

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Write answered calls' outcomes, all in one commit."""
        if settlements:
            with self._write(transaction=len(settlements) > 1) as db:
                self._settle(db, settlements)

    def release(self, row_ids: Iterable[int], note: str) -> int:
        """Mark open rows released; how many changed."""
        ids = list(row_ids)
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        states = tuple(state.value for state in OPEN_STATES)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE holds SET state = ?, note = ?, updated_at = ? WHERE id IN ({marks}) AND state IN (?, ?, ?)",
                (EntryState.RELEASED.value, note, time.time(), *ids, *states),
            )
            return cursor.rowcount

    def release_owned(
        self, owner: str, locker_id: int, note: str, *, up_to: int | None = None, settle: Sequence[Settlement] = ()
    ) -> int:
        """Mark ``owner``'s open rows for ``locker_id`` released (rows up to id ``up_to`` only, if given),
        after writing ``settle`` in the same commit."""
        limit = up_to if up_to is not None else 2**62
        with self._write(transaction=bool(settle)) as db:
            if settle:
                self._settle(db, settle)
            cursor = db.execute(
                "UPDATE holds SET state = ?, note = ?, updated_at = ? "
                f"WHERE owner = ? AND locker_id = ? AND id <= ? AND state IN {_OPEN_SQL}",
                (EntryState.RELEASED.value, note, time.time(), owner, locker_id, limit),
            )
            return cursor.rowcount

    def release_owner(
        self,
        owner: str,
        note: str,
        *,
        keep: Iterable[int] = (),
        settle: Sequence[Settlement] = (),
        keep_unplaced: bool = False,
    ) -> int:
        """Mark all of ``owner``'s open rows released, but those of the lockers in ``keep`` (and, if
        any are kept or ``keep_unplaced``, rows that name no locker: one of them may be a kept locker's),
        after writing ``settle`` in the same commit; how many changed."""
        kept = sorted(set(keep))
        spared = f" AND locker_id IS NOT NULL AND locker_id NOT IN ({','.join('?' * len(kept))})" if kept else ""
        if keep_unplaced and not kept:
            spared = " AND locker_id IS NOT NULL"
        with self._write(transaction=bool(settle)) as db:
            if settle:
                self._settle(db, settle)
            cursor = db.execute(
                "UPDATE holds SET state = ?, note = ?, updated_at = ? "
                f"WHERE owner = ? AND state IN {_OPEN_SQL}{spared}",
                (EntryState.RELEASED.value, note, time.time(), owner, *kept),
            )
            return cursor.rowcount

    def prune(self, older_than_s: float = PRUNE_AFTER_S) -> int:
        """Delete closed rows older than ``older_than_s``; how many."""
        cutoff = time.time() - older_than_s
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM holds WHERE state IN (?, ?) AND updated_at < ?",
                (EntryState.RELEASED.value, EntryState.REFUSED.value, cutoff),
            )
            return cursor.rowcount

    # -- reading --------------------------------------------------------------------------------

    def entries(
        self, *, open_only: bool = False, target: str | None = None, run_id: str | None = None
    ) -> list[LedgerEntry]:
        """Rows in the order they were written, narrowed by state, target or run."""
        clauses: list[str] = []
        params: list[object] = []
        if open_only:
            clauses.append("state IN (?, ?, ?)")
            params += [state.value for state in OPEN_STATES]
        if target is not None:
            clauses.append("(target = ? OR api_url = ?)")
            params += [target, target]
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._lock:
            rows = self._connection().execute(f"SELECT {_COLUMNS} FROM holds{where} ORDER BY id", params).fetchall()
        return [_entry(row) for row in rows]

    def get(self, row_id: int) -> LedgerEntry | None:
        with self._lock:
            row = self._connection().execute(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else _entry(row)

    def last_id(self) -> int:
        """The newest row id (0 for an empty ledger)."""
        with self._lock:
            row = self._connection().execute("SELECT COALESCE(MAX(id), 0) FROM holds").fetchone()
        return int(row[0])
