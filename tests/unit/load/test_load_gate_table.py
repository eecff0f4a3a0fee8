"""The gate table (every gate, its limit, its measured value, ✓ or ✗), abort gates and ramp-up."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.config import load_settings
from harness.errors import ExitCode, UsageError
from harness.load import Abort, AbortWatch, Gate, LoadPlan, LoadRecord, LoadSummary, SloGates, Sweep
from harness.load._locust import ALL_NAMES, LocustFiles, LocustProgress, LocustStats, locust_command, read_step_stats
from harness.load._slo import parse_gate
from harness.redaction import Redactor
from harness.report import RunResult, StageResult, TargetInfo, Verdict, render_markdown, summary_document

MS = 1_000_000
ROOT = Path(__file__).resolve().parents[3]


def _record(latency_ms: float = 5.0, count: int = 100) -> LoadRecord:
    record = LoadRecord()
    for _ in range(count):
        record.request("reserve", int(latency_ms * MS))
    record.flow("completed", "delivery", int(10 * latency_ms * MS))
    return record


def _summary(gates: SloGates, abort: Abort | None = None) -> LoadSummary:
    return LoadSummary.build(_record(), gates, duration_s=2.0, plan={}, sweep=Sweep(checked=True), aborted=abort)


def test_every_gate_is_listed_with_its_limit_its_measured_value_and_a_mark() -> None:
    """Held gates are listed too, not only breaches: ✓ held, ✗ breached, - not measured (no such request)."""
    gates = SloGates([Gate(None, "p99", 250.0), Gate("reserve", "p95", 1.0), Gate("open_for_dropoff", "p99", 9.0)])
    lines = _summary(gates).gate_lines()
    assert [(line.name, line.limit, line.measured, line.mark) for line in lines] == [
        ("p99", "250 ms", "5.00 ms", "✓"),
        ("reserve p95", "1 ms", "5.00 ms", "✗"),
        ("open_for_dropoff p99", "9 ms", "not measured", "-"),
    ]


def test_summary_md_and_json_carry_the_gate_table() -> None:
    """``summary.md`` has a Gates section with every gate; ``summary.json`` each gate per stage."""
    lines = _summary(SloGates([Gate(None, "p99", 250.0), Gate("reserve", "p95", 1.0)])).gate_lines()
    stage = StageResult("load", Verdict.BREACHED, "SLO breached", gates=lines)
    run = RunResult("20260101-000000-abcdef", TargetInfo("local"), datetime.now(UTC), 0, stages=[stage])
    markdown = render_markdown(run)
    assert "### Gates" in markdown
    assert "| load | p99 | 250 ms | 5.00 ms | ✓ |" in markdown
    assert "| load | reserve p95 | 1 ms | 5.00 ms | ✗ |" in markdown
    gates = summary_document(run)["stages"][0]["gates"]
    assert [(gate["gate"], gate["held"]) for gate in gates] == [("p99", True), ("reserve p95", False)]
    assert Redactor().text(markdown) == markdown  # nothing in the table looks like a secret


@pytest.mark.parametrize(
    ("text", "gate"),
    [
        ("p99=250:abort", Gate(None, "p99", 250.0, abort=True)),
        ("reserve.p95=50:abort", Gate("reserve", "p95", 50.0, abort=True)),
        ("failure_ratio=0.05:ABORT", Gate(None, "failure_ratio", 0.05, abort=True)),
        ("p99=250", Gate(None, "p99", 250.0)),
    ],
)
def test_abort_suffix_makes_an_abort_gate(text: str, gate: Gate) -> None:
    """``--slo p99=250:abort`` stops the run as soon as the gate breaches (k6's abortOnFail)."""
    assert parse_gate(text) == gate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p99=250:stop", "the only suffix a limit takes is :abort"),
        ("server_errors=0:abort", "cannot abort the run"),
        ("delivery.p99=900:abort", "cannot abort the run"),
    ],
)
def test_abort_gates_locust_cannot_measure_live_are_refused(text: str, message: str) -> None:
    """Only what Locust measures while the run goes can abort it; the rest is refused before the run."""
    with pytest.raises(UsageError, match=message):
        SloGates([parse_gate(text)])


def test_abort_gates_from_the_configuration_file(tmp_path: Path) -> None:
    """``abort = [...]`` in ``[slo]`` names the gates that abort; a name that is no gate is refused."""
    (tmp_path / "locker-harness.toml").write_text(
        '[slo]\np99_ms = 250\nabort = ["p99", "reserve.p95"]\n[slo.steps]\nreserve = { p95_ms = 50 }\n',
        encoding="utf-8",
    )
    gates = SloGates.resolve(load_settings(cwd=tmp_path, environ={}))
    assert sorted(gate.key for gate in gates.aborting) == ["p99", "reserve.p95"]
    (tmp_path / "locker-harness.toml").write_text('[slo]\nabort = ["p95"]\n', encoding="utf-8")
    with pytest.raises(UsageError, match=r"abort names 'p95'.*which is no gate"):
        SloGates.resolve(load_settings(cwd=tmp_path, environ={}))


