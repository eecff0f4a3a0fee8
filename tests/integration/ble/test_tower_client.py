"""TowerClient against the virtual tower: sessions, opening, doors, sync, refusals and faults."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from harness.api import AsyncHarborClient, Locker, LockerToken, TowerEventBatch
from harness.ble import (
    BleLinkError,
    FirmwareCode,
    Phase,
    Radio,
    SdkCode,
    TowerClient,
    TowerRefused,
    find_tower,
)
from harness.config import Settings
from harness.errors import ExitCode
from harness.model import LockerStatus, TowerId
from harness.sim import VirtualSandbox

TOWER = "0100000000000014"
OTHER_TOWER = "0100000000000175"

pytestmark = pytest.mark.anyio


async def _available(api: AsyncHarborClient, tower: str = TOWER, skip: int = 0) -> Locker:
    lockers = [locker for locker in await api.list_lockers(tower) if locker.status is LockerStatus.AVAILABLE]
    return sorted(lockers, key=lambda locker: locker.id)[skip]


async def _dropoff(api: AsyncHarborClient, tower: str = TOWER, skip: int = 0, duration: int = 600) -> LockerToken:
    locker = await _available(api, tower, skip)
    await api.reserve(tower, locker.id, 300)
    return await api.create_dropoff_token(tower, locker.id, duration, "")


def _uploader(api: AsyncHarborClient):  # type: ignore[no-untyped-def]
    async def upload(tower_id: TowerId, batches: Sequence[TowerEventBatch]) -> str:
        return await api.upload_tower_events(tower_id, batches)

    return upload


async def _connected(backend: Radio, tower: str = TOWER, **options: object) -> TowerClient:
    found = await find_tower(backend, tower, timeout=5.0)
    options.setdefault("response_timeout", 2.0)
    client = TowerClient.over(backend, found.device, tower_id=tower, **options)  # type: ignore[arg-type]
    await client.connect()
    return client


async def test_dropoff_and_pickup_over_ble_reach_the_api(settings: Settings, backend: Radio) -> None:
    """A drop-off and a pickup over BLE, with event sync, end with the API showing occupied, then available."""
    async with AsyncHarborClient(settings) as api:
        token = await _dropoff(api)
        async with await _connected(backend) as tower:
            assert tower.identity is not None and tower.identity.firmware_version == "1.2.3"
            await tower.start_session(api.create_session_token)
            assert await tower.open_with_token(token.payload, token.payload_auth, expect_locker=token.locker.id) == (
                token.locker.id
            )
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
            # Uplink off: the API shows the truth only once the tower's events are uploaded.
            assert (await api.get_locker(TOWER, token.locker.id)).status is LockerStatus.RENTED
            assert await tower.sync_events(_uploader(api)) >= 2
        assert (await api.get_locker(TOWER, token.locker.id)).status is LockerStatus.OCCUPIED

        pickup = await api.create_pickup_token(TOWER, token.locker.id, 600, "")
        async with await _connected(backend) as tower:
            await tower.start_session(api.create_session_token)
            await tower.open_with_token(pickup.payload, pickup.payload_auth)
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
            await tower.sync_events(_uploader(api))
        assert (await api.get_locker(TOWER, token.locker.id)).status is LockerStatus.AVAILABLE
        for phase in (Phase.CONNECT, Phase.DISCOVERY, Phase.SESSION, Phase.OPEN, Phase.DOOR, Phase.SYNC):
            assert tower.timer.last[phase] > 0, phase


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other_locker", FirmwareCode.AUTH_INVALID),
        ("expired", FirmwareCode.MSG_EXPIRED),
        ("other_tower", FirmwareCode.AUTH_TOWER_ID),
        ("forged", FirmwareCode.AUTH_SIGNATURE),
    ],
)
async def test_wrong_tokens_are_refused_with_the_firmware_code(
    settings: Settings, backend: Radio, sandbox: VirtualSandbox, case: str, code: FirmwareCode
) -> None:
    """Each wrong token is refused with its firmware code, the door stays shut, the session survives."""
    async with AsyncHarborClient(settings) as api:
        mine = await _dropoff(api)
        payload, auth, at_locker = mine.payload, mine.payload_auth, None
        if case == "other_locker":
            other = await _dropoff(api, skip=1)
            payload, auth, at_locker = other.payload, other.payload_auth, mine.locker.id
        elif case == "expired":
            sandbox.control.advance_clock(601)
        elif case == "other_tower":
            foreign = await _dropoff(api, OTHER_TOWER)
            payload, auth = foreign.payload, foreign.payload_auth
        else:
            auth = "00" * 32
        async with await _connected(backend) as tower:
            await tower.start_session(api.create_session_token)
            with pytest.raises(TowerRefused) as refused:
                await tower.open_with_token(payload, auth, at_locker=at_locker)
            assert refused.value.code is code
            assert refused.value.phase == "open"
            assert refused.value.exit_code is ExitCode.DEFECT
            assert not any(locker["door_open"] for locker in sandbox.control.state()["lockers"])
            assert tower.in_session


async def test_session_token_of_another_tower_is_refused(settings: Settings, backend: Radio) -> None:
    """A session token minted for tower 175 gets SESSION_ERROR AUTH_TOWER_ID from tower 14."""
    async with AsyncHarborClient(settings) as api:
        async with await _connected(backend) as tower:
            with pytest.raises(TowerRefused) as refused:
                await tower.start_session(lambda _t, version: api.create_session_token(OTHER_TOWER, version))
        assert refused.value.code is FirmwareCode.AUTH_TOWER_ID
        assert refused.value.session_level and refused.value.phase == "session"


async def test_door_commands_need_an_opened_locker(settings: Settings, backend: Radio) -> None:
    """CHECK_LOCKER_DOOR and REOPEN_LOCKER before any open answer SYS_LAST_OPEN (504)."""
    async with AsyncHarborClient(settings) as api, await _connected(backend) as tower:
        await tower.start_session(api.create_session_token)
        for command in (tower.door_open, tower.reopen):
            with pytest.raises(TowerRefused) as refused:
                await command()
            assert refused.value.code is FirmwareCode.SYS_LAST_OPEN


async def test_reopen_opens_the_dropoff_locker_again(settings: Settings, backend: Radio) -> None:
    """After a drop-off closes, REOPEN_LOCKER opens the same locker again with the session's token."""
    async with AsyncHarborClient(settings) as api:
        token = await _dropoff(api)
        async with await _connected(backend) as tower:
            await tower.start_session(api.create_session_token)
            await tower.open_with_token(token.payload, token.payload_auth)
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)
            assert await tower.reopen() == token.locker.id
            await tower.wait_door_closed(timeout=5.0, poll_interval=0.005)


