"""The seed's delivery flow as one reusable async routine, each step named, timed and checked.

    authenticate -> list_lockers -> pick_locker -> reserve -> dropoff_token -> open_for_dropoff
    -> close_after_dropoff -> occupied -> pickup_token -> open_for_pickup -> close_after_pickup
    -> available

The locker turns occupied when the drop-off door opens (the token used [S]); ``occupied`` waits
until the API shows it, which a tower that reports its door events late may delay past the close.

Each step is timed with ``perf_counter_ns`` around its own action (the two status steps time how
long the API took to show the status), then the locker's status as the API shows it is compared
with what ``harness.model`` predicts; a mismatch is a ``ProductDefect`` naming the check and the
step. Listeners receive ``StepStarted`` / ``StepFinished`` / ``Released`` events: reports
subscribe, the flow imports none of them.

When a locker turns occupied is an assumption (``occupied_on`` [I] in ``harness.assumptions``:
as soon as the drop-off door opens, the reference's "token used"): the flow accepts it right after
the drop-off open or only after the close, and records which it saw as an observation of that
assumption, never as a defect.

Doors open through one ``DoorOpener``: the virtual sandbox's control plane here
(``ControlPlaneOpener``), Bluetooth LE in ``harness.ble``. If a step fails or the run is
cancelled, the flow gives back what it holds (bounded, best effort) and says so in a ``Released``
event and a note on the exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import httpx

from harness.api import AsyncHarborClient, Locker, LockerToken, Reservation, async_guard_hooks, tls_context
from harness.assumptions import record
from harness.errors import (
    Conflict,
    Forbidden,
    HarnessError,
    InfrastructureError,
    NotFound,
    ProductDefect,
    TargetUnreachable,
    UsageError,
)
from harness.hosts import WirePolicy, trusts_env_proxies
from harness.model import (
    LOCKER_TYPES,
    CloseDoor,
    IssueToken,
    LockerState,
    LockerStatus,
    OpenDoor,
    Refused,
    Reserve,
    TokenClaim,
    TokenKind,
    TowerId,
    apply,
    available,
)

__all__ = [
    "ControlPlaneOpener",
    "Delivery",
    "DoorOpener",
    "FlowEvent",
    "Listener",
    "Released",
    "Step",
    "StepFinished",
    "StepResult",
    "StepStarted",
    "locker_type_id",
    "run_delivery",
]


T = TypeVar("T")


class Step(enum.StrEnum):
    """The flow's steps, in order."""

    AUTHENTICATE = "authenticate"
    LIST_LOCKERS = "list_lockers"
    PICK_LOCKER = "pick_locker"
    RESERVE = "reserve"
    DROPOFF_TOKEN = "dropoff_token"
    OPEN_FOR_DROPOFF = "open_for_dropoff"
    CLOSE_AFTER_DROPOFF = "close_after_dropoff"
    OCCUPIED = "occupied"
    PICKUP_TOKEN = "pickup_token"
    OPEN_FOR_PICKUP = "open_for_pickup"
    CLOSE_AFTER_PICKUP = "close_after_pickup"
    AVAILABLE = "available"


# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepStarted:
    step: Step
    locker_id: int | None = None


@dataclass(frozen=True, slots=True)
class StepFinished:
    """A step's outcome: its duration, the status the API showed after it, and any error."""

    step: Step
    duration_ns: int
    locker_status: LockerStatus | None
    ok: bool
    error: BaseException | None = None
    locker_id: int | None = None
    #: Attempts of the step's requests that failed and were retried (a 5xx, no answer): a step that
    #: passed after them is still a sign of the target's trouble.
    retried: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Released:
    """What the flow gave back after a failure, and what it could not."""

    locker_id: int
    actions: tuple[str, ...]
    ok: bool
    note: str


FlowEvent = StepStarted | StepFinished | Released
Listener = Callable[[FlowEvent], None]


@dataclass(frozen=True, slots=True)
class StepResult:
    step: Step
    duration_ns: int
    locker_status: LockerStatus | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A completed delivery: the locker used and every step's timing."""

    tower_id: TowerId
    locker: Locker
    steps: tuple[StepResult, ...]

    @property
    def total_ns(self) -> int:
        return sum(step.duration_ns for step in self.steps)


