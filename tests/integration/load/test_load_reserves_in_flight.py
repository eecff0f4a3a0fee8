"""A cleanup that waits for other users' reserves of its locker is woken as the last one ends.

Contention users race for the same lockers. The record of reserves in flight kept one per locker,
so a second user's reserve hid the first's: a cleanup waiting on the first was never woken and sat
out a whole request timeout, which held every stop of a load run with lost answers for about
7 s. The greenlets run in a child process (``reserves_in_flight.py``: gevent stays out of pytest).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.load

CHILD = Path(__file__).with_name("reserves_in_flight.py")


def test_a_cleanup_waits_for_racing_reserves_only_until_the_last_ends() -> None:
    """Two racing reserves end after 0.1 s: the wait (bounded by 20 s) ends with them; a reserve that
    never ends still holds the wait to its bound, and is reported in flight."""
    done = subprocess.run([sys.executable, str(CHILD)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["still_in_flight"] is False and seen["left_after"] == []
    assert seen["waited_s"] < 10.0, seen  # it was the whole 20 s bound
    assert seen["stuck_still_in_flight"] is True and seen["stuck_waited_s"] >= 0.2
