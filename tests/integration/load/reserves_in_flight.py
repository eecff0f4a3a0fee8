"""Child process of ``test_load_reserves_in_flight.py``: users' reserves of one locker, in gevent.

gevent must not enter the pytest process, so the greenlets run here. Two users reserve locker 7,
one after the other, while a third (a cleanup) waits for them; it prints one JSON line: how long
the wait took and what it answered, and the same for a reserve that never ends.

    python reserves_in_flight.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "loadtests"))

import gevent
from load_process import ChangesInFlight  # found through the path above

LOCKER: Final = 7
#: The cleanup's bound: a request timeout, as the flows pass it.
TIMEOUT_S: Final = 20.0


def _waited(reserves: ChangesInFlight, timeout_s: float) -> tuple[float, bool]:
    started = time.monotonic()
    still = reserves.wait_for_others(LOCKER, 3, timeout_s)
    return time.monotonic() - started, still


def main() -> None:
    reserves = ChangesInFlight()
    reserves.begin(LOCKER, 1)
    cleanup = gevent.spawn(_waited, reserves, TIMEOUT_S)
    gevent.sleep(0.01)  # the cleanup waits on user 1's reserve
    reserves.begin(LOCKER, 2)  # a second user races for the same locker
    gevent.sleep(0.05)
    reserves.end(LOCKER, 1)
    gevent.sleep(0.05)
    reserves.end(LOCKER, 2)
    waited_s, still = cleanup.get(timeout=TIMEOUT_S + 5)
    left_after = reserves.others(LOCKER, 3)

    stuck = ChangesInFlight()
    stuck.begin(LOCKER, 1)  # its answer never comes
    stuck_s, stuck_still = _waited(stuck, 0.2)
    print(
        json.dumps(
            {
                "waited_s": waited_s,
                "still_in_flight": still,
                "left_after": sorted(left_after),
                "stuck_waited_s": stuck_s,
                "stuck_still_in_flight": stuck_still,
            }
        )
    )


if __name__ == "__main__":
    main()
