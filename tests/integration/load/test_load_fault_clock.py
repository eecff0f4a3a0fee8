"""The load stage reads a virtual sandbox's stall schedule before Locust starts, to mark it on the overview."""

from __future__ import annotations

import time

from harness.config import Settings, Target
from harness.load._windows import read_fault_clock
from harness.redaction import Secret
from harness.sim import SimSettings, VirtualSandbox


def test_the_stall_schedule_is_read_from_the_sandbox_and_anchored_to_the_wall_clock() -> None:
    """A sandbox told to stall 1 s every 4 s: the clock read back has that length and period, and its next
    window is the one the sandbox will hold requests in; without a stall, or not a sandbox, nothing is read."""
    with VirtualSandbox(SimSettings()) as sandbox:
        settings = Settings(
            target=Target.local().running_at(sandbox.url),
            client_id="demo-provider",
            client_secret=Secret("demo-secret"),
        )
        assert read_fault_clock(settings) is None
        sandbox.control.set_faults("stall", seconds=1, every=4)
        set_at = time.time()
        clock = read_fault_clock(settings)
        assert clock is not None and (clock.seconds, clock.every) == (1.0, 4.0)
        assert abs(clock.period_start_s - set_at) < 0.5  # the period began when the stall was set
        [window] = clock.windows(set_at, set_at + 4.0)
        assert abs(window.start_s - (clock.period_start_s + 3.0)) < 1e-6
    gone = Settings(target=Target.local().running_at("http://127.0.0.1:9"), client_id="x", client_secret=Secret("y"))
    assert read_fault_clock(gone) is None  # nothing answers: a plot marks less, nothing fails
