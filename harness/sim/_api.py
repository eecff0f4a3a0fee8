"""The REST surface of contracts/harbor-api.yaml: ``/api/v1`` and ``/sdk/v1``, one route per operation.

Request bodies are strict pydantic models mirroring the document's schemas (a JSON string is not
an integer, ``null`` is not an omitted field), so what the document rejects the sandbox rejects.
Handlers are lean: the world returns prepared dicts and they go out as JSON as they are; no
response models re-validate them.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.ble.protocol import NUS_SERVICE_UUID
from harness.model import (
    CLIENT_INFO_MAX,
    LOCKER_TYPES,
    RESERVATION_DURATION,
    TOKEN_DURATION,
    TokenKind,
)

from ._auth import TOWER_ACCESS, BearerAuthority, Principal
from ._middleware import PRINCIPAL_KEY
from ._world import World

__all__ = ["add_api_routes"]

TowerId = Annotated[str, Path(pattern=r"^[0-9a-fA-F]{16}$")]
LockerId = Annotated[int, Path(ge=1)]
HEX = r"^([0-9a-fA-F]{2})*$"


class _Strict(BaseModel):
    """JSON types as the document states them: no coercion from strings, floats or null."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: Any) -> Any:
        # An optional field may be omitted, but the document never allows an explicit null.
        if value is None:
            raise ValueError("null is not allowed; omit the field instead")
        return value


class AuthorizeRequest(_Strict):
    userId: Annotated[str, Field(min_length=1, max_length=200)]


class ReservationRequest(_Strict):
    duration: Annotated[int, Field(ge=RESERVATION_DURATION[0], le=RESERVATION_DURATION[1])]


class LockerTokenRequest(_Strict):
    client_info: Annotated[str, Field(max_length=CLIENT_INFO_MAX)]
    duration: Annotated[int, Field(ge=TOKEN_DURATION[0], le=TOKEN_DURATION[1])]


class EmptyBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _LinkRequest(_Strict):
    returnUrl: Annotated[str, Field(max_length=2000)]
    clientInfo: Annotated[str, Field(max_length=CLIENT_INFO_MAX)]
    payload: dict[str, Any]
    keypadIntent: Literal["pickup"] | None = None  # None only as the omitted default
    persistKeypadCode: bool = False


class DropoffLockerRequestCreate(_LinkRequest):
    locationId: Annotated[int, Field(ge=1)]
    lockerTypeId: Annotated[int, Field(ge=1, le=max(LOCKER_TYPES))]
    requireLowLocker: bool = False  # optional [S3]: a working integration leaves it out


class PickupLockerRequestCreate(_LinkRequest):
    lockerId: Annotated[int, Field(ge=1)]


SessionClaim = Literal["sync_packet", "locker_pickup", "locker_delivery", "owner", "technician", "developer"]


class SessionTokenRequest(_Strict):
    duration: Annotated[int, Field(ge=1, le=86_400)]
    claims: Annotated[list[SessionClaim], Field(min_length=1)]
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class ResetEventsRequest(_Strict):
    reason: Annotated[str, Field(max_length=CLIENT_INFO_MAX)]


class PasswordLogin(BaseModel):
    """OAuth2's password form, as FastAPI's ``OAuth2PasswordRequestForm`` reads it [I]."""

    model_config = ConfigDict(extra="ignore")
    username: str
    password: str
    grant_type: Annotated[str | None, Field(pattern="^password$")] = None
    scope: str = ""


class TowerEventBatch(_Strict):
    syncEventStart: Annotated[int, Field(ge=0)]
    syncEventCount: Annotated[int, Field(ge=0)]
    payload: Annotated[str, Field(pattern=HEX)]
    payloadAuth: Annotated[str, Field(pattern=HEX)]


def _invalid_body(invalid: ValidationError) -> RequestValidationError:
    """A pydantic failure on a body as FastAPI reports it (422, each ``loc`` under ``body``)."""
    return RequestValidationError(
        [{**error, "loc": ("body", *error["loc"])} for error in invalid.errors(include_url=False)]
    )


async def _password_form(request: Request) -> PasswordLogin:
    """The form of a password login; FastAPI would need python-multipart to read it, which the
    sandbox does without (the token endpoint reads its form the same way)."""
    try:
        form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        form = {}
    try:
        return PasswordLogin.model_validate({name: values[0] for name, values in form.items()})
    except ValidationError as invalid:
        # A missing field's "input" would be the whole form, the password with it: never echo it.
        errors = [
            {**error, "loc": ("body", *error["loc"]), **({"input": None} if error["type"] == "missing" else {})}
            for error in invalid.errors(include_url=False)
        ]
        raise RequestValidationError(errors) from None


async def _optional_empty_body(request: Request) -> None:
    """An optional ``EmptyBody``: no body at all, or ``{}``. FastAPI cannot tell an absent body from
    an explicit JSON ``null`` (both become ``None``), and the document allows only the first."""
    raw = await request.body()
    if not raw:
        return
    try:
        EmptyBody.model_validate_json(raw)
    except ValidationError as invalid:
        raise _invalid_body(invalid) from None


