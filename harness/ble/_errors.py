"""The BLE client's errors, and the one place bleak's and the OS's errors are translated.

    HarnessError
    ├── TowerRefused (FirmwareError)        the tower answered with a firmware code: a verdict on
    │                                       the token or the request (exit 1 where success was due)
    ├── InfrastructureError                 exit 4: could not test
    │   ├── TowerBusy (TowerRefused)        busy (505, 509, 510) past the SDK's asks
    │   ├── BleLinkError (SdkError)         timeout, disconnect, lost or undecodable reply
    │   └── BluetoothUnavailable            no adapter, no BlueZ, no D-Bus
    └── UsageError                          a backend that cannot be chosen

Above ``harness.ble`` nobody catches a bleak, D-Bus or bumble exception type.
"""

from __future__ import annotations

from typing import Any

from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakDeviceNotFoundError, BleakError

from harness.ble.protocol import DecodeError, FirmwareCode, FirmwareError, SdkCode, SdkError
from harness.errors import BluetoothUnavailable, HarnessError, InfrastructureError

__all__ = ["BleLinkError", "TowerBusy", "TowerRefused", "translate"]

#: The one line a user without Bluetooth reads (exit 4), whatever the OS said underneath.
NO_ADAPTER = "no Bluetooth adapter is reachable (HARBOR_BLE=bleak needs BlueZ and an adapter on this machine)"

_DBUS_UNAVAILABLE = (
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.AccessDenied",
    "org.bluez.Error.NotReady",
)


class TowerRefused(FirmwareError, HarnessError):
    """The tower refused: ``code`` is its firmware code (AUTH_*, MSG_EXPIRED, SYS_*...)."""

    def __init__(self, message: str, *, code: int, **fields: Any) -> None:
        super().__init__(message, code=code, **fields)

    def __str__(self) -> str:
        return FirmwareError.__str__(self)


class TowerBusy(TowerRefused, InfrastructureError):
    """The tower stayed busy (SYS_RESOURCES, SYS_LOCKERS_BUSY, SYS_SYNC_BUSY) past the asks the SDK
    makes: it could not be tested now (exit 4), which says nothing about its tokens."""


#: Firmware codes that mean "ask again later" [S reference 9.8], not a verdict on the request.
_BUSY_CODES = frozenset({FirmwareCode.SYS_RESOURCES, FirmwareCode.SYS_LOCKERS_BUSY, FirmwareCode.SYS_SYNC_BUSY})


class BleLinkError(SdkError, InfrastructureError):
    """The link failed (timeout, disconnect, lost notification, undecodable reply): says nothing
    about whether the tower would have done the right thing."""

    def __init__(self, message: str, *, code: int, **fields: Any) -> None:
        super().__init__(message, code=code, **fields)

    def __str__(self) -> str:
        return SdkError.__str__(self)


def _bluetooth_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return True
    if isinstance(exc, BleakDBusError):
        return exc.dbus_error in _DBUS_UNAVAILABLE
    # No D-Bus socket (FileNotFoundError), no daemon behind it, or no right to use it.
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError | PermissionError):
        return True
    module = type(exc).__module__
    return module.startswith("dbus_fast") and "DBus" in type(exc).__name__


def translate(
    exc: BaseException, *, phase: str, tower_id: str | None = None, locker_id: int | None = None
) -> HarnessError:
    """The harness error for a foreign (or protocol) exception raised during ``phase``."""
    where: dict[str, Any] = {"phase": phase, "tower_id": tower_id, "locker_id": locker_id}
    if isinstance(exc, HarnessError):
        return exc
    if _bluetooth_unavailable(exc):
        return BluetoothUnavailable(NO_ADAPTER)
    if isinstance(exc, FirmwareError):
        refused = TowerBusy if exc.code in _BUSY_CODES else TowerRefused
        return refused(exc.message, code=exc.code, session_level=exc.session_level, **where)
    if isinstance(exc, DecodeError):
        return BleLinkError(
            f"undecodable reply ({exc.message}); check harness/ble/protocol/assumptions.py on a bench tower",
            code=SdkCode.PACKET_NOT_DECODED,
            **where,
        )
    if isinstance(exc, SdkError):
        return BleLinkError(exc.message, code=exc.code, **where)
    if isinstance(exc, TimeoutError):
        return BleLinkError("no response from the tower in time", code=SdkCode.RESPONSE_TIMEOUT, **where)
    if isinstance(exc, BleakDeviceNotFoundError):
        return BleLinkError(f"tower not found: {exc}", code=SdkCode.DISCOVERY_FAILED, **where)
    if isinstance(exc, BleakError):
        code = SdkCode.PERIPHERAL_CONNECTION_FAILED if phase == "connect" else SdkCode.NOT_CONNECTED_WITH_TOWER
        return BleLinkError(f"Bluetooth: {exc}", code=code, **where)
    if isinstance(exc, OSError):
        return BleLinkError(f"Bluetooth I/O failed: {exc}", code=SdkCode.NOT_CONNECTED_WITH_TOWER, **where)
    return InfrastructureError(f"unexpected {type(exc).__name__} during BLE {phase}: {exc}")
