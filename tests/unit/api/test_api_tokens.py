"""Bearer tokens: client credentials to Keycloak, cached per scope, renewed before they expire."""

from __future__ import annotations

import httpx
import pytest

from harness.api import CredentialsRefused, HarborClient, RetryPolicy, Scope
from harness.config import Credentials, Secret, Settings, load_settings
from harness.errors import ExitCode, ProductDefect, Unauthorized, UsageError
from harness.redaction import MASK, Redactor

from .harbor_double import TOWER, FakeHarbor, Sleeps, answer, locker_json

OK = answer(200, [locker_json()])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy, **kwargs: object) -> HarborClient:
    return HarborClient(settings, transport=httpx.MockTransport(harbor), retry=policy, **kwargs)  # type: ignore[arg-type]


def test_client_credentials_form(client: HarborClient, harbor: FakeHarbor) -> None:
    """The token request is a client-credentials form with the service_provider scope (reference 2.1)."""
    harbor.then(OK)
    client.list_lockers(TOWER)
    assert harbor.token_requests == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["test-client"],
            "client_secret": ["test-client-secret"],
            "scope": ["service_provider"],
        }
    ]
    assert harbor.bearer() == "Bearer bearer-token-0001"


def test_token_is_cached(client: HarborClient, harbor: FakeHarbor) -> None:
    """Many calls share one token while it is fresh."""
    harbor.default = OK
    for _ in range(5):
        client.list_lockers(TOWER)
    assert harbor.issued == 1


def test_token_renewed_before_expiry(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy) -> None:
    """A 300 s token is renewed 30 s before it expires, never used past it."""
    clock = Clock()
    harbor.default = OK
    with make(settings, harbor, policy, clock=clock) as client:
        client.list_lockers(TOWER)
        clock.now += 269
        client.list_lockers(TOWER)
        assert harbor.issued == 1
        clock.now += 1  # 270 s: inside the 30 s margin
        client.list_lockers(TOWER)
        assert harbor.issued == 2
        assert harbor.bearer() == "Bearer bearer-token-0002"


def test_short_lived_token_renewed_at_half_life(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy) -> None:
    """A token shorter than twice the margin is renewed at half its life."""
    clock = Clock()
    harbor.default = OK
    harbor.token_lifetime = 20
    with make(settings, harbor, policy, clock=clock) as client:
        client.list_lockers(TOWER)
        clock.now += 9.9
        client.list_lockers(TOWER)
        clock.now += 0.2
        client.list_lockers(TOWER)
    assert harbor.issued == 2


def test_expired_token_401_renews_once(client: HarborClient, harbor: FakeHarbor) -> None:
    """A 401 saying the token expired fetches a new token and repeats the call once."""
    harbor.then(answer(401, {"detail": "Token has expired"}), OK)
    assert len(client.list_lockers(TOWER)) == 1
    assert harbor.issued == 2
    assert harbor.bearer(0) == "Bearer bearer-token-0001"
    assert harbor.bearer(1) == "Bearer bearer-token-0002"


def test_expired_twice_is_unauthorized(client: HarborClient, harbor: FakeHarbor) -> None:
    """The renewal happens once per call: a second expiry 401 is raised."""
    harbor.then(answer(401, {"detail": "Token has expired"}), answer(401, {"detail": "Token has expired"}))
    with pytest.raises(Unauthorized):
        client.list_lockers(TOWER)
    assert harbor.issued == 2


def test_other_401_is_not_retried(client: HarborClient, harbor: FakeHarbor) -> None:
    """A 401 for another reason is Unauthorized at once, with no new token."""
    harbor.then(answer(401, {"detail": "Not authenticated"}))
    with pytest.raises(Unauthorized, match="401 Unauthorized: Not authenticated"):
        client.list_lockers(TOWER)
    assert harbor.issued == 1


def test_sdk_calls_use_their_own_scope(client: HarborClient, harbor: FakeHarbor) -> None:
    """/sdk/v1 calls get a tower_access token, cached apart from the service_provider one."""
    harbor.then(OK, answer(200, []))
    client.list_lockers(TOWER)
    client.tower_commands(TOWER)
    assert [request["scope"] for request in harbor.token_requests] == [["service_provider"], ["tower_access"]]
    assert harbor.bearer() == "Bearer bearer-token-0002"


def test_authenticate_fetches_a_token_only(client: HarborClient, harbor: FakeHarbor) -> None:
    """authenticate() fetches the token and sends no API call."""
    client.authenticate()
    client.authenticate(Scope.SERVICE_PROVIDER)
    assert harbor.issued == 1
    assert harbor.requests == []


