"""The commands on a sandbox URL that serves its radio: ``hw`` opens its doors over BLE from this
process, and ``run`` has a passing hw stage (the rig, in a child of this process, over that radio)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.errors import ExitCode
from harness.sim import VirtualSandbox

from .conftest import TOWER


def _env(tmp_path: Path, url: str) -> dict[str, str | None]:
    return {
        **dict.fromkeys(ENVIRONMENT),
        "HARBOR_TARGET": url,
        "HARBOR_CLIENT_ID": "demo-provider",
        "HARBOR_CLIENT_SECRET": "demo-secret",
        "HARBOR_REPORTS_DIR": str(tmp_path / "reports"),
        "HARBOR_STATE_DIR": str(tmp_path / "state"),
    }


def test_hw_on_a_sandbox_url_opens_its_doors_over_the_radio_it_serves(
    served: VirtualSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hw -n 10 --target URL` (no tower named): ten deliveries on the URL's first tower over the radio
    it announces, every BLE phase in the table, exit 0."""
    monkeypatch.chdir(tmp_path)
    served.control.reset()
    result = CliRunner().invoke(app, ["hw", "-n", "10", "--target", served.url], env=_env(tmp_path, served.url))
    assert result.exit_code == ExitCode.OK, result.output
    assert f"on tower {TOWER} of target {served.url} over the virtual radio it serves" in result.stdout
    assert "20 opens" in result.stdout
    for phase in ("scan", "connect", "discovery", "session", "open", "door", "sync"):
        assert f"│ {phase} " in result.stdout, phase


def test_hw_says_what_a_failed_delivery_gave_back(
    served: VirtualSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A link lost in the first delivery (a supervision timeout, no retries): exit 4 naming the phase,
    and, as ``smoke`` does, one ``cleanup:`` line saying what was given back; nothing is left held."""
    monkeypatch.chdir(tmp_path)
    served.control.reset()
    served.control.set_faults("ble_supervision_timeout", count=1)
    try:
        result = CliRunner().invoke(app, ["hw", "-n", "2", "--target", served.url], env=_env(tmp_path, served.url))
    finally:
        served.control.set_faults("none")
    assert result.exit_code == ExitCode.INFRASTRUCTURE, result.output
    assert "phase=" in result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("cleanup: ")]
    assert "given back" in line, line
    held = [x for x in served.control.state()["lockers"] if x["status"] not in ("available", "out_of_service")]
    assert held == []


def test_hw_on_a_sandbox_url_that_serves_no_radio_says_so_even_without_a_tower(tmp_path: Path) -> None:
    """A sandbox serving HTTP alone (``sim --no-radio``), no tower named: the one line names the missing
    radio (the cause), not the missing tower id; exit 2."""
    with VirtualSandbox() as http_only:  # in a thread: its radio is served to no other process
        result = CliRunner().invoke(app, ["hw", "--target", http_only.url], env=_env(tmp_path, http_only.url))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "serves no virtual radio" in result.stderr and "--tower" not in result.stderr, result.stderr


def test_hw_mtu_on_a_sandbox_url_points_at_its_control_plane(served: VirtualSandbox, tmp_path: Path) -> None:
    """`--mtu` sets the embedded sandbox's MTU; on a URL it is one line naming POST /_sim/radio, exit 2."""
    result = CliRunner().invoke(app, ["hw", "--mtu", "23", "--target", served.url], env=_env(tmp_path, served.url))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1 and "POST /_sim/radio" in result.stderr


def test_run_on_a_sandbox_url_has_a_passing_hw_stage(
    served: VirtualSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --target URL --only hw`: the rig runs in a child process against the URL's towers over the
    radio it serves, as on a bench; its tests pass and its BLE phases reach the run's summary."""
    monkeypatch.chdir(tmp_path)
    served.control.reset()
    result = CliRunner().invoke(
        app, ["run", "--only", "hw", "--budget", "120", "--target", served.url], env=_env(tmp_path, served.url)
    )
    assert result.exit_code == ExitCode.OK, result.output
    [run] = (tmp_path / "reports").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    [stage] = summary["stages"]
    assert stage["name"] == "hw" and stage["verdict"] == "passed", stage
    assert stage["figures"]["passed"] >= 5, stage["figures"]
    # The honest sandbox confirms every guess of ours, over BLE too (its tower reports at its sync).
    assert summary.get("assumptions_refuted", []) == [], summary["assumptions_refuted"]
