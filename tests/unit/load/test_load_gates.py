"""SLO gates: parsed from options and configuration, measured against a record, breaches named."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import Settings, load_settings
from harness.errors import ExitCode, UsageError
from harness.load import Gate, LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._slo import parse_gate

MS = 1_000_000


def _summary(record: LoadRecord, gates: SloGates, sweep: Sweep | None = None) -> LoadSummary:
    return LoadSummary.build(record, gates, duration_s=2.0, plan={}, sweep=sweep or Sweep(checked=True))


def _steady(latency_ms: int = 5, count: int = 100) -> LoadRecord:
    record = LoadRecord()
    for _ in range(count):
        record.request("reserve", latency_ms * MS)
    record.flow("completed", "delivery", 10 * latency_ms * MS)
    return record


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("p99=250", Gate(None, "p99", 250.0)),
        ("reserve.p95=50", Gate("reserve", "p95", 50.0)),
        ("reserve.p99_ms=5.5", Gate("reserve", "p99", 5.5)),
        ("failure_ratio=0.01", Gate(None, "failure_ratio", 0.01)),
        ("delivery.p999=2000", Gate("delivery", "p999", 2000.0)),
    ],
)
def test_slo_option_syntax(text: str, gate: Gate) -> None:
    """``--slo [STEP.]METRIC=LIMIT`` names a step (or all requests), a metric and a limit."""
    assert parse_gate(text) == gate


@pytest.mark.parametrize("text", ["p99", "p98=1", "reserv.p99=1", "p99=fast", "failure_ratio=2", "p99=-1"])
def test_bad_slo_options_are_usage_errors(text: str) -> None:
    """A malformed gate, an unknown metric or step, or an impossible limit stops the run before it starts."""
    with pytest.raises(UsageError):
        SloGates([parse_gate(text)])


def test_gates_from_pyproject_then_options(tmp_path: Path) -> None:
    """``[tool.locker-harness.slo]`` sets gates; ``--slo`` replaces the same gate; the default ratio stays."""
    (tmp_path / "pyproject.toml").write_text(
        "[tool.locker-harness.slo]\np99_ms = 250\n"
        "[tool.locker-harness.slo.steps]\nreserve = { p95_ms = 50, p99_ms = 100 }\n",
        encoding="utf-8",
    )
    settings = load_settings(cwd=tmp_path, environ={})
    gates = {gate.name: gate.limit for gate in SloGates.resolve(settings, ["reserve.p99=80"])}
    assert gates == {"failure_ratio": 0.01, "server_errors": 0, "p99": 250.0, "reserve p95": 50.0, "reserve p99": 80.0}


def test_unknown_step_in_the_slo_table_is_refused(tmp_path: Path) -> None:
    """A gate on a step no user makes would never be checked: it is refused with its name."""
    (tmp_path / "locker-harness.toml").write_text("[slo.steps]\nreserv = { p99_ms = 1 }\n", encoding="utf-8")
    with pytest.raises(UsageError, match="reserv"):
        SloGates.resolve(load_settings(cwd=tmp_path, environ={}))


def test_a_green_run_exits_0_and_a_breach_exits_3_named() -> None:
    """Within every gate the run is green; a percentile above its limit is a breach (3) named by gate."""
    record = _steady(latency_ms=5)
    assert _summary(record, SloGates([Gate("reserve", "p99", 10.0)])).exit_code is ExitCode.OK
    summary = _summary(record, SloGates([Gate("reserve", "p99", 1.0), Gate(None, "p50", 100.0)]))
    assert summary.exit_code is ExitCode.SLO_BREACH
    assert [result.gate.name for result in summary.breaches] == ["reserve p99"]
    assert summary.as_json()["breaches"] == ["reserve p99"]
    assert "reserve p99 5.00 ms > 1 ms" in summary.breaches[0].describe()


def test_end_to_end_gate_reads_the_flow_histogram() -> None:
    """``delivery.p99`` is measured on whole deliveries, not on requests."""
    summary = _summary(_steady(latency_ms=5), SloGates([Gate("delivery", "p99", 40.0)]))
    assert summary.gate_results[0].actual == pytest.approx(50.0, rel=1e-3)
    assert summary.exit_code is ExitCode.SLO_BREACH


def test_failure_ratio_excludes_conflicts() -> None:
    """Expected contention (409 on reserve) never counts against the failure ratio."""
    record = _steady(count=99)
    conflict = record.request("reserve", MS)
    conflict.conflicts += 1
    summary = _summary(record, SloGates([Gate(None, "failure_ratio", 0.0)]))
    assert summary.gate_results[0].actual == 0.0
    assert summary.exit_code is ExitCode.OK


def test_oracle_violations_outrank_breaches_as_a_defect() -> None:
    """A violation is a product defect (1) even when a gate is breached too."""
    record = _steady()
    record.violation(record.step("reserve"), "double_booking", "reserve", 1401, "held by another user")
    summary = _summary(record, SloGates([Gate(None, "p50", 0.001)]))
    assert summary.exit_code is ExitCode.DEFECT


def test_a_gate_on_a_step_that_did_not_run_is_reported_not_measured() -> None:
    """Door steps do not run on Harbor's sandbox: their gates say so instead of passing or failing."""
    summary = _summary(_steady(), SloGates([Gate("open_for_dropoff", "p99", 1.0)]))
    result = summary.gate_results[0]
    assert result.actual is None and not result.breached
    assert "not measured" in result.describe()


