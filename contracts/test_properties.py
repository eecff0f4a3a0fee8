"""The locker flow's properties: a Hypothesis state machine over two parties, and race and token oracles.

The state machine (``contract_machine.LockerFlow``) runs twice: over the REST API alone (any
target), and with the tower's doors and the virtual clock (a virtual sandbox's control plane;
elsewhere it is skipped, saying why). The oracles (``contract_oracles``) then ask what a generated
sequence rarely asks sharply: many parallel reserves of one locker, parallel tokens from a
non-owner, and a token presented after it expired, at another door, at another tower, and after
the pickup. Every reservation and token either party asks for is a row of the cleanup ledger,
closed once the suite has given it back (or seeded the sandbox again).
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
from contract_holds import RunHolds
from contract_machine import FlowWorld, LockerFlow, Party
from contract_oracles import CLOCK_ORACLES, RACE_ORACLES, TOKEN_ORACLES

from harness.api import HarborClient
from harness.config import Settings
from harness.errors import InfrastructureError, UsageError
from harness.ledger import ledger_holds
from harness.model import LockerStatus, TowerId
from harness.pytest_plugin import ControlPlane, HarborOptions
from harness.testing import LOCAL_OTHER_TOWER, fresh_world

pytestmark = pytest.mark.property

#: Examples and steps per machine at the default budget (``--harbor-budget``).
FLOW_EXAMPLES = 25
FLOW_STEPS = 30
#: Lockers the machine acts on: enough for two parties to meet, few enough that they do.
FLOW_LOCKERS = 3


@pytest.fixture(scope="session")
def flow_world(harbor_target: Settings, harbor_control_plane: ControlPlane, tower: TowerId) -> Iterator[FlowWorld]:
    """The two parties (service providers), the tower and the lockers the machine and oracles act on."""
    try:
        second = harbor_target.second_credentials()
    except UsageError as exc:
        # Could not test, never a skip: the suite applies to this target, and a skip would let a
        # run (or a CI job) go green without the properties. `locker-harness props` and the
        # properties stage of `locker-harness run` both say so and exit 4.
        raise InfrastructureError(
            f"the flow's properties need a second identity: {exc} (or leave the stage out: --skip properties)"
        ) from None
    control = harbor_control_plane.control
    exclusive = harbor_control_plane.exclusive
    if control is not None and exclusive:
        fresh_world(control)
    # Each party's reservations and tokens go to the cleanup ledger, under one run (the parent's, if any).
    # Each party's record is also what a give-back on a shared sandbox may touch (contract_holds).
    main_ledger = ledger_holds(harbor_target)
    main_holds = RunHolds(main_ledger)
    second_holds = RunHolds(ledger_holds(harbor_target, run_id=main_ledger.run_id, client_id=second.client_id))
    with (
        HarborClient(harbor_target, holds=main_holds) as main_api,
        HarborClient(harbor_target, credentials=second, holds=second_holds) as second_api,
    ):
        free = sorted(locker.id for locker in main_api.list_lockers(tower) if locker.status is LockerStatus.AVAILABLE)
        if len(free) < FLOW_LOCKERS:
            raise InfrastructureError(
                f"tower {tower} has {len(free)} available lockers; the properties need {FLOW_LOCKERS}"
            )
        world = FlowWorld(
            main=Party("main", harbor_target.credentials().client_id, main_api, main_holds),
            second=Party("second", second.client_id, second_api, second_holds),
            tower=tower,
            lockers=tuple(free[:FLOW_LOCKERS]),
            control=control,
            exclusive=exclusive,
        )
        yield world
        # Leave the target as found: the next stage of a run (load, say) shares it, and an oracle's
        # last token may still hold a locker. A virtual sandbox is seeded again (items inside
        # included); elsewhere each party gives back what REST can give back.
        if control is not None and exclusive:
            world.reseed()
        else:
            world.give_back()


def flow_settings(options: HarborOptions, seed: object) -> hypothesis.settings:
    """The machine's settings at this run's budget; repeatable unless ``--hypothesis-seed`` picks a sequence."""
    return hypothesis.settings(
        max_examples=options.scaled(FLOW_EXAMPLES, minimum=3),
        stateful_step_count=FLOW_STEPS,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )


def test_locker_flow_over_rest_keeps_the_model(flow_world: FlowWorld, pytestconfig: pytest.Config) -> None:
    """Reserve, cancel, release and tokens by two parties, in any order, answer as the model predicts."""
    settings = flow_settings(HarborOptions.of(pytestconfig), pytestconfig.getoption("hypothesis_seed", None))
    hypothesis.stateful.run_state_machine_as_test(LockerFlow.bound(flow_world, doors=False), settings=settings)


def test_locker_flow_with_doors_and_clock_keeps_the_model(
    flow_world: FlowWorld, harbor_control_plane: ControlPlane, pytestconfig: pytest.Config
) -> None:
    """The whole flow (tokens opening doors, doors closing, time passing) answers as the model predicts."""
    control = harbor_control_plane.control
    if control is None:
        pytest.skip(f"door and clock rules need the tower's firmware and clock: {harbor_control_plane.missing}")
    if not control.state().get("uplink", True):
        pytest.skip("door rules need a sandbox whose towers report door events at once (uplink on)")
    settings = flow_settings(HarborOptions.of(pytestconfig), pytestconfig.getoption("hypothesis_seed", None))
    hypothesis.stateful.run_state_machine_as_test(LockerFlow.bound(flow_world, doors=True), settings=settings)


# -- oracles ---------------------------------------------------------------------------------------------


@pytest.fixture
def clean_world(harbor_control_plane: ControlPlane, flow_world: FlowWorld) -> Iterator[FlowWorld]:
    """A seeded world for each oracle on a sandbox (switches kept); elsewhere, what it held given back."""
    if harbor_control_plane.clock is not None:
        flow_world.reseed()
    yield flow_world
    if harbor_control_plane.clock is None:
        flow_world.give_back()


@pytest.fixture
def world_with_doors(clean_world: FlowWorld, harbor_control_plane: ControlPlane) -> FlowWorld:
    """The world, when its tower's doors can be reached; skips, saying why, otherwise."""
    if harbor_control_plane.control is None:
        pytest.skip(
            f"presenting tokens at doors and moving the clock need a virtual sandbox: {harbor_control_plane.missing} "
            "(at a bench tower, hw_tests/test_wrong_tokens.py presents wrong tokens over BLE)"
        )
    return clean_world


@pytest.mark.parametrize("oracle", sorted(RACE_ORACLES))
def test_race(oracle: str, clean_world: FlowWorld, harbor_options: HarborOptions) -> None:
    """Calls sent at once still keep the locker's promises (one winner; no token for a non-owner)."""
    RACE_ORACLES[oracle](clean_world, harbor_options.race)


@pytest.mark.parametrize("oracle", sorted(TOKEN_ORACLES))
def test_token_lifecycle(oracle: str, world_with_doors: FlowWorld) -> None:
    """A token opens only its own locker, on its own tower, while it is valid, for its own tenancy."""
    if oracle == "token_is_refused_on_another_tower" and world_with_doors.tower == LOCAL_OTHER_TOWER:
        pytest.skip(f"the tower under test is {LOCAL_OTHER_TOWER}: no second tower to present the token at")
    if oracle in CLOCK_ORACLES and not world_with_doors.exclusive:
        pytest.skip(f"{oracle} moves the sandbox's clock: the target's sandbox may be shared (pass --exclusive)")
    TOKEN_ORACLES[oracle](world_with_doors)
