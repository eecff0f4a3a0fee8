"""The tower firmware's checks, in order, each refusal with its Blink code; sessions; the event log."""

from __future__ import annotations

import pytest

from harness.ble.protocol import FirmwareCode, PacketType
from harness.model import TokenKind
from harness.sim import FirmwareRefusal, SimSettings
from harness.sim._world import World

TOWER, OTHER = "0100000000000014", "0100000000000175"
A, B = "demo-provider", "second-provider"


@pytest.fixture
def world() -> World:
    return World(SimSettings(secret=b"k" * 32))


def token(
    world: World, locker_id: int, kind: str = "dropoff", duration: int = 600, tower: str = TOWER
) -> tuple[bytes, bytes]:
    issued = world.issue_token(A, tower, locker_id, TokenKind(kind), duration, "")
    return bytes.fromhex(issued["payload"]), bytes.fromhex(issued["payload_auth"])


def refusal(world: World, payload: bytes, auth: bytes, at: int | None = None, tower: str = TOWER) -> FirmwareCode:
    with pytest.raises(FirmwareRefusal) as refused:
        world.firmwares[tower].open_with_token(payload, auth, at_locker=at)
    return refused.value.code


def test_a_good_token_opens_its_door_and_logs_it(world: World) -> None:
    """A fresh drop-off token opens its locker; the tower logs LOCKER_ACCESS, then LOCKER_UPDATE on close."""
    firmware = world.firmwares[TOWER]
    payload, auth = token(world, 1401)
    assert firmware.open_with_token(payload, auth) == 1401
    assert firmware.door_open(1401)
    firmware.close_door(1401)
    assert not firmware.door_open(1401)
    assert [event.type for event in firmware.events_since(0)] == [
        PacketType.BOOT,
        PacketType.LOCKER_ACCESS,
        PacketType.LOCKER_UPDATE,
    ]
    assert [event.number for event in firmware.events_since(1)] == [1, 2]


def test_wrong_tower_is_206(world: World) -> None:
    """A token of another tower is refused first, whatever else is wrong with it."""
    payload, auth = token(world, 17501, tower=OTHER)
    assert refusal(world, payload, auth) is FirmwareCode.AUTH_TOWER_ID


def test_bad_signature_is_207(world: World) -> None:
    """A payload whose MAC does not verify, or that is no token at all, is AUTH_SIGNATURE."""
    payload, auth = token(world, 1401)
    assert refusal(world, payload, bytes(32)) is FirmwareCode.AUTH_SIGNATURE
    assert refusal(world, b"not cbor", auth) is FirmwareCode.AUTH_SIGNATURE


def test_expired_is_107(world: World) -> None:
    """A token past its expiry on the virtual clock is MSG_EXPIRED."""
    payload, auth = token(world, 1401, duration=60)
    world.clock.advance(60)
    assert refusal(world, payload, auth) is FirmwareCode.MSG_EXPIRED


def test_unknown_locker_is_502(world: World) -> None:
    """Presented at a door the tower does not have: SYS_LOCKER_NOT_FOUND."""
    payload, auth = token(world, 1401)
    assert refusal(world, payload, auth, at=17501) is FirmwareCode.SYS_LOCKER_NOT_FOUND


def test_replay_after_pickup_is_201(world: World) -> None:
    """The drop-off token of a finished tenancy is stale: AUTH_INVALID, and the door stays shut."""
    firmware = world.firmwares[TOWER]
    dropoff = token(world, 1402)
    firmware.open_with_token(*dropoff)
    firmware.close_door(1402)
    pickup = token(world, 1402, kind="pickup")
    firmware.open_with_token(*pickup)
    firmware.close_door(1402)
    assert refusal(world, *dropoff) is FirmwareCode.AUTH_INVALID
    assert not firmware.door_open(1402)


