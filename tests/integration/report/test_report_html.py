"""The HTML report as a person sees it: Allure 3's single file, opened in headless Chromium.

Skips with the reason where Node 20+ or Chromium is missing, or Allure 3 cannot be installed;
`make test` never depends on a browser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from headless_chromium import browser, rendered_text

from harness.errors import InfrastructureError, ProductDefect, UsageError
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

    text = rendered_text(chromium, report.path)
    assert f"locker-harness {run.run_id}" in text
    assert re.search(r"Total\s*2", text), text[:500]
    assert re.search(r"Failed\s*1", text), text[:500]
    assert "pickup door closed" in text
    assert "0100000000000014" in text  # environment.properties reached the page
    categories = rendered_text(chromium, report.path, fragment="#categories")
    assert re.search(r"Product defects\s*1", categories), categories[:500]
