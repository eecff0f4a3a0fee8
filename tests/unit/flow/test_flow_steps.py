"""The delivery flow's logic against a scripted client and opener: steps, events, checks, cleanup."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from harness.api import Locker, LockerToken, LockerType, Reservation
from harness.assumptions import Assumed, findings, observing
from harness.errors import Conflict, Forbidden, InfrastructureError, ProductDefect, ServerError, UsageError
from harness.flow import (
    FlowEvent,
    Released,
    Step,
    StepFinished,
    StepStarted,
    locker_type_id,
    run_delivery,
)
from harness.model import LockerStatus, TokenKind

TOWER = "0100000000000014"
SMALL, LARGE = LockerType(1, "small"), LockerType(3, "large")
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def locker(locker_id: int, status: LockerStatus = LockerStatus.AVAILABLE, kind: LockerType = SMALL) -> Locker:
    return Locker(locker_id, str(locker_id % 100), TOWER, status, kind, False, "public")


class FakeHarbor:
    """A client that follows the model faithfully unless told to lie about one step."""

    def __init__(self, lockers: list[Locker], *, status_timeout: float = 0.2) -> None:
        self.lockers = {item.id: item for item in lockers}
        self.settings = SimpleNamespace(status_timeout=status_timeout, target=SimpleNamespace(name="fake"))
        self.session = SimpleNamespace(
            credentials=SimpleNamespace(client_id="me"), retries=0, retried_since=lambda mark: ()
        )
        self.calls: list[str] = []
        self.lie: dict[str, LockerStatus] = {}  # call name -> status to answer instead
        self.refuse_reserve: set[int] = set()

    def _set(self, locker_id: int, status: LockerStatus, call: str) -> Locker:
        self.lockers[locker_id] = dataclasses.replace(self.lockers[locker_id], status=status)
        shown = self.lie.get(call, status)
        return dataclasses.replace(self.lockers[locker_id], status=shown)

    async def authenticate(self) -> None:
        self.calls.append("authenticate")

    async def list_lockers(self, tower_id: str) -> list[Locker]:
        self.calls.append("list_lockers")
        return list(self.lockers.values())

    async def get_locker(self, tower_id: str, locker_id: int) -> Locker:
        self.calls.append("get_locker")
        current = self.lockers[locker_id]
        return dataclasses.replace(current, status=self.lie.get("get_locker", current.status))

    async def reserve(self, tower_id: str, locker_id: int, duration: int) -> Reservation:
        self.calls.append(f"reserve {locker_id}")
        if locker_id in self.refuse_reserve:
            raise Conflict("taken", status_code=409)
        shown = self._set(locker_id, LockerStatus.RESERVED, "reserve")
        return Reservation(1, TOWER, locker_id, duration, LATER, shown)

    async def _token(self, kind: TokenKind, locker_id: int, duration: int) -> LockerToken:
        status = LockerStatus.RENTED if kind is TokenKind.DROPOFF else LockerStatus.OCCUPIED
        shown = self._set(locker_id, status, f"{kind.value}_token")
        return LockerToken(5, kind, TOWER, shown, "aa", "bb", LATER)

    async def create_dropoff_token(self, tower_id: str, locker_id: int, duration: int, info: str) -> LockerToken:
        self.calls.append("dropoff_token")
        return await self._token(TokenKind.DROPOFF, locker_id, duration)

    async def create_pickup_token(self, tower_id: str, locker_id: int, duration: int, info: str) -> LockerToken:
        self.calls.append("pickup_token")
        return await self._token(TokenKind.PICKUP, locker_id, duration)

    async def cancel_reservation(self, tower_id: str, locker_id: int, reservation_id: int) -> Locker:
        self.calls.append("cancel")
        return self._set(locker_id, LockerStatus.AVAILABLE, "cancel")

    async def release_locker(self, tower_id: str, locker_id: int) -> Locker:
        self.calls.append("release")
        current = self.lockers[locker_id].status
        after = LockerStatus.DECLINED if current is LockerStatus.RENTED else LockerStatus.AVAILABLE
        return self._set(locker_id, after, "release")


class FakeDoors:
    """An opener that mirrors the model's door behaviour onto the fake client."""

    def __init__(self, harbor: FakeHarbor, *, opens: int | None = None, fail_on: TokenKind | None = None) -> None:
        self.harbor = harbor
        self.opens = opens
        self.fail_on = fail_on
        self.kind: TokenKind | None = None
        self.reports = True  # False: the API never hears of a door event (a tower that never syncs)

    async def open(self, target: Locker, token: LockerToken) -> int:
        if token.kind is self.fail_on:
            raise InfrastructureError("the radio is down")
        self.kind = token.kind
        opened = self.opens if self.opens is not None else target.id
        if self.reports and token.kind is TokenKind.DROPOFF and opened in self.harbor.lockers:  # occupied [S]
            self.harbor.lockers[opened] = dataclasses.replace(self.harbor.lockers[opened], status=LockerStatus.OCCUPIED)
        return opened

    async def wait_closed(self, target: Locker, *, timeout: float) -> None:
        status = LockerStatus.OCCUPIED if self.kind is TokenKind.DROPOFF else LockerStatus.AVAILABLE
        self.harbor.lockers[target.id] = dataclasses.replace(self.harbor.lockers[target.id], status=status)


