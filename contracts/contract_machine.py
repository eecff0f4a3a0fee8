"""The locker flow as a Hypothesis state machine: the flow's verbs as rules, the model as the oracle.

Two service providers (``main`` and ``second``) act on a few lockers of one tower. Each rule makes
one real call and asks ``harness.model`` what it should have done, from the model state the
machine keeps for each locker, at the target's time (the virtual clock on a sandbox). Every
answer that differs is recorded as a violation of one named promise, and the invariants (checked
after every step) fail on it:

    statuses_shown_are_the_models          every status the API shows, and every refusal, is the model's
    available_list_has_no_held_locker      the listing never shows a held locker as available
    no_locker_is_held_by_two_parties       no party is granted a hold on a locker another party holds
    no_party_acts_on_what_another_holds    nobody cancels, releases or gets a token for another's locker
    doors_open_only_for_valid_tokens       a door opens only for a token the model says may open it

When a locker turns occupied is a guess (``occupied_on`` in ``harness.assumptions``: on the
drop-off open, or on the close): while a first drop-off's door is open the machine accepts both,
and records which one a read showed as an observation, never a violation.

Door and clock rules (``open_with_token``, ``close_door``, ``advance_clock``) need a virtual
sandbox's control plane: the tower firmware runs there, and only there can a test move time or
close a door. The machine is built for a target with ``LockerFlow.bound(world, doors=...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness.assumptions import read_status, record
from harness.errors import HarborAPIError
from harness.model import (
    HELD_STATUSES,
    Cancel,
    CloseDoor,
    Command,
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
from harness.testing import fresh_world

if TYPE_CHECKING:
    from contract_holds import RunHolds

    from harness.api import HarborClient
    from harness.sim import SimControl

__all__ = ["INVARIANTS", "FlowWorld", "IssuedToken", "LockerFlow", "Party"]

#: Seconds either side of a call within which an expiry makes either answer right.
_AMBIGUITY: Final = 0.5
#: Durations the rules draw: long enough that nothing expires unless the clock is moved.
_RESERVATION_DURATIONS: Final = (60, 300, 900)
_TOKEN_DURATIONS: Final = (120, 600, 3600)
#: Clock moves, in seconds: odd values, so sums of them rarely land right on an expiry.
_CLOCK_MOVES: Final = (47, 149, 401, 997, 3607)
#: Releases per held locker when giving back on a target without a control plane.
_GIVE_BACK_ROUNDS: Final = 2

STATUSES: Final = "statuses_shown_are_the_models"
AVAILABLE_LIST: Final = "available_list_has_no_held_locker"
TWO_PARTIES: Final = "no_locker_is_held_by_two_parties"
ANOTHERS_LOCKER: Final = "no_party_acts_on_what_another_holds"
DOORS: Final = "doors_open_only_for_valid_tokens"
#: The machine's invariants, in the order they are checked.
INVARIANTS: Final = (TWO_PARTIES, ANOTHERS_LOCKER, DOORS, AVAILABLE_LIST, STATUSES)


@dataclass(frozen=True, slots=True)
class Party:
    """One service provider: its client id (the holder the model names), its API client, and the
    record of what this run asked that client to hold (its ``holds`` hook, which also writes the
    cleanup ledger when it has one)."""

    name: str  # "main" or "second": how steps are printed
    client_id: str
    api: HarborClient
    holds: RunHolds


@dataclass
class FlowWorld:
    """Where the machine acts: the parties, the tower, its lockers, and the control plane if any."""

    main: Party
    second: Party
    tower: TowerId
    lockers: tuple[int, ...]
    control: SimControl | None = None
    #: The sandbox is this run's alone: it may be reseeded and its clock moved (never a shared one).
    exclusive: bool = False
    #: Perf-counter anchored target time: set at each reset (the control plane's clock, else local time).
    _anchor: tuple[float, float] = (0.0, 0.0)

    @property
    def parties(self) -> tuple[Party, Party]:
        return self.main, self.second

    def start(self) -> None:
        """A fresh start for one example: the seeded world (switches kept), or back what is held."""
        if self.control is not None and self.exclusive:
            self.reseed()
            self.anchor(float(self.control.state()["now"]))
        else:
            self.give_back()
            self.anchor(time.time())

    def anchor(self, target_now: float) -> None:
        self._anchor = (target_now, time.perf_counter())

    def now(self) -> float:
        """The target's time now, as far as the machine knows it."""
        target_now, taken = self._anchor
        return target_now + (time.perf_counter() - taken)

    def reseed(self) -> None:
        """The sandbox's seeded world again (switches kept): nothing is held, so no ledger row stays open."""
        assert self.control is not None and self.exclusive, "only a sandbox of this run's own is reseeded"
        fresh_world(self.control)
        for party in self.parties:
            party.holds.given_back(note="properties suite: the sandbox seeded again")

    def give_back(self) -> None:
        """Give back what both parties hold of what this run asked them to hold (a shared sandbox must be
        left as found, the identities' other holds included: they may be another run's); bounded. With
        the tower's doors (a control plane) an item inside is taken out as a courier would: a pickup
        token, the door opened and closed. The ledger rows of every locker no longer held are closed
        (a reservation that expired on its own included)."""
        for party in self.parties:
            held = self._held(party)
            for _ in range(_GIVE_BACK_ROUNDS):
                if not held:
                    break
                for locker_id in held:
                    with contextlib.suppress(HarborAPIError):
                        self._give_back_one(party, locker_id)
                held = self._held(party)
            party.holds.given_back(note="properties suite: given back", still_held=held)

    def _give_back_one(self, party: Party, locker_id: int) -> None:
        """One step back towards available: close an open door, empty an occupied locker, or release."""
        from harness.sim import ControlError, FirmwareRefusal

        control = self.control
        try:
            if control is not None and control.door_state(self.tower, locker_id):
                control.close_door(self.tower, locker_id)
                return
            if control is not None and party.api.get_locker(self.tower, locker_id).status is LockerStatus.OCCUPIED:
                token = party.api.create_pickup_token(self.tower, locker_id, 300, "properties suite: give back")
                control.open_door(self.tower, locker_id, token.payload, token.payload_auth)
                control.close_door(self.tower, locker_id)
                return
        except (ControlError, FirmwareRefusal):
            return  # the next round looks again
        # Without doors an item inside (occupied) cannot be released: nothing more a REST client can do.
        party.api.release_locker(self.tower, locker_id)

    def _held(self, party: Party) -> list[int]:
        """The lockers of the tower ``party`` holds that this run asked it to hold (the others are
        forgotten: seen free)."""
        holding = {(locker.tower_id, locker.id) for locker in party.api.assigned_lockers()}
        for place in party.holds.places() - holding:
            party.holds.forget(*place)
        return sorted(locker_id for tower, locker_id in party.holds.places() & holding if tower == self.tower)


