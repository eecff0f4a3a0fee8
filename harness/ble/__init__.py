"""The harness's phone: Harbor's Blink protocol over Bluetooth LE, on a virtual or a real radio.

    backend = choose_backend()                    # $HARBOR_BLE: virtual (default) or bleak
    found = await find_tower(backend, tower_id)
    async with TowerClient.over(backend, found.device, tower_id=tower_id) as tower:
        await tower.start_session(api.create_session_token)
        await tower.open_with_token(token.payload, token.payload_auth)

``BleDoorOpener`` does a whole door opening (scan to status visible in the API) for the flow.
The pure codec is ``harness.ble.protocol``; bumble is imported only by the virtual backend.
Errors: ``TowerRefused`` (the tower's verdict), ``BleLinkError`` and ``BluetoothUnavailable``
(infrastructure: exit 4).
"""

from harness.ble._backend import BACKEND_ENV, BleBackend, choose_backend
from harness.ble._client import (
    DEFAULT_RESPONSE_TIMEOUT,
    EventBatch,
    FoundTower,
    TowerClient,
    discover_towers,
    find_tower,
)
from harness.ble._errors import BleLinkError, TowerBusy, TowerRefused
from harness.ble._opener import BleDoorOpener
from harness.ble._timing import Phase, PhaseTimer
from harness.ble.protocol import FirmwareCode, SdkCode, TowerIdentity

__all__ = [
    "BACKEND_ENV",
    "DEFAULT_RESPONSE_TIMEOUT",
    "BleBackend",
    "BleDoorOpener",
    "BleLinkError",
    "EventBatch",
    "FirmwareCode",
    "FoundTower",
    "Phase",
    "PhaseTimer",
    "SdkCode",
    "TowerBusy",
    "TowerClient",
    "TowerIdentity",
    "TowerRefused",
    "choose_backend",
    "discover_towers",
    "find_tower",
]
