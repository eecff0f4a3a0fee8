"""Fixtures for the served-radio tests: one virtual sandbox in a child process that serves its towers'
radio to other processes (HCI over TCP), shared by a module, as ``locker-harness sim`` runs it.

The link carries no air time here (``connection_interval`` 0, set through the control plane), so the
tests are about what crosses the process boundary, not about latency. Every test starts from the
seeded world (``POST /_sim/reset``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.config import Settings, parse_target
from harness.redaction import Secret
from harness.sim import SimControl, SimSettings, VirtualSandbox

TOWER = "0100000000000014"
OTHER_TOWER = "0100000000000175"


@pytest.fixture(scope="module")
def served() -> Iterator[VirtualSandbox]:
    """A sandbox child process with its radio served on a free loopback port, no air time."""
    sandbox = VirtualSandbox(SimSettings()).start_subprocess(radio=True)
    try:
        sandbox.control.configure_radio(connection_interval=0.0, jitter=0.0)
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def control(served: VirtualSandbox) -> Iterator[SimControl]:
    served.control.reset()
    yield served.control
    served.control.reset()


@pytest.fixture
def transport(control: SimControl) -> str:
    """The address the child announces on its control plane (``GET /_sim/radio``)."""
    address = control.radio()["transport"]
    assert isinstance(address, str)
    return address


@pytest.fixture
def settings(served: VirtualSandbox) -> Settings:
    """The child sandbox as a URL target, with its demo identity."""
    return Settings(
        target=parse_target(served.url),
        client_id="demo-provider",
        client_secret=Secret("demo-secret"),
        tower_id=None,
    )
