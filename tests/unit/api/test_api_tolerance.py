"""Tolerant reading where the registry says we guessed: each answer is read, and what it showed is a finding.

Every test here pairs a plausible answer of the real API that differs from an [I]/[G] guess with
the finding it must give (the value seen, the request, the line that adopts it), and the same
answer with that line adopted with no finding at all. Facts ([S]) stay strict.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from harness.api import HarborClient, RetryPolicy
from harness.assumptions import Assumed, findings, observing
from harness.config import Settings
from harness.errors import ExitCode, ProductDefect
from harness.model import LockerStatus, TokenKind

from .harbor_double import TOWER, FakeHarbor, answer, locker_json


def token_json(**changes: Any) -> dict[str, Any]:
    body = {
        "id": 11,
        "tower_id": TOWER,
        "locker": locker_json(status="rented", status_id=3),
        "payload": "a1b2c3",
        "payload_auth": "d4e5f6",
        "expires": "2026-11-28T05:00:00+00:00",
        "client_info": "",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def open_request_json(**changes: Any) -> dict[str, Any]:
    body = {"id": 5, "requestType": "dropoff", "lockerId": 1401, "towerId": TOWER, "linkToken": "locker-open://x"}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def _client(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy, assume: Assumed | None = None) -> HarborClient:
    chosen = settings if assume is None else dataclasses.replace(settings, assume=assume)
    return HarborClient(chosen, transport=httpx.MockTransport(harbor), retry=policy)


def _adopted(**values: object) -> Assumed:
    return Assumed.of(values, "[assume] of the test", {})


def test_a_token_without_id_is_read_and_refutes_token_id_field(client: HarborClient, harbor: FakeHarbor) -> None:
    """A token answer without ``id`` is read (id None) and the finding names the request and the line."""
    harbor.then(answer(201, token_json(id=None)))
    with observing() as seen:
        token = client.create_dropoff_token(TOWER, 1401)
    assert token.id is None and token.payload == "a1b2c3"
    [finding] = findings(seen.entries(), Assumed())
    assert (finding.assumption, finding.mark) == ("token_id_field", "[G]")
    assert (finding.assumed, finding.seen) == ("true", "false")
    assert finding.adopt == "token_id_field = false" and finding.env == "HARBOR_ASSUME_TOKEN_ID_FIELD=false"
    assert finding.where == f"POST /api/v1/towers/{TOWER}/lockers/1401/dropoff-locker-tokens"


def test_expires_without_offset_is_read_as_utc(client: HarborClient, harbor: FakeHarbor) -> None:
    """``expires`` without an offset is the same instant in UTC, and refutes expires_offset."""
    harbor.then(answer(201, token_json(expires="2026-11-28T05:00:00")))
    with observing() as seen:
        token = client.create_dropoff_token(TOWER, 1401)
    assert token.expires.isoformat() == "2026-11-28T05:00:00+00:00"
    assert [f.adopt for f in findings(seen.entries(), Assumed())] == ["expires_offset = false"]


def test_an_open_request_without_request_type_takes_the_kind_asked(client: HarborClient, harbor: FakeHarbor) -> None:
    """A drop-off request's answer without ``requestType`` is a drop-off request all the same."""
    harbor.then(answer(201, open_request_json(requestType=None)))
    with observing() as seen:
        request = client.create_dropoff_request(1, 1)
    assert request.request_type is TokenKind.DROPOFF
    assert [f.assumption for f in findings(seen.entries(), Assumed())] == ["request_type_field"]


def test_an_open_request_of_the_wrong_kind_is_a_defect(client: HarborClient, harbor: FakeHarbor) -> None:
    """Where the answer does say, it must say what was asked: a pickup answer to a drop-off request breaks it."""
    harbor.then(answer(201, open_request_json(requestType="pickup")))
    with pytest.raises(ProductDefect, match="should be dropoff, the request asked for"):
        client.create_dropoff_request(1, 1)


def test_a_token_endpoint_without_token_type_is_bearer(
    settings: Settings, harbor: FakeHarbor, policy: RetryPolicy
) -> None:
    """Keycloak's answer without ``token_type`` still gives a bearer token; the guess is refuted."""
    harbor.token_type = None
    harbor.then(answer(200, [locker_json()]))
    with _client(settings, harbor, policy) as client, observing() as seen:
        assert len(client.list_lockers(TOWER)) == 1
    assert [f.assumption for f in findings(seen.entries(), Assumed())] == ["token_type_field"]
    assert harbor.bearer().startswith("Bearer bearer-token-")


