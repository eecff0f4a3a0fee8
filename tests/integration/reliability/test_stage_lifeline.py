"""A run whose harness process is SIGKILLed (no chance to stop anything) leaves no pytest stage
running: the stage's lifeline (a pipe only the run writes to) closes, and the suite stops as at a
Ctrl-C, its fixtures giving back, instead of testing on to its end for nobody.

The stage's test sleeps writing nothing: nothing else (a broken output pipe) would end it sooner.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from harness.stopping import LIFELINE_ENV

CHILD = Path(__file__).with_name("stage_lifeline_run.py")
#: Seconds the stage's pytest may take to stop once its run is gone (it slept for 120).
STOPPED_WITHIN_S = 15.0


def _stage(pid: int) -> psutil.Process | None:
    """The pytest process the run ``pid`` started for its stage, once there is one."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if "pytest" in child.cmdline():
                    return child
    return None


def test_a_sigkilled_run_leaves_no_stage_running_and_the_stage_gives_back(tmp_path: Path) -> None:
    notes = tmp_path / "suite" / "notes.txt"
    env = {key: value for key, value in os.environ.items() if key != LIFELINE_ENV}
    run = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    stage: psutil.Process | None = None
    try:
        deadline = time.monotonic() + 60
        while stage is None or not notes.is_file():
            assert run.poll() is None, "the run ended before it was killed"
            assert time.monotonic() < deadline, "the stage's test did not start within 60 s"
            stage = stage or _stage(run.pid)
            time.sleep(0.05)  # a bounded poll of another process's progress
        run.send_signal(signal.SIGKILL)  # the run alone: the stage is in a session of its own
        run.wait(timeout=10)
        killed = time.monotonic()
        while stage.is_running() and stage.status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() - killed < STOPPED_WITHIN_S, "the stage's pytest outlived its run"
            time.sleep(0.05)  # a bounded poll of another process's end
        assert notes.read_text().splitlines() == ["held", "given back"], "the stage did not stop as at a Ctrl-C"
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        if stage is not None:
            with contextlib.suppress(psutil.Error):
                stage.kill()
