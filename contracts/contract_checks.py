"""The locker checks of the contract suite, registered with Schemathesis and named after what they assert.

Schemathesis's own checks say a response matches the document; these say it keeps the locker
model's promises (``harness.model``):

    locker_has_seed_fields               every locker object has the fields and JSON types of Harbor's example
    locker_status_is_a_model_status      every status keeps what Harbor's material shows (available is 1;
                                         available, rented, occupied are spelt so); the rest is read by name
    locker_token_is_hex_and_unexpired    a token's payload and payload_auth are hex, it expires after the Date header
    reserve_on_held_locker_is_refused    reserving a locker someone holds is refused
    locker_matches_model_after_step      the locker shown after a call is the one the model predicts

The last two need to know the locker *before* the call. A ``Witness`` records that just before
each call: the control plane's snapshot of the model states on a virtual sandbox, or (anywhere
else) the locker as the API showed it a moment before. Without a witness, or when what it saw
does not decide the answer, those two checks pass and say nothing.

Statuses are read as the API client reads them (``harness.assumptions.read_status``): by name,
with the ids and names in effect (``[assume]``), a status we do not know saying nothing. What an
answer shows of our guesses (other ids, ``out of service``, a time without offset) is recorded by
``contract_target.answered`` as an observation, never failed here.

Registered checks are process-wide in Schemathesis: each one ignores operations it does not know.
Failure messages never carry ``payload_auth`` or any other secret.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol

import schemathesis
from contract_session import active_target
from schemathesis import APIOperation, CheckContext, Response
from schemathesis import Case as _Case

from harness.assumptions import Assumed, read_expires, read_status
from harness.model import (
    HELD_STATUSES,
    Cancel,
    Command,
    IssueToken,
    LockerState,
    LockerStatus,
    Refused,
    Release,
    Reserve,
    TokenKind,
    TowerId,
    apply,
    settle,
)

#: A generated case of any operation of the document.
Case = _Case[APIOperation[Any, Any, Any, Any]]

__all__ = [
    "CHECK_NAMES",
    "Before",
    "Case",
    "Witness",
    "active_witness",
    "locker_has_seed_fields",
    "locker_matches_model_after_step",
    "locker_status_is_a_model_status",
    "locker_token_is_hex_and_unexpired",
    "operation_id",
    "reserve_on_held_locker_is_refused",
    "use_witness",
]

_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})+")
_TOWER_ID: Final = re.compile(r"[0-9a-fA-F]{16}")
#: Seconds of slack around a call when the model's answer depends on the time (an expiry right then).
_TIME_SLACK: Final = 0.05

#: Operations whose 2xx body is a locker, a list of lockers, or carries one under ``locker``.
_LOCKER_BODY: Final = frozenset({"getLocker", "cancelReservation", "releaseLocker"})
_LOCKER_LIST: Final = frozenset({"listTowerLockers", "listAssignedLockers"})
_NESTED_LOCKER: Final = frozenset({"reserveLocker", "createDropoffToken", "createPickupToken"})
_TOKENS: Final = {"createDropoffToken": TokenKind.DROPOFF, "createPickupToken": TokenKind.PICKUP}
#: Operations on one locker whose outcome the model decides.
MODEL_OPERATIONS: Final = frozenset(
    {"getLocker", "reserveLocker", "cancelReservation", "releaseLocker", *_TOKENS, "listTowerLockers"}
)


def operation_id(case: Case) -> str:
    """The case's ``operationId`` in the API document (``""`` when it has none)."""
    raw: Mapping[str, Any] = case.operation.definition.raw
    return str(raw.get("operationId", ""))