def test_shifted_status_ids_are_read_by_name(client: HarborClient, harbor: FakeHarbor) -> None:
    """Status ids other than ours map by name; one finding gathers every id seen into one line."""
    lockers = [
        locker_json(1401, "available", 1),
        locker_json(1402, "reserved", 12),
        locker_json(1403, "occupied", 14),
        locker_json(1404, "out_of_service", 16),
    ]
    harbor.then(answer(200, lockers))
    with observing() as seen:
        shown = [locker.status for locker in client.list_lockers(TOWER)]
    assert shown == [LockerStatus.AVAILABLE, LockerStatus.RESERVED, LockerStatus.OCCUPIED, LockerStatus.OUT_OF_SERVICE]
    [finding] = findings(seen.entries(), Assumed())
    assert finding.adopt == "status_ids = { reserved = 12, occupied = 14, out_of_service = 16 }"
    assert finding.assumed == "{ reserved = 2, occupied = 4, out_of_service = 6 }"
    assert finding.env == "HARBOR_ASSUME_STATUS_IDS=reserved=12,occupied=14,out_of_service=16"


def test_a_status_name_with_spaces_is_out_of_service(client: HarborClient, harbor: FakeHarbor) -> None:
    """``out of service`` is our ``out_of_service`` spelt another way: read so, with the line that adopts it."""
    harbor.then(answer(200, locker_json(status="out of service", status_id=6)))
    with observing() as seen:
        assert client.get_locker(TOWER, 1401).status is LockerStatus.OUT_OF_SERVICE
    [finding] = findings(seen.entries(), Assumed())
    assert finding.adopt == 'status_names = { out_of_service = "out of service" }'


def test_an_unknown_status_name_is_kept_and_shown(client: HarborClient, harbor: FakeHarbor) -> None:
    """A status nobody registered stays in the listing under its own name; the finding says what to do."""
    harbor.then(answer(200, [locker_json(1401), locker_json(1402, "maintenance", 7)]))
    with observing() as seen:
        lockers = client.list_lockers(TOWER)
    unknown = lockers[1].status
    assert unknown.wire_name == "maintenance" and not unknown.is_known
    assert unknown not in (LockerStatus.AVAILABLE, *LockerStatus)
    [finding] = findings(seen.entries(), Assumed())
    assert finding.assumption == "status_names" and "'maintenance' is one of the six" in finding.adopt


def test_a_seen_status_spelt_otherwise_is_a_defect(client: HarborClient, harbor: FakeHarbor) -> None:
    """rented is spelt so in Harbor's own webhooks [S]: another spelling breaks what is seen."""
    harbor.then(answer(200, locker_json(status="Rented", status_id=3)))
    with pytest.raises(ProductDefect, match="rented is spelt 'Rented'"):
        client.get_locker(TOWER, 1401)


@pytest.mark.parametrize(
    ("answer_given", "adopted"),
    [
        (answer(200, token_json(id=None)), {"token_id_field": False, "create_status": 200}),
        (answer(201, token_json(expires="2026-11-28T05:00:00")), {"expires_offset": False}),
        (answer(201, token_json(locker=locker_json(status="rented", status_id=13))), {"status_ids": {"rented": 13}}),
    ],
    ids=["no id, 200", "naive expires", "rented 13"],
)
def test_an_adopted_value_leaves_no_finding(
    settings: Settings, harbor: FakeHarbor, policy: RetryPolicy, answer_given: Any, adopted: dict[str, object]
) -> None:
    """With the value seen adopted in [assume], the same answer gives no finding."""
    harbor.then(answer_given)
    assumed = _adopted(**adopted)
    with _client(settings, harbor, policy, assumed) as client, observing() as seen:
        client.create_dropoff_token(TOWER, 1401)
    assert findings(seen.entries(), assumed) == []
    assert findings(seen.entries(), Assumed()) != []  # without the line, the same answer is a finding


def test_an_adopted_value_the_target_contradicts_is_refuted_in_turn(
    settings: Settings, harbor: FakeHarbor, policy: RetryPolicy
) -> None:
    """Adopting 200 and then meeting 201 is a finding too: what is in effect is what is judged."""
    harbor.then(answer(201, token_json()))
    assumed = _adopted(create_status=200)
    with _client(settings, harbor, policy, assumed) as client, observing() as seen:
        client.create_dropoff_token(TOWER, 1401)
    [finding] = findings(seen.entries(), assumed)
    assert (finding.assumed, finding.seen, finding.adopt) == ("200", "201", "create_status = 201")


@pytest.mark.parametrize(
    ("status", "error"), [(401, "invalid_client"), (400, "unauthorized_client"), (401, "unauthorized_client")]
)
def test_both_keycloak_refusals_are_credentials_refused(
    settings: Settings, harbor: FakeHarbor, policy: RetryPolicy, status: int, error: str
) -> None:
    """Keycloak says invalid_client, or in older releases unauthorized_client: both are exit 2, named."""
    from harness.api import CredentialsRefused

    harbor.refuse = (status, error)
    with _client(settings, harbor, policy) as client, pytest.raises(CredentialsRefused) as caught:
        client.list_lockers(TOWER)
    assert caught.value.exit_code is ExitCode.USAGE
    assert error in str(caught.value) and "HARBOR_CLIENT_SECRET" in str(caught.value)
