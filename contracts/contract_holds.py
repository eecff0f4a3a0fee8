"""What this run itself asked the target to hold: the only lockers a give-back on a shared sandbox touches.

An identity's assigned lockers (``users/me/assigned-lockers``) are everything it holds, on every
tower, by every run that uses it: a ``load`` of the same identity alongside, a tester at a bench
tower. Releasing all of them would end other runs' deliveries under their feet. So the suites keep
their own record: every locker a create call named that was granted or whose answer was lost (it
may have landed), or that its answer named (a drop-off request by location). A call refused with a
clear 4xx names a locker the run does not hold: the identity may hold it for another run. A give-back releases
only the lockers in this record that the identity still holds, and forgets a locker once it is
seen free. ``RunHolds`` is the client's ``Holds`` hook, and passes every call on to the cleanup
ledger's (``LedgerHolds``) when there is one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from harness.api import Hold, HoldAction, Locker, LockerOpenRequest, LockerToken, Reservation
from harness.errors import HarborAPIError, ServerError
from harness.ledger import LedgerHolds
from harness.model import LockerStatus, TowerId

__all__ = ["RunHolds"]

Place = tuple[TowerId, int]


class RunHolds:
    """A ``harness.api.Holds`` that remembers the lockers this run asked to hold; thread-safe."""

    def __init__(self, ledger: LedgerHolds | None = None) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._places: set[Place] = set()
        self._asked: dict[Hold, list[Place]] = {}  # create calls sent, not answered yet
        #: Create calls whose locker is unknown and whose outcome is not a clear no (a drop-off request
        #: by location whose answer was lost): the target may hold a locker no record names.
        self.unplaced = 0

    # -- the Holds protocol ----------------------------------------------------------------------

    def before(self, hold: Hold) -> None:
        if hold.action is HoldAction.CREATE and hold.tower_id is not None and hold.locker_id is not None:
            with self._lock:
                self._asked.setdefault(hold, []).append((hold.tower_id, hold.locker_id))
        if self.ledger is not None:
            self.ledger.before(hold)

    def after(self, hold: Hold, result: object | None, error: BaseException | None) -> None:
        if hold.action is HoldAction.CREATE:
            self._answered(hold, held=error is None or _maybe_landed(error))
            place = _place(result) if error is None else None
            if place is not None:
                self._note(*place)
            elif hold.locker_id is None and _maybe_landed(error):
                self._unplaced()
        elif error is None and isinstance(result, Locker) and result.status is LockerStatus.AVAILABLE:
            self.forget(result.tower_id, result.id)  # our own cancel or release freed it
        if self.ledger is not None:
            self.ledger.after(hold, result, error)

    # -- a client reading answers by hand (the contract suite) ------------------------------------

    def refused(self, hold: Hold, note: str) -> None:
        self._answered(hold, held=False)
        if self.ledger is not None:
            self.ledger.refused(hold, note)

    def unanswered(self, hold: Hold, note: str) -> None:
        self._answered(hold, held=True)
        if hold.locker_id is None:
            self._unplaced()
        if self.ledger is not None:
            self.ledger.unanswered(hold, note)

    # -- the record ------------------------------------------------------------------------------

    def places(self) -> frozenset[Place]:
        """The (tower, locker) this run asked to hold and has not seen free since."""
        with self._lock:
            return frozenset(self._places)

    def forget(self, tower: TowerId, locker_id: int) -> None:
        """The locker is free of this run's holds (seen free, or given back)."""
        with self._lock:
            self._places.discard((tower, locker_id))

    def given_back(self, *, note: str, still_held: Iterable[int] = ()) -> None:
        """Close the ledger rows of everything but ``still_held``; a row whose locker is unknown stays
        open while a call that named none may have landed (``cleanup`` looks at it)."""
        if self.ledger is not None:
            self.ledger.given_back(note=note, still_held=still_held, keep_unplaced=self.unplaced > 0)

    def flush(self) -> None:
        if self.ledger is not None:
            self.ledger.flush()

    def _answered(self, hold: Hold, *, held: bool) -> None:
        """The oldest unanswered call for ``hold`` got its answer; its locker is ours if ``held``."""
        with self._lock:
            waiting = self._asked.get(hold)
            place = waiting.pop(0) if waiting else None
            if waiting == []:
                del self._asked[hold]
            if place is not None and held:
                self._places.add(place)

    def _note(self, tower: TowerId, locker_id: int) -> None:
        with self._lock:
            self._places.add((tower, locker_id))

    def _unplaced(self) -> None:
        with self._lock:
            self.unplaced += 1


def _maybe_landed(error: BaseException | None) -> bool:
    """Whether a failed create call may still have created something (no clear 4xx)."""
    return not (isinstance(error, HarborAPIError) and not isinstance(error, ServerError))


def _place(result: object | None) -> Place | None:
    """The (tower, locker) a create call's answer names: the client's objects or the JSON itself."""
    if isinstance(result, Reservation | LockerOpenRequest):
        return result.tower_id, result.locker_id
    if isinstance(result, LockerToken):
        return result.tower_id, result.locker.id
    if isinstance(result, dict):
        locker = result.get("locker")
        locker_id = result.get("lockerId", locker.get("id") if isinstance(locker, dict) else None)
        tower = TowerId.or_none(result.get("towerId", locker.get("towerId") if isinstance(locker, dict) else None))
        if tower is not None and isinstance(locker_id, int) and not isinstance(locker_id, bool) and locker_id > 0:
            return tower, locker_id
    return None
