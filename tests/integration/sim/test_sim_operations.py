"""The document's other operations: links, assigned lockers, availability, locations, the SDK side."""

from __future__ import annotations

import pytest

from harness.sim import FirmwareRefusal, SimControl, VirtualSandbox

from .sandbox_parties import OTHER_TOWER, TOWER, Party

LINK = {"returnUrl": "", "clientInfo": "order 42", "payload": {"order": 42}}


def test_dropoff_link_reserves_a_matching_locker_for_five_minutes(demo: Party, control: SimControl) -> None:
    """A drop-off request picks an available locker of the type (low if asked) and holds it 300 s."""
    answer = demo.http.post(
        "/api/v1/locker-open-requests/dropoff-locker-request",
        json={**LINK, "locationId": 1, "lockerTypeId": 2, "requireLowLocker": False},
    )
    assert answer.status_code == 201, answer.text
    request = answer.json()
    assert request["requestType"] == "dropoff" and request["towerId"] == TOWER
    assert request["lockerId"] in range(1409, 1417) and request["lockerId"] != 1412  # medium, in service
    assert isinstance(request["linkToken"], str) and len(request["linkToken"]) >= 16
    assert demo.status(request["lockerId"]) == "reserved"
    assert demo.http.get(f"/api/v1/locker-open-requests/{request['id']}").json() == request
    control.advance_clock(301)
    assert demo.status(request["lockerId"]) == "available"
    [event] = [e for e in control.events() if e["data"]["locker_open_request_id"] == request["id"]]
    assert event["data"]["locker_open_request_payload"] == {"order": 42}


def test_dropoff_link_without_require_low_locker_is_accepted(demo: Party) -> None:
    """``requireLowLocker`` is optional [S3]: left out, any locker of the type will do (default false)."""
    answer = demo.http.post(
        "/api/v1/locker-open-requests/dropoff-locker-request", json={**LINK, "locationId": 1, "lockerTypeId": 2}
    )
    assert answer.status_code == 201, answer.text
    assert demo.status(answer.json()["lockerId"]) == "reserved"


def test_dropoff_link_without_a_match_is_409(demo: Party) -> None:
    """No low xlarge locker exists at the location: 409; an unknown location: 404."""
    body = {**LINK, "locationId": 1, "lockerTypeId": 4, "requireLowLocker": True}
    assert demo.http.post("/api/v1/locker-open-requests/dropoff-locker-request", json=body).status_code == 409
    body["locationId"] = 7
    assert demo.http.post("/api/v1/locker-open-requests/dropoff-locker-request", json=body).status_code == 404


def test_pickup_link_needs_an_occupied_locker_the_caller_holds(demo: Party, second: Party, control: SimControl) -> None:
    """A pickup request is 409 for an available locker, 403 for another's, 201 for the holder."""
    path = "/api/v1/locker-open-requests/pickup-locker-request"
    assert demo.http.post(path, json={**LINK, "lockerId": 1401}).status_code == 409
    token = demo.token("dropoff", 1401).json()
    control.open_door(TOWER, 1401, token["payload"], token["payload_auth"])
    control.close_door(TOWER, 1401)
    assert second.http.post(path, json={**LINK, "lockerId": 1401}).status_code == 403
    answer = demo.http.post(path, json={**LINK, "lockerId": 1401})
    assert answer.status_code == 201 and answer.json()["requestType"] == "pickup"
    assert second.http.get(f"/api/v1/locker-open-requests/{answer.json()['id']}").status_code == 403


@pytest.mark.parametrize("field", ["keypadIntent", "persistKeypadCode", "clientInfo"])
def test_link_fields_are_never_null(demo: Party, field: str) -> None:
    """The document never allows ``null``: an explicit null is 422, even for an optional field."""
    body = {**LINK, "lockerId": 1401, field: None}
    assert demo.http.post("/api/v1/locker-open-requests/pickup-locker-request", json=body).status_code == 422


