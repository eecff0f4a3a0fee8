"""Test doubles for your own tests: the embedded virtual sandbox in this process, and its control plane.

    from harness.testing import local_target

    with local_target() as target:                      # a fresh sandbox on 127.0.0.1, two identities
        with HarborClient(target.settings) as api:
            lockers = api.list_lockers(target.settings.tower())
        target.control.set_bugs(double_booking=True)    # plant a defect your test must catch

The pytest plugin's fixtures (``virtual_sandbox``, ``harbor_target``, ``sim_control``) are built
on these. Importing this module is cheap: the sandbox (FastAPI, uvicorn) loads when one starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Protocol

from harness.config import DEFAULT_LOCAL_TOWER, Settings
from harness.model import TOKEN_DURATION, TowerId
from harness.targets import LocalTarget, embedded_sandbox, serves_control_plane

if TYPE_CHECKING:
    from harness.sim import SimControl, VirtualSandbox, Webhook

__all__ = [
    "LOCAL_OTHER_TOWER",
    "LOCAL_TOWER",
    "ClockControl",
    "InProcessControl",
    "LocalTarget",
    "free_every_hold",
    "fresh_world",
    "local_target",
    "serves_control_plane",
]

#: The seeded towers of the embedded sandbox (docs/design.md, "Seeded world").
LOCAL_TOWER: Final = DEFAULT_LOCAL_TOWER
LOCAL_OTHER_TOWER: Final = TowerId("0100000000000175")


@contextmanager
def local_target(
    settings: Settings | None = None,
    *,
    seed: int = 0,
    uplink: bool = True,
    bugs: Mapping[str, bool] | None = None,
    dialects: Iterable[str] = (),
    webhooks: Iterable[str | Webhook] = (),
) -> Iterator[LocalTarget]:
    """Start the virtual sandbox in a uvicorn thread with two throwaway identities; stop it after.

    ``settings`` (default: the defaults) keep their timeouts and folders; their target becomes
    the running sandbox and their identities the throwaway ones. ``bugs`` switches defects on;
    ``dialects`` make it answer as another plausible Harbor would (docs: bug switches, "Dialects");
    ``webhooks`` (loopback URLs, or ``harness.sim.Webhook(url, secret)``) receive every locker
    operation event as Harbor's webhooks, from the first one.
    The sandbox is ``harness.targets.embedded_sandbox``'s, as every command starts it.
    """
    with embedded_sandbox(
        settings, seed=seed, uplink=uplink, bugs=bugs or {}, dialects=dialects, webhooks=webhooks
    ) as target:
        yield target


def fresh_world(control: SimControl) -> None:
    """The seeded world again (clock offset 0, logs empty), keeping the bug switches, dialects and
    faults that were on.

    ``/_sim/reset`` turns them off; a run that planted a defect (``locker-harness run --sim-bug``) or
    speaks a dialect (``--sim-dialect``) must keep it across the suite's resets, or the suite would
    test another sandbox than the one asked for.
    """
    bugs = {name: True for name, on in control.bugs().items() if on}
    dialects = {name: True for name, on in control.dialects().items() if on}
    faults = control.faults()
    control.reset()
    if bugs:
        control.set_bugs(bugs)
    if dialects:
        control.set_dialects(dialects)
    for profile in faults.values():
        params = dict(profile)
        control.set_faults(str(params.pop("profile")), **params)


class ClockControl(Protocol):
    """What moves a sandbox's virtual clock and shows its model state: ``SimControl`` or ``InProcessControl``."""

    def advance_clock(self, seconds: float) -> float: ...

    def state(self) -> dict[str, Any]: ...


class InProcessControl:
    """``SimControl``'s clock and snapshot for a sandbox in this process, without a round trip.

    Tests that consult the sandbox before every generated request (thousands of them) save a
    loopback HTTP call each time; what they get is exactly what ``/_sim/state`` and
    ``/_sim/clock/advance`` answer.
    """

    def __init__(self, sandbox: VirtualSandbox) -> None:
        self._world = sandbox.world

    def advance_clock(self, seconds: float) -> float:
        with self._world.lock:
            return self._world.clock.advance(seconds)

    def state(self) -> dict[str, Any]:
        return self._world.snapshot()


#: Seconds that outlast every hold the REST API can create: the longest token (a week) and a margin.
_EVERY_HOLD: Final = float(TOKEN_DURATION[1] + 1)


def free_every_hold(control: ClockControl) -> float:
    """Move the virtual clock past every reservation and token the REST API can create; the new sandbox time.

    Switches, faults, ids and doors stay as they are: what only a door can change (an item in a
    locker) stays too. Cheaper than a reset, and it keeps a planted defect planted.
    """
    return control.advance_clock(_EVERY_HOLD)