async def deliver(harbor: FakeHarbor, doors: FakeDoors, **kwargs: Any) -> tuple[Any, list[FlowEvent]]:
    events: list[FlowEvent] = []
    result = await run_delivery(harbor, doors, tower_id=TOWER, listeners=[events.append], **kwargs)  # type: ignore[arg-type]
    return result, events


@pytest.mark.anyio
async def test_delivery_runs_every_step_in_order() -> None:
    """A faithful target passes all twelve steps, each announced, timed and ending with the predicted status."""
    harbor = FakeHarbor([locker(1401)])
    delivery, events = await deliver(harbor, FakeDoors(harbor))
    assert [s.step for s in delivery.steps] == list(Step)
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert [type(e) for e in events] == [StepStarted, StepFinished] * len(Step)
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert all(e.ok and e.duration_ns >= 0 for e in finished)
    assert [e.locker_status for e in finished][3:] == [
        LockerStatus.RESERVED,
        LockerStatus.RENTED,
        LockerStatus.OCCUPIED,  # occupied as the drop-off door opens [S]
        LockerStatus.OCCUPIED,
        LockerStatus.OCCUPIED,
        LockerStatus.OCCUPIED,
        LockerStatus.OCCUPIED,
        LockerStatus.AVAILABLE,
        LockerStatus.AVAILABLE,
    ]
    assert delivery.total_ns == sum(s.duration_ns for s in delivery.steps)


@pytest.mark.anyio
async def test_wanted_type_is_picked() -> None:
    """A wanted locker type narrows the choice; held lockers are never picked."""
    harbor = FakeHarbor([locker(1401), locker(1417, kind=LARGE), locker(1418, LockerStatus.RENTED, LARGE)])
    delivery, _ = await deliver(harbor, FakeDoors(harbor), locker_type="large")
    assert delivery.locker.id == 1417


@pytest.mark.anyio
async def test_no_available_locker_is_infrastructure() -> None:
    """No available locker of the wanted type means the run could not test (exit 4), not a defect."""
    harbor = FakeHarbor([locker(1401, LockerStatus.OCCUPIED)])
    with pytest.raises(InfrastructureError, match="no available locker in tower"):
        await deliver(harbor, FakeDoors(harbor))


@pytest.mark.anyio
async def test_taken_locker_moves_on_to_the_next() -> None:
    """If another party reserves the picked locker first, the flow reserves the next one."""
    harbor = FakeHarbor([locker(1401), locker(1402)])
    harbor.refuse_reserve = {1401}
    delivery, _ = await deliver(harbor, FakeDoors(harbor))
    assert delivery.locker.id == 1402
    assert harbor.calls[2:4] == ["reserve 1401", "reserve 1402"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "shown", "step", "check"),
    [
        ("reserve", LockerStatus.AVAILABLE, "reserve", "locker_reserved_after_reserve"),
        ("dropoff_token", LockerStatus.RESERVED, "dropoff_token", "locker_rented_after_dropoff_token"),
        ("pickup_token", LockerStatus.AVAILABLE, "pickup_token", "locker_occupied_after_pickup_token"),
    ],
)
async def test_wrong_status_is_a_defect_naming_step_and_check(
    call: str, shown: LockerStatus, step: str, check: str
) -> None:
    """A status the model does not predict is ProductDefect with the step and the check named."""
    harbor = FakeHarbor([locker(1401)])
    harbor.lie[call] = shown
    with pytest.raises(ProductDefect) as caught:
        await deliver(harbor, FakeDoors(harbor))
    assert (caught.value.step, caught.value.check) == (step, check)
    assert f"shows locker 1401 {shown.wire_name}" in str(caught.value)