@dataclass(frozen=True)
class IssuedToken:
    """A token the API issued, with the claim the model gives it; ``payload_auth`` never printed."""

    locker_id: int
    kind: TokenKind
    payload: str
    payload_auth: str = field(repr=False)
    claim: TokenClaim = field(repr=False)


@dataclass(frozen=True, slots=True)
class Granted:
    """The API did it; ``shown`` is the locker status it showed after (``None``: it showed none)."""

    shown: LockerStatus | None


Answer = Granted | int  # granted, or refused with this HTTP status


@dataclass(frozen=True, slots=True)
class Violation:
    promise: str
    step: str
    detail: str


@dataclass(frozen=True, slots=True)
class _Branch:
    """What the model says at one instant: the state after, or the refusal."""

    state: LockerState | None
    refusal: Refused | None
    #: Where the branch only tolerates what the API shows (the other ``occupied_on`` timing), the
    #: model's own state: adopting the branch keeps it, so a later status is judged by the model.
    keeps: LockerState | None = None

    @property
    def answer(self) -> Answer:
        if self.refusal is not None:
            return self.refusal.reason.http_status
        assert self.state is not None
        return Granted(self.state.status)


def _describe(answer: Answer) -> str:
    """How a call's answer reads in a failure: ``granted it (rented)`` or ``refused with 409``."""
    if isinstance(answer, Granted):
        return f"granted it ({answer.shown.wire_name})" if answer.shown else "granted it"
    return f"refused with {answer}"


