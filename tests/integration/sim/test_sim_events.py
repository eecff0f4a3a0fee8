"""The event log is shaped like Harbor's ``LOCKER_OPERATION`` webhooks (reference section 6)."""

from __future__ import annotations

from datetime import datetime

from harness.sim import SimControl

from .sandbox_parties import TOWER, Party

DATA_KEYS = {
    "timestamp", "locker_id", "locker_status", "tower_id", "source", "reservation_id", "open_locker_token_id",
    "keypad_code", "client_info", "locker_open_request_id", "locker_open_request_payload",
}  # fmt: skip


def test_events_have_the_webhook_shape(demo: Party, control: SimControl) -> None:
    """Each event has the webhook envelope and data fields; token events name the token and client info."""
    reservation = demo.reserve(1401).json()
    token = demo.token("dropoff", 1401).json()
    created, issued = control.events()
    for event in (created, issued):
        assert event["event"] == "LOCKER_OPERATION"
        assert datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S")
        assert event["data"].keys() == DATA_KEYS
        assert datetime.fromisoformat(event["data"]["timestamp"]).tzinfo is not None
        assert (event["data"]["tower_id"], event["data"]["locker_id"]) == (TOWER, 1401)
    assert created["data"]["reservation_id"] == reservation["id"]
    assert issued["data"] | {"timestamp": None} == {
        "timestamp": None,
        "locker_id": 1401,
        "locker_status": "rented",
        "tower_id": TOWER,
        "source": "LOCKER_TOKEN_CREATED",
        "reservation_id": reservation["id"],
        "open_locker_token_id": token["id"],
        "keypad_code": None,
        "client_info": "dropoff by demo-provider",
        "locker_open_request_id": None,
        "locker_open_request_payload": None,
    }


def test_events_since_pages_forward(demo: Party, control: SimControl) -> None:
    """``since`` returns only events numbered from it on; numbers are consecutive."""
    for locker_id in (1401, 1402, 1403):
        demo.reserve(locker_id)
    events = control.events()
    assert [event["sequence"] for event in events] == [0, 1, 2]
    assert [event["data"]["locker_id"] for event in control.events(since=2)] == [1403]
    assert control.events(since=3) == []
