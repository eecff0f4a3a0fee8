"""The contract and properties suites write every hold they ask for to the cleanup ledger, and close it after."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.config import ENVIRONMENT
from harness.ledger import RUN_ID_ENV, EntryState, Ledger

ROOT = Path(__file__).resolve().parents[3]
RUN_ID = "suites-ledger"


def test_contract_and_properties_runs_leave_closed_ledger_rows(tmp_path: Path) -> None:
    """After both suites (the embedded sandbox, a small budget) the ledger holds their reservations, tokens and
    open requests under the run's id, of both parties, and no row is left open for cleanup."""
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    env |= {"HARBOR_STATE_DIR": str(tmp_path), RUN_ID_ENV: RUN_ID}
    suites = ["contracts/test_properties.py", "contracts/test_contract.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *suites],
        cwd=ROOT,
        env={**env, "HARBOR_BUDGET": "5"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    with Ledger.open(tmp_path) as ledger:
        rows = ledger.entries()
        assert {row.run_id for row in rows} == {RUN_ID}
        closed = {row.kind for row in rows if row.state is EntryState.RELEASED}
        assert {"reservation", "dropoff_token", "pickup_token", "dropoff_request"} <= closed
        assert len({row.client_id for row in rows}) == 2  # the properties' second party writes its own rows
        assert ledger.entries(open_only=True) == []
