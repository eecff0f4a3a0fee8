"""Every bug switch turns one check red: each check passes on the honest sandbox and fails with
its switch on, which proves the check can catch the defect the switch plants. Dialects change how
the sandbox answers where our reading of Harbor is a guess, never what it does: each check reads
tolerantly where a dialect may differ (any 2xx for a create, an ``expires`` without offset as UTC),
passes with any dialect on, and still fails with its switch on whatever dialects are on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from harness.sim import BUG_NAMES, DIALECT_NAMES, FirmwareRefusal, SimControl, VirtualSandbox

from .sandbox_parties import TOWER, Party


@dataclass
class Env:
    demo: Party
    second: Party
    control: SimControl
    sandbox: VirtualSandbox


Check = Callable[[Env], None]
CHECKS: dict[str, Check] = {}


def catches(bug: str) -> Callable[[Check], Check]:
    """Register a check as the one that catches ``bug``."""

    def register(check: Check) -> Check:
        CHECKS[bug] = check
        return check

    return register


def open_code(control: SimControl, locker_id: int, token: dict[str, Any]) -> int | None:
    """The Blink code the tower refuses the token with at this door, ``None`` if the door opened."""
    try:
        control.open_door(TOWER, locker_id, token["payload"], token["payload_auth"])
    except FirmwareRefusal as refusal:
        return int(refusal.code)
    return None


def occupied(env: Env, locker_id: int) -> dict[str, Any]:
    """Drive ``locker_id`` to occupied for ``demo``; the drop-off token used."""
    dropoff = env.demo.token("dropoff", locker_id)
    assert dropoff.is_success, dropoff.text
    assert open_code(env.control, locker_id, dropoff.json()) is None
    env.control.close_door(TOWER, locker_id)
    token: dict[str, Any] = dropoff.json()
    return token


@catches("double_booking")
def reserved_locker_cannot_be_reserved_again(env: Env) -> None:
    assert env.demo.reserve(1401).is_success
    assert env.second.reserve(1401).status_code == 409
    assert env.control.locker(1401)["holder"] == "demo-provider"


@catches("stale_status_after_close")
def status_follows_the_door_close(env: Env) -> None:
    occupied(env, 1402)
    assert env.demo.status(1402) == "occupied"
    pickup = env.demo.token("pickup", 1402).json()
    assert open_code(env.control, 1402, pickup) is None
    env.control.close_door(TOWER, 1402)
    assert env.demo.status(1402) == "available"


@catches("wrong_field_type")
def locker_fields_have_their_documented_types(env: Env) -> None:
    for locker in env.demo.listing().values():
        assert type(locker["id"]) is int
        assert isinstance(locker["name"], str) and isinstance(locker["isLowLocker"], bool)
        assert type(locker["status"]["id"]) is int and type(locker["type"]["id"]) is int


@catches("token_opens_other_locker")
def token_opens_only_its_own_locker(env: Env) -> None:
    token = env.demo.token("dropoff", 1403).json()
    assert open_code(env.control, 1404, token) == 201
    assert env.control.door_state(TOWER, 1404) is False


@catches("ignore_token_expiry")
def expired_token_is_refused(env: Env) -> None:
    occupied(env, 1405)
    pickup = env.demo.token("pickup", 1405, duration=60).json()
    env.control.advance_clock(61)
    assert open_code(env.control, 1405, pickup) == 107
    assert env.demo.status(1405) == "occupied"


@catches("accept_any_token")
def forged_token_is_refused(env: Env) -> None:
    token = env.demo.token("dropoff", 1406).json()
    forged = {**token, "payload_auth": "00" * 32}
    assert open_code(env.control, 1406, forged) == 207
    assert env.control.door_state(TOWER, 1406) is False


@catches("cross_party_access")
def another_party_cannot_use_a_held_locker(env: Env) -> None:
    assert env.demo.reserve(1407).is_success
    assert env.second.token("dropoff", 1407).status_code == 403
    assert env.second.release(1407).status_code == 403
    assert env.demo.status(1407) == "reserved"


@catches("held_shown_available")
def listing_shows_held_lockers_as_held(env: Env) -> None:
    assert env.demo.reserve(1408).is_success
    assert env.demo.listing()[1408]["status"]["name"] == "reserved"


@catches("reservation_never_expires")
def reservation_ends_after_its_duration(env: Env) -> None:
    assert env.demo.reserve(1409, duration=60).is_success
    env.control.advance_clock(61)
    assert env.demo.status(1409) == "available"
    assert env.second.reserve(1409).is_success


@catches("wrong_status_id")
def status_ids_are_the_models(env: Env) -> None:
    assert env.demo.listing()[1401]["status"] == {"name": "available", "id": 1}


@catches("token_issued_expired")
def token_expires_after_it_is_issued(env: Env) -> None:
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    issued = env.demo.token("dropoff", 1411, duration=600)
    expires = datetime.fromisoformat(issued.json()["expires"])
    if expires.tzinfo is None:  # the expires_naive dialect: UTC implied
        expires = expires.replace(tzinfo=UTC)
    assert expires > parsedate_to_datetime(issued.headers["date"])


@catches("replay_after_pickup")
def dropoff_token_is_dead_after_the_pickup(env: Env) -> None:
    dropoff = occupied(env, 1410)
    pickup = env.demo.token("pickup", 1410).json()
    assert open_code(env.control, 1410, pickup) is None
    env.control.close_door(TOWER, 1410)
    assert env.demo.status(1410) == "available"
    assert open_code(env.control, 1410, dropoff) == 201
    assert env.control.door_state(TOWER, 1410) is False


@catches("open_available_opens_held")
def open_available_opens_only_an_available_locker(env: Env) -> None:
    # The tower's own choice (OPEN_AVAILABLE_LOCKER), asked of the firmware as the radio would.
    assert env.demo.reserve(1401).is_success
    firmware = env.sandbox.world.firmwares[TOWER]
    opened = firmware.open_available(
        "demo-provider", locker_type=1, match_available=True, match_token=None, locker_token=b"", leave_available=True
    )
    assert opened == 1402
    assert env.control.door_state(TOWER, 1401) is False
    assert env.demo.status(1401) == "reserved"


@pytest.fixture
def env(demo: Party, second: Party, control: SimControl, sandbox: VirtualSandbox) -> Env:
    return Env(demo, second, control, sandbox)


def test_every_bug_switch_has_a_check() -> None:
    """The table of checks names every bug switch of the sandbox, and nothing else."""
    assert sorted(CHECKS) == sorted(BUG_NAMES)


@pytest.mark.parametrize("bug", BUG_NAMES)
def test_check_passes_on_the_honest_sandbox(bug: str, env: Env) -> None:
    """With every switch off, the check that catches this bug passes."""
    CHECKS[bug](env)


@pytest.mark.parametrize("bug", BUG_NAMES)
def test_check_fails_when_its_bug_is_on(bug: str, env: Env) -> None:
    """With exactly this switch on, its check fails with an assertion: the switch is visible."""
    env.control.set_bugs({bug: True})
    with pytest.raises(AssertionError):
        CHECKS[bug](env)


#: Each dialect alone, and all of them at once.
DIALECT_SETS = [(name,) for name in DIALECT_NAMES] + [DIALECT_NAMES]


def _dialect_id(names: tuple[str, ...]) -> str:
    return "every-dialect" if len(names) > 1 else names[0]


@pytest.mark.parametrize("dialects", DIALECT_SETS, ids=_dialect_id)
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_check_passes_with_dialects_on(bug: str, dialects: tuple[str, ...], env: Env) -> None:
    """A dialect is no defect: with it on (each alone, then all), the check still passes."""
    env.control.set_dialects(dict.fromkeys(dialects, True))
    CHECKS[bug](env)


@pytest.mark.parametrize("dialects", DIALECT_SETS, ids=_dialect_id)
@pytest.mark.parametrize("bug", BUG_NAMES)
def test_check_fails_when_its_bug_is_on_whatever_the_dialects(bug: str, dialects: tuple[str, ...], env: Env) -> None:
    """With its switch on and dialects on (each alone, then all), the check still fails: no dialect hides a bug."""
    env.control.set_dialects(dict.fromkeys(dialects, True))
    env.control.set_bugs({bug: True})
    with pytest.raises(AssertionError):
        CHECKS[bug](env)
