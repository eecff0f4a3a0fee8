"""The locker model: every transition of the table, every refusal, expiry and token rules."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.model import (
    HELD_STATUSES,
    TRANSITIONS,
    Cancel,
    CloseDoor,
    Force,
    InvalidTowerId,
    IssueToken,
    LockerState,
    LockerStatus,
    OpenAtTower,
    OpenDoor,
    Refusal,
    Refused,
    Release,
    Reserve,
    TokenClaim,
    TokenKind,
    TowerId,
    apply,
    check_token,
    next_expiry,
    settle,
)

A, B = "provider-a", "provider-b"
LOCKER = 1401


def claim(state: LockerState, kind: TokenKind, expires_at: float = 1_000.0, locker: int = LOCKER) -> TokenClaim:
    return TokenClaim(locker_id=locker, kind=kind, expires_at=expires_at, epoch=state.epoch, holder=A)


def reserved(now: float = 0.0, duration: int = 300) -> LockerState:
    return apply(LockerState(), Reserve(A, duration, reservation_id=7), now)


def rented(now: float = 0.0, duration: int = 600) -> LockerState:
    return apply(LockerState(), IssueToken(A, TokenKind.DROPOFF, duration), now)


def occupied() -> LockerState:
    state = rented()
    state = apply(state, OpenDoor(claim(state, TokenKind.DROPOFF), LOCKER), 1)
    return apply(state, CloseDoor(), 2)


def declined() -> LockerState:
    return apply(rented(), Release(A), 1)


def test_status_ids_are_stable_and_available_is_one() -> None:
    """Status ids are the documented choice, with available = 1 as Harbor has it."""
    assert [(s.wire_name, s.value) for s in LockerStatus] == [
        ("available", 1),
        ("reserved", 2),
        ("rented", 3),
        ("occupied", 4),
        ("declined", 5),
        ("out_of_service", 6),
    ]


def test_from_wire_rejects_a_name_and_id_that_disagree() -> None:
    """A status object whose id is not its name's id is an error, not a guess."""
    assert LockerStatus.from_wire("occupied", 4) is LockerStatus.OCCUPIED
    with pytest.raises(ValueError):
        LockerStatus.from_wire("occupied", 3)
    with pytest.raises(KeyError):
        LockerStatus.from_wire("vanished")


def test_full_delivery_goes_round_to_available_in_a_new_epoch() -> None:
    """The seed's delivery: reserve, drop-off (occupied as the door opens), door closed, pickup,
    door closed, available."""
    state = reserved()
    assert (state.status, state.holder) == (LockerStatus.RESERVED, A)
    state = apply(state, IssueToken(A, TokenKind.DROPOFF, 600), 1)
    assert state.status is LockerStatus.RENTED
    state = apply(state, OpenDoor(claim(state, TokenKind.DROPOFF), LOCKER), 2)
    assert (state.status, state.door_open, state.holder) == (LockerStatus.OCCUPIED, True, A)
    state = apply(state, CloseDoor(), 3)
    assert (state.status, state.door_open) == (LockerStatus.OCCUPIED, False)
    state = apply(state, IssueToken(A, TokenKind.PICKUP, 600), 4)
    state = apply(state, OpenDoor(claim(state, TokenKind.PICKUP), LOCKER), 5)
    assert (state.status, state.door_open) == (LockerStatus.OCCUPIED, True)
    state = apply(state, CloseDoor(), 6)
    assert state == LockerState(epoch=1)


def test_a_used_dropoff_token_occupies_the_locker_before_the_door_closes() -> None:
    """Reference 7 [S]: the drop-off token used (the door opened) makes the locker occupied; a close
    changes nothing, and an occupied locker with its door open never expires."""
    state = apply(rented(duration=60), OpenDoor(claim(rented(), TokenKind.DROPOFF), LOCKER), 1)
    assert state.status is LockerStatus.OCCUPIED
    assert settle(state, 10**6) == state and next_expiry(state) is None
    closed = apply(state, CloseDoor(), 2)
    assert (closed.status, closed.holder, closed.epoch) == (state.status, state.holder, state.epoch)


