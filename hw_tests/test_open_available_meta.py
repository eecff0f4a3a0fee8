"""The OPEN_AVAILABLE_LOCKER rig test can fail: with the sandbox's ``open_available_opens_held`` bug on,
the tower opens the reserved locker the test put in its way, and the test goes red saying so."""

from __future__ import annotations

import pytest
import test_open_available
from hw_rig import SWITCHES_NEED_LOCAL, Rig

pytestmark = pytest.mark.anyio


async def test_open_available_test_fails_when_the_tower_opens_a_held_locker(rig: Rig) -> None:
    """With the bug on, the rig test fails on its held-locker assertion, and on nothing else."""
    if not rig.virtual:
        pytest.skip(SWITCHES_NEED_LOCAL)
    try:
        rig.sandbox.world.reset()
        rig.sandbox.control.set_bugs({"open_available_opens_held": True})
        with pytest.raises(AssertionError, match="opened the reserved locker"):
            await test_open_available.test_open_available_locker_leaves_it_held_and_it_comes_back(rig)
    finally:
        rig.sandbox.world.reset()
