"""The BLE client's edges: foreign errors translated into the harness's tree, backends chosen by name."""

from __future__ import annotations

import pytest
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason, BleakDBusError, BleakError

import harness.ble
from harness.ble import BleLinkError, TowerRefused, choose_backend
from harness.ble import protocol as blink
from harness.ble._errors import NO_ADAPTER, translate
from harness.errors import BluetoothUnavailable, ExitCode, HarnessError, InfrastructureError, UsageError


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file or directory"),
        ConnectionRefusedError(),
        PermissionError(),
        BleakBluetoothNotAvailableError("off", BleakBluetoothNotAvailableReason.POWERED_OFF),
        BleakDBusError("org.freedesktop.DBus.Error.ServiceUnknown", []),
    ],
)
def test_no_adapter_becomes_one_clear_line(exc: BaseException) -> None:
    """A missing D-Bus socket, daemon or adapter is BluetoothUnavailable (exit 4) with one line."""
    error = translate(exc, phase="scan")
    assert isinstance(error, BluetoothUnavailable)
    assert str(error) == NO_ADAPTER and "\n" not in str(error)
    assert error.exit_code is ExitCode.INFRASTRUCTURE


@pytest.mark.parametrize(
    ("exc", "phase", "code"),
    [
        (TimeoutError(), "open", blink.SdkCode.RESPONSE_TIMEOUT),
        (BleakError("Not connected"), "open", blink.SdkCode.NOT_CONNECTED_WITH_TOWER),
        (BleakError("failed"), "connect", blink.SdkCode.PERIPHERAL_CONNECTION_FAILED),
        (blink.DecodeError("bad"), "session", blink.SdkCode.PACKET_NOT_DECODED),
        (blink.SdkError("gone", code=102), "door", blink.SdkCode.NOT_CONNECTED_WITH_TOWER),
        (OSError("io"), "open", blink.SdkCode.NOT_CONNECTED_WITH_TOWER),
    ],
)
def test_link_failures_are_infrastructure_with_phase(exc: BaseException, phase: str, code: blink.SdkCode) -> None:
    """Timeouts, bleak errors and undecodable replies are BleLinkError: infrastructure, naming phase and code."""
    error = translate(exc, phase=phase, tower_id="0100000000000014", locker_id=1401)
    assert isinstance(error, BleLinkError) and isinstance(error, InfrastructureError)
    assert (error.code, error.phase, error.locker_id) == (code, phase, 1401)
    assert error.exit_code is ExitCode.INFRASTRUCTURE
    assert f"phase={phase}" in str(error)


def test_firmware_refusal_is_a_verdict_not_infrastructure() -> None:
    """A firmware code becomes TowerRefused: a harness error with exit 1, keeping code and session level."""
    error = translate(blink.FirmwareError("expired", code=107, session_level=True), phase="session")
    assert isinstance(error, TowerRefused) and not isinstance(error, InfrastructureError)
    assert error.code is blink.FirmwareCode.MSG_EXPIRED and error.session_level
    assert error.exit_code is ExitCode.DEFECT
    assert str(error) == "expired [firmware.session 107 MSG_EXPIRED phase=session]"


def test_harness_errors_pass_through_and_bugs_are_named() -> None:
    """A harness error is returned as it is; anything unexpected becomes an InfrastructureError naming it."""
    original = UsageError("x")
    assert translate(original, phase="scan") is original
    other = translate(ValueError("odd"), phase="open")
    assert isinstance(other, InfrastructureError) and "ValueError" in str(other)


def test_backends_are_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """virtual needs the radio's link, bleak needs nothing, anything else is a usage error (exit 2)."""
    monkeypatch.delenv("HARBOR_BLE", raising=False)
    assert choose_backend("bleak").scanner_backend is None
    with pytest.raises(UsageError, match="local target"):
        choose_backend()
    with pytest.raises(UsageError, match="not a BLE backend"):
        choose_backend("bluez")
    monkeypatch.setenv("HARBOR_BLE", "bleak")
    assert choose_backend().name == "bleak"
    with pytest.raises(BleakError, match="needs link"):  # the backend's own error; translated a layer above
        choose_backend("virtual", link=object()).scanner(None, [])


def test_public_face_is_small() -> None:
    """harness.ble exports the client, the opener, the backends, the timings, the errors and what a tower
    shows of itself (advertisement layout, device info); nothing else."""
    assert sorted(harness.ble.__all__) == sorted(
        [
            "BACKEND_ENV",
            "DEFAULT_RESPONSE_TIMEOUT",
            "AdvertLayout",
            "BleDoorOpener",
            "BleLinkError",
            "DeviceInfo",
            "FirmwareCode",
            "FoundTower",
            "HarborSdk",
            "Phase",
            "PhaseTimer",
            "Radio",
            "SdkCode",
            "TowerBusy",
            "TowerClient",
            "TowerEventBatch",
            "TowerIdentity",
            "TowerRefused",
            "TowerSeen",
            "choose_backend",
            "discover_towers",
            "find_tower",
        ]
    )
    assert issubclass(TowerRefused, HarnessError) and issubclass(BleLinkError, HarnessError)
