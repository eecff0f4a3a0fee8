"""Answers: strict parsing into typed results, Harbor's two error shapes, the write guard, the holds hook."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.api import (
    HarborClient,
    Hold,
    HoldAction,
    HoldKind,
    HoldLog,
    LockerToken,
    RetryPolicy,
    SessionToken,
)
from harness.config import load_settings
from harness.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HarborAPIError,
    ProductDefect,
    UsageError,
    ValidationFailed,
)
from harness.model import LockerStatus, TokenKind

from .harbor_double import TOWER, FakeHarbor, answer, locker_json

EXPIRES = "2026-11-28T05:00:00+00:00"


def token_json(status: str = "rented", status_id: int = 3) -> dict[str, Any]:
    return {
        "id": 11,
        "tower_id": TOWER,
        "locker": locker_json(status=status, status_id=status_id),
        "payload": "a1b2c3",
        "payload_auth": "d4e5f6",
        "expires": EXPIRES,
        "client_info": "",
    }


def test_locker_is_parsed_into_typed_fields(client: HarborClient, harbor: FakeHarbor) -> None:
    """A locker's JSON becomes a Locker with a model LockerStatus."""
    harbor.then(answer(200, locker_json(status="occupied", status_id=4)))
    locker = client.get_locker(TOWER, 1401)
    assert locker.status is LockerStatus.OCCUPIED
    assert (locker.id, locker.name, locker.tower_id, locker.type.name) == (1401, "1", TOWER, "small")


def test_token_hides_payload_auth(client: HarborClient, harbor: FakeHarbor) -> None:
    """A drop-off token carries payload_auth but never shows it in repr."""
    harbor.then(answer(201, token_json()))
    token = client.create_dropoff_token(TOWER, 1401)
    assert isinstance(token, LockerToken)
    assert token.kind is TokenKind.DROPOFF
    assert token.payload_auth == "d4e5f6"
    assert "d4e5f6" not in repr(token)
    assert harbor.body() == {"client_info": "", "duration": 3000}
    assert token.expires.isoformat() == EXPIRES


def test_session_token_hides_seed_and_auth(client: HarborClient, harbor: FakeHarbor) -> None:
    """A session token's seed and payload_auth never show in repr; the request carries claims and version."""
    harbor.then(answer(201, {"payload": "aa", "payload_auth": "bbbb", "session_seed": "cccc", "tower_id": TOWER}))
    session = client.create_session_token(TOWER, "1.2.3")
    assert isinstance(session, SessionToken)
    assert "bbbb" not in repr(session) and "cccc" not in repr(session)
    assert harbor.body() == {"duration": 600, "claims": ["developer"], "version": "1.2.3"}