def test_empty_runs_and_leftovers_are_infrastructure() -> None:
    """No request measured, or lockers the users left held, cannot pass as green."""
    assert _summary(LoadRecord(), SloGates()).exit_code is ExitCode.INFRASTRUCTURE
    leak = Sweep(checked=True, found=1, released=1)
    assert _summary(_steady(), SloGates(), leak).exit_code is ExitCode.INFRASTRUCTURE


def test_a_sweep_that_could_not_look_is_infrastructure_with_its_reason() -> None:
    """Nothing proves the target was left as found: could not test (4), said so, and failed give-backs named."""
    unchecked = Sweep(checked=False, notes=["the sweep could not finish: ConnectError: refused"])
    summary = _summary(_steady(), SloGates(), unchecked)
    assert summary.verdict == (ExitCode.INFRASTRUCTURE, "the sweep could not look at what the run left held")
    record = _steady()
    record.cleaned(False, "release 1401: ConnectError")
    summary = _summary(record, SloGates(), unchecked)
    assert summary.exit_code is ExitCode.INFRASTRUCTURE
    assert (
        summary.reason
        == "the users failed to give back 1 locker(s) and the sweep could not look at what the run left held"
    )
    assert summary.as_json()["reason"] == summary.reason


def test_failed_give_backs_the_sweep_found_released_are_green() -> None:
    """A give-back whose answer was lost but which landed: the sweep looked and found nothing held."""
    record = _steady()
    record.cleaned(False, "release 1401: ReadTimeout")
    assert _summary(record, SloGates(), Sweep(checked=True)).exit_code is ExitCode.OK


def test_defects_and_breaches_outrank_a_sweep_that_could_not_look() -> None:
    """A product defect (1) and a breach (3) are still what the run exits with."""
    record = _steady()
    record.violation(record.step("reserve"), "double_booking", "reserve", 1401, "held by another user")
    assert _summary(record, SloGates(), Sweep(checked=False)).exit_code is ExitCode.DEFECT
    breach = SloGates([Gate(None, "p50", 0.001)])
    assert _summary(_steady(), breach, Sweep(checked=False)).exit_code is ExitCode.SLO_BREACH


def test_the_error_that_ended_the_run_is_its_exit_code_after_defects() -> None:
    """A run Locust could not finish exits with that error's code and says why; a defect still comes first."""
    summary = LoadSummary.build(
        _steady(), SloGates(), duration_s=2.0, plan={}, sweep=Sweep(checked=True),
        error="UsageError: no tower T-9", error_code=ExitCode.USAGE,
    )  # fmt: skip
    assert summary.verdict == (ExitCode.USAGE, "UsageError: no tower T-9")
    assert summary.as_json()["error"] == "UsageError: no tower T-9"
    record = _steady()
    record.violation(record.step("reserve"), "double_booking", "reserve", 1401, "held by another user")
    failed = LoadSummary.build(
        record, SloGates(), duration_s=2.0, plan={}, sweep=Sweep(checked=True), error="InfrastructureError: killed"
    )
    assert failed.exit_code is ExitCode.DEFECT


