"""The rig's working parts, shared by its tests: where it points and the steps every test takes."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.api import AsyncHarborClient, LockerToken
from harness.ble import BleDoorOpener, PhaseTimer, Radio, TowerClient, find_tower
from harness.config import Settings
from harness.errors import HarborAPIError, HarnessError
from harness.ledger import LedgerHolds
from harness.metrics import Latencies
from harness.model import LockerStatus, TowerId

__all__ = ["LATENCIES_ENV", "Rig", "RigConfig", "until"]

#: Where a parent (``locker-harness run``) wants this process's BLE phase histograms: one JSON file
#: per process, ``{phase: encoded HdrHistogram}`` (``Latencies.encode()``), merged exactly there.
LATENCIES_ENV: Final = "LOCKER_HARNESS_LATENCIES_DIR"


@dataclass(frozen=True)
class RigConfig:
    """What the rig was asked to do, resolved once per session (conftest.py lists the options)."""

    cycles: int
    open_p95_ms: float
    door_p95_ms: float | None
    available_within: float
    response_timeout: float
    other_tower: TowerId | None
    sim_bugs: tuple[str, ...]
    #: Local only: sandbox fault profiles as ``(name, parameters)``, set before every test.
    sim_faults: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: Local only: the ATT MTU the virtual towers grant in this rig (``--hw-mtu``); None: the OS's.
    mtu: int | None = None
    #: Link failures a delivery survives by reconnecting and resuming (``--hw-retries``).
    retries: int = 0
    #: Local only: the sandbox's dialects (``--hw-sim-dialect``), set before every test.
    sim_dialects: tuple[str, ...] = ()


#: Why a meta-test that plants a bug switch skips off local.
SWITCHES_NEED_LOCAL = (
    "the bug-switch meta-tests need the embedded sandbox (local target): a bench, or a sandbox URL used "
    "as one, is never switched or reset"
)


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
    """Where the rig points: settings for the API client, the radio, the cleanup ledger's hook, and
    (local) the sandbox. ``latencies`` gathers the BLE phases the tests timed, for the run's report."""

    settings: Settings
    tower_id: TowerId
    backend: Radio
    config: RigConfig
    #: Every reservation and token the rig asks for is written here first (``locker-harness cleanup``).
    holds: LedgerHolds
    sandbox: Any = None  # harness.sim.VirtualSandbox on local, None on a bench
    latencies: Latencies = field(default_factory=Latencies)

    @property
    def virtual(self) -> bool:
        return self.sandbox is not None

    def api(self) -> AsyncHarborClient:
        return AsyncHarborClient(self.settings, holds=self.holds)

    def opener(self, api: AsyncHarborClient, timer: PhaseTimer | None = None) -> BleDoorOpener:
        return BleDoorOpener.for_api(
            api, self.backend, timer=timer, response_timeout=self.config.response_timeout, retries=self.config.retries
        )

    def keep(self, latencies: Latencies) -> None:
        """Add a test's phase timings to what this process reports (``write_latencies``)."""
        self.latencies.merge(latencies)

    def write_latencies(self, environ: dict[str, str] | None = None) -> Path | None:
        """Write the kept timings as ``hw-<pid>.json`` into ``$LOCKER_HARNESS_LATENCIES_DIR``, if set."""
        folder = (os.environ if environ is None else environ).get(LATENCIES_ENV, "").strip()
        if not folder or not self.latencies.names():
            return None
        path = Path(folder) / f"hw-{os.getpid()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")  # the parent reads *.json: never half a file
        partial.write_text(json.dumps(self.latencies.encode()), encoding="utf-8")
        partial.replace(path)
        return path

    async def dropoff_token(
        self, api: AsyncHarborClient, *, tower_id: TowerId | None = None, skip: int = 0, duration: int = 600
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
        """Give back a locker a test held (rented -> declined -> available; occupied: a pickup over BLE).

        Best effort, so a cleanup never hides the test's own verdict: a refusal is printed, not raised;
        the ledger keeps the locker's rows open then, for ``locker-harness cleanup``.
        """
        try:
            for releases in range(3):
                locker = await api.get_locker(token.tower_id, token.locker.id)
                if locker.status is LockerStatus.AVAILABLE:
                    return True
                if locker.status is LockerStatus.OCCUPIED:
                    return await self._pick_up(api, token)
                if releases == 2:
                    break
                await api.release_locker(token.tower_id, token.locker.id)
        except HarborAPIError as exc:
            print(f"cleanup: locker {token.locker.id} not given back: {exc}")
            return False
        print(f"cleanup: locker {token.locker.id} is still {locker.status.wire_name} after two releases")
        return False

    async def _pick_up(self, api: AsyncHarborClient, token: LockerToken) -> bool:
        """Take a test's item out of an occupied locker (a pickup token, opened over BLE); best effort."""
        locker = token.locker
        try:
            pickup = await api.create_pickup_token(token.tower_id, locker.id, 600, "hw rig cleanup")
            async with self.opener(api) as opener:
                await opener.open(locker, pickup)
                await opener.wait_closed(locker, timeout=120.0)
            await until(lambda: _shows_available(api, token), timeout=self.config.available_within)
        except (HarnessError, TimeoutError) as exc:
            print(f"cleanup: locker {locker.id} left occupied (the ledger keeps it for cleanup): {exc}")
            return False
        self.holds.returned(locker.id)
        return True


async def _shows_available(api: AsyncHarborClient, token: LockerToken) -> bool:
    return (await api.get_locker(token.tower_id, token.locker.id)).status is LockerStatus.AVAILABLE
