"""Small builders for report tests: a run with a passed and a failed stage, and a redactor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from harness.errors import ProductDefect, ServerError
from harness.metrics import Latencies
from harness.redaction import Redactor
from harness.report import CaseOutcome, CaseResult, Failure, RunResult, StageResult, TargetInfo, Verdict

#: A fake secret the redactor knows: no report may contain it.
CANARY = "canary-secret-7f3a9c"


@pytest.fixture
def canary() -> str:
    return CANARY


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([CANARY])


def _latencies(**steps_ms: list[float]) -> Latencies:
    """Histograms from lists of milliseconds, one per step."""
    result = Latencies()
    for step, values in steps_ms.items():
        for ms in values:
            result.record(step, int(ms * 1e6))
    return result


def _product_failure(step: str = "open dropoff") -> Failure:
    try:
        raise ProductDefect(f"door stayed closed, token {CANARY}", check="door_opens", step=step)
    except ProductDefect as error:
        return Failure.from_exception(error, step)


def _infrastructure_failure(step: str = "list lockers") -> Failure:
    try:
        raise ServerError("503 from the sandbox after 3 attempts", status_code=503, method="GET", path="/x")
    except ServerError as error:
        return Failure.from_exception(error, step, step=step)


@pytest.fixture
def make_latencies() -> Callable[..., Latencies]:
    return _latencies


@pytest.fixture
def product_failure() -> Failure:
    return _product_failure()


@pytest.fixture
def infrastructure_failure() -> Failure:
    return _infrastructure_failure()


@pytest.fixture
def run() -> RunResult:
    """A run whose smoke stage failed on one step and whose load stage passed."""
    failure = _product_failure()
    smoke = StageResult(
        "smoke",
        Verdict.FAILED,
        figures={"deliveries": 1, "steps": 3},
        latencies=_latencies(authenticate=[2.0], reserve=[3.5]),
        failures=[failure],
        cases=[
            CaseResult("authenticate", CaseOutcome.PASSED, 2_000_000),
            CaseResult("reserve", CaseOutcome.PASSED, 3_500_000),
            CaseResult.failed("open dropoff", failure, 1_000_000),
        ],
        duration_ns=7_000_000,
    )
    load = StageResult(
        "load",
        Verdict.PASSED,
        figures={"requests": 200, "p95 ms": 12.5},
        latencies=_latencies(reserve=[float(v) for v in range(1, 101)]),
        duration_ns=10_000_000_000,
    )
    return RunResult(
        run_id="20261128-040512-ab12",
        target=TargetInfo("local", "http://127.0.0.1:8123", "0100000000000014", "1.2.3"),
        started_at=datetime(2026, 11, 28, 4, 5, 12, tzinfo=UTC),
        seed=0,
        stages=[smoke, load],
        duration_ns=10_007_000_000,
    )
