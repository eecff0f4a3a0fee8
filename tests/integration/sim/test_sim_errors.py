"""Harbor's error answers: Keycloak's for the token endpoint, FastAPI's shapes for the API."""

from __future__ import annotations

import httpx
import pytest

from harness.sim import VirtualSandbox

from .sandbox_parties import OTHER_TOWER, TOKEN_PATH, TOWER, Party, fetch_token


def token_answer(sandbox: VirtualSandbox, **form: str) -> httpx.Response:
    return httpx.post(sandbox.url + TOKEN_PATH, data=form, timeout=5)


def test_token_endpoint_grants_keycloak_shaped_tokens(sandbox: VirtualSandbox) -> None:
    """Client credentials with both scopes give Keycloak's response: Bearer, 300 s, no refresh token."""
    answer = token_answer(
        sandbox, grant_type="client_credentials", client_id="demo-provider", client_secret="demo-secret",
        scope="service_provider tower_access",
    )  # fmt: skip
    assert answer.status_code == 200
    body = answer.json()
    assert body.keys() == {"access_token", "refresh_token", "refresh_expires_in", "expires_in", "token_type"}
    assert (body["refresh_token"], body["refresh_expires_in"], body["expires_in"], body["token_type"]) == (
        None, 0, 300, "Bearer",
    )  # fmt: skip
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("client_id", "client_secret"), [("demo-provider", "wrong"), ("nobody", "demo-secret"), ("", "")]
)
def test_wrong_client_credentials_are_invalid_client(
    sandbox: VirtualSandbox, client_id: str, client_secret: str
) -> None:
    """Wrong or unknown client credentials answer 401 ``invalid_client``, as Keycloak does."""
    answer = token_answer(sandbox, grant_type="client_credentials", client_id=client_id, client_secret=client_secret)
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "invalid_client",
        "error_description": "Invalid client or Invalid client credentials",
    }


def test_unsupported_grant_is_400(sandbox: VirtualSandbox) -> None:
    """A grant type other than client credentials answers 400 ``unsupported_grant_type``."""
    answer = token_answer(sandbox, grant_type="password", client_id="demo-provider", client_secret="demo-secret")
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_missing_grant_and_unknown_scope_are_400(sandbox: VirtualSandbox) -> None:
    """No grant type is ``invalid_request``; an unknown scope is ``invalid_scope``."""
    assert token_answer(sandbox, client_id="demo-provider").json()["error"] == "invalid_request"
    answer = token_answer(
        sandbox, grant_type="client_credentials", client_id="demo-provider", client_secret="demo-secret", scope="admin"
    )
    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_scope")


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic ZGVtbzpkZW1v", "Bearer a.b.c"])
def test_missing_or_invalid_bearer_is_401(sandbox: VirtualSandbox, authorization: str | None) -> None:
    """No token, a forged one or another scheme: 401 with ``{"detail"}`` and ``WWW-Authenticate``."""
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = httpx.get(f"{sandbox.url}/api/v1/towers/{TOWER}/lockers", headers=headers, timeout=5)
    assert answer.status_code == 401
    assert isinstance(answer.json()["detail"], str)
    assert answer.headers["www-authenticate"] == "Bearer"


def test_wrong_scope_is_403(sandbox: VirtualSandbox) -> None:
    """A ``tower_access`` token cannot use ``/api/v1``; a ``service_provider`` one cannot use ``/sdk/v1``."""
    sdk_only = fetch_token(sandbox.url, scope="tower_access")
    api_only = fetch_token(sandbox.url, scope="service_provider")
    lockers = f"{sandbox.url}/api/v1/towers/{TOWER}/lockers"
    session = f"{sandbox.url}/sdk/v1/towers/{TOWER}/session-token"
    body = {"duration": 60, "claims": ["developer"], "version": "1.2.3"}
    assert httpx.get(lockers, headers={"Authorization": f"Bearer {sdk_only}"}).status_code == 403
    assert httpx.post(session, json=body, headers={"Authorization": f"Bearer {api_only}"}).status_code == 403
    assert httpx.post(session, json=body, headers={"Authorization": f"Bearer {sdk_only}"}).status_code == 201


def test_sdk_token_from_authorize_reaches_the_sdk_api_only(demo: Party) -> None:
    """``login/authorize`` gives an SDK token for ``/sdk/v1``, tied to its provider; ``/api/v1`` is 403."""
    answer = demo.http.post("/api/v1/login/authorize", json={"userId": "courier-7"})
    assert answer.status_code == 200
    sdk = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    body = {"duration": 60, "claims": ["locker_delivery"], "version": "1.2.3"}
    assert demo.http.post(f"/sdk/v1/towers/{TOWER}/session-token", json=body, headers=sdk).status_code == 201
    assert demo.http.get(f"/api/v1/towers/{TOWER}/lockers", headers=sdk).status_code == 403
    checked = demo.http.post("/api/v1/login/test-token", headers=sdk).json()
    assert checked["client_id"] == "demo-provider"


