"""The delivery flow over BLE: completes, survives link faults on retry, and stops cleanly without Bluetooth."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.api import AsyncHarborClient
from harness.assumptions import findings, observing
from harness.ble import BleDoorOpener, BleLinkError, PhaseTimer, Radio, SdkCode, choose_backend, find_tower
from harness.config import Settings
from harness.errors import BluetoothUnavailable, ExitCode
from harness.flow import run_delivery
from harness.model import LockerStatus
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"

pytestmark = pytest.mark.anyio


def _opener(api: AsyncHarborClient, backend: Radio, **options: object) -> BleDoorOpener:
    return BleDoorOpener.for_api(api, backend, timer=PhaseTimer(), **options)  # type: ignore[arg-type]


async def test_delivery_over_ble_ends_available(settings: Settings, backend: Radio) -> None:
    """run_delivery with the BLE door opener passes every step and leaves the locker available; on the
    honest sandbox it refutes no guess of ours (the tower reports its door at its sync: a status from
    before, read right after the open, is no sign of when a locker turns occupied)."""
    with observing() as seen:
        async with AsyncHarborClient(settings) as api, _opener(api, backend) as opener:
            delivery = await run_delivery(api, opener, tower_id=TOWER, status_timeout=5.0)
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert opener.timer.latencies.count("ble.open") == 2
    assert findings(seen.entries(), settings.assume) == []


@pytest.mark.parametrize(
    ("fault", "code", "status_after"),
    [
        # Dropped before the command reached the firmware: nothing happened, the locker stays rented.
        ("ble_disconnect", SdkCode.NOT_CONNECTED_WITH_TOWER, LockerStatus.RENTED),
        # The door opened but the reply was lost; the person closed it: the item is in, occupied.
        ("ble_lost_notification", SdkCode.RESPONSE_TIMEOUT, LockerStatus.OCCUPIED),
        # Lost on the air, then the link times out (0x08) on both ends: nothing happened.
        ("ble_supervision_timeout", SdkCode.NOT_CONNECTED_WITH_TOWER, LockerStatus.RENTED),
    ],
)
async def test_link_fault_is_classified_explained_and_retried(
    settings: Settings,
    backend: Radio,
    sandbox: VirtualSandbox,
    fault: str,
    code: SdkCode,
    status_after: LockerStatus,
) -> None:
    """A link fault mid-open is infrastructure (exit 4), leaves the state the model predicts, and a retry completes."""
    async with AsyncHarborClient(settings) as api:
        locker = sorted(
            (x for x in await api.list_lockers(TOWER) if x.status is LockerStatus.AVAILABLE), key=lambda x: x.id
        )[0]
        await api.reserve(TOWER, locker.id, 300)
        token = await api.create_dropoff_token(TOWER, locker.id, 600, "")
        async with _opener(api, backend, response_timeout=0.3) as opener:
            sandbox.control.set_faults(fault, count=1)
            with pytest.raises(BleLinkError) as failed:
                await opener.open(locker, token)
            assert failed.value.code is code and failed.value.phase == "open"
            assert failed.value.exit_code is ExitCode.INFRASTRUCTURE
            truth = await _settled(sandbox, locker.id)
            assert truth["status"] == status_after.wire_name and not truth["door_open"]
            # The retry: a new scan, connection and session, the same token.
            assert await opener.open(locker, token) == locker.id
            await opener.wait_closed(locker, timeout=5.0)
        assert (await api.get_locker(TOWER, locker.id)).status is LockerStatus.OCCUPIED

    # The whole flow with one retry allowed rides over the same fault.
    sandbox.world.reset()
    sandbox.control.set_faults(fault, count=1)
    async with AsyncHarborClient(settings) as api, _opener(api, backend, response_timeout=0.3, retries=1) as opener:
        delivery = await run_delivery(api, opener, tower_id=TOWER, status_timeout=5.0)
    assert delivery.locker.status is LockerStatus.AVAILABLE
    assert [failure.code for failure in opener.link_failures] == [code]


async def _settled(sandbox: VirtualSandbox, locker_id: int) -> dict[str, object]:
    """The sandbox's truth for a locker once no door is open (the person closes it after the dwell)."""
    deadline = time.monotonic() + 5.0
    while True:
        truth = next(x for x in sandbox.control.state()["lockers"] if x["id"] == locker_id)
        if not truth["door_open"] or time.monotonic() > deadline:
            return dict(truth)
        await _tick()


async def _tick() -> None:
    import anyio

    await anyio.sleep(0.01)  # pace of a bounded poll


async def test_bleak_backend_without_bluetooth_is_one_clear_error() -> None:
    """On a machine without Bluetooth, the bleak backend raises BluetoothUnavailable (exit 4), not FileNotFoundError."""
    if Path("/run/dbus/system_bus_socket").exists() or Path("/var/run/dbus/system_bus_socket").exists():
        pytest.skip("this machine has a D-Bus system bus: Bluetooth may be reachable")
    with pytest.raises(BluetoothUnavailable) as missing:
        await find_tower(choose_backend("bleak"), TOWER, timeout=1.0)
    assert str(missing.value).startswith("no Bluetooth adapter is reachable")
    assert missing.value.exit_code is ExitCode.INFRASTRUCTURE


def test_event_batches_are_the_api_model() -> None:
    """The BLE client's event batches are the API's TowerEventBatch: one type, the events upload's JSON."""
    import harness.api
    import harness.ble
    from harness.model import TowerEventBatch

    assert harness.ble.TowerEventBatch is harness.api.TowerEventBatch is TowerEventBatch
    batch = TowerEventBatch(1, 2, "ab", "cd")
    assert batch.to_json() == {"syncEventStart": 1, "syncEventCount": 2, "payload": "ab", "payloadAuth": "cd"}
    assert "cd" not in repr(batch)
