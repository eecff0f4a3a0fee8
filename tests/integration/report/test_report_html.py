"""The HTML report as a person sees it: Allure 3's single file, opened in headless Chromium; its totals
equal what summary.json says the run recorded.

Skips with the reason where Node 20+ or Chromium is missing, or Allure 3 cannot be installed;
`make test` never depends on a browser.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import InfrastructureError, ProductDefect, UsageError
from harness.load import LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._slo import Gate
from harness.redaction import Redactor
from harness.report import (
    AllureStep,
    AllureTest,
    AllureWriter,
    CaseOutcome,
    Failure,
    RunFolder,
    RunResult,
    StageResult,
    TargetInfo,
    Verdict,
    build_html,
    find_node_project,
    finish_reports,
)
from harness.report._html import _node, ensure_allure
from harness.run._load_stage import _stage_result
from tests.headless_chromium import browser, rendered_text

MS = 1_000_000
#: Three contract operations, the failed one started first: a later pass must not hide it.
OPERATIONS = {"GET /api/v1/towers": "passed", "POST /api/v1/login/authorize": "failed", "GET /api/v1/lockers": "passed"}


def _allure_ready() -> None:
    try:
        _node()
        ensure_allure(find_node_project())
    except UsageError as error:
        pytest.skip(f"no HTML report here: {error}")
    except InfrastructureError as error:
        pytest.skip(f"Allure 3 could not be installed: {error}")


def _run_with_a_failed_step(folder: RunFolder, redactor: Redactor) -> RunResult:
    try:
        raise ProductDefect("locker 1401 still occupied after pickup", check="available_after_pickup")
    except ProductDefect as error:
        failure = Failure.from_exception(error, "pickup door closed")
    writer = AllureWriter(folder.allure_results, redactor=redactor)
    writer.write(AllureTest("authenticate", "smoke.authenticate", "smoke", CaseOutcome.PASSED, 1000, 1002))
    writer.write(
        AllureTest(
            "pickup door closed",
            "smoke.pickup-door-closed",
            "smoke",
            CaseOutcome.FAILED,
            1002,
            1010,
            failure=failure,
            steps=[AllureStep("close the door", CaseOutcome.FAILED, 1002, 1010, failure=failure)],
        )
    )
    run = RunResult(
        run_id=folder.run_id,
        target=TargetInfo("local", "http://127.0.0.1:9", "0100000000000014", "1.2.3"),
        started_at=datetime.now(UTC),
        seed=0,
        stages=[StageResult("smoke", Verdict.FAILED, failures=[failure])],
    )
    finish_reports(run, folder, redactor=redactor)
    return run


def test_the_html_report_shows_title_counts_and_the_failed_test(tmp_path: Path) -> None:
    """One offline file, no analytics, and Chromium shows the run's name, 2 tests, 1 failed, its name."""
    chromium = browser()
    _allure_ready()
    redactor = Redactor()
    folder = RunFolder.create(tmp_path / "reports", "20261128-040512-ab12")
    run = _run_with_a_failed_step(folder, redactor)

    report = build_html(
        folder.allure_results, folder.html_dir, report_name=f"locker-harness {run.run_id}", redactor=redactor
    )

    assert (report.total, report.failed, report.passed) == (2, 1, 1)
    html = report.path.read_text(encoding="utf-8")
    assert "googletagmanager" not in html and "gtag(" not in html
    assert not re.search(r"<script[^>]+src=[\"']https?://", html), "the page must not load scripts from the network"
    assert [p.name for p in folder.html_dir.iterdir() if p.suffix == ".html"] == ["index.html"]

    text = rendered_text(chromium, report.path, drawn=r"Total\s*\d")
    assert f"locker-harness {run.run_id}" in text
    assert re.search(r"Total\s*2", text), text[:500]
    assert re.search(r"Failed\s*1", text), text[:500]
    assert "pickup door closed" in text
    assert "0100000000000014" in text  # environment.properties reached the page
    categories = rendered_text(chromium, report.path, fragment="#categories", drawn=r"Product defects\s*\d")
    assert re.search(r"Product defects\s*1", categories), categories[:500]


