"""``LoadSummary``: a load run's figures, gates and evidence, and the JSON the reports read.

``load/summary.json`` holds the per-step table (requests, failures, conflicts, p50/p95/p99), the
totals, the oracles' violations with examples, each gate with its measured value, what the
cleanup gave back and what the sweep still found, and every histogram encoded (HdrHistogram's
compressed base64), so a report or a later comparison can redraw or merge them exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from harness.errors import ExitCode
from harness.load._abort import Abort
from harness.load._record import ALL_REQUESTS, LoadRecord, StepCounts
from harness.load._slo import DELIVERY, KNOWN_STEPS, PERCENTILES, GateResult, SloGates
from harness.metrics import Latencies

if TYPE_CHECKING:
    from harness.report import GateLine

__all__ = ["SUMMARY_SCHEMA", "LoadSummary", "StepRow", "Sweep"]

SUMMARY_SCHEMA: Final = 1


@dataclass(frozen=True, slots=True)
class StepRow:
    """One line of the per-step table."""

    name: str
    requests: int
    failures: int
    violations: int
    conflicts: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.__dataclass_fields__}


@dataclass(slots=True)
class Sweep:
    """What the harness found the load run left held after Locust exited, and gave back itself;
    ``held_before``: lockers the identity already held before the run, unchanged, left alone."""

    checked: bool = False
    found: int = 0
    released: int = 0
    notes: list[str] = field(default_factory=list)
    held_before: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "found": self.found,
            "released": self.released,
            "notes": self.notes,
            "held_before": self.held_before,
        }


def _row(name: str, latencies: Latencies, histogram: str, counts: StepCounts | None) -> StepRow:
    summary = latencies.summary(histogram)
    return StepRow(
        name=name,
        requests=counts.requests if counts is not None else summary.count,
        failures=counts.failures if counts is not None else 0,
        violations=counts.violations if counts is not None else 0,
        conflicts=counts.conflicts if counts is not None else 0,
        p50_ms=summary.p50_ms,
        p95_ms=summary.p95_ms,
        p99_ms=summary.p99_ms,
        max_ms=summary.max_ms,
    )


@dataclass
class LoadSummary:
    """Everything a load run found, computed once from the merged record."""

    record: LoadRecord
    duration_s: float
    plan: Mapping[str, Any]
    gate_results: list[GateResult]
    sweep: Sweep
    workers_expected: int = 0
    workers_reported: int = 0
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    #: Why the run ended without a verdict of its own (Locust killed past its deadline, no record,
    #: the locustfile refused the configuration): the stage raises it once this summary is written.
    error: str = ""
    error_code: ExitCode = ExitCode.INFRASTRUCTURE
    #: An abort gate breached while the run went: the run was stopped there.
    aborted: Abort | None = None
    #: What an ``interrupted`` run exits with, as the run does: 130 after Ctrl-C, 143 after SIGTERM.
    stop_code: ExitCode = ExitCode.INTERRUPTED
    steps: list[StepRow] = field(init=False)
    overall: StepRow = field(init=False)
    flows: list[StepRow] = field(init=False)

    def __post_init__(self) -> None:
        record = self.record
        order = {name: index for index, name in enumerate(KNOWN_STEPS)}
        names = sorted(record.latencies.names(), key=lambda name: (order.get(name, len(order)), name))
        self.steps = [_row(name, record.latencies, name, record.steps.get(name)) for name in names]
        totals = StepCounts()
        for counts in record.steps.values():
            totals.add(counts)
        self.overall = _row(ALL_REQUESTS, record.all_requests(), ALL_REQUESTS, totals)
        self.flows = [_row(name, record.flow_latencies, name, None) for name in record.flow_latencies.names()]

    @classmethod
    def build(
        cls,
        record: LoadRecord,
        gates: SloGates,
        *,
        duration_s: float,
        plan: Mapping[str, Any],
        sweep: Sweep,
        workers_expected: int = 0,
        workers_reported: int = 0,
        interrupted: bool = False,
        notes: Sequence[str] = (),
        error: str = "",
        error_code: ExitCode = ExitCode.INFRASTRUCTURE,
        aborted: Abort | None = None,
        stop_code: ExitCode = ExitCode.INTERRUPTED,
    ) -> LoadSummary:
        """The summary with every gate measured against ``record``."""
        results = [GateResult(gate, _measure(record, gate.step, gate.metric)) for gate in gates]
        return cls(
            record,
            duration_s,
            plan,
            results,
            sweep,
            workers_expected,
            workers_reported,
            interrupted,
            list(notes),
            error,
            error_code,
            aborted,
            stop_code,
        )

    # -- verdict --------------------------------------------------------------------------------

    @property
    def breaches(self) -> list[GateResult]:
        return [result for result in self.gate_results if result.breached]

    @property
    def violations(self) -> int:
        return self.record.violation_count

    @property
    def missing_workers(self) -> int:
        return max(self.workers_expected - self.workers_reported, 0)

    @property
    def exit_code(self) -> ExitCode:
        return self.verdict[0]

    @property
    def reason(self) -> str:
        return self.verdict[1]

    @property
    def verdict(self) -> tuple[ExitCode, str]:
        """The exit code and why. A run stopped from outside exits as the run does (``stop_code``),
        what the figures so far would have said added to the reason; else ``judged``."""
        code, reason = self.judged
        if not self.interrupted:
            return code, reason
        stopped = "terminated (SIGTERM)" if self.stop_code is ExitCode.TERMINATED else "interrupted"
        return self.stop_code, f"{stopped}; the figures so far: {reason}" if reason else stopped

    @property
    def judged(self) -> tuple[ExitCode, str]:
        """The figures' verdict, the first that applies: a violation is a defect (1); else the
        error that ended the run; else an abort gate that stopped it, or a breach (3); else missing
        workers, a sweep that could not look, lockers the users left held or an empty run make it
        infrastructure (4)."""
        record, sweep = self.record, self.sweep
        if self.violations:
            kinds = ", ".join(f"{count:,} {kind}" for kind, count in record.violations.items() if count)
            return ExitCode.DEFECT, f"oracle violations: {kinds}"
        if self.error:
            return self.error_code, self.error
        if self.aborted is not None:
            others = [result.describe() for result in self.breaches if result.gate != self.aborted.gate]
            return ExitCode.SLO_BREACH, "; ".join([self.aborted.describe(), *others])
        if self.breaches:
            return ExitCode.SLO_BREACH, "SLO breached: " + "; ".join(result.describe() for result in self.breaches)
        if self.missing_workers:
            return (
                ExitCode.INFRASTRUCTURE,
                f"{self.missing_workers} of {self.workers_expected} Locust workers sent no record",
            )
        if not sweep.checked:
            # Nothing proves the target was left as found; give-backs the users saw fail may still be held.
            failed = record.cleanup.get("failed", 0)
            why = f"the users failed to give back {failed} locker(s) and " if failed else ""
            return ExitCode.INFRASTRUCTURE, f"{why}the sweep could not look at what the run left held"
        if sweep.found:
            return ExitCode.INFRASTRUCTURE, f"the load users left {sweep.found} locker(s) held"
        if record.requests == 0:
            return ExitCode.INFRASTRUCTURE, "no request was measured"
        return ExitCode.OK, ""

    # -- figures --------------------------------------------------------------------------------

    @property
    def requests_per_s(self) -> float:
        return self.record.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def deliveries_per_min(self) -> float:
        completed = self.record.flows.get("completed", 0)
        return completed * 60 / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def conflicts(self) -> int:
        return sum(counts.conflicts for counts in self.record.steps.values())

    def key_figures(self) -> dict[str, str]:
        """The few figures a person reads in the run's table, written as a person reads them:
        whole counts with thousands separators, rates rounded, the p99 to three digits."""
        figures = {
            "requests": f"{self.record.requests:,}",
            "req/s": f"{self.requests_per_s:,.0f}",
            "deliveries/min": f"{self.deliveries_per_min:,.0f}",
            "failures": f"{self.record.failures:,}",
            "conflicts": f"{self.conflicts:,}",
            "oracle violations": f"{self.violations:,}",
            "p99 ms": _readable_ms(self.overall.p99_ms),
        }
        if self.record.server_errors or self.record.answers_lost:
            figures["5xx"] = f"{self.record.server_errors:,}"
            figures["answers lost"] = f"{self.record.answers_lost:,}"
        if self.breaches:
            figures["SLO breaches"] = f"{len(self.breaches):,}"
        if self.aborted is not None:
            figures["aborted after"] = f"{self.aborted.after_s:.1f} s"
        return figures

    def gate_lines(self) -> list[GateLine]:
        """Every gate with its limit, measured value and whether it held, for the gate tables."""
        # harness.report loads when the harness reports: the Locust processes import this package for LoadRecord.
        from harness.report import GateLine

        lines = []
        for result in self.gate_results:
            gate = result.gate
            notes = ["abort gate"] if gate.abort else []
            if self.aborted is not None and gate == self.aborted.gate:
                notes = [
                    f"stopped the run {self.aborted.after_s:.1f} s in, at {gate.value_text(self.aborted.actual)} live"
                ]
            if result.actual is None:
                notes.append("no request of this step")
            held = None if result.actual is None else not result.breached
            if self.aborted is not None and gate == self.aborted.gate:
                held = False  # the run stopped on it, whatever the whole run's value says
            measured = "not measured" if result.actual is None else gate.value_text(result.actual)
            lines.append(GateLine(gate.name, gate.limit_text(), measured, held, "; ".join(notes)))
        return lines

    def histograms(self) -> Latencies:
        """Every step's histogram and each flow's end to end (``delivery (end to end)``), for plots."""
        latencies = Latencies()
        latencies.merge(self.record.latencies)
        for name in self.record.flow_latencies:
            latencies.histogram(f"{name} (end to end)").add(self.record.flow_latencies.histogram(name))
        return latencies

    def as_json(
        self, *, files: Mapping[str, str] | None = None, context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        record = self.record
        return {
            "schema": SUMMARY_SCHEMA,
            **dict(context or {}),
            "plan": dict(self.plan),
            "exit_code": int(self.exit_code),
            "reason": self.reason,
            "error": self.error or None,
            "interrupted": self.interrupted,
            "duration_s": round(self.duration_s, 3),
            "totals": {
                "requests": record.requests,
                "failures": record.failures,
                "errors": sum(counts.errors for counts in record.steps.values()),
                "violations": record.violation_count,
                "server_errors": record.server_errors,
                "answers_lost": record.answers_lost,
                "conflicts": self.conflicts,
                "requests_per_s": round(self.requests_per_s, 2),
                "deliveries_completed": record.flows.get("completed", 0),
                "deliveries_per_min": round(self.deliveries_per_min, 1),
            },
            "overall": self.overall.as_dict(),
            "steps": [row.as_dict() for row in self.steps],
            "flows": [row.as_dict() for row in self.flows],
            "flow_outcomes": dict(record.flows),
            "violations": dict(record.violations),
            "violation_examples": [example.as_dict() for example in record.examples],
            "errors": dict(sorted(record.errors.items(), key=lambda item: -item[1])),
            "gates": [result.as_dict() for result in self.gate_results],
            "breaches": [result.gate.name for result in self.breaches],
            "aborted": self.aborted.as_dict() if self.aborted is not None else None,
            "cleanup": {
                **record.cleanup,
                "failures": list(record.cleanup_failures),
                "sweep": self.sweep.as_dict(),
            },
            "workers": {
                "processes": record.processes,
                "expected": self.workers_expected,
                "reported": self.workers_reported,
            },
            "notes": list(self.notes),
            "histograms": {"steps": record.latencies.encode(), "flows": record.flow_latencies.encode()},
            "files": dict(files or {}),
        }


def _readable_ms(value: float) -> str:
    """Milliseconds to three significant digits, never in exponent form: 0.412, 8.79, 12.6, 1,234."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{2 if value < 10 else 1}f}" if value >= 1 else f"{value:.3f}"


def _measure(record: LoadRecord, step: str | None, metric: str) -> float | None:
    """The value a gate is compared with; ``None`` when the run has no request of ``step``."""
    if metric == "server_errors":
        if step is None:
            return float(record.server_errors)
        return float(record.steps[step].server_errors) if step in record.steps else None
    if metric == "failure_ratio":
        if step == DELIVERY:
            # Whole deliveries: aborted over those the target decided. A delivery the run's stop
            # interrupted, or that found no free locker (contention), did not fail.
            aborted = record.flows.get("aborted", 0)
            decided = aborted + record.flows.get("completed", 0)
            return aborted / decided if decided else None
        if step is None:
            requests, failures = record.requests, record.failures
        elif step in record.steps:
            requests, failures = record.steps[step].requests, record.steps[step].failures
        else:
            return None
        return failures / requests if requests else None
    if step is None:
        latencies, name = record.all_requests(), ALL_REQUESTS
    elif step in record.latencies:
        latencies, name = record.latencies, step
    elif step in record.flow_latencies:
        latencies, name = record.flow_latencies, step
    else:
        return None
    if latencies.count(name) == 0:
        return None
    return latencies.percentile_ms(name, PERCENTILES[metric])
