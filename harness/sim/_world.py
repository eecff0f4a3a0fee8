"""The sandbox's one world: every locker's model state, the records around it, the event log.

One ``threading.RLock`` guards all of it: uvicorn's loop and the virtual radio's thread both
call in, and every critical section is a few microseconds of pure work. Every locker change goes
through ``harness.model.apply`` and every read settles first (``_current``), so the sandbox
enforces the model instead of re-implementing it; the only bypasses are the bug switches'.

Methods return prepared dicts in the API document's shapes: the handlers only serialise them.

History is bounded (``SimSettings.retention``): the webhook event log is a ring, ended
reservations and old links are forgotten oldest first, so memory stays flat however long it runs.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import math
import os
import secrets
import threading
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from harness.model import (
    HELD_STATUSES,
    LOCKER_TYPES,
    Cancel,
    CloseDoor,
    Command,
    Force,
    InvalidTowerId,
    IssueToken,
    LockerState,
    LockerStatus,
    OpenDoor,
    Refusal,
    Refused,
    Release,
    Reserve,
    TokenClaim,
    TokenKind,
    TowerId,
    apply,
    settle,
)

from ._bugs import BugSwitches
from ._clock import VirtualClock, iso_timestamp
from ._dialects import Dialects
from ._faults import Faults
from ._layout import BACKGROUND_TENANT, Layout, LockerSpec, TowerSpec, initial_statuses, seeded_layout
from ._sealing import LockerTokenClaims, SessionClaims, TowerKeys, seal_locker_token, seal_session_token
from ._settings import SimSettings
from ._webhooks import SIGNATURE_HEADER, SIGNATURE_HEADER_DIALECT, WebhookDeliveries
from .firmware import TowerFirmware

__all__ = ["DROPOFF_REQUEST_HOLD", "EventsGone", "World", "WorldError"]

#: A drop-off link reserves its locker for 5 minutes, not configurable [S3].
DROPOFF_REQUEST_HOLD = 300
#: Pickup links let the locker be opened for this long [G].
PICKUP_REQUEST_VALIDITY = 86_400


class WorldError(Exception):
    """A request the world refuses before the model is asked: unknown ids (404) and the like."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class EventsGone(WorldError):
    """Events from ``since`` on were asked for, but the ring no longer holds the first of them (410)."""

    def __init__(self, since: int, oldest: int, following: int) -> None:
        super().__init__(410, f"events before {oldest} are no longer kept (asked from {since}); read from {oldest} on")
        self.oldest = oldest
        self.next = following


@dataclass(slots=True)
class Reservation:
    id: int
    tower_id: str
    locker_id: int
    holder: str
    duration: int
    expires_at: float


@dataclass(slots=True)
class OpenRequest:
    id: int
    kind: TokenKind
    holder: str
    tower_id: str
    locker_id: int
    link_token: str
    client_info: str
    payload: dict[str, Any]
    return_url: str


@dataclass(frozen=True, slots=True)
class _Event:
    """A webhook event as the ring keeps it; shaped as Harbor's ``LOCKER_OPERATION`` only when read
    (about a quarter of the memory of the dict, and a soak keeps ten thousand of them)."""

    sequence: int
    at: float
    locker_id: int
    tower_id: str
    status: str  # the status's name as Harbor's webhook shows it (the dialects' spelling)
    source: str
    reservation_id: int | None
    token_id: int | None
    client_info: str
    request: OpenRequest | None

    def as_webhook(self) -> dict[str, Any]:
        """The event as ``/_sim/events`` serves it: its ``sequence`` and Harbor's envelope."""
        return {"sequence": self.sequence, **self.envelope()}

    def envelope(self) -> dict[str, Any]:
        """The event as Harbor's webhooks shape it (reference section 6), exactly what a receiver gets."""
        request = self.request
        return {
            "timestamp": iso_timestamp(self.at, timespec="seconds")[:19],
            "event": "LOCKER_OPERATION",
            "data": {
                "timestamp": iso_timestamp(self.at),
                "locker_id": self.locker_id,
                "locker_status": self.status,
                "tower_id": self.tower_id,
                "source": self.source,
                "reservation_id": self.reservation_id,
                "open_locker_token_id": self.token_id,
                "keypad_code": None,
                "client_info": self.client_info,
                "locker_open_request_id": None if request is None else request.id,
                "locker_open_request_payload": None if request is None else request.payload,
            },
        }


