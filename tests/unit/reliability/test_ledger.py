"""The cleanup ledger: rows written before the call, closed after, safe across processes, and planned for cleanup."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from harness.api import Hold, HoldAction, HoldKind, Locker, LockerToken, LockerType, Reservation
from harness.config import Settings, Target
from harness.errors import Conflict, ServerError, TargetUnreachable, UsageError
from harness.flow import Released, Step, StepFinished
from harness.ledger import EntryState, Ledger, LedgerHolds, Outcome, ledger_holds
from harness.model import LockerStatus, TokenKind
from harness.redaction import Secret

TOWER = "0100000000000014"
URL = "http://127.0.0.1:9"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        target=Target.local().running_at(URL),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        state_dir=tmp_path / "state",
    )


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with Ledger.open(settings.state_dir) as opened:
        yield opened


def _locker(locker_id: int, status: LockerStatus = LockerStatus.RESERVED) -> Locker:
    return Locker(locker_id, str(locker_id - 1400), TOWER, status, LockerType(1, "small"), False, "public")


def _reservation(reservation_id: int, locker_id: int) -> Reservation:
    expires = datetime.now(UTC)
    return Reservation(reservation_id, TOWER, locker_id, 300, expires, _locker(locker_id))


def _token(token_id: int, locker_id: int) -> LockerToken:
    return LockerToken(
        token_id, TokenKind.DROPOFF, TOWER, _locker(locker_id, LockerStatus.RENTED), "ab", "cd", datetime.now(UTC)
    )


def _reserve(locker_id: int) -> Hold:
    return Hold(HoldAction.CREATE, HoldKind.RESERVATION, TOWER, locker_id, duration=300)


def test_row_is_written_before_the_call_and_says_created_after(ledger: Ledger, settings: Settings) -> None:
    """before() writes an intent row; after() with the answer marks it created with the reservation id."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    holds.before(_reserve(1401))
    (row,) = ledger.entries()
    assert (row.state, row.kind, row.tower_id, row.locker_id, row.run_id) == (
        EntryState.INTENT, "reservation", TOWER, 1401, "run-1",
    )  # fmt: skip
    assert (row.target, row.api_url, row.client_id, row.process.pid) == ("local", URL, "demo-provider", os.getpid())
    holds.after(_reserve(1401), _reservation(77, 1401), None)
    (row,) = ledger.entries()
    assert (row.state, row.resource_id) == (EntryState.CREATED, 77)


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (Conflict("409", status_code=409), EntryState.REFUSED),
        (ServerError("503", status_code=503), EntryState.UNKNOWN),
        (TargetUnreachable("no answer"), EntryState.UNKNOWN),
        (KeyboardInterrupt(), EntryState.UNKNOWN),
    ],
)
def test_failed_call_is_refused_only_on_a_clear_no(
    ledger: Ledger, settings: Settings, error: BaseException, state: EntryState
) -> None:
    """A 4xx means nothing was created; a 5xx, a timeout or an interrupt leave the outcome unknown (still open)."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), None, error)
    (row,) = ledger.entries()
    assert row.state is state
    assert row.open is (state is not EntryState.REFUSED)


def test_token_answer_fills_in_its_id(ledger: Ledger, settings: Settings) -> None:
    """A drop-off token's row keeps the token id the target gave."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    hold = Hold(HoldAction.CREATE, HoldKind.DROPOFF_TOKEN, TOWER, 1402, duration=600)
    holds.before(hold)
    holds.after(hold, _token(5, 1402), None)
    (row,) = ledger.entries()
    assert (row.kind, row.state, row.resource_id, row.locker_id) == ("dropoff_token", EntryState.CREATED, 5, 1402)


