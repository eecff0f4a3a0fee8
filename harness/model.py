"""The locker life cycle as plain data and pure functions: the spine everything is checked against.

The virtual sandbox enforces it, the property tests predict with it, the contract checks and
the load users assert it, the hardware rig waits for it. When Harbor's behaviour is learned
better, this file changes and nothing else should have to.

Where a fact comes from is marked as in the reference: [S] seen in Harbor's own material,
[I] inferred, [G] our documented guess. Status ids other than ``available = 1`` are [G].

No I/O, no clock: every function takes ``now`` (seconds on whatever clock the caller keeps).

Towers have one id type, ``TowerId``: 16 hex digits, accepted in any case and spelt upper-case
(the SDKs send upper-case hex and the service-provider API accepts any case [S, reference 3.1]).
It is parsed once where an id enters (configuration, the command line, an API answer, a BLE
advertisement) and passed on as it is; text that is not a tower id is ``InvalidTowerId``.
``TowerEventBatch`` is what a phone carries from a tower to Harbor (``SYNC_PULL`` to the events
upload): the API client sends it and the BLE client makes it.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "CLIENT_INFO_MAX",
    "HELD_STATUSES",
    "LOCKER_TYPES",
    "RESERVATION_DURATION",
    "TOKEN_DURATION",
    "TOWER_ID_BYTES",
    "TRANSITIONS",
    "Cancel",
    "CloseDoor",
    "Command",
    "Force",
    "InvalidTowerId",
    "IssueToken",
    "LockerState",
    "LockerStatus",
    "OpenAtTower",
    "OpenDoor",
    "Refusal",
    "Refused",
    "Release",
    "Reserve",
    "TokenClaim",
    "TokenKind",
    "TowerEventBatch",
    "TowerId",
    "apply",
    "available",
    "check_token",
    "next_expiry",
    "settle",
]


_TOWER_ID: Final = re.compile(r"[0-9A-Fa-f]{16}")
#: Bytes of a tower id on the wire (BLE advertisements, device info) [S].
TOWER_ID_BYTES: Final = 8


class InvalidTowerId(ValueError):
    """Text (or bytes) that is not a tower id; each edge says where it came from."""

    def __init__(self, value: object) -> None:
        super().__init__(f"{value!r} is not a tower id: expected 16 hex digits, e.g. 0100000000000014")
        self.value = value


class TowerId(str):
    """A tower's id: 16 hex digits, upper-case whatever case it was given in.

    ``TowerId(text)`` is the one parser (``InvalidTowerId`` otherwise); a ``TowerId`` given again
    is returned as it is. It is a ``str``, so it reads, prints, compares and serialises as one.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> TowerId:
        if isinstance(value, TowerId):
            return value
        if not isinstance(value, str) or not _TOWER_ID.fullmatch(value):
            raise InvalidTowerId(value)
        return super().__new__(cls, value.upper())

    @classmethod
    def or_none(cls, value: object) -> TowerId | None:
        """``value`` as a tower id if it is one, else ``None``: for what is read as data and trusted
        for nothing (a ledger row, an answer or a generated request the contract suite hands in)."""
        try:
            return cls(value) if isinstance(value, str) else None
        except InvalidTowerId:
            return None

    @classmethod
    def from_bytes(cls, raw: bytes) -> TowerId:
        """The id of its 8 bytes on the wire."""
        if len(raw) != TOWER_ID_BYTES:
            raise InvalidTowerId(raw)
        return cls(raw.hex())

    def to_bytes(self) -> bytes:
        """Its 8 bytes on the wire."""
        return bytes.fromhex(self)


