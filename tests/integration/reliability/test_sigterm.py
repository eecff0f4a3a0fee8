"""SIGTERM (what CI runners and containers send) stops ``load``, ``run`` and ``soak`` as Ctrl-C does:
what was held is given back, the evidence is written, the exit code is 143, and nothing of the
run goes on loading the target afterwards."""

from __future__ import annotations

import json
import os
import select
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
from harness.sim import SimControl, VirtualSandbox

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
TOWER = "0100000000000014"
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


def _held(sandbox: VirtualSandbox) -> list[int]:
    return [
        locker["id"]
        for locker in sandbox.control.state()["lockers"]
        if locker["status"] not in ("available", "out_of_service") or locker["door_open"]
    ]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key not in ENVIRONMENT} | DEMO
    env["HARBOR_STATE_DIR"] = str(tmp_path / "state")
    return subprocess.Popen(
        [str(LOCKER_HARNESS), *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _terminate_when(process: subprocess.Popen[str], ready: object, what: str) -> tuple[str, str, list[int]]:
    """SIGTERM once ``ready()`` holds (bounded poll); the output, and the pids of everything the
    command had started."""
    deadline = time.monotonic() + 60
    while not ready():  # type: ignore[operator]
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{what} never got going"
        time.sleep(0.05)  # a bounded poll of another process's progress
    family = [child.pid for child in _descendants(process.pid)]
    process.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return stdout, stderr, family


def _none_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_sigterm_on_load_gives_back_writes_evidence_and_stops_loading(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """Mid-run SIGTERM: exit 143, a summary and a history row, nothing held, and no Locust process left."""
    sandbox.control.reset()
    process = _start(["load", "--target", sandbox.url, "--tower", TOWER, "-d", "60", "-u", "8"], tmp_path)
    stdout, stderr, family = _terminate_when(process, lambda: bool(_held(sandbox)), "the load")
    assert process.returncode == ExitCode.TERMINATED, stdout + stderr
    assert "terminated (SIGTERM)" in stdout
    assert _none_alive(family) == [], "a Locust process outlived the harness"
    (summary_path,) = tmp_path.glob("reports/*/load/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["interrupted"] is True and summary["cleanup"]["sweep"]["found"] == 0
    assert summary["exit_code"] == ExitCode.TERMINATED, "the stage's summary disagrees with the run's exit code"
    with sqlite3.connect(tmp_path / "state" / "history.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    assert _held(sandbox) == []
    before = len(sandbox.control.events())
    time.sleep(1.0)  # nothing may arrive in this second: the run has stopped loading
    assert len(sandbox.control.events()) == before


def test_sigterm_on_run_stops_its_stages_and_exits_143(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """``run`` on a URL target, terminated in its load stage: exit 143, the run's summary, nothing held."""
    sandbox.control.reset()
    process = _start(
        ["run", "--target", sandbox.url, "--tower", TOWER, "--only", "smoke,load", "--budget", "300"], tmp_path
    )
    stdout, stderr, family = _terminate_when(process, lambda: bool(_held(sandbox)), "the run")
    assert process.returncode == ExitCode.TERMINATED, stdout + stderr
    assert _none_alive(family) == []
    (summary_path,) = tmp_path.glob("reports/*/summary.json")
    assert json.loads(summary_path.read_text())["exit_code"] == ExitCode.TERMINATED
    assert _held(sandbox) == []


def test_sigterm_on_soak_leaves_nothing_running(tmp_path: Path) -> None:
    """``soak`` terminated mid-way: exit 143, the figures so far written, every worker's locker given
    back, and its sandbox process (all its load lands there) gone."""
    process = _start(["soak", "-n", "100000", "-c", "4"], tmp_path)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "the soak never said where its sandbox is"
    first = process.stdout.readline()  # "soak: N deliveries, ... sandbox pid P at http://127.0.0.1:PORT"
    url = first.rsplit(" at ", 1)[-1].strip()
    with SimControl(url) as control:
        rest, stderr, family = _terminate_when(process, lambda: _busy(control), "the soak")
    stdout = first + rest
    assert process.returncode == ExitCode.TERMINATED, stdout + stderr
    assert _none_alive(family) == []
    assert "terminated (SIGTERM) after" in stdout
    (figures,) = tmp_path.glob("reports/soak-*.json")
    written = json.loads(figures.read_text())
    assert written["interrupted"] is True
    # Stopped while its workers held lockers: each gave back before the soak read its sandbox.
    assert written["lockers_left_held"] == [], "a worker's give-back was cut off"
    assert "every worker gave back what it held (nothing was left held)" in stdout


def _busy(control: SimControl) -> bool:
    """Whether the soak's workers hold lockers: it is mid-way."""
    return any(locker["status"] != "available" for locker in control.state()["lockers"] if locker["id"] < 1412)
