"""After the pickup and the door closing, the API shows the locker available within a bound."""

from __future__ import annotations

import time

import pytest
from hw_rig import Rig, until

from harness.api import AsyncHarborClient
from harness.ble import Phase
from harness.model import LockerStatus

pytestmark = pytest.mark.anyio


async def test_available_within_bound_after_pickup(rig: Rig) -> None:
    """Pickup over BLE, door closed, events synced: the API shows available within --hw-available-within s."""
    bound = rig.config.available_within
    async with rig.api() as api, rig.opener(api) as opener:
        token = await rig.dropoff_token(api)
        locker = token.locker
        try:
            assert await opener.open(locker, token) == locker.id
            await opener.wait_closed(locker, timeout=120.0)
            await until(lambda: _shows(api, locker.tower_id, locker.id, LockerStatus.OCCUPIED), timeout=bound)
            pickup = await api.create_pickup_token(locker.tower_id, locker.id, 600, "")
            assert await opener.open(locker, pickup) == locker.id
            await opener.wait_closed(locker, timeout=120.0)
            start = time.perf_counter()
            await until(lambda: _shows(api, locker.tower_id, locker.id, LockerStatus.AVAILABLE), timeout=bound)
        except BaseException:
            await opener.aclose()
            await rig.release(api, token)  # whatever the test met, it gives back what it held
            raise
        visible_ns = opener.status_visible(locker.id)
        rig.holds.returned(locker.id)  # the delivery is over: its ledger rows close
    rig.keep(opener.timer.latencies)
    assert visible_ns is not None
    polled_ms = 1e3 * (time.perf_counter() - start)
    print(f"\navailable {visible_ns / 1e6:.1f} ms after the door closed (API polled for {polled_ms:.1f} ms)")
    assert opener.timer.latencies.count(Phase.API_STATUS.value) == 1


async def _shows(api: AsyncHarborClient, tower_id: str, locker_id: int, status: LockerStatus) -> bool:
    return (await api.get_locker(tower_id, locker_id)).status is status