@dataclass(frozen=True, slots=True)
class TowerEventBatch:
    """Tower events a phone pulled over BLE (``SYNC_PULL``), to pass on to Harbor as they are."""

    sync_event_start: int
    sync_event_count: int
    payload: str
    payload_auth: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The batch as the events upload carries it."""
        return {
            "syncEventStart": self.sync_event_start,
            "syncEventCount": self.sync_event_count,
            "payload": self.payload,
            "payloadAuth": self.payload_auth,
        }


class LockerStatus(enum.IntEnum):
    """The six statuses of Harbor's docs; ``value`` is ``status.id`` on the wire."""

    AVAILABLE = 1  # [S]
    RESERVED = 2  # [G] ids 2..6 follow the docs' listing order (status_ids in harness.assumptions)
    RENTED = 3
    OCCUPIED = 4
    DECLINED = 5
    OUT_OF_SERVICE = 6

    @property
    def wire_name(self) -> str:
        """``status.name`` as the API shows it (``out_of_service`` is [G]: ``status_names`` in
        ``harness.assumptions``); an unknown status's own name."""
        return self.name if self.value < 0 else self.name.lower()

    @property
    def is_known(self) -> bool:
        """One of the six (an unknown status is a name a target showed that the model does not know)."""
        return self.value > 0

    @classmethod
    def unknown(cls, name: str) -> LockerStatus:
        """A status outside the six, kept under the name a target gave it, so a reader can show it
        instead of failing on it (``harness.assumptions.read_status``).

        It is none of the six, and its value (negative, one per name) is no status id: nothing
        holds a locker in it, no transition leads from it, and iterating the enum never yields it.
        """
        with _UNKNOWN_LOCK:
            known = _UNKNOWN.get(name)
            if known is None:
                known = int.__new__(cls, -1 - len(_UNKNOWN))
                known._name_ = name
                known._value_ = int(known)
                _UNKNOWN[name] = known
            return known

    @classmethod
    def from_wire(cls, name: str, status_id: int | None = None) -> LockerStatus:
        """The status for an API ``status`` object; raises ``ValueError`` if name and id disagree."""
        status = cls[name.upper()]
        if status_id is not None and status_id != status.value:
            raise ValueError(f"status {name!r} has id {status.value}, not {status_id}")
        return status


#: Unknown statuses met so far, by name (``LockerStatus.unknown``): one member per name.
_UNKNOWN: dict[str, LockerStatus] = {}
_UNKNOWN_LOCK = threading.Lock()

#: Statuses in which someone holds the locker and nobody else may reserve it or get a token.
HELD_STATUSES = frozenset({LockerStatus.RESERVED, LockerStatus.RENTED, LockerStatus.OCCUPIED, LockerStatus.DECLINED})

#: Locker type ids [S] 1..3, [S3] 4.
LOCKER_TYPES: Mapping[int, str] = {1: "small", 2: "medium", 3: "large", 4: "xlarge"}

#: Accepted ``duration`` bounds in seconds, inclusive [G]: long enough for a real delivery,
#: short enough that a forgotten hold frees itself within a day (reservations) or a week (tokens).
RESERVATION_DURATION = (1, 86_400)
TOKEN_DURATION = (1, 604_800)
#: ``client_info`` is echoed into tower events; the SDK caps client events at 500 bytes [S].
CLIENT_INFO_MAX = 500


class TokenKind(enum.StrEnum):
    DROPOFF = "dropoff"
    PICKUP = "pickup"


class Refusal(enum.Enum):
    """Why a command was refused; ``http_status`` is how Harbor's side answers it [G]."""

    HELD_BY_OTHER = "held_by_other"  # someone else holds it: only the holder may act
    NOT_HOLDER = "not_holder"  # no such reservation of the actor's on this locker
    HELD = "held"  # already held: cannot be reserved
    WRONG_STATUS = "wrong_status"  # the command does not apply in the locker's status
    OUT_OF_SERVICE = "out_of_service"
    DOOR_OPEN = "door_open"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_WRONG_LOCKER = "token_wrong_locker"
    TOKEN_STALE = "token_stale"  # the locker has moved on since the token was issued
    TOKEN_WRONG_KIND = "token_wrong_kind"

    @property
    def http_status(self) -> int:
        return 403 if self in _FORBIDDEN else 409


_FORBIDDEN = frozenset(
    {
        Refusal.HELD_BY_OTHER,
        Refusal.NOT_HOLDER,
        Refusal.TOKEN_EXPIRED,
        Refusal.TOKEN_WRONG_LOCKER,
        Refusal.TOKEN_STALE,
        Refusal.TOKEN_WRONG_KIND,
    }
)


