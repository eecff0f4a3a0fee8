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
from harness.report._results import (
    CHECK_FAILURES,
    CaseOutcome,
    CaseResult,
    Failure,
    FailureKind,
    RunResult,
    StageResult,
    Verdict,
    classify_text,
)

__all__ = ["read_junit", "write_junit", "write_run_junit"]

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
    root = ET.Element("testsuites")
    root.append(_suite(suite, cases, redactor=redactor, timestamp=timestamp))
    return _write(root, path)


def _write(root: ET.Element, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _suite(suite: str, cases: Sequence[CaseResult], *, redactor: Redactor, timestamp: str | None) -> ET.Element:
    counts = {outcome: sum(case.outcome is outcome for case in cases) for outcome in CaseOutcome}
    element = ET.Element(
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
    return element


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


_SUITE_COUNTS = ("tests", "failures", "errors", "skipped")


def _stage_case(stage: StageResult) -> CaseResult:
    """A stage that left no JUnit of its own (skipped, or stopped before it judged a case) as one case."""
    name = f"{stage.name} stage"
    if stage.verdict is Verdict.SKIPPED:
        return CaseResult(name, CaseOutcome.SKIPPED, stage.duration_ns, reason=stage.reason)
    if stage.failures:
        return CaseResult.failed(name, stage.failures[0], stage.duration_ns)
    if stage.verdict is Verdict.PASSED:
        return CaseResult(name, CaseOutcome.PASSED, stage.duration_ns)
    kind = FailureKind.PRODUCT if stage.verdict in (Verdict.FAILED, Verdict.BREACHED) else FailureKind.INFRASTRUCTURE
    return CaseResult.failed(name, Failure(kind, name, stage.reason or stage.verdict.value), stage.duration_ns)


def write_run_junit(run: RunResult, stage_files: dict[str, Path], path: Path, *, redactor: Redactor) -> Path:
    """Every stage of ``run`` in one JUnit file at ``path`` (``--junit-xml``): the suites each stage wrote
    (``stage_files``, already redacted), and one case for a stage that wrote none, so a skipped stage or
    one that could not test shows in CI as what it was, never as nothing."""
    root = ET.Element("testsuites", {"name": f"locker-harness run {run.run_id}"})
    for stage in run.stages:
        source = stage_files.get(stage.name)
        suites: list[ET.Element] = []
        if source is not None and source.is_file():
            parsed = ET.parse(source).getroot()
            suites = [parsed] if parsed.tag == "testsuite" else list(parsed.iter("testsuite"))
        if not suites:
            suites = [_suite(stage.name, [_stage_case(stage)], redactor=redactor, timestamp=None)]
        root.extend(suites)
    for count in _SUITE_COUNTS:
        root.set(count, str(sum(int(suite.get(count) or 0) for suite in root.iter("testsuite"))))
    root.set("time", _seconds(run.duration_ns))
    return _write(root, path)
