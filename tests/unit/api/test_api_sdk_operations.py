"""The password logins, the BLE services, a tower's configuration and the event reset, as the client asks them."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID

import httpx
import pytest

from harness.api import AsyncHarborClient, BleService, HarborClient, LoginToken, Tower, TowerConfiguration
from harness.config import Settings, load_settings
from harness.errors import BadRequest, ProductDefect, UsageError
from harness.redaction import MASK, Secret

from .harbor_double import TOWER, FakeHarbor, answer

NUS = "6E400001-B5A3-F393-E0A9-E50E24DCCA9E"
PASSWORD = "correct-horse-battery"


def tower_json(**changes: Any) -> dict[str, Any]:
    return {
        "id": TOWER,
        "name": "Tower 14",
        "description": "bench",
        "systemId": 1,
        "towerModelId": 2,
        "locationId": 3,
        "pinCode": "4321",
        "accessModeId": 1,
        "isForTest": True,
    } | changes


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("login_access_token", "/api/v1/login/access-token", {"grant_type": ["password"]}),
        ("login_sdk_access_token", "/sdk/v1/login/access-token", {}),
    ],
)
def test_password_login_is_a_form_without_a_bearer_token(
    client: HarborClient, harbor: FakeHarbor, method: str, path: str, form: dict[str, list[str]]
) -> None:
    """A password login posts username and password form-encoded, carries no bearer token and fetches none."""
    harbor.then(answer(200, {"access_token": "login-token-1", "token_type": "bearer"}))
    token = getattr(client, method)("courier@example.com", Secret(PASSWORD))
    assert isinstance(token, LoginToken) and token.access_token.reveal() == "login-token-1"
    sent = harbor.requests[-1]
    assert sent.url.path == path and "authorization" not in sent.headers
    assert sent.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.content.decode()) == {"username": ["courier@example.com"], "password": [PASSWORD]} | form
    assert harbor.token_requests == []  # no client-credentials token was needed
    assert client.session.redactor.text(f"password={PASSWORD} token login-token-1") == f"password={MASK} token {MASK}"


def test_password_login_without_token_type_is_a_defect(client: HarborClient, harbor: FakeHarbor) -> None:
    """The login's ``token_type`` is seen [S]: unlike login/authorize's, an answer without it is a defect."""
    harbor.then(answer(200, {"access_token": "login-token-1"}))
    with pytest.raises(ProductDefect, match="token_type"):
        client.login_access_token("courier@example.com", PASSWORD)


def test_password_login_refused_is_a_bad_request(client: HarborClient, harbor: FakeHarbor) -> None:
    """Refused credentials (400, as FastAPI's password login [I]) are Harbor's answer, named with its detail."""
    harbor.then(answer(400, {"detail": "Incorrect email or password"}))
    with pytest.raises(BadRequest, match="Incorrect email or password"):
        client.login_sdk_access_token("courier@example.com", PASSWORD)


def test_ble_services_and_configuration_are_read(client: HarborClient, harbor: FakeHarbor) -> None:
    """The services' UUIDs read in any case; a configuration's commands are hex strings of the tower asked."""
    harbor.then(
        answer(200, [{"name": "Nordic UART Service", "uuid": NUS.lower()}]),
        answer(200, {"towerId": TOWER.lower(), "commands": ["a1b2", ""]}),
    )
    assert client.ble_services() == [BleService("Nordic UART Service", UUID(NUS))]
    assert client.tower_configuration(TOWER) == TowerConfiguration(TOWER, ("a1b2", ""))
    assert harbor.token_requests[0]["scope"] == ["tower_access"]


@pytest.mark.parametrize(
    ("body", "field"),
    [([{"name": "UART", "uuid": "not-a-uuid"}], "[0].uuid"), ({"towerId": TOWER, "commands": ["xyz"]}, "commands[0]")],
)
def test_bad_services_or_configuration_are_defects(
    client: HarborClient, harbor: FakeHarbor, body: Any, field: str
) -> None:
    """A service whose uuid is no UUID, a command that is not hex: shape defects naming the field."""
    harbor.then(answer(200, body))
    call = client.ble_services if isinstance(body, list) else lambda: client.tower_configuration(TOWER)
    with pytest.raises(ProductDefect, match=re.escape(f"field '{field}'")):
        call()


def test_reset_events_sends_the_reason_and_reads_the_tower(client: HarborClient, harbor: FakeHarbor) -> None:
    """The reset posts {reason} with an SDK token and answers the Tower; its PIN stays out of repr."""
    harbor.then(answer(200, tower_json()))
    tower = client.reset_tower_events(TOWER, "events out of step")
    assert isinstance(tower, Tower) and (tower.id, tower.location_id, tower.is_for_test) == (TOWER, 3, True)
    assert harbor.body() == {"reason": "events out of step"}
    assert "4321" not in repr(tower)


def test_reset_events_is_a_write_refused_on_production(harbor: FakeHarbor) -> None:
    """Resetting a tower's events changes Harbor's side: refused on production without the opt-in."""
    settings = load_settings({"target": "production"}, environ={"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "s"})
    with (
        HarborClient(settings, transport=httpx.MockTransport(harbor)) as client,
        pytest.raises(UsageError, match="reset a tower's events"),
    ):
        client.reset_tower_events(TOWER, "why")
    assert harbor.requests == []


def test_the_async_client_asks_the_same(settings: Settings, harbor: FakeHarbor) -> None:
    """The async client's login and reset send what the blocking client's do."""
    harbor.then(answer(200, {"access_token": "login-token-2", "token_type": "Bearer"}), answer(200, tower_json()))

    async def both() -> tuple[LoginToken, Tower]:
        async with AsyncHarborClient(settings, transport=httpx.MockTransport(harbor)) as client:
            return await client.login_access_token("u", PASSWORD), await client.reset_tower_events(TOWER, "why")

    token, tower = asyncio.run(both())
    assert token.token_type == "Bearer" and tower.id == TOWER
    assert "authorization" not in harbor.requests[0].headers and "authorization" in harbor.requests[1].headers
