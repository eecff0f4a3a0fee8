"""``LedgerHolds``: the API client's ``Holds`` hook, writing every hold to the ledger.

One ``LedgerHolds`` per client (a CLI run, one Locust user, one pytest session): its rows share
an *owner*, so when that client's delivery ends ("the locker is available again") only its own
rows for that locker are closed, never a row another user of the same run just opened.

Before a create call a row is written (``intent``); after it the row says ``created`` with the
id the target gave, ``refused`` for a 4xx (nothing was created), or ``unknown`` (a timeout, a
5xx after the retries, an interrupt: the target may hold it). A cancel or release that leaves
the locker available closes the owner's rows for it; so does ``returned()`` (the pickup door
closed) and the flow's own events through ``listener``. A test suite that frees everything at
once (a sandbox seeded again, its clock moved past every hold) closes all its rows with ``given_back()``.

A client that makes many calls a second (a Locust user) passes ``lazy=True``: the outcome of
each call is then written with the owner's next write (the next intent, or the close when the
delivery ends) instead of in a commit of its own. The intent is still written before each call,
so a crash loses nothing cleanup needs: an open row is looked at whether it says intent or
created. ``flush()`` writes what is still waiting.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from harness.api import Hold, HoldAction, HoldKind, Locker, LockerOpenRequest, LockerToken, Reservation
from harness.config import Settings
from harness.errors import HarborAPIError, HarnessError, ServerError
from harness.flow import FlowEvent, Step, StepFinished
from harness.ledger._store import EntryState, Intent, Ledger, Settlement
from harness.model import LockerStatus, TowerId

__all__ = ["RUN_ID_ENV", "LedgerHolds", "ledger_holds", "new_run_id", "shared_ledger"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A child process (Locust, a pytest stage) writes its rows under its parent run's id.
RUN_ID_ENV = "LOCKER_HARNESS_RUN_ID"

#: Holds the ledger records (a cancel or a release is recorded by its effect, not as a row).
_RECORDED = frozenset(
    {
        HoldKind.RESERVATION,
        HoldKind.DROPOFF_TOKEN,
        HoldKind.PICKUP_TOKEN,
        HoldKind.DROPOFF_REQUEST,
        HoldKind.PICKUP_REQUEST,
    }
)


def new_run_id() -> str:
    """A run id for a command that has none of its own (``smoke``, ``cleanup``): time and randomness."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class LedgerHolds:
    """A ``harness.api.Holds`` that writes to a ``Ledger``; thread- and greenlet-safe.

    A ledger that cannot be written (a full disk, a locked file past the busy timeout) must not
    turn a test of the target into a harness crash mid-delivery: the failure is logged once and
    the client goes on; ``failed_writes`` counts them for the caller to report.
    """

    def __init__(
        self, ledger: Ledger, settings: Settings, *, run_id: str, client_id: str | None = None, lazy: bool = False
    ) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self.owner = secrets.token_hex(8)
        self._target = settings.target
        self._client_id = client_id or settings.client_id or "?"
        self._lock = threading.Lock()
        self._inflight: dict[Hold, list[int]] = {}
        self._lazy = lazy
        self._unsettled: list[Settlement] = []  # answered calls whose outcome waits for the next write
        self.failed_writes = 0

    # -- the Holds protocol ----------------------------------------------------------------------

    def before(self, hold: Hold) -> None:
        if hold.action is not HoldAction.CREATE or hold.kind not in _RECORDED:
            return
        target = self._target
        intent = Intent(
            run_id=self.run_id,
            owner=self.owner,
            target=target.name,
            api_url=target.api_url,
            token_url=target.token_url,
            client_id=self._client_id,
            kind=hold.kind.value,
            tower_id=hold.tower_id,
            locker_id=hold.locker_id,
            location_id=hold.location_id,
            duration=hold.duration,
        )
        settle = self._take_unsettled()
        row_id = self._guard(lambda: self.ledger.intend(intent, settle=settle))
        if row_id is not None:
            with self._lock:
                self._inflight.setdefault(hold, []).append(row_id)

    def after(self, hold: Hold, result: object | None, error: BaseException | None) -> None:
        """``result`` may be the client's parsed answer or, for a client reading by hand, the JSON."""
        if hold.action is HoldAction.CREATE:
            row_id = self._pop(hold)
            if row_id is not None:
                self._finish_create(row_id, result, error)
            return
        # A cancel or a release: if the locker is available after it, this owner holds it no more.
        if error is None and isinstance(result, Locker) and result.status is LockerStatus.AVAILABLE:
            self.returned(result.id, note=f"{hold.action.value}: available")

    # -- beyond the hook -------------------------------------------------------------------------

    def refused(self, hold: Hold, note: str = "refused: nothing created") -> None:
        """The create call got a clear no (a client that reads answers by hand, like the Locust users)."""
        row_id = self._pop(hold)
        if row_id is not None:
            self._settle(Settlement(row_id, EntryState.REFUSED, note))

    def unanswered(self, hold: Hold, note: str = "outcome unknown") -> None:
        """The create call failed without a clear answer: the target may hold it; cleanup will look."""
        row_id = self._pop(hold)
        if row_id is not None:
            self._settle(Settlement(row_id, EntryState.UNKNOWN, note))

    def returned(self, locker_id: int, *, note: str = "delivery complete: available", up_to: int | None = None) -> None:
        """The locker is available again (the pickup door closed): close this owner's rows for it,
        in one commit with the outcomes still waiting."""
        settle = self._take_unsettled()
        self._guard(lambda: self.ledger.release_owned(self.owner, locker_id, note, up_to=up_to, settle=settle))

    def given_back(
        self, *, note: str = "given back: nothing held", still_held: Iterable[int] = (), keep_unplaced: bool = False
    ) -> None:
        """This owner holds nothing any more but the lockers ``still_held`` (a sandbox seeded again, its
        clock moved past every hold, a give-back that read what is left): close its other open rows,
        in one commit with the outcomes still waiting. Call it with none of the owner's calls in flight:
        a call that lands after it would hold a locker no open row names. ``keep_unplaced`` keeps the
        rows that name no locker open (a give-back that released only lockers it could name)."""
        settle = self._take_unsettled()
        kept = tuple(still_held)
        self._guard(
            lambda: self.ledger.release_owner(self.owner, note, keep=kept, settle=settle, keep_unplaced=keep_unplaced)
        )

    def flush(self) -> None:
        """Write the outcomes still waiting (``lazy``): call it when the client stops."""
        settle = self._take_unsettled()
        if settle:
            self._guard(lambda: self.ledger.settle(settle))

    def listener(self, event: FlowEvent) -> None:
        """A ``harness.flow`` listener: a delivery that ends available closes the rows of its locker.

        A give-back after a failure closes rows through the cancel or release it made (``after``);
        a give-back that found nothing held closes nothing: a call whose answer never came may
        still land on the target, so its row waits for ``cleanup`` to look again.
        """
        if isinstance(event, StepFinished) and event.step is Step.AVAILABLE and event.ok and event.locker_id:
            self.returned(event.locker_id)

    # -- internals -------------------------------------------------------------------------------

    def _pop(self, hold: Hold) -> int | None:
        """The row of the oldest unanswered call for ``hold``."""
        with self._lock:
            waiting = self._inflight.get(hold)
            row_id = waiting.pop(0) if waiting else None
            if waiting == []:
                del self._inflight[hold]
        return row_id

    def _finish_create(self, row_id: int, result: object | None, error: BaseException | None) -> None:
        if error is None:
            resource_id, tower_id, locker_id = _identity(result)
            self._settle(Settlement(row_id, EntryState.CREATED, "", resource_id, tower_id, locker_id))
            return
        if isinstance(error, HarborAPIError) and not isinstance(error, ServerError):
            state, note = EntryState.REFUSED, f"{error.status_code}: nothing created"
        else:
            # A timeout, a 5xx, a body we could not read, Ctrl-C: the target may hold it now.
            state, note = EntryState.UNKNOWN, f"outcome unknown: {type(error).__name__}"
        self._settle(Settlement(row_id, state, note))

    def _settle(self, settlement: Settlement) -> None:
        """Write one call's outcome now, or with the next write (``lazy``)."""
        if self._lazy:
            with self._lock:
                self._unsettled.append(settlement)
            return
        self._guard(lambda: self.ledger.settle([settlement]))

    def _take_unsettled(self) -> list[Settlement]:
        """The outcomes waiting, handed to the write about to be made (lost with it if it fails: the
        rows stay open, which only makes cleanup look again)."""
        with self._lock:
            taken, self._unsettled = self._unsettled, []
        return taken

    def _guard(self, write: Callable[[], T]) -> T | None:
        try:
            return write()
        except (sqlite3.Error, OSError, HarnessError) as exc:
            with self._lock:
                self.failed_writes += 1
                first = self.failed_writes == 1
            if first:
                log.warning("the cleanup ledger %s could not be written: %s", self.ledger.path, exc)
            return None


