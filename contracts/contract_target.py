"""What the contract suite needs from its target: a transport, a bearer token, real ids, a witness, a clean slate.

- **Transport.** On ``local`` Schemathesis calls the embedded sandbox's ASGI app in process (no
  socket); anywhere else it calls the target's URL.
- **Real ids.** Generated tower, locker and location ids are mapped onto the target's real ones
  (``Pins``), so calls reach real lockers and the stateful phase can follow the document's links.
  Only schema-valid values are mapped: a negative case stays negative.
- **Witness.** Just before each locker call the suite records the lockers as they are (the control
  plane's model snapshot, or the API's own view on a target without ``/_sim``), so the checks of
  ``contract_checks`` can say what the call should have done.
- **A clean slate between examples.** With a control plane, the virtual clock moves past every
  hold the REST API can create (a week): one call, it keeps planted bug switches and faults, and a
  hold that outlives its time (a reservation that never expires) shows as the defect it is. Without
  one (Harbor's sandbox, a sandbox others share), the suite releases what this run itself asked to
  hold (``RunHolds``) and its identity still holds: never the identity's other holds, which may be
  another run's (a ``load`` of the same identity, on any tower). On such a target the pinned lockers
  leave out those the identity held when the suite started.
- **The cleanup ledger.** Every call that may hold a locker (a reserve, a token, an open request) is
  a ledger row written before the call and settled after it (``LedgerHolds``, as the API client
  does), so ``locker-harness cleanup`` can give back what a killed run left; a clean slate closes
  the rows of everything it freed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

import httpx
import requests
from contract_checks import MODEL_OPERATIONS, Before, Case, RecentBefores, operation_id
from contract_holds import RunHolds
from schemathesis import Response

from harness.api import Hold, HoldAction, HoldKind, guarded_client
from harness.assumptions import Assumed, observe_answer, read_status
from harness.config import Settings
from harness.errors import InfrastructureError, ServerError
from harness.model import LockerState, LockerStatus, TokenKind, TowerId
from harness.redaction import redactor
from harness.testing import ClockControl, free_every_hold

__all__ = ["ApiWitness", "BearerToken", "ContractTarget", "ControlPlaneWitness", "Pins"]

#: Scopes of the suite's bearer token: the service-provider API and the SDK API.
_SCOPES: Final = "service_provider tower_access"
#: Operations whose success leaves a locker held (reserved, rented or with a pickup pending), and
#: what each holds: the ledger's record of it.
_HOLD_KINDS: Final = {
    "reserveLocker": HoldKind.RESERVATION,
    "createDropoffToken": HoldKind.DROPOFF_TOKEN,
    "createPickupToken": HoldKind.PICKUP_TOKEN,
    "createDropoffLockerRequest": HoldKind.DROPOFF_REQUEST,
    "createPickupLockerRequest": HoldKind.PICKUP_REQUEST,
}
_HOLDING_OPERATIONS: Final = frozenset(_HOLD_KINDS)
#: Operations whose answer carries a secret (a token's payload_auth, a session seed, an SDK token, a link).
_SECRET_BEARING: Final = frozenset(
    {
        "createDropoffToken",
        "createPickupToken",
        "createSessionToken",
        "authorizeSdkUser",
        "createDropoffLockerRequest",
        "createPickupLockerRequest",
        "getLockerOpenRequest",
    }
)
#: Releases per held locker when giving back: rented -> declined -> available.
_GIVE_BACK_ROUNDS: Final = 2


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _as_id(value: Any) -> int | None:
    """A locker id as an integer, also from a string of digits (a sandbox with a type bug still has lockers)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if _is_id(value) else None


def _is_tower(value: Any) -> TypeGuard[str]:
    return TowerId.or_none(value) is not None


def _ledger_id(value: Any) -> int | None:
    """An id or a duration a ledger row can store: a positive integer within SQLite's (generated
    negative cases send ids of any size; the row of such a call just names no locker)."""
    return value if _is_id(value) and value < 2**63 else None