def _forget_oldest(records: MutableMapping[int, Any], excess: int, keep: Callable[[Any], bool]) -> None:
    """Delete up to ``excess`` of the oldest ``records`` (insertion order) for which ``keep`` is false."""
    for key in [key for key, record in records.items() if not keep(record)][:excess]:
        del records[key]


def status_name(status: LockerStatus, *, spaced: bool = False) -> str:
    """``status.name`` as the API shows it; ``spaced``: the ``out_of_service_spaced`` dialect's spelling."""
    return "out of service" if spaced and status is LockerStatus.OUT_OF_SERVICE else status.wire_name


def _status_id(status: LockerStatus, shifted: bool) -> int:
    """``status.id``: the model's, or the ``status_ids_shifted`` dialect's (available 1 [S], the others + 10)."""
    return int(status) if not shifted or status is LockerStatus.AVAILABLE else int(status) + 10


@functools.cache
def _status_views(*, shifted: bool, spaced: bool, misnumbered: bool) -> dict[LockerStatus, dict[str, Any]]:
    """Each status's ``{name, id}`` object under the dialects given. ``misnumbered``: the
    ``wrong_status_id`` bug, each name with the next status's id in the same numbering (without a
    dialect still 1..6, so the schema cannot tell)."""
    statuses = list(LockerStatus)
    return {
        status: {
            "name": status_name(status, spaced=spaced),
            "id": _status_id(statuses[(index + 1) % len(statuses)] if misnumbered else status, shifted),
        }
        for index, status in enumerate(statuses)
    }