def _identity(result: object | None) -> tuple[int | None, TowerId | None, int | None]:
    """(resource id, tower id, locker id) of what a create call answered."""
    if isinstance(result, Reservation):
        return result.id, result.tower_id, result.locker_id
    if isinstance(result, LockerToken):
        return result.id, result.tower_id, result.locker.id
    if isinstance(result, LockerOpenRequest):
        return result.id, result.tower_id, result.locker_id
    if isinstance(result, dict):  # the JSON answer itself: read leniently, only ids
        locker = result.get("locker")
        locker_id = result.get("lockerId", locker.get("id") if isinstance(locker, dict) else None)
        tower_id = result.get("towerId", result.get("tower_id"))
        return _storable_id(result.get("id")), TowerId.or_none(tower_id), _storable_id(locker_id)
    return None, None, None


def _storable_id(value: object) -> int | None:
    """An id from an answer, if SQLite can store it: the contract suite hands in whatever a target
    answered, and a huge or malformed id must not fail the row's write."""
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


_SHARED: dict[tuple[int, Path], Ledger] = {}
_SHARED_LOCK = threading.Lock()


def shared_ledger(state_dir: Path) -> Ledger:
    """This process's one ``Ledger`` for ``state_dir`` (many Locust users, one connection)."""
    key = (os.getpid(), state_dir.resolve())
    with _SHARED_LOCK:
        ledger = _SHARED.get(key)
        if ledger is None:
            ledger = _SHARED[key] = Ledger.open(state_dir)
        return ledger


def ledger_holds(
    settings: Settings, *, run_id: str | None = None, client_id: str | None = None, lazy: bool = False
) -> LedgerHolds:
    """A ``LedgerHolds`` on this process's ledger under ``settings.state_dir``; the run id is
    ``run_id``, else the parent's (``LOCKER_HARNESS_RUN_ID``), else a new one."""
    chosen = run_id or os.environ.get(RUN_ID_ENV) or new_run_id()
    return LedgerHolds(shared_ledger(settings.state_dir), settings, run_id=chosen, client_id=client_id, lazy=lazy)
