"""The load stage's result as the run's table shows it: readable figures, a short reason, the
details in the failures, and a budget too short for a load run reported as could not test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.config import Settings, Target
from harness.load import LoadPlan, LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._locust import STARTUP_S, STOP_GRACE_S, STOP_MAX_S, LocustFiles, LocustOutcome
from harness.redaction import redactor
from harness.report import FailureKind, TargetInfo, Verdict
from harness.run import LoadStage, execute, new_context
from harness.run import _load_stage as stage_module
from harness.run._context import REPORT_RESERVE_S
from harness.run._load_stage import SWEEP_RESERVE_S, _stage_result

MS = 1_000_000


def _record(requests: int, completed: int) -> LoadRecord:
    record = LoadRecord()
    for index in range(requests):
        record.request("reserve", (3 + index % 7) * MS)
    for _ in range(completed):
        record.flow("completed", "delivery", 30 * MS)
    return record


def _summary(record: LoadRecord, sweep: Sweep, duration_s: float = 10.0) -> LoadSummary:
    return LoadSummary.build(record, SloGates(), duration_s=duration_s, plan={}, sweep=sweep)


def test_key_figures_read_as_a_person_reads_them() -> None:
    """Counts with thousands separators, rates rounded to whole numbers, the p99 to three digits,
    and only the figures that matter."""
    summary = _summary(_record(23_271, 2_032), Sweep(checked=True), duration_s=10.0)
    assert summary.key_figures() == {
        "requests": "23,271",
        "req/s": "2,327",
        "deliveries/min": "12,192",
        "failures": "0",
        "conflicts": "0",
        "oracle violations": "0",
        "p99 ms": "9.00",
    }


def test_a_leak_is_a_short_reason_and_the_sweep_notes_go_to_the_failure(tmp_path: Path) -> None:
    """Lockers the users left held: one short line beside the figures; what the sweep did, locker by
    locker, is the failure's message, never part of the figures."""
    note = "locker 1401 was left rented: forced available"
    summary = _summary(_record(500, 40), Sweep(checked=True, found=1, released=1, notes=[note]))
    result = _stage_result("load", summary, [])
    assert result.verdict is Verdict.INFRASTRUCTURE
    assert result.reason == "the load users left 1 locker(s) held"
    assert all(note not in str(value) for value in result.figures.values())
    (failure,) = result.failures
    assert failure.kind is FailureKind.TEST and note in failure.message


def test_lockers_held_before_the_run_are_not_the_load_users_leak() -> None:
    """What the identity held before the users started, unchanged after, does not turn the stage red."""
    summary = _summary(_record(500, 40), Sweep(checked=True, held_before=1))
    result = _stage_result("load", summary, [])
    assert result.verdict is Verdict.PASSED and result.failures == [] and result.reason == ""


def test_a_budget_too_short_for_a_load_run_could_not_test(tmp_path: Path) -> None:
    """A requested load stage the budget cannot fit is infrastructure (could not test), as the run
    says of every stage it cannot fit, never a quiet skip; nothing is started."""
    settings = Settings(reports_dir=tmp_path / "reports", state_dir=tmp_path / "state")
    settings = settings.with_target(Target.local().running_at("http://127.0.0.1:9"))
    context = new_context(
        settings=settings,
        target=TargetInfo("local", "http://127.0.0.1:9", None),
        redactor=redactor(),
        budget_s=5.0,
    )
    run = execute([LoadStage(LoadPlan(), SloGates())], context)
    (stage,) = run.stages
    assert stage.verdict is Verdict.INFRASTRUCTURE
    assert "too short for a load run" in stage.reason


def test_the_load_stage_fits_its_stop_and_sweep_in_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run is shortened so that Locust's start and stop, a forced stop and the sweep fit in what
    the budget has left; Locust is told to be gone in time for the sweep. A sweep that cannot reach
    the target leaves the stage could-not-test, with the reason."""
    calls: list[dict[str, Any]] = []

    def run_locust(command: list[str], *, files: LocustFiles, duration_s: float, **options: Any) -> LocustOutcome:
        calls.append({"duration_s": duration_s, **options})
        files.folder.mkdir(parents=True, exist_ok=True)
        document = {"run": {"duration_s": duration_s}, "record": _record(100, 10).to_json()}
        files.record.write_text(json.dumps(document), encoding="utf-8")
        return LocustOutcome(returncode=0, interrupted=False, elapsed_s=duration_s)

    monkeypatch.setattr(stage_module, "run_locust", run_locust)
    settings = Settings(reports_dir=tmp_path / "reports", state_dir=tmp_path / "state")
    settings = settings.with_target(Target.local().running_at("http://127.0.0.1:9"))  # nothing listens
    context = new_context(
        settings=settings, target=TargetInfo("local", "http://127.0.0.1:9", None), redactor=redactor(), budget_s=110.0
    )
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("# never run: Locust is replaced\n", encoding="utf-8")

    result = LoadStage(LoadPlan(duration_s=60), SloGates(), locustfile=locustfile).run(context)

    (call,) = calls
    assert call["finish_by"] == context.budget.deadline - SWEEP_RESERVE_S
    stages_budget = 110.0 - REPORT_RESERVE_S
    assert (
        1.0 <= call["duration_s"] <= stages_budget - (STARTUP_S / 3 + STOP_GRACE_S / 3 + STOP_MAX_S + SWEEP_RESERVE_S)
    )
    assert result.verdict is Verdict.INFRASTRUCTURE
    assert result.reason == "the sweep could not look at what the run left held"
    (failure,) = result.failures
    assert failure.kind is FailureKind.INFRASTRUCTURE and "ConnectError" in failure.message


def test_the_stage_result_carries_the_timeline_its_latency_gates_and_the_stalls() -> None:
    """The overview plot gets the record's timeline, each latency gate on its group's panel (an overall gate on
    all, ``delivery`` end to end), no line for a failure ratio, and the stalls within the run's span."""
    from harness.load._slo import Gate
    from harness.load._windows import FaultClock

    record = _record(200, 20)
    gates = SloGates(
        [
            Gate(None, "failure_ratio", 0.01),
            Gate(None, "p99", 250.0),
            Gate("reserve", "p95", 50.0),
            Gate("delivery", "p99", 2000.0),
            Gate("browse_lockers", "p50", 5.0),
        ]
    )
    summary = LoadSummary.build(record, gates, duration_s=10.0, plan={"mode": "open"}, sweep=Sweep(checked=True))
    span = record.timeline.span()
    assert span is not None
    clock = FaultClock(seconds=0.5, every=span[1] - span[0], period_start_s=span[0])
    result = _stage_result("load", summary, [], stalls=clock)
    assert result.timeline is record.timeline and result.mode == "open"
    assert [(limit.name, limit.percentile, limit.limit_ms, limit.group) for limit in result.limits] == [
        ("SLO p99", 99.0, 250.0, None),
        ("SLO reserve p95", 95.0, 50.0, "delivery"),
        ("SLO delivery p99", 99.0, 2000.0, "delivery (end to end)"),
        ("SLO browse_lockers p50", 50.0, 5.0, "browsing"),
    ]
    width = span[1] - span[0]  # one stall period over the run's span: one window, its last half second
    assert [(w.start_s - span[0], w.end_s - span[0]) for w in result.windows] == [(width - 0.5, width)]