# -- opening doors --------------------------------------------------------------------------------


class DoorOpener(Protocol):
    """How a token reaches the tower, and how the flow learns the door closed again.

    Over BLE: ``open`` opens a session and sends ``OPEN_LOCKER_WITH_TOKEN`` with ``payload`` and
    ``payload_auth``; a person (virtual or at the bench) closes the door, and ``wait_closed``
    polls ``CHECK_LOCKER_DOOR`` until the tower reports it shut.

    An opener may say ``door_closes_itself = False`` when nobody but ``wait_closed`` closes the
    door (the control plane). Without it the flow assumes a person may close the door as soon as
    it opens, before the flow reads the status: the status right after an open may then already
    be the one after the close, and both of the model's predictions are accepted.

    An opener may say ``door_events_reach_the_api_at_once = True`` when the API hears of the door
    the moment it opens (a sandbox's control plane). Without it the tower reports its door events
    when it syncs [I]: a status right after the open that still shows the one from before says
    nothing of when the target turns a locker occupied (``occupied_on``).
    """

    async def open(self, locker: Locker, token: LockerToken) -> int:
        """Present ``token`` at ``locker``'s tower; returns the id of the locker whose door opened."""
        ...

    async def wait_closed(self, locker: Locker, *, timeout: float) -> None:
        """Return once ``locker``'s door is shut again; raise if it is not within ``timeout`` seconds."""
        ...


class ControlPlaneOpener:
    """Opens doors of a virtual sandbox through its ``/_sim`` control plane, as a person would.

    ``open`` presents the token at the door (the virtual firmware checks it exactly as over BLE);
    ``wait_closed`` closes the door by hand and confirms it reads closed. The control plane
    answers outside the fault profiles, so an error answer from it is the harness's trouble
    (``InfrastructureError``), never the product's.
    """

    #: Only ``wait_closed`` closes a door: nobody stands at a control-plane door.
    door_closes_itself = False
    #: The sandbox's REST views hear of the door as its firmware opens it: no sync to wait for.
    door_events_reach_the_api_at_once = True

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: WirePolicy | None = None,
    ) -> None:
        """``policy``: the run's guard at the wire (default: no opt-in at all)."""
        self._base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            transport=transport,
            timeout=10.0,
            event_hooks=async_guard_hooks(policy or WirePolicy()),
            trust_env=trusts_env_proxies(self._base_url),
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ControlPlaneOpener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _door(self, locker: Locker) -> str:
        return f"/_sim/towers/{locker.tower_id}/lockers/{locker.id}"

    async def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body)
        except httpx.RequestError as exc:
            raise TargetUnreachable(
                f"{method} {path}: the sandbox's control plane did not answer ({type(exc).__name__})",
                url=self._base_url,
            ) from None

    async def open(self, locker: Locker, token: LockerToken) -> int:
        path = f"{self._door(locker)}/open"
        response = await self._call("POST", path, {"payload": token.payload, "payload_auth": token.payload_auth})
        if response.status_code in (403, 404, 409):
            body = _json_object(response)
            raise ProductDefect(
                f"the tower refused the {token.kind.value} token the API issued for locker {locker.id}: "
                f"{body.get('name', '?')} ({body.get('code', '?')}): {body.get('detail', response.text[:200])}",
                check="token_opens_its_locker",
            )
        if not response.is_success:
            raise InfrastructureError(f"POST {path} answered {response.status_code}: {response.text[:200]}")
        return _opened_locker_id(_json_object(response), locker)

    async def wait_closed(self, locker: Locker, *, timeout: float) -> None:
        path = self._door(locker)
        response = await self._call("POST", f"{path}/close")
        if not response.is_success:
            raise InfrastructureError(f"POST {path}/close answered {response.status_code}: {response.text[:200]}")

        async def door_shut() -> bool:
            state = await self._call("GET", f"{path}/door")
            if not state.is_success:  # the control plane itself failed: nothing learnt about the door
                raise InfrastructureError(f"GET {path}/door answered {state.status_code}: {state.text[:200]}")
            return _json_object(state).get("door_open") is False

        if not await _poll(door_shut, timeout):
            raise ProductDefect(
                f"locker {locker.id}'s door still reads open {timeout:g} s after it was closed",
                check="door_reads_closed",
            )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _opened_locker_id(body: dict[str, Any], locker: Locker) -> int:
    for key in ("locker_id", "lockerId"):
        if isinstance(body.get(key), int):
            return int(body[key])
    nested = body.get("locker")
    if isinstance(nested, dict) and isinstance(nested.get("id"), int):
        return int(nested["id"])
    raise InfrastructureError(f"the sandbox's control plane did not say which door opened for locker {locker.id}")