@pytest.mark.parametrize("status", [400, 401, 403])
def test_wrong_credentials_are_a_usage_error(
    settings: Settings, policy: RetryPolicy, sleeps: Sleeps, status: int
) -> None:
    """The token endpoint refusing the client is CredentialsRefused: exit 2, naming the variables."""

    refusal = {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=refusal))
    with (
        HarborClient(settings, transport=transport, retry=policy) as client,
        pytest.raises(CredentialsRefused) as caught,
    ):
        client.list_lockers(TOWER)
    error = caught.value
    assert isinstance(error, Unauthorized) and isinstance(error, UsageError)
    assert error.exit_code is ExitCode.USAGE
    assert "refused client 'test-client'" in str(error)
    assert "Invalid client or Invalid client credentials" in str(error)
    assert "HARBOR_CLIENT_SECRET" in str(error)
    assert "test-client-secret" not in str(error)
    assert sleeps.seconds == []


def test_missing_token_endpoint_is_a_usage_error(settings: Settings, policy: RetryPolicy) -> None:
    """A target without a token endpoint (404) points at the target or HARBOR_TOKEN_URL."""
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json={"detail": "Not Found"}))
    with HarborClient(settings, transport=transport, retry=policy) as client, pytest.raises(UsageError) as caught:
        client.authenticate()
    assert "HARBOR_TOKEN_URL" in str(caught.value)
    assert not isinstance(caught.value, Unauthorized)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in": 300, "token_type": "Bearer"}, "access_token"),
        ({"access_token": "x", "token_type": "Bearer"}, "expires_in"),
        ({"access_token": "x", "expires_in": "300", "token_type": "Bearer"}, "expires_in"),
        ({"access_token": "x", "expires_in": 300, "token_type": "MAC"}, "token_type"),
    ],
)
def test_malformed_token_answer_is_a_defect(
    settings: Settings, policy: RetryPolicy, body: dict[str, object], field: str
) -> None:
    """A token answer missing or mistyping a field is a response_shape defect naming the field."""
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    with HarborClient(settings, transport=transport, retry=policy) as client, pytest.raises(ProductDefect) as caught:
        client.authenticate()
    assert caught.value.check == "response_shape"
    assert f"field {field!r}" in str(caught.value)


def test_secrets_are_registered_for_redaction(settings: Settings, harbor: FakeHarbor, policy: RetryPolicy) -> None:
    """The client secret and every bearer token the client learns are redacted from output."""
    redactor = Redactor()
    harbor.then(OK)
    with make(settings, harbor, policy, redactor=redactor) as client:
        client.list_lockers(TOWER)
    text = "secret test-client-secret token bearer-token-0001"
    assert redactor.text(text) == f"secret {MASK} token {MASK}"


def test_missing_credentials_name_the_variables(harbor: FakeHarbor) -> None:
    """A client for a target without credentials fails at construction, naming what to set."""
    settings = load_settings({"target": "sandbox"}, environ={})
    with pytest.raises(UsageError, match="set HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET"):
        HarborClient(settings, transport=httpx.MockTransport(harbor))


def test_local_target_without_url_is_a_usage_error() -> None:
    """The local target has no URL until its sandbox runs: building a client says so."""
    with pytest.raises(UsageError, match="start the virtual sandbox"):
        HarborClient(Settings(), credentials=Credentials("a", Secret("b")))


def test_secrets_in_answers_are_registered_when_parsed(
    settings: Settings, harbor: FakeHarbor, policy: RetryPolicy
) -> None:
    """payload_auth, a session seed and an SDK access token are hidden in any later text, key or no key."""
    redactor = Redactor()
    locker = locker_json(status="rented", status_id=3)
    harbor.then(
        answer(
            201,
            {
                "id": 3,
                "tower_id": TOWER,
                "locker": locker,
                "payload": "a1b2",
                "payload_auth": "feedfacecafe",
                "expires": "2030-01-01T00:00:00+00:00",
            },
        ),
        answer(
            201, {"payload": "aa", "payload_auth": "0badc0ffee00", "session_seed": "5eed5eed5eed", "tower_id": TOWER}
        ),
        answer(200, {"access_token": "sdk-access-token-value", "token_type": "bearer"}),
    )
    with make(settings, harbor, policy, redactor=redactor) as client:
        client.create_dropoff_token(TOWER, 1401)
        client.create_session_token(TOWER, "1.2.3")
        client.authorize_sdk_user("courier-1")
    text = "feedfacecafe 0badc0ffee00 5eed5eed5eed sdk-access-token-value"
    assert redactor.text(text) == " ".join([MASK] * 4)
