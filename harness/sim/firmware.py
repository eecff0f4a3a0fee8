"""The virtual tower's firmware: token checks, doors, the numbered event log. No radio.

One ``TowerFirmware`` per virtual tower. The control plane (``/_sim/towers/...``) and the BLE
server (``harness.sim.radio``) both call it, so the control plane is "the firmware without the
radio". Every method takes the world's lock; it is re-entrant, and safe to call from the radio's
own thread and event loop.

Token checks, in order (docs/design.md, "Firmware seam"): tower id (``AUTH_TOWER_ID`` 206),
signature (``AUTH_SIGNATURE`` 207), expiry (``MSG_EXPIRED`` 107), locker exists
(``SYS_LOCKER_NOT_FOUND`` 502), then the model's ``check_token`` (``AUTH_INVALID`` 201: a stale,
wrong-kind or wrong-door token). A payload that is not a token at all fails the signature check.

The event log is numbered from 0 (BOOT) and bounded like a tower's flash (``SimSettings.retention``):
it keeps what no phone has marked seen (SYNC_MARK_SEEN_EVENTS) plus a short tail of seen events,
and at most ``tower_events`` in all; when nobody syncs, the oldest unsynced events are overwritten
and the sync pointer moves on to the oldest kept. Event numbers never change when the log is trimmed.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import cbor2

from harness.ble.protocol import DeviceInfo, FirmwareCode, PacketType, encode_door_bits
from harness.model import (
    CloseDoor,
    Command,
    LockerState,
    LockerStatus,
    OpenAtTower,
    OpenDoor,
    Refusal,
    Refused,
    TokenClaim,
    TokenKind,
    check_token,
)

from ._bugs import BugSwitches
from ._dialects import Dialects
from ._layout import Layout, TowerSpec
from ._sealing import LockerTokenClaims, TowerKeys, mac, read_locker_claims, read_session_claims, verify_mac
from ._settings import SimSettings

__all__ = ["EventBatch", "FirmwareRefusal", "FirmwareWorld", "SessionGrant", "TowerEvent", "TowerFirmware"]

#: Events per SYNC_EVENTS batch; the SDK uploads in batches of 5 [S].
SYNC_BATCH = 5
#: What GET_DEVICE_INFO reports beyond identity [G]: a model name and a healthy battery.
DEVICE_MODEL = "virtual-tower"
BATTERY_MV = 3700


class FirmwareRefusal(Exception):
    """The tower refused; ``code`` is a Blink error code of reference 9.8.

    ``http_status`` is how the control plane answers it: 404 for an unknown locker, 409 when the
    locker's state forbids it (door already open, out of service), 403 otherwise.
    """

    def __init__(
        self, code: int, detail: str = "", *, locker_id: int | None = None, http_status: int | None = None
    ) -> None:
        self.code = FirmwareCode(code)
        self.detail = detail or self.code.name
        super().__init__(f"{self.detail} [{int(self.code)} {self.code.name}]")
        self.locker_id = locker_id
        if http_status is None:
            http_status = 404 if self.code is FirmwareCode.SYS_LOCKER_NOT_FOUND else 403
        self.http_status = http_status

    @property
    def name(self) -> str:
        return self.code.name


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a valid session request grants: the seed (secret), permissions, expiry, who asked."""

    tower_id: str
    permissions: tuple[str, ...]
    expires_at: float
    client_id: str
    user_id: str | None
    seed: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class TowerEvent:
    """One entry of the tower's numbered event log (what SYNC_PULL hands out)."""

    number: int
    type: PacketType
    timestamp: float
    locker_id: int | None = None
    token_id: int | None = None
    client_info: str = ""
    detail: str = ""

    def as_cbor_map(self) -> dict[str, object]:
        return {
            "n": self.number,
            "type": int(self.type),
            "ts": self.timestamp,
            "locker": self.locker_id,
            "token": self.token_id,
            "ci": self.client_info,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events ``start .. start+count-1`` sealed by the tower for the phone to upload unchanged."""

    start: int
    count: int
    payload: bytes
    payload_auth: bytes = field(repr=False)


class FirmwareWorld(Protocol):
    """What a tower's firmware needs of the world it stands in (the sandbox's ``World``): its lock
    and clock, the lockers' states and the one way they change, and the event log."""

    @property
    def lock(self) -> threading.RLock: ...

    @property
    def layout(self) -> Layout: ...

    @property
    def bugs(self) -> BugSwitches: ...

    @property
    def settings(self) -> SimSettings: ...

    @property
    def states(self) -> Mapping[int, LockerState]: ...

    def now(self) -> float: ...

    def current(self, locker_id: int, now: float) -> LockerState: ...

    def change(self, locker_id: int, command: Command, now: float) -> tuple[LockerState, LockerState]: ...

    def store(self, locker_id: int, state: LockerState) -> None: ...

    def show_instead(
        self, locker_id: int, status: LockerStatus, until_event: int | None, *, first_wins: bool = True
    ) -> None: ...

    def shown_status(self, locker_id: int, state: LockerState) -> LockerStatus: ...

    @property
    def dialects(self) -> Dialects: ...

    def emit(
        self,
        locker_id: int,
        source: str,
        state: LockerState,
        *,
        token_id: int | None = None,
        client_info: str = "",
        shown: LockerStatus | None = None,
    ) -> None: ...