# -- what was true before the call ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Before:
    """The lockers just before one call.

    ``states`` are full model states (a virtual sandbox's control plane tells them); ``shown`` are
    statuses as the API showed them (all a plain target tells). ``now`` is the target's time then,
    ``taken`` the local ``perf_counter`` at that moment, so a check can bound the time of the call.
    """

    actor: str
    now: float
    taken: float
    towers: Mapping[int, str] = field(default_factory=dict)  # locker id -> its TowerId ("" when not known)
    states: Mapping[int, LockerState] = field(default_factory=dict)
    shown: Mapping[int, LockerStatus] = field(default_factory=dict)

    def window(self) -> tuple[float, float]:
        """Earliest and latest target time the call can have run at."""
        return self.now - _TIME_SLACK, self.now + (time.perf_counter() - self.taken) + _TIME_SLACK

    def held(self, locker_id: int) -> bool | None:
        """Whether the locker was held (reserved, rented, occupied, declined) all through the call;
        ``None``: unknown. A hold that may have expired during the call does not count."""
        state = self.states.get(locker_id)
        if state is not None:
            return all(settle(state, at).status in HELD_STATUSES for at in self.window())
        shown = self.shown.get(locker_id)
        return None if shown is None else shown in HELD_STATUSES

    def state(self, locker_id: int) -> LockerState | None:
        """The full model state, if known: from the control plane, or an available locker the API showed."""
        state = self.states.get(locker_id)
        if state is not None:
            return state
        if self.shown.get(locker_id) is LockerStatus.AVAILABLE:
            return LockerState()  # nobody holds it: the rest of the state does not matter to a REST call
        return None


class Witness(Protocol):
    """Records the lockers just before each call, so checks can say what the call should have done."""

    def observe(self, case: Case) -> None:
        """Look at the lockers ``case`` is about, just before it is sent."""
        ...

    def before(self, case: Case) -> Before | None:
        """What ``observe`` saw for ``case``; ``None`` if it saw nothing."""
        ...


class RecentBefores:
    """The last few ``Before`` records by case id: bounded, since a run sends thousands of cases."""

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._records: OrderedDict[str, Before] = OrderedDict()

    def put(self, case: Case, before: Before) -> None:
        self._records[case.id] = before
        self._records.move_to_end(case.id)
        while len(self._records) > self._keep:
            self._records.popitem(last=False)

    def get(self, case: Case) -> Before | None:
        return self._records.get(case.id)


_ACTIVE: list[Witness] = []


@contextmanager
def use_witness(witness: Witness) -> Iterator[Witness]:
    """Make ``witness`` the one the checks consult while the block runs."""
    _ACTIVE.append(witness)
    try:
        yield witness
    finally:
        _ACTIVE.remove(witness)


def active_witness() -> Witness | None:
    return _ACTIVE[-1] if _ACTIVE else None


def _before(case: Case) -> Before | None:
    witness = active_witness()
    return None if witness is None else witness.before(case)


# -- reading responses ------------------------------------------------------------------------------