def _hold(case: Case) -> Hold | None:
    """What ``case`` asks the target to hold, as the API client describes it; ``None`` if nothing."""
    kind = _HOLD_KINDS.get(operation_id(case))
    if kind is None:
        return None
    path = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    body = case.body if isinstance(case.body, dict) else {}
    tower = path.get("tower_id")
    locker = path.get("locker_id", body.get("lockerId"))
    return Hold(
        HoldAction.CREATE,
        kind,
        tower_id=TowerId.or_none(tower),
        locker_id=_ledger_id(locker),
        location_id=_ledger_id(body.get("locationId")),
        duration=_ledger_id(body.get("duration")),
    )


@dataclass(frozen=True, slots=True)
class Pins:
    """The target's real towers, lockers and locations, onto which generated ids are mapped."""

    towers: tuple[TowerId, ...]  # the configured tower first
    lockers: Mapping[TowerId, tuple[int, ...]]  # tower -> its locker ids
    locations: tuple[int, ...]
    #: On a shared sandbox, the lockers the identity held before the run: another run's, never touched.
    spared: frozenset[tuple[TowerId, int]] = frozenset()

    def tower(self, value: Any) -> Any:
        """A valid tower id that is not a real one becomes a real one; anything else stays."""
        tower = TowerId.or_none(value)
        if tower is None or tower in self.towers:
            return value
        return self.towers[int(value, 16) % len(self.towers)]

    def locker(self, tower: Any, value: Any) -> Any:
        """A valid locker id that is not one of ``tower``'s becomes one of them; anything else stays."""
        tower_id = TowerId.or_none(tower)
        ids = self.lockers.get(tower_id) if tower_id is not None else None
        if not ids or not _is_id(value) or value in ids:
            return value
        return ids[value % len(ids)]

    def location(self, value: Any) -> Any:
        if not self.locations or not _is_id(value) or value in self.locations:
            return value
        return self.locations[value % len(self.locations)]

    def path(self, parameters: Any) -> Any:
        """Path parameters with real ids; values given by a link are real already and stay."""
        if not isinstance(parameters, dict):
            return parameters
        mapped = dict(parameters)
        if "tower_id" in mapped:
            mapped["tower_id"] = self.tower(mapped["tower_id"])
        if "locker_id" in mapped:
            mapped["locker_id"] = self.locker(mapped.get("tower_id", self.towers[0]), mapped["locker_id"])
        if "location_id" in mapped:
            mapped["location_id"] = self.location(mapped["location_id"])
        return mapped

    def spare(self, case: Case) -> None:
        """Point a case that names a spared locker at one of the pinned ones instead.

        The generation hooks never pick a spared locker, but the stateful phase follows links with
        the ids an answer gave, and the identity's assigned lockers list another run's holds: a
        drop-off token made there would end that run's delivery (and the give-back would free it)."""
        path, body = case.path_parameters, case.body
        if path and _is_id(locker := path.get("locker_id")):
            tower = TowerId.or_none(path.get("tower_id", self.towers[0]))
            if tower is not None and (tower, locker) in self.spared:
                path["locker_id"] = self.locker(tower, locker)
        if (
            isinstance(body, dict)
            and _is_id(locker := body.get("lockerId"))
            and (self.towers[0], locker) in self.spared
        ):
            body["lockerId"] = self.locker(self.towers[0], locker)

    def body(self, body: Any) -> Any:
        """A locker-open request body with a real locker (pickup) or location (drop-off)."""
        if not isinstance(body, dict):
            return body
        mapped = dict(body)
        if "lockerId" in mapped:
            mapped["lockerId"] = self.locker(self.towers[0], mapped["lockerId"])
        if "locationId" in mapped:
            mapped["locationId"] = self.location(mapped["locationId"])
        return mapped


