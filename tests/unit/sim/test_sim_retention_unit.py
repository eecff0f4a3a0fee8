"""The sandbox's history is bounded (``SimSettings.retention``): rings and pruning that keep the API's answers right."""

from __future__ import annotations

import pytest

from harness.ble.protocol import PacketType
from harness.model import LockerStatus, Refusal, Refused, TokenKind
from harness.sim import Retention, SimSettings
from harness.sim._world import EventsGone, World, WorldError

TOWER = "0100000000000014"
A, B = "demo-provider", "second-provider"


def world_with(**retention: int) -> World:
    return World(SimSettings(secret=b"k" * 32, retention=Retention(**retention)))


def churn(world: World, locker_id: int, times: int) -> list[int]:
    """Reserve and cancel ``locker_id`` ``times`` times; the reservation ids (two events each)."""
    ids = []
    for _ in range(times):
        reservation = world.reserve(A, TOWER, locker_id, 60)
        world.cancel(A, TOWER, locker_id, reservation["id"])
        ids.append(reservation["id"])
    return ids


def test_webhook_events_are_a_ring_that_says_when_a_reader_fell_behind() -> None:
    """The newest events are kept in order; a ``since`` older than the oldest kept is EventsGone, not a gap."""
    world = world_with(webhook_events=5)
    churn(world, 1401, 4)  # events 0..7
    with pytest.raises(EventsGone) as gone:
        world.events_since(0)
    assert (gone.value.status_code, gone.value.oldest, gone.value.next) == (410, 3, 8)
    assert "before 3" in gone.value.detail
    events, following = world.events_since(3)
    assert [event["sequence"] for event in events] == [3, 4, 5, 6, 7] and following == 8
    assert [event["data"]["source"] for event in events[-2:]] == ["RESERVATION_CREATED", "RESERVATION_CANCELLED"]
    assert world.events_since(8) == ([], 8)


def test_webhook_events_read_as_they_were_emitted() -> None:
    """An event kept compactly reads back with the webhook's fields, its time of emission, not of reading."""
    world = World(SimSettings(secret=b"k" * 32))
    reservation = world.reserve(A, TOWER, 1401, 60)
    [before] = world.events_since(0)[0]
    world.clock.advance(3600)
    [after] = world.events_since(0)[0][:1]
    assert before == after
    assert before["data"]["reservation_id"] == reservation["id"]
    assert before["data"]["locker_status"] == "reserved" and before["event"] == "LOCKER_OPERATION"


def test_ended_reservations_are_forgotten_oldest_first() -> None:
    """Past the bound, ended reservations go oldest first; the table never exceeds its bound."""
    world = world_with(reservations=8)
    ids = churn(world, 1401, 40)
    assert len(world.reservations) <= 8
    assert ids[-1] in world.reservations and ids[0] not in world.reservations
    with pytest.raises(WorldError) as unknown:
        world.cancel(A, TOWER, 1401, ids[0])
    assert unknown.value.status_code == 404


def test_a_reservation_in_force_or_a_lockers_latest_is_never_forgotten() -> None:
    """A live reservation, and each locker's newest one, survive any churn on other lockers."""
    world = world_with(reservations=4)
    live = world.reserve(B, TOWER, 1402, 3600)["id"]
    ended = world.reserve(A, TOWER, 1403, 60)["id"]
    world.cancel(A, TOWER, 1403, ended)
    churn(world, 1401, 30)
    assert live in world.reservations and ended in world.reservations
    assert world.cancel(B, TOWER, 1402, live)["status"]["name"] == "available"


def test_cancel_of_an_expired_reservation_still_answers_as_the_model() -> None:
    """A reservation that expired is still known: cancelling it is the model's 409, never a 404."""
    world = world_with(reservations=4)
    expired = world.reserve(A, TOWER, 1401, 1)["id"]
    world.clock.advance(5)
    churn(world, 1402, 20)
    with pytest.raises(Refused) as refused:
        world.cancel(A, TOWER, 1401, expired)
    assert refused.value.reason is Refusal.WRONG_STATUS and refused.value.reason.http_status == 409