def test_malformed_json_is_400(demo: Party) -> None:
    """A body that is not JSON answers 400 with a ``detail`` string, not FastAPI's 422."""
    answer = demo.http.post(
        f"/api/v1/towers/{TOWER}/lockers/1401/reservations",
        content=b'{"duration": 30',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert isinstance(answer.json()["detail"], str)


@pytest.mark.parametrize(
    "query", ["skip=1&skip=0", "limit=5&skip=0&limit=10", "skip=%5B%5D&skip=0.0"], ids=["skip", "limit", "array"]
)
def test_a_query_parameter_given_twice_is_422(demo: Party, query: str) -> None:
    """No operation takes a list in its query: a repeated parameter is refused, not last-one-wins."""
    answer = demo.http.get(f"/api/v1/locations/?{query}")
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][0] == "query"
    assert demo.http.get("/api/v1/locations/?skip=0&limit=10").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/towers/0100000000000099/lockers",
        f"/api/v1/towers/{TOWER}/lockers/9999",
        f"/api/v1/towers/{TOWER}/lockers/17501",  # a locker of the other tower
        f"/api/v1/towers/{OTHER_TOWER}/lockers/1401",
        "/api/v1/locations/9/",
        "/api/v1/locker-open-requests/12345",
    ],
)
def test_unknown_ids_are_404(demo: Party, path: str) -> None:
    """Unknown towers, lockers, locations and requests answer 404 ``{"detail"}``."""
    answer = demo.http.get(path)
    assert answer.status_code == 404
    assert isinstance(answer.json()["detail"], str)


def test_tower_ids_are_case_insensitive(demo: Party) -> None:
    """A lower-case tower id reaches the same tower; the answer carries the canonical upper-case id."""
    answer = demo.http.get("/api/v1/towers/0100000000000014/lockers/1401".lower())
    assert answer.status_code == 200 and answer.json()["towerId"] == TOWER


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("reservations", {"duration": 0}),
        ("reservations", {"duration": 86_401}),
        ("reservations", {"duration": "300"}),
        ("reservations", {}),
        ("dropoff-locker-tokens", {"client_info": "x" * 501, "duration": 60}),
        ("dropoff-locker-tokens", {"client_info": "", "duration": 604_801}),
        ("release-locker", {"unexpected": 1}),
    ],
)
def test_out_of_bounds_fields_are_422(demo: Party, suffix: str, body: dict[str, object]) -> None:
    """Fields out of the document's bounds (or of the wrong JSON type) answer FastAPI's 422 list."""
    answer = demo.http.post(f"/api/v1/towers/{TOWER}/lockers/1401/{suffix}", json=body)
    assert answer.status_code == 422
    assert all({"loc", "msg", "type"} <= item.keys() for item in answer.json()["detail"])


def test_held_by_another_party_is_403_and_wrong_status_409(demo: Party, second: Party) -> None:
    """Only the holder may act on a held locker (403); a call its status forbids is 409."""
    assert demo.reserve(1401).status_code == 201
    assert second.token("dropoff", 1401).status_code == 403
    assert demo.token("pickup", 1401).status_code == 409
    assert demo.reserve(1412).status_code == 409  # out of service
    assert demo.http.delete(f"/api/v1/towers/{TOWER}/lockers/1401/reservations/999").status_code == 404


def test_release_body_is_absent_or_empty_never_null(demo: Party) -> None:
    """``release-locker`` takes no body or ``{}``; an explicit JSON ``null`` is 422, not "no body"."""
    path = f"/api/v1/towers/{TOWER}/lockers/1401/release-locker"
    demo.reserve(1401)
    null = demo.http.post(path, content=b"null", headers={"Content-Type": "application/json"})
    assert null.status_code == 422
    assert demo.http.post(path).status_code == 200  # no body at all


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sim/radio", '{"idle_timeout": NaN}'),
        ("/_sim/radio", '{"idle_timeout": 1e999}'),
        ("/_sim/radio", '{"connection_interval": -Infinity}'),
        ("/_sim/clock/advance", '{"seconds": NaN}'),
    ],
)
def test_a_non_finite_number_is_a_422_not_a_crash(sandbox: VirtualSandbox, path: str, body: str) -> None:
    """NaN, Infinity and 1e999 pass Python's JSON reader but no range: a 422 that names the input as
    text (a JSON answer cannot carry them), never a 500 from rendering the error."""
    answer = httpx.post(sandbox.url + path, content=body, headers={"content-type": "application/json"}, timeout=5)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["detail"]
    assert error["input"] in ("nan", "inf", "-inf"), error