class Refused(Exception):
    """A command the model does not allow in the locker's state."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class LockerState:
    """Everything the life cycle needs to know about one locker.

    ``epoch`` counts tenancies: it grows each time the locker becomes available again, and a
    token is only good for the epoch it was issued in, so a drop-off token cannot be replayed
    after the pickup [I].
    """

    status: LockerStatus = LockerStatus.AVAILABLE
    holder: str | None = None
    reservation_id: int | None = None
    reservation_expires_at: float | None = None
    #: Latest expiry of the tokens issued in this epoch; a rented or declined locker whose
    #: tokens have all expired unused returns to available ("yours until the token expires" [S]).
    token_expires_at: float | None = None
    epoch: int = 0
    door_open: bool = False
    opened_with: TokenKind | None = None


def available(state: LockerState) -> LockerState:
    """The locker freed for the next tenancy."""
    return LockerState(epoch=state.epoch + 1)


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reserve:
    actor: str
    duration: int
    reservation_id: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel a reservation (``cancelReservation()`` [S])."""

    actor: str
    reservation_id: int | None = None


@dataclass(frozen=True, slots=True)
class IssueToken:
    actor: str
    kind: TokenKind
    duration: int


@dataclass(frozen=True, slots=True)
class Release:
    """``release-locker`` [S3]: ends a hold without a delivery."""

    actor: str


@dataclass(frozen=True, slots=True)
class TokenClaim:
    """What a locker token promises: which locker, what for, until when, for which tenancy."""

    locker_id: int
    kind: TokenKind
    expires_at: float
    epoch: int
    holder: str


@dataclass(frozen=True, slots=True)
class OpenDoor:
    """The tower opens the door for a token presented at ``locker_id``."""

    claim: TokenClaim
    locker_id: int


@dataclass(frozen=True, slots=True)
class OpenAtTower:
    """The tower opens a locker on a session's own say, without a Harbor token (OPEN_AVAILABLE_LOCKER
    [S]; what the locker becomes is [G]). An available locker is taken by ``actor`` while its door
    is open (rented); when the door closes it holds ``actor``'s item (occupied), or, with
    ``leave_available``, is free again. An occupied locker of ``actor``'s is emptied on close with
    ``leave_available`` (a pickup), or stays occupied (another drop-off)."""

    actor: str
    leave_available: bool


@dataclass(frozen=True, slots=True)
class CloseDoor:
    """A person closes the door."""


@dataclass(frozen=True, slots=True)
class Force:
    """Staff set a status from the admin console, as Harbor Console can [S3]; ends any hold."""

    status: LockerStatus


Command = Reserve | Cancel | IssueToken | Release | OpenDoor | OpenAtTower | CloseDoor | Force


# -- the life cycle ---------------------------------------------------------------------------


def settle(state: LockerState, now: float) -> LockerState:
    """Apply whatever expired by ``now``: reservations, and tokens of a locker never opened."""
    # Nothing expires under an open door (next_expiry is None then); the close decides.
    expires_at = next_expiry(state)
    return available(state) if expires_at is not None and now >= expires_at else state


def next_expiry(state: LockerState) -> float | None:
    """When ``settle`` will next change this state by itself, if ever."""
    if state.door_open:
        return None
    if state.status is LockerStatus.RESERVED:
        return state.reservation_expires_at
    if state.status in (LockerStatus.RENTED, LockerStatus.DECLINED):
        return state.token_expires_at
    return None


