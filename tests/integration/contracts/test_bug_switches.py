"""Every check of the contract suite turns red for a bug switch, and every bug switch turns one red.

For each check (a Schemathesis locker check, a state-machine invariant, an oracle) a short
scenario drives the real check against a sandbox: it passes with every switch off, and with its
switch on it fails naming the check. A table that must cover every check and every switch keeps
"a check nothing can turn red" from creeping in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from contract_checks import CHECK_NAMES, use_witness
from contract_machine import INVARIANTS, FlowWorld, LockerFlow
from contract_oracles import RACE_ORACLES, TOKEN_ORACLES
from contract_target import ControlPlaneWitness
from schemathesis.checks import CHECKS
from schemathesis.core.failures import FailureGroup

from harness.sim import BUG_NAMES, DIALECT_NAMES
from harness.testing import InProcessControl, LocalTarget, fresh_world

DOCUMENT = Path(__file__).resolve().parents[3] / "contracts" / "harbor-api.yaml"
SCHEMA = schemathesis.openapi.from_path(DOCUMENT, config=schemathesis.Config.from_dict({}))
TOWER = "0100000000000014"
#: Parallel calls in the race oracles here: enough to race, few enough to be quick.
RACE = 8


@dataclass
class Env:
    """A planted sandbox: its world (two parties, three lockers) and what Schemathesis calls need."""

    target: LocalTarget
    world: FlowWorld

    def headers(self) -> dict[str, str]:
        settings = self.target.settings
        assert settings.target.token_url is not None and settings.client_secret is not None
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            "client_secret": settings.client_secret.reveal(),
            "scope": "service_provider tower_access",
        }
        token = httpx.post(settings.target.token_url, data=form, timeout=10).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def validate(self, check: str, method: str, path: str, parameters: dict[str, Any], body: Any = None) -> None:
        """Send one case the way the suite does (witness first, in process) and run one named check."""
        operation = SCHEMA[path][method]
        case = operation.Case(path_parameters=parameters, **({"body": body} if body is not None else {}))
        witness = ControlPlaneWitness(InProcessControl(self.target.sandbox), self.world.main.client_id)
        with use_witness(witness):
            witness.observe(case)
            response = case.call(app=self.target.sandbox.app, headers=self.headers())
            chosen = [registered for registered in CHECKS.get_all() if registered.__name__ == check]
            case.validate_response(response, checks=chosen)

    def machine(self) -> LockerFlow:
        """The state machine on this world, doors included, started as Hypothesis starts it."""
        return LockerFlow.bound(self.world, doors=True)()


@dataclass(frozen=True)
class Catch:
    bug: str
    scenario: Callable[[Env], None]


#: check name -> the switch that must turn it red, and a scenario that runs the check.
CATCHES: dict[str, Catch] = {}


def catches(check: str, bug: str) -> Callable[[Callable[[Env], None]], Callable[[Env], None]]:
    def register(scenario: Callable[[Env], None]) -> Callable[[Env], None]:
        CATCHES[check] = Catch(bug, scenario)
        return scenario

    return register


# -- Schemathesis locker checks ----------------------------------------------------------------------------

_LOCKERS = "/api/v1/towers/{tower_id}/lockers"
_LOCKER = "/api/v1/towers/{tower_id}/lockers/{locker_id}"


@catches("locker_has_seed_fields", "wrong_field_type")
def _listing_shape(env: Env) -> None:
    env.validate("locker_has_seed_fields", "GET", _LOCKERS, {"tower_id": TOWER})


@catches("locker_status_is_a_model_status", "wrong_status_id")
def _listing_statuses(env: Env) -> None:
    env.validate("locker_status_is_a_model_status", "GET", _LOCKERS, {"tower_id": TOWER})


@catches("locker_token_is_hex_and_unexpired", "token_issued_expired")
def _fresh_token(env: Env) -> None:
    env.world.main.api.reserve(TOWER, 1401, 300)
    body = {"client_info": "", "duration": 600}
    path = f"{_LOCKER}/dropoff-locker-tokens"
    env.validate("locker_token_is_hex_and_unexpired", "POST", path, {"tower_id": TOWER, "locker_id": 1401}, body)


@catches("reserve_on_held_locker_is_refused", "double_booking")
def _second_reserve(env: Env) -> None:
    env.world.second.api.reserve(TOWER, 1401, 300)
    parameters = {"tower_id": TOWER, "locker_id": 1401}
    env.validate("reserve_on_held_locker_is_refused", "POST", f"{_LOCKER}/reservations", parameters, {"duration": 300})


@catches("locker_matches_model_after_step", "reservation_never_expires")
def _expired_reservation(env: Env) -> None:
    env.world.main.api.reserve(TOWER, 1401, 60)
    assert env.world.control is not None
    env.world.control.advance_clock(61)
    env.validate("locker_matches_model_after_step", "GET", _LOCKER, {"tower_id": TOWER, "locker_id": 1401})


# -- state-machine invariants --------------------------------------------------------------------------------


@catches("statuses_shown_are_the_models", "stale_status_after_close")
def _drop_off_pick_up_and_close(env: Env) -> None:
    machine = env.machine()
    machine.reserve("main", 0, 300)
    machine.create_dropoff_token("main", 0, 600)
    machine.open_with_token(0, False)
    machine.close_door(0)
    machine.create_pickup_token("main", 0, 600)
    machine.open_with_token(1, False)
    machine.close_door(0)
    machine.verify()


@catches("available_list_has_no_held_locker", "held_shown_available")
def _list_a_held_locker(env: Env) -> None:
    machine = env.machine()
    machine.reserve("main", 0, 300)
    machine.list_lockers("second")
    machine.verify()


@catches("no_locker_is_held_by_two_parties", "double_booking")
def _both_reserve(env: Env) -> None:
    machine = env.machine()
    machine.reserve("main", 0, 300)
    machine.reserve("second", 0, 300)
    machine.verify()


@catches("no_party_acts_on_what_another_holds", "cross_party_access")
def _other_releases(env: Env) -> None:
    machine = env.machine()
    machine.reserve("main", 0, 300)
    machine.release("second", 0)
    machine.verify()


@catches("doors_open_only_for_valid_tokens", "token_opens_other_locker")
def _token_at_the_next_door(env: Env) -> None:
    machine = env.machine()
    machine.reserve("main", 0, 300)
    machine.create_dropoff_token("main", 0, 600)
    machine.open_with_token(0, True)
    machine.verify()


# -- oracles ------------------------------------------------------------------------------------------------


def _oracle(name: str, bug: str) -> None:
    if name in RACE_ORACLES:
        CATCHES[name] = Catch(bug, lambda env: RACE_ORACLES[name](env.world, RACE))
    else:
        CATCHES[name] = Catch(bug, lambda env: TOKEN_ORACLES[name](env.world))


_oracle("parallel_reserves_of_one_locker_have_one_winner", "double_booking")
_oracle("parallel_dropoff_tokens_from_non_owner_are_refused", "cross_party_access")
_oracle("token_is_refused_after_it_expires", "ignore_token_expiry")
_oracle("token_is_refused_at_another_locker", "token_opens_other_locker")
_oracle("token_is_refused_on_another_tower", "accept_any_token")
_oracle("dropoff_token_is_refused_after_pickup", "replay_after_pickup")


# -- the tests ----------------------------------------------------------------------------------------------


@pytest.fixture
def env(planted: LocalTarget, planted_world: FlowWorld) -> Iterator[Env]:
    fresh_world(planted.control)
    yield Env(planted, planted_world)
    planted.control.reset()


def _failure_names(error: BaseException) -> str:
    """Everything a failure says, the titles of a Schemathesis failure group included."""
    parts = [str(error)]
    for inner in getattr(error, "exceptions", ()):
        parts += [str(getattr(inner, "title", "")), str(inner)]
    return "\n".join(parts)


def test_every_check_of_the_suite_has_a_switch() -> None:
    """Every locker check, invariant and oracle of the suite is in the table, and nothing else is."""
    suite = {*CHECK_NAMES, *INVARIANTS, *RACE_ORACLES, *TOKEN_ORACLES}
    assert sorted(CATCHES) == sorted(suite)


#: Switches of behaviour the REST contract cannot reach (a BLE-only command), and the rig's meta-test
#: that turns red for each instead.
OVER_BLE_ONLY = {"open_available_opens_held": "hw_tests/test_open_available_meta.py"}


def test_every_switch_turns_some_check_red() -> None:
    """Every bug switch of the sandbox is some check's switch: no defect the suite is blind to; a switch
    of a BLE-only command is the hardware rig's, whose meta-test names it."""
    assert sorted({catch.bug for catch in CATCHES.values()}) == sorted(set(BUG_NAMES) - set(OVER_BLE_ONLY))
    root = Path(__file__).resolve().parents[3]
    for bug, meta_test in OVER_BLE_ONLY.items():
        assert bug in BUG_NAMES and bug in (root / meta_test).read_text(encoding="utf-8"), bug


