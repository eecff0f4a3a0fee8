"""Creates under the SDK's retry policy: a retried create that meets itself, and the documented success code."""

from __future__ import annotations

import httpx
import pytest

from harness.api import AnswerLost, HarborClient, HoldAction, HoldKind, HoldLog, RetryPolicy
from harness.assumptions import Assumed, findings, observing
from harness.config import Settings
from harness.errors import Conflict, ProductDefect, TargetUnreachable

from .harbor_double import TOWER, FakeHarbor, Sleeps, answer, fail, locker_json

RESERVE_PATH = f"/api/v1/towers/{TOWER}/lockers/1401/reservations"
EXPIRES = "2030-01-01T00:00:00+00:00"


def reservation_json(reservation_id: int = 7) -> dict[str, object]:
    return {
        "id": reservation_id,
        "towerId": TOWER,
        "lockerId": 1401,
        "duration": 60,
        "expires": EXPIRES,
        "locker": locker_json(status="reserved", status_id=2),
    }


def token_json() -> dict[str, object]:
    return {
        "id": 9,
        "tower_id": TOWER,
        "locker": locker_json(status="rented", status_id=3),
        "payload": "a1b2",
        "payload_auth": "c3d4e5f6a7b8",
        "expires": EXPIRES,
    }


@pytest.fixture
def log() -> HoldLog:
    return HoldLog()


@pytest.fixture
def logged(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy, log: HoldLog) -> HarborClient:
    return HarborClient(settings, transport=httpx.MockTransport(harbor), retry=policy, holds=log)


def calls(harbor: FakeHarbor) -> list[str]:
    return [f"{request.method} {request.url.path}" for request in harbor.requests]


def test_reserve_that_landed_unanswered_is_given_back_and_made_again(
    logged: HarborClient, harbor: FakeHarbor, log: HoldLog
) -> None:
    """A reserve whose answer was lost and whose retry met its own reservation (409) is recovered:
    the caller's reservation is recorded, released, and the reserve made once more."""
    harbor.then(
        fail(httpx.ReadTimeout),
        answer(409, {"detail": "the locker is reserved, not available"}),
        answer(200, [locker_json(status="reserved", status_id=2)]),  # assigned-lockers: it is ours
        answer(200, locker_json()),  # release: available again
        answer(201, reservation_json(8)),
    )
    reservation = logged.reserve(TOWER, 1401, 60)
    assert reservation.id == 8
    assert calls(harbor) == [
        f"POST {RESERVE_PATH}",
        f"POST {RESERVE_PATH}",
        "GET /api/v1/users/me/assigned-lockers",
        f"POST /api/v1/towers/{TOWER}/lockers/1401/release-locker",
        f"POST {RESERVE_PATH}",
    ]
    records = [(r.hold.action, r.hold.kind, r.ok) for r in log.records]
    assert records == [
        (HoldAction.CREATE, HoldKind.RESERVATION, True),  # the lost one, learnt from assigned-lockers
        (HoldAction.RELEASE, HoldKind.LOCKER, True),
        (HoldAction.CREATE, HoldKind.RESERVATION, True),
    ]
    assert log.pending == ()


def test_refusal_after_a_retry_is_believed_when_the_locker_is_not_ours(
    logged: HarborClient, harbor: FakeHarbor, log: HoldLog
) -> None:
    """If the caller does not hold the locker, the 409 after a retry is the target's word: Conflict."""
    harbor.then(fail(httpx.RemoteProtocolError), answer(409, {"detail": "held"}), answer(200, []))
    with pytest.raises(Conflict):
        logged.reserve(TOWER, 1401, 60)
    [record] = log.records
    assert isinstance(record.error, Conflict)


def test_refusal_after_a_connect_error_needs_no_look(logged: HarborClient, harbor: FakeHarbor) -> None:
    """A connect error never reached the target: the 409 after it is believed at once."""
    harbor.then(fail(httpx.ConnectError), answer(409, {"detail": "held"}))
    with pytest.raises(Conflict):
        logged.reserve(TOWER, 1401, 60)
    assert len(harbor.requests) == 2


def test_token_that_may_have_landed_is_recorded_as_unknown(
    logged: HarborClient, harbor: FakeHarbor, log: HoldLog
) -> None:
    """A token create refused after a 5xx, on a locker the caller holds: outcome unknown, refusal kept."""
    harbor.then(
        answer(502),
        answer(409, {"detail": "the door is open"}),
        answer(200, [locker_json(status="rented", status_id=3)]),
    )
    with pytest.raises(Conflict) as caught:
        logged.create_dropoff_token(TOWER, 1401, 60)
    assert "may have landed" in caught.value.__notes__[0]
    [record] = log.records
    assert isinstance(record.error, AnswerLost)


def test_unreadable_holdings_leave_the_outcome_unknown(logged: HarborClient, harbor: FakeHarbor, log: HoldLog) -> None:
    """When assigned-lockers cannot be read, the refusal stands and the hold is of unknown outcome."""
    harbor.then(fail(httpx.ReadError), answer(409, {"detail": "held"}), answer(404, {"detail": "Not Found"}))
    with pytest.raises(Conflict) as caught:
        logged.reserve(TOWER, 1401, 60)
    assert "could not be read" in caught.value.__notes__[0]
    assert isinstance(log.records[0].error, AnswerLost)


def test_a_create_answered_200_instead_of_201_is_read_and_observed(logged: HarborClient, harbor: FakeHarbor) -> None:
    """201 for a create is our guess ([I]): a 200 is read, and recorded as what the target showed."""
    harbor.then(answer(200, reservation_json()))
    with observing() as seen:
        reservation = logged.reserve(TOWER, 1401, 60)
    assert reservation.locker_id == 1401
    [finding] = findings(seen.entries(), Assumed())
    assert (finding.assumption, finding.seen, finding.adopt) == ("create_status", "200", "create_status = 200")
    assert finding.where == f"POST /api/v1/towers/{TOWER}/lockers/1401/reservations answered 200"


def test_a_read_answered_203_is_a_defect(client: HarborClient, harbor: FakeHarbor) -> None:
    """A read the document answers with 200 must not answer another 2xx."""
    harbor.then(answer(203, [locker_json()]))
    with pytest.raises(ProductDefect, match="the API document gives 200"):
        client.list_lockers(TOWER)


def test_in_process_dropped_connection_is_a_transport_error(
    settings: Settings, harbor: FakeHarbor, sleeps: Sleeps
) -> None:
    """An in-process app's ConnectionError is retried and ends as TargetUnreachable, never escaping as is."""

    def dropped(request: httpx.Request) -> httpx.Response:
        raise ConnectionAbortedError("the sandbox dropped the connection")

    policy = RetryPolicy(sleep=sleeps)
    with (
        HarborClient(settings, transport=httpx.MockTransport(dropped), retry=policy) as client,
        pytest.raises(TargetUnreachable, match="RemoteProtocolError"),
    ):
        client.authenticate()
    assert sleeps.seconds == [1.0, 2.0]