class World:
    """Locations, towers, lockers and everything that happened to them, behind one lock."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.layout: Layout = seeded_layout()
        self.lock = threading.RLock()
        self.clock = VirtualClock()
        self.bugs = BugSwitches()
        self.dialects = Dialects()
        self.dialects.update(dict.fromkeys(settings.dialects, True))
        #: The receivers of webhooks; they outlive ``reset`` (who listens is not the world's state).
        self.webhooks = WebhookDeliveries(settings.webhook_delivery, self._signature_header)
        for webhook in settings.webhooks:
            self.webhooks.add(webhook)
        self.faults = Faults(settings.seed)
        self.secret = settings.secret if settings.secret is not None else os.urandom(32)
        self._keys = {tower_id: TowerKeys.derive(self.secret, tower_id) for tower_id in self.layout.towers}
        self.firmwares: dict[str, TowerFirmware] = {
            tower_id: TowerFirmware(self, spec, self._keys[tower_id]) for tower_id, spec in self.layout.towers.items()
        }
        self._static_views = {spec.id: self._static_view(spec) for spec in self.layout.lockers.values()}
        self.seed = settings.seed
        self._reset_records()

    # -- setup --------------------------------------------------------------------------------

    def _signature_header(self) -> str:
        return SIGNATURE_HEADER_DIALECT if self.dialects.webhook_signature_header else SIGNATURE_HEADER

    @staticmethod
    def _static_view(spec: LockerSpec) -> dict[str, Any]:
        return {
            "id": spec.id,
            "name": spec.name,
            "isLowLocker": spec.is_low,
            "towerId": spec.tower_id,
            "type": {"name": spec.type_name, "description": None, "id": spec.type_id},
            "accessMode": "public",
        }

    def _reset_records(self) -> None:
        retention = self.settings.retention
        self.states: dict[int, LockerState] = {}
        #: Insertion order is age order: forgetting takes the oldest first.
        self.reservations: dict[int, Reservation] = {}
        self._latest_reservation: dict[int, int] = {}  # locker id -> its newest reservation's id
        self.open_requests: dict[int, OpenRequest] = {}
        self._ids = itertools.count(1)  # reservation, token and request ids share one sequence
        self._events: collections.deque[_Event] = collections.deque(maxlen=retention.webhook_events)
        self._next_sequence = 0
        #: Status the REST views show instead of the truth: a stale view after a close (bug) or,
        #: without uplink, the status before tower events not yet uploaded.
        self._shown: dict[int, tuple[LockerStatus, int | None]] = {}
        now = self.clock.now()
        for locker_id, status in initial_statuses(self.layout, self.seed).items():
            state = LockerState()
            if status is LockerStatus.OUT_OF_SERVICE:
                state = apply(state, Force(LockerStatus.OUT_OF_SERVICE), now)
            elif status is LockerStatus.OCCUPIED:
                claim = TokenClaim(locker_id, TokenKind.DROPOFF, math.inf, state.epoch, BACKGROUND_TENANT)
                for command in (
                    IssueToken(BACKGROUND_TENANT, TokenKind.DROPOFF, 1),
                    OpenDoor(claim, locker_id),
                    CloseDoor(),
                ):
                    state = apply(state, command, now)
            self.states[locker_id] = state
        for firmware in self.firmwares.values():
            firmware.reset()

    def reset(self, seed: int | None = None) -> None:
        """The seeded world again: switches, dialects and faults off, clock offset 0, logs empty."""
        with self.lock:
            if seed is not None:
                self.seed = seed
            self.bugs.reset()
            self.dialects.reset()
            self.faults.clear()
            self.faults.reseed(self.seed)
            self.clock.reset()
            self._reset_records()

    def next_id(self) -> int:
        return next(self._ids)

    def _keep_reservation(self, reservation: Reservation) -> None:
        """Record a new reservation; forget the oldest ended ones past the retention bound.

        In force (the locker's state names it) or its locker's latest: never forgotten, so a
        cancel of either answers as the model says. Ended ones are dropped a quarter of the bound
        at a time, so the sweep costs O(1) per reservation on average.
        """
        self.reservations[reservation.id] = reservation
        self._latest_reservation[reservation.locker_id] = reservation.id
        bound = self.settings.retention.reservations
        if len(self.reservations) > bound:

            def in_use(old: Reservation) -> bool:
                return (
                    self.states[old.locker_id].reservation_id == old.id
                    or self._latest_reservation[old.locker_id] == old.id
                )

            _forget_oldest(self.reservations, len(self.reservations) - bound * 3 // 4, in_use)

    def _keep_request(self, request: OpenRequest) -> None:
        """Record a locker open request; forget the oldest past the retention bound."""
        self.open_requests[request.id] = request
        bound = self.settings.retention.open_requests
        if len(self.open_requests) > bound:
            _forget_oldest(self.open_requests, len(self.open_requests) - bound * 3 // 4, lambda _request: False)

    def now(self) -> float:
        return self.clock.now()

    # -- lookups ------------------------------------------------------------------------------

    def tower(self, tower_id: str) -> TowerSpec:
        try:
            spec = self.layout.towers.get(TowerId(tower_id))
        except InvalidTowerId:
            spec = None
        if spec is None:
            raise WorldError(404, "Tower not found")
        return spec

    def locker_spec(self, tower_id: str, locker_id: int) -> LockerSpec:
        tower = self.tower(tower_id)
        spec = self.layout.lockers.get(locker_id)
        if spec is None or spec.tower_id != tower.id:
            raise WorldError(404, "Locker not found")
        return spec

    # -- the model, and the only places state changes -----------------------------------------

    def current(self, locker_id: int, now: float) -> LockerState:
        """The locker's state with whatever expired by ``now`` applied (and logged)."""
        state = self.states[locker_id]
        if self.bugs.reservation_never_expires and state.status is LockerStatus.RESERVED:
            return state
        settled = settle(state, now)
        if settled is not state:
            self.states[locker_id] = settled
            self._shown.pop(locker_id, None)
            source = "RESERVATION_EXPIRED" if state.status is LockerStatus.RESERVED else "LOCKER_TOKENS_EXPIRED"
            self.emit(locker_id, source, settled, reservation_id=state.reservation_id)
        return settled

    def change(self, locker_id: int, command: Command, now: float) -> tuple[LockerState, LockerState]:
        """``(before, after)`` of ``command`` through ``harness.model.apply``; ``Refused`` propagates."""
        before = self.current(locker_id, now)
        state = before
        if self.bugs.reservation_never_expires and state.status is LockerStatus.RESERVED:
            state = dataclasses.replace(state, reservation_expires_at=None)  # apply() must not expire it
        try:
            after = apply(state, command, now)
        except Refused as refused:
            after = self._bug_retry(state, command, refused, now)
        self.store(locker_id, after)
        return before, after

    def _bug_retry(self, state: LockerState, command: Command, refused: Refused, now: float) -> LockerState:
        """What the planted bugs do with a refusal; without them, the refusal stands."""
        if self.bugs.double_booking and isinstance(command, Reserve) and refused.reason is Refusal.HELD:
            return apply(LockerState(epoch=state.epoch), command, now)
        if (
            self.bugs.cross_party_access
            and refused.reason in (Refusal.HELD_BY_OTHER, Refusal.NOT_HOLDER)
            and state.holder is not None
            and isinstance(command, Cancel | IssueToken | Release)
        ):
            if isinstance(command, Cancel):
                impersonated: Command = Cancel(state.holder, None)
            else:
                impersonated = dataclasses.replace(command, actor=state.holder)
            return apply(state, impersonated, now)
        raise refused

    def store(self, locker_id: int, state: LockerState) -> None:
        self.states[locker_id] = state
        if locker_id in self._shown and self._shown[locker_id][1] is None:
            self._shown.pop(locker_id)  # a stale view lasts until the locker's next change

    def show_instead(
        self, locker_id: int, status: LockerStatus, until_event: int | None, *, first_wins: bool = True
    ) -> None:
        """Make the REST views show ``status`` until tower event ``until_event`` is uploaded
        (``None``: until the locker's next change). The first pending status wins, unless not ``first_wins``."""
        if first_wins:
            self._shown.setdefault(locker_id, (status, until_event))
        else:
            self._shown[locker_id] = (status, until_event)

    def shown_status(self, locker_id: int, state: LockerState) -> LockerStatus:
        """The status the REST views show for ``state`` (a status pending an upload, or a planted stale
        one, stands in for the truth); the listing's own bug aside."""
        shown = self._shown.get(locker_id)
        return state.status if shown is None else shown[0]

    def events_uploaded(self, tower_id: TowerId, upto: int) -> None:
        """Tower events numbered below ``upto`` reached the sandbox: their lockers show the truth."""
        tower = self.layout.towers[tower_id]
        for locker_id in tower.locker_ids:
            shown = self._shown.get(locker_id)
            if shown is not None and shown[1] is not None and shown[1] < upto:
                del self._shown[locker_id]

    # -- events (webhook-shaped) --------------------------------------------------------------

    def emit(
        self,
        locker_id: int,
        source: str,
        state: LockerState,
        *,
        reservation_id: int | None = None,
        token_id: int | None = None,
        client_info: str = "",
        request: OpenRequest | None = None,
        shown: LockerStatus | None = None,
    ) -> None:
        """Log a ``LOCKER_OPERATION`` event (webhook-shaped when read); the ring drops the oldest.

        ``shown``: the status the event names, when Harbor would name another than the model's
        (the ``occupied_on_close`` dialect)."""
        tower_id = self.layout.lockers[locker_id].tower_id
        status = status_name(state.status if shown is None else shown, spaced=self.dialects.out_of_service_spaced)
        event = _Event(
            self._next_sequence, self.clock.now(), locker_id, tower_id, status, source,
            reservation_id, token_id, client_info, request,
        )  # fmt: skip
        self._events.append(event)
        self._next_sequence += 1
        if self.webhooks:
            self.webhooks.publish(event)  # queued for each receiver; never waits for a delivery

    def events_since(self, since: int) -> tuple[list[dict[str, Any]], int]:
        """Events numbered ``since`` and later, and the number the next one will get.

        ``EventsGone`` (410) when the ring no longer holds event ``since``: a reader that fell
        behind learns it lost events instead of silently skipping them.
        """
        with self.lock:
            self._settle_all(self.clock.now())
            following = self._next_sequence
            oldest = following - len(self._events)
            if since < oldest:
                raise EventsGone(since, oldest, following)
            kept = itertools.islice(self._events, since - oldest, None)
            return [event.as_webhook() for event in kept], following

    def _settle_all(self, now: float) -> None:
        for locker_id in self.states:
            self.current(locker_id, now)

    # -- views --------------------------------------------------------------------------------

    def locker_view(self, locker_id: int, state: LockerState, *, listing: bool = False) -> dict[str, Any]:
        static = self._static_views[locker_id]
        status = self.shown_status(locker_id, state)
        if listing and self.bugs.held_shown_available and status in HELD_STATUSES:
            status = LockerStatus.AVAILABLE
        return {
            "id": str(locker_id) if self.bugs.wrong_field_type else locker_id,
            "name": static["name"],
            "isLowLocker": static["isLowLocker"],
            "towerId": static["towerId"],
            "status": _status_views(
                shifted=self.dialects.status_ids_shifted,
                spaced=self.dialects.out_of_service_spaced,
                misnumbered=self.bugs.wrong_status_id,
            )[status],
            "type": static["type"],
            "accessMode": "public",
        }

    # -- the service-provider API -------------------------------------------------------------

    def list_lockers(self, tower_id: str) -> list[dict[str, Any]]:
        with self.lock:
            tower = self.tower(tower_id)
            now = self.clock.now()
            return [self.locker_view(i, self.current(i, now), listing=True) for i in tower.locker_ids]

    def get_locker(self, tower_id: str, locker_id: int) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            return self.locker_view(spec.id, self.current(spec.id, self.clock.now()))

    def reserve(self, actor: str, tower_id: str, locker_id: int, duration: int) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            now = self.clock.now()
            reservation_id = self.next_id()
            _, after = self.change(spec.id, Reserve(actor, duration, reservation_id), now)
            reservation = Reservation(reservation_id, spec.tower_id, spec.id, actor, duration, now + duration)
            self._keep_reservation(reservation)
            self.emit(spec.id, "RESERVATION_CREATED", after, reservation_id=reservation_id)
            return {
                "id": reservation_id,
                "towerId": spec.tower_id,
                "lockerId": spec.id,
                "duration": duration,
                "expires": iso_timestamp(reservation.expires_at, naive=self.dialects.expires_naive),
                "locker": self.locker_view(spec.id, after),
            }

    def cancel(self, actor: str, tower_id: str, locker_id: int, reservation_id: int) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            reservation = self.reservations.get(reservation_id)
            if reservation is None or reservation.locker_id != spec.id:
                raise WorldError(404, "Reservation not found")
            _, after = self.change(spec.id, Cancel(actor, reservation_id), self.clock.now())
            self.emit(spec.id, "RESERVATION_CANCELLED", after, reservation_id=reservation_id)
            return self.locker_view(spec.id, after)

    def issue_token(
        self, actor: str, tower_id: str, locker_id: int, kind: TokenKind, duration: int, client_info: str
    ) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            now = self.clock.now()
            before, after = self.change(spec.id, IssueToken(actor, kind, duration), now)
            token_id = self.next_id()
            claims = LockerTokenClaims(
                tower_id=spec.tower_id,
                locker_id=spec.id,
                door=spec.name,
                kind=kind,
                expires_at=now + duration,
                epoch=after.epoch,
                token_id=token_id,
                client_info=client_info,
                holder=after.holder or actor,
            )
            payload, payload_auth = seal_locker_token(self._keys[spec.tower_id], claims)
            self.emit(
                spec.id,
                "LOCKER_TOKEN_CREATED",
                after,
                reservation_id=before.reservation_id,
                token_id=token_id,
                client_info=client_info,
            )
            expires = now - duration if self.bugs.token_issued_expired else claims.expires_at
            answer = {
                "id": token_id,
                "tower_id": spec.tower_id,
                "locker": self.locker_view(spec.id, after),
                "payload": payload.hex(),
                "payload_auth": payload_auth.hex(),
                "expires": iso_timestamp(expires, naive=self.dialects.expires_naive),
                "client_info": client_info,
            }
            if self.dialects.no_token_id:
                del answer["id"]
            return answer

    def release(self, actor: str, tower_id: str, locker_id: int) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            before, after = self.change(spec.id, Release(actor), self.clock.now())
            self.emit(spec.id, "LOCKER_RELEASED", after, reservation_id=before.reservation_id)
            return self.locker_view(spec.id, after)

    def _availability(self, locker_ids: Iterable[int]) -> dict[str, Any]:
        now = self.clock.now()
        by_type: dict[int, int] = {}
        total = 0
        for locker_id in locker_ids:
            spec = self.layout.lockers[locker_id]
            count = by_type.setdefault(spec.type_id, 0)
            if self.current(locker_id, now).status is LockerStatus.AVAILABLE:
                by_type[spec.type_id] = count + 1
                total += 1
        return {
            "lockerAvailability": {"availableLockers": total},
            "byType": [
                {
                    "lockerType": {"id": type_id, "name": LOCKER_TYPES[type_id]},
                    "lockerAvailability": {"availableLockers": count},
                }
                for type_id, count in sorted(by_type.items())
            ],
        }

    def tower_availability(self, tower_id: str) -> dict[str, Any]:
        with self.lock:
            return self._availability(self.tower(tower_id).locker_ids)

    def _location_lockers(self, location_id: int) -> list[int]:
        if location_id not in self.layout.locations:
            raise WorldError(404, "Location not found")
        return [
            locker_id
            for tower in self.layout.towers.values()
            if tower.location_id == location_id
            for locker_id in tower.locker_ids
        ]

    def location_availability(self, location_id: int) -> dict[str, Any]:
        with self.lock:
            return self._availability(self._location_lockers(location_id))

    def assigned_lockers(self, actor: str) -> list[dict[str, Any]]:
        with self.lock:
            now = self.clock.now()
            views = []
            for locker_id in self.states:
                state = self.current(locker_id, now)
                if state.holder == actor and state.status in HELD_STATUSES:
                    views.append(self.locker_view(locker_id, state))
            return views

    # -- locations ----------------------------------------------------------------------------

    def _location_view(self, location_id: int) -> dict[str, Any]:
        spec = self.layout.locations[location_id]
        return {
            "id": spec.id,
            "name": spec.name,
            "lat": spec.lat,
            "lon": spec.lon,
            "description": None,
            "address1": spec.address1,
            "address2": None,
            "city": spec.city,
            "state": spec.state,
            "zip": spec.zip,
            "country": spec.country,
            "notes": None,
            "accessHours": None,
            "timezone": spec.timezone,
        }

    def locations(self, skip: int, limit: int) -> list[dict[str, Any]]:
        ids = sorted(self.layout.locations)[skip : skip + limit]
        return [self._location_view(i) for i in ids]

    def location(self, location_id: int) -> dict[str, Any]:
        if location_id not in self.layout.locations:
            raise WorldError(404, "Location not found")
        return self._location_view(location_id)

    def closest_location(self, lat: float, lon: float, radius: float) -> dict[str, Any]:
        """The nearest location within ``radius`` degrees (plain degree distance [G])."""
        best = min(self.layout.locations.values(), key=lambda spec: math.hypot(spec.lat - lat, spec.lon - lon))
        if math.hypot(best.lat - lat, best.lon - lon) > radius:
            raise WorldError(404, "No location within the radius")
        return self._location_view(best.id)

    # -- locker open requests (links) ---------------------------------------------------------

    def _request_view(self, request: OpenRequest) -> dict[str, Any]:
        view = {
            "id": request.id,
            "requestType": request.kind.value,
            "lockerId": request.locker_id,
            "towerId": request.tower_id,
            "linkToken": request.link_token,
            "clientInfo": request.client_info,
            "payload": request.payload,
        }
        if self.dialects.no_request_type:
            del view["requestType"]
        return view

    def dropoff_request(
        self,
        actor: str,
        *,
        location_id: int,
        locker_type_id: int,
        require_low_locker: bool,
        return_url: str,
        client_info: str,
        payload: dict[str, Any],
    ) -> dict[str, Any]:
        """Pick an available locker of the type at the location and reserve it for 5 minutes."""
        with self.lock:
            now = self.clock.now()
            for locker_id in self._location_lockers(location_id):
                spec = self.layout.lockers[locker_id]
                if spec.type_id != locker_type_id or (require_low_locker and not spec.is_low):
                    continue
                if self.current(locker_id, now).status is LockerStatus.AVAILABLE:
                    break
            else:
                raise WorldError(409, "No available locker of that type at this location")
            reservation_id = self.next_id()
            _, after = self.change(locker_id, Reserve(actor, DROPOFF_REQUEST_HOLD, reservation_id), now)
            self._keep_reservation(
                Reservation(
                    reservation_id, spec.tower_id, locker_id, actor, DROPOFF_REQUEST_HOLD, now + DROPOFF_REQUEST_HOLD
                )
            )
            request = OpenRequest(
                self.next_id(), TokenKind.DROPOFF, actor, spec.tower_id, locker_id, secrets.token_urlsafe(24),
                client_info, payload, return_url,
            )  # fmt: skip
            self._keep_request(request)
            self.emit(
                locker_id, "LOCKER_OPEN_REQUEST_CREATED", after, reservation_id=reservation_id,
                client_info=client_info, request=request,
            )  # fmt: skip
            return self._request_view(request)

    def pickup_request(
        self, actor: str, *, locker_id: int, return_url: str, client_info: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A pickup link for an occupied locker the caller holds (the model's pickup-token rule)."""
        with self.lock:
            spec = self.layout.lockers.get(locker_id)
            if spec is None:
                raise WorldError(404, "Locker not found")
            _, after = self.change(
                locker_id, IssueToken(actor, TokenKind.PICKUP, PICKUP_REQUEST_VALIDITY), self.clock.now()
            )
            request = OpenRequest(
                self.next_id(), TokenKind.PICKUP, actor, spec.tower_id, locker_id, secrets.token_urlsafe(24),
                client_info, payload, return_url,
            )  # fmt: skip
            self._keep_request(request)
            self.emit(locker_id, "LOCKER_OPEN_REQUEST_CREATED", after, client_info=client_info, request=request)
            return self._request_view(request)

    def open_request(self, actor: str, request_id: int) -> dict[str, Any]:
        with self.lock:
            request = self.open_requests.get(request_id)
            if request is None:
                raise WorldError(404, "Locker open request not found")
            if request.holder != actor:
                raise WorldError(403, "The request belongs to another party")
            return self._request_view(request)

    # -- the SDK API --------------------------------------------------------------------------

    def session_token(
        self, client_id: str, user_id: str | None, tower_id: str, duration: int, claims: list[str], version: str
    ) -> dict[str, Any]:
        with self.lock:
            tower = self.tower(tower_id)
            expires_at = self.clock.now() + duration
        seed = os.urandom(32)
        session = SessionClaims(tower.id, tuple(claims), expires_at, client_id, user_id, version, seed)
        payload, payload_auth = seal_session_token(self._keys[tower.id], session)
        return {
            "payload": payload.hex(),
            "payload_auth": payload_auth.hex(),
            "session_seed": seed.hex(),
            "tower_id": tower.id,
        }

    def upload_events(self, tower_id: str, batches: list[tuple[int, int, bytes, bytes]]) -> dict[str, Any]:
        """Tower events a phone pulled over BLE; each non-empty batch must carry the tower's MAC."""
        with self.lock:
            tower = self.tower(tower_id)
            firmware = self.firmwares[tower.id]
            upto = 0
            for start, count, payload, payload_auth in batches:
                if count == 0 and not payload:
                    continue
                if not firmware.verify_event_batch(start, count, payload, payload_auth):
                    raise WorldError(403, "payloadAuth does not verify for this tower")
                upto = max(upto, start + count)
            self.events_uploaded(tower.id, upto)
            return {"msg": f"accepted {len(batches)} batch(es)"}

    def tower_commands(self, tower_id: str) -> list[dict[str, Any]]:
        self.tower(tower_id)
        return []  # the sandbox never queues tower configuration commands

    def tower_configuration(self, tower_id: str) -> dict[str, Any]:
        """``GET /sdk/v1/towers/{id}/configuration`` [S shape]: the technician's configuration download.
        The virtual towers need none: no commands [G]."""
        tower = self.tower(tower_id)
        return {"towerId": tower.id, "commands": []}

    def reset_events(self, tower_id: str, reason: str) -> dict[str, Any]:
        """``POST /sdk/v1/towers/{id}/reset-events``: the Tower object [S shape]. The sandbox keeps no
        server-side event counter (an upload is checked by its seal and range alone), so nothing else
        changes [G]; the reason is not kept."""
        return self.tower_view(self.tower(tower_id))

    def tower_view(self, tower: TowerSpec) -> dict[str, Any]:
        """A tower as the SDK API shows it (reference 4.3 [S] fields; the values are [G])."""
        return {
            "id": tower.id,
            "name": tower.name,
            "description": f"{tower.name} of the virtual sandbox",
            "systemId": 1,
            "towerModelId": 1,
            "locationId": tower.location_id,
            "pinCode": "",  # a real tower's PIN is nobody's business here
            "accessModeId": 1,
            "isForTest": tower.id.startswith("01"),  # sandbox towers' ids start 01 [S]
        }

    # -- the control plane --------------------------------------------------------------------

    def force(self, tower_id: str, locker_id: int, status: LockerStatus) -> dict[str, Any]:
        with self.lock:
            spec = self.locker_spec(tower_id, locker_id)
            _, after = self.change(spec.id, Force(status), self.clock.now())
            self.emit(spec.id, "LOCKER_STATUS_FORCED", after)
            return self.locker_view(spec.id, after)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock.now()
            lockers = []
            for locker_id, spec in self.layout.lockers.items():
                state = self.current(locker_id, now)
                lockers.append(
                    {
                        "id": locker_id,
                        "tower_id": spec.tower_id,
                        "name": spec.name,
                        "status": state.status.wire_name,
                        "shown_status": self.locker_view(locker_id, state)["status"]["name"],
                        "holder": state.holder,
                        "reservation_id": state.reservation_id,
                        "reservation_expires_at": state.reservation_expires_at,
                        "token_expires_at": state.token_expires_at,
                        "epoch": state.epoch,
                        "door_open": state.door_open,
                        "opened_with": None if state.opened_with is None else state.opened_with.value,
                    }
                )
            return {
                "now": now,
                "clock_offset": self.clock.offset,
                "seed": self.seed,
                "uplink": self.settings.uplink,
                "lockers": lockers,
                "bugs": self.bugs.as_dict(),
                "dialects": self.dialects.as_dict(),
                "webhooks": self.webhooks.receivers(),
                "faults": self.faults.as_dict(),
                "fault_timing": self.faults.timing(),
            }