class BearerToken:
    """The suite's bearer token from the target's token endpoint, renewed before it expires."""

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        credentials = settings.credentials()
        assert settings.target.token_url is not None
        self._url = settings.target.token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret.reveal(),
            "scope": _SCOPES,
        }
        redactor().register(credentials.client_secret)
        self._timeout = timeout
        self._policy = settings.wire_policy()
        self._token = ""
        self._renew_at = 0.0

    def value(self) -> str:
        if time.monotonic() >= self._renew_at:
            try:
                with guarded_client(self._policy, self._url, timeout=self._timeout) as http:
                    answer = http.post(self._url, data=self._form)
            except httpx.RequestError as exc:
                raise InfrastructureError(f"the token endpoint does not answer ({type(exc).__name__})") from None
            if answer.status_code != 200:
                raise InfrastructureError(f"the token endpoint answered {answer.status_code}: {answer.text[:200]}")
            body = answer.json()
            self._token = str(body["access_token"])
            redactor().register(self._token)
            lifetime = float(body.get("expires_in", 300))
            self._renew_at = time.monotonic() + max(1.0, min(lifetime / 2, lifetime - 30))
        return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value()}"}


def _model_state(entry: Mapping[str, Any]) -> LockerState:
    """A locker entry of ``/_sim/state`` as the model's ``LockerState``."""
    opened = entry.get("opened_with")
    return LockerState(
        status=LockerStatus[str(entry["status"]).upper()],
        holder=entry.get("holder"),
        reservation_id=entry.get("reservation_id"),
        reservation_expires_at=entry.get("reservation_expires_at"),
        token_expires_at=entry.get("token_expires_at"),
        epoch=int(entry.get("epoch", 0)),
        door_open=bool(entry.get("door_open")),
        opened_with=TokenKind(opened) if opened else None,
    )


class ControlPlaneWitness:
    """Takes the sandbox's model snapshot (``/_sim/state``) just before each locker call."""

    def __init__(self, control: ClockControl, actor: str) -> None:
        self._control = control
        self._actor = actor
        self._records = RecentBefores()

    def observe(self, case: Case) -> None:
        if operation_id(case) not in MODEL_OPERATIONS:
            return
        taken = time.perf_counter()
        snapshot = self._control.state()
        lockers = snapshot["lockers"]
        self._records.put(
            case,
            Before(
                actor=self._actor,
                now=float(snapshot["now"]),
                taken=taken,
                towers={int(entry["id"]): TowerId(entry["tower_id"]) for entry in lockers},
                states={int(entry["id"]): _model_state(entry) for entry in lockers},
            ),
        )

    def before(self, case: Case) -> Before | None:
        return self._records.get(case)


class ApiWitness:
    """Reads the locker through the API just before each call on it (a target without ``/_sim``)."""

    def __init__(
        self, http: httpx.Client, bearer: BearerToken, actor: str, pins: Pins, assumed: Assumed | None = None
    ) -> None:
        self._assumed = assumed or Assumed()
        self._http = http
        self._bearer = bearer
        self._actor = actor
        self._pins = pins
        self._records = RecentBefores()

    def observe(self, case: Case) -> None:
        tower = TowerId.or_none(case.path_parameters.get("tower_id"))
        locker_id = case.path_parameters.get("locker_id")
        if operation_id(case) not in MODEL_OPERATIONS or tower is None:
            return
        if not isinstance(locker_id, int) or not _is_id(locker_id):
            return
        taken = time.perf_counter()
        answer = self._http.get(f"/api/v1/towers/{tower}/lockers/{locker_id}", headers=self._bearer.headers())
        body = answer.json() if answer.status_code == 200 else None
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, dict):
            return
        name, status_id = status.get("name"), status.get("id")
        if not isinstance(name, str) or not isinstance(status_id, int):
            return
        shown = read_status(name, status_id, self._assumed, "", observe=False).status
        if not shown.is_known:
            return  # a status we do not know tells the checks nothing
        date = answer.headers.get("date")
        now = _epoch(date) if date else time.time()
        owner = tower if locker_id in self._pins.lockers.get(tower, ()) else ""
        self._records.put(case, Before(self._actor, now, taken, towers={locker_id: owner}, shown={locker_id: shown}))

    def before(self, case: Case) -> Before | None:
        return self._records.get(case)


def _epoch(date: str) -> float:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(date).timestamp()


