"""The sweep: after Locust exits, find what the run's identity still holds and give it back.

The load users give back what they hold themselves (also when stopped mid-flow); the sweep is the
backstop that proves it. What it finds is reported as a harness defect (the users should have
released it), and released: through the control plane on a virtual sandbox (close the door, then
staff force to available), through ``release-locker`` on Harbor's sandbox (at most twice:
rented -> declined -> available).
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from harness.config import Settings
from harness.errors import HarnessError
from harness.load._summary import Sweep

__all__ = ["sweep_leftovers"]

_FREE: Final = frozenset({"available", "out_of_service"})


def sweep_leftovers(settings: Settings, *, control_plane: bool) -> Sweep:
    """What ``settings``' identity holds on the target after the run, given back; never raises."""
    sweep = Sweep()
    try:
        if control_plane:
            _through_control_plane(settings, sweep)
        else:
            _through_the_api(settings, sweep)
    except (HarnessError, httpx.HTTPError, KeyError, TypeError, ValueError) as error:
        sweep.notes.append(f"the sweep could not finish: {type(error).__name__}: {error}")
    return sweep


def _held(locker: dict[str, Any], holder: str | None) -> bool:
    return locker.get("holder") == holder and (locker.get("status") not in _FREE or bool(locker.get("door_open")))


def _through_control_plane(settings: Settings, sweep: Sweep) -> None:
    from harness.sim import ControlError, FirmwareRefusal, SimControl

    assert settings.target.api_url is not None
    with SimControl(settings.target.api_url) as control:
        leftovers = [locker for locker in control.state()["lockers"] if _held(locker, settings.client_id)]
        sweep.checked = True
        sweep.found = len(leftovers)
        for locker in leftovers:
            tower, locker_id = locker["tower_id"], locker["id"]
            try:
                if locker.get("door_open"):
                    control.close_door(tower, locker_id)
                control.force(tower, locker_id, "available")
                sweep.released += 1
                sweep.notes.append(f"locker {locker_id} was left {locker['status']}: forced available")
            except (ControlError, FirmwareRefusal) as error:
                sweep.notes.append(f"locker {locker_id} is still {locker['status']}: {error}")


def _through_the_api(settings: Settings, sweep: Sweep) -> None:
    from harness.api import HarborClient

    with HarborClient(settings) as client:
        leftovers = client.assigned_lockers()
        sweep.checked = True
        sweep.found = len(leftovers)
        for locker in leftovers:
            status = locker.status.wire_name
            try:
                for _ in range(2):  # rented -> declined -> available
                    if client.release_locker(locker.tower_id, locker.id).status.wire_name == "available":
                        break
                sweep.released += 1
                sweep.notes.append(f"locker {locker.id} was left {status}: released")
            except HarnessError as error:
                sweep.notes.append(f"locker {locker.id} is still {status}: {error}")
