"""Race and token-lifecycle oracles: the questions a generated sequence rarely asks sharply.

Each oracle is a function named after the promise it checks; a broken promise is an
``AssertionError`` whose message starts with that name. The race oracles need only the REST API
(any target, two identities); the token oracles present tokens at doors and move the clock, so
they need a virtual sandbox's control plane (``world.control``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from contract_machine import FlowWorld

from harness.api import LockerToken
from harness.errors import HarborAPIError
from harness.model import LockerStatus, TowerId
from harness.testing import LOCAL_OTHER_TOWER

__all__ = ["CLOCK_ORACLES", "RACE_ORACLES", "TOKEN_ORACLES"]

#: A door of the second seeded tower, where a first-tower token is presented.
_OTHER_TOWER_LOCKER: Final = 17501
#: Seconds the parallel calls wait for each other before going at once.
_BARRIER_TIMEOUT: Final = 30.0


def _promise(name: str, kept: bool, broken: str) -> None:
    if not kept:
        raise AssertionError(f"{name}: {broken}")


def _in_parallel(count: int, call: Callable[[int], object]) -> list[object]:
    """``count`` calls released together by a barrier; each answer, or its ``HarborAPIError``, in order."""
    barrier = threading.Barrier(count, timeout=_BARRIER_TIMEOUT)

    def one(index: int) -> object:
        barrier.wait()
        try:
            return call(index)
        except HarborAPIError as error:
            return error

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def _refusals(answers: list[object]) -> list[int]:
    return sorted({answer.status_code for answer in answers if isinstance(answer, HarborAPIError)})


# -- races (any target) --------------------------------------------------------------------------------


def parallel_reserves_of_one_locker_have_one_winner(world: FlowWorld, count: int) -> None:
    """``count`` reserves of one locker sent at once, alternating parties: one wins, the rest get 409."""
    name = parallel_reserves_of_one_locker_have_one_winner.__name__
    locker_id = world.lockers[0]
    parties = world.parties
    answers = _in_parallel(count, lambda i: parties[i % 2].api.reserve(world.tower, locker_id, 300))
    winners = [answer for answer in answers if not isinstance(answer, HarborAPIError)]
    _promise(name, len(winners) == 1, f"{len(winners)} of {count} parallel reserves of locker {locker_id} won")
    refused = _refusals(answers)
    _promise(name, refused == [409], f"the losing reserves answered {refused}, not 409")


def parallel_dropoff_tokens_from_non_owner_are_refused(world: FlowWorld, count: int) -> None:
    """While ``main`` holds a locker, ``count`` drop-off token requests sent at once by ``second`` are refused 403."""
    name = parallel_dropoff_tokens_from_non_owner_are_refused.__name__
    locker_id = world.lockers[0]
    world.main.api.reserve(world.tower, locker_id, 300)
    answers = _in_parallel(count, lambda _: world.second.api.create_dropoff_token(world.tower, locker_id, 600))
    granted = [answer for answer in answers if not isinstance(answer, HarborAPIError)]
    _promise(name, not granted, f"{len(granted)} of {count} drop-off tokens went to the party not holding the locker")
    refused = _refusals(answers)
    _promise(name, refused == [403], f"the refusals answered {refused}, not 403 (held by another party)")
    shown = world.main.api.get_locker(world.tower, locker_id).status
    _promise(name, shown is LockerStatus.RESERVED, f"locker {locker_id} shows {shown.wire_name}, not reserved")


# -- tokens at doors (a virtual sandbox's control plane) ------------------------------------------------


def _opens(world: FlowWorld, token: LockerToken, *, locker_id: int | None = None, tower: TowerId | None = None) -> bool:
    """Whether the door opened for ``token`` presented at it (its own door unless told another)."""
    from harness.sim import FirmwareRefusal

    assert world.control is not None, "a token oracle needs the control plane"
    try:
        world.control.open_door(tower or world.tower, locker_id or token.locker.id, token.payload, token.payload_auth)
    except FirmwareRefusal:
        return False
    return True


def _rented(world: FlowWorld, locker_id: int, duration: int = 600) -> LockerToken:
    """``main`` reserves the locker and gets a drop-off token for it."""
    world.main.api.reserve(world.tower, locker_id, 300)
    return world.main.api.create_dropoff_token(world.tower, locker_id, duration)


def token_is_refused_after_it_expires(world: FlowWorld) -> None:
    """A drop-off token presented after its ``expires`` is refused, though the locker is still rented."""
    name = token_is_refused_after_it_expires.__name__
    assert world.control is not None, "a token oracle needs the control plane"
    locker_id = world.lockers[0]
    short = _rented(world, locker_id, duration=60)
    world.main.api.create_dropoff_token(world.tower, locker_id, 3600)  # keeps the locker rented
    world.control.advance_clock(61)
    shown = world.main.api.get_locker(world.tower, locker_id).status
    _promise(name, shown is LockerStatus.RENTED, f"locker {locker_id} shows {shown.wire_name}, not rented")
    _promise(name, not _opens(world, short), f"a drop-off token 1 s past its expires opened locker {locker_id}")


def token_is_refused_at_another_locker(world: FlowWorld) -> None:
    """A drop-off token presented at another (also rented) locker's door of its tower is refused there."""
    name = token_is_refused_at_another_locker.__name__
    mine, other = world.lockers[0], world.lockers[1]
    token = _rented(world, mine)
    _rented(world, other)  # the other door is rented too: only the token is wrong
    _promise(name, not _opens(world, token, locker_id=other), f"the token for locker {mine} opened locker {other}")