@dataclass
class ContractTarget:
    """Everything the contract tests need to call the target and judge its answers."""

    settings: Settings
    actor: str
    bearer: BearerToken
    pins: Pins
    witness: ControlPlaneWitness | ApiWitness
    http: httpx.Client
    control: ClockControl | None = None
    app: Any = None  # the embedded sandbox's ASGI app: Schemathesis calls it in process
    #: What this run asked to hold, and the cleanup ledger's hook (every call that may hold a locker is a row).
    holds: RunHolds = field(default_factory=RunHolds)
    #: The requests session Schemathesis calls a URL target over (``None``: its own, env proxies and all).
    session: requests.Session | None = None
    stats: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Whether a call since the last clean slate may have left something held.
    dirty: bool = True

    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``case.call``: the transport and the bearer token."""
        transport: dict[str, Any] = (
            {"app": self.app} if self.app is not None else {"base_url": str(self.http.base_url).rstrip("/")}
        )
        if self.app is None and self.session is not None:
            transport["session"] = self.session
        return {**transport, "headers": self.bearer.headers()}

    def call(self, case: Case, **kwargs: Any) -> Response:
        """``case.call(**kwargs)``; a call that may hold a locker is written to the cleanup ledger
        before it is sent and settled by its answer: created (2xx), refused (4xx) or unknown.

        A 5xx is a lost answer, not a finding about the contract: the call may or may not have
        landed, so the slate is dirty, and the case ends as the target's trouble (``ServerError``,
        could not test), never as a broken promise."""
        response = self._call(case, **kwargs)
        if response.status_code >= 500:
            self.dirty = True
            raise ServerError(
                f"{case.method} {case.formatted_path} answered {response.status_code}: a lost answer "
                "(it may have landed), counted as the target's server error, not as a contract failure",
                status_code=response.status_code,
                method=case.method,
                path=case.formatted_path,
            )
        return response

    def _call(self, case: Case, **kwargs: Any) -> Response:
        if self.app is None:  # Schemathesis sends it over its own session: the guard at the wire, here
            self.settings.wire_policy().check(case.method, str(self.http.base_url).rstrip("/") + case.formatted_path)
        hold = _hold(case)
        if hold is None:
            return case.call(**kwargs)
        holds = self.holds
        holds.before(hold)
        try:
            response = case.call(**kwargs)
        except BaseException as exc:
            holds.unanswered(hold, f"outcome unknown: {type(exc).__name__}")
            self.dirty = True  # it may have landed: the next clean slate frees it and closes its row
            raise
        status_code = response.status_code
        if 200 <= status_code < 300:
            try:
                answer = response.json()
            except ValueError:
                answer = None  # created, ids unknown: the row still names the locker asked for
            holds.after(hold, answer, None)
        elif 400 <= status_code < 500:
            holds.refused(hold, f"{status_code}: nothing created")
        else:
            holds.unanswered(hold, f"outcome unknown: {status_code}")
            self.dirty = True
        return response

    def clean_slate(self) -> None:
        """Free what earlier examples hold, so they do not make every later reserve a 409, and close
        the ledger rows of what was freed."""
        if not self.dirty:
            return
        still_held: tuple[int, ...] | None
        if self.control is not None:
            free_every_hold(self.control)
            still_held = self._held_in_model()
        else:
            still_held = self.give_back()
        if still_held is not None:
            self.holds.given_back(note="contract suite: a clean slate", still_held=still_held)
        self.dirty = False

    def _held_in_model(self) -> tuple[int, ...]:
        """Lockers the sandbox's model still shows held by this identity (only a door frees an item inside)."""
        assert self.control is not None
        return tuple(
            int(entry["id"])
            for entry in self.control.state()["lockers"]
            if entry.get("holder") == self.actor and entry.get("status") not in ("available", "out_of_service")
        )

    def answered(self, case: Case, response: Response) -> None:
        """Note an answer: count it, register the secrets it carries, record what it shows of our
        assumptions, and remember that a granted hold needs a clean slate."""
        status_code = response.status_code
        key = (operation_id(case), status_code)
        self.stats[key] = self.stats.get(key, 0) + 1
        if 200 <= status_code < 300:
            body = None
            with contextlib.suppress(ValueError):
                body = response.json()
            if key[0] in _SECRET_BEARING and body is not None:
                # payload_auth, session_seed, access_token, linkToken: masked in every report from now on.
                redactor().register_fields(body)
            documented = 201 if "201" in case.operation.definition.raw.get("responses", {}) else None
            where = f"{case.method} {case.operation.path}"
            observe_answer(where, status_code, body, self.settings.assume, documented=documented)
            if key[0] in _HOLDING_OPERATIONS:
                self.dirty = True

    def give_back(self) -> tuple[int, ...] | None:
        """Release the lockers this run asked to hold that its identity still holds (bounded: two
        releases a locker); the identity's other holds are another run's, and stay. The lockers of
        this run still held after, or ``None`` if the target would not say."""
        headers = self.bearer.headers()
        mine = self._still_mine(headers)
        for _ in range(_GIVE_BACK_ROUNDS):
            if not mine:
                break
            for tower, locker_id in sorted(mine)[:50]:
                self.http.post(f"/api/v1/towers/{tower}/lockers/{locker_id}/release-locker", json={}, headers=headers)
            mine = self._still_mine(headers)
        return None if mine is None else tuple(sorted(locker_id for _, locker_id in mine))

    def _still_mine(self, headers: Mapping[str, str]) -> set[tuple[TowerId, int]] | None:
        """This run's lockers the identity holds now (the others are forgotten: seen free)."""
        held = self._assigned(headers)
        if held is None:
            return None
        holding = {(TowerId(locker["towerId"]), int(locker["id"])) for locker in held}
        for place in self.holds.places() - holding:
            self.holds.forget(*place)
        return set(self.holds.places() & holding)

    def _assigned(self, headers: Mapping[str, str]) -> list[dict[str, Any]] | None:
        """The lockers this identity holds (those with ids the suite can act on); ``None`` if unreadable."""
        answer = self.http.get("/api/v1/users/me/assigned-lockers", headers=headers)
        try:
            held = answer.json() if answer.status_code == 200 else None
        except ValueError:
            held = None
        if not isinstance(held, list):
            return None
        return [
            locker
            for locker in held
            if isinstance(locker, dict) and _is_id(locker.get("id")) and _is_tower(locker.get("towerId"))
        ]


