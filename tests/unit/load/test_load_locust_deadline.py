"""``run_locust`` keeps within a deadline it is given: a Locust that would run on is stopped early
enough that its stop, even one that ends in a kill, is over by then."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.errors import InfrastructureError
from harness.load._locust import STOP_MAX_S, LocustFiles, run_locust


def test_locust_is_stopped_in_time_for_the_deadline_it_was_given(tmp_path: Path) -> None:
    """A child that would run a minute is stopped at once when the deadline leaves room only for its stop."""
    files = LocustFiles(tmp_path / "load")
    hangs = [sys.executable, "-c", "import time; time.sleep(60)"]
    finish_by = time.monotonic() + STOP_MAX_S + 0.5
    with pytest.raises(InfrastructureError, match=r"did not finish within [01] s"):
        run_locust(hangs, env={}, files=files, duration_s=30.0, finish_by=finish_by)
    assert time.monotonic() < finish_by - STOP_MAX_S + 5.0  # SIGTERM ended it: no grace was waited out


_LEAVES_A_WORKER = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:  # a forked worker that ignores SIGTERM and would go on loading the target
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(120)
    os._exit(0)
print(pid, flush=True)
sys.exit(0)  # the master ends at once, its worker left behind
"""


def test_nothing_of_locusts_session_outlives_the_run(tmp_path: Path) -> None:
    """A master that ended while a worker it forked goes on: the worker is killed with the group."""
    files = LocustFiles(tmp_path / "load")
    outcome = run_locust([sys.executable, "-c", _LEAVES_A_WORKER], env={}, files=files, duration_s=1.0)
    assert outcome.returncode == 0
    worker = int(files.log.read_text().split()[0])
    deadline = time.monotonic() + 10
    while _running(worker):
        assert time.monotonic() < deadline, f"Locust's worker {worker} outlived the run"
        time.sleep(0.02)  # a bounded poll of another process


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
