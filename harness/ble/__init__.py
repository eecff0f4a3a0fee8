"""The harness's phone: Harbor's Blink protocol over Bluetooth LE, on a virtual or a real radio.

    radio = choose_backend()                      # $HARBOR_BLE: virtual (default) or bleak
    found = await find_tower(radio, tower_id)
    async with TowerClient.over(radio, found.device, tower_id=tower_id) as tower:
        await tower.start_session(api.create_session_token)
        await tower.open_with_token(token.payload, token.payload_auth)

``BleDoorOpener`` does a whole door opening (scan to status visible in the API) for the flow;
``BleDoorOpener.for_api(api, radio)`` wires it to an API client (session tokens, event uploads).
The pure codec is ``harness.ble.protocol``; bumble is imported only by the virtual backend.
Errors: ``TowerRefused`` (the tower's verdict), ``BleLinkError`` and ``BluetoothUnavailable``
(infrastructure: exit 4).

The client (and bleak with it) is imported on first use of one of its names, so the virtual
sandbox's ``from harness.ble import protocol`` loads the codec and nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from harness.ble.protocol import AdvertLayout, DeviceInfo, FirmwareCode, SdkCode, TowerIdentity
from harness.model import TowerEventBatch  # what a SYNC_PULL gives and the API's events upload takes

if TYPE_CHECKING:
    from harness.ble._backend import BACKEND_ENV, Radio, choose_backend
    from harness.ble._client import (
        DEFAULT_RESPONSE_TIMEOUT,
        FoundTower,
        TowerClient,
        discover_towers,
        find_tower,
    )
    from harness.ble._errors import BleLinkError, TowerBusy, TowerRefused
    from harness.ble._opener import BleDoorOpener, HarborSdk, TowerSeen
    from harness.ble._timing import Phase, PhaseTimer

__all__ = [
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

#: Public name -> the private module that defines it (imported on first use).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("BACKEND_ENV", "Radio", "choose_backend"), "harness.ble._backend"),
    **dict.fromkeys(
        ("DEFAULT_RESPONSE_TIMEOUT", "FoundTower", "TowerClient", "discover_towers", "find_tower"),
        "harness.ble._client",
    ),
    **dict.fromkeys(("BleLinkError", "TowerBusy", "TowerRefused"), "harness.ble._errors"),
    **dict.fromkeys(("BleDoorOpener", "HarborSdk", "TowerSeen"), "harness.ble._opener"),
    **dict.fromkeys(("Phase", "PhaseTimer"), "harness.ble._timing"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        # Not ours: ``from harness.ble import protocol`` then imports the subpackage itself.
        raise AttributeError(f"module 'harness.ble' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