@pytest.mark.parametrize("stop_code", [ExitCode.INTERRUPTED, ExitCode.TERMINATED])
def test_a_stopped_run_exits_as_the_run_does_and_keeps_what_its_figures_said(stop_code: ExitCode) -> None:
    """Ctrl-C (130) or SIGTERM (143): the summary's exit code is the run's, the figures' verdict kept in the reason."""
    record = _steady()
    record.violation(record.step("reserve"), "double_booking", "reserve", 1401, "held by another user")
    summary = LoadSummary.build(
        record, SloGates(), duration_s=2.0, plan={}, sweep=Sweep(checked=True), interrupted=True, stop_code=stop_code
    )
    document = summary.as_json()
    assert document["exit_code"] == stop_code and document["interrupted"] is True
    assert "the figures so far: oracle violations: 1 double_booking" in document["reason"]
    assert summary.judged[0] is ExitCode.DEFECT
    clean = LoadSummary.build(
        _steady(), SloGates(), duration_s=2.0, plan={}, sweep=Sweep(checked=True), interrupted=True, stop_code=stop_code
    )
    assert clean.verdict == (stop_code, "terminated (SIGTERM)" if stop_code is ExitCode.TERMINATED else "interrupted")


def test_delivery_failure_ratio_is_aborted_over_the_deliveries_that_ended() -> None:
    """Measured from the flows: aborted over completed and aborted; interrupted and no-locker flows did not fail."""
    record = _steady()  # one completed delivery
    for _ in range(3):
        record.flow("completed", "delivery", 50 * MS)
    record.flow("aborted")
    record.flow("interrupted")
    record.flow("no_locker")
    summary = _summary(record, SloGates([Gate("delivery", "failure_ratio", 0.1)]))
    assert summary.gate_results[0].actual == pytest.approx(0.2)
    assert summary.exit_code is ExitCode.SLO_BREACH
    assert summary.breaches[0].describe() == "delivery failure_ratio 0.2000 > 0.1"


def test_delivery_failure_ratio_without_a_finished_delivery_is_not_measured() -> None:
    """A run whose deliveries were all interrupted has no ratio to judge: the gate says not measured."""
    record = _steady(count=10)
    record.flows["completed"] = 0
    record.flow("interrupted")
    summary = _summary(record, SloGates([Gate("delivery", "failure_ratio", 0.0)]))
    assert summary.gate_results[0].actual is None and summary.exit_code is ExitCode.OK


def test_a_5xx_is_a_lost_answer_never_a_violation_and_breaches_the_default_gate() -> None:
    """5xx answers count as server errors (errors, not oracle findings); by default none is tolerated."""
    record = _steady()
    record.lost_answer(record.step("authenticate"), "server_error", "authenticate: 503")
    summary = _summary(record, SloGates.resolve(Settings()), Sweep(checked=True))
    assert record.violation_count == 0 and record.server_errors == 1
    assert summary.exit_code is ExitCode.SLO_BREACH
    assert "server_errors 1 > 0" in summary.reason
    tolerant = SloGates.resolve(Settings(), ["server_errors=1"])
    assert _summary(record, tolerant, Sweep(checked=True)).exit_code is ExitCode.OK


def test_a_lost_answer_is_its_own_kind_of_error() -> None:
    """A request without an answer is an error of kind answer_lost, in the step's counts and the JSON."""
    record = _steady()
    record.lost_answer(record.step("reserve"), "answer_lost", "reserve: no answer")
    again = LoadRecord.from_json(record.to_json())
    assert again.answers_lost == 1 and again.steps["reserve"].errors >= 1 and again.violation_count == 0
    with pytest.raises(ValueError, match="not a lost answer"):
        record.lost_answer(record.step("reserve"), "double_booking", "x")
