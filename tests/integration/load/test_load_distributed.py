"""Distributed load as a first-class mode, and abort gates: real processes on loopback.

``locker-harness load --master`` and two ``locker-harness load --worker`` run as separate
processes, as they would on three hosts (only loopback here), each with nothing but the checkout
and the credentials in its environment. The master's run must be a run like any other: gates,
summaries, JUnit, plots, a history row, the exit code, and ``report``/``compare`` accepting it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.load

LOCKER_HARNESS = Path(sys.executable).with_name("locker-harness")
CREDENTIALS = {"HARBOR_CLIENT_ID": "distributed-provider", "HARBOR_CLIENT_SECRET": "distributed-secret-4f1c9e"}
#: The longest any of these processes may take: a run of seconds, its start, stop, sweep and reports.
PROCESS_TIMEOUT_S = 150


def _environment() -> dict[str, str]:
    """The test's environment without any HARBOR_* of the machine's, plus the run's credentials."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HARBOR_")} | CREDENTIALS


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(LOCKER_HARNESS), *args],
        cwd=cwd,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    """Each process's exit code and output, all of them ended (killed if one overran)."""
    results = []
    deadline = time.monotonic() + PROCESS_TIMEOUT_S
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            results.append((process.returncode, stdout + stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def _harness(args: list[str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run(
        [str(LOCKER_HARNESS), *args], cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_a_master_and_two_workers_give_a_whole_run_and_exit_1_on_double_booking(tmp_path: Path) -> None:
    """Master and workers as separate processes over loopback, the sandbox's double_booking bug on: the
    master exits 1 with every artefact of a one-host run present (both workers' records merged), the
    workers exit 0, the run is in the history, and ``report`` and ``compare`` take it."""
    port = _free_port()
    master = _start(
        ["load", "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--worker-wait", "60", "-d", "3", "-u", "6", "--sim-bug", "double_booking",
         # Contention users only, on two lockers of each worker's share: a worker's own users collide at once
         # (each worker reserves only its share, so its double_booking oracle knows every hold it meets).
         "--weights", "contention=1", "--contention-lockers", "2"],
        tmp_path,
    )  # fmt: skip
    workers = [
        _start(["load", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)], tmp_path / name)
        for name in ("w1", "w2")
        if (tmp_path / name).mkdir() is None  # each worker in a folder of its own, as on its own host
    ]
    (master_code, master_output), *worked = _finish([master, *workers])

    assert master_code == 1, master_output
    assert "double_booking" in master_output and "gates (✓ held" in master_output
    for code, output in worked:
        assert code == 0, output
        assert "the master ended the run" in output
        assert CREDENTIALS["HARBOR_CLIENT_SECRET"] not in output
    assert CREDENTIALS["HARBOR_CLIENT_SECRET"] not in master_output

    (run_dir,) = (tmp_path / "reports").iterdir()
    for artefact in ("summary.json", "summary.md", "junit/load.xml", "plots/overview.svg", "plots/index.html",
                     "load/summary.json", "load/locust.html", "load/locust_stats.csv", "load/record.json",
                     "allure-results/environment.properties"):  # fmt: skip
        assert (run_dir / artefact).is_file(), artefact
    load: dict[str, Any] = json.loads((run_dir / "load" / "summary.json").read_text(encoding="utf-8"))
    assert load["workers"] == {"processes": 2, "expected": 2, "reported": 2}
    assert load["exit_code"] == 1 and load["violations"]["double_booking"] > 0
    assert load["plan"]["workers"] == 2 and {gate["gate"] for gate in load["gates"]} >= {"failure_ratio"}
    run: dict[str, Any] = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert run["exit_code"] == 1 and run["stages"][0]["gates"]
    assert "### Gates" in (run_dir / "summary.md").read_text(encoding="utf-8")
    assert "double_booking" in (run_dir / "junit" / "load.xml").read_text(encoding="utf-8")

    code, output = _harness(["history", "--json"], tmp_path)
    assert code == 0, output
    [row] = [row for row in json.loads(output)["runs"] if row["run_id"] == run_dir.name]
    assert row["exit_code"] == 1
    code, output = _harness(["report", run_dir.name], tmp_path)
    assert code == 0 and "double_booking" in output, output
    code, output = _harness(["report", str(run_dir / "load" / "record.json")], tmp_path)
    assert code == 0 and run_dir.name in output, output
    code, output = _harness(["compare", run_dir.name, run_dir.name, "--json"], tmp_path)
    assert code == 0, output
    assert json.loads(output)["before"]["run_id"] == run_dir.name


def test_a_master_whose_workers_never_come_could_not_test(tmp_path: Path) -> None:
    """No worker within --worker-wait: exit 4 in one line that says how to start them, evidence kept."""
    code, output = _harness(
        ["load", "--master", "--expect-workers", "1", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(_free_port()), "--worker-wait", "2", "-d", "2"],
        tmp_path,
    )  # fmt: skip
    assert code == 4, output
    assert "fewer than 1 Locust worker(s) connected within 2 s" in output
    assert "locker-harness load --worker --master-host" in output
    (run_dir,) = (tmp_path / "reports").iterdir()
    assert (run_dir / "load" / "summary.json").is_file() and (run_dir / "summary.md").is_file()


def test_an_abort_gate_stops_the_run_early_with_exit_3_and_says_when(tmp_path: Path) -> None:
    """``--slo p99=0.001:abort`` on a 60-second run: it stops within seconds, the users give back what
    they held, exit 3, and the summary says which gate stopped it and when."""
    started = time.monotonic()
    code, output = _harness(["load", "-d", "60", "-u", "4", "--slo", "p99=0.001:abort"], tmp_path)
    elapsed = time.monotonic() - started
    assert code == 3, output
    assert "ABORTED: aborted" in output and "p99" in output
    assert elapsed < 45, f"the abort did not stop the 60 s run early ({elapsed:.0f} s)"
    (path,) = tmp_path.glob("reports/*/load/summary.json")
    summary: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert summary["aborted"]["gate"] == "p99" and summary["aborted"]["after_s"] < 30
    assert summary["duration_s"] < 30
    assert summary["cleanup"]["sweep"]["found"] == 0 and summary["exit_code"] == 3
    assert summary["reason"].startswith("aborted ")