def token_is_refused_on_another_tower(world: FlowWorld) -> None:
    """A drop-off token presented at a door of the second tower is refused there."""
    name = token_is_refused_on_another_tower.__name__
    token = _rented(world, world.lockers[0])
    opened = _opens(world, token, locker_id=_OTHER_TOWER_LOCKER, tower=LOCAL_OTHER_TOWER)
    _promise(name, not opened, f"a token of tower {world.tower} opened a door of tower {LOCAL_OTHER_TOWER}")


def dropoff_token_is_refused_after_pickup(world: FlowWorld) -> None:
    """The drop-off token of a finished delivery (dropped off, picked up) opens nothing afterwards."""
    name = dropoff_token_is_refused_after_pickup.__name__
    assert world.control is not None, "a token oracle needs the control plane"
    tower, locker_id = world.tower, world.lockers[0]
    dropoff = _rented(world, locker_id)
    _promise(name, _opens(world, dropoff), "the fresh drop-off token did not open its locker")
    world.control.close_door(tower, locker_id)
    pickup = world.main.api.create_pickup_token(tower, locker_id, 600)
    _promise(name, _opens(world, pickup), "the pickup token did not open its locker")
    world.control.close_door(tower, locker_id)
    shown = world.main.api.get_locker(tower, locker_id).status
    _promise(name, shown is LockerStatus.AVAILABLE, f"after the pickup locker {locker_id} shows {shown.wire_name}")
    _promise(name, not _opens(world, dropoff), f"the drop-off token opened locker {locker_id} again after the pickup")


#: The token oracles, by name: each needs the control plane.
TOKEN_ORACLES: Final[dict[str, Callable[[FlowWorld], None]]] = {
    oracle.__name__: oracle
    for oracle in (
        token_is_refused_after_it_expires,
        token_is_refused_at_another_locker,
        token_is_refused_on_another_tower,
        dropoff_token_is_refused_after_pickup,
    )
}
#: The token oracles that move the sandbox's clock: never on a shared sandbox.
CLOCK_ORACLES: Final = frozenset({token_is_refused_after_it_expires.__name__})
#: The race oracles, by name: they take the number of parallel calls.
RACE_ORACLES: Final[dict[str, Callable[[FlowWorld, int], None]]] = {
    oracle.__name__: oracle
    for oracle in (parallel_reserves_of_one_locker_have_one_winner, parallel_dropoff_tokens_from_non_owner_are_refused)
}