def test_cancel_that_leaves_the_locker_available_closes_the_rows(ledger: Ledger, settings: Settings) -> None:
    """A cancel or release that leaves the locker available closes the owner's rows for it; a declined one does not."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), _reservation(1, 1401), None)
    release = Hold(HoldAction.RELEASE, HoldKind.LOCKER, TOWER, 1401)
    holds.before(release)
    holds.after(release, _locker(1401, LockerStatus.DECLINED), None)
    assert [row.state for row in ledger.entries()] == [EntryState.CREATED]
    holds.after(release, _locker(1401, LockerStatus.AVAILABLE), None)
    assert [row.state for row in ledger.entries()] == [EntryState.RELEASED]


def test_delivery_end_closes_only_its_own_rows(ledger: Ledger, settings: Settings) -> None:
    """The flow's final step closes its owner's rows for that locker; another user's row for it stays open."""
    mine = LedgerHolds(ledger, settings, run_id="run-1")
    other = LedgerHolds(ledger, settings, run_id="run-1")
    for holds in (mine, other):
        holds.before(_reserve(1401))
        holds.after(_reserve(1401), _reservation(1, 1401), None)
    mine.listener(StepFinished(Step.AVAILABLE, 10, LockerStatus.AVAILABLE, True, None, 1401))
    states = {row.owner: row.state for row in ledger.entries()}
    assert states == {mine.owner: EntryState.RELEASED, other.owner: EntryState.CREATED}
    other.listener(StepFinished(Step.AVAILABLE, 10, LockerStatus.AVAILABLE, True, None, 1401))
    assert {row.state for row in ledger.entries()} == {EntryState.RELEASED}


def test_failed_step_and_any_give_back_keep_the_rows_open(ledger: Ledger, settings: Settings) -> None:
    """A failed final step leaves the rows for cleanup, and so does a give-back that found nothing held
    (a call whose answer never came may still land)."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), None, TargetUnreachable("no answer"))
    holds.listener(StepFinished(Step.AVAILABLE, 10, None, False, RuntimeError("x"), 1401))
    holds.listener(Released(1401, (), False, "not given back"))
    holds.listener(Released(1401, (), True, "locker 1401 was not held"))
    assert [row.state for row in ledger.entries()] == [EntryState.UNKNOWN]


def test_unwritable_state_dir_is_one_usage_error(tmp_path: Path) -> None:
    """A state directory that cannot be created is a UsageError naming the ledger file."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UsageError, match=r"cannot open the cleanup ledger .*ledger\.sqlite"):
        Ledger.open(blocker / "state")


def test_ledger_that_fails_mid_run_never_breaks_the_client(ledger: Ledger, settings: Settings) -> None:
    """If the ledger cannot be written mid-run, the hold still goes through and the failure is counted."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    ledger.close()
    holds.before(_reserve(1401))
    holds.after(_reserve(1401), _reservation(1, 1401), None)
    assert holds.failed_writes == 1  # the intent; with no row, the answer has nothing to update


def test_ledger_holds_takes_the_parent_run_id(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child process writes under its parent's run id (LOCKER_HARNESS_RUN_ID)."""
    monkeypatch.setenv("LOCKER_HARNESS_RUN_ID", "parent-run")
    assert ledger_holds(settings).run_id == "parent-run"
    assert ledger_holds(settings, run_id="own").run_id == "own"


def test_outcomes_that_close_rows() -> None:
    """Only released, not held and gone close ledger rows; the rest leave them for the next cleanup."""
    assert {outcome for outcome in Outcome if outcome.done} == {Outcome.RELEASED, Outcome.NOT_HELD, Outcome.GONE}


def test_no_row_for_calls_that_hold_nothing(ledger: Ledger, settings: Settings) -> None:
    """Cancels and releases are recorded by their effect only: they add no row."""
    holds = LedgerHolds(ledger, settings, run_id="run-1")
    cancel = Hold(HoldAction.CANCEL, HoldKind.RESERVATION, TOWER, 1401, reservation_id=3)
    holds.before(cancel)
    holds.after(cancel, None, httpx.ReadTimeout("slow"))
    assert ledger.entries() == []


def test_hand_read_answers_are_recorded(ledger: Ledger, settings: Settings) -> None:
    """A client reading JSON by hand (the Locust users) records the ids of an answer, a clear no, or no answer."""
    holds = LedgerHolds(ledger, settings, run_id="load")
    for locker_id in (1401, 1402, 1403):
        holds.before(_reserve(locker_id))
    holds.after(_reserve(1401), {"id": 9, "towerId": TOWER, "lockerId": 1401, "locker": {"id": 1401}}, None)
    holds.refused(_reserve(1402), "409: another user holds it")
    holds.unanswered(_reserve(1403))
    rows = {row.locker_id: row for row in ledger.entries()}
    assert (rows[1401].state, rows[1401].resource_id) == (EntryState.CREATED, 9)
    assert (rows[1402].state, rows[1402].note) == (EntryState.REFUSED, "409: another user holds it")
    assert rows[1403].state is EntryState.UNKNOWN


# -- given_back: a suite that freed everything at once closes its owner's rows, but those still held --


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
