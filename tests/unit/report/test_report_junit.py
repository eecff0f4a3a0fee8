"""JUnit XML of non-pytest stages: counts, failure versus error, redaction."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.redaction import Redactor
from harness.report import CaseOutcome, CaseResult, Failure, FailureKind, read_junit, write_junit


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


_PYTEST_CHECKS = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="contract" tests="2">
<testcase classname="test_f" name="test_did_not_raise" time="0.001">
<failure message="Failed: DID NOT RAISE ServerError">
&gt;       with pytest.raises(ServerError):
E       Failed: DID NOT RAISE ServerError

test_f.py:4: Failed</failure></testcase>
<testcase classname="test_f" name="test_fail" time="0.001"><failure message="Failed: locker 1401 still reads occupied">
&gt;       pytest.fail("locker 1401 still reads occupied")
E       Failed: locker 1401 still reads occupied

test_f.py:7: Failed</failure></testcase></testsuite></testsuites>
"""


def test_pytest_fail_and_did_not_raise_are_failed_checks(tmp_path: Path) -> None:
    """``pytest.fail`` and a ``pytest.raises`` that saw nothing are the target's failures, whatever error they name."""
    path = tmp_path / "contract.xml"
    path.write_text(_PYTEST_CHECKS)
    cases = read_junit(path)
    assert [(c.name, c.outcome, c.failure and (c.failure.kind, c.failure.error_type)) for c in cases] == [
        ("test_f::test_did_not_raise", CaseOutcome.FAILED, (FailureKind.PRODUCT, "Failed")),
        ("test_f::test_fail", CaseOutcome.FAILED, (FailureKind.PRODUCT, "Failed")),
    ]
