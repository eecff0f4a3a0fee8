"""JUnit XML of non-pytest stages: counts, failure versus error, redaction."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.redaction import Redactor
from harness.report import CaseOutcome, CaseResult, Failure, write_junit


def test_product_failures_are_failures_and_infrastructure_is_an_error(
    tmp_path: Path, redactor: Redactor, product_failure: Failure, infrastructure_failure: Failure
) -> None:
    """A product defect is <failure>, infrastructure trouble is <error>, a skip is <skipped>."""
    cases = [
        CaseResult("authenticate", CaseOutcome.PASSED, 1_500_000),
        CaseResult.failed("open dropoff", product_failure, 2_000_000),
        CaseResult.failed("list lockers", infrastructure_failure),
        CaseResult("open over BLE", CaseOutcome.SKIPPED, reason="no bench tower"),
    ]
    path = write_junit(tmp_path / "junit" / "smoke.xml", "smoke", cases, redactor=redactor)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "4",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    by_name = {case.get("name"): case for case in suite.iter("testcase")}
    failure = by_name["open dropoff"].find("failure")
    assert failure is not None and failure.get("type") == "product:ProductDefect"
    error = by_name["list lockers"].find("error")
    assert error is not None and error.get("type") == "infrastructure:ServerError"
    assert by_name["authenticate"].get("time") == "0.001500"


def test_junit_never_contains_a_registered_secret(
    tmp_path: Path, redactor: Redactor, product_failure: Failure, canary: str
) -> None:
    """Messages and traces go through the redactor."""
    path = write_junit(tmp_path / "s.xml", "smoke", [CaseResult.failed("x", product_failure)], redactor=redactor)
    text = path.read_text()
    assert canary not in text
    assert "[REDACTED]" in text