@pytest.mark.parametrize("check", sorted(CATCHES))
def test_check_passes_on_the_honest_sandbox(check: str, env: Env) -> None:
    """With every switch off, the check's scenario passes."""
    CATCHES[check].scenario(env)


@pytest.mark.parametrize("check", sorted(CATCHES))
def test_check_fails_with_its_name_when_its_switch_is_on(check: str, env: Env) -> None:
    """With its switch on, the check's scenario fails, and the failure names the check."""
    env.target.control.set_bugs({CATCHES[check].bug: True})
    with pytest.raises((AssertionError, FailureGroup)) as failed:
        CATCHES[check].scenario(env)
    assert check in _failure_names(failed.value)


@pytest.mark.parametrize("check", sorted(CATCHES))
def test_check_passes_and_fails_alike_with_every_dialect_on(check: str, env: Env) -> None:
    """With every Harbor dialect on (each flips one guess of ours), the check's scenario still passes, and
    with its switch on still fails naming the check: a dialect is no defect, and hides none."""
    env.target.control.set_dialects(dict.fromkeys(DIALECT_NAMES, True))
    CATCHES[check].scenario(env)
    fresh_world(env.target.control)  # the dialects stay on (fresh_world keeps them); the lockers are free again
    env.target.control.set_bugs({CATCHES[check].bug: True})
    with pytest.raises((AssertionError, FailureGroup)) as failed:
        CATCHES[check].scenario(env)
    assert check in _failure_names(failed.value)