@pytest.mark.anyio
async def test_status_never_shown_times_out_as_defect() -> None:
    """A status the API never shows within the timeout fails the waiting step."""
    harbor = FakeHarbor([locker(1401)], status_timeout=0.05)
    doors = FakeDoors(harbor)

    async def stuck(target: Locker, *, timeout: float) -> None:
        pass  # the door closes, but the API never hears of it

    doors.wait_closed = stuck  # type: ignore[method-assign]
    doors.reports = False
    with pytest.raises(ProductDefect) as caught:
        await deliver(harbor, doors)
    assert (caught.value.step, caught.value.check) == ("occupied", "locker_occupied_after_dropoff")
    assert "still shows rented 0.05 s after the drop-off" in str(caught.value)


@pytest.mark.anyio
async def test_token_opening_another_locker_is_a_defect() -> None:
    """If the tower opens another door than the token's, the flow says so."""
    harbor = FakeHarbor([locker(1401)])
    with pytest.raises(ProductDefect) as caught:
        await deliver(harbor, FakeDoors(harbor, opens=1402))
    assert (caught.value.step, caught.value.check) == ("open_for_dropoff", "token_opens_its_locker")


@pytest.mark.anyio
async def test_failure_after_token_releases_the_locker() -> None:
    """A failure while the locker is rented releases it twice (rented -> declined -> available) and says so."""
    harbor = FakeHarbor([locker(1401)])
    with pytest.raises(InfrastructureError) as caught:
        await deliver(harbor, FakeDoors(harbor, fail_on=TokenKind.DROPOFF))
    assert harbor.calls[-2:] == ["release", "release"]
    assert harbor.lockers[1401].status is LockerStatus.AVAILABLE
    assert caught.value.__notes__ == [
        "locker 1401 given back (released: rented -> declined; released: declined -> available)"
    ]


@pytest.mark.anyio
async def test_failure_while_reserved_cancels_the_reservation() -> None:
    """A failure while the locker is only reserved cancels the reservation."""
    harbor = FakeHarbor([locker(1401)])
    events: list[FlowEvent] = []

    async def broken(tower_id: str, locker_id: int, duration: int, info: str) -> LockerToken:
        raise UsageError("the API refused the call")

    harbor.create_dropoff_token = broken  # type: ignore[method-assign]
    with pytest.raises(UsageError):
        await run_delivery(harbor, FakeDoors(harbor), tower_id=TOWER, listeners=[events.append])  # type: ignore[arg-type]
    released = [e for e in events if isinstance(e, Released)]
    assert released == [Released(1401, ("cancelled reservation 1: reserved -> available",), True, released[0].note)]
    failed = [e for e in events if isinstance(e, StepFinished) and not e.ok]
    assert [e.step for e in failed] == [Step.DROPOFF_TOKEN]


@pytest.mark.anyio
async def test_item_inside_is_reported_not_forced() -> None:
    """With the test item inside (occupied), the flow does not pretend to free the locker: it says what to do."""
    harbor = FakeHarbor([locker(1401)])
    with pytest.raises(InfrastructureError) as caught:
        await deliver(harbor, FakeDoors(harbor, fail_on=TokenKind.PICKUP))
    assert "it holds the test item" in caught.value.__notes__[0]
    assert "release" not in harbor.calls


@pytest.mark.anyio
async def test_failure_before_reserving_holds_nothing() -> None:
    """A failure before any reservation gives back nothing and adds no note."""
    harbor = FakeHarbor([])
    with pytest.raises(InfrastructureError) as caught:
        await deliver(harbor, FakeDoors(harbor))
    assert not getattr(caught.value, "__notes__", None)


@pytest.mark.parametrize(
    ("given", "expected"), [(None, None), (1, 1), ("2", 2), ("Large", 3), ("xlarge", 4), (" small ", 1)]
)
def test_locker_type_by_id_or_name(given: int | str | None, expected: int | None) -> None:
    """Locker types are accepted by id or by name, in any case."""
    assert locker_type_id(given) == expected


@pytest.mark.parametrize("given", ["huge", "0", "5", ""])
def test_unknown_locker_type_is_a_usage_error(given: str) -> None:
    """An unknown locker type is a UsageError listing the known ones."""
    with pytest.raises(UsageError, match=r"use one of small \(1\), medium \(2\), large \(3\), xlarge \(4\)"):
        locker_type_id(given)


