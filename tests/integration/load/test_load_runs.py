"""``locker-harness load`` end to end: short, bounded Locust runs on loopback.

Locust always runs as a child process of the harness (never imported here). One virtual sandbox in
a thread serves the URL-target tests, reset before each; the first test lets the harness start
its own sandbox subprocess (``local``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.config import ENVIRONMENT
from harness.load import LoadRecord
from harness.sim import VirtualSandbox

pytestmark = pytest.mark.load

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
NO_HARBOR_ENV: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
DEMO = {"HARBOR_CLIENT_ID": "demo-provider", "HARBOR_CLIENT_SECRET": "demo-secret"}
FREE = {"available", "out_of_service"}
TOWER = "0100000000000014"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[VirtualSandbox]:
    with VirtualSandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # reports/ and .locker-harness/ land here


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["load", *args], env={**NO_HARBOR_ENV, **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def summary_of(root: Path) -> dict[str, Any]:
    (path,) = root.glob("reports/*/load/summary.json")
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def held(sandbox: VirtualSandbox) -> list[tuple[int, str, bool]]:
    """Lockers someone holds or whose door is open, from the control plane's snapshot."""
    return [
        (locker["id"], locker["status"], locker["door_open"])
        for locker in sandbox.control.state()["lockers"]
        if locker["status"] not in FREE or locker["door_open"]
    ]


def test_short_local_run_is_green_with_no_oracle_violation(tmp_path: Path) -> None:
    """A second of deliveries on the embedded sandbox: every step measured, no violation, the
    reports on disk, the histograms decodable, and nothing left held."""
    code, stdout, stderr = invoke(["--duration", "1", "--users", "4", "--weights", "delivery=1"])
    assert code == 0, stdout + stderr
    summary = summary_of(tmp_path)
    assert summary["violations"] == {"double_booking": 0, "unexpected_status": 0}
    assert summary["totals"]["requests"] > 50 and summary["totals"]["failures"] == 0
    steps = {row["name"] for row in summary["steps"]}
    assert {"list_lockers", "reserve", "dropoff_token", "open_for_dropoff", "close_after_pickup"} <= steps
    assert summary["flow_outcomes"]["completed"] > 0
    assert summary["cleanup"]["sweep"] == {"checked": True, "found": 0, "released": 0, "notes": [], "held_before": 0}
    record = LoadRecord.from_json({"schema": 1, "processes": 1, **_histograms_only(summary)})
    assert record.latencies.count("reserve") == next(r["requests"] for r in summary["steps"] if r["name"] == "reserve")
    run = next(tmp_path.glob("reports/*"))
    assert (run / "load" / "locust.html").stat().st_size > 0
    assert (run / "load" / "locust_stats.csv").is_file()
    assert "delivery (end to end)" in stdout and "p99 ms" in stdout


def _histograms_only(summary: dict[str, Any]) -> dict[str, Any]:
    empty: dict[str, Any] = {"steps": {}, "violations": {}, "examples": [], "errors": {}, "flows": {}}
    return {
        **empty,
        "cleanup": {},
        "cleanup_failures": [],
        "latencies": summary["histograms"]["steps"],
        "flow_latencies": summary["histograms"]["flows"],
    }


def test_an_impossible_gate_breaches_with_exit_3(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """A median of one microsecond cannot hold: the run exits 3 and the summary names the breach."""
    sandbox.control.reset()
    args = ["--target", sandbox.url, "--tower", TOWER, "-d", "1", "-u", "2", "--weights", "browsing=1"]
    args += ["--slo", "p50=0.001"]
    code, stdout, stderr = invoke(args, DEMO)
    assert code == 3, stdout + stderr
    summary = summary_of(tmp_path)
    assert summary["breaches"] == ["p50"] and summary["exit_code"] == 3
    assert "SLO BREACHED: p50" in stdout
    assert held(sandbox) == []


def test_double_booking_is_seen_by_the_oracle_and_fails_with_exit_1(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """With the sandbox's double_booking bug on, reserves of held lockers succeed: counted as
    violations of their own kind, and the run fails as a product defect."""
    sandbox.control.reset()
    sandbox.control.set_bugs(double_booking=True)
    args = ["--target", sandbox.url, "--tower", TOWER, "-d", "2", "-u", "8", "--weights", "contention=1"]
    code, stdout, stderr = invoke(args, DEMO)
    assert code == 1, stdout + stderr
    summary = summary_of(tmp_path)
    assert summary["violations"]["double_booking"] > 0
    assert any(example["kind"] == "double_booking" for example in summary["violation_examples"])
    assert "ORACLE VIOLATIONS" in stdout


def _locust_processes_under(folder: Path) -> list[int]:
    """Locust processes still running whose command line names ``folder`` (a run's reports)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "locust" in cmdline and any(str(folder) in part for part in cmdline):
            found.append(int(process.info["pid"]))
    return found


def test_worker_processes_stop_with_the_run(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """With --processes 2 the forked workers stop their users, report and quit with the master: no
    Locust process outlives the run, and nothing is left held."""
    sandbox.control.reset()
    # 3 s, not 1: forked workers on a loaded CI runner had measured nothing after 1 s (exit 4).
    args = ["--target", sandbox.url, "--tower", TOWER, "-d", "3", "-u", "4", "--processes", "2"]
    code, stdout, stderr = invoke(args, DEMO)
    assert code == 0, stdout + stderr
    assert summary_of(tmp_path)["workers"] == {"processes": 2, "expected": 2, "reported": 2}
    # A leaked worker runs forever: 15 s tells it from a quit that a busy machine made slow.
    deadline = time.monotonic() + 15
    while (left := _locust_processes_under(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.1)  # a worker's quit takes a moment after the master's
    for pid in left:  # never leave them running, even when the check fails
        with contextlib.suppress(psutil.NoSuchProcess):
            psutil.Process(pid).kill()
    assert left == [], "Locust workers outlived the run"
    assert held(sandbox) == []


def test_ctrl_c_mid_run_leaves_no_locker_held(sandbox: VirtualSandbox, tmp_path: Path) -> None:
    """SIGINT to ``locker-harness load`` in the middle of a run of every kind of user: Locust stops,
    every user gives back what it holds, the harness exits 130, and the sandbox shows no locker
    held and no door open (and no oracle fired: stopping mid-flow is not a defect)."""
    sandbox.control.reset()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HARBOR_")} | DEMO
    process = subprocess.Popen(
        [str(LOCKER_HARNESS), "load", "--target", sandbox.url, "--tower", TOWER, "-d", "60", "-u", "8"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not held(sandbox):  # wait until the users are mid-flow, holding lockers
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the load never got going"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, (stdout + stderr).decode()
    assert held(sandbox) == []
    summary = summary_of(tmp_path)
    assert summary["interrupted"] is True
    assert summary["cleanup"]["released"] > 0  # the users gave their holds back themselves...
    assert summary["cleanup"]["sweep"]["found"] == 0  # ...so the harness's sweep found nothing left
    assert summary["violations"] == {"double_booking": 0, "unexpected_status": 0}
