"""``locker-harness hw``: the per-phase table over the virtual radio, and one line without Bluetooth."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.errors import ExitCode

NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)


def _invoke(args: list[str], **env: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, args, env={**NO_HARBOR_ENV, **env})
    return result.exit_code, result.stdout, result.stderr


def test_hw_prints_every_phase_over_the_virtual_radio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hw --cycles 1` on local runs one delivery over BLE and prints each phase's percentiles; exit 0."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _invoke(["hw", "--cycles", "1"])
    assert code == ExitCode.OK, stderr
    for phase in ("scan", "connect", "discovery", "session", "open", "door", "sync", "api_status"):
        assert f"│ {phase} " in stdout, phase
    assert "2 opens" in stdout


def test_hw_shows_the_advertisement_layout_the_mtu_and_the_device_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the phases, the tower's column: how its advertisement reached the client, the negotiated MTU
    (``--mtu 23`` on local), and what GET_DEVICE_INFO answered."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = _invoke(["hw", "--cycles", "1", "--mtu", "23"])
    assert code == ExitCode.OK, stderr
    table = stdout[stdout.index("Towers") :]
    assert "0100000000000014" in table and "scan response late" in table
    for label, value in (("ATT MTU", "23"), ("firmware", "1.2.3"), ("lockers", "24"), ("name", "Virtual Tower 14")):
        assert any(label in line and f" {value} " in line for line in table.splitlines()), (label, value)


def test_hw_mtu_off_the_virtual_radio_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real radio negotiates its own MTU: `--mtu` with `HARBOR_BLE=bleak` is one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _invoke(["hw", "--cycles", "1", "--mtu", "23"], HARBOR_BLE="bleak")
    assert code == ExitCode.USAGE, stderr
    assert stderr.count("\n") == 1 and "--mtu" in stderr


def test_hw_gate_breach_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An impossible --open-p95-ms bound is an SLO breach: exit 3 with one line saying by how much."""
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _invoke(["hw", "--cycles", "1", "--open-p95-ms", "0.001"])
    assert code == ExitCode.SLO_BREACH
    assert stderr.count("\n") == 1 and "open p95" in stderr


def test_hw_with_bleak_and_no_bluetooth_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`HARBOR_BLE=bleak hw` on a machine without Bluetooth exits 4 with one line, no traceback."""
    if Path("/run/dbus/system_bus_socket").exists() or Path("/var/run/dbus/system_bus_socket").exists():
        pytest.skip("this machine has a D-Bus system bus: Bluetooth may be reachable")
    monkeypatch.chdir(tmp_path)
    code, _, stderr = _invoke(["hw", "--cycles", "1"], HARBOR_BLE="bleak")
    assert code == ExitCode.INFRASTRUCTURE, stderr
    assert stderr.count("\n") == 1
    assert "no Bluetooth adapter is reachable" in stderr and "Traceback" not in stderr
