"""Targets, wired: the one place that brings a target up and chooses what reaches it.

Every caller (the CLI, the run's stages, ``harness.testing`` and the pytest plugin) comes here
instead of wiring a target of its own:

- ``embedded_sandbox``: the embedded virtual sandbox for ``local``, in a thread or a child
  process, with throwaway identities and the bug switches and faults asked for;
  ``open_target``: that on ``local``, any other target as it is (credentials checked first).
- ``serves_control_plane``: whether a URL is a virtual sandbox (sync and async faces, one probe);
  ``has_virtual_doors``: whether the harness opens a target's doors itself (``local`` or such a URL);
  ``announced_radio``: where a sandbox URL serves its virtual radio to other processes.
- ``subscribe_webhooks``: have a virtual sandbox deliver its webhooks to a receiver.
- ``door_opener`` and ``radio``: how doors open, over Bluetooth LE on the virtual radio (in this
  process or a sandbox URL's) or the OS's, or through a sandbox's control plane.
- ``give_back_all``: what crashed runs left held, given back on the targets their ledger rows
  name (``locker-harness cleanup``), with ``cleanup_exit_code`` its verdict.
- ``smoke_delivery``: one delivery as ``locker-harness smoke`` makes it; ``ble_deliveries``:
  deliveries over Bluetooth LE with every BLE phase timed, as ``locker-harness hw`` makes them;
  ``watched_delivery``: one delivery on a virtual sandbox's doors, its webhooks received, as
  ``locker-harness probe --write`` makes it.

Importing this package is cheap: the sandbox (FastAPI, uvicorn) and the BLE stack (bleak,
bumble) load when a target needs them.
"""

from harness.targets._cleanup import CleanupProgress, cleanup_exit_code, give_back_all, ledger_row_matches
from harness.targets._deliveries import (
    BleDeliveries,
    DeliveryChoice,
    ble_deliveries,
    smoke_delivery,
    watched_delivery,
)
from harness.targets._doors import ble_door_opener, door_opener, radio
from harness.targets._probe import (
    AnnouncedRadio,
    announced_radio,
    has_virtual_doors,
    serves_control_plane,
    serves_control_plane_async,
    with_served_tower,
)
from harness.targets._sandbox import (
    LocalTarget,
    RadioLink,
    RunningTarget,
    embedded_sandbox,
    open_target,
    throwaway_credentials,
)
from harness.targets._webhooks import WEBHOOKS_PATH, WebhooksNotDelivered, subscribe_webhooks, subscribed_webhooks

__all__ = [
    "WEBHOOKS_PATH",
    "AnnouncedRadio",
    "BleDeliveries",
    "CleanupProgress",
    "DeliveryChoice",
    "LocalTarget",
    "RadioLink",
    "RunningTarget",
    "WebhooksNotDelivered",
    "announced_radio",
    "ble_deliveries",
    "ble_door_opener",
    "cleanup_exit_code",
    "door_opener",
    "embedded_sandbox",
    "give_back_all",
    "has_virtual_doors",
    "ledger_row_matches",
    "open_target",
    "radio",
    "serves_control_plane",
    "serves_control_plane_async",
    "smoke_delivery",
    "subscribe_webhooks",
    "subscribed_webhooks",
    "throwaway_credentials",
    "watched_delivery",
    "with_served_tower",
]