@pytest.mark.parametrize(
    ("make", "command", "reason"),
    [
        (reserved, Reserve(B, 300, 8), Refusal.HELD),
        (rented, Reserve(B, 300, 8), Refusal.HELD),
        (occupied, Reserve(A, 300, 8), Refusal.HELD),
        (reserved, IssueToken(B, TokenKind.DROPOFF, 60), Refusal.HELD_BY_OTHER),
        (rented, IssueToken(B, TokenKind.DROPOFF, 60), Refusal.HELD_BY_OTHER),
        (occupied, IssueToken(B, TokenKind.PICKUP, 60), Refusal.HELD_BY_OTHER),
        (reserved, IssueToken(A, TokenKind.PICKUP, 60), Refusal.WRONG_STATUS),
        (LockerState, IssueToken(A, TokenKind.PICKUP, 60), Refusal.WRONG_STATUS),
        (reserved, Cancel(B), Refusal.HELD_BY_OTHER),
        (reserved, Cancel(A, reservation_id=99), Refusal.NOT_HOLDER),
        (rented, Cancel(A), Refusal.WRONG_STATUS),
        (LockerState, Release(A), Refusal.WRONG_STATUS),
        (reserved, Release(B), Refusal.HELD_BY_OTHER),
        (occupied, Release(A), Refusal.WRONG_STATUS),
    ],
)
def test_refusals_say_why(make: object, command: object, reason: Refusal) -> None:
    """Each forbidden command is refused with its reason, and the reason maps to 403 or 409."""
    with pytest.raises(Refused) as refused:
        apply(make(), command, 10)  # type: ignore[operator, arg-type]
    assert refused.value.reason is reason
    assert reason.http_status in (403, 409)


def test_only_the_holder_is_refused_with_403_and_status_conflicts_with_409() -> None:
    """Who-may-act refusals are 403, status refusals 409."""
    assert Refusal.HELD_BY_OTHER.http_status == 403
    assert Refusal.HELD.http_status == 409
    assert Refusal.WRONG_STATUS.http_status == 409


def test_reservation_expires_back_to_available_exactly_at_its_duration() -> None:
    """A reservation holds until now + duration and not a moment longer."""
    state = reserved(now=100, duration=300)
    assert next_expiry(state) == 400
    assert settle(state, 399.999).status is LockerStatus.RESERVED
    assert settle(state, 400) == LockerState(epoch=1)
    assert apply(state, Reserve(B, 60, 9), 400).holder == B


def test_unused_tokens_expire_a_rented_or_declined_locker_back_to_available() -> None:
    """ "The locker is yours until the token expires": rented and declined free themselves."""
    assert settle(rented(now=0, duration=600), 600).status is LockerStatus.AVAILABLE
    assert settle(declined(), 600).status is LockerStatus.AVAILABLE
    assert settle(rented(now=0, duration=600), 599).status is LockerStatus.RENTED


def test_an_occupied_locker_never_expires() -> None:
    """An item inside keeps the locker occupied whatever the clock says."""
    assert settle(occupied(), 10**9).status is LockerStatus.OCCUPIED
    assert next_expiry(occupied()) is None


def test_nothing_expires_under_an_open_door() -> None:
    """An open door freezes expiry until it closes."""
    state = rented(duration=10)
    state = apply(state, OpenDoor(claim(state, TokenKind.DROPOFF), LOCKER), 5)
    assert settle(state, 1_000).door_open


