"""Allure tests for a stage that wrote none of its own (the load stage): every stage is in the report.

The smoke stage writes its Allure test as it runs and pytest stages have allure-pytest; a stage
that only returns a ``StageResult`` (a load run) would be missing from the HTML report. From its
result the harness writes one test per case (each oracle, each SLO gate: a stable ``fullName``, so
a stable test-case and history id, run after run) and one test for the stage itself, with a step
per timed step (its figures as parameters, its percentile curve attached) and the stage's overview
plot and JSON summary attached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from harness.report._allure import AllureAttachment, AllureStep, AllureTest
from harness.report._results import CaseOutcome, CaseResult, Failure, FailureKind, StageResult, Verdict

__all__ = ["harness_suites", "stage_tests"]

_OUTCOMES: Final = {
    Verdict.PASSED: CaseOutcome.PASSED,
    Verdict.FAILED: CaseOutcome.FAILED,
    Verdict.BREACHED: CaseOutcome.FAILED,
    Verdict.INFRASTRUCTURE: CaseOutcome.BROKEN,
    Verdict.SKIPPED: CaseOutcome.SKIPPED,
}
#: JSON artefacts larger than this are named in the description, not attached.
_MAX_ATTACHED_BYTES: Final = 2_000_000


def harness_suites(results_dir: Path) -> set[str]:
    """The stages the harness already wrote Allure tests for (their ``suite`` label)."""
    suites: set[str] = set()
    for path in results_dir.glob("*-result.json"):
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        labels = {label.get("name"): label.get("value") for label in result.get("labels") or ()}
        if labels.get("framework") == "locker-harness" and isinstance(labels.get("suite"), str):
            suites.add(labels["suite"])
    return suites


def _full_name(stage: str, name: str) -> str:
    return f"locker-harness.{stage}.{name}"


def _case_test(stage: StageResult, case: CaseResult, start_ms: int, stop_ms: int) -> AllureTest:
    return AllureTest(
        name=case.name,
        full_name=_full_name(stage.name, case.name),
        stage=stage.name,
        outcome=case.outcome,
        start_ms=start_ms,
        stop_ms=stop_ms,
        failure=case.failure,
        description=f"skipped: {case.reason}" if case.outcome is CaseOutcome.SKIPPED and case.reason else "",
    )


def _step_outcome(failures: Iterable[Failure]) -> CaseOutcome:
    kinds = {failure.kind for failure in failures}
    if not kinds:
        return CaseOutcome.PASSED
    return CaseOutcome.FAILED if FailureKind.PRODUCT in kinds else CaseOutcome.BROKEN


def _svg(path: Path) -> AllureAttachment | None:
    try:
        return AllureAttachment.svg(path.stem, path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _json(path: Path) -> AllureAttachment | None:
    try:
        if path.stat().st_size > _MAX_ATTACHED_BYTES:
            return None
        return AllureAttachment.json(path.name, json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _stage_test(
    stage: StageResult, plots: Mapping[str, Path], overview: Path | None, start_ms: int, stop_ms: int
) -> AllureTest:
    steps = []
    for summary in stage.summaries():
        failed = [failure for failure in stage.failures if failure.step == summary.name]
        plot = plots.get(summary.name)
        attachment = _svg(plot) if plot is not None else None
        steps.append(
            AllureStep(
                summary.name,
                _step_outcome(failed),
                start_ms,
                stop_ms,
                failure=failed[0] if failed else None,
                attachments=[attachment] if attachment is not None else [],
                parameters={
                    "n": str(summary.count),
                    "p50 ms": f"{summary.p50_ms:.3f}",
                    "p95 ms": f"{summary.p95_ms:.3f}",
                    "p99 ms": f"{summary.p99_ms:.3f}",
                    "max ms": f"{summary.max_ms:.3f}",
                },
            )
        )
    attachments = [_svg(overview)] if overview is not None else []
    attachments += [_json(path) for path in stage.artefacts if path.suffix == ".json"]
    figures = ", ".join(f"{key} {value}" for key, value in stage.figures.items())
    outcome = _OUTCOMES[stage.verdict]
    failure = stage.failures[0] if stage.failures else None
    if failure is None and outcome is not CaseOutcome.PASSED and stage.reason:
        kind = FailureKind.PRODUCT if stage.verdict is Verdict.BREACHED else FailureKind.INFRASTRUCTURE
        failure = Failure(kind, f"{stage.name} run", stage.reason)
    return AllureTest(
        name=f"{stage.name} run",
        full_name=_full_name(stage.name, "run"),
        stage=stage.name,
        outcome=outcome,
        start_ms=start_ms,
        stop_ms=stop_ms,
        failure=failure,
        steps=steps,
        attachments=[attachment for attachment in attachments if attachment is not None],
        parameters={"mode": stage.mode} if stage.mode else {},
        description="\n\n".join(text for text in (stage.reason, figures) if text),
    )


def stage_tests(
    stage: StageResult, *, plots: Mapping[str, Path] | None = None, overview: Path | None = None
) -> list[AllureTest]:
    """The stage as Allure tests: one per case, and one for the stage with its steps and plots.

    ``plots``: each step's percentile curve by histogram name; ``overview``: the stage's figure over time.
    """
    stop_ms = int(time.time() * 1000)
    start_ms = stop_ms - stage.duration_ns // 1_000_000
    tests = [_case_test(stage, case, start_ms, stop_ms) for case in stage.cases]
    return [*tests, _stage_test(stage, plots or {}, overview, start_ms, stop_ms)]
