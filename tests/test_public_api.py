"""The public faces are small and pinned: changing them is a deliberate act."""

from __future__ import annotations

import subprocess
import sys

import harness
import harness.api


def test_harness_public_names() -> None:
    """``harness`` exports the targets, the clients, the statuses and the errors, and nothing else."""
    assert harness.__all__ == [
        "AsyncHarborClient",
        "ExitCode",
        "HarborAPIError",
        "HarborClient",
        "HarnessError",
        "InfrastructureError",
        "LockerStatus",
        "ProductDefect",
        "Settings",
        "Target",
        "TargetKind",
        "TokenKind",
        "UsageError",
        "__version__",
        "load_settings",
    ]
    for name in harness.__all__:
        assert getattr(harness, name) is not None


def test_api_public_names() -> None:
    """``harness.api`` exports the clients, their results, the holds hook and the retry policy."""
    assert harness.api.__all__ == [
        "NO_HOLDS",
        "OPERATIONS",
        "AnswerLost",
        "AsyncHarborClient",
        "Availability",
        "Call",
        "CredentialsRefused",
        "HarborClient",
        "Hold",
        "HoldAction",
        "HoldKind",
        "HoldLog",
        "HoldRecord",
        "Holds",
        "Location",
        "Locker",
        "LockerOpenRequest",
        "LockerToken",
        "LockerType",
        "Reservation",
        "RetryPolicy",
        "Scope",
        "SdkToken",
        "SessionClaim",
        "SessionToken",
        "TokenInfo",
        "TowerCommandBatch",
        "TowerEventBatch",
        "TypeAvailability",
        "async_guard_hooks",
        "guard_hooks",
    ]
    for name in harness.api.__all__:
        assert getattr(harness.api, name) is not None


def test_import_harness_stays_light() -> None:
    """``import harness`` loads neither httpx, fastapi, bleak nor bumble (the clients load on first use)."""
    code = "import sys, harness; print(sorted(m for m in ('httpx', 'fastapi', 'bleak', 'bumble') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_help_does_not_import_the_sandbox() -> None:
    """``locker-harness --help`` imports no sandbox (fastapi) and no BLE stack."""
    code = (
        "import sys; from typer.testing import CliRunner; from harness.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('fastapi', 'bleak', 'bumble', 'harness.sim') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
