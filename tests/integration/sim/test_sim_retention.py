"""Bounded history served: ``/_sim/events`` says when a reader fell behind, and BLE sync reads a trimmed tower log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
import pytest

from harness.api import AsyncHarborClient, TowerEventBatch
from harness.ble import TowerClient, choose_backend, find_tower
from harness.config import Settings, Target
from harness.model import LockerStatus, TowerId
from harness.redaction import Secret
from harness.sim import ControlError, Retention, SimSettings, VirtualSandbox

from .sandbox_parties import TOWER, fetch_token

RETENTION = Retention(webhook_events=6, tower_events=8, tower_seen_tail=1)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    """A sandbox with tiny logs, whose towers report door events only through BLE sync (uplink off)."""
    with VirtualSandbox(SimSettings(uplink=False, retention=RETENTION)) as running:
        running.radio.start()
        running.radio.person.dwell = 0.01
        yield running


def test_events_endpoint_answers_410_when_a_reader_fell_behind(sandbox: VirtualSandbox) -> None:
    """Past the ring, ``since=0`` is 410 naming the oldest kept event; reading from there pages on as before."""
    headers = {"Authorization": f"Bearer {fetch_token(sandbox.url)}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=5) as http:
        for _ in range(4):  # eight events into a ring of six
            reservation = http.post(f"/api/v1/towers/{TOWER}/lockers/1401/reservations", json={"duration": 60})
            http.delete(f"/api/v1/towers/{TOWER}/lockers/1401/reservations/{reservation.json()['id']}")
        gone = http.get("/_sim/events", params={"since": 0})
    assert gone.status_code == 410
    assert gone.json() | {"detail": None} == {"detail": None, "oldest": 2, "next": 8}
    with pytest.raises(ControlError) as refused:
        sandbox.control.events(since=1)
    assert refused.value.status_code == 410 and refused.value.body["oldest"] == 2
    assert [event["sequence"] for event in sandbox.control.events(since=2)] == [2, 3, 4, 5, 6, 7]
    assert sandbox.control.events(since=8) == []


@pytest.mark.anyio
async def test_ble_sync_reads_a_trimmed_tower_log(sandbox: VirtualSandbox) -> None:
    """A tower whose unsynced events overflowed its log syncs from the oldest kept, uploads, and the API catches up."""
    firmware = sandbox.world.firmwares[TOWER]
    for n in range(20):
        firmware.add_client_event(f"note {n}")  # BOOT and 20 notes: more than the log of 8 holds
    settings = Settings(
        target=Target.local().running_at(sandbox.url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=TOWER,
    )
    backend = choose_backend("virtual", link=sandbox.radio.link)
    async with AsyncHarborClient(settings) as api:

        async def upload(tower_id: TowerId, batches: Sequence[TowerEventBatch]) -> str:
            return await api.upload_tower_events(tower_id, batches)

        await api.reserve(TOWER, 1401, 300)
        token = await api.create_dropoff_token(TOWER, 1401, 600, "")
        found = await find_tower(backend, TOWER, timeout=5.0)
        async with TowerClient.over(backend, found.device, tower_id=TOWER, response_timeout=2.0) as tower:
            await tower.start_session(api.create_session_token)
            assert await tower.open_with_token(token.payload, token.payload_auth) == 1401
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
            # Events 0..22 were logged; the tower keeps 15..22 and its pointer moved to 15.
            assert (firmware.first_event_number, firmware.sync_status()) == (15, (15, 8))
            assert (await api.get_locker(TOWER, 1401)).status is LockerStatus.RENTED  # the close is not uploaded
            assert await tower.sync_events(upload) == 8
            assert firmware.sync_status() == (23, 0) and firmware.first_event_number == 22
            assert await tower.sync_events(upload) == 0
        assert (await api.get_locker(TOWER, 1401)).status is LockerStatus.OCCUPIED
