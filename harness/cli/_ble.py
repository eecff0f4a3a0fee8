"""The BLE door opener of the settings' radio, wired to an API client: what ``smoke`` and ``hw``
open doors with (``BleDoorOpener.for_api``: session tokens and event uploads go through the client).
"""

from __future__ import annotations

from harness.api import AsyncHarborClient
from harness.ble import BleDoorOpener, PhaseTimer, Radio, choose_backend
from harness.config import Settings

__all__ = ["ble_backend", "ble_door_opener"]


def ble_backend(settings: Settings, radio_link: object | None = None) -> Radio:
    """The radio the settings ask for: the virtual one (needs the embedded sandbox's link) or bleak's."""
    return choose_backend(settings.ble.value, link=radio_link)


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
    return BleDoorOpener.for_api(
        client, backend, timer=timer, response_timeout=response_timeout, retries=retries, device_info=device_info
    )
