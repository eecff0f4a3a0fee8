"""The sweep: after Locust exits, however it ended, find what the load run left held and give it back.

The load users give back what they hold themselves (also when stopped mid-flow); the sweep is the
backstop that proves it. Before Locust starts, the stage looks at what the run's identity already
holds (``held_lockers``): an earlier stage's leftover or another client of the same identity on a
shared sandbox is not the load users' doing, so the sweep leaves it as it was and says so. What
the load run left is reported as a harness defect (the users should have released it), and
released: through the control plane on a virtual sandbox (close the door, then staff force to
available), through ``release-locker`` on Harbor's sandbox (at most twice: rented -> declined ->
available).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import httpx

from harness.config import Settings
from harness.errors import HarnessError
from harness.load._summary import Sweep
from harness.model import TowerId

__all__ = ["LOOK_ERRORS", "HeldLocker", "held_lockers", "sweep_leftovers"]

_FREE: Final = frozenset({"available", "out_of_service"})
#: What a look at the target may meet (unreachable, refused, an answer not as expected).
LOOK_ERRORS: Final = (HarnessError, httpx.HTTPError, KeyError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class HeldLocker:
    """A locker the identity holds, as one look saw it: the same key before and after the run
    means the run never changed it (``tenancy`` is the sandbox's epoch; ``None`` through the API)."""

    tower_id: TowerId
    locker_id: int
    status: str
    tenancy: int | None = None
    door_open: bool = False


def held_lockers(settings: Settings, *, control_plane: bool) -> frozenset[HeldLocker]:
    """What ``settings``' identity holds on the target now; raises what the look met."""
    if control_plane:
        from harness.api import guard_hooks
        from harness.sim import SimControl

        assert settings.target.api_url is not None
        with SimControl(settings.target.api_url, event_hooks=guard_hooks(settings.wire_policy())) as control:
            return frozenset(
                HeldLocker(
                    TowerId(locker["tower_id"]),  # a control plane's answer: parsed where it enters
                    locker["id"],
                    locker["status"],
                    locker["epoch"],
                    bool(locker["door_open"]),
                )
                for locker in control.state()["lockers"]
                if _held(locker, settings.client_id)
            )
    from harness.api import HarborClient

    with HarborClient(settings) as client:
        return frozenset(
            HeldLocker(locker.tower_id, locker.id, locker.status.wire_name) for locker in client.assigned_lockers()
        )


def sweep_leftovers(
    settings: Settings,
    *,
    control_plane: bool,
    before: frozenset[HeldLocker] = frozenset(),
    deadline: float | None = None,
) -> Sweep:
    """What the load run left held on the target, given back; never raises.

    A locker in ``before`` and unchanged since is not the run's: counted in ``held_before`` and
    left as it was. ``deadline`` (``time.monotonic()``): no release starts after it; the look
    always happens, since without it nothing is known.
    """
    sweep = Sweep()
    try:
        held = held_lockers(settings, control_plane=control_plane)
        sweep.checked = True
        leftovers = sorted(held - before, key=lambda locker: (locker.tower_id, locker.locker_id))
        sweep.found = len(leftovers)
        sweep.held_before = len(held & before)
        if control_plane:
            _through_control_plane(settings, leftovers, sweep, deadline)
        else:
            _through_the_api(settings, leftovers, sweep, deadline)
    except Exception as error:  # it runs while the stage's own error may be on its way out: never mask it
        sweep.notes.append(f"the sweep could not finish: {type(error).__name__}: {error}")
    return sweep


def _held(locker: dict[str, Any], holder: str | None) -> bool:
    return locker.get("holder") == holder and (locker.get("status") not in _FREE or bool(locker.get("door_open")))


def _out_of_time(deadline: float | None, locker: HeldLocker, sweep: Sweep) -> bool:
    if deadline is None or time.monotonic() < deadline:
        return False
    sweep.notes.append(f"locker {locker.locker_id} is still {locker.status}: the time budget ran out first")
    return True


def _through_control_plane(
    settings: Settings, leftovers: list[HeldLocker], sweep: Sweep, deadline: float | None
) -> None:
    from harness.api import guard_hooks
    from harness.sim import ControlError, FirmwareRefusal, SimControl

    assert settings.target.api_url is not None
    with SimControl(settings.target.api_url, event_hooks=guard_hooks(settings.wire_policy())) as control:
        for locker in leftovers:
            if _out_of_time(deadline, locker, sweep):
                continue
            try:
                if locker.door_open:
                    control.close_door(locker.tower_id, locker.locker_id)
                control.force(locker.tower_id, locker.locker_id, "available")
                sweep.released += 1
                sweep.notes.append(f"locker {locker.locker_id} was left {locker.status}: forced available")
            except (ControlError, FirmwareRefusal) as error:
                sweep.notes.append(f"locker {locker.locker_id} is still {locker.status}: {error}")


def _through_the_api(settings: Settings, leftovers: list[HeldLocker], sweep: Sweep, deadline: float | None) -> None:
    from harness.api import HarborClient

    with HarborClient(settings) as client:
        for locker in leftovers:
            if _out_of_time(deadline, locker, sweep):
                continue
            try:
                status = locker.status
                for _ in range(2):  # rented -> declined -> available
                    status = client.release_locker(locker.tower_id, locker.locker_id).status.wire_name
                    if status == "available":
                        break
            except HarnessError as error:
                sweep.notes.append(f"locker {locker.locker_id} is still {locker.status}: {error}")
                continue
            if status == "available":
                sweep.released += 1
                sweep.notes.append(f"locker {locker.locker_id} was left {locker.status}: released")
            else:
                sweep.notes.append(
                    f"locker {locker.locker_id} was left {locker.status}: released twice, still {status}"
                )
