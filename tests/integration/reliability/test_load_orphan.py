"""A ``load`` whose harness process is SIGKILLed (no chance to stop anything) leaves no Locust
behind: Locust's lifeline (its stdin, a pipe only the harness writes to) closes, and the run
stops at once, its users giving back, instead of loading the target until its ``-t`` backstop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.config import ENVIRONMENT
from harness.sim import VirtualSandbox

from .test_sigterm import _held

pytestmark = pytest.mark.load

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
TOWER = "0100000000000014"
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}
#: Seconds every Locust process of the run may take to stop once its harness is gone.
REAPED_WITHIN_S = 10.0


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


def _locusts(pid: int) -> list[psutil.Process]:
    """The Locust processes the harness ``pid`` started (its master and the workers it forked)."""
    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in family:
        with contextlib.suppress(psutil.Error):
            if "locust" in child.cmdline():
                found.append(child)
    return found


def _alive(processes: list[psutil.Process]) -> list[int]:
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
    return alive


@pytest.mark.parametrize("processes", [1, 2])
def test_sigkilled_harness_leaves_no_locust_loading(sandbox: VirtualSandbox, tmp_path: Path, processes: int) -> None:
    """SIGKILL only the harness mid-run: every Locust process of the run is gone within seconds, the
    sandbox receives nothing more, and what the users held was given back."""
    sandbox.control.reset()
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT} | DEMO
    env["HARBOR_STATE_DIR"] = str(tmp_path / "state")
    command = [str(LOCKER_HARNESS), "load", "--target", sandbox.url, "--tower", TOWER, "-d", "120", "-u", "4"]
    command += ["--weights", "delivery=1", "--processes", str(processes)]
    harness = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    locusts: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        # Load is flowing once the users have reserved: their record of events grows.
        while len(sandbox.control.events()) < 20:
            assert harness.poll() is None, "the load ended before it was killed"
            assert time.monotonic() < deadline, "no load reached the sandbox within 60 s"
            time.sleep(0.05)  # a bounded poll of another process's progress
        locusts = _locusts(harness.pid)
        assert len(locusts) == (1 if processes == 1 else processes + 1), [p.cmdline() for p in locusts]
        harness.send_signal(signal.SIGKILL)  # the harness alone: Locust is in a session of its own
        harness.wait(timeout=10)
        killed = time.monotonic()
        while _alive(locusts):
            assert time.monotonic() - killed < REAPED_WITHIN_S, f"Locust outlived its harness: {_alive(locusts)}"
            time.sleep(0.05)  # a bounded poll of other processes' end
        quiet = len(sandbox.control.events())
        time.sleep(1.0)  # nothing may arrive in this second: the run has stopped loading
        assert len(sandbox.control.events()) == quiet
        assert _held(sandbox) == [], "the users did not give back what they held"
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        for pid in _alive(locusts):  # a failing run leaves nothing loading the shared machine
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
