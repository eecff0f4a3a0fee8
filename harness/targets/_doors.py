"""Which ``DoorOpener`` a run uses, and over which radio: Bluetooth LE, or a sandbox's control plane.

On ``local`` doors open over Bluetooth LE through the embedded sandbox's virtual radio
(``HARBOR_BLE=bleak``: the OS's radio and a bench tower). A virtual sandbox given as a URL (it
serves ``/_sim``) opens doors through its control plane in a delivery: the same firmware checks,
without the radio; where it serves its radio to other processes (``locker-harness sim`` does),
``radio`` reaches its towers over Bluetooth LE too, for the commands that time the BLE phases
(``hw``, the hardware rig). Harbor's sandbox and production open a bench tower's doors over the
OS's Bluetooth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from harness.api import AsyncHarborClient
from harness.config import BleBackend, Settings, TargetKind
from harness.errors import UsageError
from harness.flow import ControlPlaneOpener, DoorOpener
from harness.targets._probe import AnnouncedRadio, announced_radio, has_virtual_doors
from harness.targets._sandbox import RadioLink

if TYPE_CHECKING:
    from harness.ble import BleDoorOpener, PhaseTimer, Radio

__all__ = ["ble_door_opener", "door_opener", "radio"]


def radio(settings: Settings, radio_link: RadioLink | None = None) -> Radio:
    """The radio the settings ask for: the embedded sandbox's virtual one (``radio_link``, put on
    the air now), the virtual radio a sandbox URL serves to other processes (asked of its control
    plane: blocking, once), or the OS's Bluetooth through bleak (``HARBOR_BLE=bleak``).

    ``UsageError`` for a virtual radio the target has not: a URL that announces none, or Harbor's."""
    from harness.ble import choose_backend  # bleak (and bumble) only on this path

    link: object | None = None
    if settings.ble is BleBackend.VIRTUAL:
        if radio_link is not None:
            link = radio_link()
        elif settings.target.kind is TargetKind.URL:
            link = _announced(settings).transport
    return choose_backend(settings.ble.value, link=link)


def _announced(settings: Settings) -> AnnouncedRadio:
    url = settings.target.api_url
    announced = None if url is None else announced_radio(url, policy=settings.wire_policy())
    if announced is None:
        raise UsageError(
            f"target {settings.target.name} serves no virtual radio (GET /_sim/radio): start it with "
            "`locker-harness sim`, or for a bench tower set HARBOR_BLE=bleak"
        )
    return announced


def ble_door_opener(
    client: AsyncHarborClient,
    backend: Radio,
    *,
    timer: PhaseTimer | None = None,
    response_timeout: float | None = None,
    retries: int = 0,
    device_info: bool = False,
) -> BleDoorOpener:
    """A door opener over ``backend`` that gets its session tokens and uploads events through ``client``
    (and, with ``device_info``, asks each tower's GET_DEVICE_INFO once)."""
    from harness.ble import BleDoorOpener

    return BleDoorOpener.for_api(
        client, backend, timer=timer, response_timeout=response_timeout, retries=retries, device_info=device_info
    )


@asynccontextmanager
async def door_opener(
    settings: Settings,
    *,
    client: AsyncHarborClient | None = None,
    radio_link: RadioLink | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[DoorOpener]:
    """The door opener for this target, closed when the run ends: Bluetooth LE on the embedded
    sandbox's radio (``radio_link``; ``HARBOR_BLE=bleak`` for a real one), the control plane of a
    sandbox URL, else a bench tower over the OS's Bluetooth. ``transport`` carries the control
    plane's requests (a run's evidence capture); over BLE every request goes through ``client``.
    Without a ``client`` no radio is used: only a control plane can open the doors."""
    if client is not None and radio_link is not None:
        async with ble_door_opener(client, radio(settings, radio_link)) as ble_opener:
            yield ble_opener
        return
    url = settings.target.api_url
    if url is not None and await asyncio.to_thread(has_virtual_doors, settings):
        async with ControlPlaneOpener(url, transport=transport, policy=settings.wire_policy()) as opener:
            yield opener
        return
    if client is not None:
        async with ble_door_opener(client, radio(settings)) as ble_opener:
            yield ble_opener
        return
    raise UsageError(f"target {settings.target.name} has no virtual doors and no API client to open them over BLE")