def _contract_results(folder: Path) -> None:
    """The contract stage's per-operation results as allure-pytest writes them with the suite's conftest: one
    fullName and testCaseId for all, the operation a parameter (the failed one started first)."""
    for index, (operation, status) in enumerate(OPERATIONS.items()):
        result = {
            "uuid": f"00000000-0000-4000-8000-00000000000{index}",
            "name": f"test_operation_keeps_the_contract[{operation}]",
            "fullName": "contracts.test_contract#test_operation_keeps_the_contract",
            "testCaseId": "6d493062548c15ee408b348176b6452e",
            "historyId": f"history-{index}",
            "status": status,
            "start": 1_796_000_000_000 + (1 - index) * 10,
            "stop": 1_796_000_000_100,
            "parameters": [{"name": "operation", "value": repr(operation)}],
            "labels": [{"name": "parentSuite", "value": "contracts"}, {"name": "suite", "value": "test_contract"}],
        }
        (folder / f"{result['uuid']}-result.json").write_text(json.dumps(result))


def _load_stage() -> StageResult:
    record = LoadRecord()
    for index in range(400):
        record.request("reserve", (3 + index % 7) * MS)
    for _ in range(40):
        record.flow("completed", "delivery", 30 * MS)
    gates = SloGates([Gate(None, "failure_ratio", 0.01), Gate("reserve", "p99", 5.0), Gate("reserve", "p50", 50.0)])
    summary = LoadSummary.build(record, gates, duration_s=10.0, plan={"mode": "closed"}, sweep=Sweep(checked=True))
    stage = _stage_result("load", summary, [])
    stage.latencies = summary.histograms()
    return stage


def test_the_html_report_totals_equal_summary_json_with_each_operation_and_gate_a_test(tmp_path: Path) -> None:
    """Smoke, three contract operations (one failed) and the load stage (three gates, one breached): the page
    `locker-harness report --html` writes, rendered in Chromium, shows as many tests, and as many failed, as
    summary.json counts."""
    chromium = browser()
    _allure_ready()
    redactor = Redactor()
    folder = RunFolder.create(tmp_path / "reports", "20261207-101500-c0ffee")
    AllureWriter(folder.allure_results, redactor=redactor).write(
        AllureTest("delivery", "locker-harness.smoke.delivery", "smoke", CaseOutcome.PASSED, 1000, 1100)
    )
    _contract_results(folder.allure_results)
    run = RunResult(
        run_id=folder.run_id,
        target=TargetInfo("local", "http://127.0.0.1:9", "0100000000000014", "1.2.3"),
        started_at=datetime.now(UTC),
        seed=0,
        stages=[StageResult("smoke", Verdict.PASSED), StageResult("contract", Verdict.FAILED), _load_stage()],
    )
    finish_reports(run, folder, redactor=redactor)
    totals = json.loads((folder.root / "summary.json").read_text())["allure"]
    # smoke 1 + contract 3 + load: 2 oracles, 3 gates and the stage itself
    assert (totals["results"], totals["tests"], totals["failed"]) == (10, 10, 3), totals

    done = CliRunner().invoke(app, ["report", str(folder.root), "--html"])
    assert done.exit_code == 0, done.output
    assert f"{totals['tests']} tests: 7 passed, {totals['failed']} failed" in done.output
    assert "note:" not in done.output  # the report shows what the run recorded
    text = rendered_text(chromium, folder.html_dir / "index.html", drawn=r"Total\s*\d")
    assert re.search(rf"Total\s*{totals['tests']}\b", text), text[:600]
    assert re.search(rf"Failed\s*{totals['failed']}\b", text), text[:600]
    assert "load" in text and "contracts" in text
