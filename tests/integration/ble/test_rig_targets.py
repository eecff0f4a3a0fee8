"""The hardware rig off the virtual radio: without a bench tower it skips and says why; asked for bleak
on a machine without Bluetooth it stops at once with one line. On the virtual radio with a link fault
before every test, it recovers where it may retry and otherwise exits 4 naming the phase.

Each case is a child ``pytest hw_tests`` with only the plugins the rig needs (the others cost seconds
of start-up and play no part in what is checked); the children run side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.errors import ExitCode

ROOT = Path(__file__).resolve().parents[3]
TOWER = "0100000000000014"
HAS_DBUS = any(Path(p).exists() for p in ("/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket"))
#: Where a D-Bus system bus exists Bluetooth may be reachable, and "no adapter" cannot be staged.
NEEDS_NO_BLUETOOTH = pytest.mark.skipif(HAS_DBUS, reason="a D-Bus system bus here: Bluetooth may be reachable")

#: case -> (environment on top of a clean one, what the skip reason or the one line must say)
CASES: dict[str, tuple[dict[str, str], str]] = {
    "harbor target without a tower": ({"HARBOR_TARGET": "sandbox"}, "no bench tower for target sandbox"),
    "tower but no adapter, radio not named": (
        {"HARBOR_TARGET": "sandbox", "HARBOR_TOWER_ID": TOWER},
        "no bench tower reachable from here: no Bluetooth adapter is reachable",
    ),
    "no radio": ({"HARBOR_BLE": "none"}, "HARBOR_BLE=none"),
    "virtual radio off local": (
        {"HARBOR_TARGET": "sandbox", "HARBOR_BLE": "virtual", "HARBOR_TOWER_ID": TOWER},
        "the virtual radio exists on local and on a sandbox URL that serves it",
    ),
    "bleak named, no adapter": ({"HARBOR_BLE": "bleak"}, "no Bluetooth adapter is reachable"),
    "an MTU out of range": ({"HARBOR_HW_MTU": "23,500"}, "each MTU must be 23..247"),
    "supervision timeouts": (
        {
            "HARBOR_HW_MTU": "247",
            "HARBOR_HW_SIM_FAULT": "ble_supervision_timeout:count=1",
            "HARBOR_HW_RETRIES": "1",
        },
        "hw rig: could not test",
    ),
}


@dataclass(frozen=True)
class Finished:
    returncode: int
    output: str
    seconds: float


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Finished]]:
    """Every case's child run, started together and awaited (bounded by a timeout each)."""
    state = tmp_path_factory.mktemp("state")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HARBOR_", "LOCKER_HARNESS_"))}
    command = [sys.executable, "-m", "pytest", "hw_tests", "-q", "-rfEs", "-p", "no:cacheprovider"]
    command += ["-p", "anyio", "-p", "pytest_timeout", "-p", "harness.pytest_plugin"]
    started = time.monotonic()
    children = {
        case: subprocess.Popen(
            command,
            cwd=ROOT,
            env={**clean, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "HARBOR_STATE_DIR": str(state), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for case, (env, _) in CASES.items()
    }

    def finish(child: subprocess.Popen[str]) -> Finished:
        # Each child's own time: awaited side by side, so one child's end is not held up by another's.
        output, _ = child.communicate(timeout=60)
        return Finished(child.returncode, output, time.monotonic() - started)

    try:
        with ThreadPoolExecutor(max_workers=len(children)) as pool:
            futures = {case: pool.submit(finish, child) for case, child in children.items()}
            results = {case: future.result() for case, future in futures.items()}
        yield results
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)


@pytest.mark.parametrize(
    "case",
    [
        "harbor target without a tower",
        pytest.param("tower but no adapter, radio not named", marks=NEEDS_NO_BLUETOOTH),
        "no radio",
        "virtual radio off local",
    ],
)
def test_rig_without_a_bench_tower_skips_with_the_reason(finished: dict[str, Finished], case: str) -> None:
    """No bench tower to reach (no tower id, no adapter, no radio, or the virtual one off local): every
    rig test is skipped with the reason, and the run exits 0."""
    done = finished[case]
    reason = CASES[case][1]
    assert done.returncode == ExitCode.OK, done.output
    assert "passed" not in done.output and "failed" not in done.output, done.output
    skipped = [line for line in done.output.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all(reason in line for line in skipped), done.output


@NEEDS_NO_BLUETOOTH
def test_rig_with_bleak_and_no_bluetooth_stops_at_once_in_one_line(finished: dict[str, Finished]) -> None:
    """`HARBOR_BLE=bleak pytest hw_tests` without an adapter exits 4 within seconds, one line, no traceback."""
    done = finished["bleak named, no adapter"]
    assert done.returncode == ExitCode.INFRASTRUCTURE, done.output
    assert "Traceback" not in done.output and "FileNotFoundError" not in done.output, done.output
    lines = [line for line in done.output.splitlines() if CASES["bleak named, no adapter"][1] in line]
    assert len(lines) == 1, done.output
    assert done.seconds < 30, done.seconds


def test_rig_with_an_mtu_out_of_range_is_a_usage_error(finished: dict[str, Finished]) -> None:
    """`HARBOR_HW_MTU=23,500` stops the rig before any test with one line and exit 2."""
    done = finished["an MTU out of range"]
    assert done.returncode == ExitCode.USAGE, done.output
    assert "Traceback" not in done.output
    assert len([line for line in done.output.splitlines() if CASES["an MTU out of range"][1] in line]) == 1


def test_rig_with_link_faults_recovers_or_exits_4_naming_the_phase(finished: dict[str, Finished]) -> None:
    """A supervision timeout on every test's first in-session command: the deliveries (one retry allowed)
    recover and pass; the tests that talk to the tower directly cannot test and fail; the rig exits 4 with
    one line naming the phase, and no test leaves a locker held (the rig's teardown checks)."""
    done = finished["supervision timeouts"]
    assert done.returncode == ExitCode.INFRASTRUCTURE, done.output
    [line] = [line for line in done.output.splitlines() if line.startswith("hw rig: could not test")]
    assert "phase=" in line, line
    failed = [line for line in done.output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert failed and not any("test_open_latency" in line or "return_to_available" in line for line in failed)
    assert "cleanup ledger does not know of" not in done.output
