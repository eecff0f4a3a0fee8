"""The contract suite on a flaky target: a 5xx is a lost answer (the target's server error, could
not test), never a broken contract; a planted defect is still a product failure through it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import ENVIRONMENT
from harness.report import FailureKind, read_junit
from harness.sim import DEMO_IDENTITIES, VirtualSandbox

ROOT = Path(__file__).resolve().parents[3]
TOWER = "0100000000000014"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


def _suite(sandbox: VirtualSandbox, tmp_path: Path) -> list[FailureKind]:
    main = DEMO_IDENTITIES[0]
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env |= {"HARBOR_CLIENT_ID": main.client_id, "HARBOR_CLIENT_SECRET": main.client_secret}
    env |= {"HARBOR_STATE_DIR": str(tmp_path / "state"), "HARBOR_EXCLUSIVE": "1"}
    junit = tmp_path / "contract.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "contracts/test_contract.py",
         "--harbor-target", sandbox.url, "--harbor-tower", TOWER, "--harbor-budget", "2", f"--junitxml={junit}"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert junit.is_file(), done.stdout[-2000:]
    return [case.failure.kind for case in read_junit(junit) if case.failure is not None]


def test_5xx_answers_are_the_targets_trouble_not_broken_contracts(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    sandbox.control.reset()
    sandbox.control.set_faults("http_5xx", fraction=0.05)
    kinds = _suite(sandbox, tmp_path)
    sandbox.control.clear_faults()
    assert FailureKind.PRODUCT not in kinds
    assert FailureKind.INFRASTRUCTURE in kinds  # the faults did fire: the test could see a 5xx


def test_a_planted_defect_is_still_a_product_failure_through_5xx(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    sandbox.control.reset()
    sandbox.control.set_bugs(wrong_field_type=True)
    sandbox.control.set_faults("http_5xx", fraction=0.05)
    kinds = _suite(sandbox, tmp_path)
    sandbox.control.clear_faults()
    assert FailureKind.PRODUCT in kinds
