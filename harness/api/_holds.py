"""The one place every resource the client creates or gives back passes through.

A reservation, a locker token or a locker open request left behind on a shared sandbox keeps a
real locker from other testers. The client calls a ``Holds`` observer *before* each create call
(so a crash mid-call still leaves a record) and *after* it with the result or the failure, and
does the same around cancel and release. A cleanup ledger implements ``Holds``; the flow and the
tests use ``HoldLog``.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Protocol

from harness.model import TowerId

__all__ = ["NO_HOLDS", "Hold", "HoldAction", "HoldKind", "HoldLog", "HoldRecord", "Holds"]


class HoldAction(enum.StrEnum):
    CREATE = "create"
    CANCEL = "cancel"  # a reservation
    RELEASE = "release"  # a locker (release-locker)


class HoldKind(enum.StrEnum):
    RESERVATION = "reservation"
    DROPOFF_TOKEN = "dropoff_token"
    PICKUP_TOKEN = "pickup_token"
    DROPOFF_REQUEST = "dropoff_request"
    PICKUP_REQUEST = "pickup_request"
    LOCKER = "locker"


@dataclass(frozen=True, slots=True)
class Hold:
    """What is about to be created or given back, as far as it is known before the call."""

    action: HoldAction
    kind: HoldKind
    tower_id: TowerId | None = None
    locker_id: int | None = None
    reservation_id: int | None = None
    location_id: int | None = None
    #: Seconds the hold lasts if nobody gives it back (reservation or token duration).
    duration: int | None = None


class Holds(Protocol):
    """Observer of everything the client holds; a raise from ``before`` stops the call."""

    def before(self, hold: Hold) -> None: ...

    def after(self, hold: Hold, result: object | None, error: BaseException | None) -> None:
        """``result`` is the parsed answer on success; ``error`` what went wrong (the outcome may be unknown)."""
        ...


class _NoHolds:
    def before(self, hold: Hold) -> None:
        pass

    def after(self, hold: Hold, result: object | None, error: BaseException | None) -> None:
        pass


#: The default observer: records nothing.
NO_HOLDS: Holds = _NoHolds()


@dataclass(frozen=True, slots=True)
class HoldRecord:
    hold: Hold
    result: object | None
    error: BaseException | None

    @property
    def ok(self) -> bool:
        return self.error is None


class HoldLog:
    """A ``Holds`` that keeps every finished call in order (thread-safe); for the flow and tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Hold] = []
        self._records: list[HoldRecord] = []

    def before(self, hold: Hold) -> None:
        with self._lock:
            self._pending.append(hold)

    def after(self, hold: Hold, result: object | None, error: BaseException | None) -> None:
        with self._lock:
            if hold in self._pending:
                self._pending.remove(hold)
            self._records.append(HoldRecord(hold, result, error))

    @property
    def pending(self) -> tuple[Hold, ...]:
        """Calls announced but not finished (a crash or cancel mid-call leaves them here)."""
        with self._lock:
            return tuple(self._pending)

    @property
    def records(self) -> tuple[HoldRecord, ...]:
        with self._lock:
            return tuple(self._records)