class PersonAtTheDoor(FakeDoors):
    """A person who closes the door the moment it opens, before the flow reads the status (the
    virtual radio's person on a slow machine): the API already shows the status after the close."""

    async def open(self, target: Locker, token: LockerToken) -> int:
        opened = await super().open(target, token)
        await super().wait_closed(target, timeout=1.0)
        return opened


class NobodyAtTheDoor(PersonAtTheDoor):
    """The same early close, from an opener that says only ``wait_closed`` closes doors."""

    door_closes_itself = False


@pytest.mark.anyio
async def test_door_closed_by_a_person_before_the_read_is_not_a_defect() -> None:
    """When a person may close the door at once, the status after the close is accepted right after the open."""
    harbor = FakeHarbor([locker(1401)])
    delivery, events = await deliver(harbor, PersonAtTheDoor(harbor))
    shown = {e.step: e.locker_status for e in events if isinstance(e, StepFinished)}
    assert shown[Step.OPEN_FOR_DROPOFF] is LockerStatus.OCCUPIED
    assert shown[Step.OPEN_FOR_PICKUP] is LockerStatus.AVAILABLE
    assert delivery.locker.status is LockerStatus.AVAILABLE


@pytest.mark.anyio
async def test_only_the_two_predictions_are_accepted_after_an_open() -> None:
    """With a person at the door, a status that is neither before nor after the close is still a defect."""
    harbor = FakeHarbor([locker(1401)])
    harbor.lie["get_locker"] = LockerStatus.DECLINED
    with pytest.raises(ProductDefect) as caught:
        await deliver(harbor, PersonAtTheDoor(harbor))
    assert (caught.value.step, caught.value.check) == ("open_for_dropoff", "locker_occupied_while_door_open")
    assert "the model predicts rented or occupied" in str(caught.value)  # occupied, or not yet synced


@pytest.mark.anyio
async def test_early_close_is_a_defect_where_nobody_closes_doors() -> None:
    """An opener that closes doors only in wait_closed keeps the strict check: a close nobody made is a
    defect (the pickup's: a drop-off's close changes no status)."""
    harbor = FakeHarbor([locker(1401)])
    with pytest.raises(ProductDefect) as caught:
        await deliver(harbor, NobodyAtTheDoor(harbor))
    # Occupied right after the drop-off open is the reference's timing (occupied_on): the early close
    # shows where nothing else can explain it, when the pickup's door reads available while open.
    assert (caught.value.step, caught.value.check) == ("open_for_pickup", "locker_occupied_while_door_open")


@pytest.mark.anyio
async def test_reservation_made_without_an_answer_is_given_back() -> None:
    """A reserve that failed after the target made the reservation: the API shows it held, so it is released."""
    harbor = FakeHarbor([locker(1401)])

    async def lost(tower_id: str, locker_id: int, duration: int) -> Reservation:
        harbor._set(locker_id, LockerStatus.RESERVED, "reserve")
        raise ServerError("POST .../reservations answered 503", status_code=503)

    harbor.reserve = lost  # type: ignore[method-assign]
    events: list[FlowEvent] = []
    with pytest.raises(ServerError) as caught:
        await run_delivery(harbor, FakeDoors(harbor), tower_id=TOWER, listeners=[events.append])  # type: ignore[arg-type]
    assert harbor.lockers[1401].status is LockerStatus.AVAILABLE
    assert caught.value.__notes__ == ["locker 1401 given back (released: reserved -> available)"]
    [released] = [e for e in events if isinstance(e, Released)]
    assert released.ok


@pytest.mark.anyio
async def test_give_back_refused_is_not_ok() -> None:
    """A held locker the target will not release (403: not ours) is reported, and the give-back is not ok."""
    harbor = FakeHarbor([locker(1401)])

    async def lost(tower_id: str, locker_id: int, duration: int) -> Reservation:
        harbor._set(locker_id, LockerStatus.RESERVED, "reserve")
        raise ServerError("POST .../reservations answered 502", status_code=502)

    async def not_ours(tower_id: str, locker_id: int) -> Locker:
        raise Forbidden("POST .../release-locker answered 403 Forbidden: held by another party", status_code=403)

    harbor.reserve = lost  # type: ignore[method-assign]
    harbor.release_locker = not_ours  # type: ignore[method-assign]
    events: list[FlowEvent] = []
    with pytest.raises(ServerError):
        await run_delivery(harbor, FakeDoors(harbor), tower_id=TOWER, listeners=[events.append])  # type: ignore[arg-type]
    [released] = [e for e in events if isinstance(e, Released)]
    assert not released.ok
    assert "held by another party" in released.note


