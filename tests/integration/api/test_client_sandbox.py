"""The API client against the real virtual sandbox in process: every operation of the document.

The async client reaches the app through ``httpx.ASGITransport`` (no socket); the sync client
through the sandbox's uvicorn thread on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from harness.api import (
    AsyncHarborClient,
    CredentialsRefused,
    HarborClient,
    HoldAction,
    HoldKind,
    HoldLog,
    RetryPolicy,
    Scope,
    SessionClaim,
)
from harness.ble.protocol import NUS_SERVICE_UUID
from harness.config import Credentials, Secret, Settings, Target
from harness.errors import BadRequest, Conflict, Forbidden, NotFound, ProductDefect, ValidationFailed
from harness.model import LockerStatus, TokenKind, TowerId

TOWER = "0100000000000014"
SECOND_TOWER = "0100000000000175"
MAIN = Credentials("provider-one", Secret("provider-one-secret"))
OTHER = Credentials("provider-two", Secret("provider-two-secret"))
NO_WAIT = RetryPolicy(attempts=1)


def _sim_settings() -> Any:
    from harness.sim import Identity, SimSettings

    return SimSettings(identities=tuple(Identity(c.client_id, c.client_secret.reveal()) for c in (MAIN, OTHER)))


@pytest.fixture
def app() -> Any:
    from harness.sim import create_app

    return create_app(_sim_settings())


def settings_for(url: str) -> Settings:
    return Settings().with_target(Target.local().running_at(url))


@pytest.fixture
async def client(app: Any) -> AsyncIterator[AsyncHarborClient]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncHarborClient(settings_for("http://localhost"), credentials=MAIN, transport=transport) as c:
        yield c


@pytest.fixture
async def other(app: Any) -> AsyncIterator[AsyncHarborClient]:
    transport = httpx.ASGITransport(app=app)
    async with AsyncHarborClient(settings_for("http://localhost"), credentials=OTHER, transport=transport) as c:
        yield c


@pytest.mark.anyio
async def test_login_operations(client: AsyncHarborClient) -> None:
    """test-token reports the client and scope; login/authorize gives an SDK token."""
    info = await client.token_info()
    assert info.client_id == MAIN.client_id
    assert "service_provider" in info.scope
    assert 0 < info.expires_in <= 300
    sdk = await client.authorize_sdk_user("courier-7")
    assert sdk.token_type.lower() == "bearer"
    assert "courier" not in repr(sdk)


@pytest.mark.anyio
async def test_password_logins(client: AsyncHarborClient) -> None:
    """Both password logins give a bearer token for the sandbox's identity, without a bearer of their own;
    a wrong password is Harbor's 400."""
    for login in (client.login_access_token, client.login_sdk_access_token):
        token = await login(MAIN.client_id, MAIN.client_secret)
        assert token.token_type.lower() == "bearer" and token.access_token.reveal()
        with pytest.raises(BadRequest):
            await login(MAIN.client_id, "not-the-secret")
    assert client.session._tokens == {}  # no client-credentials token was fetched for them


@pytest.mark.anyio
async def test_lockers_listing_any_case(client: AsyncHarborClient) -> None:
    """A tower's 24 seeded lockers list the same whatever the tower id's case; types and statuses parse."""
    lockers = await client.list_lockers(TOWER.lower())
    assert [locker.id for locker in lockers] == list(range(1401, 1425))
    assert {locker.type.name for locker in lockers} == {"small", "medium", "large", "xlarge"}
    statuses = {locker.name: locker.status for locker in lockers}
    assert statuses["12"] is statuses["24"] is LockerStatus.OUT_OF_SERVICE
    assert (await client.get_locker(TOWER, 1401)).status is LockerStatus.AVAILABLE


@pytest.mark.anyio
async def test_reserve_and_cancel(client: AsyncHarborClient) -> None:
    """Reserving shows reserved; cancelling the reservation makes the locker available again."""
    reservation = await client.reserve(TOWER, 1402, 120)
    assert (reservation.locker_id, reservation.duration) == (1402, 120)
    assert reservation.locker.status is LockerStatus.RESERVED
    assert [locker.id for locker in await client.assigned_lockers()] == [1402]
    after = await client.cancel_reservation(TOWER, 1402, reservation.id)
    assert after.status is LockerStatus.AVAILABLE
    assert await client.assigned_lockers() == []


@pytest.mark.anyio
async def test_tokens_and_release(client: AsyncHarborClient) -> None:
    """A drop-off token rents the locker; release declines it, a second release frees it."""
    token = await client.create_dropoff_token(TOWER, 1403, duration=600, client_info="harness")
    assert token.kind is TokenKind.DROPOFF
    assert token.locker.status is LockerStatus.RENTED
    assert token.tower_id == TOWER and isinstance(token.tower_id, TowerId)
    assert (await client.release_locker(TOWER, 1403)).status is LockerStatus.DECLINED
    assert (await client.release_locker(TOWER, 1403)).status is LockerStatus.AVAILABLE