def test_assigned_lockers_are_what_the_caller_holds(demo: Party, second: Party) -> None:
    """``users/me/assigned-lockers`` lists the caller's held lockers, not another party's."""
    demo.reserve(1401)
    demo.token("dropoff", 1402)
    second.reserve(1403)
    mine = demo.http.get("/api/v1/users/me/assigned-lockers").json()
    assert {(locker["id"], locker["status"]["name"]) for locker in mine} == {(1401, "reserved"), (1402, "rented")}
    assert [locker["id"] for locker in second.http.get("/api/v1/users/me/assigned-lockers").json()] == [1403]


def test_availability_counts_available_lockers_by_type(demo: Party) -> None:
    """Tower and location availability count available lockers in all and by type."""
    demo.reserve(1401)
    tower = demo.http.get(f"/api/v1/towers/{TOWER}/locker-availability").json()
    assert tower["lockerAvailability"] == {"availableLockers": 21}  # 24, two out of service, one reserved
    by_type = {
        entry["lockerType"]["name"]: entry["lockerAvailability"]["availableLockers"] for entry in tower["byType"]
    }
    assert by_type == {"small": 7, "medium": 7, "large": 4, "xlarge": 3}
    location = demo.http.get("/api/v1/locations/2/availability").json()
    assert location["lockerAvailability"] == {"availableLockers": 12}


def test_locations_and_locker_types(demo: Party) -> None:
    """Locations page with skip/limit, the closest one within a radius, and the four locker types."""
    assert [location["id"] for location in demo.http.get("/api/v1/locations/").json()] == [1, 2]
    assert [location["id"] for location in demo.http.get("/api/v1/locations/?skip=1&limit=1").json()] == [2]
    closest = demo.http.get("/api/v1/locations/closest", params={"lat": 37.80, "lon": -122.27}).json()
    assert closest["name"] == "Harness Second Location"
    far = demo.http.get("/api/v1/locations/closest", params={"lat": 0, "lon": 0, "radius": 1})
    assert far.status_code == 404
    types = demo.http.get("/api/v1/locker-types").json()
    assert [(t["id"], t["name"]) for t in types] == [(1, "small"), (2, "medium"), (3, "large"), (4, "xlarge")]


def test_session_token_opens_only_at_its_tower(sandbox: VirtualSandbox, demo: Party) -> None:
    """A session token's seed and claims are readable only by its own tower's firmware."""
    body = {"duration": 600, "claims": ["locker_delivery", "sync_packet"], "version": "1.2.3"}
    answer = demo.http.post(f"/sdk/v1/towers/{TOWER.lower()}/session-token", json=body)
    assert answer.status_code == 201
    token = answer.json()
    assert token["tower_id"] == TOWER and len(bytes.fromhex(token["session_seed"])) == 32
    assert token["session_seed"] not in token["payload"]  # the seed travels encrypted
    payload, auth = bytes.fromhex(token["payload"]), bytes.fromhex(token["payload_auth"])
    grant = sandbox.world.firmwares[TOWER].verify_session_request(payload, auth)
    assert grant.seed.hex() == token["session_seed"]
    assert grant.permissions == ("locker_delivery", "sync_packet") and grant.client_id == "demo-provider"
    with pytest.raises(FirmwareRefusal) as refused:
        sandbox.world.firmwares[OTHER_TOWER].verify_session_request(payload, auth)
    assert int(refused.value.code) == 206


def test_tower_events_upload_checks_the_towers_seal(sandbox: VirtualSandbox, demo: Party) -> None:
    """Uploaded event batches must carry the tower's MAC over the range they claim; commands are empty."""
    batch = sandbox.world.firmwares[TOWER].event_batch(0)
    good = {
        "syncEventStart": batch.start,
        "syncEventCount": batch.count,
        "payload": batch.payload.hex(),
        "payloadAuth": batch.payload_auth.hex(),
    }
    path = f"/sdk/v1/towers/{TOWER}/events"
    assert demo.http.post(path, json=[good]).status_code == 200
    assert demo.http.post(path, json=[{**good, "syncEventCount": batch.count + 1}]).status_code == 403
    assert demo.http.post(path, json=[{**good, "payloadAuth": "00" * 32}]).status_code == 403
    assert demo.http.post(path, json=[good] * 51).status_code == 422
    assert demo.http.get(f"/sdk/v1/towers/{TOWER}/commands").json() == []