class TowerFirmware:
    """One virtual tower: checks tokens and session requests, opens and closes doors, logs events."""

    def __init__(self, world: FirmwareWorld, spec: TowerSpec, keys: TowerKeys) -> None:
        self._world = world
        self._keys = keys
        self.tower_id = spec.id
        self.name = spec.name
        self.firmware_version = spec.firmware_version
        self.locker_ids: tuple[int, ...] = spec.locker_ids
        self._doors = {world.layout.lockers[i].name: i for i in spec.locker_ids}
        self._events: collections.deque[TowerEvent] = collections.deque()
        self._first = 0  # the number of self._events[0]: the oldest event still kept
        self._seen = 0  # the first event number no phone has marked seen (the sync pointer)
        self._booted_at = 0.0
        #: locker id -> (tenancy epoch, locker_token) the tower keeps for OPEN_AVAILABLE_LOCKER's match_token.
        self._locker_tokens: dict[int, tuple[int, bytes]] = {}
        #: Drop-off tokens that opened a door, oldest first (``SimSettings.single_use_tokens``), bounded.
        self._used_tokens: collections.OrderedDict[int, None] = collections.OrderedDict()

    def __repr__(self) -> str:
        return f"TowerFirmware({self.tower_id}, {self.name!r})"

    def reset(self) -> None:
        """Power-on: the event log restarts with a BOOT event, and the sync pointer with it."""
        with self._world.lock:
            self._events.clear()
            self._first = self._seen = 0
            self._booted_at = self._world.now()
            self._locker_tokens.clear()
            self._used_tokens.clear()
            self._log(PacketType.BOOT, detail=f"firmware {self.firmware_version}")

    def _log(self, type_: PacketType, **fields: object) -> TowerEvent:
        event = TowerEvent(self.next_event_number, type_, self._world.now(), **fields)  # type: ignore[arg-type]
        self._events.append(event)
        self._trim()
        return event

    def _trim(self) -> None:
        """Forget seen events beyond the tail, and the oldest of any beyond the log's capacity."""
        retention = self._world.settings.retention
        keep_from = max(self._seen - retention.tower_seen_tail, self.next_event_number - retention.tower_events)
        while self._first < keep_from:
            self._events.popleft()
            self._first += 1
        # Unsynced events overwritten: a phone syncs from the oldest the tower still has.
        self._seen = max(self._seen, self._first)

    def door_label(self, locker_id: int) -> str:
        return self._world.layout.lockers[locker_id].name

    def _require_locker(self, locker_id: int) -> None:
        if locker_id not in self.locker_ids:
            raise FirmwareRefusal(
                FirmwareCode.SYS_LOCKER_NOT_FOUND, "no such locker in this tower", locker_id=locker_id
            )

    # -- sessions -----------------------------------------------------------------------------

    def verify_session_request(self, payload: bytes, payload_auth: bytes) -> SessionGrant:
        """Check a session token from ``/sdk/v1/towers/{id}/session-token`` and open its seed."""
        with self._world.lock:
            claims = read_session_claims(payload)
            if claims is None:
                raise FirmwareRefusal(FirmwareCode.AUTH_SIGNATURE, "not a session token of this tower")
            if claims.tower_id != self.tower_id:
                raise FirmwareRefusal(FirmwareCode.AUTH_TOWER_ID, "the session token is for another tower")
            if not verify_mac(self._keys.session_auth, payload, payload_auth):
                raise FirmwareRefusal(FirmwareCode.AUTH_SIGNATURE, "the session token's signature is invalid")
            if self._world.now() >= claims.expires_at:
                raise FirmwareRefusal(FirmwareCode.MSG_EXPIRED, "the session token has expired")
            opened = read_session_claims(payload, self._keys)
            if opened is None or len(opened.seed) != 32:
                raise FirmwareRefusal(FirmwareCode.AUTH_SIGNATURE, "the session seed does not open")
            return SessionGrant(
                self.tower_id, opened.permissions, opened.expires_at, opened.client_id, opened.user_id, opened.seed
            )

    # -- doors --------------------------------------------------------------------------------

    def open_with_token(
        self, payload: bytes, payload_auth: bytes, *, at_locker: int | None = None, reopening: bool = False
    ) -> int:
        """Open the door the token is for (or ``at_locker``, where it is presented); its locker id.

        With ``SimSettings.single_use_tokens`` (default ``assumptions.DROPOFF_TOKEN_SINGLE_USE``) a
        drop-off token that opened a door once is refused (AUTH_INVALID) unless the session that used
        it asks to ``reopen`` (REOPEN_LOCKER).
        """
        world = self._world
        bugs = world.bugs
        with world.lock:
            now = world.now()
            claims = read_locker_claims(payload)
            if bugs.accept_any_token:
                return self._open_without_checks(claims, at_locker, now)
            if claims is None:
                raise FirmwareRefusal(FirmwareCode.AUTH_SIGNATURE, "not a locker token of this tower")
            if claims.tower_id != self.tower_id:
                raise FirmwareRefusal(FirmwareCode.AUTH_TOWER_ID, "the token is for another tower")
            if not verify_mac(self._keys.locker_auth, payload, payload_auth):
                raise FirmwareRefusal(FirmwareCode.AUTH_SIGNATURE, "the token's signature is invalid")
            if now >= claims.expires_at and not bugs.ignore_token_expiry:
                raise FirmwareRefusal(FirmwareCode.MSG_EXPIRED, "the token has expired", locker_id=claims.locker_id)
            target = claims.locker_id if at_locker is None else at_locker
            self._require_locker(target)
            claim = TokenClaim(claims.locker_id, claims.kind, claims.expires_at, claims.epoch, claims.holder)
            if bugs.ignore_token_expiry:
                claim = dataclasses.replace(claim, expires_at=math.inf)
            state = world.current(target, now)
            shown_before = world.shown_status(target, state)
            if (
                world.settings.single_use_tokens
                and not reopening
                and claims.kind is TokenKind.DROPOFF
                and claims.token_id in self._used_tokens
            ):
                raise FirmwareRefusal(
                    FirmwareCode.AUTH_INVALID, "the drop-off token was used already", locker_id=target
                )
            refusal = check_token(state, claim, target, now)
            planted = (refusal is Refusal.TOKEN_WRONG_LOCKER and bugs.token_opens_other_locker) or (
                refusal is Refusal.TOKEN_STALE and bugs.replay_after_pickup
            )
            if planted and not state.door_open:
                world.store(target, dataclasses.replace(state, door_open=True, opened_with=claim.kind))
            else:
                try:
                    world.change(target, OpenDoor(claim, target), now)
                except Refused as refused:
                    raise FirmwareRefusal(
                        FirmwareCode.AUTH_INVALID, refused.detail, locker_id=target,
                        http_status=refused.reason.http_status,
                    ) from None  # fmt: skip
            self._opened(target, claims, shown_before)
            if claims.kind is TokenKind.DROPOFF:
                self._used_tokens[claims.token_id] = None
                while len(self._used_tokens) > world.settings.retention.tower_events:
                    self._used_tokens.popitem(last=False)
            return target

    def _open_without_checks(self, claims: LockerTokenClaims | None, at_locker: int | None, now: float) -> int:
        """The ``accept_any_token`` bug: open the door the payload names, checking nothing."""
        target = at_locker
        if target is None and claims is not None:
            target = self._doors.get(claims.door)
        if target is None:
            raise FirmwareRefusal(FirmwareCode.SYS_LOCKER_NOT_FOUND, "the payload names no door of this tower")
        self._require_locker(target)
        state = self._world.current(target, now)
        kind = None if claims is None else claims.kind
        self._world.store(target, dataclasses.replace(state, door_open=True, opened_with=kind))
        self._opened(target, claims, state.status)
        return target

    def _opened(self, locker_id: int, claims: LockerTokenClaims | None, shown_before: LockerStatus) -> None:
        """Log the opening; a status it changed (a drop-off: occupied [S]) reaches the REST views as a
        door event does: at once with uplink, else once the tower's events are uploaded."""
        world = self._world
        token_id = None if claims is None else claims.token_id
        client_info = "" if claims is None else claims.client_info
        state = world.states[locker_id]
        event = self._log(PacketType.LOCKER_ACCESS, locker_id=locker_id, token_id=token_id, client_info=client_info)
        shown = None
        if state.status is not shown_before:
            if world.dialects.occupied_on_close and state.opened_with is TokenKind.DROPOFF:
                # The dialect's Harbor marks the drop-off on the door's close: until then it shows
                # (and its webhook says) what it showed before.
                world.show_instead(locker_id, shown_before, None)
                shown = shown_before
            elif not world.settings.uplink:
                world.show_instead(locker_id, shown_before, event.number)
        world.emit(locker_id, "LOCKER_TOKEN_USED", state, token_id=token_id, client_info=client_info, shown=shown)

    # -- lockers the tower opens on its own say (OPEN_AVAILABLE_LOCKER) -------------------------

    def _shut_and_in_service(self, locker_id: int, now: float) -> bool:
        state = self._world.current(locker_id, now)
        return not state.door_open and state.status is not LockerStatus.OUT_OF_SERVICE

    def available_by_type(self) -> dict[int, int]:
        """FIND_AVAILABLE_LOCKERS: how many lockers of each type are available, shut and in service
        (``assumptions.FOUND_LOCKERS_COUNTS_AVAILABLE``); types with none are left out."""
        world = self._world
        with world.lock:
            now = world.now()
            counts: collections.Counter[int] = collections.Counter()
            for locker_id in self.locker_ids:
                state = world.current(locker_id, now)
                if state.status is LockerStatus.AVAILABLE and not state.door_open:
                    counts[world.layout.lockers[locker_id].type_id] += 1
            return dict(sorted(counts.items()))

    def open_available(
        self,
        actor: str,
        *,
        locker_type: int | None,
        match_available: bool,
        match_token: bytes | None,
        locker_token: bytes,
        leave_available: bool,
        client_info: str = "",
    ) -> int:
        """OPEN_AVAILABLE_LOCKER: open the lowest matching door for ``actor`` (the session's client)
        and keep ``locker_token`` for it (``assumptions.OPEN_AVAILABLE_RULES``); its locker id.

        A locker matches when it is shut and in service, of ``locker_type`` (if given), available or
        not as ``match_available`` says, and (if ``match_token`` is given) keeps that token from an
        earlier OPEN_AVAILABLE_LOCKER of its tenancy. None: SYS_LOCKER_NOT_FOUND (502).
        """
        world = self._world
        with world.lock:
            now = world.now()

            def matches(locker_id: int, *, status_matters: bool = True) -> bool:
                if not self._shut_and_in_service(locker_id, now):
                    return False
                if locker_type is not None and world.layout.lockers[locker_id].type_id != locker_type:
                    return False
                state = world.states[locker_id]
                if status_matters and (state.status is LockerStatus.AVAILABLE) != match_available:
                    return False
                return match_token is None or self._locker_tokens.get(locker_id) == (state.epoch, match_token)

            if world.bugs.open_available_opens_held and match_available:
                held = [i for i in self.locker_ids if matches(i, status_matters=False)]
                if held and world.states[min(held)].status is not LockerStatus.AVAILABLE:
                    return self._open_held(min(held), client_info)
            candidates = [locker_id for locker_id in self.locker_ids if matches(locker_id)]
            if not candidates:
                raise FirmwareRefusal(
                    FirmwareCode.SYS_LOCKER_NOT_FOUND, "no locker of this tower matches", http_status=409
                )
            target = candidates[0]  # locker ids follow the door labels: the lowest door
            self.open_at_tower(target, actor, leave_available=leave_available, client_info=client_info)
            self._locker_tokens[target] = (world.states[target].epoch, locker_token)
            return target

    def open_at_tower(self, locker_id: int, actor: str, *, leave_available: bool, client_info: str = "") -> None:
        """Open ``locker_id`` for ``actor`` without a token (OPEN_AVAILABLE_LOCKER, and its REOPEN)."""
        world = self._world
        with world.lock:
            self._require_locker(locker_id)
            try:
                before, after = world.change(locker_id, OpenAtTower(actor, leave_available), world.now())
            except Refused as refused:
                raise FirmwareRefusal(
                    FirmwareCode.AUTH_INVALID, refused.detail, locker_id=locker_id,
                    http_status=refused.reason.http_status,
                ) from None  # fmt: skip
            event = self._log(PacketType.LOCKER_ACCESS, locker_id=locker_id, client_info=client_info, detail="at tower")
            world.emit(locker_id, "LOCKER_OPENED_AT_TOWER", after, client_info=client_info)
            if after.status is not before.status and not world.settings.uplink:
                world.show_instead(locker_id, before.status, event.number)

    def _open_held(self, locker_id: int, client_info: str) -> int:
        """The ``open_available_opens_held`` bug: a held locker's door opens; nothing else changes."""
        world = self._world
        state = world.states[locker_id]
        world.store(locker_id, dataclasses.replace(state, door_open=True, opened_with=None))
        self._log(PacketType.LOCKER_ACCESS, locker_id=locker_id, client_info=client_info, detail="at tower")
        return locker_id

    def doors_open(self) -> bytes:
        """CHECK_ALL_LOCKER_DOORS: the open doors as a bitfield by door label (``encode_door_bits``)."""
        world = self._world
        with world.lock:
            labels = {int(world.layout.lockers[i].name): world.states[i].door_open for i in self.locker_ids}
        return encode_door_bits((label for label, is_open in labels.items() if is_open), max(labels))

    def device_info(self) -> DeviceInfo:
        """GET_DEVICE_INFO: who this tower is, how long it has been up, its clock and battery."""
        with self._world.lock:
            now = self._world.now()
            return DeviceInfo(
                tower_id=self.tower_id,
                tower_name=self.name,
                firmware_version=self.firmware_version,
                device_model=DEVICE_MODEL,
                tower_serial=f"VT-{self.tower_id}",
                uptime=int(now - self._booted_at),
                clock_time=int(now),
                battery_mv=BATTERY_MV,
                lockers=len(self.locker_ids),
            )

    def door_open(self, locker_id: int) -> bool:
        with self._world.lock:
            self._require_locker(locker_id)
            return self._world.states[locker_id].door_open

    def close_door(self, locker_id: int) -> None:
        """A person closes the door; the model decides what the locker becomes."""
        world = self._world
        with world.lock:
            self._require_locker(locker_id)
            now = world.now()
            shown_before = world.shown_status(locker_id, world.current(locker_id, now))
            before, after = world.change(locker_id, CloseDoor(), now)
            if not before.door_open:
                return
            event = self._log(PacketType.LOCKER_UPDATE, locker_id=locker_id, detail="door closed")
            world.emit(locker_id, "LOCKER_DOOR_CLOSED", after)
            if after.status is not shown_before:
                if world.bugs.stale_status_after_close:
                    world.show_instead(locker_id, shown_before, None, first_wins=False)
                elif not world.settings.uplink:
                    world.show_instead(locker_id, shown_before, event.number)

    # -- the event log and sync ---------------------------------------------------------------

    def add_client_event(self, client_info: str) -> TowerEvent:
        """ADD_CLIENT_EVENT: the phone writes a note into the tower's log (500 bytes at most [S])."""
        if len(client_info.encode()) > 500:
            raise FirmwareRefusal(FirmwareCode.MSG_ITEM_LENGTH, "client_info is longer than 500 bytes")
        with self._world.lock:
            return self._log(PacketType.CLIENT_EVENT, client_info=client_info)

    def events_since(self, start: int) -> list[TowerEvent]:
        """The kept events numbered ``start`` and later (trimmed ones are gone: see ``first_event_number``)."""
        with self._world.lock:
            return list(itertools.islice(self._events, max(0, start - self._first), None))

    @property
    def next_event_number(self) -> int:
        with self._world.lock:
            return self._first + len(self._events)

    @property
    def first_event_number(self) -> int:
        """The oldest event still kept."""
        with self._world.lock:
            return self._first

    def sync_status(self) -> tuple[int, int]:
        """SYNC_STATUS: the first event no phone has marked seen, and how many follow it."""
        with self._world.lock:
            return self._seen, self.next_event_number - self._seen

    def mark_seen(self, upto: int) -> None:
        """SYNC_MARK_SEEN_EVENTS: events below ``upto`` reached Harbor; the log may let them go."""
        with self._world.lock:
            self._seen = max(self._seen, min(upto, self.next_event_number))
            self._trim()

    def event_batch(self, start: int, max_count: int = SYNC_BATCH) -> EventBatch:
        """Events from ``start`` (at most ``max_count``), sealed with the tower's events key.

        A ``start`` older than the oldest kept event begins at that event, and the batch says so
        in its own ``start``, so the phone's next pull and the upload's range stay right.
        """
        with self._world.lock:
            begin = max(start, self._first)
            offset = begin - self._first
            events = list(itertools.islice(self._events, offset, offset + max(0, max_count)))
        payload = cbor2.dumps({"start": begin, "count": len(events), "events": [e.as_cbor_map() for e in events]})
        return EventBatch(begin, len(events), payload, mac(self._keys.events_auth, payload))

    def verify_event_batch(self, start: int, count: int, payload: bytes, payload_auth: bytes) -> bool:
        """Whether an uploaded batch is this tower's, unchanged, for the range it claims."""
        if not verify_mac(self._keys.events_auth, payload, payload_auth):
            return False
        try:
            raw = cbor2.loads(payload)
        except Exception:  # a MAC that verifies over garbage cannot happen; be safe anyway
            return False
        return isinstance(raw, dict) and raw.get("start") == start and raw.get("count") == count
