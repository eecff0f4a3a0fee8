"""The evidence model: verdict precedence, exit codes, failure classification, run ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from harness.errors import (
    BluetoothUnavailable,
    Conflict,
    ExitCode,
    ProductDefect,
    ServerError,
    TargetUnreachable,
)
from harness.report import (
    Failure,
    FailureKind,
    RunResult,
    StageResult,
    TargetInfo,
    Verdict,
    classify,
    new_run_id,
    verdict_of,
)


def _run(*verdicts: Verdict) -> RunResult:
    stages = [StageResult(f"s{i}", verdict) for i, verdict in enumerate(verdicts)]
    return RunResult("r", TargetInfo("local"), datetime.now(UTC), 0, stages=stages)


@pytest.mark.parametrize(
    ("verdicts", "expected", "code"),
    [
        ((Verdict.PASSED, Verdict.PASSED), Verdict.PASSED, ExitCode.OK),
        ((Verdict.PASSED, Verdict.SKIPPED), Verdict.PASSED, ExitCode.OK),
        ((Verdict.INFRASTRUCTURE, Verdict.BREACHED), Verdict.BREACHED, ExitCode.SLO_BREACH),
        ((Verdict.BREACHED, Verdict.FAILED, Verdict.INFRASTRUCTURE), Verdict.FAILED, ExitCode.DEFECT),
        ((Verdict.PASSED, Verdict.INFRASTRUCTURE), Verdict.INFRASTRUCTURE, ExitCode.INFRASTRUCTURE),
    ],
)
def test_the_worst_stage_decides_the_run(verdicts: tuple[Verdict, ...], expected: Verdict, code: ExitCode) -> None:
    """A defect beats a breach beats infrastructure, and the exit code follows the verdict."""
    run = _run(*verdicts)
    assert run.verdict is expected
    assert run.exit_code is code


def test_a_run_where_nothing_ran_is_not_green() -> None:
    """Every stage skipped means nothing was tested: infrastructure, never a silent pass."""
    assert _run(Verdict.SKIPPED, Verdict.SKIPPED).exit_code is ExitCode.INFRASTRUCTURE


def test_an_interrupted_run_exits_130() -> None:
    """Ctrl-C wins over any verdict."""
    run = _run(Verdict.FAILED)
    run.interrupted = True
    assert run.exit_code is ExitCode.INTERRUPTED


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ProductDefect("x", check="c"), FailureKind.PRODUCT),
        (Conflict("409", status_code=409), FailureKind.PRODUCT),
        (AssertionError("expected available"), FailureKind.PRODUCT),
        (ServerError("503", status_code=503), FailureKind.INFRASTRUCTURE),
        (TargetUnreachable("no answer"), FailureKind.INFRASTRUCTURE),
        (BluetoothUnavailable("no adapter"), FailureKind.INFRASTRUCTURE),
        (TimeoutError(), FailureKind.INFRASTRUCTURE),
        (TypeError("bad call"), FailureKind.TEST),
    ],
)
def test_errors_are_classified_by_whose_problem_they_are(error: Exception, kind: FailureKind) -> None:
    """Product defects, infrastructure trouble and test defects land in their own class."""
    assert classify(error) is kind


def test_failure_from_exception_keeps_type_step_and_trace() -> None:
    """A failure carries the exception type (categories match on it), its step and a trace."""
    try:
        raise ProductDefect("stale status", check="status_after_close", step="door closed")
    except ProductDefect as error:
        failure = Failure.from_exception(error, "delivery")
    assert (failure.kind, failure.error_type, failure.step) == (FailureKind.PRODUCT, "ProductDefect", "door closed")
    assert failure.trace is not None and "stale status" in failure.trace


def test_verdict_of_failures() -> None:
    """No failures pass; an infrastructure failure alone is infrastructure; a product one fails."""
    product = Failure(FailureKind.PRODUCT, "a", "m")
    infra = Failure(FailureKind.INFRASTRUCTURE, "b", "m")
    assert verdict_of([]) is Verdict.PASSED
    assert verdict_of([infra]) is Verdict.INFRASTRUCTURE
    assert verdict_of([infra, product]) is Verdict.FAILED


def test_run_ids_sort_by_time_and_read_like_the_example() -> None:
    """Run ids look like ``20261128-040512-ab12`` in UTC."""
    run_id = new_run_id(datetime(2026, 11, 28, 4, 5, 12, tzinfo=UTC))
    assert re.fullmatch(r"20261128-040512-[0-9a-f]{4}", run_id)
