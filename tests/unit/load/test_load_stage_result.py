"""The load stage's result as the run's table shows it: readable figures, a short reason, the
details in the failures, and a budget too short for a load run reported as could not test."""

from __future__ import annotations

from pathlib import Path

from harness.config import Settings, Target
from harness.load import LoadPlan, LoadRecord, LoadStage, LoadSummary, SloGates, Sweep
from harness.load._stage import _stage_result
from harness.redaction import redactor
from harness.report import FailureKind, TargetInfo, Verdict
from harness.run import execute, new_context

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
