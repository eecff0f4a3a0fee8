"""The [S] routes Harbor's material shows beside the delivery flow: the password logins, the SDK's
configuration, reset-events and services, and the interactive pages (reference sections 2, 3, 9.7, 12)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.ble.protocol import NUS_SERVICE_UUID
from harness.sim import VirtualSandbox

from .sandbox_parties import SECRETS, TOWER, Party, fetch_token

LOGINS = ("/api/v1/login/access-token", "/sdk/v1/login/access-token")


@pytest.fixture
def sdk(sandbox: VirtualSandbox) -> Iterator[httpx.Client]:
    token = fetch_token(sandbox.url, scope="tower_access")
    with httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        yield client


def test_api_password_login_gives_a_service_provider_token(sandbox: VirtualSandbox) -> None:
    """The legacy login: an identity's client id and secret as username and password give a token the
    service-provider API takes; ``grant_type`` may be given (``password``) or left out."""
    form = {"username": "demo-provider", "password": SECRETS["demo-provider"], "grant_type": "password"}
    answer = httpx.post(sandbox.url + LOGINS[0], data=form, timeout=5)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body.keys() == {"access_token", "token_type"} and body["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5) as http:
        assert Party("demo-provider", http).reserve(1401).status_code == 201
    del form["grant_type"]
    assert httpx.post(sandbox.url + LOGINS[0], data=form, timeout=5).status_code == 200


def test_sdk_password_login_gives_an_sdk_token(sandbox: VirtualSandbox) -> None:
    """``/sdk/v1/login/access-token`` gives an SDK token: the SDK API takes it, the service-provider API does not."""
    form = {"username": "second-provider", "password": SECRETS["second-provider"]}
    token = httpx.post(sandbox.url + LOGINS[1], data=form, timeout=5).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(sandbox.url + "/sdk/v1/services/", headers=headers, timeout=5).status_code == 200
    assert httpx.get(sandbox.url + f"/api/v1/towers/{TOWER}/lockers", headers=headers, timeout=5).status_code == 403


@pytest.mark.parametrize("path", LOGINS)
def test_password_login_refusals(sandbox: VirtualSandbox, path: str) -> None:
    """A wrong password or an unknown user is 400; a missing field or another grant type is 422, and no
    answer echoes the password."""
    wrong = httpx.post(sandbox.url + path, data={"username": "demo-provider", "password": "nope"}, timeout=5)
    assert (wrong.status_code, wrong.json()) == (400, {"detail": "Incorrect email or password"})
    unknown = httpx.post(sandbox.url + path, data={"username": "nobody", "password": "demo-secret"}, timeout=5)
    assert unknown.status_code == 400
    missing = httpx.post(sandbox.url + path, data={"password": "demo-secret"}, timeout=5)
    assert missing.status_code == 422 and "demo-secret" not in missing.text
    assert missing.json()["detail"][0]["loc"] == ["body", "username"]
    form = {"username": "demo-provider", "password": "demo-secret", "grant_type": "client_credentials"}
    other = httpx.post(sandbox.url + path, data=form, timeout=5)
    assert other.status_code == 422 and "demo-secret" not in other.text


def test_services_name_the_nordic_uart_service(sdk: httpx.Client) -> None:
    """``GET /sdk/v1/services/`` lists what a phone scans for: the towers' Nordic UART Service [S]."""
    answer = sdk.get("/sdk/v1/services/")
    assert answer.status_code == 200
    assert [service["uuid"].lower() for service in answer.json()] == [NUS_SERVICE_UUID.lower()]
    assert all(isinstance(service["name"], str) and service["name"] for service in answer.json())


def test_tower_configuration_and_reset_events(sdk: httpx.Client) -> None:
    """The configuration is ``{towerId, commands}``; reset-events answers the Tower object; unknown towers 404."""
    assert sdk.get(f"/sdk/v1/towers/{TOWER.lower()}/configuration").json() == {"towerId": TOWER, "commands": []}
    tower = sdk.post(f"/sdk/v1/towers/{TOWER}/reset-events", json={"reason": "bench reset"})
    assert tower.status_code == 200
    assert tower.json().keys() == {
        "id", "name", "description", "systemId", "towerModelId", "locationId", "pinCode", "accessModeId", "isForTest",
    }  # fmt: skip
    assert (tower.json()["id"], tower.json()["locationId"], tower.json()["isForTest"]) == (TOWER, 1, True)
    assert sdk.post(f"/sdk/v1/towers/{TOWER}/reset-events", json={}).status_code == 422
    assert sdk.get("/sdk/v1/towers/0100000000000099/configuration").status_code == 404
    assert sdk.post("/sdk/v1/towers/0100000000000099/reset-events", json={"reason": "x"}).status_code == 404


def test_sdk_routes_need_an_sdk_token(sandbox: VirtualSandbox) -> None:
    """Without a bearer token the SDK routes answer 401, as every ``/sdk/v1`` route but the login does."""
    assert httpx.get(sandbox.url + "/sdk/v1/services/", timeout=5).status_code == 401
    assert httpx.get(sandbox.url + f"/sdk/v1/towers/{TOWER}/configuration", timeout=5).status_code == 401


@pytest.mark.parametrize(("page", "document"), [("/docs", "/openapi.json"), ("/sdk/docs", "/sdk/openapi.json")])
def test_docs_pages_load_swagger_ui_from_the_sandbox(sandbox: VirtualSandbox, page: str, document: str) -> None:
    """``/docs`` and ``/sdk/docs`` are Swagger UI pages for their document whose script and style come
    from the sandbox itself, so they work offline."""
    html = httpx.get(sandbox.url + page, timeout=5)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert f"url: '{document}'" in html.text
    assets = [src for src in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css") if src in html.text]
    assert len(assets) == 2 and "http" not in html.text.split("<script>")[0].lower().replace("http-equiv", "")
    for asset in assets:
        served = httpx.get(sandbox.url + asset, timeout=5)
        assert served.status_code == 200 and len(served.content) > 10_000
    assert httpx.get(sandbox.url + "/docs/assets/index.html", timeout=5).status_code == 404