@pytest.mark.anyio
async def test_refused_reserve_holds_nothing_to_give_back() -> None:
    """When every candidate is refused, nothing was made: no give-back is tried, no note is added."""
    harbor = FakeHarbor([locker(1401)])
    harbor.refuse_reserve = {1401}
    with pytest.raises(Conflict) as caught:
        await deliver(harbor, FakeDoors(harbor))
    assert not getattr(caught.value, "__notes__", None)
    assert "get_locker" not in harbor.calls


class OccupiedOnOpen(FakeDoors):
    """A target that turns the locker occupied as the drop-off door opens (the reference's reading)."""

    def __init__(self, harbor: FakeHarbor, *, door_known_open: bool) -> None:
        super().__init__(harbor)
        self.door_closes_itself = not door_known_open

    async def open(self, target: Locker, token: LockerToken) -> int:
        opened = await super().open(target, token)
        if token.kind is TokenKind.DROPOFF:
            self.harbor.lockers[target.id] = dataclasses.replace(
                self.harbor.lockers[target.id], status=LockerStatus.OCCUPIED
            )
        return opened


class OccupiedOnClose(FakeDoors):
    """A target whose API shows the locker occupied only once the drop-off door closed (the dialect's reading)."""

    def __init__(self, harbor: FakeHarbor, *, heard_at_once: bool = True) -> None:
        super().__init__(harbor)
        self.reports = False  # the open is not heard of; the close turns the locker occupied
        #: True: the API hears of the door as it opens (a control plane); False: at the tower's sync (BLE).
        self.door_events_reach_the_api_at_once = heard_at_once


@pytest.mark.anyio
async def test_occupied_only_after_the_close_refutes_occupied_on() -> None:
    """Rented right after the drop-off open, occupied after the close: the delivery passes, the guess is refuted."""
    harbor = FakeHarbor([locker(1401)])
    with observing() as seen:
        delivery, _ = await deliver(harbor, OccupiedOnClose(harbor))
    assert delivery.locker.status is LockerStatus.AVAILABLE
    [finding] = findings(seen.entries(), Assumed())
    assert (finding.assumption, finding.seen, finding.adopt) == ("occupied_on", '"close"', 'occupied_on = "close"')
    assert "rented right after the drop-off open" in finding.where


@pytest.mark.anyio
async def test_occupied_while_the_door_is_known_open_confirms_occupied_on() -> None:
    """Occupied while nobody but the flow can have closed the door: the reference's timing, confirmed."""
    harbor = FakeHarbor([locker(1401)])
    with observing() as seen:
        await deliver(harbor, OccupiedOnOpen(harbor, door_known_open=True))
    assert [(s.assumption, s.seen) for s in seen.entries()] == [("occupied_on", "open")]
    assert findings(seen.entries(), Assumed()) == []


@pytest.mark.anyio
async def test_occupied_where_a_person_may_have_closed_says_nothing() -> None:
    """Occupied right after the open, where a person may already have closed the door: no observation."""
    harbor = FakeHarbor([locker(1401)])
    with observing() as seen:
        await deliver(harbor, OccupiedOnOpen(harbor, door_known_open=False))
    assert seen.entries() == []


@pytest.mark.anyio
async def test_rented_after_an_open_the_tower_reports_at_its_sync_says_nothing() -> None:
    """Over BLE the tower tells Harbor of the door when it syncs [I]: rented right after the open is the
    status from before, no sign of when the target turns a locker occupied (no false finding)."""
    harbor = FakeHarbor([locker(1401)])
    with observing() as seen:
        await deliver(harbor, OccupiedOnClose(harbor, heard_at_once=False))
    assert [entry for entry in seen.entries() if entry.assumption == "occupied_on"] == []


@pytest.mark.anyio
async def test_adopting_occupied_on_close_leaves_no_finding() -> None:
    """With occupied_on = "close" adopted, the same delivery gives no finding."""
    harbor = FakeHarbor([locker(1401)])
    with observing() as seen:
        await deliver(harbor, OccupiedOnClose(harbor))
    assert findings(seen.entries(), Assumed.of({"occupied_on": "close"}, "test", {})) == []