@pytest.mark.anyio
async def test_pickup_token_needs_an_occupied_locker(client: AsyncHarborClient) -> None:
    """A pickup token for an available locker is refused with a Conflict naming the status."""
    with pytest.raises(Conflict, match="409"):
        await client.create_pickup_token(TOWER, 1404)


@pytest.mark.anyio
async def test_another_party_cannot_touch_a_held_locker(client: AsyncHarborClient, other: AsyncHarborClient) -> None:
    """The second identity gets 403 on a locker the first one holds."""
    await client.reserve(TOWER, 1405, 60)
    with pytest.raises(Forbidden):
        await other.create_dropoff_token(TOWER, 1405)
    with pytest.raises((Conflict, Forbidden)):
        await other.reserve(TOWER, 1405, 60)


@pytest.mark.anyio
async def test_availability(client: AsyncHarborClient) -> None:
    """Tower and location availability count available lockers in all and by type."""
    tower = await client.tower_availability(TOWER)
    assert tower.available == 22  # 24 lockers, 2 out of service
    assert sum(entry.available for entry in tower.by_type) == tower.available
    location = await client.location_availability(1)
    assert location.available == tower.available


@pytest.mark.anyio
async def test_locations_and_types(client: AsyncHarborClient) -> None:
    """Locations page with skip/limit, read one by id, and find the closest; four locker types."""
    locations = await client.list_locations(skip=0, limit=10)
    assert [location.id for location in locations] == [1, 2]
    assert [location.id for location in await client.list_locations(skip=1, limit=10)] == [2]
    first = await client.get_location(1)
    assert first.name == "Harness Virtual Location"
    closest = await client.closest_location(first.lat, first.lon)
    assert closest.id == 1
    types = await client.locker_types()
    assert [(t.id, t.name) for t in types] == [(1, "small"), (2, "medium"), (3, "large"), (4, "xlarge")]


@pytest.mark.anyio
async def test_locker_open_requests(client: AsyncHarborClient) -> None:
    """A drop-off request reserves a matching locker; it can be read back by id."""
    request = await client.create_dropoff_request(1, 2, client_info="order-1")
    assert request.request_type is TokenKind.DROPOFF
    assert request.link_token
    again = await client.get_open_request(request.id)
    assert (again.id, again.locker_id) == (request.id, request.locker_id)
    locker = await client.get_locker(TOWER, request.locker_id)
    assert locker.type.id == 2
    assert locker.status is not LockerStatus.AVAILABLE


@pytest.mark.anyio
async def test_pickup_request_for_an_available_locker_is_refused(client: AsyncHarborClient) -> None:
    """A pickup request needs an occupied locker."""
    with pytest.raises((Conflict, Forbidden)):
        await client.create_pickup_request(1401)


@pytest.mark.anyio
async def test_sdk_operations(client: AsyncHarborClient) -> None:
    """Session token, commands, events, services, configuration and the event reset on the SDK API, with the
    tower_access scope."""
    session = await client.create_session_token(TOWER, "1.2.3", claims=[SessionClaim.DEVELOPER], duration=60)
    assert session.tower_id == TOWER
    assert session.session_seed and session.session_seed not in repr(session)
    commands = await client.tower_commands(TOWER)
    assert isinstance(commands, list)
    assert isinstance(await client.upload_tower_events(TOWER, []), str)
    assert NUS_SERVICE_UUID.lower() in {str(service.uuid) for service in await client.ble_services()}
    configuration = await client.tower_configuration(TOWER.lower())
    assert configuration.tower_id == TOWER and configuration.commands == ()
    tower = await client.reset_tower_events(TOWER, "the harness's own test")
    assert tower.id == TOWER and tower.is_for_test
    assert client.session._tokens.keys() == {Scope.TOWER_ACCESS}


@pytest.mark.anyio
async def test_unknown_tower_and_bad_duration(client: AsyncHarborClient) -> None:
    """An unknown tower is NotFound; an out-of-bounds duration is ValidationFailed naming the field."""
    with pytest.raises(NotFound):
        await client.list_lockers("0100000000000099")
    with pytest.raises(ValidationFailed) as caught:
        await client.reserve(TOWER, 1401, 0)
    assert any("duration" in str(error.get("loc")) for error in caught.value.errors)


@pytest.mark.anyio
async def test_holds_hook_sees_the_sandbox_calls(app: Any) -> None:
    """Against the real sandbox, every create and give-back passes through the holds hook."""
    log = HoldLog()
    transport = httpx.ASGITransport(app=app)
    async with AsyncHarborClient(
        settings_for("http://localhost"), credentials=MAIN, transport=transport, holds=log
    ) as client:
        reservation = await client.reserve(TOWER, 1406, 60)
        await client.cancel_reservation(TOWER, 1406, reservation.id)
    assert [(r.hold.action, r.hold.kind, r.ok) for r in log.records] == [
        (HoldAction.CREATE, HoldKind.RESERVATION, True),
        (HoldAction.CANCEL, HoldKind.RESERVATION, True),
    ]