def test_release_path_rented_declined_available() -> None:
    """Release takes rented to declined [S] and declined to available [G]."""
    state = declined()
    assert state.status is LockerStatus.DECLINED
    assert apply(state, Release(A), 2) == LockerState(epoch=1)
    assert apply(state, IssueToken(A, TokenKind.DROPOFF, 60), 2).status is LockerStatus.RENTED


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s, c: (s, c.__class__(**{**_fields(c), "locker_id": LOCKER + 1})), Refusal.TOKEN_WRONG_LOCKER),
        (lambda s, c: (s, c.__class__(**{**_fields(c), "expires_at": 1.0})), Refusal.TOKEN_EXPIRED),
        (lambda s, c: (s, c.__class__(**{**_fields(c), "epoch": s.epoch + 1})), Refusal.TOKEN_STALE),
        (lambda s, c: (s, c.__class__(**{**_fields(c), "kind": TokenKind.PICKUP})), Refusal.TOKEN_WRONG_KIND),
    ],
)
def test_a_token_opens_only_its_locker_only_while_valid(mutate: object, reason: Refusal) -> None:
    """Wrong locker, expired, stale and wrong-kind tokens are refused with their reason."""
    state = rented()
    good = claim(state, TokenKind.DROPOFF)
    assert check_token(state, good, LOCKER, 2) is None
    state, bad = mutate(state, good)  # type: ignore[operator]
    assert check_token(state, bad, LOCKER, 2) is reason
    with pytest.raises(Refused):
        apply(state, OpenDoor(bad, LOCKER), 2)


def _fields(c: TokenClaim) -> dict[str, object]:
    return {name: getattr(c, name) for name in c.__dataclass_fields__}


def test_a_dropoff_token_cannot_be_replayed_after_the_pickup() -> None:
    """After the pickup the locker is in a new tenancy and the old drop-off token is dead."""
    state = rented()
    old = claim(state, TokenKind.DROPOFF, expires_at=10**6)
    state = apply(apply(state, OpenDoor(old, LOCKER), 1), CloseDoor(), 2)
    state = apply(state, IssueToken(A, TokenKind.PICKUP, 60), 3)
    state = apply(apply(state, OpenDoor(claim(state, TokenKind.PICKUP), LOCKER), 4), CloseDoor(), 5)
    state = apply(state, IssueToken(B, TokenKind.DROPOFF, 60), 6)
    assert check_token(state, old, LOCKER, 7) is Refusal.TOKEN_STALE


def test_a_dropoff_token_may_reopen_an_occupied_locker_for_a_second_dropoff() -> None:
    """An occupied locker's holder can drop off again; the locker stays occupied."""
    state = occupied()
    token = claim(state, TokenKind.DROPOFF)
    state = apply(apply(state, OpenDoor(token, LOCKER), 3), CloseDoor(), 4)
    assert state.status is LockerStatus.OCCUPIED


def test_the_tower_may_open_an_available_locker_and_hand_it_to_the_session() -> None:
    """OPEN_AVAILABLE_LOCKER: an available locker is the actor's while open, occupied when it closes
    with an item in, free again when it was only looked into."""
    state = apply(LockerState(), OpenAtTower(A, leave_available=False), 1)
    assert (state.status, state.holder, state.door_open) == (LockerStatus.RENTED, A, True)
    assert apply(state, CloseDoor(), 2).status is LockerStatus.OCCUPIED
    looked = apply(apply(LockerState(), OpenAtTower(A, leave_available=True), 1), CloseDoor(), 2)
    assert looked.status is LockerStatus.AVAILABLE and looked.epoch == 1


def test_the_tower_empties_an_occupied_locker_of_its_holder_only() -> None:
    """Opened at the tower to take the item out, an occupied locker is available when it closes; only
    its holder may, and nothing opens twice."""
    state = occupied()
    with pytest.raises(Refused) as other:
        apply(state, OpenAtTower(B, leave_available=True), 3)
    assert other.value.reason is Refusal.HELD_BY_OTHER
    opened = apply(state, OpenAtTower(A, leave_available=True), 3)
    with pytest.raises(Refused) as twice:
        apply(opened, OpenAtTower(A, leave_available=True), 3)
    assert twice.value.reason is Refusal.DOOR_OPEN
    assert apply(opened, CloseDoor(), 4).status is LockerStatus.AVAILABLE


