"""What Harbor's side answers, as frozen dataclasses, and the reader that builds them.

Every body is checked against contracts/harbor-api.yaml as it is read, strictly where Harbor's
material is seen and tolerantly where the document writes down a guess (``harness.assumptions``):

- a missing field, a wrong type, a tower id that is not 16 hex digits, an available locker whose
  status id is not 1, is a ``ProductDefect(check="response_shape")`` naming the operation and the
  field;
- a token without ``id``, an open request without ``requestType``, an SDK token without
  ``token_type``, an ``expires`` without an offset (read as UTC), a status read by its name with
  another id than ours, a status name we do not know (kept under its own name) are read, and
  recorded as observations of the assumption they test: findings about our guesses, not defects.

Fields the document does not name are ignored (the document lists what a consumer relies on).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from harness.assumptions import Assumed, read_expires, read_status, record
from harness.errors import ProductDefect
from harness.model import LockerStatus, TokenKind, TowerId
from harness.redaction import Secret

__all__ = [
    "Availability",
    "BleService",
    "Location",
    "Locker",
    "LockerOpenRequest",
    "LockerToken",
    "LockerType",
    "LoginToken",
    "Reservation",
    "SdkToken",
    "SessionClaim",
    "SessionToken",
    "TokenInfo",
    "Tower",
    "TowerCommandBatch",
    "TowerConfiguration",
    "TypeAvailability",
]

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_HEX_OR_EMPTY = re.compile(r"(?:[0-9a-fA-F]{2})*")
_TOWER_ID = re.compile(r"[0-9a-fA-F]{16}")
_NOTHING_ADOPTED = Assumed()


class Reader:
    """A JSON value at a path inside one response; every accessor checks what it reads.

    ``assumed``: the assumptions in effect (``Settings.assume``), against which tolerant readings
    (statuses, times) record what they saw.
    """

    __slots__ = ("_assumed", "_path", "_value", "_where")

    def __init__(self, value: Any, where: str, path: str = "", assumed: Assumed = _NOTHING_ADOPTED) -> None:
        self._value = value
        self._where = where
        self._path = path
        self._assumed = assumed

    @property
    def where(self) -> str:
        """The request this answer came from (``POST /api/v1/...``)."""
        return self._where

    @property
    def assumed(self) -> Assumed:
        return self._assumed

    def has(self, key: str) -> bool:
        """Whether this object carries ``key`` (present and not null)."""
        return self._object().get(key) is not None

    @property
    def raw(self) -> Any:
        return self._value

    def defect(self, problem: str) -> ProductDefect:
        """A response-shape defect at this reader's path."""
        place = f"field {self._path!r}" if self._path else "the body"
        return ProductDefect(
            f"{self._where} answered a body that does not match the API document: {place} {problem}",
            check="response_shape",
        )

    def _object(self) -> Mapping[str, Any]:
        if not isinstance(self._value, Mapping):
            raise self.defect(f"should be an object, got {_kind(self._value)}")
        return self._value

    def _child_path(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self._path}[{key}]"
        return f"{self._path}.{key}" if self._path else key

    def __getitem__(self, key: str) -> Reader:
        """The required field ``key`` of this object."""
        body = self._object()
        if key not in body:
            raise Reader(None, self._where, self._child_path(key), self._assumed).defect("is missing")
        return Reader(body[key], self._where, self._child_path(key), self._assumed)

    def get(self, key: str) -> Reader | None:
        """The optional field ``key``; ``None`` when absent or null."""
        body = self._object()
        if body.get(key) is None:
            return None
        return Reader(body[key], self._where, self._child_path(key), self._assumed)

    def items(self) -> list[Reader]:
        if not isinstance(self._value, list):
            raise self.defect(f"should be an array, got {_kind(self._value)}")
        return [
            Reader(item, self._where, self._child_path(index), self._assumed) for index, item in enumerate(self._value)
        ]

    def mapping(self) -> dict[str, Any]:
        return dict(self._object())

    def integer(self, *, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self._value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.defect(f"should be an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.defect(f"should be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise self.defect(f"should be at most {maximum}, got {value}")
        return value

    def number(self) -> float:
        value = self._value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.defect(f"should be a number, got {_kind(value)}")
        return float(value)

    def boolean(self) -> bool:
        if not isinstance(self._value, bool):
            raise self.defect(f"should be a boolean, got {_kind(self._value)}")
        return self._value

    def text(self, *, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
        value = self._value
        if not isinstance(value, str):
            raise self.defect(f"should be a string, got {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.defect(f"should be {what or 'in the documented format'}, got {_shown(value)}")
        return value

    def uuid(self) -> UUID:
        """A UUID in its text form, any case."""
        text = self.text()
        try:
            return UUID(text)
        except ValueError:
            raise self.defect(f"should be a UUID, got {_shown(text)}") from None

    def hex(self, *, allow_empty: bool = False) -> str:
        return self.text(pattern=_HEX_OR_EMPTY if allow_empty else _HEX, what="an even-length hex string")

    def tower_id(self) -> TowerId:
        """A tower id, in the one spelling (``harness.model.TowerId``) whatever case the answer used."""
        return TowerId(self.text(pattern=_TOWER_ID, what="a tower id of 16 hex digits"))

    def timestamp(self) -> datetime:
        """An RFC 3339 time; one without an offset is read as UTC (``expires_offset`` is [I])."""
        text = self.text()
        moment = read_expires(text, self._assumed, self._where)
        if moment is None:
            raise self.defect(f"should be an RFC 3339 date-time, got {_shown(text)}")
        return moment


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "an object" if isinstance(value, Mapping) else type(value).__name__)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockerType:
    id: int
    name: str
    description: str | None = None

    @classmethod
    def read(cls, body: Reader) -> LockerType:
        description = body.get("description")
        return cls(
            id=body["id"].integer(minimum=1),
            name=body["name"].text(),
            description=description.text() if description is not None else None,
        )


def _status(body: Reader) -> LockerStatus:
    """A status read by its name (``harness.assumptions.read_status``): another id than ours, or a
    name we do not know, is an observation; only a seen fact broken is a defect."""
    name = body["name"].text()
    status_id = body["id"].integer()
    reading = read_status(name, status_id, body.assumed, body.where)
    if reading.broken is not None:
        raise body.defect(f"breaks what Harbor's material shows: {reading.broken}")
    return reading.status


@dataclass(frozen=True, slots=True)
class Locker:
    """One locker as the API shows it; ``id`` (not the door label ``name``) is what calls take."""

    id: int
    name: str
    tower_id: TowerId
    status: LockerStatus
    type: LockerType
    is_low_locker: bool
    access_mode: str

    @classmethod
    def read(cls, body: Reader) -> Locker:
        locker = cls(
            id=body["id"].integer(minimum=1),
            name=body["name"].text(),
            tower_id=body["towerId"].tower_id(),
            status=_status(body["status"]),
            type=LockerType.read(body["type"]),
            is_low_locker=body["isLowLocker"].boolean(),
            access_mode=body["accessMode"].text(),
        )
        record("locker_fields", True, body.where)
        return locker


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    tower_id: TowerId
    locker_id: int
    duration: int
    #: On the server's clock: compare with its ``Date`` header, never with the local clock.
    expires: datetime
    locker: Locker

    @classmethod
    def read(cls, body: Reader) -> Reservation:
        return cls(
            id=body["id"].integer(minimum=1),
            tower_id=body["towerId"].tower_id(),
            locker_id=body["lockerId"].integer(minimum=1),
            duration=body["duration"].integer(minimum=1),
            expires=body["expires"].timestamp(),
            locker=Locker.read(body["locker"]),
        )


@dataclass(frozen=True, slots=True)
class LockerToken:
    """A drop-off or pickup token: ``payload`` and ``payload_auth`` go to the tower as they are.

    ``id`` is ``None`` when the answer carries none (``token_id_field`` is a guess).
    """

    id: int | None
    kind: TokenKind
    tower_id: TowerId
    locker: Locker
    payload: str
    payload_auth: str = field(repr=False)  # secret: opens the locker
    expires: datetime
    client_info: str | None = None

    @classmethod
    def read(cls, body: Reader, kind: TokenKind) -> LockerToken:
        client_info = body.get("client_info")
        has_id = body.has("id")
        record("token_id_field", has_id, body.where)
        token = cls(
            id=body["id"].integer(minimum=1) if has_id else None,
            kind=kind,
            tower_id=body["tower_id"].tower_id(),
            locker=Locker.read(body["locker"]),
            payload=body["payload"].hex(),
            payload_auth=body["payload_auth"].hex(),
            expires=body["expires"].timestamp(),
            client_info=client_info.text() if client_info is not None else None,
        )
        record("token_payload_hex", True, body.where)
        return token


@dataclass(frozen=True, slots=True)
class TypeAvailability:
    type_id: int
    type_name: str
    available: int


@dataclass(frozen=True, slots=True)
class Availability:
    """Available lockers in all and by type (a tower's or a location's)."""

    available: int
    by_type: tuple[TypeAvailability, ...]

    @classmethod
    def read(cls, body: Reader) -> Availability:
        return cls(
            available=body["lockerAvailability"]["availableLockers"].integer(minimum=0),
            by_type=tuple(
                TypeAvailability(
                    type_id=item["lockerType"]["id"].integer(),
                    type_name=item["lockerType"]["name"].text(),
                    available=item["lockerAvailability"]["availableLockers"].integer(minimum=0),
                )
                for item in body["byType"].items()
            ),
        )

    def of_type(self, type_id: int) -> int:
        """Available lockers of one type (0 when the type is not listed)."""
        return sum(entry.available for entry in self.by_type if entry.type_id == type_id)


@dataclass(frozen=True, slots=True)
class Location:
    id: int
    name: str
    lat: float
    lon: float
    address1: str
    city: str
    state: str
    zip: str
    country: str
    description: str | None = None
    address2: str | None = None
    notes: str | None = None
    access_hours: Mapping[str, tuple[str, ...]] | None = None
    timezone: str | None = None

    @classmethod
    def read(cls, body: Reader) -> Location:
        hours = body.get("accessHours")
        access_hours = None
        if hours is not None:
            access_hours = {day: tuple(v.text() for v in hours[day].items()) for day in hours.mapping()}

        def optional(key: str) -> str | None:
            item = body.get(key)
            return item.text() if item is not None else None

        return cls(
            id=body["id"].integer(minimum=1),
            name=body["name"].text(),
            lat=body["lat"].number(),
            lon=body["lon"].number(),
            address1=body["address1"].text(),
            city=body["city"].text(),
            state=body["state"].text(),
            zip=body["zip"].text(),
            country=body["country"].text(),
            description=optional("description"),
            address2=optional("address2"),
            notes=optional("notes"),
            access_hours=access_hours,
            timezone=optional("timezone"),
        )


@dataclass(frozen=True, slots=True)
class LockerOpenRequest:
    """A locker open request (deep link); ``link_token`` opens the locker, so it is kept out of ``repr``.

    ``request_type`` is what the answer says (``requestType``, a guess), else what the request
    asked for, else ``None`` (a request read by id from an answer that does not say).
    """

    id: int
    request_type: TokenKind | None
    locker_id: int
    tower_id: TowerId
    link_token: str = field(repr=False)
    client_info: str | None = None
    payload: Mapping[str, Any] | None = None

    @classmethod
    def read(cls, body: Reader, asked: TokenKind | None = None) -> LockerOpenRequest:
        request_type = asked
        record("request_type_field", body.has("requestType"), body.where)
        if body.has("requestType"):
            kind = body["requestType"]
            try:
                request_type = TokenKind(kind.text())
            except ValueError:
                raise kind.defect(f"should be dropoff or pickup, got {kind.raw!r}") from None
            if asked is not None and request_type is not asked:
                raise kind.defect(f"should be {asked.value}, the request asked for, got {request_type.value}")
        client_info = body.get("clientInfo")
        payload = body.get("payload")
        return cls(
            id=body["id"].integer(minimum=1),
            request_type=request_type,
            locker_id=body["lockerId"].integer(minimum=1),
            tower_id=body["towerId"].tower_id(),
            link_token=body["linkToken"].text(),
            client_info=client_info.text() if client_info is not None else None,
            payload=payload.mapping() if payload is not None else None,
        )


class SessionClaim(enum.StrEnum):
    """What a BLE session may do (SDK ``SessionPermission``; role index = position) [S]."""

    SYNC = "sync_packet"
    LOCKER_PICKUP = "locker_pickup"
    LOCKER_DELIVERY = "locker_delivery"
    OWNER = "owner"
    TECHNICIAN = "technician"
    DEVELOPER = "developer"


@dataclass(frozen=True, slots=True)
class SessionToken:
    """The sealed session request for a tower; ``session_seed`` derives the session keys: secret."""

    tower_id: TowerId
    payload: str
    payload_auth: str = field(repr=False)
    session_seed: str = field(repr=False)

    @classmethod
    def read(cls, body: Reader) -> SessionToken:
        return cls(
            tower_id=body["tower_id"].tower_id(),
            payload=body["payload"].hex(),
            payload_auth=body["payload_auth"].hex(),
            session_seed=body["session_seed"].hex(),
        )


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """``login/test-token``: whose token it is, with which scope, for how much longer."""

    client_id: str
    scope: str
    expires_in: int

    @classmethod
    def read(cls, body: Reader) -> TokenInfo:
        return cls(
            client_id=body["client_id"].text(),
            scope=body["scope"].text(),
            expires_in=body["expires_in"].integer(minimum=0),
        )


@dataclass(frozen=True, slots=True)
class SdkToken:
    """``login/authorize``: the bearer token the mobile SDK sends to ``/sdk/v1`` (seen: ``access_token``;
    ``token_type`` is a guess, ``Bearer`` when the answer does not say)."""

    access_token: Secret
    token_type: str

    @classmethod
    def read(cls, body: Reader) -> SdkToken:
        record("token_type_field", body.has("token_type"), body.where)
        token_type = body["token_type"].text() if body.has("token_type") else "Bearer"
        return cls(*_bearer_token(body, token_type))


def _bearer_token(body: Reader, token_type: str) -> tuple[Secret, str]:
    """A login answer's non-empty ``access_token`` and its ``token_type``, which must say bearer (any case)."""
    if token_type.lower() != "bearer":
        raise body["token_type"].defect(f"should be bearer, got {_shown(token_type)}")
    token = body["access_token"].text()
    if not token:
        raise body["access_token"].defect("should not be empty")
    return Secret(token), token_type


@dataclass(frozen=True, slots=True)
class LoginToken:
    """A password login's answer (``login/access-token``, ``/api/v1`` or ``/sdk/v1``): ``{access_token,
    token_type}``, both seen [S], so unlike ``SdkToken`` a missing ``token_type`` is a defect."""

    access_token: Secret
    token_type: str

    @classmethod
    def read(cls, body: Reader) -> LoginToken:
        return cls(*_bearer_token(body, body["token_type"].text()))


@dataclass(frozen=True, slots=True)
class BleService:
    """A BLE service a phone scans for (``GET /sdk/v1/services/``); the UUID is seen [S], the name a guess [G]."""

    name: str
    uuid: UUID

    @classmethod
    def read(cls, body: Reader) -> BleService:
        return cls(name=body["name"].text(), uuid=body["uuid"].uuid())


@dataclass(frozen=True, slots=True)
class TowerConfiguration:
    """The technician's configuration download for a tower: commands as hex strings [S]."""

    tower_id: TowerId
    commands: tuple[str, ...]

    @classmethod
    def read(cls, body: Reader) -> TowerConfiguration:
        return cls(
            tower_id=body["towerId"].tower_id(),
            commands=tuple(item.hex(allow_empty=True) for item in body["commands"].items()),
        )


@dataclass(frozen=True, slots=True)
class Tower:
    """A tower as the SDK API shows it (reference 4.3: the fields are seen [S]); its PIN stays out of ``repr``."""

    id: TowerId
    name: str
    description: str
    system_id: int
    tower_model_id: int
    location_id: int
    pin_code: str = field(repr=False)
    access_mode_id: int
    is_for_test: bool

    @classmethod
    def read(cls, body: Reader) -> Tower:
        return cls(
            id=body["id"].tower_id(),
            name=body["name"].text(),
            description=body["description"].text(),
            system_id=body["systemId"].integer(),
            tower_model_id=body["towerModelId"].integer(),
            location_id=body["locationId"].integer(),
            pin_code=body["pinCode"].text(),
            access_mode_id=body["accessModeId"].integer(),
            is_for_test=body["isForTest"].boolean(),
        )


@dataclass(frozen=True, slots=True)
class TowerCommandBatch:
    """Commands waiting for a tower (``SYNC_PUSH`` them as they are)."""

    tower_id: TowerId
    sync_command_start: int
    sync_command_count: int
    payload: str
    payload_auth: str = field(repr=False)

    @classmethod
    def read(cls, body: Reader) -> TowerCommandBatch:
        return cls(
            tower_id=body["towerId"].tower_id(),
            sync_command_start=body["syncCommandStart"].integer(minimum=0),
            sync_command_count=body["syncCommandCount"].integer(minimum=0),
            payload=body["payload"].text(),
            payload_auth=body["payloadAuth"].text(),
        )