def test_wrong_kind_is_201(world: World) -> None:
    """A drop-off token for a locker released to declined no longer applies: AUTH_INVALID."""
    payload, auth = token(world, 1403)
    world.release(A, TOWER, 1403)
    assert world.current(1403, world.now()).status.wire_name == "declined"
    assert refusal(world, payload, auth) is FirmwareCode.AUTH_INVALID


def test_wrong_door_is_201(world: World) -> None:
    """A valid token presented at another door of its tower opens nothing."""
    payload, auth = token(world, 1404)
    assert refusal(world, payload, auth, at=1405) is FirmwareCode.AUTH_INVALID


def test_session_request_gives_the_seed_until_expiry(world: World) -> None:
    """A session token opens to its seed and permissions; another tower says 206, a late one 107."""
    issued = world.session_token(A, "courier-1", TOWER, 120, ["locker_pickup"], "1.2.3")
    payload, auth = bytes.fromhex(issued["payload"]), bytes.fromhex(issued["payload_auth"])
    grant = world.firmwares[TOWER].verify_session_request(payload, auth)
    assert (grant.seed.hex(), grant.permissions, grant.user_id) == (
        issued["session_seed"],
        ("locker_pickup",),
        "courier-1",
    )
    assert issued["session_seed"] not in repr(grant)
    with pytest.raises(FirmwareRefusal) as other:
        world.firmwares[OTHER].verify_session_request(payload, auth)
    assert other.value.code is FirmwareCode.AUTH_TOWER_ID
    with pytest.raises(FirmwareRefusal) as forged:
        world.firmwares[TOWER].verify_session_request(payload, bytes(32))
    assert forged.value.code is FirmwareCode.AUTH_SIGNATURE
    world.clock.advance(120)
    with pytest.raises(FirmwareRefusal) as late:
        world.firmwares[TOWER].verify_session_request(payload, auth)
    assert late.value.code is FirmwareCode.MSG_EXPIRED


def test_client_events_are_logged_and_bounded(world: World) -> None:
    """ADD_CLIENT_EVENT logs a CLIENT_EVENT; more than 500 bytes is refused."""
    firmware = world.firmwares[TOWER]
    assert firmware.add_client_event("hello").type is PacketType.CLIENT_EVENT
    with pytest.raises(FirmwareRefusal):
        firmware.add_client_event("é" * 251)


def test_event_batches_verify_only_unchanged(world: World) -> None:
    """A sealed batch verifies for the range it states and for no other."""
    firmware = world.firmwares[TOWER]
    firmware.add_client_event("one")
    batch = firmware.event_batch(0)
    assert (batch.start, batch.count) == (0, 2)
    assert firmware.verify_event_batch(0, 2, batch.payload, batch.payload_auth)
    assert not firmware.verify_event_batch(0, 1, batch.payload, batch.payload_auth)
    assert not world.firmwares[OTHER].verify_event_batch(0, 2, batch.payload, batch.payload_auth)


# -- OPEN_AVAILABLE_LOCKER, FIND_AVAILABLE_LOCKERS, CHECK_ALL_LOCKER_DOORS, GET_DEVICE_INFO, single use --


def test_found_lockers_count_the_available_ones_per_type(world: World) -> None:
    """Tower 14's seeded lockers, less the out-of-service 12 and 24 and whatever is held or open."""
    firmware = world.firmwares[TOWER]
    assert firmware.available_by_type() == {1: 8, 2: 7, 3: 4, 4: 3}
    world.reserve(A, TOWER, 1401, 300)
    payload, auth = token(world, 1409)
    firmware.open_with_token(payload, auth)
    assert firmware.available_by_type() == {1: 7, 2: 6, 3: 4, 4: 3}