def test_the_tower_opens_no_reserved_or_rented_locker_on_its_own_say() -> None:
    """A locker held for a token (reserved, rented, declined) opens only with that token."""
    for state in (reserved(), rented(), declined()):
        with pytest.raises(Refused) as refused:
            apply(state, OpenAtTower(A, leave_available=False), 1)
        assert refused.value.reason is Refusal.WRONG_STATUS


def test_out_of_service_refuses_everything_and_staff_can_force_it_back() -> None:
    """Out of service lockers refuse every command until staff force them available."""
    state = apply(LockerState(), Force(LockerStatus.OUT_OF_SERVICE), 0)
    for command in (Reserve(A, 60, 1), IssueToken(A, TokenKind.DROPOFF, 60), Release(A)):
        with pytest.raises(Refused) as refused:
            apply(state, command, 1)
        assert refused.value.reason is Refusal.OUT_OF_SERVICE
    assert apply(state, Force(LockerStatus.AVAILABLE), 2).status is LockerStatus.AVAILABLE


def _step(state: LockerState, name: str, now: float) -> LockerState:
    """Apply one transition of the table by name, acting as the holder (or A)."""
    actor = state.holder or A
    match name:
        case "reserve":
            return apply(state, Reserve(actor, 60, 1), now)
        case "cancel":
            return apply(state, Cancel(actor), now)
        case "release":
            return apply(state, Release(actor), now)
        case "dropoff_token":
            return apply(state, IssueToken(actor, TokenKind.DROPOFF, 60), now)
        case "pickup_token":
            return apply(state, IssueToken(actor, TokenKind.PICKUP, 60), now)
        case "expire":
            return settle(state, now + 10**7)
        case "dropoff_door_opened" | "pickup_door_opened":
            kind = TokenKind.DROPOFF if name.startswith("dropoff") else TokenKind.PICKUP
            return apply(state, OpenDoor(TokenClaim(LOCKER, kind, now + 60, state.epoch, actor), LOCKER), now)
        case "dropoff_door_closed" | "pickup_door_closed":
            # Starts from a door a token of that kind opened: the status is the one while it is open.
            if not state.door_open or state.opened_with is not TokenKind(name.split("_")[0]):
                raise Refused(Refusal.WRONG_STATUS, "no door of that kind is open")
            return apply(state, CloseDoor(), now)
        case "tower_dropoff_door_closed" | "tower_pickup_door_closed":
            command = OpenAtTower(actor, leave_available=name == "tower_pickup_door_closed")
            return apply(apply(state, command, now), CloseDoor(), now)
    raise AssertionError(name)


def _opened_by(kind: TokenKind) -> Callable[[], LockerState]:
    """An occupied locker whose door a token of ``kind`` holds open (drop-off: it just turned occupied)."""

    def make() -> LockerState:
        state = rented() if kind is TokenKind.DROPOFF else occupied()
        return apply(state, OpenDoor(claim(state, kind), LOCKER), 3)

    return make


STARTS = {
    LockerStatus.AVAILABLE: LockerState,
    LockerStatus.RESERVED: reserved,
    LockerStatus.RENTED: rented,
    LockerStatus.OCCUPIED: occupied,
    LockerStatus.DECLINED: declined,
}
#: Starts with a door open, by the transition that closes it.
OPEN_STARTS = {
    "dropoff_door_closed": {LockerStatus.OCCUPIED: _opened_by(TokenKind.DROPOFF)},
    "pickup_door_closed": {LockerStatus.OCCUPIED: _opened_by(TokenKind.PICKUP)},
}


@pytest.mark.parametrize(("start", "name", "end"), sorted(TRANSITIONS, key=str))
def test_every_transition_in_the_table_is_what_apply_does(start: LockerStatus, name: str, end: LockerStatus) -> None:
    """The data table of transitions agrees with ``apply``."""
    assert _step(OPEN_STARTS.get(name, STARTS)[start](), name, 100).status is end


