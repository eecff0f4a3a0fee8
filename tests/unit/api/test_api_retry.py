"""Retries exactly as Harbor's SDK: 3 attempts, 1 s then 2 s, only transport errors, 408 and 5xx."""

from __future__ import annotations

import httpx
import pytest

from harness.api import AsyncHarborClient, HarborClient, RetryPolicy
from harness.config import Settings, load_settings
from harness.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HarborAPIError,
    NotFound,
    RateLimited,
    ServerError,
    TargetUnreachable,
    Unauthorized,
    ValidationFailed,
)

from .harbor_double import TOWER, FakeHarbor, Sleeps, answer, fail, locker_json

OK = answer(200, [locker_json()])


@pytest.mark.parametrize(
    "first",
    [fail(httpx.ConnectError), fail(httpx.ReadTimeout), answer(408, {"detail": "timeout"}), answer(500), answer(503)],
    ids=["connect-error", "read-timeout", "408", "500", "503"],
)
def test_retryable_failure_is_retried(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps, first: object) -> None:
    """A transport error, 408 or 5xx is retried after 1 s and the second answer is used."""
    harbor.then(first, OK)  # type: ignore[arg-type]
    assert [locker.id for locker in client.list_lockers(TOWER)] == [1401]
    assert len(harbor.requests) == 2
    assert sleeps.seconds == [1.0]


def test_each_retried_attempt_is_counted_and_described(client: HarborClient, harbor: FakeHarbor) -> None:
    """A call that passed after failed attempts says what they were: the step passed, the target faltered."""
    mark = client.session.retries
    harbor.then(answer(503), fail(httpx.ConnectError), OK)
    client.list_lockers(TOWER)
    retried = client.session.retried_since(mark)
    assert client.session.retries == mark + 2 and len(retried) == 2
    assert retried[0].endswith("answered 503 Service Unavailable (attempt 1 of 3)") and retried[0].startswith("GET ")
    assert retried[1].endswith("had no answer (ConnectError) (attempt 2 of 3)")
    harbor.then(OK)
    client.list_lockers(TOWER)
    assert client.session.retried_since(client.session.retries) == ()


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (422, ValidationFailed),
    ],
)
def test_other_4xx_fails_at_once(
    client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps, status: int, error: type[HarborAPIError]
) -> None:
    """Any 4xx other than 408 and 429 fails on the first attempt, with no sleep, as its own error class."""
    harbor.then(answer(status, {"detail": "no"}))
    with pytest.raises(error) as caught:
        client.list_lockers(TOWER)
    assert type(caught.value) is error and caught.value.status_code == status and caught.value.detail == "no"
    assert len(harbor.requests) == 1
    assert sleeps.seconds == []


