"""Fixtures of the tests of the contract suite: the suite's modules on the path, and a sandbox of their own.

These tests plant each bug switch in a sandbox and run the suite's checks, invariants and oracles
against it, so they never share a sandbox with the suite's own run (the plugin's).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.api import HarborClient
from harness.testing import LocalTarget, local_target

#: The contract suite's folder: its helper modules are imported by name, as its own tests do.
CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
if str(CONTRACTS) not in sys.path:
    sys.path.insert(0, str(CONTRACTS))

from contract_holds import RunHolds  # noqa: E402  # needs CONTRACTS on the path
from contract_machine import FlowWorld, Party  # noqa: E402


@pytest.fixture(scope="session")
def planted() -> Iterator[LocalTarget]:
    """A sandbox in which these tests plant bugs (a fresh world before each test)."""
    with local_target() as target:
        yield target


@pytest.fixture(scope="session")
def planted_world(planted: LocalTarget) -> Iterator[FlowWorld]:
    """The two parties of the planted sandbox and the three lockers the scenarios use."""
    settings = planted.settings
    second = settings.second_credentials()
    mine, others = RunHolds(), RunHolds()
    with HarborClient(settings, holds=mine) as main, HarborClient(settings, credentials=second, holds=others) as other:
        yield FlowWorld(
            main=Party("main", settings.credentials().client_id, main, mine),
            second=Party("second", second.client_id, other, others),
            tower=settings.tower(),
            lockers=(1401, 1402, 1403),
            control=planted.control,
        )
