"""A stop (SIGTERM, Ctrl-C) keeps what was found before it: a defect the load stage's oracle saw is still
the run's verdict, beside the stop's exit code; it was a bare "skipped: interrupted" before."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import ExitCode
from harness.sim import VirtualSandbox

from .test_sigterm import TOWER, _held, _start, _terminate_when, sandbox  # noqa: F401 (the fixture)


def test_a_defect_found_before_sigterm_stays_the_run_s_verdict(sandbox: VirtualSandbox, tmp_path: Path) -> None:  # noqa: F811
    """``run --only load`` with double booking planted, terminated mid-load: exit 143, and the run's summary
    names the load stage failed with the double bookings its oracle saw (not "skipped")."""
    sandbox.control.reset()
    sandbox.control.set_bugs(double_booking=True)
    (tmp_path / "locker-harness.toml").write_text(
        "[load]\nduration = 60\nusers = 8\nweights = { contention = 1 }\ncontention_lockers = 2\n"
    )
    try:
        args = ["run", "--target", sandbox.url, "--tower", TOWER, "--only", "load", "--budget", "300"]
        process = _start(args, tmp_path)
        # Enough contended reserves that the planted bug has shown (bounded poll of the sandbox).
        stdout, stderr, _ = _terminate_when(process, lambda: len(sandbox.control.events()) >= 400, "the load")
    finally:
        sandbox.control.set_bugs(double_booking=False)
    assert process.returncode == ExitCode.TERMINATED, stdout + stderr
    (run_summary,) = tmp_path.glob("reports/*/summary.json")
    [stage] = json.loads(run_summary.read_text())["stages"]
    assert stage["name"] == "load" and stage["verdict"] == "failed", stage
    assert "interrupted" in stage["reason"], stage
    (load_summary,) = tmp_path.glob("reports/*/load/summary.json")
    assert json.loads(load_summary.read_text())["violations"]["double_booking"] > 0
    assert _held(sandbox) == []
