"""JUnit XML for the stages that are not pytest runs (pytest writes its own with ``--junitxml``).

One ``<testsuite>`` per stage, one ``<testcase>`` per case. A product failure is a
``<failure>`` (an assertion the target broke); infrastructure trouble and test defects are
``<error>`` (the case could not be judged), as JUnit readers in CI tell the two apart.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.redaction import Redactor
from harness.report._results import CaseOutcome, CaseResult, FailureKind

__all__ = ["write_junit"]


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
            tag = "failure" if failure.kind is FailureKind.PRODUCT else "error"
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
