"""The stretches of a load run worth marking on its overview plot: when a virtual sandbox stalled.

A sandbox told to stall (``--sim-fault stall:seconds=1,every=10``) holds every request in the last
``seconds`` of each period. Before Locust starts, the stage reads where the stall's period stands
(``fault_timing`` in ``/_sim/state``) and anchors it to the wall clock; once the run's span is
known, the windows follow. Other targets have no such schedule: nothing is marked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from harness.config import Settings
from harness.load._sweep import LOOK_ERRORS

if TYPE_CHECKING:
    from harness.report import Window

__all__ = ["FaultClock", "read_fault_clock"]

#: Windows drawn at most: a stall every second over an hour is a hatched band, not 3,600 of them.
_MAX_WINDOWS: Final = 200
#: Seconds the look may take: it is for a plot, before a run that has its own budget.
_LOOK_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class FaultClock:
    """A stall's schedule on the wall clock: its length, its period, and when one of its periods began."""

    seconds: float
    every: float
    period_start_s: float  # epoch seconds

    def windows(self, start_s: float, end_s: float) -> list[Window]:
        """The stalls that overlap ``start_s`` to ``end_s`` (epoch seconds)."""
        # harness.report loads when the harness reports: the Locust processes import this package for LoadRecord.
        from harness.report import Window

        label = f"stall {self.seconds:g} s every {self.every:g} s"
        first = math.floor((start_s - self.period_start_s) / self.every)
        windows: list[Window] = []
        period = first
        while len(windows) < _MAX_WINDOWS:
            begin = self.period_start_s + period * self.every + (self.every - self.seconds)
            if begin >= end_s:
                break
            end = begin + self.seconds
            if end > start_s:
                windows.append(Window(max(begin, start_s), min(end, end_s), label))
            period += 1
        return windows


def read_fault_clock(settings: Settings) -> FaultClock | None:
    """The target's stall schedule, if it is a virtual sandbox told to stall; ``None`` otherwise or
    when it cannot be read (a plot marks less; the run goes on)."""
    from harness.api import guard_hooks
    from harness.sim import SimControl

    url = settings.target.api_url
    if url is None:
        return None
    try:
        with SimControl(url, timeout=_LOOK_TIMEOUT_S, event_hooks=guard_hooks(settings.wire_policy())) as control:
            asked = time.time()
            stall = control.state().get("fault_timing", {}).get("stall")
        if not isinstance(stall, dict):
            return None
        return FaultClock(float(stall["seconds"]), float(stall["every"]), asked - float(stall["phase_s"]))
    except LOOK_ERRORS:  # a look for a plot: never the reason a load run fails
        return None
