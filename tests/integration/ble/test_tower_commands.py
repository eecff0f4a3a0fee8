"""The locker and device commands over the virtual radio: FIND_AVAILABLE_LOCKERS (40),
OPEN_AVAILABLE_LOCKER (44), CHECK_ALL_LOCKER_DOORS (52), GET_DEVICE_INFO (60), answered per reference
9.5/9.6 with the fields it gives ([I]/[G] choices in ``harness.ble.protocol.assumptions``)."""

from __future__ import annotations

import collections

import pytest

from harness.api import AsyncHarborClient
from harness.ble import FirmwareCode, Radio, TowerClient, TowerRefused, find_tower
from harness.config import Settings
from harness.model import LockerStatus
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"

pytestmark = pytest.mark.anyio


async def _session(backend: Radio, api: AsyncHarborClient) -> TowerClient:
    found = await find_tower(backend, TOWER, timeout=5.0)
    client = TowerClient.over(backend, found.device, tower_id=TOWER, response_timeout=2.0)
    await client.connect()
    await client.start_session(api.create_session_token)
    return client


async def test_found_lockers_match_the_apis_available_lockers_per_type(settings: Settings, backend: Radio) -> None:
    """FOUND_LOCKERS' locker_type_map counts what the API lists as available, per locker type."""
    async with AsyncHarborClient(settings) as api:
        lockers = await api.list_lockers(TOWER)
        await api.reserve(TOWER, lockers[0].id, 300)
        expected = collections.Counter(
            locker.type.id for locker in await api.list_lockers(TOWER) if locker.status is LockerStatus.AVAILABLE
        )
        async with await _session(backend, api) as tower:
            assert await tower.find_available() == dict(expected)


async def test_open_available_over_ble_takes_a_free_locker_and_gives_it_back(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox
) -> None:
    """The tower opens the lowest free door of the type (not the reserved one before it), shows it open in
    CHECK_ALL_LOCKER_DOORS, holds it for the session's client once closed, and the token it kept opens it
    again to empty it."""
    async with AsyncHarborClient(settings) as api:
        await api.reserve(TOWER, 1401, 300)
        async with await _session(backend, api) as tower:
            opened = await tower.open_available(locker_type=1, locker_token=b"parcel-7", client_info="test")
            assert opened == 1402
            assert await tower.doors_open() == {2}
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
            assert await tower.doors_open() == frozenset()
        assert sandbox.world.states[1402].status is LockerStatus.OCCUPIED
        assert sandbox.world.states[1402].holder == "demo-provider"
        async with await _session(backend, api) as tower:
            again = await tower.open_available(match_available=False, match_token=b"parcel-7", leave_available=True)
            assert again == 1402
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
        assert sandbox.world.states[1402].status is LockerStatus.AVAILABLE


async def test_open_available_with_nothing_matching_is_refused(settings: Settings, backend: Radio) -> None:
    """No locker keeps the token asked for: SYS_LOCKER_NOT_FOUND (502), no door opens."""
    async with AsyncHarborClient(settings) as api, await _session(backend, api) as tower:
        with pytest.raises(TowerRefused) as refused:
            await tower.open_available(match_available=False, match_token=b"nobody's")
        assert refused.value.code is FirmwareCode.SYS_LOCKER_NOT_FOUND
        assert await tower.doors_open() == frozenset()


async def test_device_info_over_ble(settings: Settings, backend: Radio) -> None:
    """DEVICE_INFO names the tower as its advertisement does, with its firmware and locker count."""
    async with AsyncHarborClient(settings) as api, await _session(backend, api) as tower:
        info = await tower.device_info()
    assert (info.tower_id, info.tower_name, info.firmware_version, info.lockers) == (
        TOWER, "Virtual Tower 14", "1.2.3", 24,
    )  # fmt: skip
    assert info.uptime >= 0 and info.battery_mv > 0 and info.device_model and info.tower_serial