async def test_busy_tower_is_asked_again(settings: Settings, backend: Radio, sandbox: VirtualSandbox) -> None:
    """SYS_SYNC_BUSY makes the client wait and ask again; the sync then completes."""
    async with AsyncHarborClient(settings) as api, await _connected(backend) as tower:
        await tower.start_session(api.create_session_token)
        sandbox.control.set_faults("ble_busy", count=2)
        moved = await tower.sync_events(_uploader(api), busy_delay=0.01)
        assert moved >= 1  # at least the BOOT event
        sandbox.control.set_faults("ble_busy", count=5)
        with pytest.raises(TowerRefused) as refused:
            await tower.sync_events(_uploader(api), busy_retries=2, busy_delay=0.01)
        assert refused.value.code is FirmwareCode.SYS_SYNC_BUSY


@pytest.mark.parametrize(
    ("fault", "code", "door_opened"),
    [
        ("ble_disconnect", SdkCode.NOT_CONNECTED_WITH_TOWER, False),
        ("ble_lost_notification", SdkCode.RESPONSE_TIMEOUT, True),
    ],
)
async def test_link_faults_are_infrastructure_failures(
    settings: Settings,
    backend: Radio,
    sandbox: VirtualSandbox,
    fault: str,
    code: SdkCode,
    door_opened: bool,
) -> None:
    """A dropped link or a lost reply is a BleLinkError (exit 4) naming the phase, never a product verdict."""
    async with AsyncHarborClient(settings) as api:
        token = await _dropoff(api)
        tower = await _connected(backend, response_timeout=0.3)
        await tower.start_session(api.create_session_token)
        sandbox.control.set_faults(fault, count=1)
        with pytest.raises(BleLinkError) as failed:
            await tower.open_with_token(token.payload, token.payload_auth)
        await tower.disconnect()
        assert failed.value.code is code
        assert failed.value.exit_code is ExitCode.INFRASTRUCTURE
        assert failed.value.phase == "open"
        opened_events = [e for e in sandbox.control.events() if e["data"]["source"] == "LOCKER_TOKEN_USED"]
        assert bool(opened_events) is door_opened