def _principal(request: Request) -> Principal:
    principal: Principal = request.scope[PRINCIPAL_KEY]  # set by SandboxMiddleware before routing
    return principal


#: What a phone scans for [S]: the towers' Nordic UART Service (the name is [G]).
_SERVICES = [{"name": "Nordic UART Service", "uuid": NUS_SERVICE_UUID.upper()}]

_LOCKER_TYPE_VIEWS = [{"name": name, "description": None, "id": type_id} for type_id, name in LOCKER_TYPES.items()]


def add_api_routes(app: FastAPI, world: World, authority: BearerAuthority) -> None:
    """Every operation of the document, bound to ``world``, as routes of ``app`` itself (an
    included router would add a level of indirection to every request's routing)."""
    get, post, delete = app.get, app.post, app.delete

    def created() -> int:
        """A create's status: 201 as we read Harbor [I], 200 under the ``create_200`` dialect."""
        return 200 if world.dialects.create_200 else 201

    # -- login --------------------------------------------------------------------------------

    @post("/api/v1/login/authorize")
    async def authorize_sdk_user(request: Request, body: AuthorizeRequest) -> JSONResponse:
        principal = _principal(request)
        token, _ = authority.issue(principal.client_id, (TOWER_ACCESS,), user_id=body.userId)
        # token_type here is our guess (Harbor's seen answer has only access_token): no_token_type drops it.
        if world.dialects.no_token_type:
            return JSONResponse({"access_token": token})
        return JSONResponse({"access_token": token, "token_type": "bearer"})

    async def password_login(request: Request, *, sdk: bool) -> JSONResponse:
        form = await _password_form(request)
        token = authority.password_login(form.username, form.password, sdk=sdk)
        if token is None:
            return JSONResponse({"detail": "Incorrect email or password"}, status_code=400)
        return JSONResponse({"access_token": token, "token_type": "bearer"})

    @post("/api/v1/login/access-token")
    async def login_access_token(request: Request) -> JSONResponse:
        return await password_login(request, sdk=False)

    @post("/sdk/v1/login/access-token")
    async def login_sdk_access_token(request: Request) -> JSONResponse:
        return await password_login(request, sdk=True)

    @post("/api/v1/login/test-token")
    async def test_token(request: Request) -> JSONResponse:
        principal = _principal(request)
        remaining = max(0, int(principal.expires_at - time.time()))
        return JSONResponse(
            {"client_id": principal.client_id, "scope": " ".join(sorted(principal.scopes)), "expires_in": remaining}
        )

    # -- towers and lockers -------------------------------------------------------------------

    @get("/api/v1/towers/{tower_id}/lockers")
    async def list_tower_lockers(tower_id: TowerId) -> JSONResponse:
        return JSONResponse(world.list_lockers(tower_id))

    @get("/api/v1/towers/{tower_id}/lockers/{locker_id}")
    async def get_locker(tower_id: TowerId, locker_id: LockerId) -> JSONResponse:
        return JSONResponse(world.get_locker(tower_id, locker_id))

    @post("/api/v1/towers/{tower_id}/lockers/{locker_id}/reservations")
    async def reserve_locker(
        request: Request, tower_id: TowerId, locker_id: LockerId, body: ReservationRequest
    ) -> JSONResponse:
        actor = _principal(request).client_id
        return JSONResponse(world.reserve(actor, tower_id, locker_id, body.duration), status_code=created())

    @delete("/api/v1/towers/{tower_id}/lockers/{locker_id}/reservations/{reservation_id}")
    async def cancel_reservation(
        request: Request, tower_id: TowerId, locker_id: LockerId, reservation_id: Annotated[int, Path(ge=1)]
    ) -> JSONResponse:
        actor = _principal(request).client_id
        return JSONResponse(world.cancel(actor, tower_id, locker_id, reservation_id))

    @post("/api/v1/towers/{tower_id}/lockers/{locker_id}/dropoff-locker-tokens")
    async def create_dropoff_token(
        request: Request, tower_id: TowerId, locker_id: LockerId, body: LockerTokenRequest
    ) -> JSONResponse:
        actor = _principal(request).client_id
        token = world.issue_token(actor, tower_id, locker_id, TokenKind.DROPOFF, body.duration, body.client_info)
        return JSONResponse(token, status_code=created())

    @post("/api/v1/towers/{tower_id}/lockers/{locker_id}/pickup-locker-tokens")
    async def create_pickup_token(
        request: Request, tower_id: TowerId, locker_id: LockerId, body: LockerTokenRequest
    ) -> JSONResponse:
        actor = _principal(request).client_id
        token = world.issue_token(actor, tower_id, locker_id, TokenKind.PICKUP, body.duration, body.client_info)
        return JSONResponse(token, status_code=created())

    @post("/api/v1/towers/{tower_id}/lockers/{locker_id}/release-locker")
    async def release_locker(request: Request, tower_id: TowerId, locker_id: LockerId) -> JSONResponse:
        await _optional_empty_body(request)
        actor = _principal(request).client_id
        return JSONResponse(world.release(actor, tower_id, locker_id))

    @get("/api/v1/towers/{tower_id}/locker-availability")
    async def get_tower_availability(tower_id: TowerId) -> JSONResponse:
        return JSONResponse(world.tower_availability(tower_id))

    @get("/api/v1/users/me/assigned-lockers")
    async def list_assigned_lockers(request: Request) -> JSONResponse:
        return JSONResponse(world.assigned_lockers(_principal(request).client_id))

    @get("/api/v1/locker-types")
    async def list_locker_types() -> JSONResponse:
        return JSONResponse(_LOCKER_TYPE_VIEWS)

    # -- locations ----------------------------------------------------------------------------

    @get("/api/v1/locations/")
    async def list_locations(
        skip: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> JSONResponse:
        return JSONResponse(world.locations(skip, limit))

    @get("/api/v1/locations/closest")
    async def get_closest_location(
        lat: Annotated[float, Query(ge=-90, le=90)],
        lon: Annotated[float, Query(ge=-180, le=180)],
        radius: Annotated[float, Query(gt=0, le=180)] = 0.9,
    ) -> JSONResponse:
        return JSONResponse(world.closest_location(lat, lon, radius))

    @get("/api/v1/locations/{location_id}/")
    async def get_location(location_id: Annotated[int, Path(ge=1)]) -> JSONResponse:
        return JSONResponse(world.location(location_id))

    @get("/api/v1/locations/{location_id}/availability")
    async def get_location_availability(location_id: Annotated[int, Path(ge=1)]) -> JSONResponse:
        return JSONResponse(world.location_availability(location_id))

    # -- locker open requests -----------------------------------------------------------------

    @post("/api/v1/locker-open-requests/dropoff-locker-request")
    async def create_dropoff_locker_request(request: Request, body: DropoffLockerRequestCreate) -> JSONResponse:
        view = world.dropoff_request(
            _principal(request).client_id,
            location_id=body.locationId,
            locker_type_id=body.lockerTypeId,
            require_low_locker=body.requireLowLocker,
            return_url=body.returnUrl,
            client_info=body.clientInfo,
            payload=body.payload,
        )
        return JSONResponse(view, status_code=created())

    @post("/api/v1/locker-open-requests/pickup-locker-request")
    async def create_pickup_locker_request(request: Request, body: PickupLockerRequestCreate) -> JSONResponse:
        view = world.pickup_request(
            _principal(request).client_id,
            locker_id=body.lockerId,
            return_url=body.returnUrl,
            client_info=body.clientInfo,
            payload=body.payload,
        )
        return JSONResponse(view, status_code=created())

    # ":int" so that GET .../dropoff-locker-request is a 405 (an undeclared method), not a bad id.
    @get("/api/v1/locker-open-requests/{request_id:int}")
    async def get_locker_open_request(request: Request, request_id: Annotated[int, Path(ge=1)]) -> JSONResponse:
        return JSONResponse(world.open_request(_principal(request).client_id, request_id))

    # -- SDK ----------------------------------------------------------------------------------

    @post("/sdk/v1/towers/{tower_id}/session-token")
    async def create_session_token(request: Request, tower_id: TowerId, body: SessionTokenRequest) -> JSONResponse:
        principal = _principal(request)
        token = world.session_token(
            principal.client_id, principal.user_id, tower_id, body.duration, list(body.claims), body.version
        )
        return JSONResponse(token, status_code=created())

    @post("/sdk/v1/towers/{tower_id}/events")
    async def upload_tower_events(
        tower_id: TowerId, batches: Annotated[list[TowerEventBatch], Body(max_length=50)]
    ) -> JSONResponse:
        raw = [
            (b.syncEventStart, b.syncEventCount, bytes.fromhex(b.payload), bytes.fromhex(b.payloadAuth))
            for b in batches
        ]
        return JSONResponse(world.upload_events(tower_id, raw))

    @get("/sdk/v1/towers/{tower_id}/commands")
    async def list_tower_commands(tower_id: TowerId) -> JSONResponse:
        return JSONResponse(world.tower_commands(tower_id))

    @get("/sdk/v1/towers/{tower_id}/configuration")
    async def get_tower_configuration(tower_id: TowerId) -> JSONResponse:
        return JSONResponse(world.tower_configuration(tower_id))

    @post("/sdk/v1/towers/{tower_id}/reset-events")
    async def reset_tower_events(tower_id: TowerId, body: ResetEventsRequest) -> JSONResponse:
        return JSONResponse(world.reset_events(tower_id, body.reason))

    @get("/sdk/v1/services/")
    async def list_ble_services() -> JSONResponse:
        return JSONResponse(_SERVICES)
