"""A child stage stopped at the budget's end or by Ctrl-C gets to tear down, and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.run._child import stop_child

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process groups from /proc")

#: A suite whose one test holds something (its fixture) and hangs; a grandchild that ignores SIGINT
#: shares its process group. The fixture's teardown leaves the marker that it gave back.
_SUITE = """
import os, pathlib, subprocess, sys, threading
import pytest

HERE = pathlib.Path(__file__).parent
IGNORES_SIGINT = "import signal, threading; signal.signal(signal.SIGINT, signal.SIG_IGN); threading.Event().wait(120)"


@pytest.fixture
def held():
    straggler = subprocess.Popen(
        [sys.executable, "-c", IGNORES_SIGINT],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    (HERE / "held.json").write_text(f'{{"group": {os.getpgid(0)}, "straggler": {straggler.pid}}}')
    yield
    (HERE / "given-back").write_text("given back")


def test_hangs(held):
    threading.Event().wait(120)  # until the harness stops the stage
"""

#: The harness's side, as ``locker-harness run`` is: one pytest stage, run by ``execute``. The stage
#: runs a bare pytest (no plugins) so it reaches its test within a fraction of the budget.
_DRIVER = """
import dataclasses, json, signal, sys
from pathlib import Path

from harness.config import Settings
from harness.redaction import Redactor
from harness.report import TargetInfo
from harness.run import PytestStage, execute, new_context

# Whoever started this test may have left SIGINT ignored, which exec would pass on to the stage.
signal.signal(signal.SIGINT, signal.default_int_handler)
suite, reports, budget_s = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])


class BareSuite(PytestStage):
    def command(self, context):
        return [sys.executable, "-m", "pytest", *self.paths, "-q", "-p", "no:cacheprovider"]

    def environment(self, context):
        return {**super().environment(context), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


settings = dataclasses.replace(Settings(), reports_dir=reports)
context = new_context(settings=settings, target=TargetInfo("local"), redactor=Redactor(), budget_s=budget_s)
print("running", flush=True)
run = execute([BareSuite("contract", ("test_held.py",), root=suite)], context)
[stage] = run.stages
error = stage.failures[0].error_type if stage.failures else ""
print(json.dumps({"interrupted": run.interrupted, "verdict": stage.verdict.value, "error": error}), flush=True)
sys.exit(130 if run.interrupted else int(run.exit_code))
"""

#: Seconds the driver's stage may run before its budget ends it: bare pytest starts in ~0.3 s.
_BUDGET_S = 5.0


def _live_members(group: int) -> list[int]:
    """Processes of ``group`` still running (a zombie waiting for its reaper runs nothing)."""
    members: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _wait_for(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _suite(tmp_path: Path) -> Path:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text("[pytest]\n")  # the suite's own root, not the checkout's configuration
    (suite / "test_held.py").write_text(_SUITE)
    return suite


@pytest.mark.parametrize("ending", ["budget", "ctrl-c"])
def test_a_stopped_pytest_stage_tears_down_and_leaves_no_process(tmp_path: Path, ending: str) -> None:
    """A pytest stage ended by the budget or by Ctrl-C at the terminal runs its fixtures' teardown,
    and no process of its group (not even one that ignores SIGINT) outlives the stage."""
    suite = _suite(tmp_path)
    budget_s = _BUDGET_S if ending == "budget" else 120.0
    # Its own session, so the SIGINT below is a terminal's Ctrl-C to the harness's foreground group.
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(suite), str(tmp_path / "reports"), repr(budget_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for(suite / "held.json", timeout_s=60.0)
        if ending == "ctrl-c":
            os.killpg(driver.pid, signal.SIGINT)
        stdout, stderr = driver.communicate(timeout=60.0)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()
    held = json.loads((suite / "held.json").read_text())

    assert (suite / "given-back").read_text() == "given back", stderr
    assert _live_members(held["group"]) == []
    assert held["group"] != driver.pid  # the stage ran in a group of its own, not the harness's
    outcome = json.loads(stdout.splitlines()[-1])
    if ending == "ctrl-c":
        assert (driver.returncode, outcome["interrupted"]) == (130, True), stderr
    else:
        assert (outcome["verdict"], outcome["error"]) == ("infrastructure", "TimeoutError"), stderr


def test_a_child_that_ignores_the_stop_is_killed_with_its_group_after_the_grace() -> None:
    """A child that ignores SIGINT is killed, with its group, once the grace is over; its output is kept."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, threading\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "print('stubborn', flush=True)\n"
            "print('still here', file=sys.stderr, flush=True)\n"
            "threading.Event().wait(120)\n",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "stubborn\n"
        started = time.monotonic()
        _, stderr, interrupted = stop_child(child, grace_s=0.5)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert not interrupted
    assert stderr == "still here\n"
    assert time.monotonic() - started < 10.0
    assert _live_members(child.pid) == []
