"""Fixtures for the BLE integration tests: one in-process sandbox with its virtual radio per module.

Every test starts from the seeded world (``reset``), no faults, no bugs, a fast person.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.ble import Radio, choose_backend
from harness.config import Settings, Target
from harness.redaction import Secret
from harness.sim import SimSettings, VirtualSandbox
from harness.sim.radio import LatencyModel, LinkSettings

TOWER = "0100000000000014"
OTHER_TOWER = "0100000000000175"
#: How long the virtual person keeps a door open in these tests (s).
DWELL = 0.02


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    """A sandbox whose towers report door events only through BLE sync (uplink off), as Harbor's do."""
    with VirtualSandbox(SimSettings(uplink=False)) as running:
        running.radio.start()
        yield running


@pytest.fixture(autouse=True)
def fresh(sandbox: VirtualSandbox) -> Iterator[None]:
    """The seeded world, no faults or bugs, the link without air time and with the default MTU and idle
    timeout, unless a test asks otherwise."""
    sandbox.world.reset()
    sandbox.radio.person.dwell = DWELL
    sandbox.radio.set_latency(LatencyModel.off())
    sandbox.radio.configure(mtu=LinkSettings().mtu, idle_timeout=LinkSettings().idle_timeout)
    yield
    sandbox.world.reset()


@pytest.fixture
def settings(sandbox: VirtualSandbox) -> Settings:
    return Settings(
        target=Target.local().running_at(sandbox.url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=TOWER,
    )


@pytest.fixture
def backend(sandbox: VirtualSandbox) -> Radio:
    return choose_backend("virtual", link=sandbox.radio.link)