def test_open_available_takes_the_lowest_free_door_of_the_type_and_keeps_its_token(world: World) -> None:
    """A locker held elsewhere is passed over; the one opened is the session's until its item is taken out
    with the token the tower kept for it."""
    firmware = world.firmwares[TOWER]
    world.reserve(A, TOWER, 1401, 300)
    opened = firmware.open_available(
        A, locker_type=1, match_available=True, match_token=None, locker_token=b"T1", leave_available=False
    )
    assert opened == 1402 and firmware.door_open(1402)
    assert world.states[1402].status.wire_name == "rented" and world.states[1402].holder == A
    firmware.close_door(1402)
    assert world.states[1402].status.wire_name == "occupied"
    with pytest.raises(FirmwareRefusal) as wrong_token:
        firmware.open_available(
            A, locker_type=None, match_available=False, match_token=b"T2", locker_token=b"", leave_available=True
        )
    assert wrong_token.value.code is FirmwareCode.SYS_LOCKER_NOT_FOUND
    again = firmware.open_available(
        A, locker_type=None, match_available=False, match_token=b"T1", locker_token=b"", leave_available=True
    )
    assert again == 1402
    firmware.close_door(1402)
    assert world.states[1402].status.wire_name == "available"


def test_open_available_finds_nothing_when_every_door_of_the_type_is_held(world: World) -> None:
    """No matching locker: SYS_LOCKER_NOT_FOUND (502), and no door opens."""
    firmware = world.firmwares[TOWER]
    for locker_id in (1421, 1422, 1423):  # xlarge; 1424 is out of service
        world.reserve(A, TOWER, locker_id, 300)
    with pytest.raises(FirmwareRefusal) as refused:
        firmware.open_available(
            A, locker_type=4, match_available=True, match_token=None, locker_token=b"", leave_available=False
        )
    assert refused.value.code is FirmwareCode.SYS_LOCKER_NOT_FOUND
    assert firmware.doors_open() == bytes(3)


def test_the_open_available_bug_opens_a_held_locker(world: World) -> None:
    """``open_available_opens_held``: the lowest door of the type opens though it is reserved."""
    firmware = world.firmwares[TOWER]
    world.reserve(A, TOWER, 1401, 300)
    world.bugs.update({"open_available_opens_held": True})
    opened = firmware.open_available(
        A, locker_type=1, match_available=True, match_token=None, locker_token=b"", leave_available=False
    )
    assert opened == 1401 and world.states[1401].status.wire_name == "reserved" and firmware.door_open(1401)


def test_all_doors_is_a_bitfield_by_door_label(world: World) -> None:
    """Doors 2 and 9 open: bit 1 of byte 0 and bit 0 of byte 1, 3 bytes for 24 doors."""
    firmware = world.firmwares[TOWER]
    for locker_id in (1402, 1409):
        payload, auth = token(world, locker_id)
        firmware.open_with_token(payload, auth)
    assert firmware.doors_open() == bytes((0b10, 0b1, 0))


def test_device_info_names_the_tower_and_counts_its_uptime_on_the_sandbox_clock(world: World) -> None:
    """Identity as advertised, 24 lockers, uptime from the boot on the (virtual) clock."""
    firmware = world.firmwares[TOWER]
    before = firmware.device_info()
    assert (before.tower_id, before.tower_name, before.firmware_version, before.lockers) == (
        TOWER, "Virtual Tower 14", "1.2.3", 24,
    )  # fmt: skip
    world.clock.advance(120)
    assert firmware.device_info().uptime >= before.uptime + 120


def test_a_used_dropoff_token_opens_again_unless_tokens_are_single_use() -> None:
    """Default (assumptions.DROPOFF_TOKEN_SINGLE_USE false): a second drop-off with the same token. Single
    use: AUTH_INVALID, though the session that used it may still reopen."""
    for single_use in (False, True):
        world = World(SimSettings(secret=b"k" * 32, single_use_tokens=single_use))
        firmware = world.firmwares[TOWER]
        payload, auth = token(world, 1401)
        firmware.open_with_token(payload, auth)
        firmware.close_door(1401)
        if single_use:
            assert refusal(world, payload, auth) is FirmwareCode.AUTH_INVALID
            assert firmware.open_with_token(payload, auth, at_locker=1401, reopening=True) == 1401
        else:
            assert firmware.open_with_token(payload, auth) == 1401