def _progress(**rows: LocustStats) -> LocustProgress:
    steps = {ALL_NAMES if name == "all" else name: stats for name, stats in rows.items()}
    total = steps.get(ALL_NAMES, LocustStats())
    return LocustProgress(1.0, total.requests, total.failures, 0.0, steps)


def test_the_abort_watch_waits_for_enough_requests_then_stops_at_the_first_breach() -> None:
    """A percentile of a handful of requests is noise; once enough came, the first breach stops the run."""
    watch = AbortWatch([Gate(None, "p99", 100.0, abort=True), Gate("reserve", "p95", 1.0)], min_requests=20)
    assert watch.gates == [Gate(None, "p99", 100.0, abort=True)]  # only the abort gates are watched
    assert not watch(_progress(all=LocustStats(requests=5, p99_ms=900.0)))
    assert not watch(_progress(all=LocustStats(requests=50, p99_ms=90.0)))
    assert watch(_progress(all=LocustStats(requests=60, p99_ms=120.0)))
    assert watch.abort is not None and (watch.abort.actual, watch.abort.requests) == (120.0, 60)
    assert "p99 120.00 ms > 100 ms over 60 requests" in watch.abort.describe()


def test_a_failure_ratio_abort_gate_reads_the_steps_failures() -> None:
    """``reserve.failure_ratio=0.1:abort`` is judged on the reserve row's failures over its requests."""
    watch = AbortWatch([Gate("reserve", "failure_ratio", 0.1, abort=True)], min_requests=10)
    assert not watch(_progress(reserve=LocustStats(requests=40, failures=4)))
    assert watch(_progress(reserve=LocustStats(requests=40, failures=5)))


def test_an_abort_is_a_breach_with_exit_3_that_says_when() -> None:
    """The aborted gate is ✗ and the reason says it stopped the run and when, whatever the final value."""
    gate = Gate(None, "p99", 100.0, abort=True)
    abort = Abort(gate, 120.0, 60, datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC), 9.0).since(
        datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC).timestamp()
    )
    summary = _summary(SloGates([gate]), abort)  # the whole run's p99 is 5 ms: within the gate
    assert summary.exit_code is ExitCode.SLO_BREACH
    assert summary.reason.startswith("aborted 4.0 s in (12:00:07 UTC): p99 120.00 ms > 100 ms")
    [line] = summary.gate_lines()
    assert line.mark == "✗" and "stopped the run 4.0 s in" in line.note
    assert summary.as_json()["aborted"]["after_s"] == 4.0


def test_locust_rows_are_read_per_step(tmp_path: Path) -> None:
    """The abort watch reads every row of Locust's CSV; two methods of one name add up."""
    files = LocustFiles(tmp_path)
    files.stats_csv.write_text(
        "Type,Name,Request Count,Failure Count,Requests/s,50%,90%,95%,99%,99.9%\n"
        "POST,reserve,10,1,5.0,3,8,9,12,20\nDELETE,reserve,5,0,1.0,2,4,5,30,31\n"
        ",Aggregated,30,2,15.5,4,9,10,N/A,40\n",
        encoding="utf-8",
    )
    rows = read_step_stats(files)
    assert (rows["reserve"].requests, rows["reserve"].failures, rows["reserve"].p99_ms) == (15, 1, 30.0)
    assert (rows[ALL_NAMES].p90_ms, rows[ALL_NAMES].p999_ms, rows[ALL_NAMES].p99_ms) == (9.0, 40.0, 0.0)


def test_spawn_rate_ramps_the_users_up(tmp_path: Path) -> None:
    """``--spawn-rate`` (or ``spawn_rate`` in [load]) is Locust's -r; without it all users start at once."""
    (tmp_path / "locker-harness.toml").write_text("[load]\nspawn_rate = 2\n", encoding="utf-8")
    settings = load_settings(cwd=tmp_path, environ={})
    plan, _ = LoadPlan.resolve(settings)
    assert plan.spawn_rate == 2.0 and plan.as_dict()["spawn_rate"] == 2.0
    plan, _ = LoadPlan.resolve(settings, users=40, spawn_rate=0.5)
    files = LocustFiles(tmp_path)
    command = locust_command(ROOT / "loadtests" / "locustfile.py", host="http://127.0.0.1:1", users=40,
                             duration_s=5.0, files=files, spawn_rate=plan.spawn_rate)  # fmt: skip
    assert command[command.index("-r") + 1] == "0.5"
    default = locust_command(ROOT / "loadtests" / "locustfile.py", host="http://127.0.0.1:1", users=40,
                             duration_s=5.0, files=files)  # fmt: skip
    assert default[default.index("-r") + 1] == "40"
    with pytest.raises(UsageError, match="spawn_rate must be between"):
        LoadPlan.resolve(settings, spawn_rate=0.0)