def test_no_transition_outside_the_table_changes_status() -> None:
    """Every (status, command) pair not in the table is refused or leaves the status alone."""
    names = {"reserve", "cancel", "release", "dropoff_token", "pickup_token", "expire"}
    names |= {"dropoff_door_opened", "pickup_door_opened", "tower_dropoff_door_closed", "tower_pickup_door_closed"}
    cases = [(status, make, name) for (status, make), name in itertools.product(STARTS.items(), sorted(names))]
    cases += [(status, make, name) for name, starts in OPEN_STARTS.items() for status, make in starts.items()]
    for status, make, name in cases:
        try:
            after = _step(make(), name, 100).status
        except Refused:
            continue
        assert (status, name, after) in TRANSITIONS or after is status, (status, name, after)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["reserve", "cancel", "release", "dropoff", "pickup", "open", "tower_open", "close", "tick"]
            ),
            st.sampled_from([A, B]),
            st.integers(min_value=1, max_value=900),
        ),
        max_size=40,
    )
)
def test_no_sequence_breaks_the_invariants(steps: list[tuple[str, str, int]]) -> None:
    """Whatever happens: held statuses have a holder, free ones none, epochs only grow."""
    state, now, tokens = LockerState(), 0.0, []
    for verb, actor, amount in steps:
        before = state
        try:
            match verb:
                case "reserve":
                    state = apply(state, Reserve(actor, amount, 1), now)
                case "cancel":
                    state = apply(state, Cancel(actor), now)
                case "release":
                    state = apply(state, Release(actor), now)
                case "dropoff" | "pickup":
                    kind = TokenKind(verb)
                    state = apply(state, IssueToken(actor, kind, amount), now)
                    tokens.append(TokenClaim(LOCKER, kind, now + amount, state.epoch, actor))
                case "open" if tokens:
                    state = apply(state, OpenDoor(tokens[amount % len(tokens)], LOCKER), now)
                case "tower_open":
                    state = apply(state, OpenAtTower(actor, leave_available=amount % 2 == 0), now)
                case "close":
                    state = apply(state, CloseDoor(), now)
                case "tick":
                    now += amount
                    state = settle(state, now)
        except Refused:
            assert state == before
        assert (state.holder is not None) == (state.status in HELD_STATUSES)
        assert state.epoch >= before.epoch
        assert not (state.door_open and state.status not in (LockerStatus.RENTED, LockerStatus.OCCUPIED))


# -- tower ids ---------------------------------------------------------------------------------------


@given(st.binary(min_size=8, max_size=8), st.sampled_from([str.lower, str.upper, str.swapcase]))
def test_a_tower_id_in_any_case_has_one_spelling(raw: bytes, case: object) -> None:
    """Any case in, upper-case hex out; parsing a TowerId again gives it back; its bytes round-trip."""
    text = case(raw.hex())  # type: ignore[operator]
    tower = TowerId(text)
    assert tower == raw.hex().upper() and TowerId(tower) is tower
    assert TowerId.from_bytes(raw) == tower and tower.to_bytes() == raw
    assert TowerId(text.lower()) == TowerId(text.upper())


@pytest.mark.parametrize(
    "text", ["", "0100", "010000000000001G", "01000000000000140", " 0100000000000014", "\uff10" * 16]
)
def test_what_is_not_a_tower_id_is_refused_with_one_error(text: str) -> None:
    """Too short, too long, not hex, padded or full-width: ``InvalidTowerId`` (a ``ValueError``) naming the text."""
    with pytest.raises(InvalidTowerId, match="is not a tower id: expected 16 hex digits") as refused:
        TowerId(text)
    assert isinstance(refused.value, ValueError) and refused.value.value == text
    assert TowerId.or_none(text) is None


def test_or_none_reads_data_leniently() -> None:
    """``TowerId.or_none`` gives a tower id for one and ``None`` for anything else, whatever its type."""
    assert TowerId.or_none("0100000000000abc") == "0100000000000ABC"
    assert TowerId.or_none(None) is None and TowerId.or_none(1_000_000_000_000_014) is None
    with pytest.raises(InvalidTowerId):
        TowerId.from_bytes(b"\x01" * 7)
