"""The report commands as a user types them: run, history, compare, report (embedded sandbox, in process)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import UsageError
from harness.report import run_id_tail

runner = CliRunner()
RESERVE_1401 = "/api/v1/towers/0100000000000014/lockers/1401/reservations"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder: reports/ and .locker-harness/ land here, no config file around."""
    monkeypatch.chdir(tmp_path)
    for name in ("HARBOR_TARGET", "HARBOR_REPORTS_DIR", "HARBOR_STATE_DIR", "HARBOR_CONFIG", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_run_then_history_report_and_compare_flag_a_slowed_step(workdir: Path) -> None:
    """Two green runs, the second with a latency fault on reserve: history lists both, compare exits 3."""
    first = runner.invoke(app, ["run", "--only", "smoke"])
    assert first.exit_code == 0, first.output
    assert "smoke" in first.output and "passed" in first.output
    second = runner.invoke(app, ["run", "--only", "smoke", "--sim-fault", f"latency:ms=400,paths={RESERVE_1401}"])
    assert second.exit_code == 0, second.output

    runs = sorted(p.name for p in (workdir / "reports").iterdir())
    assert len(runs) == 2
    listed = runner.invoke(app, ["history"])
    assert listed.exit_code == 0 and all(run_id in listed.output for run_id in runs)

    # The random tail names a run even when both started in the same second (a prefix to the second would not).
    summary = runner.invoke(app, ["report", run_id_tail(runs[1])])
    assert summary.exit_code == 0 and "Latency per step" in summary.output and runs[1] in summary.output

    compared = runner.invoke(app, ["compare", "--floor-ms", "200"])
    assert compared.exit_code == 3, compared.output  # slower, not broken: the SLO exit code
    assert re.search(r"regression\(s\): .*smoke/reserve \(p95\+p99\)", compared.output)
    calm = runner.invoke(app, ["compare", runs[0], runs[0]])
    assert calm.exit_code == 0 and "no regression" in calm.output


def test_a_bug_switch_makes_run_exit_1_and_says_product(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A product defect exits 1; the step summary for CI gets the Markdown with the failure's class."""
    step_summary = workdir / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = runner.invoke(
        app, ["run", "--only", "smoke", "--sim-bug", "stale_status_after_close", "--status-timeout", "1"]
    )
    assert result.exit_code == 1, result.output
    assert "| smoke | product | available | ProductDefect:" in step_summary.read_text()
    [run_dir] = (workdir / "reports").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["exit_code"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--only", "nosuch"], "'nosuch' is not a stage"),
        (["run", "--only", "smoke", "--skip", "smoke"], "no stage left to run"),
        (["compare"], "compare needs two runs"),
        (["compare", "--tolerance", "fast"], "is not a number"),
        (["report"], "no runs under"),
        (["run", "--only", "load", "--sim-fault", "ble_busy:count=1"], "stages chosen (load) opens doors"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(workdir: Path, args: list[str], message: str) -> None:
    """Bad input: exit 2 with one clear line, no traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_html_that_cannot_be_written_keeps_the_runs_exit_code(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--html without a usable Node: one line says so, and a run that found a defect still exits 1, not 2."""
    import harness.cli.run

    def no_node(*args: object, **kwargs: object) -> None:
        raise UsageError("the HTML report needs Node.js 20 or later, found v18.19.0")

    monkeypatch.setattr(harness.cli.run, "build_html", no_node)
    result = runner.invoke(
        app, ["run", "--only", "smoke", "--sim-bug", "stale_status_after_close", "--status-timeout", "1", "--html"]
    )
    assert result.exit_code == 1, result.output
    assert "error: HTML report not written: the HTML report needs Node.js 20 or later, found v18.19.0" in result.output
    assert "Traceback" not in result.output


def test_a_full_disk_keeps_what_was_measured(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No room for the reports: the passed smoke is still told on stdout, the history row is written
    and said so, and the run is not green without its evidence (exit 4); with no room for the history
    either, its absence is said."""
    import errno
    import sqlite3

    import harness.history
    import harness.run._execute

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.run._execute, "finish_reports", disk_full)
    result = runner.invoke(app, ["run", "--only", "smoke"])
    assert result.exit_code == 4, result.output
    assert re.search(r"smoke\s+passed", result.output), result.output
    assert "EVIDENCE NOT WRITTEN: the reports under" in result.output
    assert "No space left on device" in result.output
    assert "history: the run is recorded" in result.output
    assert "Traceback" not in result.output

    def database_full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(harness.history.History, "record", database_full)
    result = runner.invoke(app, ["run", "--only", "smoke"])
    assert result.exit_code == 4, result.output
    assert "history row could not be written (database or disk is full)" in result.output
    assert "history: NOT recorded" in result.output


def test_quiet_still_says_what_evidence_was_lost(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-q`` prints the verdict line and errors: the evidence a full disk lost is one of them, so exit 4
    comes with its reason."""
    import errno

    import harness.run._execute

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.run._execute, "finish_reports", disk_full)
    result = runner.invoke(app, ["run", "--only", "smoke", "-q"])
    assert result.exit_code == 4, result.output
    assert "error: evidence not written: the reports under" in result.stderr
    assert "No space left on device" in result.stderr


def test_report_finds_a_run_written_with_reports_dir(workdir: Path) -> None:
    """A run written with ``--reports-dir`` is found by ``report --reports-dir``; without it the error
    says how to name such a run."""
    result = runner.invoke(app, ["smoke", "--reports-dir", "elsewhere", "--run-id", "mine", "-q"])
    assert result.exit_code == 0, result.output
    lost = runner.invoke(app, ["report", "mine"])
    assert lost.exit_code == 2 and "--reports-dir" in lost.stderr, lost.output
    found = runner.invoke(app, ["report", "mine", "--reports-dir", "elsewhere"])
    assert found.exit_code == 0, found.output
    assert "smoke" in found.stdout


def test_a_disk_full_from_the_first_write_is_no_internal_error(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk full before anything is written (the stage's own files, its Allure result, the reports):
    the run says what it could, exits 4, and is no "internal error (a harness bug)"."""
    import errno

    import harness.report._allure
    import harness.run._execute
    import harness.run._smoke

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.run._smoke.SmokeStage, "run", disk_full)
    monkeypatch.setattr(harness.report._allure.AllureWriter, "write", disk_full)
    monkeypatch.setattr(harness.run._execute, "finish_reports", disk_full)
    result = runner.invoke(app, ["run", "--only", "smoke"])
    assert result.exit_code == 4, result.output
    assert "internal error" not in result.output and "No space left on device" in result.output


def test_smoke_whose_evidence_cannot_be_written_exits_4_as_its_history_says(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``smoke --run-id`` that passes but cannot write its evidence exits 4, as its history row says."""
    import errno

    import harness.run._execute

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(harness.run._execute, "finish_reports", disk_full)
    result = runner.invoke(app, ["smoke", "--run-id", "full"])
    assert result.exit_code == 4, result.output
    assert "EVIDENCE NOT WRITTEN" in result.output
