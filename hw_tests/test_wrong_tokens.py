"""Wrong tokens over BLE: each refused with the right firmware code, and no door opens.

"No door opens" is asked of the tower twice: CHECK_LOCKER_DOOR says no locker was opened in the
session (SYS_LAST_OPEN), and CHECK_ALL_LOCKER_DOORS shows no door open that was shut before the
wrong token was presented, anywhere in the tower.

Each test must fail when the tower accepts any token, and when the tower lets its own kind of wrong
token through: ``test_wrong_tokens_meta.py`` proves it against the sandbox's bug switches
(``accept_any_token``, ``token_opens_other_locker``, ``ignore_token_expiry``).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hw_rig import Rig, until

from harness.api import AsyncHarborClient, LockerToken
from harness.ble import FirmwareCode, TowerClient, TowerRefused

pytestmark = pytest.mark.anyio


async def _refused(tower: TowerClient, token: LockerToken, code: FirmwareCode, *, at_locker: int | None = None) -> None:
    with pytest.raises(TowerRefused) as refused:
        await tower.open_with_token(token.payload, token.payload_auth, at_locker=at_locker)
    assert refused.value.code is code, f"refused with {refused.value.name}, expected {code.name}"


async def _no_door_opened(rig: Rig, tower: TowerClient, before: frozenset[int], *tokens: LockerToken) -> None:
    """No locker was opened in this session (the tower says SYS_LAST_OPEN), no door of the tower stands
    open that was shut ``before`` (CHECK_ALL_LOCKER_DOORS), and on local every door of the tokens'
    lockers reads shut."""
    with pytest.raises(TowerRefused) as check:
        await tower.door_open()
    assert check.value.code is FirmwareCode.SYS_LAST_OPEN
    opened = await tower.doors_open() - before
    assert not opened, f"door(s) {sorted(opened)} of tower {tower.tower_id} opened after a wrong token"
    if rig.virtual:
        for token in tokens:
            assert not rig.sandbox.control.door_state(token.tower_id, token.locker.id)


async def _give_back(rig: Rig, api: AsyncHarborClient, *tokens: LockerToken) -> None:
    for token in tokens:
        await rig.release(api, token)


async def test_token_for_another_locker_is_refused(rig: Rig) -> None:
    """A genuine token for locker B presented for locker A is refused with AUTH_INVALID (201)."""
    async with rig.api() as api:
        mine = await rig.dropoff_token(api)
        other = await rig.dropoff_token(api)
        try:
            async with rig.session(api) as tower:
                before = await tower.doors_open()
                await _refused(tower, other, FirmwareCode.AUTH_INVALID, at_locker=mine.locker.id)
                await _no_door_opened(rig, tower, before, mine, other)
        finally:
            await _give_back(rig, api, mine, other)


async def test_expired_token_is_refused(rig: Rig) -> None:
    """A token past its expiry is refused with MSG_EXPIRED (107) while a later token keeps its locker
    rented: the virtual clock moves on local."""
    duration = 60 if rig.virtual else 3
    async with rig.api() as api:
        token = await rig.dropoff_token(api, duration=duration)
        try:
            # Without a live token the locker is freed when the first expires, and the tower refuses
            # it as stale (AUTH_INVALID) whether it checks expiry or not: this one keeps it rented.
            await api.create_dropoff_token(token.tower_id, token.locker.id, 600, "")
            if rig.virtual:
                rig.sandbox.control.advance_clock(duration + 1)
            else:
                expires: dt.datetime = token.expires.astimezone(dt.UTC)

                async def past_expiry() -> bool:
                    return dt.datetime.now(dt.UTC) > expires + dt.timedelta(seconds=2)

                await until(past_expiry, timeout=duration + 10, interval=0.25)
            async with rig.session(api) as tower:
                before = await tower.doors_open()
                await _refused(tower, token, FirmwareCode.MSG_EXPIRED)
                await _no_door_opened(rig, tower, before, token)
        finally:
            await _give_back(rig, api, token)


async def test_token_of_another_tower_is_refused(rig: Rig) -> None:
    """A token for a locker of another tower is refused with AUTH_TOWER_ID (206)."""
    other_tower = rig.config.other_tower
    if other_tower is None or other_tower == rig.tower_id:
        pytest.skip("needs a second tower: pass --hw-other-tower (HARBOR_HW_OTHER_TOWER); a one-tower bench has none")
    async with rig.api() as api:
        foreign = await rig.dropoff_token(api, tower_id=other_tower)
        try:
            async with rig.session(api) as tower:
                before = await tower.doors_open()
                await _refused(tower, foreign, FirmwareCode.AUTH_TOWER_ID)
                await _no_door_opened(rig, tower, before, foreign)
        finally:
            await _give_back(rig, api, foreign)
