"""Whether a target has a tower a stage can open doors on, outside the embedded sandbox's radio.

On ``local`` the doors are the virtual towers'. On Harbor's targets (and a URL without the
virtual sandbox's control plane) they are a bench tower's, over the OS's Bluetooth: without one
named, a stage that opens doors is skipped with the reason, never failed. Without an adapter it
is skipped too under the target's default radio; an explicit ``HARBOR_BLE=bleak`` asked for one,
so its absence is could-not-test.
"""

from __future__ import annotations

import os

from harness.config import BleBackend, Settings

__all__ = ["ble_chosen_explicitly", "no_bench_tower"]


def ble_chosen_explicitly() -> bool:
    """Whether the user asked for the OS's Bluetooth (``HARBOR_BLE``), rather than a target's default."""
    return bool(os.environ.get("HARBOR_BLE", "").strip())


def no_bench_tower(settings: Settings) -> str | None:
    """Why a target whose doors are a bench tower's has none to reach, or ``None``."""
    if settings.ble is not BleBackend.BLEAK:
        return (
            f"no bench tower: on {settings.target.name} doors open on a tower over the OS's Bluetooth "
            "(HARBOR_BLE=bleak, HARBOR_TOWER_ID); the virtual radio exists on local and on a virtual "
            "sandbox URL that serves it"
        )
    if settings.tower_id is None:
        return "no bench tower named: set HARBOR_TOWER_ID to a tower within Bluetooth range"
    return None
