"""Fixtures of the contract and property suites, on top of the harness's pytest plugin.

The suites run against whatever target the plugin resolves (``--harbor-target``, ``HARBOR_TARGET``):
the embedded virtual sandbox by default. ``contract_target`` is what Schemathesis needs: an
in-process transport on local (or the URL), a bearer token, the target's real ids, a witness of
the lockers before each call, a clean slate between examples, and every call that may hold a
locker in the cleanup ledger (under the parent run's id, ``LOCKER_HARNESS_RUN_ID``, when there is one).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import allure
import httpx
import pytest
import requests
from contract_checks import use_witness
from contract_holds import RunHolds
from contract_report import report_calls
from contract_session import remember, serving
from contract_target import ApiWitness, BearerToken, ContractTarget, ControlPlaneWitness, load_pins

from harness.api import guard_hooks, tls_context
from harness.config import Settings, TargetKind
from harness.errors import UsageError
from harness.hosts import trusts_env_proxies
from harness.ledger import ledger_holds
from harness.model import TowerId
from harness.pytest_plugin import ControlPlane, HarborOptions
from harness.testing import LOCAL_OTHER_TOWER, ClockControl, InProcessControl


def pytest_configure(config: pytest.Config) -> None:
    # test_contract.py builds its Schemathesis schema when it is imported: give it the budget now.
    # --hypothesis-seed, else the run's seed (locker-harness run passes it to every stage's child).
    given = config.getoption("hypothesis_seed", default=None)
    seed = given or os.environ.get("LOCKER_HARNESS_SEED") or None
    remember(HarborOptions.of(config), int(seed) if seed is not None else None, hypothesis_seeded=given is not None)
    report_calls(config)  # every call to $LOCKER_HARNESS_STAGE_DIR/schemathesis/, when a run asked for it


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Schemathesis names each operation's test "test_x[GET /path]", but on pytest 9 the node id (what
    # JUnit, -k and the reports show) keeps only "test_x": twenty-two tests of one name. Give the id
    # its operation back. ``_id`` is pytest's own field; nothing public sets an item's id.
    for item in items:
        label = getattr(item, "operation_label", None)
        node_id = getattr(item, "_id", None)
        if isinstance(label, str) and node_id is not None and getattr(node_id, "params", "") is None:
            item._id = node_id.with_params(label)


@pytest.fixture(autouse=True)
@allure.title("name the operation in the report")
def _operation_in_allure(request: pytest.FixtureRequest) -> None:
    """Each operation is its own test in Allure. Schemathesis builds its tests without pytest's
    parametrization, so allure-pytest gives all of them one fullName, one testCaseId and one
    historyId, and Allure showed one test with 21 retries: the operation, as a parameter, enters the
    history id (allure-pytest's and Allure 3's), stable from run to run."""
    label = getattr(request.node, "operation_label", None)
    if isinstance(label, str):
        allure.dynamic.parameter("operation", label)


@pytest.fixture(scope="session", autouse=True)
def _writes_allowed(harbor_target: Settings) -> None:
    """The suites reserve lockers and create tokens (and fuzz the logins): on production only with the
    opt-in, as ``locker-harness contract`` and ``props`` ask it, however pytest was called."""
    try:
        harbor_target.check_writes_allowed("run the contract and property suites (they reserve lockers)")
    except UsageError as exc:
        pytest.exit(f"locker-harness: {exc}", returncode=int(exc.exit_code))


@pytest.fixture(scope="session")
def contract_target(
    harbor_target: Settings, harbor_control_plane: ControlPlane, tower: TowerId, request: pytest.FixtureRequest
) -> Iterator[ContractTarget]:
    """The target as the contract suite calls it (see contract_target.py)."""
    url = harbor_target.target.api_url
    assert url is not None
    local = harbor_target.target.kind is TargetKind.LOCAL
    bearer = BearerToken(harbor_target, timeout=harbor_target.timeout)
    hooks = guard_hooks(harbor_target.wire_policy())
    direct = not trusts_env_proxies(url, harbor_target.target.token_url)
    with httpx.Client(
        base_url=url, timeout=harbor_target.timeout, event_hooks=hooks, trust_env=not direct, verify=tls_context()
    ) as http:
        # The second seeded tower is known on a virtual sandbox; elsewhere only the configured one is.
        control: ClockControl | None = harbor_control_plane.control
        if control is not None and local:
            control = InProcessControl(request.getfixturevalue("virtual_sandbox"))
        # A shared sandbox's clock is never moved: a clean slate there gives back over REST instead.
        clock = control if harbor_control_plane.exclusive else None
        others = (LOCAL_OTHER_TOWER,) if control is not None and tower != LOCAL_OTHER_TOWER else ()
        pins = load_pins(http, bearer, tower, others, shared=not harbor_control_plane.exclusive)
        actor = harbor_target.credentials().client_id
        witness: ControlPlaneWitness | ApiWitness = (
            ControlPlaneWitness(control, actor)
            if control is not None
            else ApiWitness(http, bearer, actor, pins, harbor_target.assume)
        )
        app = request.getfixturevalue("virtual_sandbox").app if local else None
        # lazy: each answer is written with the next write (the next call's row or a clean slate),
        # one commit a call instead of two; the suite's pace is its examples' pace
        holds = RunHolds(ledger_holds(harbor_target, client_id=actor, lazy=True))
        # A target on this machine is called directly: a proxy from the environment would carry the
        # client secret and tokens, in clear, off it.
        session = _direct_session() if direct and app is None else None
        target = ContractTarget(
            harbor_target, actor, bearer, pins, witness, http, control=clock, app=app, holds=holds, session=session
        )
        with use_witness(witness), serving(target), contextlib.ExitStack() as closing:
            if session is not None:
                closing.callback(session.close)
            yield target
        target.clean_slate()  # leave nothing held behind
        holds.flush()  # the answers no later write carried


def _direct_session() -> requests.Session:
    """A requests session that takes no proxy from the environment."""
    session = requests.Session()
    session.trust_env = False
    return session