@pytest.mark.anyio
async def test_wrong_field_type_bug_is_caught(app: Any, client: AsyncHarborClient) -> None:
    """With the sandbox's wrong_field_type bug on, reading a locker is a response_shape defect."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as control:
        assert (await control.post("/_sim/bugs", json={"wrong_field_type": True})).status_code == 200
    with pytest.raises(ProductDefect) as caught:
        await client.get_locker(TOWER, 1401)
    assert caught.value.check == "response_shape"
    assert "field 'id' should be an integer, got a string" in str(caught.value)


@pytest.mark.anyio
async def test_wrong_credentials_are_refused(app: Any) -> None:
    """The sandbox's token endpoint refuses a wrong secret: CredentialsRefused, exit 2."""
    wrong = Credentials(MAIN.client_id, Secret("not-the-secret"))
    transport = httpx.ASGITransport(app=app)
    async with AsyncHarborClient(settings_for("http://localhost"), credentials=wrong, transport=transport) as c:
        with pytest.raises(CredentialsRefused):
            await c.authenticate()


@pytest.fixture(scope="module")
def running_sandbox() -> Iterator[Any]:
    from harness.sim import VirtualSandbox

    with VirtualSandbox(_sim_settings()) as sandbox:
        yield sandbox


def test_sync_client_over_a_uvicorn_thread(running_sandbox: Any) -> None:
    """The blocking client does the same against the sandbox served on loopback."""
    with HarborClient(settings_for(running_sandbox.url), credentials=MAIN, retry=NO_WAIT) as client:
        lockers = client.list_lockers(SECOND_TOWER)
        assert [locker.id for locker in lockers] == list(range(17501, 17513))
        reservation = client.reserve(SECOND_TOWER, 17501, 60)
        assert client.get_locker(SECOND_TOWER, 17501).status is LockerStatus.RESERVED
        assert client.cancel_reservation(SECOND_TOWER, 17501, reservation.id).status is LockerStatus.AVAILABLE


class AnswerLostOnce(httpx.AsyncBaseTransport):
    """Forwards each request to the sandbox app; the first one to ``path`` is processed, then its
    answer is lost (a read error), as when a connection drops after the server acted."""

    def __init__(self, app: Any, method: str, path: str) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._method, self._path = method, path
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not self.lost and request.method == self._method and request.url.path == self._path:
            await response.aread()
            self.lost += 1
            raise httpx.ReadError("connection lost before the answer arrived", request=request)
        return response


async def sandbox_state(app: Any, locker_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as control:
        state = (await control.get("/_sim/state")).json()
    [entry] = [locker for locker in state["lockers"] if locker["id"] == locker_id]
    return dict(entry)


@pytest.mark.anyio
async def test_reserve_whose_answer_was_lost_is_recovered(app: Any) -> None:
    """A reserve the sandbox made but whose answer was lost is found, given back and made again:
    the caller gets a reservation it knows the id of, and nothing of its own is left unrecorded."""
    log = HoldLog()
    transport = AnswerLostOnce(app, "POST", f"/api/v1/towers/{TOWER}/lockers/1407/reservations")
    no_wait = RetryPolicy(first_delay=0)
    async with AsyncHarborClient(
        settings_for("http://localhost"), credentials=MAIN, transport=transport, retry=no_wait, holds=log
    ) as client:
        reservation = await client.reserve(TOWER, 1407, 60)
        assert transport.lost == 1
        assert (await client.get_locker(TOWER, 1407)).status is LockerStatus.RESERVED
        after = await client.cancel_reservation(TOWER, 1407, reservation.id)  # the id is the live one
    assert after.status is LockerStatus.AVAILABLE
    assert (await sandbox_state(app, 1407))["status"] == "available"
    assert [(r.hold.action, r.hold.kind, r.ok) for r in log.records] == [
        (HoldAction.CREATE, HoldKind.RESERVATION, True),
        (HoldAction.RELEASE, HoldKind.LOCKER, True),
        (HoldAction.CREATE, HoldKind.RESERVATION, True),
        (HoldAction.CANCEL, HoldKind.RESERVATION, True),
    ]


@pytest.mark.anyio
async def test_dropped_connection_in_process_is_retried(app: Any) -> None:
    """The sandbox's drop_connection fault, in process, is a transport error the client retries."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as control:
        response = await control.post("/_sim/faults", json={"profile": "drop_connection", "count": 1})
        assert response.status_code == 200, response.text
    transport = httpx.ASGITransport(app=app)
    no_wait = RetryPolicy(first_delay=0)
    async with AsyncHarborClient(
        settings_for("http://localhost"), credentials=MAIN, transport=transport, retry=no_wait
    ) as client:
        lockers = await client.list_lockers(SECOND_TOWER)
    assert len(lockers) == 12
