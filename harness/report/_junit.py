"""JUnit XML for the stages that are not pytest runs (pytest writes its own with ``--junitxml``).

One ``<testsuite>`` per stage, one ``<testcase>`` per case. A product failure is a
``<failure>`` (an assertion the target broke); infrastructure trouble and test defects are
``<error>`` (the case could not be judged), as JUnit readers in CI tell the two apart.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.redaction import Redactor
from harness.report._results import CHECK_FAILURES, CaseOutcome, CaseResult, Failure, FailureKind, classify_text

__all__ = ["read_junit", "write_junit"]

# pytest ends a failure's text with "path/to/test.py:12: ExceptionType".
_LAST_LINE_TYPE = re.compile(r":\d+: ([A-Za-z_][\w.]*)\s*$")
# pytest and allure-pytest lead a message with "package.module.ExceptionType: message".
_MESSAGE_TYPE = re.compile(r"^([A-Za-z_][\w.]*): ")


def _seconds(duration_ns: int) -> str:
    return f"{duration_ns / 1e9:.6f}"


def write_junit(
    path: Path,
    suite: str,
    cases: Sequence[CaseResult],
    *,
    redactor: Redactor,
    timestamp: str | None = None,
) -> Path:
    """Write ``cases`` as one JUnit test suite named ``suite``; every text goes through ``redactor``."""
    counts = {outcome: sum(case.outcome is outcome for case in cases) for outcome in CaseOutcome}
    root = ET.Element("testsuites")
    element = ET.SubElement(
        root,
        "testsuite",
        {
            "name": suite,
            "tests": str(len(cases)),
            "failures": str(counts[CaseOutcome.FAILED]),
            "errors": str(counts[CaseOutcome.BROKEN]),
            "skipped": str(counts[CaseOutcome.SKIPPED]),
            "time": _seconds(sum(case.duration_ns for case in cases)),
            **({"timestamp": timestamp} if timestamp else {}),
        },
    )
    for case in cases:
        testcase = ET.SubElement(
            element,
            "testcase",
            {
                "classname": f"locker-harness.{suite}",
                "name": redactor.text(case.name),
                "time": _seconds(case.duration_ns),
            },
        )
        if case.outcome is CaseOutcome.SKIPPED:
            ET.SubElement(testcase, "skipped", {"message": redactor.text(case.reason)})
        elif case.failure is not None and case.outcome in (CaseOutcome.FAILED, CaseOutcome.BROKEN):
            failure = case.failure
            # An assumption refuted under --strict-assumptions is judged like a broken promise.
            tag = "failure" if failure.kind in (FailureKind.PRODUCT, FailureKind.ASSUMPTION) else "error"
            detail = ET.SubElement(
                testcase,
                tag,
                {"message": redactor.text(failure.message), "type": f"{failure.kind.value}:{failure.error_type}"},
            )
            detail.text = redactor.text(failure.trace or failure.message)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _failure_of(element: ET.Element, name: str) -> Failure:
    message = element.get("message") or ""
    text = element.text or ""
    found = _LAST_LINE_TYPE.search(text) or _MESSAGE_TYPE.match(message)
    error_type = found.group(1).rsplit(".", 1)[-1] if found else (element.get("type") or "").rsplit(".", 1)[-1]
    kind = classify_text(f"{error_type}: {message}")
    if kind is None:
        # pytest writes <failure> for any exception in a test's call; only a check's verdict (an
        # assertion, pytest.fail, pytest.raises that saw nothing) is the product's.
        kind = FailureKind.PRODUCT if error_type in CHECK_FAILURES else FailureKind.TEST
    summary = message or (text.strip().splitlines() or [""])[-1]
    return Failure(kind, name, summary, error_type, trace=text or None)


def read_junit(path: Path) -> list[CaseResult]:
    """The cases of a JUnit file written by pytest (``--junitxml``), each failure classified."""
    cases: list[CaseResult] = []
    for testcase in ET.parse(path).getroot().iter("testcase"):
        module = (testcase.get("classname") or "").rsplit(".", 1)[-1]
        name = f"{module}::{testcase.get('name')}" if module else str(testcase.get("name"))
        duration_ns = int(float(testcase.get("time") or 0) * 1e9)
        skipped = testcase.find("skipped")
        problem = testcase.find("failure")
        if problem is None:
            problem = testcase.find("error")
        if problem is not None:
            cases.append(CaseResult.failed(name, _failure_of(problem, name), duration_ns))
        elif skipped is not None:
            cases.append(CaseResult(name, CaseOutcome.SKIPPED, duration_ns, reason=skipped.get("message") or ""))
        else:
            cases.append(CaseResult(name, CaseOutcome.PASSED, duration_ns))
    return cases
