"""The BLE door opener wired to an API client: what ``smoke``, ``hw`` and the rig open doors with.

``harness.ble`` must not import the API client, and the API client knows nothing of BLE; here
the two meet: the opener fetches session tokens with ``create_session_token`` and uploads the
tower's events with ``upload_tower_events``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harness.api import AsyncHarborClient, TowerEventBatch
from harness.ble import BleBackend, BleDoorOpener, EventBatch, PhaseTimer, choose_backend
from harness.config import Settings

__all__ = ["ble_backend", "ble_door_opener"]


def ble_backend(settings: Settings, radio_link: object | None = None) -> BleBackend:
    """The radio the settings ask for: the virtual one (needs the embedded sandbox's link) or bleak's."""
    return choose_backend(settings.ble.value, link=radio_link)


def ble_door_opener(
    client: AsyncHarborClient,
    backend: BleBackend,
    *,
    timer: PhaseTimer | None = None,
    response_timeout: float | None = None,
    retries: int = 0,
) -> BleDoorOpener:
    """A door opener over ``backend`` that gets its session tokens and uploads events through ``client``."""

    async def upload(tower_id: str, batches: Sequence[EventBatch]) -> str:
        return await client.upload_tower_events(tower_id, [TowerEventBatch(**dataclasses.asdict(b)) for b in batches])

    options: dict[str, float] = {}
    if response_timeout is not None:
        options["response_timeout"] = response_timeout
    return BleDoorOpener(
        backend,
        session_token=client.create_session_token,
        upload_events=upload,
        timer=timer,
        retries=retries,
        **options,
    )
