"""Every operation of the API document has one builder, and both clients expose each one."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.api import OPERATIONS, AsyncHarborClient, Call, HarborClient, TowerEventBatch

DOCUMENT = Path(__file__).resolve().parents[3] / "contracts" / "harbor-api.yaml"
TOWER = "0100000000000014"

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "authorizeSdkUser": {"user_id": "courier-1"},
    "testToken": {},
    "listTowerLockers": {"tower_id": TOWER},
    "getLocker": {"tower_id": TOWER, "locker_id": 1401},
    "reserveLocker": {"tower_id": TOWER, "locker_id": 1401, "duration": 60},
    "cancelReservation": {"tower_id": TOWER, "locker_id": 1401, "reservation_id": 7},
    "createDropoffToken": {"tower_id": TOWER, "locker_id": 1401},
    "createPickupToken": {"tower_id": TOWER, "locker_id": 1401},
    "releaseLocker": {"tower_id": TOWER, "locker_id": 1401},
    "getTowerAvailability": {"tower_id": TOWER},
    "listAssignedLockers": {},
    "listLockerTypes": {},
    "listLocations": {"skip": 0, "limit": 10},
    "getClosestLocation": {"lat": 40.7, "lon": -74.0, "radius": 0.5},
    "getLocation": {"location_id": 1},
    "getLocationAvailability": {"location_id": 1},
    "createDropoffLockerRequest": {"location_id": 1, "locker_type_id": 1},
    "createPickupLockerRequest": {"locker_id": 1401},
    "getLockerOpenRequest": {"request_id": 3},
    "createSessionToken": {"tower_id": TOWER, "version": "1.2.3"},
    "uploadTowerEvents": {"tower_id": TOWER, "batches": [TowerEventBatch(0, 1, "aa", "bb")]},
    "listTowerCommands": {"tower_id": TOWER},
    "loginAccessToken": {"username": "someone@example.com", "password": "not-a-real-one"},
    "loginSdkAccessToken": {"username": "someone@example.com", "password": "not-a-real-one"},
    "listBleServices": {},
    "getTowerConfiguration": {"tower_id": TOWER},
    "resetTowerEvents": {"tower_id": TOWER, "reason": "events out of step"},
}


def _document() -> dict[str, tuple[str, str, dict[str, Any]]]:
    spec = yaml.safe_load(DOCUMENT.read_text())
    found = {}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "operationId" in operation:
                found[operation["operationId"]] = (method.upper(), path, operation)
    return found


OPERATIONS_IN_DOCUMENT = _document()


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())["components"]["schemas"]
    return schemas


def test_every_operation_id_has_a_builder() -> None:
    """The client covers exactly the operations of contracts/harbor-api.yaml."""
    assert set(OPERATIONS) == set(OPERATIONS_IN_DOCUMENT)
    assert set(SAMPLE_ARGS) == set(OPERATIONS)


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS_IN_DOCUMENT))
def test_builder_matches_document(operation_id: str) -> None:
    """Each builder's method and path match the document's, and writes are flagged as writes."""
    method, template, operation = OPERATIONS_IN_DOCUMENT[operation_id]
    call: Call[Any] = OPERATIONS[operation_id](**SAMPLE_ARGS[operation_id])
    assert call.method == method
    pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
    assert re.fullmatch(pattern, call.path), (call.path, template)
    body = operation.get("requestBody", {})
    if body.get("required"):
        [media] = body["content"]
        form = media == "application/x-www-form-urlencoded"
        assert (call.data is not None, call.json is not None) == (form, not form), media
        if form:  # the document's required form fields are sent
            schema = body["content"][media]["schema"]["$ref"].rsplit("/", 1)[-1]
            assert set(_schemas()[schema]["required"]) <= set(call.data or {})
    if method == "GET":
        assert call.writes is None and call.hold is None
    is_login = "/login/" in template
    assert (call.writes is not None) == (method in ("POST", "DELETE") and not is_login)
    assert call.scope.value == ("tower_access" if template.startswith("/sdk/") else "service_provider")
    assert call.bearer == (operation.get("security") != []), "security: [] is a call without a bearer token"


@pytest.mark.parametrize("operation_id", sorted(OPERATIONS_IN_DOCUMENT))
def test_both_clients_expose_the_operation(operation_id: str) -> None:
    """Sync and async clients have a method per builder with the builder's signature and docstring."""
    builder = OPERATIONS[operation_id]
    for client in (HarborClient, AsyncHarborClient):
        method = getattr(client, builder.__name__)
        assert method.__doc__ == builder.__doc__
        assert inspect.iscoroutinefunction(method) == (client is AsyncHarborClient)


def test_tower_id_any_case_goes_upper_in_paths() -> None:
    """A tower id in any case reaches the path upper-case (the SDK's spelling)."""
    call = OPERATIONS["listTowerLockers"](tower_id="01000000000000ab")
    assert call.path == "/api/v1/towers/01000000000000AB/lockers"


def test_creates_announce_holds() -> None:
    """Reservation, tokens and open requests announce a hold; cancel and release announce giving back."""
    holds = {op: OPERATIONS[op](**SAMPLE_ARGS[op]).hold for op in OPERATIONS}
    announced = {op: (hold.action.value, hold.kind.value) for op, hold in holds.items() if hold is not None}
    assert announced == {
        "reserveLocker": ("create", "reservation"),
        "createDropoffToken": ("create", "dropoff_token"),
        "createPickupToken": ("create", "pickup_token"),
        "createDropoffLockerRequest": ("create", "dropoff_request"),
        "createPickupLockerRequest": ("create", "pickup_request"),
        "cancelReservation": ("cancel", "reservation"),
        "releaseLocker": ("release", "locker"),
    }
