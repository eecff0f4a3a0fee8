"""Every operation of contracts/harbor-api.yaml, once, as a ``Call`` builder.

The sync and async clients turn each builder into a method with the same signature
(``_client.py``), so an operation is written here and nowhere else. ``OPERATIONS`` maps each
``operationId`` of the document to its builder; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from harness.api._call import Call, Scope
from harness.api._holds import Hold, HoldAction, HoldKind
from harness.api._models import (
    Availability,
    BleService,
    Location,
    Locker,
    LockerOpenRequest,
    LockerToken,
    LockerType,
    LoginToken,
    Reader,
    Reservation,
    SdkToken,
    SessionClaim,
    SessionToken,
    TokenInfo,
    Tower,
    TowerCommandBatch,
    TowerConfiguration,
)
from harness.errors import UsageError
from harness.model import InvalidTowerId, TokenKind, TowerEventBatch, TowerId
from harness.redaction import Secret

__all__ = ["OPERATIONS"]

#: What the document gives a create: 201. A guess (``create_status`` [I] in ``harness.assumptions``):
#: the core reads any 2xx and records the code seen.
_CREATED: Final = 201


def _tower(tower_id: TowerId) -> TowerId:
    """The id as given; text from an untyped caller of the Python API is parsed here, its own edge."""
    try:
        return TowerId(tower_id)
    except InvalidTowerId as exc:
        raise UsageError(f"tower id {exc}") from None


def _id(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{what} must be a positive integer, not {value!r}")
    return value


def _lockers(body: Reader) -> list[Locker]:
    return [Locker.read(item) for item in body.items()]


def _locker_path(tower_id: TowerId, locker_id: int) -> str:
    return f"/api/v1/towers/{_tower(tower_id)}/lockers/{_id(locker_id, 'locker id')}"


# -- login ----------------------------------------------------------------------------------------


def authorize_sdk_user(user_id: str) -> Call[SdkToken]:
    """An SDK token for one of the provider's app users (``login/authorize``)."""
    return Call("POST", "/api/v1/login/authorize", SdkToken.read, json={"userId": user_id})


def _password(password: Secret | str) -> str:
    return password.reveal() if isinstance(password, Secret) else password


def login_access_token(username: str, password: Secret | str) -> Call[LoginToken]:
    """A bearer token for a user's name and password (the legacy password login, ``login/access-token``)."""
    return Call(
        "POST",
        "/api/v1/login/access-token",
        LoginToken.read,
        data={"username": username, "password": _password(password), "grant_type": "password"},
        bearer=False,
    )


def login_sdk_access_token(username: str, password: Secret | str) -> Call[LoginToken]:
    """An SDK token for a user's name and password (the SDK's ``loginWithEmail``)."""
    return Call(
        "POST",
        "/sdk/v1/login/access-token",
        LoginToken.read,
        scope=Scope.TOWER_ACCESS,
        data={"username": username, "password": _password(password)},
        bearer=False,
    )


def token_info() -> Call[TokenInfo]:
    """Check the service-provider bearer token (``login/test-token``)."""
    return Call("POST", "/api/v1/login/test-token", TokenInfo.read)


# -- lockers --------------------------------------------------------------------------------------


def list_lockers(tower_id: TowerId) -> Call[list[Locker]]:
    """All lockers of a tower, whatever their status (tower id in any case)."""
    return Call("GET", f"/api/v1/towers/{_tower(tower_id)}/lockers", _lockers)


def get_locker(tower_id: TowerId, locker_id: int) -> Call[Locker]:
    """One locker: what the flow polls for a status."""
    return Call("GET", _locker_path(tower_id, locker_id), Locker.read)


def reserve(tower_id: TowerId, locker_id: int, duration: int = 300) -> Call[Reservation]:
    """Hold an available locker for ``duration`` seconds."""
    tower = _tower(tower_id)
    return Call(
        "POST",
        f"{_locker_path(tower, locker_id)}/reservations",
        Reservation.read,
        json={"duration": duration},
        writes="reserve a locker",
        hold=Hold(HoldAction.CREATE, HoldKind.RESERVATION, tower, locker_id, duration=duration),
        status=_CREATED,
    )


def cancel_reservation(tower_id: TowerId, locker_id: int, reservation_id: int) -> Call[Locker]:
    """Cancel the caller's reservation; the locker becomes available."""
    tower = _tower(tower_id)
    return Call(
        "DELETE",
        f"{_locker_path(tower, locker_id)}/reservations/{_id(reservation_id, 'reservation id')}",
        Locker.read,
        writes="cancel a reservation",
        hold=Hold(HoldAction.CANCEL, HoldKind.RESERVATION, tower, locker_id, reservation_id=reservation_id),
    )


def release_locker(tower_id: TowerId, locker_id: int) -> Call[Locker]:
    """End the caller's hold without a delivery (reserved -> available, rented -> declined -> available)."""
    tower = _tower(tower_id)
    return Call(
        "POST",
        f"{_locker_path(tower, locker_id)}/release-locker",
        Locker.read,
        json={},
        writes="release a locker",
        hold=Hold(HoldAction.RELEASE, HoldKind.LOCKER, tower, locker_id),
    )


