"""The control plane's doors are the tower firmware without the radio: a full delivery through it."""

from __future__ import annotations

import pytest

from harness.sim import FirmwareRefusal, SimControl

from .sandbox_parties import OTHER_TOWER, TOWER, Party


def test_open_and_close_drive_the_model_to_occupied_then_available(demo: Party, control: SimControl) -> None:
    """Reserve, drop off: occupied as the door opens [S]; close: still occupied; pick up, close:
    available, with the tenancy's epoch moved on; the token-used events say occupied."""
    assert demo.reserve(1401).status_code == 201
    dropoff = demo.token("dropoff", 1401).json()
    assert dropoff["locker"]["status"]["name"] == "rented"
    assert control.open_door(TOWER, 1401, dropoff["payload"], dropoff["payload_auth"]) == 1401
    assert control.door_state(TOWER, 1401) is True
    assert demo.status(1401) == "occupied"
    assert control.close_door(TOWER, 1401)["status"]["name"] == "occupied"
    assert demo.status(1401) == "occupied"
    pickup = demo.token("pickup", 1401).json()
    assert control.open_door(TOWER, 1401, pickup["payload"], pickup["payload_auth"]) == 1401
    assert control.close_door(TOWER, 1401)["status"]["name"] == "available"
    assert control.door_state(TOWER, 1401) is False
    assert control.locker(1401)["epoch"] == 1
    sources = [event["data"]["source"] for event in control.events()]
    assert sources == [
        "RESERVATION_CREATED",
        "LOCKER_TOKEN_CREATED",
        "LOCKER_TOKEN_USED",
        "LOCKER_DOOR_CLOSED",
        "LOCKER_TOKEN_CREATED",
        "LOCKER_TOKEN_USED",
        "LOCKER_DOOR_CLOSED",
    ]
    used = [e["data"]["locker_status"] for e in control.events() if e["data"]["source"] == "LOCKER_TOKEN_USED"]
    assert used == ["occupied", "occupied"]


def test_refusals_carry_the_blink_code(demo: Party, control: SimControl) -> None:
    """Wrong tower 206, bad signature 207, expired 107, wrong door 201; each answered 403."""
    token = demo.token("dropoff", 1402, duration=60).json()
    other = demo.token("dropoff", 17501, tower=OTHER_TOWER).json()
    cases = [
        (1402, other["payload"], other["payload_auth"], 206),
        (1402, token["payload"], "ab" * 32, 207),
        (1403, token["payload"], token["payload_auth"], 201),
    ]
    for locker_id, payload, auth, code in cases:
        with pytest.raises(FirmwareRefusal) as refused:
            control.open_door(TOWER, locker_id, payload, auth)
        assert (int(refused.value.code), refused.value.http_status) == (code, 403)
    control.advance_clock(61)
    with pytest.raises(FirmwareRefusal) as refused:
        control.open_door(TOWER, 1402, token["payload"], token["payload_auth"])
    assert int(refused.value.code) == 107


def test_an_open_door_cannot_open_twice(demo: Party, control: SimControl) -> None:
    """A token presented while its door is open is refused with 409: the state forbids it."""
    token = demo.token("dropoff", 1404).json()
    control.open_door(TOWER, 1404, token["payload"], token["payload_auth"])
    with pytest.raises(FirmwareRefusal) as refused:
        control.open_door(TOWER, 1404, token["payload"], token["payload_auth"])
    assert (int(refused.value.code), refused.value.http_status) == (201, 409)


def test_force_sets_staff_statuses(demo: Party, control: SimControl) -> None:
    """Staff force a held locker available, or an available one out of service."""
    assert demo.reserve(1405).status_code == 201
    assert control.force(TOWER, 1405, "available")["status"]["name"] == "available"
    assert control.force(TOWER, 1405, "out_of_service")["status"]["name"] == "out_of_service"
    assert demo.reserve(1405).status_code == 409


def test_second_dropoff_into_an_occupied_locker(demo: Party, control: SimControl) -> None:
    """The holder of an occupied locker may get another drop-off token and open it again."""
    first = demo.token("dropoff", 1406).json()
    control.open_door(TOWER, 1406, first["payload"], first["payload_auth"])
    control.close_door(TOWER, 1406)
    second = demo.token("dropoff", 1406).json()
    assert second["locker"]["status"]["name"] == "occupied"
    control.open_door(TOWER, 1406, second["payload"], second["payload_auth"])
    assert control.close_door(TOWER, 1406)["status"]["name"] == "occupied"
