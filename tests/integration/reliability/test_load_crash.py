"""A load run killed with SIGKILL mid-flight, then ``locker-harness cleanup``: every locker it touched is available."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.config import ENVIRONMENT
from harness.errors import ExitCode
from harness.ledger import LEDGER_FILE, Ledger
from harness.sim import VirtualSandbox

pytestmark = pytest.mark.load

TOWER = "0100000000000014"
LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
#: Rows in the ledger before the run is killed: well into the load, lockers in every state.
ROWS_BEFORE_KILL = 40


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    """The sandbox as its own process, as Locust needs it (demo identities)."""
    running = VirtualSandbox().start_subprocess()
    try:
        yield running
    finally:
        running.stop()


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT}
    return env | {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret", "HARBOR_TOWER_ID": TOWER}


def _rows(ledger: Path) -> int:
    try:
        with sqlite3.connect(ledger) as db:
            return int(db.execute("SELECT COUNT(*) FROM holds").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


def _kill_everything(root: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run and all it started, each in its process group (Locust runs in a session of its own)."""
    groups = {os.getpgid(root.pid)}
    for child in psutil.Process(root.pid).children(recursive=True):
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(child.pid))
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def test_sigkilled_load_run_is_cleaned_up(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """SIGKILL `locker-harness load` (and its Locust) mid-flight; `cleanup` then leaves every locker the run touched
    available with its door shut, and the ledger had open rows to clean."""
    sandbox.control.reset()
    ledger_path = tmp_path / ".locker-harness" / LEDGER_FILE
    command = [str(LOCKER_HARNESS), "load", "--target", sandbox.url, "--duration", "60", "--users", "8"]
    command += ["--weights", "delivery=1"]
    with subprocess.Popen(
        command, cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as load:
        deadline = time.monotonic() + 60
        while _rows(ledger_path) < ROWS_BEFORE_KILL:
            assert load.poll() is None, "the load run ended before it was killed"
            assert time.monotonic() < deadline, "the load run wrote no ledger rows within 60 s"
            time.sleep(0.05)  # the pace of a bounded poll of another process's file
        _kill_everything(load)
        load.wait(timeout=10)
    assert load.returncode == -signal.SIGKILL

    with Ledger(ledger_path) as ledger:
        rows = ledger.entries()
        left_open = ledger.entries(open_only=True)
    touched = {row.locker_id for row in rows if row.locker_id is not None}
    assert left_open, "the killed run left no open row: nothing for cleanup to prove"
    held = {x["id"] for x in sandbox.control.state()["lockers"] if x["status"] not in ("available", "out_of_service")}
    assert held, "the killed run held no locker: nothing for cleanup to prove"
    assert held <= touched

    done = subprocess.run(
        [str(LOCKER_HARNESS), "cleanup"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    state = {x["id"]: x for x in sandbox.control.state()["lockers"]}
    assert {n: (state[n]["status"], state[n]["door_open"]) for n in touched} == dict.fromkeys(
        touched, ("available", False)
    )
    with Ledger(ledger_path) as ledger:
        assert ledger.entries(open_only=True) == []