def _token(kind: TokenKind, tower_id: TowerId, locker_id: int, duration: int, client_info: str) -> Call[LockerToken]:
    tower = _tower(tower_id)
    hold_kind = HoldKind.DROPOFF_TOKEN if kind is TokenKind.DROPOFF else HoldKind.PICKUP_TOKEN
    return Call(
        "POST",
        f"{_locker_path(tower, locker_id)}/{kind.value}-locker-tokens",
        lambda body: LockerToken.read(body, kind),
        json={"client_info": client_info, "duration": duration},
        writes=f"create a {kind.value} token",
        hold=Hold(HoldAction.CREATE, hold_kind, tower, locker_id, duration=duration),
        status=_CREATED,
    )


def create_dropoff_token(
    tower_id: TowerId, locker_id: int, duration: int = 3000, client_info: str = ""
) -> Call[LockerToken]:
    """A token that opens the locker for a drop-off; the locker becomes rented."""
    return _token(TokenKind.DROPOFF, tower_id, locker_id, duration, client_info)


def create_pickup_token(
    tower_id: TowerId, locker_id: int, duration: int = 3000, client_info: str = ""
) -> Call[LockerToken]:
    """A token that opens an occupied locker for the pickup."""
    return _token(TokenKind.PICKUP, tower_id, locker_id, duration, client_info)


def tower_availability(tower_id: TowerId) -> Call[Availability]:
    """Available lockers in a tower, in all and by type."""
    return Call("GET", f"/api/v1/towers/{_tower(tower_id)}/locker-availability", Availability.read)


def assigned_lockers() -> Call[list[Locker]]:
    """Lockers the caller holds (reserved, rented, occupied or declined)."""
    return Call("GET", "/api/v1/users/me/assigned-lockers", _lockers)


def locker_types() -> Call[list[LockerType]]:
    """The locker types (1 small, 2 medium, 3 large, 4 xlarge)."""
    return Call("GET", "/api/v1/locker-types", lambda body: [LockerType.read(item) for item in body.items()])


# -- locations ------------------------------------------------------------------------------------


def list_locations(skip: int = 0, limit: int = 100) -> Call[list[Location]]:
    """A page of locations (a bare array; ``skip``/``limit`` paging)."""
    return Call(
        "GET",
        "/api/v1/locations/",
        lambda body: [Location.read(item) for item in body.items()],
        params={"skip": skip, "limit": limit},
    )


def get_location(location_id: int) -> Call[Location]:
    """One location."""
    return Call("GET", f"/api/v1/locations/{_id(location_id, 'location id')}/", Location.read)


def closest_location(lat: float, lon: float, radius: float | None = None) -> Call[Location]:
    """The location closest to a point, within ``radius`` (degrees [G])."""
    params: dict[str, str | int | float] = {"lat": lat, "lon": lon}
    if radius is not None:
        params["radius"] = radius
    return Call("GET", "/api/v1/locations/closest", Location.read, params=params)


def location_availability(location_id: int) -> Call[Availability]:
    """Available lockers at a location, in all and by type."""
    return Call("GET", f"/api/v1/locations/{_id(location_id, 'location id')}/availability", Availability.read)


# -- locker open requests -------------------------------------------------------------------------


def _open_request_extras(keypad_intent: str | None, persist_keypad_code: bool | None) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if keypad_intent is not None:
        extras["keypadIntent"] = keypad_intent
    if persist_keypad_code is not None:
        extras["persistKeypadCode"] = persist_keypad_code
    return extras


def create_dropoff_request(
    location_id: int,
    locker_type_id: int,
    *,
    require_low_locker: bool = False,  # optional, default false: require_low_locker_optional [S3]
    return_url: str = "",
    client_info: str = "",
    payload: Mapping[str, Any] | None = None,
    keypad_intent: str | None = None,
    persist_keypad_code: bool | None = None,
) -> Call[LockerOpenRequest]:
    """A drop-off link at a location; reserves a matching locker for 5 minutes [S3]."""
    body = {
        "locationId": location_id,
        "lockerTypeId": locker_type_id,
        "requireLowLocker": require_low_locker,
        "returnUrl": return_url,
        "clientInfo": client_info,
        "payload": dict(payload or {}),
    } | _open_request_extras(keypad_intent, persist_keypad_code)
    return Call(
        "POST",
        "/api/v1/locker-open-requests/dropoff-locker-request",
        lambda body: LockerOpenRequest.read(body, TokenKind.DROPOFF),
        json=body,
        writes="create a drop-off request",
        hold=Hold(HoldAction.CREATE, HoldKind.DROPOFF_REQUEST, location_id=location_id, duration=300),
        status=_CREATED,
    )


