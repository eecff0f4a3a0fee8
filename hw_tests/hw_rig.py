"""The rig's working parts, shared by its tests: where it points and the steps every test takes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from harness.api import AsyncHarborClient, LockerToken
from harness.ble import BleDoorOpener, PhaseTimer, Radio, TowerClient, find_tower
from harness.config import Settings
from harness.errors import HarborAPIError
from harness.model import LockerStatus

__all__ = ["LOCAL_OTHER_TOWER", "LOCAL_TOWER", "Rig", "RigConfig", "until"]

LOCAL_TOWER = "0100000000000014"
LOCAL_OTHER_TOWER = "0100000000000175"


@dataclass(frozen=True)
class RigConfig:
    """What the rig was asked to do, resolved once per session (conftest.py lists the options)."""

    cycles: int
    open_p95_ms: float
    door_p95_ms: float | None
    available_within: float
    response_timeout: float
    other_tower: str | None
    sim_bugs: tuple[str, ...]


async def until(probe: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.02) -> float:
    """Poll ``probe`` until it holds; the seconds it took. Bounded by ``timeout`` (then TimeoutError)."""
    start = time.monotonic()
    while True:
        if await probe():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise TimeoutError(f"not within {timeout:g} s")
        await asyncio.sleep(interval)  # the pace of the poll; the bound is ``timeout``


@dataclass
class Rig:
    """Where the rig points: settings for the API client, the BLE backend, and (local) the sandbox."""

    settings: Settings
    tower_id: str
    backend: Radio
    config: RigConfig
    sandbox: Any = None  # harness.sim.VirtualSandbox on local, None on a bench

    @property
    def virtual(self) -> bool:
        return self.sandbox is not None

    def api(self) -> AsyncHarborClient:
        return AsyncHarborClient(self.settings)

    def opener(self, api: AsyncHarborClient, timer: PhaseTimer | None = None) -> BleDoorOpener:
        return BleDoorOpener.for_api(api, self.backend, timer=timer, response_timeout=self.config.response_timeout)

    async def dropoff_token(
        self, api: AsyncHarborClient, *, tower_id: str | None = None, skip: int = 0, duration: int = 600
    ) -> LockerToken:
        """Reserve the ``skip``-th available locker of the tower and get a drop-off token for it."""
        tower = tower_id or self.tower_id
        lockers = sorted(
            (locker for locker in await api.list_lockers(tower) if locker.status is LockerStatus.AVAILABLE),
            key=lambda locker: locker.id,
        )
        if len(lockers) <= skip:
            raise AssertionError(f"tower {tower} has fewer than {skip + 1} available lockers")
        locker = lockers[skip]
        await api.reserve(tower, locker.id, 300)
        return await api.create_dropoff_token(tower, locker.id, duration, "")

    @asynccontextmanager
    async def session(self, api: AsyncHarborClient) -> AsyncIterator[TowerClient]:
        """Connected to the rig's tower with a session open; terminated and disconnected afterwards."""
        found = await find_tower(self.backend, self.tower_id, timeout=20.0)
        client = TowerClient.over(
            self.backend, found.device, tower_id=self.tower_id, response_timeout=self.config.response_timeout
        )
        async with client:
            await client.start_session(api.create_session_token)
            yield client

    async def release(self, api: AsyncHarborClient, token: LockerToken) -> bool:
        """Give back a locker a test rented without using it (rented -> declined -> available).

        Best effort, so a cleanup never hides the test's own verdict: a refusal is printed, not raised.
        """
        try:
            for _ in range(2):
                locker = await api.get_locker(token.tower_id, token.locker.id)
                if locker.status is LockerStatus.AVAILABLE:
                    return True
                await api.release_locker(token.tower_id, token.locker.id)
        except HarborAPIError as exc:
            print(f"cleanup: locker {token.locker.id} not given back: {exc}")
            return False
        return True
