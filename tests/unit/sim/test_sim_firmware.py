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