def _json(response: Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _header(response: Response, name: str) -> str | None:
    for key, values in response.headers.items():
        if key.lower() == name.lower() and values:
            return str(values[0])
    return None


def _lockers_in(case: Case, response: Response) -> list[tuple[str, Any]]:
    """``(where, locker)`` for every locker object in a 2xx body of the operations that carry one."""
    if not 200 <= response.status_code < 300:
        return []
    op = operation_id(case)
    body = _json(response)
    if op in _LOCKER_BODY:
        return [("the body", body)]
    if op in _NESTED_LOCKER:
        return [("locker", body.get("locker") if isinstance(body, dict) else None)]
    if op in _LOCKER_LIST and isinstance(body, list):
        return [(f"[{index}]", item) for index, item in enumerate(body)]
    return []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seed_shape_problems(locker: Any) -> list[str]:
    """How ``locker`` differs from Harbor's example locker (reference 4.1, ``locker_fields`` [S]), field by field."""
    if not isinstance(locker, dict):
        return [f"is {type(locker).__name__}, not an object"]
    problems = []
    expected: dict[str, tuple[str, Any]] = {
        "id": ("an integer", _is_int),
        "name": ("a string", lambda v: isinstance(v, str)),
        "isLowLocker": ("a boolean", lambda v: isinstance(v, bool)),
        "towerId": ("16 hex digits", lambda v: isinstance(v, str) and _TOWER_ID.fullmatch(v) is not None),
        "accessMode": ("a string", lambda v: isinstance(v, str)),
        "status": ("an object", lambda v: isinstance(v, dict)),
        "type": ("an object", lambda v: isinstance(v, dict)),
    }
    for key, (what, ok) in expected.items():
        if key not in locker:
            problems.append(f"{key} is missing")
        elif not ok(locker[key]):
            problems.append(f"{key} should be {what}, got {type(locker[key]).__name__} {locker[key]!r}")
    for key in ("status", "type"):
        nested = locker.get(key)
        if not isinstance(nested, dict):
            continue
        if not isinstance(nested.get("name"), str):
            problems.append(f"{key}.name should be a string, got {nested.get('name')!r}")
        if not _is_int(nested.get("id")):
            problems.append(f"{key}.id should be an integer, got {nested.get('id')!r}")
    kind = locker.get("type")
    if isinstance(kind, dict) and kind.get("description") is not None and not isinstance(kind["description"], str):
        problems.append(f"type.description should be a string or null, got {kind['description']!r}")
    return problems


def _assumed() -> Assumed:
    """The assumptions in effect for the target under test (the defaults outside a suite run)."""
    target = active_target()
    return target.settings.assume if target is not None else Assumed()


def _status_of(locker: Any) -> LockerStatus | None:
    """The model status a locker object shows, read by name; ``None`` if it shows none the model knows."""
    status = locker.get("status") if isinstance(locker, dict) else None
    if not isinstance(status, dict) or not isinstance(status.get("name"), str) or not _is_int(status.get("id")):
        return None
    reading = read_status(status["name"], status["id"], _assumed(), "", observe=False)
    return reading.status if reading.status.is_known else None


def _locker_id(locker: Any) -> int | None:
    value = locker.get("id") if isinstance(locker, dict) else None
    return value if _is_int(value) else None


# -- the checks ---------------------------------------------------------------------------------------


@schemathesis.check
def locker_has_seed_fields(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every locker object has the fields and JSON types of Harbor's example locker."""
    for where, locker in _lockers_in(case, response):
        problems = _seed_shape_problems(locker)
        if problems:
            raise AssertionError(f"{operation_id(case)}: the locker at {where} " + "; ".join(problems))
    return None


@schemathesis.check
def locker_status_is_a_model_status(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every locker's status keeps what Harbor's material shows: available is ``{available, 1}``, and
    available, rented and occupied are spelt so. Other ids and names are our guesses
    (``status_ids``, ``status_names``): read by name, and observed, never failed."""
    for where, locker in _lockers_in(case, response):
        status = locker.get("status") if isinstance(locker, dict) else None
        if not isinstance(status, dict) or not isinstance(status.get("name"), str) or not _is_int(status.get("id")):
            continue  # a missing or mistyped status is locker_has_seed_fields's finding
        reading = read_status(status["name"], status["id"], _assumed(), "", observe=False)
        if reading.broken is not None:
            raise AssertionError(
                f"{operation_id(case)}: the locker at {where} breaks what Harbor's material shows: {reading.broken}"
            )
    return None


@schemathesis.check
def locker_token_is_hex_and_unexpired(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A drop-off or pickup token carries hex ``payload`` and ``payload_auth`` (``token_payload_hex`` [S])
    and expires after the response's ``Date`` (the target's clock, never the local one)."""
    kind = _TOKENS.get(operation_id(case))
    if kind is None or not 200 <= response.status_code < 300:
        return None
    body = _json(response)
    if not isinstance(body, dict):
        raise AssertionError(f"the {kind.value} token is not a JSON object")
    for key in ("payload", "payload_auth"):
        value = body.get(key)
        if not isinstance(value, str) or _HEX.fullmatch(value) is None:
            shape = f"a string of {len(value)} characters" if isinstance(value, str) else type(value).__name__
            raise AssertionError(f"the {kind.value} token's {key} is not non-empty even-length hex ({shape})")
    expires = _timestamp(body.get("expires"))
    if expires is None:
        raise AssertionError(f"the {kind.value} token's expires {body.get('expires')!r} is not an ISO 8601 time")
    date = _header(response, "date")
    if date is None:
        raise AssertionError("the token response has no Date header to compare its expires with")
    served = parsedate_to_datetime(date)
    if expires <= served:
        raise AssertionError(
            f"the {kind.value} token expires at {expires.isoformat()}, not after the response's Date {date}"
        )
    return None


def _timestamp(value: Any) -> datetime | None:
    """An ``expires``: with its offset, or without one read as UTC (``expires_offset`` is a guess)."""
    if not isinstance(value, str):
        return None
    return read_expires(value, _assumed(), "", observe=False)


@schemathesis.check
def reserve_on_held_locker_is_refused(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A reservation of a locker someone holds (reserved, rented, occupied, declined) is refused."""
    if operation_id(case) != "reserveLocker" or not 200 <= response.status_code < 300:
        return None
    before = _before(case)
    locker_id = case.path_parameters.get("locker_id")
    if before is None or not isinstance(locker_id, int) or not before.held(locker_id):
        return None
    state = before.states.get(locker_id)
    status = settle(state, before.now).status if state is not None else before.shown.get(locker_id)
    holder = f" by {state.holder}" if state is not None and state.holder else ""
    shown = _status_of(_json(response).get("locker")) if isinstance(_json(response), dict) else None
    raise AssertionError(
        f"locker {locker_id} was {status.wire_name if status else 'held'}{holder}, yet reserving it answered "
        f"{response.status_code} (locker now {shown.wire_name if shown else '?'}); the model refuses with 409"
    )


def _command(case: Case, actor: str) -> Command | None:
    """The model command a call stands for; ``None`` for a read or a body too malformed to mean one."""
    op = operation_id(case)
    body = case.body if isinstance(case.body, dict) else {}
    duration = body.get("duration")
    if not _is_int(duration):
        duration = None
    if op == "reserveLocker":
        return Reserve(actor, duration, 0) if isinstance(duration, int) else None
    if op == "cancelReservation":
        reservation_id = case.path_parameters.get("reservation_id")
        return Cancel(actor, reservation_id) if _is_int(reservation_id) else None
    if op == "releaseLocker":
        return Release(actor)
    if op in _TOKENS:
        return IssueToken(actor, _TOKENS[op], duration) if isinstance(duration, int) else None
    return None


Outcome = LockerStatus | int  # the status shown after an accepted call, or the refusal's HTTP status


def _predict(state: LockerState, command: Command | None, at: float) -> Outcome:
    if command is None:
        return settle(state, at).status
    try:
        return apply(state, command, at).status
    except Refused as refused:
        return refused.reason.http_status


def _describe(outcome: Outcome) -> str:
    return outcome.wire_name if isinstance(outcome, LockerStatus) else f"refused with {outcome}"


@schemathesis.check
def locker_matches_model_after_step(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """The locker the API shows after a call (or the refusal it answers) is what ``harness.model`` predicts
    from the locker's state before the call, at the target's time."""
    op = operation_id(case)
    if op not in MODEL_OPERATIONS or response.status_code in (400, 401, 405, 422) or response.status_code >= 500:
        return None  # malformed input, auth and server errors are other checks' findings
    before = _before(case)
    tower = case.path_parameters.get("tower_id")
    if before is None or not isinstance(tower, str):
        return None
    body = _json(response)
    if op == "listTowerLockers":
        if response.status_code != 200 or not isinstance(body, list):
            return None
        for locker in body:
            _compare_shown(before, None, _locker_id(locker), _status_of(locker), "the listing")
        return None
    locker_id, tower_id = case.path_parameters.get("locker_id"), TowerId.or_none(tower)
    if (
        tower_id is None
        or not isinstance(locker_id, int)
        or isinstance(locker_id, bool)
        or before.towers.get(locker_id) != tower_id
    ):
        return None  # not a locker of that tower: 404 is the document's answer, not the model's
    command = _command(case, before.actor)
    if command is None and op != "getLocker":
        return None
    if response.status_code == 404 and op == "cancelReservation":
        return None  # an unknown reservation id: the document's 404, not the model's business
    if 200 <= response.status_code < 300:
        locker = body.get("locker") if op in _NESTED_LOCKER and isinstance(body, dict) else body
        _compare_shown(before, command, locker_id, _status_of(locker), f"{op} answered {response.status_code}:")
        return None
    _compare_shown(before, command, locker_id, response.status_code, f"{op} answered")
    return None


def _compare_shown(
    before: Before, command: Command | None, locker_id: int | None, shown: Outcome | None, what: str
) -> None:
    if locker_id is None or shown is None:
        return
    state = before.state(locker_id)
    if state is None:
        return
    early, late = before.window()
    predicted = {_predict(state, command, early), _predict(state, command, late)}
    if shown in predicted:
        return
    wanted = " or ".join(sorted(_describe(outcome) for outcome in predicted))
    holder = f" held by {state.holder}" if state.holder else ""
    was = settle(state, early).status.wire_name
    raise AssertionError(
        f"{what} locker {locker_id} {_describe(shown)}; it was {was}{holder} and the model predicts {wanted}"
    )


#: The names of this module's checks, as Schemathesis reports them.
CHECK_NAMES: Final = (
    locker_has_seed_fields.__name__,
    locker_status_is_a_model_status.__name__,
    locker_token_is_hex_and_unexpired.__name__,
    reserve_on_held_locker_is_refused.__name__,
    locker_matches_model_after_step.__name__,
)