def _answer_of(call: Callable[[], Any], shown: Callable[[Any], LockerStatus | None]) -> Answer:
    try:
        result = call()
    except HarborAPIError as error:
        return error.status_code
    return Granted(shown(result))


_PARTY = st.sampled_from(("main", "second"))


class LockerFlow(RuleBasedStateMachine):
    """The flow's verbs over a few lockers and two parties; the model judges every answer."""

    world: ClassVar[FlowWorld]
    doors: ClassVar[bool] = False

    @classmethod
    def bound(cls, world: FlowWorld, *, doors: bool) -> type[LockerFlow]:
        """This machine acting on ``world``; ``doors`` adds the rules that need the control plane."""
        return type(cls.__name__, (cls,), {"world": world, "doors": doors})

    def __init__(self) -> None:
        super().__init__()
        self.world.start()
        self.models: dict[int, LockerState] = dict.fromkeys(self.world.lockers, LockerState())
        self.reservations: dict[int, list[int]] = {}
        self.tokens: list[IssuedToken] = []
        self.violations: list[Violation] = []
        #: Lockers whose door a drop-off token opened while they were rented, not closed since:
        #: rented and occupied both fit while it stays open (``occupied_on``).
        self.first_dropoff_open: set[int] = set()

    def teardown(self) -> None:
        if self.world.control is None or not self.world.exclusive:
            self.world.give_back()

    # -- judging ----------------------------------------------------------------------------------

    def _party(self, name: str) -> Party:
        return self.world.main if name == "main" else self.world.second

    def _locker(self, index: int) -> int:
        return self.world.lockers[index % len(self.world.lockers)]

    def _branches(self, locker_id: int, command: Command | None, lo: float, hi: float) -> list[_Branch]:
        """The model's answer at both ends of the call's time window (they differ only at an expiry)."""
        state = self.models[locker_id]
        branches = []
        for at in (lo - _AMBIGUITY, hi + _AMBIGUITY):
            if command is None:
                branches.append(_Branch(settle(state, at), None))
                continue
            try:
                branches.append(_Branch(apply(state, command, at), None))
            except Refused as refused:
                branches.append(_Branch(settle(state, at), refused))
        return branches + self._timing_variants(locker_id, branches)

    def _timing_variants(self, locker_id: int, branches: list[_Branch]) -> list[_Branch]:
        """While a first drop-off's door is open, the status of the other occupied_on timing fits too."""
        if locker_id not in self.first_dropoff_open:
            return []
        swap = {LockerStatus.RENTED: LockerStatus.OCCUPIED, LockerStatus.OCCUPIED: LockerStatus.RENTED}
        return [
            _Branch(dataclasses.replace(branch.state, status=swap[branch.state.status]), None, keeps=branch.state)
            for branch in branches
            if branch.refusal is None
            and branch.state is not None
            and branch.state.door_open
            and branch.state.status in swap
        ]

    def _observe_timing(self, locker_id: int, shown: LockerStatus | None) -> None:
        """A read while a first drop-off's door is open says when the target turns a locker occupied."""
        if locker_id in self.first_dropoff_open and self.models[locker_id].door_open:
            timing = {LockerStatus.OCCUPIED: "open", LockerStatus.RENTED: "close"}.get(shown) if shown else None
            if timing is not None:
                record("occupied_on", timing, f"GET locker {locker_id} while its drop-off door was open (properties)")

    def _judge(
        self, step: str, locker_id: int, command: Command | None, answer: Answer, lo: float, hi: float
    ) -> _Branch | None:
        """Compare ``answer`` with the model; adopt the matching prediction, or record a violation."""
        if command is None and isinstance(answer, Granted):
            self._observe_timing(locker_id, answer.shown)
        branches = self._branches(locker_id, command, lo, hi)
        for branch in branches:
            expected = branch.answer
            if isinstance(answer, Granted) and isinstance(expected, Granted):
                if answer.shown is None or answer.shown is expected.shown:
                    return self._adopt(locker_id, branch)
            elif answer == expected:
                return self._adopt(locker_id, branch)
        promise = self._promise(locker_id, command, answer, branches)
        self._violated(promise, step, locker_id, answer, branches, read=command is None)
        return None

    def _violated(
        self, promise: str, step: str, locker_id: int, answer: Answer, branches: list[_Branch], *, read: bool = False
    ) -> None:
        before = self.models[locker_id]
        holder = f", held by {self._holder_name(before.holder)}" if before.holder else ""
        if read:
            shown = answer.shown.wire_name if isinstance(answer, Granted) and answer.shown else "?"
            wanted = " or ".join(sorted({branch.state.status.wire_name for branch in branches if branch.state}))
            said = f"the API shows {shown}; the model predicts {wanted}"
        else:
            predicted = {_describe(branch.answer).replace("granted it", "granted") for branch in branches}
            wanted = " or ".join(sorted(predicted))
            said = f"the API {_describe(answer)}; the model predicts {wanted}"
        detail = f"locker {locker_id} ({before.status.wire_name}{holder}): {said}"
        self.violations.append(Violation(promise, step, detail))

    def _adopt(self, locker_id: int, branch: _Branch) -> _Branch:
        assert branch.state is not None
        self.models[locker_id] = branch.keeps or branch.state
        return branch

    def _promise(self, locker_id: int, command: Command | None, answer: Answer, branches: list[_Branch]) -> str:
        """Which promise a wrong answer breaks."""
        refusals = [branch.refusal for branch in branches if branch.refusal is not None]
        if not isinstance(answer, Granted) or len(refusals) != len(branches):
            return STATUSES
        if isinstance(command, OpenDoor):
            return DOORS
        holder = self.models[locker_id].holder
        actor = getattr(command, "actor", None)
        if holder is None or actor is None or holder == actor:
            return STATUSES
        if isinstance(command, Reserve):
            return TWO_PARTIES
        reasons = {refusal.reason for refusal in refusals}
        if reasons & {Refusal.HELD_BY_OTHER, Refusal.NOT_HOLDER}:
            return ANOTHERS_LOCKER
        return STATUSES

    def _holder_name(self, client_id: str | None) -> str:
        for party in self.world.parties:
            if party.client_id == client_id:
                return party.name
        return str(client_id)

    def _observe_listing(self, step: str, party: Party) -> None:
        """List the tower through ``party`` and judge every status shown for the machine's lockers."""
        lo = self.world.now()
        listed = {locker.id: locker.status for locker in party.api.list_lockers(self.world.tower)}
        hi = self.world.now()
        for locker_id in self.world.lockers:
            shown = listed.get(locker_id)
            if shown is None:
                self.violations.append(Violation(STATUSES, step, f"locker {locker_id} is missing from the listing"))
                continue
            self._observe_timing(locker_id, shown)
            branches = self._branches(locker_id, None, lo, hi)
            matching = [branch for branch in branches if branch.answer == Granted(shown)]
            if matching:
                self._adopt(locker_id, matching[0])
                continue
            held = all(branch.state is not None and branch.state.status in HELD_STATUSES for branch in branches)
            promise = AVAILABLE_LIST if shown is LockerStatus.AVAILABLE and held else STATUSES
            self._violated(promise, step, locker_id, Granted(shown), branches, read=True)

    # -- rules: the flow's verbs -------------------------------------------------------------------

    @rule(party=_PARTY)
    def list_lockers(self, party: str) -> None:
        self._observe_listing(f"list_lockers({party})", self._party(party))

    @rule(party=_PARTY, locker=st.integers(0, 7), duration=st.sampled_from(_RESERVATION_DURATIONS))
    def reserve(self, party: str, locker: int, duration: int) -> None:
        actor, locker_id = self._party(party), self._locker(locker)
        granted: list[int] = []

        def call() -> Any:
            reservation = actor.api.reserve(self.world.tower, locker_id, duration)
            granted.append(reservation.id)
            return reservation

        lo = self.world.now()
        answer = _answer_of(call, lambda reservation: reservation.locker.status)
        hi = self.world.now()
        command = Reserve(actor.client_id, duration, 0)
        branch = self._judge(f"reserve({party}, {locker_id})", locker_id, command, answer, lo, hi)
        if granted:
            self.reservations.setdefault(locker_id, []).append(granted[0])
            if branch is not None and branch.state is not None:
                self.models[locker_id] = dataclasses.replace(branch.state, reservation_id=granted[0])

    @precondition(lambda self: bool(self.reservations))
    @rule(party=_PARTY, locker=st.integers(0, 7))
    def cancel(self, party: str, locker: int) -> None:
        actor = self._party(party)
        known = sorted(self.reservations)
        locker_id = known[locker % len(known)]
        reservation_id = self.reservations[locker_id][-1]
        lo = self.world.now()
        answer = _answer_of(
            lambda: actor.api.cancel_reservation(self.world.tower, locker_id, reservation_id),
            lambda shown: shown.status,
        )
        hi = self.world.now()
        command = Cancel(actor.client_id, reservation_id)
        self._judge(f"cancel({party}, {locker_id}, reservation {reservation_id})", locker_id, command, answer, lo, hi)

    @rule(party=_PARTY, locker=st.integers(0, 7))
    def release(self, party: str, locker: int) -> None:
        actor, locker_id = self._party(party), self._locker(locker)
        lo = self.world.now()
        answer = _answer_of(lambda: actor.api.release_locker(self.world.tower, locker_id), lambda shown: shown.status)
        hi = self.world.now()
        self._judge(f"release({party}, {locker_id})", locker_id, Release(actor.client_id), answer, lo, hi)

    def _token(self, kind: TokenKind, party: str, locker: int, duration: int) -> None:
        actor, locker_id = self._party(party), self._locker(locker)
        create = actor.api.create_dropoff_token if kind is TokenKind.DROPOFF else actor.api.create_pickup_token
        issued: list[Any] = []

        def call() -> Any:
            token = create(self.world.tower, locker_id, duration)
            issued.append(token)
            return token

        lo = self.world.now()
        answer = _answer_of(call, lambda token: token.locker.status)
        hi = self.world.now()
        command = IssueToken(actor.client_id, kind, duration)
        branch = self._judge(f"create_{kind.value}_token({party}, {locker_id})", locker_id, command, answer, lo, hi)
        if issued and branch is not None and branch.state is not None:
            token = issued[0]
            claim = TokenClaim(locker_id, kind, lo + duration, branch.state.epoch, actor.client_id)
            self.tokens.append(IssuedToken(locker_id, kind, token.payload, token.payload_auth, claim))

    @rule(party=_PARTY, locker=st.integers(0, 7), duration=st.sampled_from(_TOKEN_DURATIONS))
    def create_dropoff_token(self, party: str, locker: int, duration: int) -> None:
        self._token(TokenKind.DROPOFF, party, locker, duration)

    @rule(party=_PARTY, locker=st.integers(0, 7), duration=st.sampled_from(_TOKEN_DURATIONS))
    def create_pickup_token(self, party: str, locker: int, duration: int) -> None:
        self._token(TokenKind.PICKUP, party, locker, duration)

    # -- rules that need the tower (the control plane runs its firmware) ---------------------------

    @precondition(lambda self: self.doors and bool(self.tokens))
    @rule(pick=st.integers(0, 31), elsewhere=st.booleans())
    def open_with_token(self, pick: int, elsewhere: bool) -> None:
        """Present an issued token at its own door, or (``elsewhere``) at another locker's door."""
        from harness.sim import FirmwareRefusal

        control = self.world.control
        assert control is not None
        token = self.tokens[pick % len(self.tokens)]
        door = token.locker_id
        if elsewhere:
            others = [locker_id for locker_id in self.world.lockers if locker_id != token.locker_id]
            door = others[pick % len(others)]
        lo = self.world.now()
        try:
            control.open_door(self.world.tower, door, token.payload, token.payload_auth)
            answer: Answer = Granted(None)
        except FirmwareRefusal as refusal:
            answer = refusal.http_status
        hi = self.world.now()
        step = f"open_with_token({token.kind.value} token #{self.tokens.index(token)} of {token.locker_id} at {door})"
        if isinstance(answer, int):
            # The firmware's codes are not the REST API's: only "refused" is compared.
            branches = self._branches(door, OpenDoor(token.claim, door), lo, hi)
            if any(branch.refusal is not None for branch in branches):
                self._adopt(door, next(branch for branch in branches if branch.refusal is not None))
                return
        was_rented = self.models[door].status is LockerStatus.RENTED
        judged = self._judge(step, door, OpenDoor(token.claim, door), answer, lo, hi)
        if judged is None or isinstance(answer, int):
            return
        if token.kind is TokenKind.DROPOFF and was_rented and self.models[door].door_open:
            self.first_dropoff_open.add(door)
        # A drop-off token used is the item in: the API shows the locker occupied while the door is open [S]
        # (or, where the target turns it occupied on the close, rented: occupied_on, judged as a read).
        lo = self.world.now()
        read = self.world.main.api.get_locker(self.world.tower, door).status
        self._judge(f"{step}, then read", door, None, Granted(read), lo, self.world.now())

    def _open_doors(self) -> list[int]:
        return [locker_id for locker_id, state in self.models.items() if state.door_open]

    @precondition(lambda self: self.doors and bool(self._open_doors()))
    @rule(door=st.integers(0, 7))
    def close_door(self, door: int) -> None:
        """A person closes an open door; the control plane's view and the API's must show the model's status."""
        control = self.world.control
        assert control is not None
        open_doors = self._open_doors()
        locker_id = open_doors[door % len(open_doors)]
        lo = self.world.now()
        view = control.close_door(self.world.tower, locker_id)
        hi = self.world.now()
        self.first_dropoff_open.discard(locker_id)
        assumed = self.world.main.api.settings.assume
        shown = read_status(view["status"]["name"], view["status"]["id"], assumed, "", observe=False).status
        if self._judge(f"close_door({locker_id})", locker_id, CloseDoor(), Granted(shown), lo, hi) is None:
            # The door is shut whatever the API shows: carry on from the model's close, so the wrong
            # status stays the one violation rather than every later door step's too.
            predicted = [b.state for b in self._branches(locker_id, CloseDoor(), lo, hi) if b.state is not None]
            if predicted:
                self.models[locker_id] = predicted[0]
            return
        lo = self.world.now()
        read = self.world.main.api.get_locker(self.world.tower, locker_id).status
        self._judge(f"close_door({locker_id}), then read", locker_id, None, Granted(read), lo, self.world.now())

    @precondition(lambda self: self.doors and self.world.exclusive)  # never a shared sandbox's clock
    @rule(seconds=st.sampled_from(_CLOCK_MOVES))
    def advance_clock(self, seconds: int) -> None:
        """Time passes on the target; what expired must show as the model says."""
        control = self.world.control
        assert control is not None
        self.world.anchor(control.advance_clock(seconds))
        self._observe_listing(f"advance_clock({seconds}), then list", self.world.main)

    # -- invariants: the promises ------------------------------------------------------------------

    def _holds(self, promise: str) -> None:
        broken = [violation for violation in self.violations if violation.promise == promise]
        if broken:
            first = broken[0]
            raise AssertionError(f"{promise}: after {first.step}: {first.detail}")

    @invariant()
    def no_locker_is_held_by_two_parties(self) -> None:
        self._holds(TWO_PARTIES)

    @invariant()
    def no_party_acts_on_what_another_holds(self) -> None:
        self._holds(ANOTHERS_LOCKER)

    @invariant()
    def doors_open_only_for_valid_tokens(self) -> None:
        self._holds(DOORS)

    @invariant()
    def available_list_has_no_held_locker(self) -> None:
        self._holds(AVAILABLE_LIST)

    @invariant()
    def statuses_shown_are_the_models(self) -> None:
        self._holds(STATUSES)

    def verify(self) -> None:
        """Check every invariant now, in order (what Hypothesis does after each step)."""
        for name in INVARIANTS:
            getattr(self, name)()