def _mutated(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    body = locker_json()
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


SHAPE_DEFECTS = [
    (("id",), KeyError, "field 'id' is missing"),
    (("id",), "1401", "field 'id' should be an integer, got a string"),
    (("id",), True, "field 'id' should be an integer, got a boolean"),
    (("towerId",), "14", "field 'towerId' should be a tower id of 16 hex digits"),
    (("status", "name"), 7, "field 'status.name' should be a string"),
    (("status", "id"), 4, "field 'status' breaks what Harbor's material shows: available has id 4, not 1"),
    (("isLowLocker",), "no", "field 'isLowLocker' should be a boolean"),
    (("type",), None, "field 'type' should be an object, got null"),
]


@pytest.mark.parametrize(("path", "value", "message"), SHAPE_DEFECTS, ids=[m for *_, m in SHAPE_DEFECTS])
def test_malformed_locker_is_a_shape_defect(
    client: HarborClient, harbor: FakeHarbor, path: tuple[str, ...], value: Any, message: str
) -> None:
    """A locker body that breaks the document is ProductDefect(response_shape) naming the call and field."""
    harbor.then(answer(200, _mutated(path, value)))
    with pytest.raises(ProductDefect) as caught:
        client.get_locker(TOWER, 1401)
    assert caught.value.check == "response_shape"
    assert str(caught.value).startswith(f"GET /api/v1/towers/{TOWER}/lockers/1401 answered a body that does not")
    assert message in str(caught.value)


def test_nested_field_path_is_named(client: HarborClient, harbor: FakeHarbor) -> None:
    """A defect deep inside an array names the full path to the field."""
    second = locker_json(1402)
    second["type"]["id"] = "small"
    harbor.then(answer(200, [locker_json(), second]))
    with pytest.raises(ProductDefect, match=r"field '\[1\]\.type\.id' should be an integer"):
        client.list_lockers(TOWER)


def test_bad_token_fields_are_defects(client: HarborClient, harbor: FakeHarbor) -> None:
    """Odd-length hex (payload hex is seen) and an expires that is no time at all are shape defects."""
    body = token_json()
    body["payload"] = "abc"
    harbor.then(answer(201, body))
    with pytest.raises(ProductDefect, match="field 'payload' should be an even-length hex string"):
        client.create_dropoff_token(TOWER, 1401)
    body = token_json()
    body["expires"] = "tomorrow"
    harbor.then(answer(201, body))
    with pytest.raises(ProductDefect, match="field 'expires' should be an RFC 3339 date-time"):
        client.create_dropoff_token(TOWER, 1401)


def test_non_json_success_is_a_defect(client: HarborClient, harbor: FakeHarbor) -> None:
    """A 200 whose body is not JSON is a response-shape defect."""
    harbor.then(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(ProductDefect, match="not JSON"):
        client.list_lockers(TOWER)


def test_unknown_fields_are_ignored(client: HarborClient, harbor: FakeHarbor) -> None:
    """Fields the document does not name are tolerated: it lists what a consumer relies on."""
    body = locker_json() | {"extra": {"anything": 1}}
    harbor.then(answer(200, body))
    assert client.get_locker(TOWER, 1401).id == 1401


# -- error shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "reason"),
    [(400, BadRequest, "Bad Request"), (403, Forbidden, "Forbidden"), (409, Conflict, "Conflict")],
)
def test_simple_error_shape(
    client: HarborClient, harbor: FakeHarbor, status: int, error: type[HarborAPIError], reason: str
) -> None:
    """``{"detail": "..."}`` becomes the typed error with method, path, status and detail."""
    harbor.then(answer(status, {"detail": "the locker is reserved, not available"}))
    with pytest.raises(error) as caught:
        client.reserve(TOWER, 1401, 60)
    path = f"/api/v1/towers/{TOWER}/lockers/1401/reservations"
    assert str(caught.value) == f"POST {path} answered {status} {reason}: the locker is reserved, not available"
    assert (caught.value.method, caught.value.path, caught.value.status_code) == ("POST", path, status)


def test_validation_error_shape(client: HarborClient, harbor: FakeHarbor) -> None:
    """FastAPI's list of field errors becomes ValidationFailed naming each field."""
    detail = [
        {"loc": ["body", "duration"], "msg": "Input should be less than or equal to 86400", "type": "less_than_equal"}
    ]
    harbor.then(answer(422, {"detail": detail}))
    with pytest.raises(ValidationFailed) as caught:
        client.reserve(TOWER, 1401, 999_999)
    assert caught.value.errors == detail
    expected = "422 Unprocessable Entity: body.duration: Input should be less than or equal to 86400"
    assert str(caught.value).endswith(expected)


def test_error_without_json_body(client: HarborClient, harbor: FakeHarbor) -> None:
    """An error answer that is not JSON still says what the server sent."""
    harbor.then(lambda request: httpx.Response(418, text="I'm a teapot"))
    with pytest.raises(HarborAPIError, match="answered 418 I'm a teapot: I'm a teapot"):
        client.list_lockers(TOWER)


# -- the production guard ------------------------------------------------------------------------


def test_production_write_is_refused_before_sending() -> None:
    """Against production without the opt-in, a write raises UsageError and sends nothing."""
    harbor = FakeHarbor()
    settings = load_settings(
        {"target": "production"}, environ={"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "prod-secret"}
    )
    with HarborClient(settings, transport=httpx.MockTransport(harbor)) as client:
        with pytest.raises(UsageError, match="refusing to reserve a locker on production"):
            client.reserve(TOWER, 1401)
        harbor.then(answer(200, [locker_json()]))
        assert len(client.list_lockers(TOWER)) == 1  # reads are fine
    assert [r.method for r in harbor.requests] == ["GET"]


def test_production_write_with_opt_in_is_sent() -> None:
    """With the opt-in, a production write goes through."""
    harbor = FakeHarbor().then(answer(200, locker_json()))
    settings = load_settings(
        {"target": "production", "allow_production_writes": True},
        environ={"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "prod-secret"},
    )
    with HarborClient(settings, transport=httpx.MockTransport(harbor)) as client:
        client.release_locker(TOWER, 1401)
    assert harbor.requests[0].method == "POST"


# -- the holds hook ------------------------------------------------------------------------------


def test_holds_see_create_before_and_after(client: HarborClient, harbor: FakeHarbor) -> None:
    """A create call announces its hold before sending and reports the result after."""
    log = HoldLog()
    seen_pending: list[tuple[Hold, ...]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen_pending.append(log.pending)
        return httpx.Response(201, json=token_json())

    harbor.then(respond)
    client.session.holds = log
    token = client.create_dropoff_token(TOWER, 1401, duration=120)
    expected = Hold(HoldAction.CREATE, HoldKind.DROPOFF_TOKEN, TOWER, 1401, duration=120)
    assert seen_pending == [(expected,)]
    assert log.pending == ()
    assert [(r.hold, r.result, r.ok) for r in log.records] == [(expected, token, True)]


def test_holds_see_failures(client: HarborClient, harbor: FakeHarbor) -> None:
    """A create that fails is reported to the hook with its error."""
    log = HoldLog()
    client.session.holds = log
    harbor.then(answer(409, {"detail": "held"}))
    with pytest.raises(Conflict):
        client.reserve(TOWER, 1401)
    [record] = log.records
    assert record.hold.kind is HoldKind.RESERVATION
    assert isinstance(record.error, Conflict)
    assert record.result is None


def test_holds_see_release_and_cancel(client: HarborClient, harbor: FakeHarbor) -> None:
    """Giving back (cancel, release) passes through the hook too."""
    log = HoldLog()
    client.session.holds = log
    harbor.then(answer(200, locker_json()), answer(200, locker_json()))
    client.cancel_reservation(TOWER, 1401, 5)
    client.release_locker(TOWER, 1401)
    assert [(r.hold.action, r.hold.reservation_id) for r in log.records] == [
        (HoldAction.CANCEL, 5),
        (HoldAction.RELEASE, None),
    ]


def test_a_hook_that_refuses_stops_the_call(client: HarborClient, harbor: FakeHarbor) -> None:
    """If the hook cannot record a hold (a ledger error), nothing is created."""

    class Full(HoldLog):
        def before(self, hold: Hold) -> None:
            raise UsageError("the ledger is read-only")

    client.session.holds = Full()
    with pytest.raises(UsageError, match="read-only"):
        client.reserve(TOWER, 1401)
    assert harbor.requests == []


def test_reads_do_not_touch_holds(client: HarborClient, harbor: FakeHarbor) -> None:
    """Reads announce nothing."""
    log = HoldLog()
    client.session.holds = log
    harbor.then(answer(200, [locker_json()]))
    client.list_lockers(TOWER)
    assert log.records == () and log.pending == ()


def test_open_request_and_locations(client: HarborClient, harbor: FakeHarbor, policy: RetryPolicy) -> None:
    """Locker open requests and locations parse from their camelCase bodies."""
    location = {
        "id": 1,
        "name": "Harness Virtual Location",
        "lat": 40.0,
        "lon": -74,
        "address1": "1 Test St",
        "city": "Testville",
        "state": "NY",
        "zip": "10001",
        "country": "US",
        "accessHours": {"monday": ["08:00-20:00"]},
        "timezone": "America/New_York",
    }
    request = {"id": 3, "requestType": "dropoff", "lockerId": 1401, "towerId": TOWER, "linkToken": "link-secret-xyz"}
    harbor.then(answer(200, [location]), answer(201, request))
    [loc] = client.list_locations(skip=0, limit=5)
    assert loc.access_hours == {"monday": ("08:00-20:00",)}
    assert harbor.requests[-1].url.params == httpx.QueryParams({"skip": "0", "limit": "5"})
    opened = client.create_dropoff_request(1, 1)
    assert opened.request_type is TokenKind.DROPOFF
    assert "link-secret-xyz" not in repr(opened)
    assert harbor.body()["lockerTypeId"] == 1