def test_open_requests_are_bounded() -> None:
    """Locker open requests past the bound are forgotten oldest first; the newest still answer."""
    world = world_with(open_requests=4)
    made = []
    for _ in range(12):
        request = world.dropoff_request(
            A, location_id=1, locker_type_id=1, require_low_locker=False, return_url="", client_info="", payload={}
        )
        world.cancel(A, TOWER, request["lockerId"], world.states[request["lockerId"]].reservation_id or 0)
        made.append(request["id"])
    assert len(world.open_requests) <= 4
    assert world.open_request(A, made[-1])["id"] == made[-1]
    with pytest.raises(WorldError) as unknown:
        world.open_request(A, made[0])
    assert unknown.value.status_code == 404


def test_tower_log_keeps_unseen_events_and_a_short_seen_tail() -> None:
    """Marking events seen lets the log drop all but a tail of them; numbers and the sync pointer stay right."""
    world = world_with(tower_events=100, tower_seen_tail=2)
    firmware = world.firmwares[TOWER]
    for n in range(9):
        firmware.add_client_event(f"note {n}")  # events 1..9 after BOOT 0
    assert firmware.sync_status() == (0, 10)
    firmware.mark_seen(8)
    assert firmware.first_event_number == 6 and firmware.sync_status() == (8, 2)
    assert [event.number for event in firmware.events_since(0)] == [6, 7, 8, 9]
    assert firmware.add_client_event("later").number == 10
    firmware.mark_seen(3)  # a pointer never moves back
    firmware.mark_seen(99)  # nor past the log's end
    assert firmware.sync_status() == (11, 0) and firmware.first_event_number == 9


def test_tower_log_overwrites_the_oldest_unsynced_events_when_full() -> None:
    """Nobody syncs: the log holds its capacity, the pointer moves to the oldest kept, batches start there."""
    world = world_with(tower_events=8, tower_seen_tail=2)
    firmware = world.firmwares[TOWER]
    for n in range(20):
        firmware.add_client_event(f"note {n}")  # events 0..20
    assert firmware.first_event_number == 13 and firmware.next_event_number == 21
    assert firmware.sync_status() == (13, 8)
    batch = firmware.event_batch(0, max_count=5)
    assert (batch.start, batch.count) == (13, 5)
    assert firmware.verify_event_batch(13, 5, batch.payload, batch.payload_auth)
    assert firmware.event_batch(21).count == 0


def test_door_events_keep_their_numbers_in_a_trimmed_log() -> None:
    """Opening and closing after trimming logs LOCKER_ACCESS and LOCKER_UPDATE under the next numbers."""
    world = world_with(tower_events=4, tower_seen_tail=0)
    firmware = world.firmwares[TOWER]
    for n in range(6):
        firmware.add_client_event(f"note {n}")
    issued = world.issue_token(A, TOWER, 1401, TokenKind.DROPOFF, 600, "")
    firmware.open_with_token(bytes.fromhex(issued["payload"]), bytes.fromhex(issued["payload_auth"]))
    firmware.close_door(1401)
    assert [(event.number, event.type) for event in firmware.events_since(7)] == [
        (7, PacketType.LOCKER_ACCESS),
        (8, PacketType.LOCKER_UPDATE),
    ]
    assert world.states[1401].status is LockerStatus.OCCUPIED


def test_reset_restarts_the_tower_log_and_its_pointer() -> None:
    """A sandbox reset reboots the towers: BOOT is event 0 again and nothing is marked seen."""
    world = world_with(tower_events=8, tower_seen_tail=0)
    firmware = world.firmwares[TOWER]
    for n in range(20):
        firmware.add_client_event(f"note {n}")
    firmware.mark_seen(20)
    world.reset()
    assert firmware.sync_status() == (0, 1) and firmware.first_event_number == 0
    assert [event.type for event in firmware.events_since(0)] == [PacketType.BOOT]


@pytest.mark.parametrize(
    "bad",
    [{"webhook_events": 0}, {"tower_events": 0}, {"reservations": 0}, {"open_requests": -1}, {"tower_seen_tail": -1}],
)
def test_retention_bounds_are_checked(bad: dict[str, int]) -> None:
    """A retention that could keep nothing (or less) is a ValueError at once."""
    with pytest.raises(ValueError):
        Retention(**bad)
