"""Which ``DoorOpener`` a run uses: Bluetooth LE, or a sandbox's control plane.

On ``local`` doors open over Bluetooth LE through the embedded sandbox's virtual radio
(``HARBOR_BLE=bleak``: the OS's radio and a bench tower). A virtual sandbox given as a URL (it
serves ``/_sim``) opens doors through its control plane: the same firmware checks, without the
radio. Harbor's sandbox and production open a bench tower's doors over the OS's Bluetooth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import httpx

from harness.api import AsyncHarborClient, async_guard_hooks
from harness.config import BleBackend, Settings, TargetKind
from harness.errors import TargetUnreachable, UsageError
from harness.flow import ControlPlaneOpener, DoorOpener
from harness.hosts import WirePolicy

if TYPE_CHECKING:
    from harness.ble import BleDoorOpener

__all__ = ["door_opener", "serves_control_plane"]

_PROBE_TIMEOUT = 3.0
_STRICT = WirePolicy()


async def serves_control_plane(url: str, *, policy: WirePolicy = _STRICT) -> bool:
    """Whether ``url`` is a virtual sandbox; ``TargetUnreachable`` if nothing answers at all."""
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT, event_hooks=async_guard_hooks(policy)) as http:
            response = await http.get(f"{url}/_sim/bugs")
    except httpx.RequestError as exc:
        reason = f"{type(exc).__name__}: {exc or 'no detail'}"
        raise TargetUnreachable(f"{url} does not answer ({reason})", url=url) from None
    return response.status_code == 200


@asynccontextmanager
async def door_opener(
    settings: Settings,
    *,
    client: AsyncHarborClient | None = None,
    radio_link: Callable[[], object] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[DoorOpener]:
    """The door opener for this target, closed when the run ends: Bluetooth LE on the embedded
    sandbox's radio (``radio_link``; ``HARBOR_BLE=bleak`` for a real one), the control plane of a
    sandbox URL, else a bench tower over the OS's Bluetooth. ``transport`` carries the control
    plane's requests (a run's evidence capture); over BLE every request goes through ``client``."""
    if client is not None and radio_link is not None:
        async with _ble(settings, client, None if settings.ble is BleBackend.BLEAK else radio_link()) as ble_opener:
            yield ble_opener
        return
    url = settings.target.api_url
    kind = settings.target.kind
    policy = settings.wire_policy()
    if url is not None and (
        kind is TargetKind.LOCAL or (kind is TargetKind.URL and await serves_control_plane(url, policy=policy))
    ):
        async with ControlPlaneOpener(url, transport=transport, policy=policy) as opener:
            yield opener
        return
    if client is not None:
        async with _ble(settings, client, None) as ble_opener:
            yield ble_opener
        return
    raise UsageError(f"target {settings.target.name} has no virtual doors and no API client to open them over BLE")


def _ble(settings: Settings, client: AsyncHarborClient, link: object | None) -> BleDoorOpener:
    from harness.cli._ble import ble_backend, ble_door_opener  # bleak (and bumble) only on this path

    return ble_door_opener(client, ble_backend(settings, link))