def test_server_error_after_three_attempts(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """Three 5xx answers make a ServerError (exit 4) after waits of 1 s and 2 s."""
    harbor.then(answer(502), answer(500), answer(503, {"detail": "maintenance"}))
    with pytest.raises(ServerError) as caught:
        client.list_lockers(TOWER)
    assert len(harbor.requests) == 3
    assert sleeps.seconds == [1.0, 2.0]
    assert caught.value.status_code == 503
    assert str(caught.value) == f"GET /api/v1/towers/{TOWER}/lockers answered 503 Service Unavailable: maintenance"


def test_unreachable_after_three_attempts(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """Three transport errors make TargetUnreachable naming the host and the error."""
    harbor.then(fail(), fail(), fail(httpx.ConnectTimeout))
    with pytest.raises(TargetUnreachable) as caught:
        client.list_lockers(TOWER)
    assert sleeps.seconds == [1.0, 2.0]
    assert "no answer from https://harbor.test after 3 attempt(s)" in str(caught.value)
    assert "ConnectTimeout" in str(caught.value)
    assert caught.value.exit_code == 4


def test_repeated_408_is_unreachable(client: HarborClient, harbor: FakeHarbor) -> None:
    """A 408 that outlives the attempts is infrastructure trouble, not a defect."""
    harbor.then(answer(408), answer(408), answer(408))
    with pytest.raises(TargetUnreachable, match="408"):
        client.list_lockers(TOWER)


def test_429_waits_for_retry_after(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """A 429 waits the seconds its Retry-After asks, and counts as an attempt."""
    harbor.then(answer(429, {"detail": "slow down"}, {"Retry-After": "3"}), OK)
    client.list_lockers(TOWER)
    assert sleeps.seconds == [3.0]


def test_429_retry_after_is_capped(settings: Settings, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """An absurd Retry-After waits only the policy's cap."""
    policy = RetryPolicy(max_retry_after=5.0, sleep=sleeps)
    harbor.then(answer(429, None, {"Retry-After": "3600"}), OK)
    with HarborClient(settings, transport=httpx.MockTransport(harbor), retry=policy) as client:
        client.list_lockers(TOWER)
    assert sleeps.seconds == [5.0]


def test_429_http_date_retry_after(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """A Retry-After given as an HTTP date waits until then, measured on the server's Date."""
    headers = {"Retry-After": "Wed, 21 Oct 2026 07:28:04 GMT", "Date": "Wed, 21 Oct 2026 07:28:00 GMT"}
    harbor.then(answer(429, None, headers), OK)
    client.list_lockers(TOWER)
    assert sleeps.seconds == [4.0]


def test_429_without_retry_after_backs_off(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """A 429 without Retry-After uses the ordinary backoff."""
    harbor.then(answer(429), answer(429), OK)
    client.list_lockers(TOWER)
    assert sleeps.seconds == [1.0, 2.0]


def test_persistent_429_is_rate_limited(client: HarborClient, harbor: FakeHarbor) -> None:
    """A 429 on every attempt raises RateLimited with the last Retry-After."""
    harbor.then(*[answer(429, {"detail": "slow down"}, {"Retry-After": "1"})] * 3)
    with pytest.raises(RateLimited) as caught:
        client.list_lockers(TOWER)
    assert caught.value.retry_after == 1.0
    assert len(harbor.requests) == 3


def test_token_endpoint_is_retried_too(client: HarborClient, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """The token request follows the same policy as every other call."""
    calls: list[int] = []
    original = harbor.__call__

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token") and not calls:
            calls.append(1)
            raise httpx.ConnectError("down", request=request)
        return original(request)

    harbor.then(OK)
    with HarborClient(client.settings, transport=httpx.MockTransport(flaky), retry=client.session.retry) as c:
        c.list_lockers(TOWER)
    assert sleeps.seconds == [1.0]


def test_single_attempt_policy_never_sleeps(settings: Settings, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """A one-attempt policy fails at the first transport error."""
    harbor.then(fail())
    with (
        HarborClient(settings, transport=httpx.MockTransport(harbor), retry=RetryPolicy(attempts=1, sleep=sleeps)) as c,
        pytest.raises(TargetUnreachable, match="after 1 attempt"),
    ):
        c.list_lockers(TOWER)
    assert sleeps.seconds == []


def test_policy_delays_double() -> None:
    """Delays start at the first delay and double."""
    policy = RetryPolicy(attempts=5)
    assert [policy.delay(n) for n in range(1, 5)] == [1.0, 2.0, 4.0, 8.0]
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


@pytest.mark.anyio
async def test_async_client_retries_the_same_way(settings: Settings, harbor: FakeHarbor, sleeps: Sleeps) -> None:
    """The async client shares the core: same attempts, same delays, through the async sleep."""
    harbor.then(answer(500), fail(), OK)
    policy = RetryPolicy(sleep=sleeps, async_sleep=sleeps.sleep_async)
    async with AsyncHarborClient(settings, transport=httpx.MockTransport(harbor), retry=policy) as client:
        lockers = await client.list_lockers(TOWER)
    assert [locker.id for locker in lockers] == [1401]
    assert sleeps.seconds == [1.0, 2.0]


def test_not_found_is_not_retried(client: HarborClient, harbor: FakeHarbor) -> None:
    """404 is NotFound at once, with Harbor's detail in the message."""
    harbor.then(answer(404, {"detail": "Tower not found"}))
    with pytest.raises(
        NotFound, match=r"^GET /api/v1/towers/0100000000000014/lockers answered 404 Not Found: Tower not found$"
    ):
        client.list_lockers(TOWER)


def test_unreachable_token_endpoint_names_its_own_host(sleeps: Sleeps) -> None:
    """When the token host (Keycloak, another host on Harbor) is down, the message names that host."""
    settings = load_settings(
        {"target": "sandbox"}, environ={"HARBOR_CLIENT_ID": "me", "HARBOR_CLIENT_SECRET": "secret-value"}
    )

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known", request=request)

    policy = RetryPolicy(sleep=sleeps)
    with (
        HarborClient(settings, transport=httpx.MockTransport(down), retry=policy) as client,
        pytest.raises(TargetUnreachable) as caught,
    ):
        client.authenticate()
    assert "no answer from https://accounts.sandbox.harborlockers.com after 3 attempt(s)" in str(caught.value)
    assert caught.value.url == "https://accounts.sandbox.harborlockers.com"