def create_pickup_request(
    locker_id: int,
    *,
    return_url: str = "",
    client_info: str = "",
    payload: Mapping[str, Any] | None = None,
    keypad_intent: str | None = None,
    persist_keypad_code: bool | None = None,
) -> Call[LockerOpenRequest]:
    """A pickup link for an occupied locker (``locker_id`` is the locker's ``id``)."""
    body = {
        "lockerId": locker_id,
        "returnUrl": return_url,
        "clientInfo": client_info,
        "payload": dict(payload or {}),
    } | _open_request_extras(keypad_intent, persist_keypad_code)
    return Call(
        "POST",
        "/api/v1/locker-open-requests/pickup-locker-request",
        lambda body: LockerOpenRequest.read(body, TokenKind.PICKUP),
        json=body,
        writes="create a pickup request",
        hold=Hold(HoldAction.CREATE, HoldKind.PICKUP_REQUEST, locker_id=locker_id),
        status=_CREATED,
    )


def get_open_request(request_id: int) -> Call[LockerOpenRequest]:
    """One locker open request."""
    return Call("GET", f"/api/v1/locker-open-requests/{_id(request_id, 'request id')}", LockerOpenRequest.read)


# -- SDK API --------------------------------------------------------------------------------------


def create_session_token(
    tower_id: TowerId,
    version: str,
    claims: Sequence[SessionClaim | str] = (SessionClaim.DEVELOPER,),
    duration: int = 600,
) -> Call[SessionToken]:
    """The sealed request a phone sends to a tower to open a BLE session (``version``: its firmware)."""
    return Call(
        "POST",
        f"/sdk/v1/towers/{_tower(tower_id)}/session-token",
        SessionToken.read,
        scope=Scope.TOWER_ACCESS,
        json={"duration": duration, "claims": [str(claim) for claim in claims], "version": version},
        writes="open a tower session",
        status=_CREATED,
    )


def upload_tower_events(tower_id: TowerId, batches: Iterable[TowerEventBatch]) -> Call[str]:
    """Pass tower events pulled over BLE on to Harbor; returns Harbor's ``msg``."""
    return Call(
        "POST",
        f"/sdk/v1/towers/{_tower(tower_id)}/events",
        lambda body: body["msg"].text(),
        scope=Scope.TOWER_ACCESS,
        json=[batch.to_json() for batch in batches],
        writes="upload tower events",
    )


def tower_commands(tower_id: TowerId) -> Call[list[TowerCommandBatch]]:
    """Commands waiting to be pushed to the tower."""
    return Call(
        "GET",
        f"/sdk/v1/towers/{_tower(tower_id)}/commands",
        lambda body: [TowerCommandBatch.read(item) for item in body.items()],
        scope=Scope.TOWER_ACCESS,
    )


def ble_services() -> Call[list[BleService]]:
    """The BLE services a phone scans for (they replace the SDK's built-in scan filter)."""
    return Call(
        "GET",
        "/sdk/v1/services/",
        lambda body: [BleService.read(item) for item in body.items()],
        scope=Scope.TOWER_ACCESS,
    )


def tower_configuration(tower_id: TowerId) -> Call[TowerConfiguration]:
    """The technician's configuration download for a tower."""
    return Call(
        "GET", f"/sdk/v1/towers/{_tower(tower_id)}/configuration", TowerConfiguration.read, scope=Scope.TOWER_ACCESS
    )


def reset_tower_events(tower_id: TowerId, reason: str) -> Call[Tower]:
    """Reset the tower's event sync on Harbor's side, saying why; returns the tower."""
    return Call(
        "POST",
        f"/sdk/v1/towers/{_tower(tower_id)}/reset-events",
        Tower.read,
        scope=Scope.TOWER_ACCESS,
        json={"reason": reason},
        writes="reset a tower's events",
    )


#: operationId of contracts/harbor-api.yaml -> its builder.
OPERATIONS: Final[Mapping[str, Callable[..., Call[Any]]]] = {
    "loginAccessToken": login_access_token,
    "authorizeSdkUser": authorize_sdk_user,
    "testToken": token_info,
    "listTowerLockers": list_lockers,
    "getLocker": get_locker,
    "reserveLocker": reserve,
    "cancelReservation": cancel_reservation,
    "createDropoffToken": create_dropoff_token,
    "createPickupToken": create_pickup_token,
    "releaseLocker": release_locker,
    "getTowerAvailability": tower_availability,
    "listAssignedLockers": assigned_lockers,
    "listLockerTypes": locker_types,
    "listLocations": list_locations,
    "getClosestLocation": closest_location,
    "getLocation": get_location,
    "getLocationAvailability": location_availability,
    "createDropoffLockerRequest": create_dropoff_request,
    "createPickupLockerRequest": create_pickup_request,
    "getLockerOpenRequest": get_open_request,
    "createSessionToken": create_session_token,
    "uploadTowerEvents": upload_tower_events,
    "listTowerCommands": tower_commands,
    "loginSdkAccessToken": login_sdk_access_token,
    "listBleServices": ble_services,
    "getTowerConfiguration": tower_configuration,
    "resetTowerEvents": reset_tower_events,
}
