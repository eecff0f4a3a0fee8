"""OPEN_AVAILABLE_LOCKER: the tower picks a free locker itself, the state it leaves, and the way back.

FIND_AVAILABLE_LOCKERS must count what the API lists as available per type; OPEN_AVAILABLE_LOCKER must
open a free locker of the type asked for (never one held by a reservation, which the test puts in its
way), only that door may stand open, the locker is held for the session's client once the door closes
(the API shows it occupied after the event sync), and the token the tower kept for it opens it again to
empty it: the API shows it available. ``test_open_available_meta.py`` proves the test goes red when the
tower opens a held locker (``open_available_opens_held``). The rules this relies on are [G]
(``assumptions.OPEN_AVAILABLE_RULES``): a bench tower that differs fails here and says where.
"""

from __future__ import annotations

import collections
import secrets

import pytest
from hw_rig import Rig, until

from harness.api import AsyncHarborClient, Locker
from harness.ble import TowerClient
from harness.errors import Conflict, HarborAPIError
from harness.model import LockerStatus

pytestmark = pytest.mark.anyio

#: How long a person may take to close a door (a bench tower has a real one).
DOOR_TIMEOUT = 120.0


async def _status(api: AsyncHarborClient, locker: Locker) -> LockerStatus:
    return (await api.get_locker(locker.tower_id, locker.id)).status


async def _close_and_sync(rig: Rig, api: AsyncHarborClient, tower: TowerClient) -> None:
    await tower.wait_door_closed(timeout=DOOR_TIMEOUT, poll_interval=0.02)
    await tower.sync_events(api.upload_tower_events)


async def test_open_available_locker_leaves_it_held_and_it_comes_back(rig: Rig) -> None:
    """OPEN_AVAILABLE_LOCKER opens a free locker of the type asked for and no other door; the locker is the
    session's (occupied) once closed, and opening it again with the token the tower kept frees it."""
    async with rig.api() as api:
        lockers = sorted(await api.list_lockers(rig.tower_id), key=lambda locker: locker.id)
        free = [locker for locker in lockers if locker.status is LockerStatus.AVAILABLE]
        by_type = collections.Counter(locker.type.id for locker in free)
        wanted = next((type_id for type_id, count in sorted(by_type.items()) if count >= 2), None)
        if wanted is None:
            pytest.skip(f"tower {rig.tower_id} has no locker type with two available lockers")
        in_the_way = next(locker for locker in free if locker.type.id == wanted)
        await api.reserve(rig.tower_id, in_the_way.id, 300)
        by_type[wanted] -= 1
        parcel = secrets.token_bytes(8)
        opened: Locker | None = None
        try:
            async with rig.session(api) as tower:
                assert await tower.find_available() == {t: n for t, n in sorted(by_type.items()) if n}
                doors_before = await tower.doors_open()
                opened_id = await tower.open_available(locker_type=wanted, locker_token=parcel, client_info="hw rig")
                opened = next((locker for locker in lockers if locker.id == opened_id), None)
                assert opened is not None, f"LOCKER_OPENED names locker {opened_id}, not one of tower {rig.tower_id}"
                assert opened.id != in_the_way.id, f"OPEN_AVAILABLE_LOCKER opened the reserved locker {opened.id}"
                assert opened in free and opened.type.id == wanted, f"locker {opened.id} was not a free type {wanted}"
                assert await tower.doors_open() - doors_before == {int(opened.name)}
                await _close_and_sync(rig, api, tower)

            async def occupied() -> bool:
                assert opened is not None
                return await _status(api, opened) is LockerStatus.OCCUPIED

            await until(occupied, timeout=rig.config.available_within)
            async with rig.session(api) as tower:
                again = await tower.open_available(match_available=False, match_token=parcel, leave_available=True)
                assert again == opened.id, f"the token the tower kept opened locker {again}, not {opened.id}"
                await _close_and_sync(rig, api, tower)

            async def available() -> bool:
                assert opened is not None
                return await _status(api, opened) is LockerStatus.AVAILABLE

            await until(available, timeout=rig.config.available_within)
        finally:
            await _release(api, in_the_way)
            if opened is not None and opened.id != in_the_way.id:
                await _empty(rig, api, opened)


async def _release(api: AsyncHarborClient, locker: Locker) -> None:
    """Give back the reservation put in the way; a door opened by mistake must close first (polled)."""

    async def released() -> bool:
        if await _status(api, locker) is LockerStatus.AVAILABLE:
            return True
        try:
            await api.release_locker(locker.tower_id, locker.id)
        except Conflict:
            return False  # the door is still open: a person has yet to close it
        return True

    try:
        await until(released, timeout=DOOR_TIMEOUT, interval=0.05)
    except (TimeoutError, HarborAPIError) as exc:  # the test's own verdict stands; say what is left
        print(f"cleanup: locker {locker.id} not given back: {exc}")


async def _empty(rig: Rig, api: AsyncHarborClient, locker: Locker) -> None:
    """Best effort after a failure: take back a locker the test left held (a pickup with a token)."""
    if await _status(api, locker) is not LockerStatus.OCCUPIED:
        return
    try:
        token = await api.create_pickup_token(locker.tower_id, locker.id, 600, "hw rig cleanup")
        async with rig.session(api) as tower:
            await tower.open_with_token(token.payload, token.payload_auth)
            await _close_and_sync(rig, api, tower)
    except Exception as exc:  # the test's own verdict stands; say what is left
        print(f"cleanup: locker {locker.id} left occupied: {exc}")
