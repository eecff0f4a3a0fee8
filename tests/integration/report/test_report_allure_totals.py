"""The one-file HTML report counts what the run recorded: its totals, as Chromium shows them, equal
summary.json's, with every contract operation, the load stage and each of its gates as tests of their own.

Skips with the reason where Node 20+ or Chromium is missing, or Allure 3 cannot be installed.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from headless_chromium import browser, rendered_text
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import InfrastructureError, UsageError
from harness.load import LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._slo import Gate
from harness.load._stage import _stage_result
from harness.redaction import Redactor
from harness.report import (
    AllureTest,
    AllureWriter,
    CaseOutcome,
    RunFolder,
    RunResult,
    StageResult,
    TargetInfo,
    Verdict,
    find_node_project,
    finish_reports,
)
from harness.report._html import _node, ensure_allure

MS = 1_000_000
OPERATIONS = {"GET /api/v1/towers": "passed", "POST /api/v1/login/authorize": "failed", "GET /api/v1/lockers": "passed"}


def _allure_ready() -> None:
    try:
        _node()
        ensure_allure(find_node_project())
    except UsageError as error:
        pytest.skip(f"no HTML report here: {error}")
    except InfrastructureError as error:
        pytest.skip(f"Allure 3 could not be installed: {error}")


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
    # smoke 1 + contract 3 + load: 3 oracles, 3 gates and the stage itself
    assert (totals["results"], totals["tests"], totals["failed"]) == (11, 11, 3), totals

    done = CliRunner().invoke(app, ["report", str(folder.root), "--html"])
    assert done.exit_code == 0, done.output
    assert f"{totals['tests']} tests: 8 passed, {totals['failed']} failed" in done.output
    assert "note:" not in done.output  # the report shows what the run recorded
    text = rendered_text(chromium, folder.html_dir / "index.html")
    assert re.search(rf"Total\s*{totals['tests']}\b", text), text[:600]
    assert re.search(rf"Failed\s*{totals['failed']}\b", text), text[:600]
    assert "load" in text and "contracts" in text