def _later(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def _require_holder(state: LockerState, actor: str) -> None:
    if state.holder != actor:
        raise Refused(Refusal.HELD_BY_OTHER, "the locker is held by another party")


def apply(state: LockerState, command: Command, now: float) -> LockerState:
    """The state after ``command`` at ``now``, or ``Refused`` saying why not.

    Expiries are settled first, so callers never see a reservation outlive its duration.
    """
    state = settle(state, now)
    status = state.status
    if isinstance(command, Force):
        if command.status is LockerStatus.AVAILABLE:
            return available(state)
        if command.status is LockerStatus.OUT_OF_SERVICE:
            return dataclasses.replace(available(state), status=LockerStatus.OUT_OF_SERVICE)
        raise Refused(Refusal.WRONG_STATUS, "staff may only force available or out of service")
    if status is LockerStatus.OUT_OF_SERVICE and not isinstance(command, CloseDoor):
        raise Refused(Refusal.OUT_OF_SERVICE, "the locker is out of service")

    match command:
        case Reserve(actor=actor, duration=duration, reservation_id=reservation_id):
            if status is not LockerStatus.AVAILABLE:
                raise Refused(Refusal.HELD, f"the locker is {status.wire_name}, not available")
            return dataclasses.replace(
                state,
                status=LockerStatus.RESERVED,
                holder=actor,
                reservation_id=reservation_id,
                reservation_expires_at=now + duration,
            )

        case Cancel(actor=actor, reservation_id=reservation_id):
            if status is not LockerStatus.RESERVED:
                raise Refused(Refusal.WRONG_STATUS, f"the locker is {status.wire_name}, not reserved")
            _require_holder(state, actor)
            if reservation_id is not None and reservation_id != state.reservation_id:
                raise Refused(Refusal.NOT_HOLDER, "no such reservation on this locker")
            return available(state)

        case IssueToken(actor=actor, kind=TokenKind.DROPOFF, duration=duration):
            # Available or reserved -> rented [S]; rented -> rented [S]; declined -> rented [S];
            # occupied -> occupied, a second drop-off into the same locker [S].
            if status is not LockerStatus.AVAILABLE:
                _require_holder(state, actor)
            if state.door_open:
                raise Refused(Refusal.DOOR_OPEN, "the door is open")
            new_status = LockerStatus.OCCUPIED if status is LockerStatus.OCCUPIED else LockerStatus.RENTED
            return dataclasses.replace(
                state,
                status=new_status,
                holder=actor,
                reservation_id=None,
                reservation_expires_at=None,
                token_expires_at=_later(state.token_expires_at, now + duration),
            )

        case IssueToken(actor=actor, kind=TokenKind.PICKUP, duration=duration):
            if status is not LockerStatus.OCCUPIED:
                raise Refused(Refusal.WRONG_STATUS, f"the locker is {status.wire_name}, not occupied")
            _require_holder(state, actor)
            return dataclasses.replace(state, token_expires_at=_later(state.token_expires_at, now + duration))

        case Release(actor=actor):
            # Reserved -> available (a cancel); rented -> declined [S]; declined -> available, our
            # reading of "leaves via a release token" [G]. An item inside cannot be released.
            if status is LockerStatus.AVAILABLE:
                raise Refused(Refusal.WRONG_STATUS, "the locker is not held")
            _require_holder(state, actor)
            if state.door_open:
                raise Refused(Refusal.DOOR_OPEN, "the door is open")
            if status is LockerStatus.RENTED:
                return dataclasses.replace(state, status=LockerStatus.DECLINED)
            if status in (LockerStatus.RESERVED, LockerStatus.DECLINED):
                return available(state)
            raise Refused(Refusal.WRONG_STATUS, f"the locker is {status.wire_name}: an item is inside")

        case OpenDoor(claim=claim, locker_id=locker_id):
            refusal = check_token(state, claim, locker_id, now)
            if refusal is not None:
                raise Refused(refusal, _TOKEN_REFUSALS[refusal])
            # A drop-off token used is the item in: occupied as the door opens [S] (reference 7, and
            # the LOCKER_TOKEN_USED webhook says "occupied"), not when it closes.
            status = LockerStatus.OCCUPIED if claim.kind is TokenKind.DROPOFF else status
            return dataclasses.replace(state, status=status, door_open=True, opened_with=claim.kind)

        case OpenAtTower(actor=actor, leave_available=leave_available):
            if state.door_open:
                raise Refused(Refusal.DOOR_OPEN, "the door is already open")
            # The door's closing decides, as for a token: "pickup" empties it, "dropoff" fills it.
            opened_with = TokenKind.PICKUP if leave_available else TokenKind.DROPOFF
            if status is LockerStatus.AVAILABLE:
                return dataclasses.replace(
                    state, status=LockerStatus.RENTED, holder=actor, door_open=True, opened_with=opened_with
                )
            if status is LockerStatus.OCCUPIED:
                _require_holder(state, actor)
                return dataclasses.replace(state, door_open=True, opened_with=opened_with)
            raise Refused(
                Refusal.WRONG_STATUS, f"the locker is {status.wire_name}: the tower opens it for its token only"
            )

        case CloseDoor():
            if not state.door_open:
                return state
            if state.opened_with is TokenKind.PICKUP:
                return available(state)  # the item is out: the next tenancy begins [S seed]
            if state.opened_with is TokenKind.DROPOFF and state.status is LockerStatus.RENTED:
                # Opened at the tower for a drop-off (OpenAtTower): the item is in once the door closes [G].
                return dataclasses.replace(state, status=LockerStatus.OCCUPIED, door_open=False, opened_with=None)
            # After a token's drop-off the locker is occupied already (it turned so on the open [S]);
            # its drop-off tokens may still reopen it for a second drop-off.
            return dataclasses.replace(state, door_open=False, opened_with=None)

    raise TypeError(f"not a locker command: {command!r}")


_TOKEN_REFUSALS = {
    Refusal.TOKEN_EXPIRED: "the token has expired",
    Refusal.TOKEN_WRONG_LOCKER: "the token is for another locker",
    Refusal.TOKEN_STALE: "the locker has moved on since the token was issued",
    Refusal.TOKEN_WRONG_KIND: "the token does not apply in the locker's status",
    Refusal.DOOR_OPEN: "the door is already open",
    Refusal.OUT_OF_SERVICE: "the locker is out of service",
}


def check_token(state: LockerState, claim: TokenClaim, locker_id: int, now: float) -> Refusal | None:
    """Whether a token may open ``locker_id`` now; ``None`` means it may.

    A drop-off token opens a rented locker, or an occupied one for a second drop-off; a pickup
    token opens an occupied locker. Both only for the tenancy they were issued in.
    """
    if claim.locker_id != locker_id:
        return Refusal.TOKEN_WRONG_LOCKER
    if now >= claim.expires_at:
        return Refusal.TOKEN_EXPIRED
    state = settle(state, now)
    if claim.epoch != state.epoch:
        return Refusal.TOKEN_STALE
    if state.status is LockerStatus.OUT_OF_SERVICE:
        return Refusal.OUT_OF_SERVICE
    if state.door_open:
        return Refusal.DOOR_OPEN
    if claim.kind is TokenKind.DROPOFF and state.status not in (LockerStatus.RENTED, LockerStatus.OCCUPIED):
        return Refusal.TOKEN_WRONG_KIND
    if claim.kind is TokenKind.PICKUP and state.status is not LockerStatus.OCCUPIED:
        return Refusal.TOKEN_WRONG_KIND
    return None


#: The allowed status changes, as data: (from, command, to). Tests and docs read this table;
#: ``apply`` is the authority and a test checks that the two agree.
TRANSITIONS: frozenset[tuple[LockerStatus, str, LockerStatus]] = frozenset(
    {
        (LockerStatus.AVAILABLE, "reserve", LockerStatus.RESERVED),
        (LockerStatus.RESERVED, "cancel", LockerStatus.AVAILABLE),
        (LockerStatus.RESERVED, "expire", LockerStatus.AVAILABLE),
        (LockerStatus.RESERVED, "release", LockerStatus.AVAILABLE),
        (LockerStatus.AVAILABLE, "dropoff_token", LockerStatus.RENTED),
        (LockerStatus.RESERVED, "dropoff_token", LockerStatus.RENTED),
        (LockerStatus.RENTED, "dropoff_token", LockerStatus.RENTED),
        (LockerStatus.DECLINED, "dropoff_token", LockerStatus.RENTED),
        (LockerStatus.OCCUPIED, "dropoff_token", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "pickup_token", LockerStatus.OCCUPIED),
        (LockerStatus.RENTED, "release", LockerStatus.DECLINED),
        (LockerStatus.DECLINED, "release", LockerStatus.AVAILABLE),
        (LockerStatus.RENTED, "expire", LockerStatus.AVAILABLE),
        (LockerStatus.DECLINED, "expire", LockerStatus.AVAILABLE),
        # A door a token opened: the drop-off fills the locker as the door opens [S]; the pickup
        # empties it when the door closes. "*_door_closed" starts from the status while it is open.
        (LockerStatus.RENTED, "dropoff_door_opened", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "dropoff_door_opened", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "dropoff_door_closed", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "pickup_door_opened", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "pickup_door_closed", LockerStatus.AVAILABLE),
        # The tower's own opening (OPEN_AVAILABLE_LOCKER [G]), door opened and closed.
        (LockerStatus.AVAILABLE, "tower_dropoff_door_closed", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "tower_dropoff_door_closed", LockerStatus.OCCUPIED),
        (LockerStatus.OCCUPIED, "tower_pickup_door_closed", LockerStatus.AVAILABLE),
    }
)
