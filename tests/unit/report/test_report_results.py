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
    UsageError,
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
    resolve_run_id,
    run_id_started,
    run_id_tail,
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
    """Run ids look like ``20261128-040512-3f9a2c`` in UTC: the second, then 24 random bits."""
    run_id = new_run_id(datetime(2026, 11, 28, 4, 5, 12, tzinfo=UTC))
    assert re.fullmatch(r"20261128-040512-[0-9a-f]{6}", run_id)
    assert run_id_tail(run_id) == run_id[-6:]
    assert run_id_started(run_id) == datetime(2026, 11, 28, 4, 5, 12, tzinfo=UTC)
    assert run_id_started("nightly-20261128") is None and run_id_started("cmpB9") is None


SAME_SECOND = ["20261128-040512-3f9a2c", "20261128-040512-b07e11", "20261129-101010-3f9a2c"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("20261128-040512-3f9a2c", "20261128-040512-3f9a2c"),  # the whole id
        ("20261128-040512-b", "20261128-040512-b07e11"),  # a unique prefix
        ("b07e11", "20261128-040512-b07e11"),  # the random tail, like a short commit hash
        ("20261129", "20261129-101010-3f9a2c"),
    ],
)
def test_a_run_is_named_by_its_id_a_unique_prefix_or_its_tail(reference: str, expected: str) -> None:
    """Two runs started in the same second are told apart by a longer prefix or their random tail."""
    assert resolve_run_id(reference, SAME_SECOND, where="under reports") == expected


@pytest.mark.parametrize(
    ("reference", "listed"),
    [
        ("20261128-040512", "20261128-040512-3f9a2c, 20261128-040512-b07e11;"),  # the same second
        ("3f9a2c", "20261128-040512-3f9a2c, 20261129-101010-3f9a2c;"),  # the same tail on two days
    ],
)
def test_a_reference_naming_several_runs_is_a_usage_error_listing_them(reference: str, listed: str) -> None:
    """An ambiguous short form is never a guess: the error lists the candidates and says what to type."""
    with pytest.raises(UsageError, match="ambiguous") as caught:
        resolve_run_id(reference, SAME_SECOND, where="under reports")
    assert f"it names 2 runs under reports: {listed}" in str(caught.value)
    assert "random tail (e.g. 3f9a2c)" in str(caught.value)


def test_a_reference_naming_no_run_says_where_it_looked() -> None:
    """A reference that matches nothing names the place searched."""
    with pytest.raises(UsageError, match="no run '1999' under reports"):
        resolve_run_id("1999", SAME_SECOND, where="under reports")