def load_pins(
    http: httpx.Client,
    bearer: BearerToken,
    tower: TowerId,
    other_towers: tuple[TowerId, ...] = (),
    *,
    shared: bool = False,
) -> Pins:
    """The target's real ids: the lockers of the configured tower (and others named), the locations.
    On a ``shared`` sandbox the lockers the identity holds already are left out: they may be another
    run's (the suite's calls would release them or find them moving under it)."""
    headers = bearer.headers()
    spared: set[tuple[TowerId, int]] = set()
    if shared:
        held = http.get("/api/v1/users/me/assigned-lockers", headers=headers)
        found = held.json() if held.status_code == 200 else []
        for locker in found if isinstance(found, list) else []:
            if isinstance(locker, dict) and _is_id(locker.get("id")) and _is_tower(locker.get("towerId")):
                spared.add((TowerId(locker["towerId"]), int(locker["id"])))
    lockers: dict[TowerId, tuple[int, ...]] = {}
    for name in (tower, *other_towers):
        answer = http.get(f"/api/v1/towers/{name}/lockers", headers=headers)
        if answer.status_code != 200:
            raise InfrastructureError(f"listing the lockers of tower {name} answered {answer.status_code}")
        found_ids = (_as_id(locker.get("id")) for locker in answer.json() if isinstance(locker, dict))
        ids = tuple(locker_id for locker_id in found_ids if locker_id is not None and (name, locker_id) not in spared)
        if ids:
            lockers[name] = ids
    answer = http.get("/api/v1/locations/", headers=headers)
    found = answer.json() if answer.status_code == 200 else []
    locations = tuple(item["id"] for item in found if isinstance(item, dict) and _is_id(item.get("id")))
    towers = tuple(name for name in (tower, *other_towers) if name in lockers)
    if not towers:
        raise InfrastructureError(f"tower {tower} has no lockers the suite could pin")
    return Pins(towers, lockers, locations, frozenset(spared))