# -- polling --------------------------------------------------------------------------------------

_POLL_FIRST: Final = 0.02
_POLL_MAX: Final = 0.5


async def _poll(probe: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    """Call ``probe`` until it returns true or ``timeout`` seconds pass; bounded in time and count."""
    deadline = time.monotonic() + timeout
    interval = _POLL_FIRST
    while True:
        if await probe():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(interval, remaining))  # a poll interval, never a wait-for-state
        interval = min(interval * 1.6, _POLL_MAX)


# -- the flow -------------------------------------------------------------------------------------


def locker_type_id(value: int | str | None) -> int | None:
    """A locker type given as an id (``2``) or a name (``medium``), as its id."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text.isdigit() and int(text) in LOCKER_TYPES:
        return int(text)
    for type_id, name in LOCKER_TYPES.items():
        if name == text:
            return type_id
    names = ", ".join(f"{name} ({type_id})" for type_id, name in LOCKER_TYPES.items())
    raise UsageError(f"unknown locker type {value!r}: use one of {names}")


#: How many available lockers the flow tries when another party takes one between list and reserve.
_RESERVE_CANDIDATES: Final = 3
_CLEANUP_TIMEOUT: Final = 15.0


class _Run:
    """One delivery in progress: the model's prediction, what is held, the timings so far."""

    def __init__(
        self,
        client: AsyncHarborClient,
        opener: DoorOpener,
        *,
        tower_id: TowerId,
        listeners: Sequence[Listener],
        status_timeout: float,
        reservation_duration: int,
        token_duration: int,
        client_info: str,
    ) -> None:
        self.client = client
        self.opener = opener
        self.tower_id = tower_id
        self.listeners = tuple(listeners)
        self.status_timeout = status_timeout
        self.reservation_duration = reservation_duration
        self.token_duration = token_duration
        self.client_info = client_info
        self.actor = client.session.credentials.client_id
        self.state = LockerState()
        self.locker: Locker | None = None  # set when the reserve call starts: from then on it may be held
        self.picked: Locker | None = None
        self.reservation: Reservation | None = None
        self.steps: list[StepResult] = []
        #: The locker showed rented right after its drop-off door opened: when it shows occupied
        #: later, the target turned it occupied on the close (``occupied_on``).
        self.rented_while_open = False
        #: The status the API showed last (a step's result): what it may still show right after a door
        #: event, until the tower's events reach Harbor.
        self.shown: LockerStatus | None = None
        self._started = time.monotonic()

    # The model's clock: seconds since the run started. Durations are minutes, a run is seconds,
    # so nothing expires within a run; the server's own clock never enters the prediction.
    def _now(self) -> float:
        return time.monotonic() - self._started

    def emit(self, event: FlowEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def predict(self, command: Reserve | IssueToken | OpenDoor | CloseDoor) -> LockerStatus:
        self.state = apply(self.state, command, self._now())
        return self.state.status

    def claim(self, token: LockerToken) -> TokenClaim:
        return TokenClaim(
            locker_id=token.locker.id,
            kind=token.kind,
            expires_at=self._now() + self.token_duration,
            epoch=self.state.epoch,
            holder=self.actor,
        )

    @property
    def locker_id(self) -> int | None:
        chosen = self.locker or self.picked
        return None if chosen is None else chosen.id

    async def step(self, step: Step, action: Callable[[], Awaitable[tuple[T, LockerStatus | None]]]) -> T:
        """Run one step: announce, time, let ``action`` run and check, record, announce."""
        self.emit(StepStarted(step, self.locker_id))
        session = self.client.session
        mark = session.retries
        started = time.perf_counter_ns()
        try:
            value, status = await action()
        except BaseException as exc:
            duration = time.perf_counter_ns() - started
            if isinstance(exc, ProductDefect) and exc.step is None:
                exc.step = step.value
            retried = session.retried_since(mark)
            self.emit(StepFinished(step, duration, None, False, exc, self.locker_id, retried))
            raise
        duration = time.perf_counter_ns() - started
        if status is not None:
            self.shown = status
        self.steps.append(StepResult(step, duration, status))
        self.emit(StepFinished(step, duration, status, True, None, self.locker_id, session.retried_since(mark)))
        return value

    async def read_status(self) -> LockerStatus:
        assert self.locker is not None
        status = (await self.client.get_locker(self.tower_id, self.locker.id)).status
        if self.rented_while_open and status is LockerStatus.OCCUPIED:
            self.rented_while_open = False
            record(
                "occupied_on", "close", f"{self._locker_path()}: rented right after the drop-off open, occupied later"
            )
        return status

    def _locker_path(self) -> str:
        return f"GET /api/v1/towers/{self.tower_id}/lockers/{self.locker_id}"

    def expect(self, step: Step, shown: LockerStatus, allowed: Collection[LockerStatus], check: str) -> None:
        if shown not in allowed:
            wanted = " or ".join(status.wire_name for status in allowed)
            raise ProductDefect(
                f"after {step.value}, the API shows locker {self.locker_id} {shown.wire_name}; "
                f"the model predicts {wanted}",
                check=check,
                step=step.value,
            )

    async def wait_for(self, step: Step, wanted: LockerStatus, check: str) -> tuple[None, LockerStatus]:
        """Poll the API until it shows ``wanted``; a ``ProductDefect`` if it does not in time."""
        last: list[LockerStatus] = []

        async def shows() -> bool:
            status = await self.read_status()
            last.append(status)
            return status is wanted

        if not await _poll(shows, self.status_timeout):
            raise ProductDefect(
                f"locker {self.locker_id} still shows {last[-1].wire_name} {self.status_timeout:g} s after "
                f"{'the drop-off' if wanted is LockerStatus.OCCUPIED else 'the pickup'}; "
                f"the model predicts {wanted.wire_name}",
                check=check,
                step=step.value,
            )
        return None, wanted


async def run_delivery(
    client: AsyncHarborClient,
    opener: DoorOpener,
    *,
    tower_id: TowerId,
    locker_type: int | str | None = None,
    locker_id: int | None = None,
    listeners: Sequence[Listener] = (),
    status_timeout: float | None = None,
    reservation_duration: int = 300,
    token_duration: int = 3000,
    client_info: str = "",
) -> Delivery:
    """Run one complete delivery on ``tower_id`` and return its timings; raises on the first failure.

    ``locker_type`` (an id or a name) narrows the choice; ``locker_id`` forces one locker.
    ``client_info`` is empty by default, as Harbor's docs ask.
    """
    run = _Run(
        client,
        opener,
        tower_id=tower_id,
        listeners=listeners,
        status_timeout=client.settings.status_timeout if status_timeout is None else status_timeout,
        reservation_duration=reservation_duration,
        token_duration=token_duration,
        client_info=client_info,
    )
    wanted_type = locker_type_id(locker_type)
    try:
        await _deliver(run, wanted_type, locker_id)
    except BaseException as exc:
        if run.locker is not None:
            released = await _give_back(run)
            exc.add_note(released.note)
        raise
    assert run.locker is not None
    return Delivery(tower_id=tower_id, locker=run.locker, steps=tuple(run.steps))


async def _deliver(run: _Run, wanted_type: int | None, wanted_locker: int | None) -> None:
    client, tower = run.client, run.tower_id

    async def authenticate() -> tuple[None, None]:
        await client.authenticate()
        return None, None

    await run.step(Step.AUTHENTICATE, authenticate)

    async def list_lockers() -> tuple[list[Locker], None]:
        try:
            return await client.list_lockers(tower), None
        except NotFound as exc:
            raise UsageError(
                f"tower {tower} is not known to target {client.settings.target.name} ({exc.detail or 'not found'})"
            ) from None

    lockers: list[Locker] = await run.step(Step.LIST_LOCKERS, list_lockers)

    async def pick() -> tuple[list[Locker], LockerStatus]:
        if wanted_locker is not None and all(locker.id != wanted_locker for locker in lockers):
            # A door label ("14") is not a locker id (959) [S]: say which id the user probably meant.
            labelled = [locker for locker in lockers if locker.name == str(wanted_locker)]
            hint = f": {wanted_locker} is the door label of locker {labelled[0].id}, pass its id" if labelled else ""
            raise UsageError(f"tower {tower} has no locker with id {wanted_locker}{hint}")
        candidates = [
            locker
            for locker in sorted(lockers, key=lambda locker: locker.id)
            if locker.status is LockerStatus.AVAILABLE
            and (wanted_type is None or locker.type.id == wanted_type)
            and (wanted_locker is None or locker.id == wanted_locker)
        ]
        if not candidates:
            what = f"locker {wanted_locker}" if wanted_locker is not None else "locker"
            kind = f" of type {LOCKER_TYPES[wanted_type]}" if wanted_type is not None else ""
            raise InfrastructureError(f"no available {what}{kind} in tower {tower}: nothing to test with")
        run.picked = candidates[0]
        return candidates[:_RESERVE_CANDIDATES], LockerStatus.AVAILABLE

    candidates: list[Locker] = await run.step(Step.PICK_LOCKER, pick)

    async def reserve() -> tuple[Reservation, LockerStatus]:
        reservation: Reservation | None = None
        for candidate in candidates:
            run.locker = candidate
            try:
                reservation = await client.reserve(tower, candidate.id, run.reservation_duration)
                break
            except (Conflict, Forbidden):
                # Refused: nothing was made (the client has checked that a refusal after a retry is not
                # its own earlier attempt), so nothing of this locker is ours to give back.
                run.locker = None
                if candidate is candidates[-1]:
                    raise
                # Another party took it between list and reserve: try the next one.
        assert reservation is not None
        if reservation.locker_id != candidate.id or reservation.locker.id != candidate.id:
            raise ProductDefect(
                f"reserving locker {candidate.id} answered a reservation of locker {reservation.locker_id}",
                check="reservation_is_for_the_locker",
            )
        run.reservation = reservation
        predicted = run.predict(Reserve(run.actor, run.reservation_duration, reservation.id))
        run.expect(Step.RESERVE, reservation.locker.status, {predicted}, "locker_reserved_after_reserve")
        return reservation, reservation.locker.status

    await run.step(Step.RESERVE, reserve)

    async def token(kind: TokenKind) -> tuple[LockerToken, LockerStatus]:
        assert run.locker is not None
        create = client.create_dropoff_token if kind is TokenKind.DROPOFF else client.create_pickup_token
        issued = await create(tower, run.locker.id, run.token_duration, run.client_info)
        if issued.locker.id != run.locker.id:
            raise ProductDefect(
                f"the {kind.value} token for locker {run.locker.id} names locker {issued.locker.id}",
                check="token_is_for_the_locker",
            )
        run.reservation = None  # a drop-off token ends the reservation [S]
        predicted = run.predict(IssueToken(run.actor, kind, run.token_duration))
        check = f"locker_{predicted.wire_name}_after_{kind.value}_token"
        run.expect(Step(f"{kind.value}_token"), issued.locker.status, {predicted}, check)
        return issued, issued.locker.status

    async def open_door(step: Step, issued: LockerToken) -> tuple[None, LockerStatus]:
        assert run.locker is not None
        failures_before = len(getattr(run.opener, "link_failures", ()))
        opened = await run.opener.open(run.locker, issued)
        if opened != run.locker.id:
            raise ProductDefect(
                f"the {issued.kind.value} token for locker {run.locker.id} opened locker {opened}",
                check="token_opens_its_locker",
            )
        before, command = run.state, OpenDoor(run.claim(issued), run.locker.id)
        predicted = run.predict(command)
        histories = {predicted: run.state}
        first_dropoff = issued.kind is TokenKind.DROPOFF and before.status is LockerStatus.RENTED
        if first_dropoff:
            # When the locker turns occupied is a guess (occupied_on): on the open, or on the close.
            for status in (LockerStatus.OCCUPIED, LockerStatus.RENTED):
                histories.setdefault(status, dataclasses.replace(run.state, status=status))
        closes_itself = getattr(run.opener, "door_closes_itself", True)
        if closes_itself:
            # A person may have closed the door already (the virtual radio's does within 50 ms):
            # the model's state after that close is the one other thing the API may show.
            closed = apply(run.state, CloseDoor(), run._now())
            histories.setdefault(closed.status, closed)
        if run.shown is not None:
            # A drop-off occupies the locker as its door opens [S], but a tower reports door events when
            # it syncs [I]: right after the open the API may still show the status from before; the
            # "occupied" step waits for the new one.
            histories.setdefault(run.shown, run.state)
        if len(getattr(run.opener, "link_failures", ())) > failures_before:
            # The opener retried after a link failure (a lost reply): the failed attempt may have
            # opened the door and a person closed it. The model allows both; the API says which.
            with contextlib.suppress(Refused):
                now = run._now()
                other = apply(apply(apply(before, command, now), CloseDoor(), now), command, now)
                histories.setdefault(other.status, other)
        shown = await run.read_status()
        run.expect(step, shown, set(histories), f"locker_{predicted.wire_name}_while_door_open")
        run.state = histories[shown]
        if first_dropoff:
            at_once = getattr(run.opener, "door_events_reach_the_api_at_once", False)
            _observe_occupied_on(run, shown, door_known_open=not closes_itself, heard_at_once=at_once)
        return None, shown

    async def close_door(step: Step) -> tuple[None, LockerStatus]:
        assert run.locker is not None
        before = run.state.status
        await run.opener.wait_closed(run.locker, timeout=run.status_timeout)
        predicted = run.predict(CloseDoor())
        shown = await run.read_status()
        # A tower reports door events when it syncs [I]: right after the close the API may still
        # show the status from before (or the one it showed before the open); the next step waits
        # for the new one.
        allowed = {before, predicted} | ({run.shown} if run.shown is not None else set())
        run.expect(step, shown, allowed, "locker_status_after_door_closed")
        return None, shown

    dropoff: LockerToken = await run.step(Step.DROPOFF_TOKEN, lambda: token(TokenKind.DROPOFF))
    await run.step(Step.OPEN_FOR_DROPOFF, lambda: open_door(Step.OPEN_FOR_DROPOFF, dropoff))
    await run.step(Step.CLOSE_AFTER_DROPOFF, lambda: close_door(Step.CLOSE_AFTER_DROPOFF))
    await run.step(
        Step.OCCUPIED, lambda: run.wait_for(Step.OCCUPIED, LockerStatus.OCCUPIED, "locker_occupied_after_dropoff")
    )
    pickup: LockerToken = await run.step(Step.PICKUP_TOKEN, lambda: token(TokenKind.PICKUP))
    await run.step(Step.OPEN_FOR_PICKUP, lambda: open_door(Step.OPEN_FOR_PICKUP, pickup))
    await run.step(Step.CLOSE_AFTER_PICKUP, lambda: close_door(Step.CLOSE_AFTER_PICKUP))
    await run.step(
        Step.AVAILABLE, lambda: run.wait_for(Step.AVAILABLE, LockerStatus.AVAILABLE, "locker_available_after_pickup")
    )
    assert run.locker is not None
    run.locker = dataclasses.replace(run.locker, status=LockerStatus.AVAILABLE)


def _observe_occupied_on(run: _Run, shown: LockerStatus, *, door_known_open: bool, heard_at_once: bool) -> None:
    """What the status right after a first drop-off open says of ``occupied_on``.

    Occupied while the door is known to be open: the target turned it occupied on the open.
    Rented, where the API hears of the door at once: not on the open; the status read once it
    shows occupied says so (``read_status``). Rented where the tower reports its door events when
    it syncs (BLE) is the status from before; occupied where a person may have closed the door
    already: neither says anything either way.
    """
    if shown is LockerStatus.OCCUPIED and door_known_open:
        record("occupied_on", "open", f"{run._locker_path()}: occupied while the drop-off door was open")
    elif shown is LockerStatus.RENTED and heard_at_once:
        run.rented_while_open = True


async def _give_back(run: _Run) -> Released:
    """Release what the run holds after a failure: bounded, best effort, and said out loud.

    The model's prediction says where the test item is (an occupied locker is not released); the
    API's status says what is held, even where the model thinks nothing is (a reserve whose answer
    never came may still have reserved it): a held locker is cancelled or released, the target
    refusing if it is not ours. ``ok`` only when the locker reads available (or out of service).

    Where the harness is the person at the door (``door_closes_itself`` false: a sandbox's control
    plane), a stop in the middle of an opening may have left the door open whatever the model
    knew: the door is closed first (closing a shut door changes nothing). A test item inside is
    taken out as a courier would (a pickup token, the door opened and closed: by the harness at a
    control-plane door, by the person at a tower's, as in the delivery itself).
    """
    assert run.locker is not None
    locker_id = run.locker.id
    predicted = run.state
    actions: list[str] = []
    person_here = not getattr(run.opener, "door_closes_itself", True)
    try:
        async with asyncio.timeout(_CLEANUP_TIMEOUT):
            if person_here and not predicted.door_open:
                await run.opener.wait_closed(run.locker, timeout=min(run.status_timeout, _CLEANUP_TIMEOUT / 2))
                if (shown := await run.read_status()) is LockerStatus.OCCUPIED:
                    predicted = dataclasses.replace(predicted, status=shown)
                    actions.append("its door closed (a stop came mid-opening)")
            if predicted.door_open:
                # A person may close it (or the control plane does); only a door that stays open is stuck.
                try:
                    await run.opener.wait_closed(run.locker, timeout=min(run.status_timeout, _CLEANUP_TIMEOUT / 2))
                except HarnessError as exc:
                    raise _Stuck(f"its door was left open ({exc}): close it, then release it") from None
                predicted = apply(predicted, CloseDoor(), run._now())
                actions.append("its door closed")
            if predicted.status is LockerStatus.OCCUPIED:
                try:
                    pickup = await run.client.create_pickup_token(run.tower_id, locker_id, 300, run.client_info)
                    await run.opener.open(run.locker, pickup)
                    await run.opener.wait_closed(run.locker, timeout=min(run.status_timeout, _CLEANUP_TIMEOUT / 2))
                except HarnessError as exc:
                    raise _Stuck(
                        f"it holds the test item, and taking it out failed ({exc}): pick it up (pickup token) "
                        "or reset it in Harbor Console"
                    ) from None
                predicted = available(predicted)
                actions.append("took the test item out (a pickup token, its door opened and closed)")
            status = await run.read_status()
            if predicted.status is LockerStatus.AVAILABLE and status is LockerStatus.AVAILABLE and not actions:
                return _released(run, locker_id, actions, True, f"locker {locker_id} was not held")
            for _ in range(3):  # reserved -> available; rented -> declined -> available
                if status in (LockerStatus.AVAILABLE, LockerStatus.OUT_OF_SERVICE, LockerStatus.OCCUPIED):
                    break
                if status is LockerStatus.RESERVED and run.reservation is not None:
                    reservation_id = run.reservation.id
                    after = (await run.client.cancel_reservation(run.tower_id, locker_id, reservation_id)).status
                    actions.append(f"cancelled reservation {reservation_id}: {status.wire_name} -> {after.wire_name}")
                    run.reservation = None
                else:
                    after = (await run.client.release_locker(run.tower_id, locker_id)).status
                    actions.append(f"released: {status.wire_name} -> {after.wire_name}")
                status = after
            ok = status in (LockerStatus.AVAILABLE, LockerStatus.OUT_OF_SERVICE)
            outcome = "given back" if ok else f"left {status.wire_name}"
            done = "; ".join(actions) or f"the API shows it {status.wire_name}"
            return _released(run, locker_id, actions, ok, f"locker {locker_id} {outcome} ({done})")
    except _Stuck as stuck:
        return _released(run, locker_id, actions, False, f"locker {locker_id} not given back: {stuck}")
    except TimeoutError:
        note = f"locker {locker_id} not given back: no answer within {_CLEANUP_TIMEOUT:g} s"
        return _released(run, locker_id, actions, False, note)
    except HarnessError as exc:
        return _released(run, locker_id, actions, False, f"locker {locker_id} not given back: {exc}")


def _released(run: _Run, locker_id: int, actions: list[str], ok: bool, note: str) -> Released:
    released = Released(locker_id, tuple(actions), ok, note)
    run.emit(released)
    return released


class _Stuck(Exception):
    pass
